"""``cyclic``: closed form (PyTorch's CyclicLR formula in plain Python), properties, validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lr_jax import schedules as S
from tests.helpers import f32

STEPS = np.arange(400)
EVAL = jax.jit(lambda s, t: s(t))  # one compile per mode, shared by every example


def torch_formula(t, base, peak, up, down, mode, gamma):
  """CyclicLR.get_lr as documented by PyTorch (cycle counted from 1, x in [0, 1])."""
  total = up + down
  ratio = up / total
  cycle = math.floor(1 + t / total)
  x = 1.0 + t / total - cycle
  scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
  if mode == "triangular":
    f = 1.0
  elif mode == "triangular2":
    f = 1 / (2.0 ** (cycle - 1))
  else:
    f = gamma**t
  return base + (peak - base) * scale * f


hyper = st.fixed_dictionaries(
  dict(
    base=st.floats(1e-4, 1.0).map(f32),
    peak=st.floats(1e-3, 10.0).map(f32),
    up=st.integers(1, 60),
    down=st.integers(1, 60),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.9, 1.0).map(f32),
  )
).map(lambda h: {**h, "base": min(h["base"], h["peak"]), "peak": max(h["base"], h["peak"])})  # base <= max


def build(h):
  return S.cyclic(h["base"], h["peak"], h["up"], h["down"], mode=h["mode"], gamma=h["gamma"])


@given(hyper)
def test_matches_pytorch_closed_form(h):
  got = np.asarray(EVAL(build(h), STEPS))
  want = np.array(
    [torch_formula(t, h["base"], h["peak"], h["up"], h["down"], h["mode"], h["gamma"]) for t in STEPS]
  )
  # float32 steps and gamma**t in float32: a few ulps.
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * max(h["base"], h["peak"]))


@given(hyper)
def test_bounds_and_turning_points(h):
  lr = np.asarray(EVAL(build(h), STEPS))
  lo, hi = min(h["base"], h["peak"]), max(h["base"], h["peak"])
  assert np.all(lr >= lo - 1e-7 * hi) and np.all(lr <= hi * (1 + 1e-6))
  total = h["up"] + h["down"]
  # Every cycle starts at base; the first cycle reaches max at step_size_up.
  np.testing.assert_allclose(lr[::total], h["base"], rtol=1e-6)
  if h["mode"] != "exp_range":
    np.testing.assert_allclose(lr[h["up"]], h["peak"], rtol=1e-6)


@given(hyper)
def test_monotone_halves_and_continuity(h):
  s = build(h)
  up, down = h["up"], h["down"]
  sign = 1.0 if h["peak"] >= h["base"] else -1.0
  lr = np.asarray(EVAL(s, STEPS))
  rise = sign * np.diff(lr[: up + 1])
  fall = sign * np.diff(lr[up : up + down + 1])
  tol = 1e-6 * max(h["base"], h["peak"])
  if h["mode"] != "exp_range":
    assert np.all(rise >= -tol) and np.all(fall <= tol)
  # Continuous across the turning point and the cycle end (float steps around them).
  eps = 1e-3
  for b in (up, up + down):
    a, c = np.asarray(EVAL(s, jnp.array([b - eps, b + eps], jnp.float32)))
    slope = abs(h["peak"] - h["base"]) / min(up, down)
    assert abs(a - c) <= 2.5 * eps * slope + 1e-6 * max(h["peak"], h["base"]), (b, a, c)


def test_triangular_is_periodic_and_triangular2_halves():
  tri = S.cyclic(0.5, 1.5, step_size_up=3, step_size_down=5)
  np.testing.assert_allclose(tri(STEPS[8:]), tri(STEPS[:-8]), rtol=1e-6)
  tri2 = S.cyclic(0.5, 1.5, step_size_up=3, step_size_down=5, mode="triangular2")
  amp = np.asarray(tri2(3 + 8 * np.arange(5))) - 0.5
  np.testing.assert_allclose(amp, [1.0, 0.5, 0.25, 0.125, 0.0625], rtol=1e-6)


def test_exp_range_decays_per_step_and_gamma_is_ignored_by_triangular():
  g = 0.95
  s = S.cyclic(0.0, 1.0, step_size_up=4, mode="exp_range", gamma=g)
  # At the peaks of cycles 1 and 2 (steps 4 and 12) the envelope is gamma**4 and gamma**12.
  np.testing.assert_allclose(s(jnp.array([4, 12])), [g**4, g**12], rtol=1e-6)
  a = S.cyclic(0.1, 1.0, 4, 6, mode="triangular", gamma=0.5)
  b = S.cyclic(0.1, 1.0, 4, 6, mode="triangular", gamma=1.0)
  np.testing.assert_array_equal(a(STEPS), b(STEPS))


def test_step_size_down_none_means_symmetric_and_zero_is_a_sawtooth():
  sym = S.cyclic(0.1, 1.0, step_size_up=7)
  np.testing.assert_array_equal(sym(STEPS), S.cyclic(0.1, 1.0, 7, 7)(STEPS))
  assert float(sym.step_size_down) == 7
  saw = S.cyclic(0.0, 1.0, step_size_up=4, step_size_down=0)
  np.testing.assert_allclose(saw(np.arange(9)), [0, 0.25, 0.5, 0.75, 0, 0.25, 0.5, 0.75, 0], atol=1e-7)
  assert S.cyclic(0.1, 1.0).step_size_up == 2000  # PyTorch's default


def test_vmap_over_gamma_and_step_sizes_matches_loop():
  gammas = jnp.array([0.9, 0.99, 1.0])
  ups = jnp.array([3, 10, 25])
  got = jax.jit(jax.vmap(lambda g, u: S.cyclic(0.1, 1.0, u, 2 * u, mode="exp_range", gamma=g)(STEPS)))(
    gammas, ups
  )
  for i in range(3):
    want = S.cyclic(0.1, 1.0, int(ups[i]), 2 * int(ups[i]), mode="exp_range", gamma=float(gammas[i]))(STEPS)
    np.testing.assert_allclose(got[i], want, rtol=2e-6, atol=1e-7)


def test_traced_invalid_lanes_are_nan():
  out = jax.jit(jax.vmap(lambda d, g: S.cyclic(0.1, 1.0, 5, d, mode="exp_range", gamma=g)(STEPS)))(
    jnp.array([5.0, -1.0, 5.0]), jnp.array([0.9, 0.9, -0.5])
  )
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1])) and np.all(np.isnan(out[2]))


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(mode="triangle"), r"cyclic: `mode` must be one of .*got mode='triangle'"),
    (dict(mode=["triangular"]), r"cyclic: `mode`"),
    (dict(gamma=0.0), r"cyclic: `gamma` must be > 0, got gamma=0.0"),
    (
      dict(scale_mode="step"),
      r"cyclic: `scale_mode` must be one of 'cycle', 'iterations', got scale_mode='step'",
    ),
    (dict(scale_fn=3.0), r"cyclic: `scale_fn` must be a schedule"),
    (dict(step_size_up=-2), r"cyclic: `step_size_up` must be > 0, got step_size_up=-2"),
    (dict(step_size_down=-1), r"cyclic: `step_size_down` must be >= 0, got step_size_down=-1"),
    (dict(base_value="a"), r"cyclic: `base_value` must be a number"),
    (dict(base_value=2.0), r"cyclic: `base_value` must be <= `max_value`, got base_value=2.0, max_value=1.0"),
  ],
)
def test_invalid_values_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    S.cyclic(**{**dict(base_value=0.1, max_value=1.0, step_size_up=5), **kwargs})


def test_strict_promotion_and_config():
  s = S.cyclic(0.1, 1.0, 3, 4, mode="triangular2")
  with jax.numpy_dtype_promotion("strict"):
    out = s(jnp.arange(10, dtype=jnp.int32))
  assert out.dtype == jnp.float32
  cfg = s.to_config()
  assert cfg == dict(
    name="cyclic",
    base_value=0.1,
    max_value=1.0,
    step_size_up=3,
    step_size_down=4,
    mode="triangular2",
    gamma=1.0,
  )
  np.testing.assert_array_equal(S.from_config(cfg)(STEPS), s(STEPS))


VMAPPED = jax.jit(jax.vmap(lambda b, m, u, d, g: S.cyclic(b, m, u, d, "exp_range", g)(STEPS)))


@given(st.lists(hyper, min_size=3, max_size=3))
def test_vmap_over_every_hyperparameter_equals_loop(hs):
  cols = [jnp.array([h[k] for h in hs], jnp.float32) for k in ("base", "peak", "up", "down", "gamma")]
  got = np.asarray(VMAPPED(*cols))
  for i, h in enumerate(hs):
    want = EVAL(
      S.cyclic(h["base"], h["peak"], float(h["up"]), float(h["down"]), "exp_range", h["gamma"]), STEPS
    )
    np.testing.assert_allclose(got[i], want, rtol=2e-6, atol=1e-7 * max(h["base"], h["peak"]))


def test_custom_scale_fn_is_a_pytree_child_with_a_config():
  s = S.cyclic(0.1, 1.0, 3, 5, scale_fn=S.exponential_decay(1.0, 0.9), scale_mode="iterations")
  t = np.arange(40)
  want = [0.1 + 0.9 * torch_formula(x, 0.0, 1.0, 3, 5, "triangular", 1.0) * 0.9**x for x in t]
  np.testing.assert_allclose(EVAL(s, t), want, rtol=1e-5, atol=1e-7)
  r = S.from_config(s.to_config())
  assert type(r) is type(s) and r.to_config()["scale_fn"]["name"] == "exponential_decay"
  np.testing.assert_array_equal(r(t), s(t))
  got = jax.jit(jax.vmap(lambda g: S.cyclic(0.1, 1.0, 3, 5, scale_fn=S.exponential_decay(1.0, g))(t)))(
    jnp.array([0.5, 0.9])
  )
  np.testing.assert_allclose(
    got[1], S.cyclic(0.1, 1.0, 3, 5, scale_fn=S.exponential_decay(1.0, 0.9))(t), rtol=2e-6
  )
