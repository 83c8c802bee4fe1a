"""Tests of lr_jax.schedules' decay family against closed forms written independently in plain Python.

The references below are float64 Python written from the formulas in the PyTorch/Keras docs (not from
lr_jax's code): they loop or use ``math`` directly. Hyperparameters are rounded to float32 before they
reach a reference, so what is compared is the algorithm, not the float32 representation of an input
(``0.97 ** 1000`` with ``0.97`` rounded to float32 differs from float64 by 2e-5 relative).
"""

import bisect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lr_jax import schedules as S
from tests.helpers import close, f32

STEPS = np.arange(0, 400)
CALL = jax.jit(lambda s, t: s(t))  # one compile per schedule type/leaf dtypes, shared by all cases
RTOL, ATOL = 1e-5, 1e-7  # float32: a few roundings in pow/div, relative to the rate


# ----------------------------------------------------------------------------------------------
# Independent references (float64 Python).


def ref_step(t, init, step_size, gamma):
  return init * gamma ** (t // step_size)


def ref_multistep(t, init, milestones, gamma):
  return init * gamma ** bisect.bisect_right(sorted(milestones), t)


def ref_exponential(t, init, gamma, decay_steps, staircase):
  p = math.floor(t / decay_steps) if staircase else t / decay_steps
  return init * gamma**p


def ref_inverse_time(t, init, rate, decay_steps, staircase):
  p = math.floor(t / decay_steps) if staircase else t / decay_steps
  return init / (1 + rate * p)


def ref_polynomial(t, init, total, end, power):
  return (init - end) * (1 - min(t, total) / total) ** power + end


def ref_linear(t, init, end, total):
  return init + (end - init) * min(t, total) / total


def ref_piecewise(t, boundaries, values):
  for b, v in zip(boundaries, values):
    if t <= b:
      return v
  return values[-1]


def table(ref, *args):
  return np.array([ref(int(t), *args) for t in STEPS])


rates = st.floats(0.01, 10.0).map(f32)
gammas = st.floats(0.05, 1.0).map(f32)
lengths = st.integers(1, 150)


# ----------------------------------------------------------------------------------------------
# Closed forms.


@given(init=rates)
def test_constant(init):
  close(CALL(S.constant(init), STEPS), np.full(STEPS.shape, init))


@given(init=rates, step_size=lengths, gamma=gammas)
def test_step_decay_matches_closed_form(init, step_size, gamma):
  close(CALL(S.step_decay(init, step_size, gamma), STEPS), table(ref_step, init, step_size, gamma))


@given(
  init=rates,
  milestones=st.lists(st.integers(0, 420), max_size=4).map(sorted),
  gamma=st.floats(0.05, 3.0).map(f32),
)
def test_multistep_decay_matches_closed_form(init, milestones, gamma):
  s = S.multistep_decay(init, milestones, gamma)
  close(CALL(s, STEPS), table(ref_multistep, init, milestones, gamma))


@given(init=rates, gamma=gammas, decay_steps=st.integers(1, 50), staircase=st.booleans())
def test_exponential_decay_matches_closed_form(init, gamma, decay_steps, staircase):
  s = S.exponential_decay(init, gamma, decay_steps, staircase)
  close(CALL(s, STEPS), table(ref_exponential, init, gamma, decay_steps, staircase))


@given(init=rates, rate=st.floats(0.0, 5.0).map(f32), decay_steps=st.integers(1, 50), staircase=st.booleans())
def test_inverse_time_decay_matches_closed_form(init, rate, decay_steps, staircase):
  s = S.inverse_time_decay(init, rate, decay_steps, staircase)
  close(CALL(s, STEPS), table(ref_inverse_time, init, rate, decay_steps, staircase))


@given(init=rates, total=lengths, end=st.floats(0.0, 10.0).map(f32), power=st.floats(0.0, 4.0).map(f32))
def test_polynomial_decay_matches_closed_form(init, total, end, power):
  s = S.polynomial_decay(init, total, end, power)
  # atol scales with |init - end|: (1 - t/T) is rounded once in float32 before the power.
  close(CALL(s, STEPS), table(ref_polynomial, init, total, end, power), atol=1e-6 * abs(init - end) + ATOL)


@given(init=st.floats(0.0, 10.0).map(f32), end=st.floats(0.0, 10.0).map(f32), total=lengths)
def test_linear_matches_closed_form(init, end, total):
  close(
    CALL(S.linear(init, end, total), STEPS),
    table(ref_linear, init, end, total),
    atol=1e-6 * max(init, end) + ATOL,
  )


@given(
  boundaries=st.lists(st.integers(0, 420), min_size=0, max_size=4).map(sorted),
  data=st.data(),
)
def test_piecewise_constant_matches_keras_rule(boundaries, data):
  values = data.draw(st.lists(rates, min_size=len(boundaries) + 1, max_size=len(boundaries) + 1))
  close(
    CALL(S.piecewise_constant(boundaries, values), STEPS),
    table(ref_piecewise, boundaries, values),
    rtol=0,
    atol=0,
  )


# ----------------------------------------------------------------------------------------------
# Semantics that a reader of the docs would check by hand.


def test_multistep_drops_at_the_milestone_and_duplicates_compound():
  s = S.multistep_decay(1.0, [5, 5, 10], gamma=0.5)
  close(s(jnp.array([0, 4, 5, 9, 10, 11])), [1.0, 1.0, 0.25, 0.25, 0.125, 0.125], rtol=0, atol=0)
  close(S.multistep_decay(1.0, [0], gamma=0.5)(0), 0.5, rtol=0, atol=0)  # as MultiStepLR's initial step
  close(S.multistep_decay(2.0, [], gamma=0.5)(STEPS), 2.0 * np.ones(STEPS.shape), rtol=0, atol=0)


def test_piecewise_boundary_step_keeps_the_old_value():
  s = S.piecewise_constant([10, 10, 20], [1.0, 0.5, 0.25, 0.125])
  close(s(jnp.array([0, 10, 11, 20, 21])), [1.0, 1.0, 0.25, 0.25, 0.125], rtol=0, atol=0)
  close(S.piecewise_constant([], [0.3])(STEPS), np.full(STEPS.shape, f32(0.3)), rtol=0, atol=0)


def test_linear_and_polynomial_are_exact_at_the_horizon_and_hold():
  for s, end in [
    (S.linear(0.7, 0.3, 97), 0.3),
    (S.polynomial_decay(0.7, 97, 0.3, 1.5), 0.3),
    (S.linear(0.1, 1.0, 3), 1.0),
  ]:
    out = np.asarray(
      s(jnp.array([97, 98, 10**6, 2**31 - 1]) if s.total_steps == 97 else jnp.array([3, 4, 5, 2**31 - 1]))
    )
    np.testing.assert_array_equal(out, np.float32(end))


def test_staircase_exponential_is_step_decay():
  a = S.exponential_decay(2.0, gamma=0.3, decay_steps=7, staircase=True)
  b = S.step_decay(2.0, step_size=7, gamma=0.3)
  np.testing.assert_array_equal(CALL(a, STEPS), CALL(b, STEPS))


def test_big_steps_are_finite_and_right():
  big = jnp.array([2**24 + 1, 2**30, 2**31 - 1], dtype=jnp.int32)
  assert np.all(np.asarray(S.exponential_decay(1.0, 0.9999)(big)) >= 0)
  close(S.step_decay(1.0, 2**30, 0.5)(big), [1.0, 0.5, 0.5], rtol=0, atol=0)
  # Integer steps are exact past 2**24, where float32 rounds 2**30 - 1 up to 2**30.
  edge = jnp.array([2**30 - 1, 2**30, 2**31 - 257, 2**31 - 256], dtype=jnp.int32)
  close(S.step_decay(1.0, 2**30, 0.5)(edge), [1.0, 0.5, 0.5, 0.5], rtol=0, atol=0)
  close(S.multistep_decay(1.0, [2**30, 2**31 - 256], 0.5)(edge), [1.0, 0.5, 0.5, 0.25], rtol=0, atol=0)
  close(
    S.piecewise_constant([2**30, 2**31 - 256], [1.0, 0.5, 0.25])(edge), [1.0, 1.0, 0.5, 0.5], rtol=0, atol=0
  )
  stairs = S.exponential_decay(1.0, 0.5, decay_steps=2**30 - 64, staircase=True)  # whole, float32-exact
  edge = jnp.array([2**30 - 65, 2**30 - 64, 2**31 - 129, 2**31 - 128], dtype=jnp.int32)
  close(stairs(edge), [1.0, 0.5, 0.5, 0.25], rtol=0, atol=0)
  # A fractional period > 512: k * 1000.5 = 2147483205 for k = 2146410.
  inv = S.inverse_time_decay(1.0, 1.0, decay_steps=1000.5, staircase=True)
  t = np.array([2147483204, 2147483205, 2147483206, 2**31 - 1])
  want = [np.float32(1) / np.float32(1 + math.floor(x / 1000.5)) for x in t]
  np.testing.assert_array_equal(inv(jnp.asarray(t, jnp.int32)), want)
  close(S.multistep_decay(1.0, [2**24, 2**30], 0.5)(big), [0.5, 0.25, 0.25], rtol=0, atol=0)
  close(
    S.inverse_time_decay(1.0, 1.0, 2**20)(big), [1 / (1 + b / 2**20) for b in (2**24 + 1, 2**30, 2**31 - 1)]
  )
  close(S.piecewise_constant([2**30], [1.0, 2.0])(big), [1.0, 1.0, 2.0], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# Properties.

DECAYS = {
  "step_decay": lambda d: S.step_decay(d["init"], d["n"], d["gamma"]),
  "multistep_decay": lambda d: S.multistep_decay(
    d["init"], [d["n"], 2 * d["n"], 2 * d["n"] + d["m"]], d["gamma"]
  ),
  "exponential_decay": lambda d: S.exponential_decay(d["init"], d["gamma"], d["m"], d["stairs"]),
  "inverse_time_decay": lambda d: S.inverse_time_decay(d["init"], d["rate"], d["m"], d["stairs"]),
  "polynomial_decay": lambda d: S.polynomial_decay(d["init"], d["n"], d["end"], d["power"]),
  "linear": lambda d: S.linear(d["init"], d["end"], d["n"]),
  "piecewise_constant": lambda d: S.piecewise_constant(
    [d["n"], 2 * d["n"]], [d["init"], d["end"], d["end"] / 2]
  ),
}

hyper = st.fixed_dictionaries(
  {
    "init": rates,
    "end": st.floats(0.0, 1.0).map(lambda x: f32(x * 0.01)),  # below every init: the decays decrease
    "n": lengths,
    "m": st.integers(1, 40),
    "gamma": gammas,
    "rate": st.floats(0.0, 3.0).map(f32),
    "power": st.floats(0.0, 4.0).map(f32),
    "stairs": st.booleans(),
  }
)


@pytest.mark.parametrize("name", sorted(DECAYS))
@given(d=hyper)
def test_bounded_and_non_increasing(name, d):
  s = DECAYS[name](d)
  out = np.asarray(CALL(s, STEPS), np.float64)
  assert np.all(out >= 0) and np.all(out <= max(d["init"], d["end"]) * (1 + 1e-6))
  assert np.all(np.diff(out) <= 1e-6 * d["init"]), np.diff(out).max()
  assert np.asarray(CALL(s, jnp.array([2**31 - 1]))) <= out[-1] * (1 + 1e-6)  # past the horizon: no rise


@pytest.mark.parametrize("name", ["exponential_decay", "inverse_time_decay", "polynomial_decay", "linear"])
@given(d=hyper)
def test_continuous_in_the_step(name, d):
  d = {**d, "stairs": False, "power": 1.0 + d["power"]}  # power >= 1: Lipschitz, so the bound below holds
  s = DECAYS[name](d)
  t = jnp.asarray(STEPS, jnp.float32)
  gap = np.abs(np.asarray(CALL(s, t + 1e-3)) - np.asarray(CALL(s, t)))
  slope = {"exponential_decay": -math.log(d["gamma"]) / d["m"], "inverse_time_decay": d["rate"] / d["m"]}.get(
    name
  )
  slope = (d["power"] / d["n"]) if slope is None else slope
  assert np.all(gap <= d["init"] * (slope * 1e-3 * 1.01 + 1e-6)), gap.max()


@pytest.mark.parametrize("name", sorted(DECAYS))
@given(ds=st.lists(hyper, min_size=3, max_size=3))
def test_vmap_over_a_batch_of_schedules_matches_a_loop(name, ds):
  ds = [{**d, "stairs": ds[0]["stairs"]} for d in ds]  # staircase is static: one value per batch
  batch = [DECAYS[name](d) for d in ds]
  stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]), *batch)
  got = jax.vmap(CALL, in_axes=(0, None))(stacked, STEPS)
  want = np.stack([np.asarray(s(STEPS)) for s in batch])  # eager, one by one
  close(got, want, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(DECAYS))
