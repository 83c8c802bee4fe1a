"""Online hypergradient descent from a bad initial rate: HD-SGD and HD-Adam against SGD and Adam.

Baydin et al. (ICLR 2018) claim that hypergradient descent makes SGD and Adam robust to the initial
learning rate. On two tasks (the digits MLP, 64-32-10 cross-entropy, batches of 64; the diabetes
regression MLP, 10-32-1 MSE on standardised targets, batches of 32), for ``--steps`` updates:

1. Tune plain Adam's and plain SGD's rate on a log grid (``RATES``: 19 rates 10**(k/3), 1e-5 .. 10),
   one vmapped ``lr_jax.sweep`` each, by the held-out loss (the same held-out set that is reported:
   a calibration, which favours the tuned baselines).
2. Start ``hypergradient_sgd`` / ``hypergradient_adam`` (additive and multiplicative rule, three
   ``hypergrad_lr`` each) from the tuned rate divided by 10, the tuned rate, and the tuned rate times
   10; one ``lr_jax.sweep`` per optimizer and rule (the grid is beta x start).
3. Report the final held-out loss of each run next to plain SGD / Adam from the same starting rates
   (read off the tuning sweep: the grid holds tuned / 10 and tuned * 10), and the adapted rate at the
   end as a multiple of the tuned one.

One seed (task seed 0: data split, batch order, initial weights). Prints one JSON line per run
(``bench/_common.emit``), then the report; ``--json FILE`` also writes the report's lines and the
numbers behind them (the README's table is checked against the committed
``bench/hypergradient_online.json``, written by ``--steps 400 --json``). It edits no tracked file
unless ``--json`` names one. Usage::

    python bench/bench_hypergradient_online.py [--steps 400] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
from _common import emit, env_info, log

import lr_jax
from lr_jax import optimizers, tasks

RATES = [float(10.0 ** (k / 3)) for k in range(-15, 4)]  # 1e-5 .. 10, three per decade
DECADE = 3  # grid points per factor 10
STARTS = ("/10", "tuned", "x10")
# (optimizer family, rule) -> the three hypergrad_lr values tried. The multiplicative rule's beta is
# dimensionless (0.02 is the default); the additive one's scale is that of <g, d>: the paper used
# 1e-3 (SGD) and 1e-7 (Adam) on its problems, the authors' code defaults to 1e-6 and 1e-8.
BETAS = {
  ("sgd", "additive"): (1e-4, 1e-3, 1e-2),
  ("sgd", "multiplicative"): (0.005, 0.02, 0.1),
  ("adam", "additive"): (1e-7, 1e-6, 1e-5),
  ("adam", "multiplicative"): (0.005, 0.02, 0.1),
}
README_BETA = {k: v[1] for k, v in BETAS.items()}  # the README's table shows the middle beta of each
HD = {"sgd": optimizers.hypergradient_sgd, "adam": optimizers.hypergradient_adam}
PLAIN = {"sgd": optimizers.sgd, "adam": optimizers.adam}

TASKS = {
  # name -> (task, held-out split, title, loss)
  "digits": (
    lambda: tasks.make("digits", batch_size=64),
    tasks.digits_data,
    "digits MLP (64-32-10), batches of 64",
    "held-out cross-entropy",
  ),
  "diabetes": (
    lambda: tasks.make_diabetes(batch_size=32),
    tasks.diabetes_data,
    "diabetes regression MLP (10-32-1), batches of 32",
    "held-out MSE (targets standardised)",
  ),
}


def run_task(task_name: str, steps: int) -> dict:
  """Every run of one task; the numbers the report prints, as plain Python."""
  build, held_out, _, _ = TASKS[task_name]
  task = build()
  data = held_out()
  test = (jnp.asarray(data["x_test"]), jnp.asarray(data["y_test"]))
  evaluate = (
    (lambda p: tasks.mlp_loss(p, test)) if task_name == "digits" else (lambda p: task.loss_fn(p, test))
  )

  def sweep(make, grid):
    t0 = time.perf_counter()
    res = lr_jax.sweep(
      task.loss_fn,
      task.params,
      task.batches,
      optimizer=make,
      grid=grid,
      num_steps=steps,
      eval_fn=evaluate,
      eval_mode="min",
    )
    return res, time.perf_counter() - t0

  out = {"tuning": {}, "tuned": {}, "rows": []}
  for family in ("sgd", "adam"):
    res, secs = sweep(lambda h, f=family: PLAIN[f](h["lr"]), {"lr": RATES})
    loss = np.asarray(res.eval, np.float64)
    best = int(np.nanargmin(loss))
    if not DECADE <= best < len(RATES) - DECADE:
      raise RuntimeError(
        f"{task_name}: the tuned {family} rate {RATES[best]:g} has no decade on each side in RATES"
      )
    out["tuning"][family] = {"rates": RATES, "eval": [float(x) for x in loss], "seconds": secs}
    out["tuned"][family] = RATES[best]
    idx = (best - DECADE, best, best + DECADE)
    out["rows"].append(
      {
        "family": family,
        "rule": None,
        "beta": None,
        "eval": [float(loss[i]) for i in idx],
        "final_lr_ratio": [RATES[i] / RATES[best] for i in idx],
      }
    )
    emit({"name": f"hypergradient_online/{task_name}/{family}", "task": task_name, "optimizer": family,
          "tuned_lr": RATES[best], "eval": out["rows"][-1]["eval"], "run_s": secs, "steps": steps})  # fmt: skip
    starts = [RATES[i] for i in idx]
    for rule in ("additive", "multiplicative"):
      betas = BETAS[(family, rule)]
      res, secs = sweep(
        lambda h, f=family, r=rule: HD[f](h["lr"], h["beta"], variant=r), {"beta": list(betas), "lr": starts}
      )
      loss = np.asarray(res.eval, np.float64).reshape(len(betas), len(starts))
      rate = np.asarray(jax.vmap(optimizers.current_lr)(res.opt_state), np.float64).reshape(loss.shape)
      for b, ls, rs in zip(betas, loss, rate, strict=True):
        row = {
          "family": family,
          "rule": rule,
          "beta": b,
          "eval": [float(x) for x in ls],
          "final_lr_ratio": [float(x) / RATES[best] for x in rs],
        }
        out["rows"].append(row)
        emit({"name": f"hypergradient_online/{task_name}/{family}_hd_{rule}/{b:g}", "task": task_name,
              "optimizer": f"hypergradient_{family}", "variant": rule, "hypergrad_lr": b, "starts": starts,
              "eval": row["eval"], "final_lr": [float(x) for x in rs], "run_s": secs / len(betas),
              "steps": steps})  # fmt: skip
  return out


def _label(row) -> str:
  if row["rule"] is None:
    return row["family"]
  return f"{row['family']}-HD {row['rule'][:4]}. {row['beta']:g}"


def _loss(x: float) -> str:
  return "nan" if not np.isfinite(x) else (f"{x:.4f}" if abs(x) < 10 else f"{x:.4g}")


def table(summary: dict, task_name: str, steps: int, rows=None) -> list[str]:
  """One task's table: final held-out loss from each start, and the final rate / tuned rate."""
  _, _, title, loss = TASKS[task_name]
  tuned = summary["tuned"]
  adam = next(r for r in summary["rows"] if r["family"] == "adam" and r["rule"] is None)
  lines = [
    f"{title}, {steps} updates; {loss}",
    (
      f"tuned rate (best of {len(RATES)}): sgd {tuned['sgd']:.3g}, adam {tuned['adam']:.3g}; "
      f"adam at its tuned rate: {_loss(adam['eval'][1])}"
    ),
    f"{'start at tuned rate':<26}" + "".join(f"{s:>9}" for s in STARTS) + "   final rate / tuned",
  ]
  for row in summary["rows"] if rows is None else rows:
    ratios = "" if row["rule"] is None else "  " + " ".join(f"{x:>6.2g}" for x in row["final_lr_ratio"])
    lines.append(f"{_label(row):<26}" + "".join(f"{_loss(x):>9}" for x in row["eval"]) + ratios)
  return lines


