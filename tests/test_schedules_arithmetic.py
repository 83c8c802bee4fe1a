"""Arithmetic on schedule values (issue 11 section 5): ``0.5 * s``, ``s * t``, ``s + t``, ``s - t``,
``s / 2``, ``-s`` and ``multiply(s, 0.5)`` are schedules: pytrees, JSON configs, traceable, jit arguments.
Expected values are computed pointwise from the operands, in float64."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_jax import schedules as S

STEPS = np.array([0, 1, 5, 29, 30, 31, 99, 100, 1000], np.int32)
COS = S.cosine_annealing(1.0, 100, 0.01)
STEP = S.step_decay(0.5, 30, 0.5)


def f64(s):
  return np.asarray(s(STEPS), np.float64)


CASES = {
  "0.5 * s": (lambda: 0.5 * COS, lambda: 0.5 * f64(COS)),
  "s * 0.5": (lambda: COS * 0.5, lambda: 0.5 * f64(COS)),
  "np.float32(2) * s": (lambda: np.float32(2) * COS, lambda: 2 * f64(COS)),
  "s * t": (lambda: COS * STEP, lambda: f64(COS) * f64(STEP)),
  "s + t": (lambda: COS + STEP, lambda: f64(COS) + f64(STEP)),
  "s + 0.1": (lambda: COS + 0.1, lambda: f64(COS) + 0.1),
  "0.1 + s": (lambda: 0.1 + COS, lambda: f64(COS) + 0.1),
  "s - t": (lambda: COS - STEP, lambda: f64(COS) - f64(STEP)),
  "1 - s": (lambda: 1 - COS, lambda: 1 - f64(COS)),
  "s / 2": (lambda: COS / 2, lambda: f64(COS) / 2),
  "-s": (lambda: -COS, lambda: -f64(COS)),
  "multiply(s, 0.5)": (lambda: S.multiply(COS, 0.5), lambda: 0.5 * f64(COS)),
  "add(s, t, 0.1)": (lambda: S.add(COS, STEP, 0.1), lambda: f64(COS) + f64(STEP) + 0.1),
  "s * callable": (lambda: COS * (lambda t: 0.5), lambda: 0.5 * f64(COS)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_arithmetic_gives_schedule_values(case):
  make, want = CASES[case]
  s = make()
  assert isinstance(s, S.Schedule)
  np.testing.assert_allclose(s(STEPS), want(), rtol=2e-6, atol=1e-7)
  f = jax.jit(lambda s, t: s(t))
  np.testing.assert_allclose(f(s, STEPS), want(), rtol=2e-6, atol=1e-7)
  if case != "s * callable":  # a plain callable cannot be serialized
    r = S.from_config(json.loads(json.dumps(s.to_config())))
    np.testing.assert_array_equal(r(STEPS), s(STEPS))


def test_arithmetic_is_traceable_and_a_jit_argument_without_recompiling():
  f = jax.jit(lambda c, t: (c * COS + c)(t))
  np.testing.assert_allclose(f(0.5, STEPS), 0.5 * f64(COS) + 0.5, rtol=2e-6)
  np.testing.assert_allclose(f(0.25, STEPS), 0.25 * f64(COS) + 0.25, rtol=2e-6)
  assert f._cache_size() == 1
  rates = jax.vmap(lambda c: (COS / c)(10))(jnp.array([1.0, 2.0, 4.0]))
  np.testing.assert_allclose(rates, float(COS(10)) / np.array([1.0, 2.0, 4.0]), rtol=2e-6)
  g = jax.jit(lambda s, t: s(t))
  g(0.5 * COS, STEPS)
  g(0.25 * S.cosine_annealing(2.0, 50), STEPS)  # same structure, new values: the compiled program
  assert g._cache_size() == 1


def test_arithmetic_errors():
  with pytest.raises(ValueError, match=r"Schedule.__truediv__: `divisor` must be non-zero"):
    COS / 0
  with pytest.raises(ValueError, match=r"constant: `value` must be finite"):
    COS * float("nan")
  with pytest.raises(TypeError):
    COS * "a"
  with pytest.raises(TypeError):
    COS / STEP
  with pytest.raises(ValueError, match=r"multiply: `schedules` must be a scalar"):
    S.multiply(COS, np.array([1.0, 2.0]))


def test_a_traced_zero_or_infinite_divisor_gives_a_nan_lane():
  # Regression: ``s / d`` with a traced d = inf was ``s * 0`` (finite zeros), not the NaN lane that the
  # eager ValueError for a non-finite divisor stands for.
  rates = jax.vmap(lambda d: (COS / d)(10))(jnp.array([2.0, 0.0, jnp.inf, -jnp.inf]))
  np.testing.assert_allclose(rates[0], float(COS(10)) / 2, rtol=2e-6)
  assert np.isnan(np.asarray(rates[1:])).all()
