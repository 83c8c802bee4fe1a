"""``warmup``, ``inverse_sqrt``, ``warmup_stable_decay``: closed forms, HF transformers' formulas, properties."""

import json
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

STEPS = np.arange(400)
EVAL = jax.jit(lambda s, t: s(t))  # shared compile cache: one entry per tree structure


# --- HF transformers' LambdaLR factors (transformers/optimization.py), rewritten in plain Python ---


def hf_inverse_sqrt(t, num_warmup_steps, timescale=None):
  if timescale is None:
    timescale = num_warmup_steps or 10_000
  if t < num_warmup_steps:
    return float(t) / float(max(1, num_warmup_steps))
  shift = timescale - num_warmup_steps
  return 1.0 / math.sqrt((t + shift) / timescale)


def hf_wsd(t, num_warmup_steps, num_stable_steps, num_decay_steps, decay_type, min_lr_ratio, num_cycles=0.5):
  if t < num_warmup_steps:
    progress = float(t) / float(max(1, num_warmup_steps))
    return max(0.0, progress * (1.0 - min_lr_ratio) + min_lr_ratio)
  if t < num_warmup_steps + num_stable_steps:
    return 1.0
  if t < num_warmup_steps + num_stable_steps + num_decay_steps:
    progress = float(t - num_warmup_steps - num_stable_steps) / float(max(1, num_decay_steps))
    if decay_type == "linear":
      factor = 1.0 - progress
    elif decay_type == "cosine":
      factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    else:  # "1-sqrt"
      factor = 1.0 - math.sqrt(progress)
    return max(0.0, factor * (1.0 - min_lr_ratio) + min_lr_ratio)
  return min_lr_ratio


@given(st.floats(1e-4, 10.0).map(f32), st.integers(1, 300))
def test_inverse_sqrt_matches_hf(peak, w):
  got = np.asarray(EVAL(S.inverse_sqrt(peak, w), STEPS))
  want = peak * np.array([hf_inverse_sqrt(int(t), w) for t in STEPS])
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8 * peak)


def test_inverse_sqrt_without_warmup_and_fractional_warmup():
  # W = 0: no warm-up, timescale 1 step (HF would switch to timescale=10_000: a documented difference).
  np.testing.assert_allclose(
    S.inverse_sqrt(2.0, 0)(jnp.array([0, 1, 4, 100])), [2.0, 2.0, 1.0, 0.2], rtol=1e-6
  )
  # 0 < W < 1: ramp to peak at W, hold until step 1, then peak / sqrt(t); continuous.
  s = S.inverse_sqrt(1.0, 0.5)
  np.testing.assert_allclose(
    s(jnp.array([0.0, 0.25, 0.5, 0.75, 1.0, 4.0])), [0, 0.5, 1, 1, 1, 0.5], rtol=1e-6
  )


@given(st.integers(1, 200))
def test_inverse_sqrt_is_continuous_and_peaks_at_warmup_end(w):
  s = S.inverse_sqrt(1.0, w)
  lr = np.asarray(EVAL(s, STEPS))
  assert int(np.argmax(lr)) == w and lr[w] == pytest.approx(1.0)
  assert np.all(np.diff(lr[: w + 1]) > 0) and np.all(np.diff(lr[w:]) < 0)
  a, c = np.asarray(EVAL(s, jnp.array([w - 1e-3, w + 1e-3], jnp.float32)))
  assert abs(a - c) < 3e-3 / w


wsd_hyper = st.fixed_dictionaries(
  {
    "peak": st.floats(1e-3, 10.0).map(f32),
    "warm": st.integers(0, 80),
    "stable": st.integers(0, 100),
    "dec": st.integers(1, 150),
    "ratio": st.sampled_from([0.0, 0.01, 0.1, 0.5]),
    "decay": st.sampled_from(["linear", "cosine", "1-sqrt"]),
  }
)


def build_wsd(h):
  total = h["warm"] + h["stable"] + h["dec"]
  return S.warmup_stable_decay(h["peak"], total, h["warm"], h["dec"], f32(h["ratio"] * h["peak"]), h["decay"])


@given(wsd_hyper)
def test_warmup_stable_decay_matches_hf(h):
  got = np.asarray(EVAL(build_wsd(h), STEPS))
  ratio = f32(h["ratio"] * h["peak"]) / h["peak"]
  want = h["peak"] * np.array(
    [hf_wsd(int(t), h["warm"], h["stable"], h["dec"], h["decay"], ratio) for t in STEPS]
  )
  # HF's warm-up starts at min_lr (= end_value); lr_jax's starts at 0 (documented): the same when ratio == 0.
  ramp = STEPS < h["warm"]
  want[ramp] = h["peak"] * STEPS[ramp] / h["warm"]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * h["peak"])
  if h["ratio"] == 0.0:
    hf = h["peak"] * np.array(
      [hf_wsd(int(t), h["warm"], h["stable"], h["dec"], h["decay"], 0.0) for t in STEPS]
    )
    np.testing.assert_allclose(got, hf, rtol=1e-5, atol=1e-7 * h["peak"])


