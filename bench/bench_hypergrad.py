"""Hypergradients through training: their cost, their memory, and tuning by them against a grid.

Two tasks of ``lr_jax.tasks``: the digits MLP (64-32-10, mini-batches of 64; held-out loss: the test
cross-entropy) and the diabetes regression MLP (10-32-1, mini-batches of 32; held-out loss: the
test MSE). Every run trains ``optimizers.adam(schedules.one_cycle(peak_value, N, pct_start=...,
final_div_factor=...))`` for N steps from the task's initial parameters, and the three
hyperparameters ``(peak_value, pct_start, final_div_factor)`` are the ones differentiated / tuned.

``digits_full`` is the digits MLP with one full batch of 1347 images per step: the same model with
20x the work per step (small steps are dominated by per-operation overheads on a CPU).

* ``cost``: seconds of one training run (a jitted plain Optax loop + the held-out loss: the unit)
  against the compiled forward-mode and reverse-mode hypergradient programs of the 3
  hyperparameters, and ``lr_jax.hypergradient`` called end to end (argument checks included),
  interleaved round-robin (``_common.interleave``). Goal: forward mode <= 4x one training run.
* ``memory``: XLA's ``memory_analysis()`` of the compiled programs (temporary buffers) at N and 10N
  steps: reverse mode with the default segments (about sqrt(N) steps each), reverse mode without
  segments, forward mode. Stated bound for the segmented reverse mode: temporaries at 10N <= 4x
  those at N (sqrt(10) = 3.16, plus what does not grow), where storing every step grows ~10x.
* ``tune``: the best held-out loss of a 32-point grid (4 peak values x 4 ``pct_start`` x 2
  ``final_div_factor``, trained by ``lr_jax.sweep`` in one vmapped program) against ``lr_jax.tune``
  on the same box (log-uniform peak and final_div_factor, uniform pct_start), started from
  ``lr_jax.lr_find``'s suggestion (100 steps) with pct_start 0.3 and final_div_factor 1e3, for a few
  (starts, outer steps). Compute counts every run at its measured cost in units of one training run
  (grid: 32; tune: lr_find's 100 steps as 100 training steps + starts x outer steps x the measured
  forward-mode ratio + starts final runs), and wall time of the compiled programs (both warm;
  lr_find's steps counted at a training step's cost: its own wall time, host work included, is in
  the JSON). Goal: within 1% of the grid's best held-out loss for <= 1/4 of its compute. "found at
  outer step" 0 means the starting point (lr_find's suggestion) was the best point: the gradient
  steps did not improve on it.

Run ``python bench/bench_hypergrad.py [--mode smoke|quick|full] [--tasks digits diabetes digits_full] [--parts
cost memory tune] [--json FILE]``. It prints JSON lines (``bench/_common.py``'s ``emit``) and Markdown
tables, and edits no tracked file unless ``--json`` names one: the committed ``bench/hypergrad.json``
(``--mode quick --json bench/hypergrad.json``) holds the run whose tables the README quotes.
"""

from __future__ import annotations

import argparse
import json
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
from _common import emit, env_info, interleave, log, md_table, median

import lr_jax
from lr_jax import optimizers, schedules, spaces, tasks

# num_steps, timing repeats, timing budget (s) per case, tune protocols (starts, outer steps)
MODES = {
  "smoke": (16, 1, 0.0, [(1, 1), (2, 2)]),
  "quick": (300, 5, 8.0, [(1, 1), (1, 2), (1, 4), (4, 4), (8, 8)]),
  "full": (300, 11, 20.0, [(1, 1), (1, 2), (1, 4), (2, 4), (4, 4), (4, 8), (8, 8)]),
}
PEAKS = [float(f"{x:.3g}") for x in np.geomspace(1e-3, 1e-1, 4)]
PCTS = [0.1, 0.25, 0.4, 0.55]
FDFS = [10.0, 1e4]
H0 = {"peak_value": 0.01, "pct_start": 0.3, "final_div_factor": 1e3}
OUTER_LR = 0.5
FINDER_STEPS = 100


def make_task(name: str):
  """``(loss_fn, params, batches, held_out_loss)``."""
  if name in ("digits", "digits_full"):
    task = tasks.make("digits", batch_size=64 if name == "digits" else 1347)
    d = tasks.digits_data(seed=0)
    xt, yt = jnp.asarray(d["x_test"]), jnp.asarray(d["y_test"])
    return task.loss_fn, task.params, task.batches, lambda p: tasks.mlp_loss(p, (xt, yt))
  task = tasks.make_diabetes()
  return task.loss_fn, task.params, task.batches, task.eval_fn


