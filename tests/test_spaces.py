"""lr_jax.spaces: dimensions, their validation, and the seeded samplers (random, scrambled Halton)."""

import math

import numpy as np
import pytest

from lr_jax import spaces

SPACE = {
  "lr": spaces.log_uniform(1e-4, 1e-1),
  "b1": spaces.uniform(0.8, 0.99),
  "steps": spaces.integer(10, 20),
  "width": spaces.integer(16, 512, log=True),
  "wd": spaces.categorical([0.0, 1e-4, 1e-2]),
  "eps": 1e-8,
}


@pytest.mark.parametrize("sampler", spaces.SAMPLERS)
def test_samples_lie_in_their_dimensions(sampler):
  cols = spaces.sample(SPACE, 500, seed=3, sampler=sampler)
  assert set(cols) == set(SPACE)
  assert all(len(v) == 500 for v in cols.values())
  assert np.all((cols["lr"] >= 1e-4) & (cols["lr"] <= 1e-1))
  assert np.all((cols["b1"] >= 0.8) & (cols["b1"] <= 0.99))
  assert cols["steps"].dtype.kind == "i" and set(cols["steps"].tolist()) == set(range(10, 21))
  assert np.all((cols["width"] >= 16) & (cols["width"] <= 512)) and cols["width"].dtype.kind == "i"
  assert set(cols["wd"].tolist()) == {0.0, 1e-4, 1e-2}
  assert cols["eps"].tolist() == [1e-8] * 500
  for name, dim in spaces.check_space(SPACE).items():
    assert np.all(dim.contains(cols[name])), name


@pytest.mark.parametrize("sampler", spaces.SAMPLERS)
def test_log_uniform_gives_each_decade_the_same_share(sampler):
  x = spaces.sample({"lr": spaces.log_uniform(1e-4, 1e-1)}, 3000, seed=0, sampler=sampler)["lr"]
  share = np.histogram(np.log10(x), bins=[-4, -3, -2, -1])[0] / len(x)
  assert np.allclose(share, 1 / 3, atol=0.03), share
  # a uniform draw over the same range would put ~90% in the top decade
  u = spaces.sample({"lr": spaces.uniform(1e-4, 1e-1)}, 3000, seed=0, sampler=sampler)["lr"]
  assert np.mean(u > 1e-2) > 0.85


def test_log_integer_is_log_uniform_over_whole_numbers():
  x = spaces.sample({"w": spaces.integer(1, 1000, log=True)}, 4000, seed=1)["w"]
  assert np.all(x == np.round(x)) and x.min() >= 1 and x.max() <= 1000
  share = np.histogram(x, bins=[1, 10, 100, 1001])[0] / len(x)
  # Optuna's rule: round(exp(U(log 0.5, log 1000.5))), so [a, b] has log((b + .5) / (a - .5)) / log(2001)
  want = [math.log((b + 0.5) / (a - 0.5)) / math.log(2001) for a, b in ((1, 9), (10, 99), (100, 1000))]
  assert np.allclose(share, want, atol=0.03), (share, want)


def test_halton_is_stratified_and_scrambled():
  # base 2 (first dimension): the first 2**m points fall one in each interval of width 2**-m
  u = spaces.halton(256, 3, seed=5)
  assert np.all((u >= 0) & (u < 1))
  assert np.array_equal(np.sort(np.floor(u[:, 0] * 256)), np.arange(256))
  # base 3 (second dimension): 3**4 = 81 points, one per interval of width 1/81
  assert np.array_equal(np.sort(np.floor(spaces.halton(81, 2, seed=5)[:, 1] * 81)), np.arange(81))
  # the scrambling depends on the seed, and differs from plain (unscrambled) Halton 0, 1/2, 1/4, 3/4
  assert not np.allclose(spaces.halton(8, 1, seed=1), spaces.halton(8, 1, seed=2))
  assert not np.allclose(spaces.halton(4, 1, seed=1)[:, 0], [0, 0.5, 0.25, 0.75])


def test_halton_covers_a_plane_more_evenly_than_random_points():
  # the largest empty box anchored at the origin corners is a crude discrepancy: compare the
  # count of points in 64 equal cells (a stratified design leaves fewer cells empty)
  def empty_cells(u):
    cells = np.floor(u * 8).astype(int)
    return 64 - len({tuple(c) for c in cells})

  h = [empty_cells(spaces.halton(64, 2, seed=s)) for s in range(5)]
  r = [empty_cells(np.random.default_rng(s).random((64, 2))) for s in range(5)]
  assert np.mean(h) < np.mean(r)