@given(wsd_hyper)
def test_warmup_stable_decay_bounds_monotone_and_continuous(h):
  s = build_wsd(h)
  lr = np.asarray(EVAL(s, STEPS))
  w, n = h["warm"], h["warm"] + h["stable"] + h["dec"]
  end = f32(h["ratio"] * h["peak"])
  tol = 1e-6 * h["peak"]
  assert np.all(lr >= -tol) and np.all(lr <= h["peak"] + tol)
  assert np.all(np.diff(lr[: w + 1]) >= -tol) and np.all(np.diff(lr[w:]) <= tol)
  np.testing.assert_allclose(lr[w : n - h["dec"] + 1], h["peak"], rtol=1e-6)
  np.testing.assert_allclose(lr[n:], end, rtol=1e-6, atol=tol)
  # continuity at the phase boundaries, probed with float steps
  steep = h["peak"] / min(w or np.inf, h["dec"])
  bound = 2.5e-3 * steep + 1e-5 * h["peak"]
  if h["decay"] == "1-sqrt":  # 1 - sqrt(q) is continuous but not Lipschitz at q = 0
    bound += h["peak"] * math.sqrt(2e-3 / h["dec"])
  for b in {w, n - h["dec"], n} - {0}:
    a, c = np.asarray(EVAL(s, jnp.array([b - 1e-3, b + 1e-3], jnp.float32)))
    assert abs(a - c) <= bound, (b, a, c)


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"decay": "exp"}, r"warmup_stable_decay: `decay` must be one of 'linear', 'cosine', '1-sqrt'"),
    (
      {"warmup_steps": 60, "decay_steps": 50},
      r"`warmup_steps \+ decay_steps` must be <= `total_steps`, got warmup_steps=60, decay_steps=50, total_steps=100",
    ),
    ({"decay_steps": 0}, r"warmup_stable_decay: `decay_steps` must be > 0, got decay_steps=0"),
    ({"warmup_steps": -1}, r"warmup_stable_decay: `warmup_steps` must be >= 0, got warmup_steps=-1"),
  ],
)
def test_warmup_stable_decay_invalid(kwargs, match):
  with pytest.raises(ValueError, match=match):
    S.warmup_stable_decay(
      **{"peak_value": 1.0, "total_steps": 100, "warmup_steps": 10, "decay_steps": 20, **kwargs}
    )


def test_warmup_stable_decay_traced_invalid_lane_is_nan():
  out = jax.jit(jax.vmap(lambda d: S.warmup_stable_decay(1.0, 100, 10, d)(STEPS)))(jnp.array([20, 95, 0]))
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1:]))


def ref_wsd_ramp(t, w, init, peak, kind):
  """The warm-up of WSD from ``init`` to ``peak`` (HF's warmup_type shapes, written from its docs)."""
  p = t / w
  h = {"linear": p, "cosine": (1 - math.cos(math.pi * p)) / 2, "1-sqrt": 1 - math.sqrt(1 - p)}[kind]
  return init + (peak - init) * h


@pytest.mark.parametrize("kind", ["linear", "cosine", "1-sqrt"])
def test_warmup_stable_decay_warmup_types_and_init_value(kind):
  s = S.warmup_stable_decay(2.0, 100, 16, 30, 0.1, "cosine", warmup=kind, init_value=0.5)
  lr = np.asarray(EVAL(s, STEPS))
  want = [ref_wsd_ramp(t, 16, 0.5, 2.0, kind) for t in range(16)]
  np.testing.assert_allclose(lr[:16], want, rtol=1e-6)
  assert lr[0] == 0.5 and lr[16] == 2.0 and np.all(np.diff(lr[:17]) > 0)
  np.testing.assert_allclose(
    lr[70:], np.asarray(EVAL(S.warmup_stable_decay(2.0, 100, 16, 30, 0.1, "cosine"), STEPS))[70:]
  )
  r = S.from_config(json.loads(json.dumps(s.to_config())))
  assert r.warmup == kind and float(r.init_value) == 0.5


def test_warmup_stable_decay_min_lr_ratio_sets_both_ends():
  s = S.warmup_stable_decay(2.0, 100, 10, 20, decay="linear", min_lr_ratio=0.25)
  assert float(s.init_value) == float(s.end_value) == 0.5
  assert float(s(0)) == 0.5 and float(s(500)) == 0.5
  for kw in ({"end_value": 0.1}, {"init_value": 0.2}):
    with pytest.raises(
      ValueError, match=r"^warmup_stable_decay: `min_lr_ratio` sets `init_value` and `end_value`"
    ):
      S.warmup_stable_decay(2.0, 100, 10, 20, min_lr_ratio=0.25, **kw)
  with pytest.raises(ValueError, match=r"^warmup_stable_decay: `min_lr_ratio` must be a number"):
    S.warmup_stable_decay(2.0, 100, 10, 20, min_lr_ratio="0.1")
  with pytest.raises(
    ValueError, match=r"^warmup_stable_decay: `warmup` must be one of 'linear', 'cosine', '1-sqrt'"
  ):
    S.warmup_stable_decay(2.0, 100, 10, 20, warmup="exp")
  # traced init_value: vmap matches a loop; a NaN init_value gives a NaN lane
  inits = jnp.array([0.0, 0.3, jnp.nan])
  out = np.asarray(
    jax.jit(
      jax.vmap(lambda i: S.warmup_stable_decay(1.0, 100, 10, 20, init_value=i, warmup="cosine")(STEPS))
    )(inits)
  )
  for k in range(2):
    np.testing.assert_allclose(
      out[k],
      S.warmup_stable_decay(1.0, 100, 10, 20, init_value=float(inits[k]), warmup="cosine")(STEPS),
      rtol=1e-6,
    )
  assert np.all(np.isnan(out[2]))


