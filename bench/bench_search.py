"""Searching beyond the grid: successive halving, PBT and the Optuna bridge against a 32-point grid.

Two tasks of ``lr_jax.tasks``: the digits MLP (64-32-10, mini-batches of 64, held-out accuracy, higher
is better) and the diabetes regression MLP (10-32-1, mini-batches of 32, held-out MSE, lower is
better). Every contender trains Adam (``optax.adam(lr, b1=b1)``) for ``num_steps`` steps from the
same initial parameters on the same batches, and is judged by its best trial's held-out score.

* ``grid``: ``lr_jax.sweep`` over 8 learning rates x 4 values of ``b1`` (32 configurations);
* ``halving``: ``lr_jax.search(method="halving")`` over the same 32 candidates (eta 2, first rung
  ``num_steps // 8``: 32 -> 16 -> 8 -> 4 lanes), target: best within 1% (relative) of the grid's best
  for <= 1/3 of its training steps;
* ``pbt``: ``lr_jax.search(method="pbt")`` at its defaults, a population of 32 sampled (scrambled
  Halton) from the box the grid spans (log-uniform lr, uniform b1), the grid's compute (32 x
  num_steps steps), run with several seeds (each seed scrambles the initial population and drives
  PBT's choices); target: the median over seeds of its best at least as good as the grid's best. The
  spread (min, max, how many seeds reach the grid) is reported next to it;
* ``random``: ``lr_jax.search(method="random")``, the same 32 Halton trials per seed trained to the
  end with no exploit/explore: what PBT's copies and perturbations add at the same compute;
* ``optuna``: 64 trials of Optuna's TPE over that box, ``batch_size=16`` trials per program with the
  bridge (``lr_jax.search(method="optuna")``), against Optuna's usual loop, ``study.optimize`` with
  an objective that builds ``optax.adam`` and runs a jitted step in a Python loop (``user``: the step
  is jitted inside the objective, as a user writes it, so every trial compiles; ``user_warm``: one
  step compiled once, the rates passed through ``optax.inject_hyperparams``). Target: >= 5x the
  trials per second of ``user``, and a best trial as good within the spread over sampler seeds.
  Times are end to end (asks, compiles, training, tells); the bridge compiles once per process.

Run ``python bench/bench_search.py [--mode smoke|quick|full] [--tasks digits diabetes] [--parts methods
optuna pbt_study] [--json PATH]``. ``bench/run.py`` runs it as ``search`` (``run(mode)``,
``markdown``, ``goal``); ``MODES``: ``smoke`` runs the diabetes task only, 2 steps, 2 Optuna
trials; ``quick`` runs Optuna on digits only and the compile-per-trial loop on its first 16 trials
(its rate); ``full`` runs everything on both tasks. ``--parts pbt_study`` (not in run.py: minutes)
runs PBT's defaults against single changes of them (``STUDY_VARIANTS``) over 7 task instances x 3
run lengths x 16 seeds, each cell against its own grid. It prints JSON lines (``bench/_common.py``'s
``emit``; names ``search/<task>/<method>``, contender ``summary``) and a Markdown report; ``--json``
also writes both to a file (the README quotes ``bench/search.json``); nothing else is written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import emit, env_info, log, md_table

import lr_jax
from lr_jax import spaces, tasks


class Mode(NamedTuple):
  num_steps: int
  trials: int  # Optuna trials per study
  batch: int  # the bridge's trials per program
  optuna_seeds: int  # TPE seeds
  user_trials: int  # trials of the compile-per-trial loop (its trials/s is a rate: a prefix measures it)
  seeds: int  # PBT (and random) seeds
  tasks: tuple  # the methods' tasks
  optuna_tasks: tuple


MODES = {
  "smoke": Mode(2, 2, 2, 1, 2, 2, ("diabetes",), ("diabetes",)),
  # run.py --quick: the compile-per-trial loop (~1 trial/s) on its first 16 trials, Optuna on digits only
  "quick": Mode(300, 64, 16, 2, 16, 8, ("digits", "diabetes"), ("digits",)),
  "full": Mode(300, 64, 16, 3, 64, 16, ("digits", "diabetes"), ("digits", "diabetes")),
}
LRS = [float(f"{x:.3g}") for x in np.geomspace(3e-4, 3e-1, 8)]
B1S = [0.5, 0.8, 0.9, 0.99]


def make_task(name: str, seed: int = 0):
  """``(task, eval_mode)``: digits (accuracy, max) or diabetes (test MSE, min); ``seed`` picks the data
  split, batch order and initial weights (``lr_jax.tasks``)."""
  if name == "digits":
    return tasks.make("digits", seed=seed), "max"
  return tasks.make_diabetes(seed=seed), "min"


def _opt(h):
  return optax.adam(h["lr"], b1=h["b1"])


def _better(a: float, b: float, mode: str) -> bool:
  return a >= b if mode == "max" else a <= b


def _rel_gap(x: float, best: float, mode: str) -> float:
  """How much worse ``x`` is than ``best``, relative to ``best`` (0 when as good or better)."""
  gap = (best - x) if mode == "max" else (x - best)
  return max(0.0, gap) / abs(best)


def _timed(fn):
  t0 = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t0


def _summary(values: list[float]) -> dict:
  v = np.asarray(values, np.float64)
  return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def bench_methods(name: str, num_steps: int, seeds: int = 1) -> list[dict]:
  """grid vs halving vs PBT (and random search at the same compute) on one task. Each method's first
  call compiles, the second (seed 0) is timed; PBT and random also run with seeds 1..seeds-1, and are
  judged by the median over seeds."""
  task, mode = make_task(name)
  common = {"eval_fn": task.eval_fn, "eval_mode": mode, "keep_params": False}
  grid = {"lr": LRS, "b1": B1S}
  lo, hi = min(LRS), max(LRS)
  box = {"lr": spaces.log_uniform(lo, hi), "b1": spaces.uniform(min(B1S), max(B1S))}

  def run_grid(seed=0):
    return lr_jax.sweep(task.loss_fn, task.params, task.batches, optimizer=_opt, grid=grid,
                        num_steps=num_steps, **common)  # fmt: skip

  def run_halving(seed=0):
    return lr_jax.search(task.loss_fn, task.params, task.batches, optimizer=_opt, space=grid, num_steps=num_steps,
                         method="halving", eta=2, min_steps=max(1, num_steps // 8), **common)  # fmt: skip

  def sampled(method):
    def run(seed=0):
      return lr_jax.search(task.loss_fn, task.params, task.batches, optimizer=_opt, space=box,
                           num_steps=num_steps, method=method, num_samples=32, sampler="halton", seed=seed,
                           **common)  # fmt: skip

    return run

  out = {}
  for label, fn in (("grid", run_grid), ("halving", run_halving), ("pbt", sampled("pbt")),
                    ("random", sampled("random"))):  # fmt: skip
    log(f"[{name}] {label} ...")
    _, first = _timed(fn)
    res, run_s = _timed(fn)
    if label == "grid":
      best = float(np.nanmax(res.eval) if mode == "max" else np.nanmin(res.eval))
      steps, cfg = 32 * num_steps, res.best()
    else:
      best, steps, cfg = float(res.best()[res.key]), int(res.steps_trained), res.best()
    by_seed = [best]
    if label in ("pbt", "random"):
      by_seed += [float(fn(seed).best()[res.key]) for seed in range(1, seeds)]
    out[label] = {"best": best, "by_seed": by_seed, "steps": steps, "compile_s": max(0.0, first - run_s),
                  "run_s": run_s, "lr": cfg["lr"], "b1": cfg["b1"]}  # fmt: skip
  g = out["grid"]
  recs = []
  for label, r in out.items():
    seeded = label in ("pbt", "random")
    stats = _summary(r["by_seed"])
    judged = stats["median"] if seeded else r["best"]
    rec = {
      "name": f"search/{name}/{label}", "contender": "summary", "task": name, "method": label,
      "metric": task.metric, "mode": mode, "num_steps": num_steps, "best_eval": judged,
      "steps_trained": r["steps"], "steps_vs_grid": r["steps"] / g["steps"],
      "rel_gap_vs_grid": _rel_gap(judged, g["best"], mode), "compile_s": r["compile_s"], "run_s": r["run_s"],
      "best_lr": r["lr"], "best_b1": r["b1"],
    }  # fmt: skip
    if seeded:
      rec.update({"seeds": len(r["by_seed"]), "best_eval_by_seed": r["by_seed"], "best_eval_median": stats["median"],
                  "best_eval_min": stats["min"], "best_eval_max": stats["max"],
                  "seeds_at_least_grid": sum(_better(v, g["best"], mode) for v in r["by_seed"])})  # fmt: skip
    if label == "halving":
      rec["target_met"] = rec["rel_gap_vs_grid"] <= 0.01 and rec["steps_vs_grid"] <= 1 / 3
    if label == "pbt":
      rec["target_met"] = _better(stats["median"], g["best"], mode)
    recs.append(emit(rec))
  return recs


def _user_loop(task, mode, num_steps, lo, hi, b_lo, b_hi):
  """Optuna's usual loop as a user writes it: the jitted step is built inside the objective."""
  xb, yb = task.batches
  n = xb.shape[0]
  evaluate = jax.jit(task.eval_fn)

  def objective(trial):
    lr = trial.suggest_float("lr", lo, hi, log=True)
    b1 = trial.suggest_float("b1", b_lo, b_hi)
    tx = optax.adam(lr, b1=b1)

    @jax.jit
    def step(params, state, x, y):
      loss, g = jax.value_and_grad(task.loss_fn)(params, (x, y))
      u, state = tx.update(g, state, params)
      return optax.apply_updates(params, u), state, loss

    params, state = task.params, tx.init(task.params)
    for t in range(num_steps):
      params, state, _ = step(params, state, xb[t % n], yb[t % n])
    return float(evaluate(params))

  return objective