def make_optimizer(num_steps: int):
  def make(peak_value, pct_start, final_div_factor):
    lr = schedules.one_cycle(peak_value, num_steps, pct_start=pct_start, final_div_factor=final_div_factor)
    return optimizers.adam(lr)

  return make


def _train_program(loss_fn, params, batches, held, make, num_steps):
  """One training run and its held-out loss, hyperparameters as traced arguments: the unit of cost."""
  n = jax.tree_util.tree_leaves(batches)[0].shape[0]

  @jax.jit
  def run(h):
    tx = make(**h)

    def body(c, t):
      p, s = c
      g = jax.grad(loss_fn)(p, jax.tree_util.tree_map(lambda b: b[t % n], batches))
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(body, (params, tx.init(params)), jnp.arange(num_steps))
    return held(p)

  return run


def _program(loss_fn, params, batches, held, make, h, num_steps, mode, checkpoint_every=None):
  """The compiled hypergradient program of ``lr_jax.hypergradient`` and its arguments."""
  hg = sys.modules["lr_jax._hypergrad"]
  spec, args, _, _ = hg._prepare(
    loss_fn, params, batches, make, h, num_steps, held, None, None, mode, "auto", checkpoint_every
  )
  return spec, args, hg._hypergrad_program


def bench_cost(name: str, num_steps: int, repeats: int, budget: float) -> dict:
  loss_fn, params, batches, held = make_task(name)
  make = make_optimizer(num_steps)
  hj = {k: jnp.float32(v) for k, v in H0.items()}
  train = _train_program(loss_fn, params, batches, held, make, num_steps)
  fns = {"train": lambda: jax.block_until_ready(train(hj))}
  compile_s = {}
  for mode in ("forward", "reverse"):
    spec, args, prog = _program(loss_fn, params, batches, held, make, H0, num_steps, mode)
    t0 = time.perf_counter()
    jax.block_until_ready(prog(*args, spec=spec))
    compile_s[mode] = time.perf_counter() - t0
    fns[mode] = lambda spec=spec, args=args, prog=prog: jax.block_until_ready(prog(*args, spec=spec))

  def public():
    r = lr_jax.hypergradient(loss_fn, params, batches, make, H0, num_steps, eval_fn=held)
    jax.block_until_ready(r.grads)

  fns["hypergradient()"] = public
  log(f"[{name}] cost ...")
  samples = interleave(fns, repeats, warmup=2, budget_s=budget)
  med = {k: median(v) for k, v in samples.items()}
  t = med["train"]
  rec = {
    "name": "hypergrad_cost", "task": name, "num_steps": num_steps, "hparams": 3,
    "train_s": t, "forward_s": med["forward"], "reverse_s": med["reverse"], "public_s": med["hypergradient()"],
    "forward_ratio": med["forward"] / t, "reverse_ratio": med["reverse"] / t,
    "public_ratio": med["hypergradient()"] / t, "compile_s": compile_s,
    "samples_s": {k: list(v) for k, v in samples.items()},
  }  # fmt: skip
  rec["target_met"] = rec["forward_ratio"] <= 4.0
  return emit(rec)


def _memory(loss_fn, params, batches, held, make, num_steps, mode, checkpoint_every):
  spec, args, prog = _program(loss_fn, params, batches, held, make, H0, num_steps, mode, checkpoint_every)
  ma = prog.lower(*args, spec=spec).compile().memory_analysis()
  return {
    "temp_bytes": int(ma.temp_size_in_bytes),
    "argument_bytes": int(ma.argument_size_in_bytes),
    "output_bytes": int(ma.output_size_in_bytes),
    "segment": spec.segment if mode == "reverse" else None,
  }


