"""Constraints declared once; steps past int32; eager calls that do not retrace (issue 10 items 3, 5,
11, 13).

* Every value the eager constructor rejects gives NaN rates when the same schedule is built inside
  ``jax.jit`` with the hyperparameters as jit arguments; the registry of rejected values breaks every
  rule each schedule class declares (checked against the declarations, so a new rule needs a case).
* Integer steps beyond int32 (Python ints, NumPy int64/uint arrays, jnp int64 with x64) are held at
  2**31-1, never wrapped; a step that is not a number is a named ``ValueError``.
* An eager call compiles once per schedule structure and step type, then reuses the program.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_jax import schedules as S
from lr_jax.schedules import _base
from tests.helpers import SCHEDULE_CASES, SCHEDULE_REJECTED, build

NAMES = sorted(SCHEDULE_CASES)
STEPS = np.array([0, 1, 2, 5, 9, 10, 11, 30, 50, 99, 100, 101, 1000, 2**31 - 1], np.int32)
INT32_MAX = 2**31 - 1


def numeric(kwargs):
  return {
    k: v for k, v in kwargs.items() if not isinstance(v, (str, bool, S.Schedule, tuple)) and k != "schedules"
  }


def _non_finite(good, x):
  """``x`` in place of a scalar hyperparameter, or of the first entry of an array one."""
  if np.ndim(good) == 0:
    return x
  out = np.array(good, np.float64)
  out[0] = x
  return out.tolist()


def _rejected(name):
  """(override, parameter the error must name) for every rejected value of ``name``."""
  _, kwargs, _, bads = SCHEDULE_CASES[name]
  out = [(o, next(k for k in o if k in numeric(kwargs))) for o in SCHEDULE_REJECTED[name]]
  out += [({k: v}, k) for k, v in bads.items()]
  out += [({k: _non_finite(v, x)}, k) for k, v in numeric(kwargs).items() for x in (np.nan, np.inf, -np.inf)]
  return out


def test_every_schedule_has_rejected_values():
  assert set(SCHEDULE_REJECTED) == set(SCHEDULE_CASES)


@pytest.mark.parametrize("name", NAMES)
def test_rejected_values_cover_every_declared_rule(name):
  ctor, kwargs, _, _ = SCHEDULE_CASES[name]
  s = build(ctor, kwargs)
  fields = {f: getattr(s, f) for f in s.__dataclass_fields__}
  uncovered = []
  for rule in type(s).declared_rules():
    broken = False
    for override in SCHEDULE_REJECTED[name] + [{k: v} for k, v in SCHEDULE_CASES[name][3].items()]:
      values = {**fields, **{k: np.asarray(v) if isinstance(v, list) else v for k, v in override.items()}}
      if rule.applies(values) and not np.all(rule.holds(values)):
        broken = True
    if not broken:
      uncovered.append(rule.must)
  assert not uncovered, f"{name}: no rejected value in tests/helpers.py breaks {uncovered}"


@pytest.mark.parametrize("name", NAMES)
def test_every_value_rejected_eagerly_gives_nan_when_traced(name):
  ctor, kwargs, _, _ = SCHEDULE_CASES[name]
  nums = numeric(kwargs)
  programs = {}

  def program(static):
    key = tuple(sorted(static.items()))
    if key not in programs:  # one compile per static configuration, shared by every bad value
      programs[key] = jax.jit(lambda hp, steps: build(ctor, {**kwargs, **static, **hp})(steps))
    return programs[key]

  good = {k: jnp.asarray(v, jnp.float32) for k, v in nums.items()}
  assert np.all(np.isfinite(program({})(good, STEPS)))
  for override, param in _rejected(name):
    with pytest.raises(ValueError, match=rf"^{name}: .*`{param}`"):
      build(ctor, {**kwargs, **override})
    static = {k: v for k, v in override.items() if k not in nums}
    hp = {**good, **{k: jnp.asarray(v, jnp.float32) for k, v in override.items() if k in nums}}
    out = np.asarray(program(static)(hp, STEPS))
    assert np.all(np.isnan(out)), (name, override, out)


def test_reported_disagreements_are_gone():
  # issue 10 item 5: raised eagerly, but under jit gave 0.5 instead of NaN
  with pytest.raises(ValueError, match=r"multistep_decay: `milestones` must be a whole number"):
    S.multistep_decay(1.0, [10.5, 20])
  rate = jax.jit(lambda m: S.multistep_decay(1.0, m, 0.5)(15))(jnp.array([10.5, 20.0]))
  assert np.isnan(rate)
  # issue 10 item 11
  with pytest.raises(ValueError, match=r"cyclic: `base_value` must be <= `max_value`, got base_value=0.006"):
    S.cyclic(0.006, 0.001)
  rates = jax.vmap(lambda b: S.cyclic(b, 0.003, 10)(5))(jnp.array([0.001, 0.006]))
  assert np.isfinite(rates[0]) and np.isnan(rates[1])
  with pytest.raises(
    ValueError, match=r"one_cycle: `total_steps` must be a whole number, got total_steps=100.5"
  ):
    S.one_cycle(0.1, 100.5)
  rates = jax.vmap(lambda n: S.one_cycle(0.1, n)(5))(jnp.array([100.0, 100.5]))
  assert np.isfinite(rates[0]) and np.isnan(rates[1])


# ------------------------------------------------------------------------------ steps past int32


def test_reported_wraps_are_held_at_the_last_int32_step():
  e = S.exponential_decay(1.0, 0.99)
  last = float(e(INT32_MAX))
  assert float(e(np.int64(2**31))) == last  # was 1.0 (wrapped to -2**31, counted as 0)
  assert float(e(np.int64(2**32 + 5))) == last  # was the rate at step 5
  assert float(e(np.int64(2**32 + 5))) != float(e(5))
  assert float(e(2**31)) == last  # was JAX's OverflowError
  s = S.step_decay(1, 10, 0.5)
  np.testing.assert_array_equal(s(np.array([2**31, 2**40])), [s(INT32_MAX)] * 2)  # was [1, 1]
  assert float(s(INT32_MAX)) == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_every_schedule_holds_integer_steps_beyond_int32(name):
  ctor, kwargs, _, _ = SCHEDULE_CASES[name]
  s = build(ctor, kwargs)
  last = np.asarray(s(INT32_MAX))
  # every array below has 4 steps (one compile of the eager program per shape and dtype)
  big = [2**31, 2**32 + 5, 2**40, 2**63 - 1]
  np.testing.assert_array_equal(s(np.array(big, np.int64)), np.full(4, last))
  np.testing.assert_array_equal(s(np.array([2**31, 2**64 - 1, 2**32, 2**31 + 1], np.uint64)), np.full(4, last))
  np.testing.assert_array_equal(s(np.uint32(2**31 + 7)), last)
  for step in (2**31, 2**100):
    np.testing.assert_array_equal(s(step), last)
  np.testing.assert_array_equal(s([2**31, 2**100, 3, 2**40]), np.array([last, last, s(3), last]))
  np.testing.assert_array_equal(s(np.int64(-(2**40))), s(0))  # below 0 counts as 0
  # traced uint32 steps (x64 off) are held too
  np.testing.assert_array_equal(jax.jit(s)(jnp.array([2**31 + 5], jnp.uint32)), [last])


def test_int64_steps_with_x64_are_held_eagerly_and_traced():
  with jax.enable_x64(True):
    for name in ("exponential_decay", "step_decay", "cyclic", "cosine_warm_restarts", "join"):
      ctor, kwargs, _, _ = SCHEDULE_CASES[name]
      s = build(ctor, kwargs)
      last = np.asarray(s(INT32_MAX))
      steps = jnp.array([2**31, 2**32 + 5, 2**40], jnp.int64)
      assert steps.dtype == jnp.int64
      np.testing.assert_array_equal(s(steps), np.full(3, last), err_msg=name)
      np.testing.assert_array_equal(jax.jit(lambda t, s=s: s(t))(steps), np.full(3, last), err_msg=name)
      np.testing.assert_array_equal(s(np.int64(2**32 + 5)), last, err_msg=name)
      np.testing.assert_array_equal(s(2**31), last, err_msg=name)


@pytest.mark.parametrize("bad", ["5", b"5", True, np.array(["a"]), None, 1 + 2j, [1, "a"], object()])
def test_a_step_that_is_not_a_number_is_a_named_error(bad):
  with pytest.raises(ValueError, match=r"^cosine_annealing: `step` must be a number or an array of numbers"):
    S.cosine_annealing(1.0, 10)(bad)


# ------------------------------------------------------------------------------ eager calls


@pytest.mark.parametrize("name", NAMES)
def test_eager_calls_compile_once_per_structure_and_step_type(name):
  ctor, kwargs, alts, _ = SCHEDULE_CASES[name]
  s = build(ctor, kwargs)
  for step in (5, 5.0, np.int32(5), np.arange(4, dtype=np.int32)):  # compile (at most) once each
    s(step)
  traces = sum(_base.TRACES.values())
  for step in (6, 7, 1000, 6.5, 1e4, np.int32(9), np.arange(4, 8, dtype=np.int32), np.int64(11)):
    s(step)
  other = build(ctor, {**kwargs, **alts})  # new hyperparameter values, same structure: same program
  other(5)
  other(np.int32(2))
  assert sum(_base.TRACES.values()) == traces, name
  np.testing.assert_allclose(other(5), jax.jit(lambda t: other(t))(5), rtol=1e-6)


def test_bfloat16_and_float16_steps_and_hyperparameters_are_numbers():
  # Regression: bfloat16's NumPy kind is "V", so bfloat16 steps and hyperparameters were rejected as
  # "not a number". They compute in float32, as float16 ones do.
  ref = S.step_decay(1.0, 2, 0.5)
  for dt in (jnp.bfloat16, jnp.float16):
    s = S.step_decay(jnp.asarray(1.0, dt), jnp.asarray(2, dt), jnp.asarray(0.5, dt))
    assert s.dtype == jnp.float32
    for step in (jnp.asarray(3, dt), jnp.arange(6).astype(dt)):
      np.testing.assert_array_equal(s(step), ref(np.asarray(step, np.float32)))
      np.testing.assert_array_equal(ref(step), ref(np.asarray(step, np.float32)))
    np.testing.assert_array_equal(S.per_epoch(ref, jnp.asarray(3, dt))(7), ref(2))


def test_a_traced_complex_hyperparameter_is_a_named_error():
  # Regression: ``number`` let every tracer through, so a complex hyperparameter inside jit was silently
  # cast (step_decay(1j, 2) gave 0.0). A tracer's dtype is static, so this raises at trace time.
  with pytest.raises(ValueError, match=r"^step_decay: `init_value` must be a real number"):
    jax.jit(lambda v: S.step_decay(v, 2)(3))(1j)
  with pytest.raises(ValueError, match=r"^per_epoch: `steps_per_epoch` must be a real number"):
    jax.jit(lambda v: S.per_epoch(S.constant(1.0), v)(3))(2 + 0j)
  with pytest.raises(ValueError, match=r"^constant: `value` must be a real number"):
    jax.jit(lambda v: (S.constant(1.0) * v)(3))(2 + 0j)