@pytest.mark.parametrize("sampler", spaces.SAMPLERS)
def test_sampling_is_reproducible_from_the_seed(sampler):
  a = spaces.sample(SPACE, 20, seed=7, sampler=sampler)
  b = spaces.sample(SPACE, 20, seed=7, sampler=sampler)
  c = spaces.sample(SPACE, 20, seed=8, sampler=sampler)
  assert all(np.array_equal(a[k], b[k]) for k in SPACE)
  assert not np.array_equal(a["lr"], c["lr"])


def test_optuna_distributions_are_accepted():
  optuna = pytest.importorskip("optuna")
  d = optuna.distributions
  dims = spaces.check_space(
    {
      "lr": d.FloatDistribution(1e-4, 1e-1, log=True),
      "b1": d.FloatDistribution(0.8, 0.99),
      "n": d.IntDistribution(1, 8),
      "w": d.IntDistribution(1, 64, log=True),
      "c": d.CategoricalDistribution([1, 2, 4]),
    }
  )
  assert dims == {
    "lr": spaces.log_uniform(1e-4, 1e-1),
    "b1": spaces.uniform(0.8, 0.99),
    "n": spaces.integer(1, 8),
    "w": spaces.integer(1, 64, log=True),
    "c": spaces.categorical([1, 2, 4]),
  }
  with pytest.raises(ValueError, match=r"step"):
    spaces.check_space({"x": d.FloatDistribution(0.0, 1.0, step=0.1)})


def test_perturbations_stay_in_bounds_and_move():
  rng = np.random.default_rng(0)
  u = spaces.uniform(0.1, 1.0)
  x = u.perturb(np.full(200, 0.95), rng)
  assert set(np.round(x, 6).tolist()) <= {0.76, 1.0}  # 0.95 * 0.8, and 0.95 * 1.25 clipped to 1.0
  i = spaces.integer(1, 10)
  y = i.perturb(np.full(200, 1), rng)
  assert set(y.tolist()) == {2}  # 1 * 0.8 and 1 * 1.25 round to 1: moves one step, inward at the bound
  z = i.perturb(np.full(200, 8), rng)
  assert set(z.tolist()) == {6, 10}
  c = spaces.categorical([0.0, 0.5, 0.9])
  w = c.perturb(np.asarray([0.0, 0.9, 0.5] * 50, np.float32), rng)
  assert set(w[0::3].tolist()) == {0.5} and set(w[1::3].tolist()) == {0.5}
  assert set(w[2::3].tolist()) == {0.0, 0.9}


@pytest.mark.parametrize(
  ("make", "match"),
  [
    (lambda: spaces.uniform(1.0, 1.0), r"spaces.uniform: `low` must be < `high`, got low=1.0, high=1.0"),
    (lambda: spaces.uniform(0.0, float("inf")), r"spaces.uniform: `high` must be finite"),
    (lambda: spaces.uniform("a", 1.0), r"spaces.uniform: `low` must be a real number"),
    (lambda: spaces.log_uniform(0.0, 1.0), r"spaces.log_uniform: a log scale needs `low` > 0, got low=0.0"),
    (lambda: spaces.integer(5, 2), r"spaces.integer: `low` must be < `high`"),
    (lambda: spaces.integer(0.5, 2), r"spaces.integer: `low` must be an integer"),
    (lambda: spaces.integer(0, 9, log=True), r"spaces.integer: a log scale needs `low` >= 1, got low=0"),
    (lambda: spaces.categorical([]), r"spaces.categorical: `choices` must be a non-empty"),
    (
      lambda: spaces.categorical(["adam", "sgd"]),
      r"spaces.categorical: every choice must be a finite number",
    ),
    (lambda: spaces.categorical([1, 1]), r"spaces.categorical: `choices` must be distinct"),
    (lambda: spaces.categorical("abc"), r"spaces.categorical: `choices` must be a non-empty sequence"),
    (lambda: spaces.sample({}, 3), r"spaces.sample: `space` must be a non-empty dict"),
    (lambda: spaces.sample({"a": "x"}, 3), r"spaces.sample: `space\['a'\]` must be a number"),
    (lambda: spaces.sample({"a": 1.0}, 0), r"spaces.sample: `n` must be an integer >= 1, got n=0"),
    (lambda: spaces.sample({"a": 1.0}, 2, seed=-1), r"spaces.sample: `seed` must be an integer >= 0"),
    (lambda: spaces.sample({"a": 1.0}, 2, sampler="sobol"), r"spaces.sample: `sampler` must be one of"),
  ],
)
def test_bad_spaces_raise_named_value_errors(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_integer_bounds_are_both_reachable():
  x = spaces.integer(0, 1).from_unit(np.asarray([0.0, 0.49, 0.5, math.nextafter(1.0, 0.0)]))
  assert x.tolist() == [0, 0, 1, 1]
