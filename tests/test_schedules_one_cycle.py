"""``one_cycle`` / ``one_cycle_momentum``: PyTorch's algorithm in plain Python, properties, validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lr_jax import schedules as S
from tests.helpers import f32

MAXN = 300
STEPS = np.arange(MAXN + 20)
EVAL = jax.jit(lambda s, t: s(t))  # one compile per (anneal, three_phase), shared by every example


def reference(t, n, pct, anneal, three_phase, points, final=None):
  """OneCycleLR.get_lr's phase walk in float64; ``points`` = (initial, peak, floor) or momenta.

  ``final`` (Optax's pct_final) moves the end of phase 2 from PyTorch's 2*pct*N - 2 to final*N - 2.
  """
  a, b, c = points
  if three_phase:
    phases = [(pct * n - 1, a, b), ((2 * pct if final is None else final) * n - 2, b, a), (n - 1, a, c)]
  else:
    phases = [(pct * n - 1, a, b), (n - 1, b, c)]
  t = min(t, n - 1)  # lr_jax holds the value at N - 1 (PyTorch raises past N)
  start = 0.0
  for i, (end, lo, hi) in enumerate(phases):
    if t <= end or i == len(phases) - 1:
      frac = (t - start) / (end - start)
      if anneal == "cos":
        return hi + (lo - hi) / 2.0 * (math.cos(math.pi * frac) + 1)
      return (hi - lo) * frac + lo
    start = end


hyper = st.fixed_dictionaries(
  {
    "peak": st.floats(1e-3, 10.0).map(f32),
    "n": st.integers(10, MAXN),
    "pct": st.floats(0.05, 0.95).map(f32),
    "anneal": st.sampled_from(["cos", "linear"]),
    "div": st.floats(1.5, 100.0).map(f32),
    "final_div": st.floats(1.5, 1e4).map(f32),
    "three": st.booleans(),
  }
).filter(lambda h: h["pct"] * h["n"] >= 2)  # PyTorch divides by zero when pct*N == 1


def build(h):
  return S.one_cycle(h["peak"], h["n"], h["pct"], h["anneal"], h["div"], h["final_div"], h["three"])


def build_m(h, base=0.85, top=0.95):
  return S.one_cycle_momentum(h["n"], h["pct"], h["anneal"], base, top, h["three"])


@given(hyper)
def test_rate_matches_pytorch_algorithm(h):
  initial = h["peak"] / h["div"]
  pts = (initial, h["peak"], initial / h["final_div"])
  want = [reference(t, h["n"], h["pct"], h["anneal"], h["three"], pts) for t in STEPS]
  got = np.asarray(EVAL(build(h), STEPS))
  # float32 phase ends (pct*N in float32): rates move by < 1e-5 relative.
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * h["peak"])


@given(hyper)
def test_momentum_matches_pytorch_algorithm(h):
  want = [reference(t, h["n"], h["pct"], h["anneal"], h["three"], (0.95, 0.85, 0.95)) for t in STEPS]
  got = np.asarray(EVAL(build_m(h), STEPS))
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@given(hyper)
def test_bounds_peak_monotone_phases_and_hold(h):
  lr = np.asarray(EVAL(build(h), STEPS))
  n, e1 = h["n"], h["pct"] * h["n"] - 1
  initial = h["peak"] / h["div"]
  floor = initial / h["final_div"]
  assert np.all(lr <= h["peak"] * (1 + 1e-6)) and np.all(lr >= floor * (1 - 1e-5))
  assert lr[0] == pytest.approx(initial, rel=1e-6)
  top = int(np.argmax(lr))
  assert abs(top - e1) <= 1  # the peak is at the first phase end, pct*N - 1
  tol = 1e-6 * h["peak"]
  assert np.all(np.diff(lr[: top + 1]) >= -tol)
  if not h["three"]:
    assert np.all(np.diff(lr[top:n]) <= tol)
    assert lr[n - 1] == pytest.approx(floor, rel=1e-4)
  np.testing.assert_array_equal(lr[n - 1 :], lr[n - 1])  # holds after the last step


@given(hyper)
def test_continuous_at_phase_boundaries(h):
  s, m = build(h), build_m(h)
  n, p = h["n"], h["pct"]
  ends = [p * n - 1, 2 * p * n - 2] if h["three"] else [p * n - 1]
  eps = 1e-3
  for e in ends:
    if not 0 < e < n - 1:
      continue
    a, c = np.asarray(EVAL(s, jnp.array([e - eps, e + eps], jnp.float32)))
    # steepest slope: (peak - floor) over the shortest phase, times pi/2 for cosine
    shortest = min(p * n - 1, n - 1 - e) if not h["three"] else min(p * n - 1, n - 1 - 2 * p * n + 2)
    slope = 2 * h["peak"] / max(shortest, 1e-3)
    assert abs(a - c) <= 2.5 * eps * slope + 1e-5 * h["peak"], (e, a, c)
    ma, mc = np.asarray(EVAL(m, jnp.array([e - eps, e + eps], jnp.float32)))
    assert abs(ma - mc) <= 2.5 * eps * 0.2 / max(shortest, 1e-3) + 1e-6


def test_three_phase_lr_and_momentum_shapes():
  lr = S.one_cycle(1.0, 100, pct_start=0.25, anneal="linear", div_factor=10.0, three_phase=True)
  m = S.one_cycle_momentum(100, pct_start=0.25, anneal="linear", three_phase=True)
  # peak at 24, back to initial at 48, floor at 99; momentum mirrors, then holds max in phase 3
  np.testing.assert_allclose(lr(jnp.array([0, 24, 48, 99])), [0.1, 1.0, 0.1, 1e-5], rtol=1e-5)
  np.testing.assert_allclose(m(jnp.array([0, 24, 48, 70, 99])), [0.95, 0.85, 0.95, 0.95, 0.95], rtol=1e-6)


def test_linear_momentum_mirrors_linear_rate():
  lr = S.one_cycle(2.0, 50, pct_start=0.4, anneal="linear", div_factor=4.0, final_div_factor=1.0)
  m = S.one_cycle_momentum(50, pct_start=0.4, anneal="linear", base_momentum=0.8, max_momentum=0.9)
  t = np.arange(50)
  up = (np.asarray(lr(t)) - 0.5) / 1.5  # 0 at initial, 1 at peak (floor == initial here)
  np.testing.assert_allclose((0.9 - np.asarray(m(t))) / 0.1, up, atol=2e-6)


def test_momentum_drives_optax_via_inject_hyperparams():
  m = S.one_cycle_momentum(20, pct_start=0.3)
  lr = S.one_cycle(0.1, 20, pct_start=0.3)
  opt = optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=m)
  params = jnp.zeros(2)
  state = opt.init(params)
  seen = []
  for _ in range(6):
    seen.append((float(state.hyperparams["learning_rate"]), float(state.hyperparams["momentum"])))
    _, state = opt.update(jnp.ones(2), state, params)
  np.testing.assert_allclose([x for x, _ in seen][1:], lr(np.arange(5)), rtol=1e-6)
  np.testing.assert_allclose([y for _, y in seen][1:], m(np.arange(5)), rtol=1e-6)


def test_vmap_over_pct_start_and_total_steps_matches_loop():
  pcts = jnp.array([0.1, 0.3, 0.6])
  ns = jnp.array([40, 100, 250])
  got = jax.jit(jax.vmap(lambda p, n: S.one_cycle(1.0, n, p, three_phase=True)(STEPS)))(pcts, ns)
  got_m = jax.jit(jax.vmap(lambda p, n: S.one_cycle_momentum(n, p)(STEPS)))(pcts, ns)
  for i in range(3):
    p, n = float(pcts[i]), int(ns[i])
    np.testing.assert_allclose(got[i], S.one_cycle(1.0, n, p, three_phase=True)(STEPS), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(got_m[i], S.one_cycle_momentum(n, p)(STEPS), rtol=2e-6, atol=1e-7)


def test_traced_invalid_lanes_are_nan():
  out = jax.jit(jax.vmap(lambda p, d: S.one_cycle(1.0, 100, p, div_factor=d)(STEPS)))(
    jnp.array([0.3, 1.0, 0.3, 0.0]), jnp.array([25.0, 25.0, -1.0, 25.0])
  )
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1:]))
  out = jax.jit(jax.vmap(lambda b: S.one_cycle_momentum(100, base_momentum=b)(STEPS)))(jnp.array([0.8, 1.5]))
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1]))


@pytest.mark.parametrize(
  "fn, kwargs, match",
  [
    (S.one_cycle, {"pct_start": 1.5}, r"one_cycle: `pct_start` must be in \(0, 1\), got pct_start=1.5"),
    (S.one_cycle, {"pct_start": 0}, r"one_cycle: `pct_start` must be in \(0, 1\), got pct_start=0"),
    (S.one_cycle, {"anneal": "cosine"}, r"one_cycle: `anneal` must be one of 'cos', 'linear'"),
    (S.one_cycle, {"three_phase": "yes"}, r"one_cycle: `three_phase` must be True or False"),
    (S.one_cycle, {"total_steps": -5}, r"one_cycle: `total_steps` must be > 0, got total_steps=-5"),
    (S.one_cycle, {"final_div_factor": 0.0}, r"one_cycle: `final_div_factor` must be > 0"),
    (S.one_cycle_momentum, {"max_momentum": 1.2}, r"one_cycle_momentum: `max_momentum` must be in \[0, 1\]"),
    (S.one_cycle_momentum, {"pct_start": None}, r"one_cycle_momentum: `pct_start` must be a number"),
  ],
)
def test_invalid_values_raise(fn, kwargs, match):
  base = {"peak_value": 1.0, "total_steps": 100} if fn is S.one_cycle else {"total_steps": 100}
  with pytest.raises(ValueError, match=match):
    fn(**{**base, **kwargs})


def test_config_round_trip_keeps_static_options():
  s = S.one_cycle(1.0, 100, 0.25, "linear", 10.0, 100.0, True)
  r = S.from_config(s.to_config())
  assert r.anneal == "linear" and r.three_phase is True
  np.testing.assert_array_equal(r(STEPS), s(STEPS))
  m = S.one_cycle_momentum(100, 0.25, "linear", 0.8, 0.9, True)
  np.testing.assert_array_equal(S.from_config(m.to_config())(STEPS), m(STEPS))


VMAPPED = jax.jit(
  jax.vmap(lambda pk, n, p, d, fd: S.one_cycle(pk, n, p, "cos", d, fd, True)(STEPS))
)  # one compile for every example below


@given(st.lists(hyper, min_size=3, max_size=3))
def test_vmap_over_every_hyperparameter_equals_loop(hs):
  cols = [jnp.array([h[k] for h in hs], jnp.float32) for k in ("peak", "n", "pct", "div", "final_div")]
  got = np.asarray(VMAPPED(*cols))
  for i, h in enumerate(hs):
    want = EVAL(S.one_cycle(h["peak"], h["n"], h["pct"], "cos", h["div"], h["final_div"], True), STEPS)
    np.testing.assert_allclose(got[i], want, rtol=2e-6, atol=1e-7 * h["peak"])


def test_pct_final_moves_the_end_of_phase_two():
  # three phases with phase ends p*N - 1, pct_final*N - 2, N - 1 (PyTorch's convention; the default
  # pct_final = 2 * pct_start is OneCycleLR's three-phase cycle, checked against the reference above)
  n, p, f = 100, 0.2, 0.7
  lr = np.asarray(EVAL(S.one_cycle(1.0, n, p, "linear", 10.0, 100.0, True, f), STEPS))
  ref = [reference(t, n, p, "linear", True, (0.1, 1.0, 0.001), final=f) for t in STEPS]
  np.testing.assert_allclose(lr, ref, rtol=1e-5, atol=1e-8)
  assert int(np.argmax(lr)) == 19 and abs(lr[68] - 0.1) < 1e-7
  m = np.asarray(EVAL(S.one_cycle_momentum(n, p, "linear", 0.8, 0.9, True, pct_final=f), STEPS))
  assert int(np.argmin(m)) == 19 and np.allclose(m[68:], 0.9, rtol=2e-7, atol=0)
  default = S.one_cycle(1.0, n, p, "linear", 10.0, 100.0, True)
  np.testing.assert_array_equal(
    default(STEPS), S.one_cycle(1.0, n, p, "linear", 10.0, 100.0, True, 2 * p)(STEPS)
  )
  s = S.one_cycle(1.0, n, p, three_phase=True, pct_final=f)
  assert (
    float(S.from_config(s.to_config()).pct_final) == f
    and S.one_cycle(1.0, n).to_config()["pct_final"] is None
  )


@pytest.mark.parametrize(
  "fn,kwargs,match",
  [
    (
      S.one_cycle,
      {"pct_final": 0.8},
      r"one_cycle: `pct_final` requires three_phase=True, got pct_final=0.8",
    ),
    (
      S.one_cycle,
      {"three_phase": True, "pct_final": 0.2},
      r"one_cycle: `pct_final` must be in \(pct_start, 1\)",
    ),
    (
      S.one_cycle_momentum,
      {"three_phase": True, "pct_final": 1.0},
      r"one_cycle_momentum: `pct_final` must be in",
    ),
    (S.one_cycle_momentum, {"three_phase": True, "pct_final": float("inf")}, r"`pct_final` must be finite"),
  ],
)
def test_pct_final_errors(fn, kwargs, match):
  args = (1.0, 100) if fn is S.one_cycle else (100,)
  with pytest.raises(ValueError, match=match):
    fn(*args, pct_start=0.3, **kwargs)
  out = jax.vmap(lambda v: fn(*args, pct_start=0.3, three_phase=True, pct_final=v)(STEPS))(
    jnp.array([0.7, 0.2, 1.0])
  )
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1:]))