def bench_memory(name: str, num_steps: int) -> list[dict]:
  loss_fn, params, batches, held = make_task(name)
  p_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params))
  carry = 3 * p_bytes  # params + Adam's two moments
  recs = []
  for label, mode, ckpt in (("reverse, segments", "reverse", None), ("reverse, every step", "reverse", 0),
                            ("forward", "forward", None)):  # fmt: skip
    log(f"[{name}] memory {label} ...")
    m1 = _memory(loss_fn, params, batches, held, make_optimizer(num_steps), num_steps, mode, ckpt)
    m10 = _memory(loss_fn, params, batches, held, make_optimizer(10 * num_steps), 10 * num_steps, mode, ckpt)
    rec = {
      "name": "hypergrad_memory", "task": name, "variant": label, "num_steps": num_steps, "carry_bytes": carry,
      "temp_bytes_1x": m1["temp_bytes"], "temp_bytes_10x": m10["temp_bytes"],
      "temp_ratio_10x": m10["temp_bytes"] / max(1, m1["temp_bytes"]), "segment_1x": m1["segment"],
      "segment_10x": m10["segment"], "argument_bytes_1x": m1["argument_bytes"],
    }  # fmt: skip
    if label == "reverse, segments":
      rec["bound"] = "temp(10N) <= 4 temp(N)"
      rec["target_met"] = rec["temp_ratio_10x"] <= 4.0
    recs.append(emit(rec))
  return recs


def _timed(fn):
  t0 = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t0


def bench_tune(name: str, num_steps: int, protocols, forward_ratio: float, unit_s: float) -> list[dict]:
  """Grid vs gradient tuning; ``forward_ratio`` and ``unit_s`` come from :func:`bench_cost` (same process)."""
  loss_fn, params, batches, held = make_task(name)
  make = make_optimizer(num_steps)
  grid = {"peak_value": PEAKS, "pct_start": PCTS, "final_div_factor": FDFS}

  def run_grid():
    return lr_jax.sweep(loss_fn, params, batches, optimizer=lambda h: make(**h), grid=grid, num_steps=num_steps,
                        eval_fn=held, eval_mode="min", keep_params=False)  # fmt: skip

  log(f"[{name}] grid ...")
  run_grid()
  g, grid_s = _timed(run_grid)
  grid_best = float(np.nanmin(g.eval))
  grid_cfg = g.best()

  def run_finder():
    return lr_jax.lr_find(loss_fn, params, batches, optimizer=lambda lr: optimizers.adam(lr),
                          num_steps=FINDER_STEPS, min_lr=1e-5, max_lr=1.0)  # fmt: skip

  run_finder()
  finder, finder_s = _timed(run_finder)
  suggestion = float(finder.suggest())
  space = {
    "peak_value": spaces.log_uniform(min(PEAKS), max(PEAKS)),
    "pct_start": spaces.uniform(min(PCTS), max(PCTS)),
    "final_div_factor": spaces.log_uniform(min(FDFS), max(FDFS)),
  }
  init = {**H0, "peak_value": float(np.clip(suggestion, min(PEAKS), max(PEAKS)))}
  recs = [
    emit({
      "name": "hypergrad_tune_grid", "task": name, "num_steps": num_steps, "best_eval": grid_best,
      "best": grid_cfg, "run_s": grid_s, "units": 32.0, "strategy": g.strategy,
    })
  ]  # fmt: skip
  for starts, outer in protocols:

    def run_tune(starts=starts, outer=outer):
      return lr_jax.tune(loss_fn, params, batches, make, space, num_steps, eval_fn=held, init=init,
                         num_starts=starts, outer_steps=outer, outer_lr=OUTER_LR)  # fmt: skip

    log(f"[{name}] tune {starts} starts x {outer} outer steps ...")
    run_tune()
    res, tune_s = _timed(run_tune)
    # lr_find's 100 steps cost what 100 training steps cost (its wall time, host work included, is in wall_s)
    units = FINDER_STEPS / num_steps + starts * outer * forward_ratio + starts
    rec = {
      "name": "hypergrad_tune", "task": name, "num_steps": num_steps, "starts": starts, "outer_steps": outer,
      "outer_lr": OUTER_LR, "lr_find_suggestion": suggestion, "best_eval": res.best_value,
      "best": res.best_hparams, "best_step": res.best_step, "start_eval": float(res.values[0, 0]),
      "rel_gap_vs_grid": max(0.0, res.best_value - grid_best) / abs(grid_best),
      "units": units, "compute_vs_grid": units / 32.0, "lr_find_wall_s": finder_s, "tune_s": tune_s,
      "grid_s": grid_s,
      "wall_vs_grid": (FINDER_STEPS / num_steps * unit_s + tune_s) / grid_s, "values": res.values.tolist(),
    }  # fmt: skip
    rec["target_met"] = rec["rel_gap_vs_grid"] <= 0.01 and rec["compute_vs_grid"] <= 0.25
    recs.append(emit(rec))
  return recs


def _f(x, d=3):
  return f"{x:.{d}g}"


