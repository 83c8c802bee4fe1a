"""``noisy``: timm's learning-rate noise as a pure function of (seed, step)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_jax import schedules as S
from tests.helpers import close

N = 4000
T = np.arange(N)
CALL = jax.jit(lambda s, t: s(t))
BASE = S.cosine_annealing(1.0, N, 0.1)


def truncnorm_std(a):
  """The std of N(0, 1) conditioned on |z| < a (closed form)."""
  phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
  mass = math.erf(a / math.sqrt(2))
  return math.sqrt(1 - 2 * a * phi / mass)


def rel_noise(s, steps=T):
  return np.asarray(CALL(s, steps), np.float64) / np.asarray(CALL(BASE, steps), np.float64) - 1


def test_same_step_same_rate_eager_jit_and_resumed():
  s = S.noisy(BASE, seed=7)
  full = np.asarray(CALL(s, T))
  np.testing.assert_array_equal(np.asarray(s(T[1234:1300])), full[1234:1300])  # resume mid-run: exact
  np.testing.assert_array_equal(np.array([float(s(t)) for t in (5, 999)]), full[[5, 999]])
  np.testing.assert_array_equal(np.asarray(s(T.reshape(40, 100))).ravel(), full)
  np.testing.assert_array_equal(np.asarray(S.from_config(s.to_config())(T)), full)
  assert float(s(4.5)) / float(BASE(4.5)) == pytest.approx(float(s(4)) / float(BASE(4)), rel=1e-6)  # floor(t)


def test_seeds_give_independent_noise_and_vmap_over_seeds_matches_a_loop():
  a, b = rel_noise(S.noisy(BASE, seed=1)), rel_noise(S.noisy(BASE, seed=2))
  assert abs(np.corrcoef(a, b)[0, 1]) < 0.06
  assert abs(np.corrcoef(a[1:], a[:-1])[0, 1]) < 0.06  # and across steps
  got = jax.jit(jax.vmap(lambda sd: S.noisy(BASE, seed=sd)(T[:50])))(jnp.array([1, 2, 3]))
  for i, sd in enumerate((1, 2, 3)):
    close(got[i], S.noisy(BASE, seed=sd)(T[:50]), rtol=1e-6)


@pytest.mark.parametrize("pct,std", [(0.67, 1.0), (0.2, 1.0), (0.5, 0.25)])
def test_normal_noise_is_a_truncated_normal(pct, std):
  n = rel_noise(S.noisy(BASE, seed=3, noise_pct=pct, noise_std=std))
  assert np.abs(n).max() < pct * (1 + 1e-5)
  want = std * truncnorm_std(pct / std)
  assert abs(n.std() - want) < 0.05 * want
  assert abs(n.mean()) < 4 * want / math.sqrt(N)


def test_uniform_noise_and_the_range():
  s = S.noisy(BASE, seed=0, noise_range=(100, 3000), noise_pct=0.3, noise_type="uniform")
  n = rel_noise(s)
  np.testing.assert_array_equal(np.asarray(s(T[:100])), np.asarray(BASE(T[:100])))  # outside: exact
  np.testing.assert_array_equal(np.asarray(s(T[3000:])), np.asarray(BASE(T[3000:])))
  inside = n[100:3000]
  assert np.abs(inside).max() <= 0.3 * (1 + 1e-5)
  assert abs(inside.std() - 0.3 / math.sqrt(3)) < 0.01  # Uniform[-p, p): std p / sqrt(3)
  start_only = S.noisy(BASE, seed=0, noise_range=50)  # timm's scalar noise_range_t: from 50 on
  assert np.all(rel_noise(start_only)[:50] == 0) and np.all(rel_noise(start_only)[50:] != 0)
  assert rel_noise(S.noisy(BASE, seed=0), np.array([2**31 - 1]))[0] != 0  # no end: to the last step


def test_bad_values():
  with pytest.raises(ValueError, match=r"noisy: `noise_type` must be one of"):
    S.noisy(BASE, noise_type="gauss")
  with pytest.raises(ValueError, match=r"noisy: `noise_range` must be \(start, end\)"):
    S.noisy(BASE, noise_range=(1, 2, 3))
  with pytest.raises(ValueError, match=r"noisy: `noise_pct` must be > 0, got noise_pct=0"):
    S.noisy(BASE, noise_pct=0)
  out = jax.jit(jax.vmap(lambda p: S.noisy(BASE, noise_pct=p)(T[:10])))(jnp.array([0.5, -0.5]))
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1]))