# --- warmup(schedule, ...) ---

warm_hyper = st.fixed_dictionaries(
  {
    "base": st.floats(1e-3, 10.0).map(f32),
    "total": st.integers(1, 200),
    "end_frac": st.floats(0.0, 0.9),
    "w": st.integers(0, 150),
    "init_frac": st.floats(0.0, 1.0),
  }
)


@given(warm_hyper)
def test_warmup_linear_closed_form(h):
  inner = S.cosine_annealing(h["base"], h["total"], f32(h["end_frac"] * h["base"]))
  init = f32(h["init_frac"] * h["base"])
  got = np.asarray(EVAL(S.warmup(inner, h["w"], init), STEPS))
  t = STEPS.astype(np.float64)
  after = np.asarray(inner(np.maximum(STEPS - h["w"], 0)), np.float64)
  w = max(h["w"], 1)
  want = np.where(t < h["w"], init + (h["base"] - init) * t / w, after)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7 * h["base"])
  if h["w"] > 0:  # continuous: the ramp ends where the inner schedule starts
    assert got[h["w"]] == pytest.approx(h["base"], rel=1e-6)


@given(st.floats(1e-4, 0.5), st.integers(1, 100))
def test_warmup_exponential_is_geometric(init_frac, w):
  inner = S.cosine_annealing(2.0, 300)
  init = f32(init_frac * 2.0)
  lr = np.asarray(EVAL(S.warmup(inner, w, init, mode="exponential"), STEPS)).astype(np.float64)
  np.testing.assert_allclose(lr[: w + 1], init * (2.0 / init) ** (np.arange(w + 1) / w), rtol=1e-5)
  ratios = lr[1 : w + 1] / lr[:w]
  np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)


def test_warmup_zero_steps_is_identity_and_wraps_plain_callables():
  inner = S.cosine_annealing(1.0, 50, 0.1)
  np.testing.assert_array_equal(S.warmup(inner, 0)(STEPS), inner(STEPS))
  with jax.numpy_dtype_promotion("standard"):  # Optax's own schedules need standard promotion
    ox = optax.cosine_decay_schedule(1.0, 50, alpha=0.1)
    got = S.warmup(ox, 10, 0.0)(STEPS)
  want = np.where(STEPS < 10, STEPS / 10.0, [float(ox(max(t - 10, 0))) for t in STEPS])
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  with pytest.raises(TypeError, match="only lr_jax schedules serialize"):
    S.warmup(ox, 10).to_config()


def test_warmup_nested_config_round_trips():
  s = S.warmup(S.multiply(S.cyclic(0.1, 1.0, 5), S.cosine_annealing(1.0, 200)), 7, 0.01, mode="exponential")
  cfg = json.loads(json.dumps(s.to_config()))
  assert cfg["schedule"]["name"] == "multiply" and cfg["schedule"]["schedules"][0]["name"] == "cyclic"
  np.testing.assert_array_equal(S.from_config(cfg)(STEPS), s(STEPS))


def test_warmup_vmap_over_steps_and_inner_hyperparameters():
  ws = jnp.array([0, 5, 40])
  peaks = jnp.array([0.5, 1.0, 2.0])
  got = jax.jit(jax.vmap(lambda w, p: S.warmup(S.cosine_annealing(p, 100), w, 0.01)(STEPS)))(ws, peaks)
  for i in range(3):
    want = S.warmup(S.cosine_annealing(float(peaks[i]), 100), int(ws[i]), 0.01)(STEPS)
    np.testing.assert_allclose(got[i], want, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (
      {"mode": "exponential"},
      r'warmup: `init_value` must be > 0 with mode="exponential", got init_value=0.0',
    ),
    ({"mode": "cosine"}, r"warmup: `mode` must be one of 'linear', 'exponential', got mode='cosine'"),
    ({"warmup_steps": -2}, r"warmup: `warmup_steps` must be >= 0, got warmup_steps=-2"),
    ({"schedule": 0.1}, r"warmup: `schedule` must be a schedule"),
  ],
)
def test_warmup_invalid(kwargs, match):
  with pytest.raises(ValueError, match=match):
    S.warmup(**{"schedule": S.cosine_annealing(1.0, 10), "warmup_steps": 5, **kwargs})


def test_warmup_traced_invalid_lane_is_nan():
  inner = S.cosine_annealing(1.0, 100)
  out = jax.jit(jax.vmap(lambda i: S.warmup(inner, 10, i, mode="exponential")(STEPS)))(jnp.array([0.1, 0.0]))
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1]))