def test_jit_equals_eager_including_traced_construction(name):
  d = {"init": 0.8, "end": 0.01, "n": 37, "m": 9, "gamma": 0.7, "rate": 0.4, "power": 1.7, "stairs": True}
  nums = {k: v for k, v in d.items() if k != "stairs"}
  eager = DECAYS[name](d)(STEPS)
  traced = jax.jit(lambda nums: DECAYS[name]({**nums, "stairs": True})(STEPS))
  # milestones/boundaries built from traced n: ints stay ints under jit
  got = traced({k: jnp.asarray(v) for k, v in nums.items()})
  close(got, eager, rtol=2e-6, atol=1e-7)
  close(CALL(DECAYS[name](d), STEPS), eager, rtol=2e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# Validation: ValueError eagerly, NaN lane when traced.

BAD = [
  (S.step_decay, {"init_value": 1.0, "step_size": -3, "gamma": 0.5}, "step_size=-3"),
  (S.step_decay, {"init_value": 1.0, "step_size": 3, "gamma": 1.5}, "gamma=1.5"),
  (S.step_decay, {"init_value": 1.0, "step_size": 3, "gamma": 0.0}, "gamma=0.0"),
  (S.multistep_decay, {"init_value": 1.0, "milestones": [3, 2], "gamma": 0.5}, r"milestones=\[3, 2\]"),
  (S.multistep_decay, {"init_value": 1.0, "milestones": [-1, 2], "gamma": 0.5}, r"milestones=\[-1, 2\]"),
  (S.multistep_decay, {"init_value": 1.0, "milestones": [2, 3], "gamma": -0.5}, "gamma=-0.5"),
  (S.exponential_decay, {"init_value": 1.0, "gamma": 1.01}, "gamma=1.01"),
  (S.exponential_decay, {"init_value": 1.0, "gamma": 0.5, "decay_steps": -1}, "decay_steps=-1"),
  (S.inverse_time_decay, {"init_value": 1.0, "decay_rate": -0.1}, "decay_rate=-0.1"),
  (S.inverse_time_decay, {"init_value": 1.0, "decay_rate": 0.1, "decay_steps": 0.0}, "decay_steps=0.0"),
  (S.polynomial_decay, {"init_value": 1.0, "total_steps": -5}, "total_steps=-5"),
  (S.polynomial_decay, {"init_value": 1.0, "total_steps": 5, "power": -0.5}, "power=-0.5"),
  (S.linear, {"init_value": 1.0, "end_value": 0.0, "total_steps": 0}, "total_steps=0"),
  (S.piecewise_constant, {"boundaries": [5, 4], "values": [1.0, 2.0, 3.0]}, r"boundaries=\[5, 4\]"),
]


GOOD = {
  "step_size": 3,
  "gamma": 0.5,
  "milestones": [2, 3],
  "decay_steps": 2,
  "decay_rate": 0.1,
  "total_steps": 5,
  "power": 1.0,
  "boundaries": [4, 5],
}


@pytest.mark.parametrize("ctor,kwargs,match", BAD, ids=[m for _, _, m in BAD])
def test_bad_values_raise_eagerly_and_poison_traced_lanes(ctor, kwargs, match):
  name = ctor.__name__
  with pytest.raises(ValueError, match=rf"^{name}: .*{match}"):
    ctor(**kwargs)
  param = match.split("=")[0]
  bad = jnp.asarray(kwargs[param], jnp.float32)
  good = jnp.asarray(GOOD[param], jnp.float32)
  out = jax.vmap(lambda v: ctor(**{**kwargs, param: v})(STEPS))(jnp.stack([good, bad]))
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1]))