def _user_warm_loop(task, mode, num_steps, lo, hi, b_lo, b_hi):
  """The same loop with one step compiled once: the rates are arguments (``inject_hyperparams``)."""
  xb, yb = task.batches
  n = xb.shape[0]
  evaluate = jax.jit(task.eval_fn)
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3, b1=0.9)

  @jax.jit
  def step(params, state, x, y):
    loss, g = jax.value_and_grad(task.loss_fn)(params, (x, y))
    u, state = tx.update(g, state, params)
    return optax.apply_updates(params, u), state, loss

  def objective(trial):
    lr = trial.suggest_float("lr", lo, hi, log=True)
    b1 = trial.suggest_float("b1", b_lo, b_hi)
    params, state = task.params, tx.init(task.params)
    state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    state.hyperparams["b1"] = jnp.asarray(b1, jnp.float32)
    for t in range(num_steps):
      params, state, _ = step(params, state, xb[t % n], yb[t % n])
    return float(evaluate(params))

  return objective


def bench_optuna(
  name: str, num_steps: int, trials: int, batch: int, seeds: int, user_trials: int | None = None
) -> list[dict]:
  """The bridge against Optuna's loop, ``trials`` trials per study and TPE seed. The loop that compiles
  per trial (``user``) runs its first ``user_trials`` only when fewer are asked (its trials/s is a rate;
  its best is then not comparable, and the bridge's best is judged against ``user_warm``, the same loop
  compiled once)."""
  user_trials = trials if user_trials is None else min(trials, user_trials)
  import optuna

  optuna.logging.set_verbosity(optuna.logging.WARNING)
  task, mode = make_task(name)
  lo, hi, b_lo, b_hi = min(LRS), max(LRS), min(B1S), max(B1S)
  direction = "maximize" if mode == "max" else "minimize"
  box = {"lr": spaces.log_uniform(lo, hi), "b1": spaces.uniform(b_lo, b_hi)}
  out = {"bridge": [], "user": [], "user_warm": []}
  for s in range(seeds):
    # The contenders take turns, in a different order each seed.
    order = ["bridge", "user", "user_warm"]
    order = order[s % 3 :] + order[: s % 3]
    for label in order:
      study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=s))
      log(f"[{name}] optuna {label} seed {s} ...")
      if label == "bridge":
        run = lambda study=study: lr_jax.search(
          task.loss_fn, task.params, task.batches, optimizer=_opt, space=box, num_steps=num_steps,
          method="optuna", study=study, num_samples=trials, batch_size=batch, eval_fn=task.eval_fn,
          eval_mode=mode, keep_params=False,
        )  # fmt: skip
      else:
        make = _user_loop if label == "user" else _user_warm_loop
        objective = make(task, mode, num_steps, lo, hi, b_lo, b_hi)
        n = user_trials if label == "user" else trials
        run = lambda study=study, objective=objective, n=n: study.optimize(objective, n_trials=n)
      _, secs = _timed(run)
      assert len(study.trials) == (user_trials if label == "user" else trials)
      out[label].append((secs, float(study.best_value)))
  recs = []
  count = {"bridge": trials, "user": user_trials, "user_warm": trials}
  base = out["user"]
  base_tps = user_trials * len(base) / sum(t for t, _ in base)
  for label, rows in out.items():
    secs = [t for t, _ in rows]
    best = [v for _, v in rows]
    tps = count[label] * len(rows) / sum(secs)
    rec = {
      "name": f"search/{name}/optuna_{label}", "contender": "summary", "task": name, "method": f"optuna_{label}",
      "metric": task.metric, "mode": mode, "num_steps": num_steps,
      "trials": count[label], "batch_size": batch if label == "bridge" else 1, "seeds": len(rows), "seconds": secs,
      "trials_per_s": tps, "speedup_vs_user": tps / base_tps, "best": best, "best_mean": float(np.mean(best)),
      "best_spread": float(np.ptp(best)),
    }  # fmt: skip
    recs.append(rec)
  b, u = recs[0], recs[1] if user_trials == trials else recs[2]
  recs[0]["quality_vs"] = u["method"]
  spread = max(b["best_spread"], u["best_spread"])
  gap = (u["best_mean"] - b["best_mean"]) if mode == "max" else (b["best_mean"] - u["best_mean"])
  # As good: within the spread over seeds (float32 rounding when the spread is 0, i.e. one seed).
  recs[0]["as_good_within_spread"] = bool(gap <= max(spread, 1e-5 * abs(u["best_mean"])))
  recs[0]["target_met"] = recs[0]["speedup_vs_user"] >= 5 and recs[0]["as_good_within_spread"]
  return [emit(r) for r in recs]


