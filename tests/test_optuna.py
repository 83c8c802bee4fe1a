"""The Optuna bridge (``lr_jax.search(..., method="optuna")``): a batch of Optuna trials trained in one
vmapped program, reported to the study's pruner and told to its storage.

Expected values come from an independent trainer (a plain Optax loop in ``lax.scan``, one trial at
a time) and from Optuna's own storage, never from the bridge's own numbers.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

optuna = pytest.importorskip("optuna")

import lr_jax
from lr_jax import _optuna, spaces
from tests._optuna_worker import problem, storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
TS = optuna.trial.TrialState
LOSS, PARAMS, BATCHES, EVAL, OPT, SPACE = problem()
STEPS, EVERY = 20, 5


def run(study, num_samples, batch_size=4, **kw):
  """The bridge on the shared tiny problem (the worker's)."""
  kw = {"space": SPACE, "eval_fn": EVAL, "eval_mode": "min", "eval_every": EVERY, **kw}
  return lr_jax.search(
    LOSS, PARAMS, BATCHES, optimizer=OPT, num_steps=STEPS, method="optuna", study=study,
    num_samples=num_samples, batch_size=batch_size, **kw,
  )  # fmt: skip


@jax.jit
def _curve(lr, momentum):
  """The eval after every step of one trial, trained alone: a plain Optax loop in ``lax.scan``."""
  tx = OPT({"lr": lr, "momentum": momentum})
  x, y = map(jnp.asarray, BATCHES)

  def step(carry, t):
    p, s = carry
    g = jax.grad(LOSS)(p, (x[t % 4], y[t % 4]))
    u, s = tx.update(g, s, p)
    p = optax.apply_updates(p, u)
    return (p, s), EVAL(p)

  return jax.lax.scan(step, (PARAMS, tx.init(PARAMS)), jnp.arange(STEPS))[1]


def reference(trial_params) -> list:
  """The evals every EVERY steps of one trial."""
  curve = np.asarray(_curve(trial_params["lr"], trial_params["momentum"]))
  return curve[EVERY - 1 :: EVERY].tolist()


def test_in_memory_values_are_the_trials_own_training():
  study = optuna.create_study(
    sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=4), pruner=optuna.pruners.NopPruner()
  )
  res = run(study, 10)  # batches of 4, 4, 2 (the last one padded: the same programs)
  got = study.get_trials()
  assert [t.number for t in got] == list(range(10)) and all(t.state == TS.COMPLETE for t in got)
  assert res.method == "optuna" and res.trial_numbers.tolist() == list(range(10))
  for i, t in enumerate(got):
    curve = reference(t.params)
    np.testing.assert_allclose(t.value, curve[-1], rtol=2e-5)
    assert sorted(t.intermediate_values) == [5, 10, 15]  # the last value is the one told
    np.testing.assert_allclose([t.intermediate_values[s] for s in (5, 10, 15)], curve[:-1], rtol=2e-5)
    assert res.configs[i] == t.params
  np.testing.assert_allclose(res.score, [t.value for t in got], rtol=0)
  np.testing.assert_allclose(res.score_history[:, 3], reference(got[3].params), rtol=2e-5)
  assert res.steps.tolist() == [STEPS] * 10 and res.steps_trained == 10 * STEPS
  assert study.best_trial.number == res.trial_numbers[res.best_index()]
  np.testing.assert_allclose(EVAL(res.best_params()), study.best_value, rtol=1e-6)
  np.testing.assert_allclose(EVAL(res._run_of(7, "t").params), got[7].value, rtol=1e-6)  # every trial kept