@pytest.mark.parametrize(
  "call,match",
  [
    (lambda: S.multistep_decay(1.0, [2.5, 4]), r"multistep_decay: `milestones` must be a whole number"),
    (lambda: S.multistep_decay(1.0, [[2, 4]]), r"multistep_decay: `milestones` must be a 1-D"),
    (lambda: S.multistep_decay(1.0, 30), r"multistep_decay: `milestones` must be a 1-D"),
    (lambda: S.piecewise_constant([1, 2], [1.0, 2.0]), r"piecewise_constant: `values` must have one more"),
    (lambda: S.piecewise_constant(3, [1.0, 2.0]), r"piecewise_constant: `boundaries` must be a 1-D"),
    (
      lambda: S.exponential_decay(1.0, 0.5, staircase="yes"),
      r"exponential_decay: `staircase` must be True or False",
    ),
    (
      lambda: S.inverse_time_decay(1.0, 0.5, staircase=1),
      r"inverse_time_decay: `staircase` must be True or False",
    ),
    (lambda: S.constant([1.0, 2.0]), r"constant: `value` must be a scalar"),
  ],
)
def test_structural_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_length_mismatch_raises_even_when_traced():
  with pytest.raises(ValueError, match="one more entry"):
    jax.jit(lambda b: S.piecewise_constant(b, jnp.ones(2))(3))(jnp.array([1.0, 2.0]))