def _fmt(x: float) -> str:
  return f"{x:.4g}"


LABELS = {
  "grid": "grid, 8 rates x 4 `b1`",
  "halving": "halving (eta 2, the grid's 32 candidates)",
  "pbt": "PBT (defaults; 32 Halton members of the grid's box)",
  "random": "random (the same 32 Halton trials, no exploit)",
}
OPTUNA_LABELS = {
  "optuna_bridge": 'bridge (`method="optuna"`)',
  "optuna_user": "`study.optimize`, step jitted in the objective",
  "optuna_user_warm": "`study.optimize`, one step compiled, rates as arguments",
}


def _split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
  methods = [r for r in rows if r.get("method") in LABELS]
  return methods, [r for r in rows if r.get("method") in OPTUNA_LABELS]


def _method_table(method_recs: list[dict]) -> str:
  body = []
  for r in method_recs:
    met = r.get("target_met")
    if "seeds" in r:
      best = f"{_fmt(r['best_eval_median'])} ({_fmt(r['best_eval_min'])}-{_fmt(r['best_eval_max'])})"
      seeds = f"{r['seeds_at_least_grid']}/{r['seeds']}"
    else:
      best, seeds = _fmt(r["best_eval"]), ""
    body.append([r["task"], LABELS[r["method"]], f"{r['metric']} ({r['mode']})", best, seeds,
                 f"{r['steps_vs_grid']:.2f}", f"{100 * r['rel_gap_vs_grid']:.2f}%", f"{r['run_s']:.2f}",
                 "" if met is None else ("yes" if met else "NO")])  # fmt: skip
  hdr = ["task", "method", "metric", "best: median (min-max) over seeds", "seeds >= grid", "steps / grid",
         "worse than grid (median)", "run s (seed 0)", "target met"]  # fmt: skip
  return md_table(hdr, body) if body else ""


