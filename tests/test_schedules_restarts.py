"""Issue 15 options against closed forms: restarts with decay / cycle limit / k-decay / warm-up,
``cooldown``, ``swalr``, and the HF cosine twins' argument handling (peer parity: tests/parity/
test_peer_schedules_a.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_jax import schedules as S
from tests.helpers import close, f32

T = np.arange(300)
CALL = jax.jit(lambda s, t: s(t))


@pytest.mark.parametrize("period,mult", [(10, 1), (7, 2), (5, 3)])
def test_restart_peaks_decay_geometrically_and_the_limit_holds_the_end(period, mult):
  s = S.cosine_warm_restarts(2.0, period, mult, 0.1, decay=0.5, cycle_limit=3)
  b = [0, period, period + period * mult, period + period * mult + period * mult**2]
  out = np.asarray(CALL(s, np.array(b + [b[3] + 1, b[3] + 1000])))
  np.testing.assert_array_equal(out[:3], np.float32([2.0, 1.0, 0.5]))  # init * decay**k at restart k
  np.testing.assert_array_equal(out[3:], np.float32(0.1))  # after 3 cycles: end_value, held
  mid = b[1] + period * mult / 2  # the middle of cycle 1: end + (peak_1 - end) / 2
  close(s(mid), 0.1 + (1.0 - 0.1) / 2, rtol=1e-6)


def test_k_decay_runs_the_cosine_on_a_power_of_the_position():
  for k in (0.5, 2.0, 3.0):
    s = S.cosine_warm_restarts(1.0, 20, k_decay=k)
    want = [(1 + math.cos(math.pi * ((t % 20) / 20) ** k)) / 2 for t in range(60)]
    close(CALL(s, np.arange(60)), want, atol=2e-7)
  hi = np.asarray(CALL(S.cosine_warm_restarts(1.0, 20, k_decay=2.0), np.arange(60)))[1:20]
  lo = np.asarray(CALL(S.cosine_warm_restarts(1.0, 20, k_decay=1.0), np.arange(60)))[1:20]
  assert np.all(hi > lo)  # k > 1 keeps the rate higher inside a cycle


def test_warmup_is_a_prefix_or_part_of_the_first_cycle():
  base = S.cosine_warm_restarts(1.0, 10, 2, 0.0, decay=0.8)
  pre = S.cosine_warm_restarts(
    1.0, 10, 2, 0.0, decay=0.8, warmup_steps=4, warmup_init=0.2, warmup_prefix=True
  )
  part = S.cosine_warm_restarts(1.0, 10, 2, 0.0, decay=0.8, warmup_steps=4, warmup_init=0.2)
  ramp = [0.2 + 0.8 * t / 4 for t in range(4)]
  p, q, b = (np.asarray(CALL(x, T)) for x in (pre, part, base))
  close(p[:4], ramp, atol=1e-7)
  close(q[:4], ramp, atol=1e-7)
  np.testing.assert_array_equal(p[4:], np.asarray(CALL(base, T - 4))[4:])  # cycles start after the warm-up
  np.testing.assert_array_equal(q[4:], b[4:])  # the cycles start at step 0
  big = np.array([2**31 - 5, 2**31 - 1], np.int32)  # the prefix shift stays exact for integer steps
  one = S.cosine_warm_restarts(1.0, 7, warmup_steps=3, warmup_prefix=True)
  close(one(big), [0.5 * (1 + math.cos(math.pi * ((int(x) - 3) % 7) / 7)) for x in big], rtol=1e-6)


def test_cycle_limit_none_and_zero_mean_no_limit_and_bad_values_raise():
  a, b = S.cosine_warm_restarts(1.0, 10, cycle_limit=None), S.cosine_warm_restarts(1.0, 10, cycle_limit=0)
  np.testing.assert_array_equal(CALL(a, T), CALL(b, T))
  assert float(CALL(a, T + 9700)[0]) == 1.0  # step 9700: still restarting
  with pytest.raises(ValueError, match=r"cosine_warm_restarts: `decay` must be in \(0, 1\], got decay=1\.5"):
    S.cosine_warm_restarts(1.0, 10, decay=1.5)
  with pytest.raises(ValueError, match=r"`cycle_limit` must be a whole number, got cycle_limit=1\.5"):
    S.cosine_warm_restarts(1.0, 10, cycle_limit=1.5)
  with pytest.raises(ValueError, match=r"`k_decay` must be > 0, got k_decay=0"):
    S.cosine_warm_restarts(1.0, 10, k_decay=0)
  with pytest.raises(ValueError, match=r"`warmup_prefix` must be True or False"):
    S.cosine_warm_restarts(1.0, 10, warmup_prefix="yes")


@pytest.mark.parametrize("shape", ["1-sqrt", "linear", "cosine"])
def test_cooldown_closed_form(shape):
  f = {
    "1-sqrt": lambda q: 1 - math.sqrt(q),
    "linear": lambda q: 1 - q,
    "cosine": lambda q: (1 + math.cos(math.pi * q)) / 2,
  }[shape]
  inner = S.cosine_annealing(1.0, 200, 0.1)
  s = S.cooldown(inner, start=120, length=50, shape=shape, end_value=0.01)
  s0 = 0.1 + 0.9 * (1 + math.cos(math.pi * 120 / 200)) / 2
  want = [float(inner(t)) if t < 120 else (0.01 + (s0 - 0.01) * f(min((t - 120) / 50, 1.0))) for t in T]
  out = np.asarray(CALL(s, T))
  close(out, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(out[T >= 170], np.float32(0.01))  # exact at the end, held
  np.testing.assert_array_equal(out[T < 120], np.asarray(inner(T[T < 120])))


@pytest.mark.parametrize("shape", ["1-sqrt", "linear", "cosine"])
def test_cooldown_of_a_warm_constant_is_warmup_stable_decay(shape):
  wsd = S.warmup_stable_decay(0.5, total_steps=100, warmup_steps=10, decay_steps=30, decay=shape)
  ours = S.cooldown(S.warmup(S.constant(0.5), 10), start=70, length=30, shape=shape)
  close(CALL(ours, T), CALL(wsd, T), rtol=1e-6, atol=1e-7)


def test_cooldown_bad_values():
  with pytest.raises(ValueError, match=r"cooldown: `shape` must be one of .*got shape='sqrt'"):
    S.cooldown(S.constant(1.0), 10, 5, shape="sqrt")
  with pytest.raises(ValueError, match=r"cooldown: `length` must be > 0, got length=0"):
    S.cooldown(S.constant(1.0), 10, 0)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_swalr_closed_form_and_zero_anneal(strategy):
  inner = S.step_decay(1.0, 20, 0.5)
  s = S.swalr(inner, swa_start=30, swa_lr=0.05, anneal_epochs=8, anneal_strategy=strategy)
  a = (lambda x: (1 - math.cos(math.pi * x)) / 2) if strategy == "cos" else (lambda x: x)
  want = [
    float(inner(t)) if t < 30 else 0.05 * a(min((t - 30) / 8, 1)) + 0.5 * (1 - a(min((t - 30) / 8, 1)))
    for t in T
  ]
  close(CALL(s, T), want, rtol=1e-6, atol=1e-7)
  z = S.swalr(inner, 30, 0.05, anneal_epochs=0)
  np.testing.assert_array_equal(z(T[T >= 30]), np.float32(0.05))


def test_hf_twins_take_min_lr_or_its_rate_not_both():
  a = S.cosine_with_min_lr(0.4, 100, 10, min_lr=0.04)
  b = S.cosine_with_min_lr(0.4, 100, 10, min_lr_rate=0.1)
  close(a(T), b(T), rtol=1e-6)
  assert float(a(100)) == f32(0.04) and float(a(500)) == f32(0.04)  # held past total_steps
  with pytest.raises(ValueError, match="cosine_with_min_lr: give at most one of `min_lr` and `min_lr_rate`"):
    S.cosine_with_min_lr(0.4, 100, min_lr=0.1, min_lr_rate=0.1)
  with pytest.raises(ValueError, match=r"cosine_with_restarts: `warmup_steps` must be < `total_steps`"):
    S.cosine_with_restarts(0.4, 100, 100)
  r = S.cosine_with_restarts(1.0, 100, 0, num_cycles=4)
  np.testing.assert_array_equal(r(np.array([0, 25, 50, 75, 100, 200])), np.float32([1, 1, 1, 1, 0, 0]))


def test_vmap_over_new_options_matches_a_loop():
  f = jax.jit(jax.vmap(lambda d, k, w: S.cosine_warm_restarts(1.0, 9, 2, 0.01, d, 4, k, w, 0.1, True)(T)))
  ds, ks, ws = jnp.array([0.5, 1.0, 0.9]), jnp.array([1.0, 2.0, 0.7]), jnp.array([0.0, 5.0, 3.0])
  got = np.asarray(f(ds, ks, ws))
  for i in range(3):
    want = S.cosine_warm_restarts(1.0, 9, 2, 0.01, float(ds[i]), 4, float(ks[i]), float(ws[i]), 0.1, True)(T)
    close(got[i], want, rtol=2e-6, atol=1e-7)