def test_config_round_trip_keeps_staircase():
  s = S.exponential_decay(1.0, 0.5, 10, staircase=True)
  r = S.from_config(s.to_config())
  assert r.staircase is True
  np.testing.assert_array_equal(r(STEPS), s(STEPS))


def test_integer_arrays_past_int32_are_not_wrapped():
  # 2**40 as int64 would wrap to 0 in a 32-bit jnp array (dropping at step 0); it is never reached.
  t = jnp.array([0, 2**31 - 1], jnp.int32)
  for far in ([2**40], np.array([2**40], np.int64), np.array([2**40], np.uint64)):
    close(S.multistep_decay(1.0, far, 0.5)(t), [1.0, 1.0], rtol=0, atol=0)
    close(S.piecewise_constant(far, [1.0, 2.0])(t), [1.0, 1.0], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# Issue 15 options: exponential_decay(transition_begin, end_value), polynomial_decay(cycle),
# piecewise_interpolate. Peer parity (Optax, Keras) is in tests/parity/test_peer_schedules_b.py;
# here: independent closed forms, the defaults unchanged, validation and the NaN lane.


def ref_exponential_bounded(t, init, gamma, ds, begin, end, staircase):
  p = max(t - begin, 0) / ds
  r = init * gamma ** (math.floor(p) if staircase else p)
  if end is None:
    return r
  return max(r, end) if gamma < 1 else min(r, end)


def test_exponential_decay_begin_and_bounds_match_closed_form():
  for gamma, ds, begin, end, stairs in [
    (0.9, 7, 13, 0.2, False),
    (1.05, 3, 5, 2.0, True),
    (0.8, 2, 0, None, True),
  ]:
    s = S.exponential_decay(0.5, gamma, ds, stairs, transition_begin=begin, end_value=end)
    want = [ref_exponential_bounded(t, f32(0.5), f32(gamma), ds, begin, end, stairs) for t in STEPS]
    close(CALL(s, STEPS), want, rtol=RTOL, atol=ATOL)


def test_exponential_decay_defaults_hold_no_bound():
  s = S.exponential_decay(1.0, 0.97, 5)
  close(
    CALL(s, STEPS), [ref_exponential_bounded(t, 1.0, f32(0.97), 5, 0, None, False) for t in STEPS], rtol=RTOL
  )
  assert s.transition_begin == 0 and s.end_value is None
  assert s.to_config()["end_value"] is None and S.from_config(s.to_config()).end_value is None


def test_exponential_growth_toward_a_ceiling_never_overflows():
  s = S.exponential_decay(1e-3, 10.0, 1, end_value=1.0)
  t = jnp.array([0, 1, 2, 3, 50, 2**31 - 1])
  close(s(t), [1e-3, 1e-2, 1e-1, 1.0, 1.0, 1.0], rtol=1e-6)
  g = jax.grad(lambda i, e: S.exponential_decay(i, 10.0, 1, end_value=e)(t).sum(), argnums=(0, 1))(1e-3, 1.0)
  assert (
    np.all(np.isfinite(g)) and 2.5 <= float(g[1]) <= 3.0
  )  # steps 4, 50, 2**31-1 at the ceiling; 3 at it or a tie


def test_exponential_end_value_is_traceable_and_bad_lanes_are_nan():
  f = jax.jit(jax.vmap(lambda e, g: S.exponential_decay(1.0, g, 4, end_value=e)(STEPS)))
  out = np.asarray(f(jnp.array([0.1, 0.3, jnp.inf, 0.2]), jnp.array([0.9, 1.0, 0.9, 0.0])))
  close(out[0], [ref_exponential_bounded(t, 1.0, f32(0.9), 4, 0, f32(0.1), False) for t in STEPS], rtol=RTOL)
  close(out[1], np.full(len(STEPS), 0.3), rtol=1e-7)  # gamma == 1: a ceiling below init
  assert np.all(np.isnan(out[2:]))  # non-finite end_value, gamma = 0


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"gamma": 1.5}, r"`gamma` must be in \(0, 1\] without `end_value`"),
    ({"gamma": 1.5, "end_value": 2.0, "init_value": 0.0}, r"`init_value` must be > 0 when `gamma` > 1"),
    ({"gamma": 0.5, "transition_begin": -2}, r"`transition_begin` must be >= 0, got transition_begin=-2"),
    ({"gamma": 0.5, "transition_begin": 1.5}, r"`transition_begin` must be a whole number"),
    ({"gamma": 0.5, "end_value": float("nan")}, r"`end_value` must be finite"),
    ({"gamma": 0.5, "end_value": "0.1"}, r"`end_value` must be a number"),
  ],
)
def test_exponential_decay_option_errors(kwargs, match):
  with pytest.raises(ValueError, match=rf"^exponential_decay: {match}"):
    S.exponential_decay(**{"init_value": 1.0, **kwargs})