def _optuna_table(optuna_recs: list[dict]) -> str:
  body = []
  full = max((r["trials"] for r in optuna_recs), default=0)
  for r in optuna_recs:
    met = r.get("target_met")
    label = OPTUNA_LABELS[r["method"]] + (f" (its first {r['trials']} trials)" if r["trials"] < full else "")
    best = ", ".join(_fmt(v) for v in r["best"]) if r["trials"] == full else "(fewer trials)"
    body.append([r["task"], label, r["batch_size"], f"{r['trials_per_s']:.2f}", f"{r['speedup_vs_user']:.1f}x",
                 best, "" if met is None else ("yes" if met else "NO")])  # fmt: skip
  hdr = ["task", f"{full} TPE trials", "trials / program", "trials/s", "vs user loop", "best, by sampler seed",
         "target met"]  # fmt: skip
  return md_table(hdr, body) if body else ""


def markdown(rows: list[dict]) -> str:
  """The report's section: the methods against the grid, then the Optuna bridge against Optuna's loop."""
  method_recs, optuna_recs = _split(rows)
  out = ["### Search: halving, PBT and the Optuna bridge against a 32-point grid"]
  if method_recs:
    n = method_recs[0]["num_steps"]
    out += [_method_table(method_recs), (
      f"Adam, {n} steps per trial, one task per block; each contender is judged by its best trial's held-out "
      "score. PBT and random search are seeded (the seed scrambles the Halton population and drives PBT's "
      "choices): their best is the median over seeds, with its range and the number of seeds at least as "
      "good as the grid; the grid and halving have no seed. Targets: halving within 1% of the grid's best "
      "for <= 1/3 of its steps; PBT's median at least as good as the grid's best at the grid's compute."
    )]  # fmt: skip
  if optuna_recs:
    vs = next((r["quality_vs"] for r in optuna_recs if "quality_vs" in r), "optuna_user")
    out += [_optuna_table(optuna_recs), (
      "Times are end to end (asks, compiles, training, tells); the bridge compiles once per process. "
      "Target: >= 5x the trials per second of the user loop (the first row of `study.optimize`), and a "
      f"best as good as the loop's ({OPTUNA_LABELS[vs]}) within the spread over sampler seeds."
    )]  # fmt: skip
  return "\n\n".join(out) + "\n"


