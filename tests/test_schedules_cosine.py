"""Tests of ``cosine_warm_restarts`` (and ``cosine_annealing``) against plain-Python references.

The warm-restart reference is the *recursive* definition (as PyTorch's ``step()`` runs it): advance
``T_cur`` by one per step and restart with ``T_i *= T_mult`` when ``T_cur >= T_i``, in float64. The
implementation under test is a closed form (remainder, or logarithm + correction, selected by
``jnp.where``), so the two are computed differently.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lr_jax import schedules as S
from tests.helpers import close, f32

N = 600
STEPS = np.arange(N)
CALL = jax.jit(lambda s, t: s(t))
RTOL, ATOL = 1e-5, 1e-7  # float32: the cosine of a float32 fraction of the cycle



def ref_restarts(n, init, period, mult, end):
  """The first n rates, by the recursion T_cur += 1; if T_cur >= T_i: T_cur -= T_i, T_i *= mult."""
  out, t_cur, t_i = [], 0.0, float(period)
  for _ in range(n):
    out.append(end + (init - end) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
    t_cur += 1
    if t_cur >= t_i:
      t_cur -= t_i
      t_i *= mult
  return np.array(out)


def restart_steps(period, mult, limit):
  """The steps where a cycle starts (exact integers for whole period and mult), below ``limit``."""
  starts, s, length = [], 0, period
  while s < limit:
    starts.append(s)
    s, length = s + length, length * mult
  return starts



init_s = st.floats(0.05, 10.0).map(f32)
end_frac = st.one_of(st.just(0.0), st.floats(1e-3, 0.5))  # no float32 denormals (flushed to 0)


@given(init=init_s, end=end_frac, period=st.integers(1, 60), mult=st.sampled_from([1, 2, 3, 4]))
def test_warm_restarts_match_the_recursion_for_whole_hyperparameters(init, end, period, mult):
  end = f32(init * end)
  s = S.cosine_warm_restarts(init, period, mult, end)
  close(CALL(s, STEPS), ref_restarts(N, init, period, mult, end), atol=1e-6 * init)


@given(
  init=init_s, period=st.floats(1.0, 40.0).map(lambda x: round(x * 4) / 4), mult=st.floats(1.0, 3.0).map(f32)
)
def test_warm_restarts_match_the_recursion_for_fractional_hyperparameters(init, period, mult):
  # Fractional T_0 and T_mult (Keras' t_mul=1.5 style): restarts fall between steps; a step that lands
  # within float32 rounding of a restart may see either side of it, so compare away from restarts.
  s = S.cosine_warm_restarts(init, period, mult)
  want = ref_restarts(N, init, period, mult, 0.0)
  got = np.asarray(CALL(s, STEPS), np.float64)
  starts = np.array(restart_steps(period, mult, N + 1), np.float64)
  near = np.min(np.abs(STEPS[:, None] - starts[None, :]), axis=1) < 1e-3
  close(got[~near], want[~near], atol=1e-5 * init)  # cos' slope near a cycle end: 1e-7 * pi * T / T_i


@pytest.mark.parametrize("period,mult", [(1, 2), (3, 2), (10, 2), (1, 3), (7, 3), (2, 5), (5, 4)])
def test_restarts_land_on_the_exact_step_up_to_2_24(period, mult):
  s = S.cosine_warm_restarts(1.0, period, mult, 0.0)
  starts = [b for b in restart_steps(period, mult, 2**24) if b > 0]
  t = np.array([[b - 1, b, b + 1] for b in starts], np.int32)
  out = np.asarray(s(jnp.asarray(t)))
  np.testing.assert_array_equal(out[:, 1], 1.0)  # the first step of a cycle is init_value
  last = np.array([period * mult ** (i) for i in range(len(starts))], np.float64)  # length of the ended cycle
  close(out[:, 0], (1 + np.cos(np.pi * (last - 1) / last)) / 2, atol=1e-7)
  close(out[:, 2], (1 + np.cos(np.pi / (last * mult))) / 2, atol=1e-7)


def test_period_mult_one_is_exact_for_integer_steps_up_to_2_31():
  s = S.cosine_warm_restarts(1.0, 7, 1)
  t = np.array([2**24 + 1, 2**30 - 1, 2**31 - 4097, 2**31 - 2, 2**31 - 1], np.int64)
  want = [0.5 * (1 + math.cos(math.pi * (x % 7) / 7)) for x in t]
  close(s(jnp.asarray(t, jnp.int32)), want, rtol=1e-6)
  s = S.cosine_warm_restarts(1.0, 2**30, 1)
  close(s(jnp.array([2**30 - 1, 2**30, 2**31 - 1], jnp.int32)), [0.0, 1.0, 0.0], atol=1e-7)


@pytest.mark.parametrize("mult", [1.0, 1.001, 1.5, 2.0, 3.0, 10.0, 1e6])
def test_big_steps_are_finite_and_match_float64(mult):
  s = S.cosine_warm_restarts(1.0, 10, mult, 0.1)
  t = np.array([2**20, 2**24 + 1, 2**30, 2**31 - 1], np.int64)
  out = np.asarray(s(jnp.asarray(t, jnp.int32)))
  assert np.all(np.isfinite(out)) and np.all((out >= f32(0.1)) & (out <= 1.0))
  if mult > 1:  # float64 closed form at the float32 step (the step itself is rounded above 2**24)
    x, mult = np.float32(t).astype(np.float64), f32(mult)
    u = np.log1p(x * (mult - 1) / 10) / np.log(mult)
    n = np.floor(u)
    start = 10 * (mult**n - 1) / (mult - 1)
    pos, length = x - start, 10 * mult**n
    # Float32 limits: the cycle index u carries ~4 roundings of u * 2**-24 (scaled by the slope of
    # T_cur/T_i in u, ln(m) m / (m - 1)), and a cycle start is rounded by up to 256 steps.
    slope = 0.9 * np.pi / 2
    tol = 1e-6 + slope * (4 * u * 2**-24 * np.log(mult) * mult / (mult - 1) + 512 / length)
    err = np.abs(out - (0.1 + 0.9 * (1 + np.cos(np.pi * pos / length)) / 2))
    assert np.all(err <= tol), (err, tol)


TRACED_MULT = jax.jit(jax.vmap(lambda p, m: S.cosine_warm_restarts(1.0, p, m)(STEPS), in_axes=(None, 0)))


@given(mults=st.lists(st.floats(1.0, 4.0).map(f32), min_size=4, max_size=4), period=st.integers(1, 50))
def test_traced_period_mult_selects_the_right_branch(mults, period):
  mults = [1.0, 2.0] + mults[2:]  # always both branches in one batch
  got = TRACED_MULT(period, jnp.asarray(mults, jnp.float32))
  for row, m in zip(np.asarray(got), mults):
    close(row, np.asarray(CALL(S.cosine_warm_restarts(1.0, period, m), STEPS)), rtol=2e-6, atol=1e-7)
    if m in (1.0, 2.0):
      close(row, ref_restarts(N, 1.0, period, m, 0.0), atol=1e-6)


@given(init=init_s, end=end_frac, period=st.integers(1, 80), mult=st.floats(1.0, 3.0).map(f32))
def test_bounded_and_decreasing_within_each_cycle(init, end, period, mult):
  end = f32(init * end)
  out = np.asarray(CALL(S.cosine_warm_restarts(init, period, mult, end), STEPS), np.float64)
  assert np.all(out >= end * (1 - 1e-6)) and np.all(out <= init * (1 + 1e-6))
  rises = np.flatnonzero(np.diff(out) > 1e-6 * init) + 1  # rises happen only at restarts...
  restarts = np.ceil(np.array(restart_steps(period, mult, N + 1), np.float64) - 1e-3)
  assert set(rises) <= set(restarts.astype(int)), (rises, restarts)
  whole_starts = [b for b in restart_steps(period, mult, N) if float(b).is_integer()]
  close(out[np.array(whole_starts, int)], init, rtol=1e-6)  # ...and a whole-step restart is init_value


@given(init=init_s, period=st.integers(2, 80), mult=st.sampled_from([1, 2, 3]))
def test_continuous_inside_a_cycle(init, period, mult):
  s = S.cosine_warm_restarts(init, period, mult)
  t = jnp.asarray(STEPS, jnp.float32) + 0.25
  gap = np.abs(np.asarray(CALL(s, t + 1e-3)) - np.asarray(CALL(s, t)))
  # |d lr / dt| <= init * pi / (2 * T_i) <= init * pi / (2 * period)
  assert np.all(gap <= init * (math.pi / (2 * period) * 1e-3 * 1.01 + 1e-6)), gap.max()


@given(
  batch=st.lists(
    st.tuples(init_s, st.integers(1, 50), st.floats(1.0, 3.0).map(f32), end_frac), min_size=3, max_size=3
  )
)
def test_vmap_over_a_batch_of_schedules_matches_a_loop(batch):
  scheds = [S.cosine_warm_restarts(i, p, m, f32(i * e)) for i, p, m, e in batch]
  stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]), *scheds)
  got = jax.vmap(CALL, in_axes=(0, None))(stacked, STEPS)
  close(got, np.stack([np.asarray(s(STEPS)) for s in scheds]), rtol=2e-6, atol=1e-7)


def test_jit_with_traced_construction_equals_eager():
  eager = S.cosine_warm_restarts(0.9, 13, 2, 0.05)(STEPS)
  traced = jax.jit(lambda i, p, m, e: S.cosine_warm_restarts(i, p, m, e)(STEPS))(0.9, 13, 2, 0.05)
  close(traced, eager, rtol=2e-6, atol=1e-7)


def test_gradients_are_finite_for_every_hyperparameter():
  def total(i, p, m, e):
    return S.cosine_warm_restarts(i, p, m, e)(jnp.array([0, 5, 13, 40, 2**31 - 1])).sum()

  grad = jax.jit(jax.grad(total, argnums=(0, 1, 2, 3)))
  for m in (1.0, 2.0, 1.5):
    grads = grad(0.9, 13.0, m, 0.05)
    assert all(np.isfinite(g) for g in grads), grads


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"period": 0}, r"cosine_warm_restarts: `period` must be >= 1, got period=0\."),
    ({"period": -2.5}, r"period=-2\.5"),
    (
      {"period": 5, "period_mult": 0.99},
      r"cosine_warm_restarts: `period_mult` must be >= 1, got period_mult=0\.99\.",
    ),
    ({"period": 5, "period_mult": "2"}, r"`period_mult` must be a number"),
  ],
)
def test_bad_values_raise_eagerly(kwargs, match):
  with pytest.raises(ValueError, match=match):
    S.cosine_warm_restarts(1.0, **kwargs)


def test_bad_traced_values_poison_only_their_lane():
  f = jax.jit(jax.vmap(lambda p, m: S.cosine_warm_restarts(1.0, p, m)(STEPS)))
  out = np.asarray(f(jnp.array([5.0, 0.0, 5.0, 5.0, -1.0]), jnp.array([1.0, 1.0, 0.5, 2.0, 2.0])))
  np.testing.assert_array_equal(np.isnan(out).all(axis=1), [False, True, True, False, True])
  assert np.all(np.isfinite(out[[0, 3]]))


# cosine_annealing (the template) keeps its contract: exact end value at and past T, no climb back.
@given(init=init_s, end=end_frac, total=st.integers(1, 300))
def test_cosine_annealing_matches_closed_form_and_holds(init, end, total):
  end = f32(init * end)
  s = S.cosine_annealing(init, total, end)
  want = [end + (init - end) * (1 + math.cos(math.pi * min(t, total) / total)) / 2 for t in STEPS]
  out = np.asarray(CALL(s, STEPS))
  close(out, want, atol=1e-6 * init)
  assert np.all(out[STEPS >= total] == np.float32(end))


@pytest.mark.parametrize(
  ("make", "default"),
  [
    (lambda v: S.cosine_warm_restarts(1.0, 10, 2, 0.01, decay=v), 1.0),
    (lambda v: S.cosine_warm_restarts(1.0, 10, 2, 0.01, k_decay=v), 1.0),
    (lambda v: S.cosine_annealing(1.0, 50, 0.1, exponent=v), 1.0),
    (lambda v: S.cooldown(S.constant(1.0), 20, 20, shape="1-sqrt", end_value=v), 0.0),
  ],
  ids=["restarts_decay", "restarts_k_decay", "cosine_exponent", "cooldown_end_value"],
)
def test_derivative_at_an_options_default_is_the_finite_difference(make, default):
  # a traced option at its default value takes the general formula: the same rates, and its
  # derivative (a select or cond on "at the default" would give 0; decay <= 1: one-sided from below)
  with jax.enable_x64(True):
    t = jnp.arange(60.0)
    total = lambda v: jnp.sum(make(v)(t))
    grad = jax.grad(total)(jnp.float64(default))
    h = 1e-6
    fd = (total(default) - total(default - h)) / h if default == 1.0 else (total(h) - total(-h)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-4)
    assert abs(float(grad)) > 1.0
    # the same rates as the default fixed in the program (both jitted: eager ops round sin differently):
    # bit for bit on a CPU; 2.2e-16 apart at most on an H200, whose XLA fuses the two programs differently
    traced, fixed = jax.jit(lambda v: make(v)(t))(jnp.float64(default)), jax.jit(lambda: make(default)(t))()
    # an array-valued option takes the general formula whatever its value: at the default it too must
    # give the default's rates (a traced scalar may be routed to the plain formula by a lax.cond)
    general = jax.jit(lambda v: make(v)(t))(jnp.full((1,), default, jnp.float64))
    if jax.default_backend() == "cpu":
      np.testing.assert_array_equal(traced, fixed)
      np.testing.assert_array_equal(general, fixed)
    else:
      np.testing.assert_allclose(traced, fixed, rtol=0, atol=1e-15)
      np.testing.assert_allclose(general, fixed, rtol=0, atol=1e-15)