def test_pruner_prunes_and_masks_lanes():
  # lr from 1e-3 (hardly moves) to 0.5: a MedianPruner stops the slow lanes of later batches.
  study = optuna.create_study(
    sampler=optuna.samplers.RandomSampler(seed=1),
    pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0),
  )
  res = run(study, 12)
  got = {t.number: t for t in study.get_trials()}
  states = [got[n].state for n in res.trial_numbers]
  assert set(states) == {TS.COMPLETE, TS.PRUNED}
  assert all(s == TS.COMPLETE for s in states[:4])  # the first batch sees no finished trial
  pruned = [i for i, s in enumerate(states) if s == TS.PRUNED]
  assert len(pruned) >= 2
  for i in pruned:
    t = got[res.trial_numbers[i]]
    last = max(t.intermediate_values)
    assert last < STEPS and res.steps[i] == last and res.score[i] == t.value == t.intermediate_values[last]
    # Pruned where the median of the completed trials at that step was better (Optuna's rule).
    done = [
      u.intermediate_values[last] for u in got.values() if u.state == TS.COMPLETE and u.number < t.number
    ]
    assert t.intermediate_values[last] > np.median(done)
    assert np.all(np.isnan(res.losses[i, last:]))  # the lane was masked: nothing after the prune
    assert np.all(np.isnan(res.score_history[last // EVERY :, i]))
  assert res.ranks()[pruned].min() > sum(s == TS.COMPLETE for s in states)  # stopped trials rank last


def test_max_trials_spaces_and_journal_storage(tmp_path):
  path = tmp_path / "journal.log"
  study = optuna.create_study(storage=storage(f"journal:{path}"), study_name="j")
  space = {"lr": spaces.log_uniform(1e-3, 0.5), "momentum": 0.9}
  res = run(study, 10, space=space, max_trials=6)  # asks stop at the study's 6th trial
  again = optuna.load_study(study_name="j", storage=storage(f"journal:{path}"))
  assert [t.number for t in again.trials] == list(range(6)) and len(res.configs) == 6
  assert all(t.state in (TS.COMPLETE, TS.PRUNED) for t in again.trials)
  assert again.trials[0].distributions == {"lr": optuna.distributions.FloatDistribution(1e-3, 0.5, log=True)}
  assert all(c["momentum"] == 0.9 for c in res.configs)
  with pytest.raises(ValueError, match="already holds max_trials=6"):
    run(study, 2, space=space, max_trials=6)


def test_an_exception_fails_the_open_trials_and_propagates():
  class Broken(optuna.pruners.BasePruner):
    def prune(self, study, trial):
      raise RuntimeError("pruner broke")

  study = optuna.create_study(pruner=Broken())
  with pytest.raises(RuntimeError, match="pruner broke"):
    run(study, 4)
  assert [t.state for t in study.trials] == [TS.FAIL] * 4  # none left RUNNING


def test_string_choices_reach_the_lanes_as_indices():
  study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
  dist = optuna.distributions.CategoricalDistribution(["sgd", "heavy"])
  opt = lambda h: OPT({"lr": 0.1, "momentum": 0.9 * h["kind"]})
  res = lr_jax.search(LOSS, PARAMS, BATCHES, optimizer=opt, space={"kind": dist}, num_steps=STEPS,
                      method="optuna", study=study, num_samples=4, eval_fn=EVAL, eval_mode="min")  # fmt: skip
  for t in study.trials:
    want = reference({"lr": 0.1, "momentum": 0.9 * ["sgd", "heavy"].index(t.params["kind"])})[-1]
    np.testing.assert_allclose(t.value, want, rtol=2e-5)
  assert {c["kind"] for c in res.configs} <= {"sgd", "heavy"}


def test_bad_arguments(monkeypatch):
  with pytest.raises(ValueError, match=r"search: the study's direction \(MAXIMIZE\) must match"):
    run(optuna.create_study(direction="maximize"), 2)
  with pytest.raises(ValueError, match="search: `num_samples` must be >= 1"):
    run(optuna.create_study(), 0)
  with pytest.raises(ValueError, match=r"search: `space\['lr'\]` must be"):
    run(optuna.create_study(), 2, space={"lr": "big"})
  with pytest.raises(ValueError, match="search: `study` must be an optuna.Study"):
    run("study", 2)
  with pytest.raises(ValueError, match=r"search: \['eta'\] are not options of method='optuna'"):
    run(optuna.create_study(), 2, eta=3)
  with pytest.raises(ValueError, match="search: method='optuna' trains every batch"):
    lr_jax.search(LOSS, PARAMS, iter([BATCHES]), optimizer=OPT, space=SPACE, num_steps=STEPS,
                  method="optuna", num_samples=2)  # fmt: skip
  monkeypatch.setitem(sys.modules, "optuna", None)
  with pytest.raises(ImportError, match=r"lr-jax\[search\]"):
    _optuna.import_optuna()


def test_two_processes_share_one_sqlite_storage(tmp_path):
  url = f"sqlite:///{tmp_path / 'study.db'}"
  optuna.create_study(storage=storage(url), study_name="shared", sampler=optuna.samplers.TPESampler(seed=0))
  worker = Path(__file__).with_name("_optuna_worker.py")
  env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "JAX_PLATFORMS": "cpu"}
  outs = [tmp_path / f"w{i}.json" for i in range(2)]
  cmd = [sys.executable, str(worker), url, "shared", "6", "4"]
  procs = [subprocess.Popen([*cmd, str(o)], env=env, stderr=subprocess.PIPE) for o in outs]
  for p in procs:
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-2000:]
  told = [json.loads(o.read_text()) for o in outs]
  numbers = told[0]["numbers"] + told[1]["numbers"]
  assert len(told[0]["numbers"]) == len(told[1]["numbers"]) == 6
  assert sorted(numbers) == list(range(12))  # every trial once: none lost, none run twice
  study = optuna.load_study(study_name="shared", storage=storage(url))
  assert len(study.trials) == 12
  assert all(t.state in (TS.COMPLETE, TS.PRUNED) for t in study.trials)  # no RUNNING leftovers
  value = {t.number: t.value for t in study.trials}
  for w in told:
    np.testing.assert_allclose([value[n] for n in w["numbers"]], w["scores"], rtol=0)


def test_a_fully_pruned_batch_stops_and_diverged_trials_fail(monkeypatch):
  calls = []
  real = _optuna._sweep._run_steps
  monkeypatch.setattr(
    _optuna._sweep, "_run_steps", lambda *a, **k: calls.append(k["length"]) or real(*a, **k)
  )

  class PruneAll(optuna.pruners.BasePruner):
    def prune(self, study, trial):
      return True

  study = optuna.create_study(pruner=PruneAll())
  res = run(study, 4)
  assert calls == [EVERY]  # one period trained, then the batch stopped
  assert [t.state for t in study.trials] == [TS.PRUNED] * 4 and res.steps.tolist() == [EVERY] * 4

  study = optuna.create_study(
    sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.NopPruner()
  )
  res = run(study, 6, space={"lr": [0.1, 1e4], "momentum": 0.0})
  lrs = [t.params["lr"] for t in study.trials]
  assert set(lrs) == {0.1, 1e4}
  for t, ok in zip(study.trials, res.valid):
    assert t.state == (TS.COMPLETE if t.params["lr"] == 0.1 else TS.FAIL) and ok == (t.params["lr"] == 0.1)
