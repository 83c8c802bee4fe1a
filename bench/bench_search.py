"""Searching beyond the grid: successive halving, PBT and the Optuna bridge against a 32-point grid.

Two tasks of ``lr_jax.tasks``: the digits MLP (64-32-10, mini-batches of 64, held-out accuracy, higher
is better) and the diabetes regression MLP (10-32-1, mini-batches of 32, held-out MSE, lower is
better). Every contender trains Adam (``optax.adam(lr, b1=b1)``) for ``num_steps`` steps from the
same initial parameters on the same batches, and is judged by its best trial's held-out score.

* ``grid``: ``lr_jax.sweep`` over 8 learning rates x 4 values of ``b1`` (32 configurations);
* ``halving``: ``lr_jax.search(method="halving")`` over the same 32 candidates (eta 2, first rung
  ``num_steps // 8``: 32 -> 16 -> 8 -> 4 lanes), target: best within 1% (relative) of the grid's best
  for <= 1/3 of its training steps;
* ``pbt``: ``lr_jax.search(method="pbt")``, a population of 32 sampled (scrambled Halton) from the
  box the grid spans (log-uniform lr, uniform b1), the grid's compute (32 x num_steps steps);
  target: best at least as good as the grid's best;
* ``optuna``: 64 trials of Optuna's TPE over that box, ``batch_size=16`` trials per program with the
  bridge (``lr_jax.search(method="optuna")``), against Optuna's usual loop, ``study.optimize`` with
  an objective that builds ``optax.adam`` and runs a jitted step in a Python loop (``user``: the step
  is jitted inside the objective, as a user writes it, so every trial compiles; ``user_warm``: one
  step compiled once, the rates passed through ``optax.inject_hyperparams``). Target: >= 5x the
  trials per second of ``user``, and a best trial as good within the spread over sampler seeds.
  Times are end to end (asks, compiles, training, tells); the bridge compiles once per process.

Run ``python bench/bench_search.py [--mode smoke|quick|full] [--tasks digits diabetes] [--parts methods
optuna]``. PBT also runs with more seeds (``2 x`` the sampler seeds) to show its spread. It prints
JSON lines (``bench/_common.py``'s ``emit``) and a Markdown table, and edits no file.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import emit, env_info, log, md_table

import lr_jax
from lr_jax import spaces, tasks

# num_steps, optuna trials, optuna batch size, sampler seeds (Optuna's TPE; PBT: twice as many)
MODES = {
  "smoke": (16, 8, 4, 1),
  "quick": (300, 64, 16, 2),
  "full": (300, 64, 16, 3),
}
LRS = [float(f"{x:.3g}") for x in np.geomspace(3e-4, 3e-1, 8)]
B1S = [0.5, 0.8, 0.9, 0.99]


def make_task(name: str):
  """``(task, eval_mode)``: digits (accuracy, max) or diabetes (test MSE, min)."""
  if name == "digits":
    return tasks.make("digits"), "max"
  make = getattr(tasks, "make_diabetes", None)
  if make is not None:
    return make(), "min"
  return _diabetes_fallback(), "min"  # pragma: no cover - an lr_jax without make_diabetes


def _diabetes_fallback():  # pragma: no cover
  from sklearn.datasets import load_diabetes

  x, y = load_diabetes(return_X_y=True)
  order = np.random.default_rng(0).permutation(len(y))
  x, y = x[order], y[order]
  mx, sx, my, sy = x[100:].mean(0), x[100:].std(0), y[100:].mean(), y[100:].std()
  x, y = ((x - mx) / sx).astype(np.float32), ((y - my) / sy).astype(np.float32)
  xb, yb = jnp.asarray(x[100:420].reshape(10, 32, 10)), jnp.asarray(y[100:420].reshape(10, 32))
  xt, yt = jnp.asarray(x[:100]), jnp.asarray(y[:100])

  def mse(p, b):
    return jnp.mean(jnp.square(tasks.mlp_apply(p, b[0])[:, 0] - b[1]))

  return tasks.Task("diabetes", mse, tasks.mlp_init(jax.random.key(0), (10, 32, 1)), (xb, yb),
                    lambda p: mse(p, (xt, yt)), "test_mse")  # fmt: skip


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


def bench_methods(name: str, num_steps: int, pbt_seeds: int = 1) -> list[dict]:
  """grid vs halving vs PBT on one task; each run twice (the second, compiled, is timed). PBT (seed
  0 is the one judged) also runs with seeds 1..pbt_seeds-1, to show its spread."""
  task, mode = make_task(name)
  common = {"eval_fn": task.eval_fn, "eval_mode": mode, "keep_params": False}
  grid = {"lr": LRS, "b1": B1S}
  lo, hi = min(LRS), max(LRS)
  box = {"lr": spaces.log_uniform(lo, hi), "b1": spaces.uniform(min(B1S), max(B1S))}

  def run_grid():
    return lr_jax.sweep(task.loss_fn, task.params, task.batches, optimizer=_opt, grid=grid,
                        num_steps=num_steps, **common)  # fmt: skip

  def run_halving():
    return lr_jax.search(task.loss_fn, task.params, task.batches, optimizer=_opt, space=grid, num_steps=num_steps,
                         method="halving", eta=2, min_steps=max(1, num_steps // 8), **common)  # fmt: skip

  def run_pbt(seed=0):
    return lr_jax.search(task.loss_fn, task.params, task.batches, optimizer=_opt, space=box, num_steps=num_steps,
                         method="pbt", num_samples=32, sampler="halton", seed=seed, **common)  # fmt: skip

  out = {}
  for label, fn in (("grid", run_grid), ("halving", run_halving), ("pbt", run_pbt)):
    log(f"[{name}] {label} ...")
    _, first = _timed(fn)
    res, run_s = _timed(fn)
    if label == "grid":
      best = float(np.nanmax(res.eval) if mode == "max" else np.nanmin(res.eval))
      steps, cfg = 32 * num_steps, res.best()
    else:
      best, steps, cfg = float(res.best()[res.key]), int(res.steps_trained), res.best()
    out[label] = {"best": best, "steps": steps, "compile_s": max(0.0, first - run_s), "run_s": run_s,
                  "lr": cfg["lr"], "b1": cfg["b1"]}  # fmt: skip
  g = out["grid"]
  recs = []
  for label, r in out.items():
    rec = {
      "name": f"search_{label}", "task": name, "metric": task.metric, "mode": mode, "num_steps": num_steps,
      "best_eval": r["best"], "steps_trained": r["steps"], "steps_vs_grid": r["steps"] / g["steps"],
      "rel_gap_vs_grid": _rel_gap(r["best"], g["best"], mode), "compile_s": r["compile_s"], "run_s": r["run_s"],
      "best_lr": r["lr"], "best_b1": r["b1"],
    }  # fmt: skip
    if label == "halving":
      rec["target_met"] = rec["rel_gap_vs_grid"] <= 0.01 and rec["steps_vs_grid"] <= 1 / 3
    if label == "pbt":
      rec["target_met"] = _better(r["best"], g["best"], mode)
      others = [float(run_pbt(seed).best()["eval"]) for seed in range(1, pbt_seeds)]
      rec["best_eval_by_seed"] = [r["best"], *others]
      rec["seeds_at_least_grid"] = sum(_better(v, g["best"], mode) for v in rec["best_eval_by_seed"])
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


def bench_optuna(name: str, num_steps: int, trials: int, batch: int, seeds: int) -> list[dict]:
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
        run = lambda study=study, objective=objective: study.optimize(objective, n_trials=trials)
      _, secs = _timed(run)
      assert len(study.trials) == trials
      out[label].append((secs, float(study.best_value)))
  recs = []
  base = out["user"]
  base_tps = trials * len(base) / sum(t for t, _ in base)
  for label, rows in out.items():
    secs = [t for t, _ in rows]
    best = [v for _, v in rows]
    tps = trials * len(rows) / sum(secs)
    rec = {
      "name": f"search_optuna_{label}", "task": name, "metric": task.metric, "mode": mode, "num_steps": num_steps,
      "trials": trials, "batch_size": batch if label == "bridge" else 1, "seeds": len(rows), "seconds": secs,
      "trials_per_s": tps, "speedup_vs_user": tps / base_tps, "best": best, "best_mean": float(np.mean(best)),
      "best_spread": float(np.ptp(best)),
    }  # fmt: skip
    recs.append(rec)
  b, u = recs[0], recs[1]
  spread = max(b["best_spread"], u["best_spread"])
  gap = (u["best_mean"] - b["best_mean"]) if mode == "max" else (b["best_mean"] - u["best_mean"])
  # As good: within the spread over seeds (float32 rounding when the spread is 0, i.e. one seed).
  recs[0]["as_good_within_spread"] = bool(gap <= max(spread, 1e-5 * abs(u["best_mean"])))
  recs[0]["target_met"] = recs[0]["speedup_vs_user"] >= 5 and recs[0]["as_good_within_spread"]
  return [emit(r) for r in recs]


def _fmt(x: float) -> str:
  return f"{x:.4g}"


def table(method_recs: list[dict], optuna_recs: list[dict]) -> str:
  rows = []
  for r in method_recs:
    met = r.get("target_met")
    by_seed = r.get("best_eval_by_seed")
    seeds = (
      "" if by_seed is None else f"{', '.join(_fmt(v) for v in by_seed)} ({r['seeds_at_least_grid']} >= grid)"
    )
    rows.append([r["task"], r["name"].removeprefix("search_"), f"{r['metric']} ({r['mode']})", _fmt(r["best_eval"]),
                 f"{r['steps_vs_grid']:.2f}", f"{100 * r['rel_gap_vs_grid']:.2f}%", f"{r['run_s']:.2f}",
                 "" if met is None else ("yes" if met else "NO"), seeds])  # fmt: skip
  hdr = [
    "task",
    "method",
    "metric",
    "best",
    "steps / grid",
    "worse than grid",
    "run s",
    "target met",
    "PBT by seed",
  ]
  out = md_table(hdr, rows) if rows else ""
  rows = []
  for r in optuna_recs:
    met = r.get("target_met")
    rows.append([r["task"], r["name"].removeprefix("search_optuna_"), r["batch_size"], f"{r['trials_per_s']:.2f}",
                 f"{r['speedup_vs_user']:.1f}x", f"{_fmt(r['best_mean'])} ± {_fmt(r['best_spread'] / 2)}",
                 "" if met is None else ("yes" if met else "NO")])  # fmt: skip
  hdr = ["task", "Optuna loop", "trials / program", "trials/s", "vs user loop", "best (mean ± half-range)",
         "target met"]  # fmt: skip
  return "\n\n".join(t for t in (out, md_table(hdr, rows) if rows else "") if t)


def run(
  mode: str = "quick", task_names=("digits", "diabetes"), parts=("methods", "optuna")
) -> tuple[list[dict], str]:
  num_steps, trials, batch, seeds = MODES[mode]
  method_recs, optuna_recs = [], []
  for name in task_names if "methods" in parts else ():
    method_recs += bench_methods(name, num_steps, 2 * seeds)
  for name in task_names if "optuna" in parts else ():
    optuna_recs += bench_optuna(name, num_steps, trials, batch, seeds)
  return method_recs + optuna_recs, table(method_recs, optuna_recs)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  ap.add_argument("--tasks", nargs="+", choices=["digits", "diabetes"], default=["digits", "diabetes"])
  ap.add_argument("--parts", nargs="+", choices=["methods", "optuna"], default=["methods", "optuna"])
  args = ap.parse_args(argv)
  info = env_info()
  emit({"name": "search_env", **info})
  t0 = time.perf_counter()
  _, md = run(args.mode, tuple(args.tasks), tuple(args.parts))
  print()
  print(md)
  load = info.get("load_avg_1m", math.nan)
  print(f"\n(mode {args.mode}, {time.perf_counter() - t0:.0f} s; {info['device']}, {info['cpu_count']} CPUs, "
        f"1-minute load {load:.1f} at the start: a shared machine, so compare ratios, not seconds)")  # fmt: skip


if __name__ == "__main__":
  main()
