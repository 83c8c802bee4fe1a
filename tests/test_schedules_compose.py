"""``join`` and ``multiply``: against ``optax.join_schedules``, boundary properties, configs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lr_jax import schedules as S
from tests.helpers import f32

STEPS = np.arange(300)
EVAL = jax.jit(lambda s, t: s(t))


pieces = st.lists(
  st.tuples(st.floats(0.01, 5.0).map(f32), st.integers(1, 100), st.floats(0.0, 0.5).map(f32)),
  min_size=1,
  max_size=4,
)


def cosines(spec):
  return [S.cosine_annealing(p, n, e * p) for p, n, e in spec]


@given(pieces, st.lists(st.integers(0, 120), min_size=3, max_size=3))
def test_join_matches_optax_join_schedules(spec, gaps):
  bounds = list(np.cumsum(gaps[: len(spec) - 1]))
  mine = S.join(cosines(spec), bounds)
  theirs = optax.join_schedules([optax.cosine_decay_schedule(p, n, alpha=e) for p, n, e in spec], bounds)
  got = np.asarray(EVAL(mine, STEPS))
  with jax.numpy_dtype_promotion("standard"):  # Optax's schedules need standard promotion
    want = np.asarray(theirs(jnp.asarray(STEPS)))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@given(pieces, st.lists(st.integers(1, 120), min_size=3, max_size=3))
def test_join_boundaries_switch_at_the_boundary_with_local_time(spec, gaps):
  bounds = [int(b) for b in np.cumsum(gaps[: len(spec) - 1])]
  sched = cosines(spec)
  lr = np.asarray(EVAL(S.join(sched, bounds), STEPS))
  starts = [0] + bounds
  for i, s in enumerate(sched):
    stop = starts[i + 1] if i + 1 < len(starts) else len(STEPS)
    alone = np.asarray(EVAL(s, STEPS))[: stop - starts[i]]
    # piece i owns [b_i, b_{i+1}): the boundary step is already the next piece's step 0
    np.testing.assert_allclose(lr[starts[i] : stop], alone, rtol=1e-6, atol=1e-7)


def test_join_equal_boundaries_skip_a_piece_and_single_piece_is_identity():
  a, b, c = S.cosine_annealing(1.0, 10), S.cosine_annealing(5.0, 10), S.cosine_annealing(0.5, 40)
  np.testing.assert_array_equal(S.join([a, b, c], [7, 7])(STEPS), S.join([a, c], [7])(STEPS))
  np.testing.assert_array_equal(S.join([a], [])(STEPS), a(STEPS))


def test_join_vmap_over_boundaries_matches_loop():
  sched = [S.cosine_annealing(1.0, 30), S.cyclic(0.1, 0.5, 5), S.cosine_annealing(0.3, 50)]
  grid = jnp.array([[10, 40], [0, 0], [25, 100]])
  got = jax.jit(jax.vmap(lambda b: S.join(sched, b)(STEPS)))(grid)
  for i in range(3):
    np.testing.assert_allclose(got[i], S.join(sched, [int(x) for x in grid[i]])(STEPS), rtol=2e-6, atol=1e-7)


def test_join_traced_invalid_boundaries_are_nan():
  sched = [S.cosine_annealing(1.0, 30), S.cosine_annealing(0.5, 30), S.cosine_annealing(0.3, 50)]
  out = jax.jit(jax.vmap(lambda b: S.join(sched, b)(STEPS)))(jnp.array([[10, 40], [40, 10], [-1, 10]]))
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1:]))


TWO = [S.cosine_annealing(1.0, 10), S.cosine_annealing(0.5, 10)]


@pytest.mark.parametrize(
  "schedules, boundaries, match",
  [
    (2, [10], r"join: `schedules` must be a non-empty sequence of schedules, got schedules=2"),
    ([], [], r"join: `schedules` must be a non-empty sequence"),
    (None, [10], r"join: `schedules` must be a non-empty sequence"),
    ("ab", [10], r"join: `schedules` must be a non-empty sequence"),
    ([0.1, 0.2], [10], r"join: `schedules` must be a schedule"),
    (TWO, [10, 20], r"join: `boundaries` must be a 1-D sequence of len\(schedules\) - 1 = 1 steps"),
    (TWO, 10, r"join: `boundaries` must be a 1-D sequence of len\(schedules\) - 1 = 1 steps"),
    (TWO, [[10]], r"join: `boundaries` must be a 1-D sequence"),
    (TWO, ["a"], r"join: `boundaries` must be a number"),
    (TWO, [float("nan")], r"join: `boundaries` must be finite"),
    (TWO, [-3], r"join: `boundaries` must be >= 0, got boundaries=\[-3\]"),
    (
      TWO + TWO[:1],
      [50, 10],
      r"join: `boundaries` must be sorted \(non-decreasing\), got boundaries=\[50, 10\]",
    ),
  ],
)
def test_join_invalid(schedules, boundaries, match):
  with pytest.raises(ValueError, match=match):
    S.join(schedules, boundaries)


def test_multiply_is_the_pointwise_product_and_accepts_callables():
  a, b = S.cyclic(0.1, 1.0, 7, 3), S.cosine_annealing(2.0, 200, 0.2)
  got = S.multiply(a, b, lambda t: 0.5)(STEPS)
  np.testing.assert_allclose(got, np.asarray(a(STEPS)) * np.asarray(b(STEPS)) * 0.5, rtol=1e-6)
  with jax.numpy_dtype_promotion("standard"):
    ox = optax.exponential_decay(1.0, 1, 0.99)
    got = S.multiply(b, ox)(STEPS)
  np.testing.assert_allclose(got, np.asarray(b(STEPS)) * 0.99 ** STEPS.astype(np.float64), rtol=2e-5)


@given(st.lists(st.floats(0.01, 3.0).map(f32), min_size=1, max_size=4))
def test_multiply_of_constants_and_bounds(values):
  s = S.multiply(*[S.cosine_annealing(v, 100) for v in values])
  lr = np.asarray(EVAL(s, STEPS))
  np.testing.assert_allclose(lr[0], np.prod(values), rtol=1e-5)
  assert np.all(lr >= 0) and np.all(lr <= np.prod(values) * (1 + 1e-5))
  assert np.all(np.diff(lr) <= 1e-7)  # a product of non-increasing non-negative factors


def test_multiply_invalid():
  with pytest.raises(ValueError, match=r"multiply: `schedules` must hold at least one schedule"):
    S.multiply()
  with pytest.raises(ValueError, match=r"multiply: `schedules` must be a schedule .*got schedules='x'"):
    S.multiply(S.cosine_annealing(1.0, 10), "x")


def test_nested_configs_round_trip_through_json():
  s = S.join(
    [
      S.warmup(S.cosine_annealing(1.0, 50), 5),
      S.multiply(S.cyclic(0.1, 1.0, 4, mode="triangular2"), S.one_cycle(1.0, 100, three_phase=True)),
      S.join([S.inverse_sqrt(0.5, 3), S.warmup_stable_decay(0.2, 40, 5, 10, decay="1-sqrt")], [20]),
    ],
    [55, 155],
  )
  cfg = json.loads(json.dumps(s.to_config()))
  r = S.from_config(cfg)
  assert r.to_config() == cfg
  np.testing.assert_array_equal(r(STEPS), s(STEPS))
  assert repr(s).startswith("join(schedules=(warmup(schedule=cosine_annealing(")


def test_compositions_are_jit_arguments_and_vmappable_batches():
  f = jax.jit(lambda s, t: s(t))

  def make(b, p):
    return S.join([S.cosine_annealing(p, 30), S.multiply(S.cyclic(0.1, p, 5))], [b])

  a, b = make(10, 1.0), make(20, 2.0)
  np.testing.assert_allclose(f(a, STEPS), a(STEPS), rtol=1e-6)
  np.testing.assert_allclose(f(b, STEPS), b(STEPS), rtol=1e-6)
  assert f._cache_size() == 1
  batch = jax.tree.map(lambda x, y: jnp.stack([jnp.asarray(x), jnp.asarray(y)]), a, b)
  np.testing.assert_allclose(
    jax.jit(jax.vmap(lambda s: s(STEPS)))(batch), np.stack([a(STEPS), b(STEPS)]), rtol=1e-6
  )


@pytest.mark.parametrize("b", [2**24 + 1, 2**30 + 3, 2**31 - 1])
def test_join_switches_on_the_exact_integer_step_where_float32_rounds(b):
  s = S.join([S.cosine_annealing(1.0, 1), S.cosine_annealing(5.0, 2**31 - 1)], np.array([b], np.int64))
  steps = jnp.array([b - 2, b - 1, b], jnp.int32)
  np.testing.assert_allclose(s(steps), [0.0, 0.0, 5.0], rtol=1e-6)


def test_join_takes_a_list_of_traced_boundaries_and_far_integer_boundaries():
  a, b = S.cosine_annealing(1.0, 10), S.cosine_annealing(5.0, 10)
  got = jax.jit(lambda w: S.join([a, b], [w])(STEPS))(jnp.float32(7))
  np.testing.assert_allclose(got, S.join([a, b], [7])(STEPS), rtol=1e-6)  # float vs integer boundary path
  # an int64 boundary past int32 must not wrap (2**40 -> 0 would switch at step 0)
  far = S.join([a, b], np.array([2**40], np.int64))
  np.testing.assert_array_equal(far(jnp.array([0, 2**31 - 1], jnp.int32)), a(jnp.array([0, 2**31 - 1])))
