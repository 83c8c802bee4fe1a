"""lr_jax.search and its engine (lr_jax._population): random search, successive halving, PBT.

Tiny problems with closed forms: ``w`` in R^2 from ``(1, 1)``, loss ``sum(w**2)``, plain SGD with a
decaying rate ``lr * decay**t``: ``w_t = prod_{s<t} (1 - 2 lr decay**s)``, ``loss = 2 w_t**2``. A
lane with a fast-decaying large rate leads early and falls behind later, so halving's rungs rank
differently. The functions are module-level, so every test shares the compiled programs.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lr_jax
from lr_jax import _population as pp
from lr_jax import search, spaces
from lr_jax._search import hyperband_sizes


def loss(w, b):
  return jnp.sum((w - b) ** 2)


def evaluate(w):
  return jnp.sum(w**2)


def opt(h):
  return optax.sgd(lambda t: h["lr"] * h["decay"] ** t)


def adam(h):
  return optax.adam(h["lr"])


W0, DATA = jnp.ones(2), jnp.zeros((1, 2))
KW = {"optimizer": opt, "eval_fn": evaluate, "eval_mode": "min"}


def closed_form(lr, decay, t):
  lr, decay = np.float32(lr).astype(np.float64), np.float32(decay).astype(np.float64)
  return 2 * np.prod(1 - 2 * lr * decay ** np.arange(t)) ** 2


# --------------------------------------------------------------------------------------------------
# Random search.


def test_random_search_is_reproducible_from_its_seed_and_matches_the_closed_form():
  space = {"lr": spaces.log_uniform(1e-3, 0.45), "decay": spaces.uniform(0.7, 1.0)}
  a = search(loss, W0, DATA, space=space, num_samples=6, num_steps=8, seed=3, **KW)
  b = search(loss, W0, DATA, space=space, num_samples=6, num_steps=8, seed=3, **KW)
  c = search(loss, W0, DATA, space=space, num_samples=6, num_steps=8, seed=4, **KW)
  assert a.configs == b.configs and np.array_equal(a.score, b.score, equal_nan=True)
  assert a.configs != c.configs
  want = [closed_form(cfg["lr"], cfg["decay"], 8) for cfg in a.configs]
  np.testing.assert_allclose(a.score, want, rtol=2e-4)
  assert a.steps.tolist() == [8] * 6 and a.steps_trained == 48
  assert a.best()["lr"] == a.configs[int(np.argmin(want))]["lr"]
  # the winner's params are kept, and equal the closed form
  w = a.best_params()
  np.testing.assert_allclose(2 * float(w[0]) ** 2, min(want), rtol=2e-4)
  assert "SearchResult(method='random', 6 trials" in repr(a)


def test_halton_sampler_and_finite_grid():
  space = {"lr": [0.05, 0.1, 0.2], "decay": [0.9, 1.0]}
  res = search(loss, W0, DATA, space=space, num_steps=4, **KW)  # num_samples=None: the whole grid
  assert [(c["lr"], c["decay"]) for c in res.configs] == [
    (a, d) for a in (0.05, 0.1, 0.2) for d in (0.9, 1.0)
  ]
  assert res.best() == {**res.configs[5], "eval": pytest.approx(closed_form(0.2, 1.0, 4)), "steps": 4,
                        "valid": True, "rank": 1}  # fmt: skip
  h = search(loss, W0, DATA, space={"lr": spaces.uniform(0.0, 0.4), "decay": 1.0}, num_samples=4,
             num_steps=4, sampler="halton", seed=2, **KW)  # fmt: skip
  lr = np.sort([c["lr"] for c in h.configs])
  assert np.array_equal(np.floor(lr / 0.1), [0, 1, 2, 3])  # base 2: one point per quarter


# --------------------------------------------------------------------------------------------------
# Successive halving.

# 9 configurations; by the closed form the best three after 2 steps are 0, 1, 2 (in that order), and
# of those 1 leads after 6 steps.
HALVING = [
  {"lr": 0.45, "decay": 0.5},
  {"lr": 0.4, "decay": 0.7},
  {"lr": 0.3, "decay": 0.8},
  {"lr": 0.2, "decay": 0.95},
  {"lr": 0.1, "decay": 1.0},
  {"lr": 0.15, "decay": 1.0},
  {"lr": 0.05, "decay": 1.0},
  {"lr": 0.25, "decay": 0.85},
  {"lr": 1e20, "decay": 1.0},  # diverges: the loss after one step overflows float32
]


def _halving_space():
  # a categorical "trial" index selects one of the configurations above: the space's grid is them
  return {"lr": [c["lr"] for c in HALVING], "decay": [c["decay"] for c in HALVING]}


def test_halving_keeps_exactly_the_top_lanes():
  configs = {k: np.asarray([c[k] for c in HALVING]) for k in ("lr", "decay")}
  pop = pp.start(loss, W0, DATA, hparams=configs, **KW)
  res_rungs, lanes, done = [], np.arange(9), 0
  # the same schedule as search(method="halving", eta=3, min_steps=2, num_steps=18)
  for n_keep, steps in ((3, 2), (1, 6), (1, 18)):
    score = pop.advance(steps - done).score
    done = steps
    want = np.asarray([closed_form(HALVING[i]["lr"], HALVING[i]["decay"], steps) for i in lanes])
    finite = np.isfinite(want) & (want < 1e30)
    np.testing.assert_allclose(score[finite], want[finite], rtol=1e-3)
    order = np.argsort(np.where(np.isfinite(score), score, np.inf), kind="stable")
    expected = np.argsort(np.where(finite, want, np.inf), kind="stable")[:n_keep]
    assert np.array_equal(order[:n_keep], expected)
    res_rungs.append(lanes[expected].tolist())
    pop.select(expected)
    lanes = lanes[expected]
  # the closed form reorders between rungs: the leader after 2 steps (0.45, decay 0.5) is second after 6
  assert res_rungs == [[0, 1, 2], [1], [1]]

  # search(method="halving") over the same candidates keeps the same lanes at every rung
  res = _halving_search(eta=3, min_steps=2)
  assert [r.steps for r in res.rungs] == [2, 6, 18]
  assert [len(r.trials) for r in res.rungs] == [9, 3, 1]
  assert [r.kept.tolist() for r in res.rungs][:2] == [_grid_trials(res, t) for t in res_rungs][:2]
  assert res.steps_trained == 9 * 2 + 3 * 4 + 1 * 12
  assert res.best_index() == _grid_trials(res, res_rungs[-1])[0]
  assert res.steps[res.best_index()] == 18


def _halving_search(**kw):
  # a list of dicts would be a grid of 81; pass the 9 pairs through a categorical "i" instead
  def opt_i(h):
    lr = jnp.asarray([c["lr"] for c in HALVING])[h["i"]]
    decay = jnp.asarray([c["decay"] for c in HALVING])[h["i"]]
    return opt({"lr": lr, "decay": decay})

  return search(loss, W0, DATA, optimizer=opt_i, eval_fn=evaluate, eval_mode="min", space={"i": list(range(9))},
                num_steps=18, method="halving", **kw)  # fmt: skip


def _grid_trials(res, lanes):
  return [next(j for j, c in enumerate(res.configs) if c["i"] == i) for i in lanes]


def test_halving_prunes_a_diverged_lane():
  res = _halving_search(eta=3, min_steps=2)
  nan_trial = _grid_trials(res, [8])[0]
  assert not np.isfinite(res.rungs[0].scores[nan_trial])
  assert nan_trial not in res.rungs[0].kept
  assert not res.valid[nan_trial] and res.table()[nan_trial]["rank"] is None


def test_halving_compiles_one_program_per_rung_and_reuses_them():
  _halving_search(eta=3, min_steps=2)
  before = pp.compile_counts()
  res = _halving_search(eta=3, min_steps=2, seed=1)
  assert pp.compile_counts() == before  # same shapes: nothing recompiles
  space = {"lr": spaces.log_uniform(1e-3, 0.45), "decay": spaces.uniform(0.7, 1.0)}
  search(
    loss, W0, DATA, space=space, num_samples=9, num_steps=18, method="halving", min_steps=2, seed=5, **KW
  )
  after = pp.compile_counts()
  # a new optimizer function: at most one advance program per rung (3), one gather per shrink (2)
  assert after["advance"] - before["advance"] <= 3 and after["gather"] - before["gather"] <= 2
  assert after["init"] - before["init"] <= 1
  assert len(res.rungs) == 3


def test_hyperband_brackets():
  space = {"lr": spaces.log_uniform(1e-3, 0.45), "decay": 1.0}
  res = search(loss, W0, DATA, space=space, num_samples=9, num_steps=18, method="halving", brackets=3,
               min_steps=2, **KW)  # fmt: skip
  # Li et al.'s sizes for s_max = 2, eta = 3: 9, 5, 3 trials, first rungs at 2, 6, 18 steps
  assert hyperband_sizes(9, 3, 3) == [9, 5, 3] and len(res.configs) == 17
  assert [(r.bracket, r.steps, len(r.trials)) for r in res.rungs] == [
    (0, 2, 9), (0, 6, 3), (0, 18, 1), (1, 6, 5), (1, 18, 1), (2, 18, 3)
  ]  # fmt: skip
  assert res.steps_trained == (9 * 2 + 3 * 4 + 12) + (5 * 6 + 12) + 3 * 18
  assert sorted(res.final_trials.tolist()) == sorted(res.rungs[2].kept.tolist() + res.rungs[4].kept.tolist()
                                                     + res.rungs[5].kept.tolist())  # fmt: skip
  # trials are numbered bracket after bracket; every finisher is scored by the closed form
  for t in res.final_trials:
    assert res.steps[t] == 18
    np.testing.assert_allclose(res.score[t], closed_form(res.configs[t]["lr"], 1.0, 18), rtol=1e-3)
  assert res.best_index() in res.final_trials and res.params.shape == (5, 2)


# --------------------------------------------------------------------------------------------------
# PBT and the engine's copy.


def test_copy_carries_params_and_optimizer_state_bit_for_bit():
  pop = pp.start(loss, W0, DATA, optimizer=adam, hparams={"lr": [0.01, 0.02, 0.05, 0.1]})
  pop.advance(5)
  src_p, src_s = pop.params(2), pop.opt_state(2)
  pop.copy([0, 3], [2, 2], {"lr": [0.07, 0.05]})
  for lane in (0, 3):
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, pop.params(lane), src_p))
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, pop.opt_state(lane), src_s))
  assert pop.hparams["lr"].tolist() == pytest.approx([0.07, 0.02, 0.05, 0.05])
  assert pop.steps.tolist() == [5, 5, 5, 5]
  # lane 3 (a copy with the same rate) continues exactly as lane 2; lane 0 (new rate) does not
  pop.advance(3)
  assert np.array_equal(pop.params(3), pop.params(2))
  assert not np.array_equal(pop.params(0), pop.params(2))


def test_a_masked_lane_is_left_bit_for_bit():
  pop = pp.start(loss, W0, DATA, optimizer=adam, hparams={"lr": [0.01, 0.02]})
  pop.advance(2)
  p, s = pop.params(1), pop.opt_state(1)
  out = pop.advance(2, mask=np.array([True, False]))
  assert np.isnan(out.score[1]) and np.all(np.isnan(out.losses[1])) and np.isfinite(out.score[0])
  assert np.array_equal(pop.params(1), p)
  assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, pop.opt_state(1), s))
  assert pop.steps.tolist() == [4, 2] and pop.steps_trained == 6


PBT_SPACE = {"lr": spaces.categorical([0.02, 0.05, 0.1, 1e10]), "decay": 1.0}


def _pbt(seed=0, **kw):
  return search(loss, W0, DATA, space=PBT_SPACE, num_samples=8, num_steps=12, method="pbt", interval=3,
                quantile=0.25, seed=seed, **KW, **kw)  # fmt: skip


def test_pbt_never_copies_a_diverged_lane_and_replaces_it():
  res = _pbt()
  assert res.lineage.shape == (3, 8) and res.history_steps.tolist() == [3, 6, 9]
  assert res.hparam_history["lr"].shape == (4, 8)
  saw_nan = False
  for r in range(3):
    score = res.score_history[r]
    parent = res.lineage[r]
    copied = np.flatnonzero(parent != np.arange(8))
    assert np.all(np.isfinite(score[parent[copied]]))  # a source is never a diverged lane
    dead = np.flatnonzero(~np.isfinite(score))
    saw_nan |= dead.size > 0
    assert set(dead.tolist()) <= set(copied.tolist())  # every diverged lane is replaced
    # sources come from the top quantile (2 of 8), targets from the bottom
    finite = np.flatnonzero(np.isfinite(score))
    top = finite[np.argsort(score[finite], kind="stable")[:2]]
    assert set(parent[copied].tolist()) <= set(top.tolist())
    # explored hyperparameters are a neighbouring choice or a fresh draw from the space
    lr_after = res.hparam_history["lr"][r + 1]
    assert set(lr_after.tolist()) <= set(np.float32([0.02, 0.05, 0.1, 1e10]).tolist())
  assert saw_nan
  assert np.all(res.valid) or res.best_index() >= 0
  assert res.steps_trained == 8 * 12


def test_pbt_is_reproducible_and_compiles_once():
  a = _pbt(seed=4)
  before = pp.compile_counts()
  b = _pbt(seed=4)
  assert pp.compile_counts() == before
  assert np.array_equal(a.lineage, b.lineage)
  assert np.array_equal(a.score, b.score, equal_nan=True)
  assert all(np.array_equal(a.hparam_history[k], b.hparam_history[k]) for k in a.hparam_history)


def test_pbt_continuous_space_keeps_bounds():
  res = search(loss, W0, DATA, space={"lr": spaces.log_uniform(0.01, 0.3), "decay": spaces.uniform(0.9, 1.0)},
               num_samples=8, num_steps=12, method="pbt", interval=3, resample_prob=0.5, seed=1, **KW)  # fmt: skip
  lr, decay = res.hparam_history["lr"], res.hparam_history["decay"]
  assert lr.min() >= np.float32(0.01) and lr.max() <= np.float32(0.3)
  assert decay.min() >= np.float32(0.9) and decay.max() <= np.float32(1.0)
  # the best member's schedule is piecewise: its hyperparameters changed at least once over the run
  assert len({tuple(lr[:, j]) for j in range(8)}) > 1


# --------------------------------------------------------------------------------------------------
# Errors, API.


@pytest.mark.parametrize(
  ("kw", "match"),
  [
    ({"method": "grid"}, r"search: `method` must be one of"),
    ({"method": "pbt", "eta": 3}, r"search: \['eta'\] are options of another method"),
    ({"method": "halving", "brackets": 0}, r"search: `brackets` must be an integer in \[1, 64\]"),
    ({"method": "halving", "brackets": 2}, r"search: `brackets` \(Hyperband\) draws its trials"),
    ({"method": "halving", "eta": 1}, r"search: `eta` must be an integer in \[2, "),
    ({"method": "halving", "min_steps": 100}, r"search: `min_steps` must be an integer in \[1, 4\]"),
    ({"method": "pbt", "quantile": 0.7}, r"search: `quantile` must be a number in \(0.0, 0.5\]"),
    ({"method": "pbt", "resample_prob": 2}, r"search: `resample_prob` must be a number in \[0.0, 1.0\]"),
    ({"method": "pbt", "perturb": "x"}, r"search: `perturb` must be a sequence"),
    ({"space": {"lr": spaces.uniform(0.0, 1.0)}, "num_samples": None}, r"search: `num_samples` is required"),
    ({"num_samples": 0}, r"search: `num_samples` must be an integer >= 1, got num_samples=0"),
    ({"sampler": "sobol", "num_samples": 2}, r"search: `sampler` must be one of"),
    ({"seed": -2}, r"search: `seed` must be an integer >= 0"),
    ({"num_steps": 0}, r"search: `num_steps` must be >= 1"),
    ({"bogus": 1}, r"search: unknown keyword arguments \['bogus'\]"),
    ({"space": {"lr": "fast"}}, r"search: `space\['lr'\]` must be a number"),
    ({"eval_mode": "best"}, r"search: `eval_mode` must be 'min' or 'max'"),
    ({"optimizer": optax.sgd(0.1)}, r"search: `optimizer` must be a function"),
    ({"seeds": [1, 2]}, r"search: `seeds` needs `init_fn`"),
  ],
)
def test_bad_arguments_raise_named_value_errors(kw, match):
  args = {
    "space": {"lr": [0.1, 0.2]},
    "num_steps": 4,
    "optimizer": adam,
    "eval_fn": evaluate,
    "eval_mode": "min",
  }
  with pytest.raises(ValueError, match=match):
    search(loss, W0, DATA, **(args | kw))


# Streamed batches: 4 different batches, cycled; a generator yields the same sequence one at a time.
DATA4 = 0.1 * jnp.arange(8.0).reshape(4, 2)


def _stream(count, read):
  for t in range(count):
    read.append(t)
    yield np.asarray(DATA4[t % 4])


@pytest.mark.parametrize(
  ("method", "kw"),
  [("random", {}), ("halving", {"eta": 4, "min_steps": 2}), ("pbt", {"interval": 3, "quantile": 0.25})],
)
def test_streamed_batches_train_like_stacked(method, kw):
  # every trial trains on the t-th batch read at its step t (the population's clock), so a generator
  # of the cycled batches gives the stacked run's result; chunks of 3 split rungs and intervals
  space = {"lr": spaces.log_uniform(1e-3, 0.45), "decay": spaces.uniform(0.7, 1.0)}
  args = {"space": space, "num_samples": 8, "num_steps": 8, "method": method, "seed": 2, **KW, **kw}
  stacked = search(loss, W0, DATA4, **args)
  read = []
  streamed = search(loss, W0, _stream(100, read), chunk_steps=3, **args)
  assert read == list(range(8))  # exactly num_steps batches, read in order
  assert streamed.configs == stacked.configs and streamed.steps.tolist() == stacked.steps.tolist()
  np.testing.assert_array_equal(streamed.score, stacked.score)
  np.testing.assert_array_equal(streamed.losses, stacked.losses)
  for got, want in ((streamed.rungs, stacked.rungs), (streamed.lineage, stacked.lineage)):
    assert (got is None) == (want is None)
  if method == "halving":
    assert [r.kept.tolist() for r in streamed.rungs] == [r.kept.tolist() for r in stacked.rungs]
  if method == "pbt":
    np.testing.assert_array_equal(streamed.lineage, stacked.lineage)
  np.testing.assert_array_equal(streamed.best_params(), stacked.best_params())


def test_streamed_score_without_eval_fn_is_the_last_chunk_loss():
  read = []
  res = search(loss, W0, _stream(8, read), optimizer=opt, space={"lr": [0.05, 0.2], "decay": 0.9}, num_steps=8,
               chunk_steps=3)  # fmt: skip
  assert read == list(range(8)) and res.key == "train_loss"
  last = np.asarray(DATA4)[[6 % 4, 7 % 4]].astype(np.float64)  # chunks of 3, 3, 2: the last is t = 6, 7
  for i, w in enumerate(np.asarray(res.params, np.float64)):
    want = np.mean([np.sum((w - b) ** 2) for b in last])  # the mean loss over it, after training
    np.testing.assert_allclose(res.score[i], want, rtol=1e-6)


def test_streamed_batches_errors():
  gen = (np.asarray(b) for b in DATA4)
  with pytest.raises(ValueError, match=r"search: Hyperband's brackets each start from step 0"):
    search(loss, W0, gen, optimizer=adam, space={"lr": spaces.uniform(0.1, 0.2)}, num_samples=4, num_steps=4,
           method="halving", brackets=2)  # fmt: skip
  with pytest.raises(ValueError, match=r"search: the iterable `batches` ran out after 4 batches"):
    search(loss, W0, _stream(4, []), optimizer=adam, space={"lr": [0.1]}, num_steps=6)
  # a re-iterable source is read again from its start by each bracket: the stacked result
  lst = type("Batches", (), {"__iter__": lambda self: (np.asarray(b) for b in DATA4)})()
  args = {"space": {"lr": spaces.uniform(0.01, 0.3), "decay": 1.0}, "num_samples": 4, "num_steps": 2,
          "method": "halving", "eta": 2, "brackets": 2, **KW}  # fmt: skip
  np.testing.assert_array_equal(search(loss, W0, lst, **args).score, search(loss, W0, DATA4, **args).score)


def test_public_names():
  assert lr_jax.search is search and lr_jax.spaces is spaces
  assert isinstance(_pbt(seed=4), lr_jax.SearchResult)


_SHARDED = """
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ["JAX_PLATFORMS"] = "cpu"
import jax, jax.numpy as jnp, numpy as np, optax
from lr_jax import search, spaces
assert len(jax.devices()) == 8
loss = lambda w, b: jnp.sum((w - b) ** 2)
kw = dict(optimizer=lambda h: optax.adam(h["lr"]), space={"lr": spaces.log_uniform(1e-3, 0.5)}, num_samples=9,
          num_steps=18, eval_fn=lambda w: jnp.sum(w ** 2), eval_mode="min", seed=1)
one = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))
for m, extra in (("halving", {}), ("pbt", {"interval": 6})):
  r8 = search(loss, jnp.ones(2), jnp.zeros((1, 2)), method=m, **kw, **extra)  # 9 lanes padded to 16, then 8
  r1 = search(loss, jnp.ones(2), jnp.zeros((1, 2)), method=m, mesh=one, **kw, **extra)
  np.testing.assert_allclose(r8.score, r1.score, rtol=1e-6)
  assert r8.best_index() == r1.best_index() and r8.steps_trained == r1.steps_trained
  np.testing.assert_allclose(r8.best_params(), r1.best_params(), rtol=1e-6)
print("ok")
"""


def test_eight_device_search_equals_one_device():
  # 9 lanes over 8 devices: padded to 16, halving's gathers to 3 and 1 lanes pad to 8
  env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run(
    [sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, timeout=600, check=False
  )
  assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_plots_of_each_method():
  pytest.importorskip("matplotlib")
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from lr_jax import plot

  halving = _halving_search(eta=3, min_steps=2)
  axes = halving.plot()
  assert len(axes) == 2 and axes[0].get_xlabel() == "steps trained at the rung, trials in it"
  assert [t.get_text() for t in axes[0].get_xticklabels()] == ["2\n9 trials", "6\n3 trials", "18\n1 trial"]
  pbt = _pbt(seed=4)
  axes = plot.search(pbt)
  assert [a.get_ylabel() for a in axes] == ["lr", "population member"]
  axes = search(loss, W0, DATA, space={"lr": spaces.log_uniform(1e-3, 0.45), "decay": 1.0}, num_samples=6,
                num_steps=8, **KW).plot()  # fmt: skip
  assert len(axes) == 1 and axes[0].get_xscale() == "log"
  plt.close("all")


def test_readme_search_bench_tables_are_the_committed_run():
  """The tables of "Optuna bridge and the search benchmarks" are what ``bench/bench_search.py`` makes of
  the records its committed run wrote to bench/search.json, and those records agree with themselves
  (medians, counts against the grid, targets recomputed here from the per-seed values)."""
  import importlib.util
  import json

  root = Path(__file__).resolve().parents[1]
  spec = importlib.util.spec_from_file_location("_bench_search", root / "bench" / "bench_search.py")
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  doc = json.loads((root / "bench" / "search.json").read_text())
  want = "python bench/bench_search.py --mode full --parts methods optuna pbt_study --json bench/search.json"
  assert doc["command"] == want and doc["mode"] == "full"
  recs = doc["records"]
  for task in ("digits", "diabetes"):
    rows = {r["method"]: r for r in recs if r.get("task") == task and r.get("contender") == "summary"}
    grid, mode = rows["grid"]["best_eval"], rows["grid"]["mode"]
    better = (lambda a, b: a >= b) if mode == "max" else (lambda a, b: a <= b)
    for m in ("pbt", "random"):
      r = rows[m]
      assert len(r["best_eval_by_seed"]) == r["seeds"] == 16
      assert r["best_eval"] == r["best_eval_median"] == np.median(r["best_eval_by_seed"])
      assert r["seeds_at_least_grid"] == sum(better(v, grid) for v in r["best_eval_by_seed"])
    assert rows["pbt"]["target_met"] == better(rows["pbt"]["best_eval_median"], grid)
    bridge, user = rows["optuna_bridge"], rows["optuna_user"]  # 64 trials each, 3 TPE seeds
    assert bridge["trials"] == user["trials"] == 64 and len(bridge["best"]) == len(user["best"]) == 3
    assert bridge["speedup_vs_user"] == pytest.approx(bridge["trials_per_s"] / user["trials_per_s"])
    h = rows["halving"]
    worse = max(0.0, (grid - h["best_eval"]) if mode == "max" else (h["best_eval"] - grid)) / abs(grid)
    assert h["target_met"] == (worse <= 0.01 and h["steps_vs_grid"] <= 1 / 3)
  study = [r for r in recs if r.get("contender") == "study"]
  assert len(study) == 7 * 3 * len(bench.STUDY_VARIANTS) and all(len(r["best_by_seed"]) == 16 for r in study)
  # the README's reading: where PBT's defaults lose to the grid in median, the grid's winner is on an edge
  edges = {min(bench.LRS), max(bench.LRS)}, {min(bench.B1S), max(bench.B1S)}
  for r in (r for r in study if r["variant"] == "defaults"):
    sign = 1 if r["mode"] == "max" else -1
    if sign * (np.median(r["best_by_seed"]) - r["grid_best"]) < 0:
      assert r["grid_lr"] in edges[0] or r["grid_b1"] in edges[1], r["name"]
  text = Path(root / "README.md").read_text()
  block = re.search(r"<!-- search-bench:start -->\n(.*?)<!-- search-bench:end -->", text, flags=re.DOTALL)
  assert block is not None
  assert block.group(1) == bench.readme_tables(recs)