def ref_keras_polynomial_cycle(t, init, total, end, power):
  horizon = total * (1 if t == 0 else math.ceil(t / total))
  return end + (init - end) * (1 - t / horizon) ** power


def test_polynomial_cycle_closed_form_restarts_and_default_unchanged():
  s = S.polynomial_decay(1.0, 20, 0.1, 2.0, cycle=True)
  close(
    CALL(s, STEPS),
    [ref_keras_polynomial_cycle(t, 1.0, 20, f32(0.1), 2.0) for t in STEPS],
    rtol=RTOL,
    atol=ATOL,
  )
  assert float(s(20)) == float(s(40)) == f32(0.1) and float(s(21)) > float(s(20))
  plain = S.polynomial_decay(1.0, 20, 0.1, 2.0)
  assert plain.cycle is False and float(plain(21)) == f32(0.1)
  assert S.from_config(s.to_config()).cycle is True
  with pytest.raises(ValueError, match=r"^polynomial_decay: `cycle` must be True or False, got cycle='yes'"):
    S.polynomial_decay(1.0, 20, cycle="yes")


def ref_interpolate(t, init, bounds, scales, kind):
  levels = [init]
  for c in scales:
    levels.append(levels[-1] * c)
  edges = [0, *bounds]
  for i in range(len(bounds)):
    if edges[i] <= t < edges[i + 1]:
      pct = (t - edges[i]) / max(edges[i + 1] - edges[i], 1)
      a, b = levels[i], levels[i + 1]
      return a + (b - a) * pct if kind == "linear" else b + (a - b) * (1 + math.cos(math.pi * pct)) / 2
  return levels[-1]


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_piecewise_interpolate_matches_closed_form(kind):
  bounds, scales = [25, 100, 101, 300], [4.0, 0.1, 2.0, 0.0]
  s = S.piecewise_interpolate(0.5, bounds, scales, interpolate_type=kind)
  want = [ref_interpolate(t, 0.5, bounds, [f32(c) for c in scales], kind) for t in STEPS]
  close(CALL(s, STEPS), want, rtol=RTOL, atol=1e-6)
  assert s.to_config()["interpolate_type"] == kind
  np.testing.assert_array_equal(S.from_config(s.to_config())(STEPS), s(STEPS))


@pytest.mark.parametrize(
  "call,match",
  [
    (lambda: S.piecewise_interpolate(1.0, [1, 2], [0.5]), r"`scales` must have one entry per boundary"),
    (lambda: S.piecewise_interpolate(1.0, {1: 0.5}, [0.5]), r"`scales` must be omitted"),
    (lambda: S.piecewise_interpolate(1.0, [1, 2]), r"`scales` must be a sequence"),
    (lambda: S.piecewise_interpolate(1.0, 3, 0.5), r"`boundaries` must be a 1-D"),
    (lambda: S.piecewise_interpolate(1.0, [1], [-0.5]), r"`scales` must be >= 0"),
    (lambda: S.piecewise_interpolate(1.0, [1], [0.5], "cos"), r"`interpolate_type` must be one of"),
  ],
)
def test_piecewise_interpolate_errors(call, match):
  with pytest.raises(ValueError, match=rf"^piecewise_interpolate: {match}"):
    call()