def goal(rows: list[dict]) -> str:
  """One line for run.py's goals (issue 14)."""
  method_recs, optuna_recs = _split(rows)
  claims = (
    (method_recs, "halving", "halving within 1% of the grid's best for <= 1/3 of its steps",
     lambda r: f"{r['task']} {100 * r['rel_gap_vs_grid']:.2f}% worse, {r['steps_vs_grid']:.2f} of the steps"),
    (method_recs, "pbt", "PBT at the grid's compute, median over seeds at least as good as the grid's best",
     lambda r: f"{r['task']} {_fmt(r['best_eval_median'])}, {r['seeds_at_least_grid']}/{r['seeds']} seeds"),
    (optuna_recs, "optuna_bridge", "Optuna bridge >= 5x the trials/s of Optuna's loop, as good a best",
     lambda r: f"{r['task']} {r['speedup_vs_user']:.1f}x"),
  )  # fmt: skip
  parts = []
  for recs, method, claim, detail in claims:
    picked = [r for r in recs if r["method"] == method]
    if picked:
      parts.append(
        f"{claim} ({', '.join(detail(r) for r in picked)}): {_ok(all(r['target_met'] for r in picked))}"
      )
  return "- Search (issue 14): " + "; ".join(parts) + "." if parts else ""


def _ok(flag: bool) -> str:
  return "**met**" if flag else "**not met**"


def run(mode: str = "quick", task_names=None, parts=("methods", "optuna")) -> tuple[list[dict], str]:
  m = MODES[mode]
  method_recs, optuna_recs = [], []
  for name in (task_names or m.tasks) if "methods" in parts else ():
    method_recs += bench_methods(name, m.num_steps, m.seeds)
  if "optuna" in parts and importlib.util.find_spec("optuna") is None:
    log("optuna is not installed (the `search` extra): the Optuna bridge part is skipped")
    parts = tuple(p for p in parts if p != "optuna")
  for name in (task_names or m.optuna_tasks) if "optuna" in parts else ():
    optuna_recs += bench_optuna(name, m.num_steps, m.trials, m.batch, m.optuna_seeds, m.user_trials)
  rows = method_recs + optuna_recs
  return rows, markdown(rows)