def readme_rows(summary: dict) -> list[dict]:
  """The README's rows: plain SGD and Adam, and each rule at the middle beta of its grid."""
  return [
    r for r in summary["rows"] if r["rule"] is None or r["beta"] == README_BETA[(r["family"], r["rule"])]
  ]


def report(summaries: dict, steps: int) -> list[str]:
  """Every line the script prints after its JSON records: the full tables, then the README's."""
  lines = []
  for task_name, summary in summaries.items():
    lines += table(summary, task_name, steps)
  lines.append("README (the middle beta of each grid):")
  for task_name, summary in summaries.items():
    lines += table(summary, task_name, steps, readme_rows(summary))
  return lines


def readme_lines(lines: list[str]) -> list[str]:
  """The lines the README quotes: those after the "README" marker line."""
  return lines[lines.index("README (the middle beta of each grid):") + 1 :]


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  ap.add_argument("--steps", type=int, default=400)
  ap.add_argument("--json", default=None, help="also write the report's lines and numbers to this file")
  args = ap.parse_args(argv)
  summaries = {}
  for task_name in TASKS:
    log(f"{task_name}: {args.steps} updates ...")
    summaries[task_name] = run_task(task_name, args.steps)
  lines = report(summaries, args.steps)
  print("\n".join(lines))
  if args.json:
    doc = {
      "command": f"python bench/bench_hypergradient_online.py --steps {args.steps}",
      "steps": args.steps,
      "lines": lines,
      "tasks": summaries,
      "env": env_info(),
    }
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