def tables(cost, memory, tune) -> str:
  out = []
  if cost:
    rows = [[r["task"], f"{r['train_s'] * 1e3:.1f}", f"{r['forward_ratio']:.2f}x", f"{r['reverse_ratio']:.2f}x",
             f"{r['public_ratio']:.2f}x", "yes" if r["target_met"] else "NO"] for r in cost]  # fmt: skip
    hdr = [
      "task",
      "one run (ms)",
      "forward, 3 hparams",
      "reverse",
      "hypergradient() end to end",
      "forward <= 4x",
    ]
    out.append(md_table(hdr, rows))
  if memory:
    rows = [[r["task"], r["variant"], f"{r['temp_bytes_1x'] / 1e6:.2f}", f"{r['temp_bytes_10x'] / 1e6:.2f}",
             f"{r['temp_ratio_10x']:.2f}x", "" if "target_met" not in r else ("yes" if r["target_met"] else "NO")]
            for r in memory]  # fmt: skip
    hdr = ["task", "mode", "temp MB at N", "temp MB at 10N", "10N / N", "<= 4x (bound)"]
    out.append(md_table(hdr, rows))
  if tune:
    rows = []
    for r in tune:
      if r["name"] == "hypergrad_tune_grid":
        rows.append([r["task"], "grid 4 x 4 x 2", _f(r["best_eval"], 4), "", "32", "1.00", "", ""])
        continue
      rows.append([r["task"], f"tune {r['starts']} x {r['outer_steps']}", _f(r["best_eval"], 4), str(r["best_step"]),
                   f"{r['units']:.1f}",
                   f"{r['wall_vs_grid']:.2f}", f"{100 * r['rel_gap_vs_grid']:.2f}%",
                   "yes" if r["target_met"] else "NO"])  # fmt: skip
    hdr = ["task", "method (starts x outer steps)", "best held-out loss", "found at outer step", "compute (runs)",
           "wall / grid's",
           "worse than grid", "target met"]  # fmt: skip
    out.append(md_table(hdr, rows))
  return "\n\n".join(out)


def report(records: list[dict]) -> str:
  """The Markdown tables of a run's records (what ``run`` returns, or the committed JSON's)."""
  pick = lambda *names: [r for r in records if r["name"] in names]
  return tables(pick("hypergrad_cost"), pick("hypergrad_memory"), pick("hypergrad_tune_grid", "hypergrad_tune"))


def run(mode="quick", task_names=("digits", "diabetes", "digits_full"), parts=("cost", "memory", "tune")):
  num_steps, repeats, budget, protocols = MODES[mode]
  cost, memory, tune = [], [], []
  for name in task_names:
    c = bench_cost(name, num_steps, repeats, budget)
    if "cost" in parts:
      cost.append(c)
    if "memory" in parts and name == "digits":  # the memory of one model is enough
      memory += bench_memory(name, num_steps)
    if "tune" in parts:
      tune += bench_tune(name, num_steps, protocols, c["forward_ratio"], c["train_s"])
  return cost + memory + tune, tables(cost, memory, tune)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  ap.add_argument(
    "--tasks",
    nargs="+",
    choices=["digits", "diabetes", "digits_full"],
    default=["digits", "diabetes", "digits_full"],
  )
  ap.add_argument(
    "--parts", nargs="+", choices=["cost", "memory", "tune"], default=["cost", "memory", "tune"]
  )
  ap.add_argument("--json", default=None, help="also write the records and the tables to this file")
  args = ap.parse_args(argv)
  info = env_info()
  emit({"name": "hypergrad_env", **info})
  t0 = time.perf_counter()
  records, md = run(args.mode, tuple(args.tasks), tuple(args.parts))
  print()
  print(md)
  load = info.get("load_avg_1m", math.nan)
  print(f"\n(mode {args.mode}, {time.perf_counter() - t0:.0f} s; {info['device']}, {info['cpu_count']} CPUs, "
        f"1-minute load {load:.1f} at the start: a shared machine, so compare ratios, not seconds)")  # fmt: skip
  if args.json:
    command = f"python bench/bench_hypergrad.py --mode {args.mode}"
    if tuple(args.tasks) != ("digits", "diabetes", "digits_full"):
      command += " --tasks " + " ".join(args.tasks)
    if tuple(args.parts) != ("cost", "memory", "tune"):
      command += " --parts " + " ".join(args.parts)
    command += f" --json {args.json}"
    doc = {"command": command, "env": info, "seconds": time.perf_counter() - t0, "records": records, "tables": md}
    Path(args.json).write_text(json.dumps(doc, indent=1, default=float) + "\n")


if __name__ == "__main__":
  main()