# ``--parts pbt_study``: PBT's defaults against single changes of them, over task instances (data
# seeds), run lengths and PBT seeds, each cell next to its own grid. Not part of run.py (minutes).
STUDY_INSTANCES = (("digits", 0), ("digits", 1), ("digits", 2), ("diabetes", 0), ("diabetes", 1),
                   ("diabetes", 2), ("diabetes", 3))  # fmt: skip
STUDY_STEPS = (150, 300, 600)
STUDY_VARIANTS = {
  "defaults": {},
  "random (no exploit)": {"method": "random"},
  "interval n/20": {"interval_div": 20},
  "resample_prob 0.5": {"resample_prob": 0.5},
  "quantile 0.125": {"quantile": 0.125},
  "n/20 + resample 0.5": {"interval_div": 20, "resample_prob": 0.5},
}


def pbt_study(seeds: int = 16, instances=STUDY_INSTANCES, steps=STUDY_STEPS) -> list[dict]:
  """For every task instance and run length: the grid's best, and each variant's best per PBT seed
  (32 Halton members of the grid's box, the grid's compute)."""
  recs = []
  for name, data_seed in instances:
    task, mode = make_task(name, data_seed)
    common = {"eval_fn": task.eval_fn, "eval_mode": mode, "keep_params": False}
    box = {"lr": spaces.log_uniform(min(LRS), max(LRS)), "b1": spaces.uniform(min(B1S), max(B1S))}
    for n in steps:
      log(f"[study] {name}:{data_seed} {n} steps ...")
      g = lr_jax.sweep(task.loss_fn, task.params, task.batches, optimizer=_opt, grid={"lr": LRS, "b1": B1S},
                       num_steps=n, **common)  # fmt: skip
      gbest = float(np.nanmax(g.eval) if mode == "max" else np.nanmin(g.eval))
      gcfg = g.best()
      for label, kw in STUDY_VARIANTS.items():
        kw = dict(kw)
        method = kw.pop("method", "pbt")
        if "interval_div" in kw:
          kw["interval"] = max(1, n // kw.pop("interval_div"))
        vals = [
          float(lr_jax.search(task.loss_fn, task.params, task.batches, optimizer=_opt, space=box, num_steps=n,
                              method=method, num_samples=32, sampler="halton", seed=s, **common, **kw).best()["eval"])
          for s in range(seeds)
        ]  # fmt: skip
        recs.append(emit({"name": f"search_study/{name}:{data_seed}/{n}/{label}", "contender": "study",
                          "task": name, "data_seed": data_seed, "num_steps": n, "variant": label, "mode": mode,
                          "grid_best": gbest, "grid_lr": gcfg["lr"], "grid_b1": gcfg["b1"],
                          "best_by_seed": vals}))  # fmt: skip
  return recs


def study_tables(recs: list[dict]) -> tuple[str, str]:
  """Per variant: over the cells (instance x run length), how often PBT's median over seeds is at least
  as good as the grid, the mean of (median gain over the grid), and, seed by seed against the defaults
  (the same initial population), in how many cells its median paired difference is better or worse."""
  cells: dict = {}
  for r in recs:
    v = np.asarray(r["best_by_seed"])
    sign = 1.0 if r["mode"] == "max" else -1.0
    gain = sign * (v - r["grid_best"]) / abs(r["grid_best"])  # > 0: better than the grid, relative
    cell = cells.setdefault((r["task"], r["data_seed"], r["num_steps"]), {})
    cell[r["variant"]] = gain
    cell["grid"] = f"{r['grid_best']:.4g} ({r['grid_lr']:.3g}, {r['grid_b1']:.3g})"
  body = []
  for label in STUDY_VARIANTS:
    med = np.array([np.median(c[label]) for c in cells.values()])
    diff = np.array([np.median(c[label] - c["defaults"]) for c in cells.values()])
    seeds_ok = np.mean([np.mean(c[label] >= 0) for c in cells.values()])
    body.append([label, f"{int((med >= 0).sum())}/{len(med)}", f"{100 * med.mean():+.2f}%",
                 f"{100 * np.median(med):+.2f}%", f"{100 * seeds_ok:.0f}%",
                 "" if label == "defaults" else f"{int((diff > 0).sum())} / {int((diff < 0).sum())}"])  # fmt: skip
  hdr = ["variant", "cells: median >= grid", "mean of median gain", "median of median gain", "seeds >= grid",
         "cells better / worse than defaults"]  # fmt: skip
  per_cell = []
  for (task, ds, n), c in cells.items():
    gains = [f"{100 * np.median(c[label]):+.2f}%" for label in STUDY_VARIANTS]
    per_cell.append([f"{task}:{ds}", n, c["grid"], *gains])
  return md_table(hdr, body), md_table(
    ["task:data seed", "steps", "grid's best (lr, b1)", *STUDY_VARIANTS], per_cell
  )


def study_markdown(recs: list[dict]) -> str:
  """The study's section: :func:`study_tables` with their titles."""
  summary, per_cell = study_tables(recs)
  cells = {(r["task"], r["data_seed"], r["num_steps"]) for r in recs}
  seeds = len(recs[0]["best_by_seed"]) if recs else 0
  return (
    f"### PBT's defaults against single changes ({len(cells)} cells, {seeds} PBT seeds each)\n\n"
    + summary
    + "\n\nMedian over seeds of the gain of the best held-out score over the grid's best (relative; > 0 "
    "is better), per cell:\n\n" + per_cell + "\n"
  )


def readme_tables(rows: list[dict]) -> str:
  """What the README quotes of a run: the methods' table, the Optuna table, the goals line, and the
  PBT study's summary (each present when the run has it)."""
  method_recs, optuna_recs = _split(rows)
  study = [r for r in rows if r.get("contender") == "study"]
  parts = [_method_table(method_recs), _optuna_table(optuna_recs), goal(method_recs + optuna_recs)]
  if study:
    parts.append(study_tables(study)[0])
  return "\n\n".join(p for p in parts if p) + "\n"


def write_json(path: str, argv, mode: str, rows: list[dict], md: str, info: dict, seconds: float) -> None:
  doc = {"command": "python bench/bench_search.py " + " ".join(argv), "mode": mode, "env": info,
         "seconds": seconds, "records": rows, "markdown": md}  # fmt: skip
  Path(path).write_text(json.dumps(doc, indent=1, default=float) + "\n")


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  ap.add_argument("--tasks", nargs="+", choices=["digits", "diabetes"], default=None,
                  help="default: the mode's (smoke: diabetes; quick, full: digits and diabetes)")  # fmt: skip
  ap.add_argument("--parts", nargs="+", choices=["methods", "optuna", "pbt_study"], default=["methods", "optuna"],
                  help="pbt_study: PBT's defaults against single changes (minutes; --study-seeds)")  # fmt: skip
  ap.add_argument("--study-seeds", type=int, default=16, help="PBT seeds per cell of pbt_study")
  ap.add_argument("--json", default=None, help="also write the records and the report to this JSON file")
  argv = sys.argv[1:] if argv is None else list(argv)
  args = ap.parse_args(argv)
  info = env_info()
  emit({"name": "search_env", **info})
  t0 = time.perf_counter()
  parts = tuple(p for p in args.parts if p != "pbt_study")
  rows, md = run(args.mode, tuple(args.tasks) if args.tasks else None, parts) if parts else ([], "")
  if rows:
    md += "\n" + goal(rows) + "\n"
  if "pbt_study" in args.parts:
    study = pbt_study(args.study_seeds)
    rows += study
    md += "\n" + study_markdown(study)
  print()
  print(md)
  if args.json:
    write_json(args.json, argv, args.mode, rows, md, info, time.perf_counter() - t0)
  load = info.get("load_avg_1m", math.nan)
  print(f"\n(mode {args.mode}, {time.perf_counter() - t0:.0f} s; {info['device']}, {info['cpu_count']} CPUs, "
        f"1-minute load {load:.1f} at the start: a shared machine, so compare ratios, not seconds)")  # fmt: skip


if __name__ == "__main__":
  main()
