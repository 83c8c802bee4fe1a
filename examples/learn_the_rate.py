"""Learning the learning rate: hypergradients through training, against a grid, at two horizons.

Every lr_jax schedule takes traced hyperparameters and a training run is one ``lax.scan``, so the
held-out loss after N steps is a differentiable function of the schedule's hyperparameters. Its
gradient, the *hypergradient*, is what ``lr_jax.hypergradient`` returns (forward mode: one ``jax.jvp``
tangent per hyperparameter, through the whole run; reverse mode: ``jax.grad`` through checkpointed
segments of it), and ``lr_jax.tune`` descends it with Adam, on ``log peak_value`` and ``logit
pct_start``, from several starting points at once (the first one ``lr_find``'s suggestion).

This script does it on the digits MLP (64-32-10, batches of 64, held-out loss: the test
cross-entropy) with Adam and ``one_cycle(peak_value, N, pct_start, final_div_factor=1e3)``, at two
horizons, N and N / 10 (default 500 and 50 steps):

* a 10 x 6 grid over ``peak_value`` (log-spaced, 1e-3 .. 0.3) x ``pct_start`` (0.05 .. 0.55), one
  vmapped ``lr_jax.sweep``, whose held-out losses are the heat maps of the figure;
* ``lr_jax.tune`` on the same box: 4 starts x 8 outer steps (forward mode), drawn on the heat maps;
* each horizon's picks (the grid's best and tune's best) trained on the other horizon, which is the
  short-horizon effect: the rate that is best after 50 steps is not the one that is best after 500.

Run: python examples/learn_the_rate.py --steps 500 [--figure learn_the_rate.png] [--json F]
(``--json`` writes the printed lines and the numbers behind them, which the tests compare with the
tutorial.)
"""

import json
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import lr_jax
from lr_jax import optimizers, schedules, spaces, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import parse_args

PEAKS = [float(f"{x:.3g}") for x in np.geomspace(1e-3, 0.3, 10)]
PCTS = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55]
STARTS, OUTER_STEPS, OUTER_LR = 4, 8, 0.5
FINDER_STEPS = 100
FINAL_DIV = 1e3
SHORT = 10  # the short horizon is num_steps // SHORT


def problem():
  """``(loss_fn, params, batches, held_out)`` of the digits MLP: the held-out loss is the test
  cross-entropy of the 450 images the training batches never see."""
  task = tasks.make("digits")
  d = tasks.digits_data(seed=0)
  xt, yt = jnp.asarray(d["x_test"]), jnp.asarray(d["y_test"])
  return task.loss_fn, task.params, task.batches, lambda p: tasks.mlp_loss(p, (xt, yt))


def make_optimizer(num_steps: int):
  """``(peak_value, pct_start) -> Adam with a one-cycle schedule over num_steps``: what is tuned."""

  def make(peak_value, pct_start):
    lr = schedules.one_cycle(peak_value, num_steps, pct_start=pct_start, final_div_factor=FINAL_DIV)
    return optimizers.adam(lr)

  return make


def grid_losses(prob, num_steps: int, peaks, pcts) -> np.ndarray:
  """Held-out loss of every (peak, pct) after num_steps, ``[len(peaks), len(pcts)]`` (one sweep)."""
  loss_fn, params, batches, held = prob
  make = make_optimizer(num_steps)
  res = lr_jax.sweep(
    loss_fn, params, batches, optimizer=lambda h: make(**h), grid={"peak_value": peaks, "pct_start": pcts},
    num_steps=num_steps, eval_fn=held, eval_mode="min", keep_params=False,
  )  # fmt: skip
  out = np.full((len(peaks), len(pcts)), np.nan)
  nearest = lambda values, v: int(np.argmin(np.abs(np.asarray(values) - v)))
  for cfg, value in zip(res.configs, np.asarray(res.eval), strict=True):
    out[nearest(peaks, cfg["peak_value"]), nearest(pcts, cfg["pct_start"])] = value
  return out


def held_out_after(prob, num_steps: int, peak: float, pct: float) -> float:
  """The held-out loss of one configuration after num_steps (a one-point sweep)."""
  return float(grid_losses(prob, num_steps, [peak], [pct])[0, 0])


def run(num_steps: int, peaks=PEAKS, pcts=PCTS, starts=STARTS, outer_steps=OUTER_STEPS) -> dict:
  """Every number the script reports and draws, for the horizons ``num_steps`` and ``num_steps // 10``."""
  prob = problem()
  loss_fn, params, batches, held = prob
  finder = lr_jax.lr_find(
    loss_fn, params, batches, optimizer=lambda lr: optimizers.adam(lr), num_steps=FINDER_STEPS, min_lr=1e-5,
    max_lr=1.0,
  )  # fmt: skip
  suggestion = float(finder.suggest())
  box = {
    "peak_value": spaces.log_uniform(min(peaks), max(peaks)),
    "pct_start": spaces.uniform(min(pcts), max(pcts)),
  }
  init = {"peak_value": float(np.clip(suggestion, min(peaks), max(peaks))), "pct_start": 0.3}
  horizons = {}
  for key, n in (("long", num_steps), ("short", max(num_steps // SHORT, 1))):
    grid = grid_losses(prob, n, peaks, pcts)
    i, j = np.unravel_index(np.nanargmin(grid), grid.shape)
    res = lr_jax.tune(
      loss_fn, params, batches, make_optimizer(n), box, n, eval_fn=held, init=init, num_starts=starts,
      outer_steps=outer_steps, outer_lr=OUTER_LR,
    )  # fmt: skip
    horizons[key] = {
      "num_steps": n,
      "grid": grid.tolist(),
      "grid_best": {"peak_value": peaks[i], "pct_start": pcts[j], "loss": float(grid[i, j])},
      "tune_peak_value": np.asarray(res.hparams["peak_value"]).tolist(),  # [outer_steps + 1, starts]
      "tune_pct_start": np.asarray(res.hparams["pct_start"]).tolist(),
      "tune_values": np.asarray(res.values).tolist(),
      "tune_best": {
        "peak_value": float(res.best_hparams["peak_value"]),
        "pct_start": float(res.best_hparams["pct_start"]),
        "loss": float(res.best_value),
        "start": int(res.best_start),
        "outer_step": int(res.best_step),
      },
      "tune_runs": int(res.runs),
    }
  long, short = horizons.values()
  # the short-horizon effect: each horizon's picks trained on the other horizon
  # (the grid's pick is a cell of the other horizon's grid: read there, as the heat map shows it; in
  # float32 the loss of a large-rate run moves in its third digit with how the lanes are batched)
  for here, other in ((short, long), (long, short)):
    g, t = here["grid_best"], here["tune_best"]
    cell = other["grid"][peaks.index(g["peak_value"])][pcts.index(g["pct_start"])]
    here["on_other_horizon"] = {
      "grid_best": cell,
      "tune_best": held_out_after(prob, other["num_steps"], t["peak_value"], t["pct_start"]),
    }
  return {"peaks": list(peaks), "pcts": list(pcts), "lr_find_suggestion": suggestion, "init": init,
          "starts": starts, "outer_steps": outer_steps, "horizons": horizons}  # fmt: skip


def report(doc: dict) -> list[str]:
  """The printed lines, from the numbers of :func:`run` (also what the tutorial quotes)."""
  long, short = doc["horizons"].values()
  p, q = len(doc["peaks"]), len(doc["pcts"])
  lines = [
    (
      "digits MLP (64-32-10), Adam + one_cycle(peak_value, N, pct_start, final_div_factor=1e3);"
      " held-out cross-entropy after N steps"
    ),
    (
      f"lr_find (Adam, {FINDER_STEPS} steps) suggests {doc['lr_find_suggestion']:.3g}: tune's first start"
      f" (peak_value {doc['init']['peak_value']:.3g}, pct_start {doc['init']['pct_start']:g})"
    ),
    (
      f"     N  grid ({p} x {q} = {p * q} runs): peak  pct_start  loss   "
      f"tune ({doc['starts']} starts x {doc['outer_steps']} outer steps): peak  pct_start  loss"
    ),
  ]
  for h in (long, short):
    g, t = h["grid_best"], h["tune_best"]
    lines.append(
      f"{h['num_steps']:6d}  {g['peak_value']:31.3g}  {g['pct_start']:9.2f}  {g['loss']:.4f}"
      f"  {t['peak_value']:39.3g}  {t['pct_start']:9.2f}  {t['loss']:.4f}"
    )
  for here, other in ((short, long), (long, short)):
    o = here["on_other_horizon"]
    best = other["grid_best"]["loss"]
    lines.append(
      f"the {here['num_steps']}-step picks trained for {other['num_steps']} steps: grid's {o['grid_best']:.4f},"
      f" tune's {o['tune_best']:.4f} (best there: {best:.4f})"
    )
  return lines


def main(argv=None):
  args = parse_args(
    sys.argv[1:] if argv is None else argv, __file__, __doc__, steps=500, min_steps=10, json=True
  )
  doc = run(args.steps)
  lines = report(doc)
  print("\n".join(lines))
  if args.json:
    doc = {"command": f"python examples/learn_the_rate.py --steps {args.steps}", "lines": lines, **doc}
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
  if args.figure:
    figure(doc, args.figure)
  return 0


def figure(doc: dict, path: str):
  """Heat maps of the held-out loss at both horizons with tune's trajectories, and the loss against
  the peak rate (best over pct_start) at both horizons with the grid's and tune's best points."""
  import matplotlib.colors
  import matplotlib.pyplot as plt

  peaks, pcts = np.asarray(doc["peaks"]), np.asarray(doc["pcts"])
  long, short = doc["horizons"].values()
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), layout="constrained")
  # cell edges: geometric midpoints in peak, arithmetic in pct
  lp = np.log(peaks)
  pe = np.exp(
    np.concatenate([[lp[0] - (lp[1] - lp[0]) / 2], (lp[1:] + lp[:-1]) / 2, [lp[-1] + (lp[-1] - lp[-2]) / 2]])
  )
  qe = np.concatenate(
    [[pcts[0] - (pcts[1] - pcts[0]) / 2], (pcts[1:] + pcts[:-1]) / 2, [pcts[-1] + (pcts[-1] - pcts[-2]) / 2]]
  )
  for ax, h in zip(axes[:2], (long, short), strict=True):
    grid = np.asarray(h["grid"], dtype=float)
    mesh = ax.pcolormesh(pe, qe, grid.T, cmap="viridis_r", shading="flat",
                         norm=matplotlib.colors.LogNorm(vmin=np.nanmin(grid), vmax=np.nanmax(grid)))  # fmt: skip
    fig.colorbar(mesh, ax=ax, label=f"held-out loss after {h['num_steps']} steps")
    tp, tq = np.asarray(h["tune_peak_value"]), np.asarray(h["tune_pct_start"])
    for s in range(tp.shape[1]):
      ax.plot(
        tp[:, s],
        tq[:, s],
        "-o",
        color="w",
        mec="k",
        ms=4,
        lw=1.2,
        label=f"tune: one start, {doc['outer_steps']} outer steps" if s == 0 else None,
      )
    ax.plot(
      tp[0, 0], tq[0, 0], "*", color="tab:orange", mec="k", ms=14, label="lr_find's suggestion (start 0)"
    )
    tb, gb = h["tune_best"], h["grid_best"]
    ax.plot(tb["peak_value"], tb["pct_start"], "o", mfc="none", mec="r", mew=2, ms=14, label="tune's best")
    ax.plot(gb["peak_value"], gb["pct_start"], "X", color="r", mec="k", ms=11, label="grid's best")
    ax.set_xscale("log")
    ax.set_xlim(pe[0], pe[-1])
    ax.set_ylim(qe[0], qe[-1])
    ax.set_xlabel("peak_value (log scale)")
    ax.set_ylabel("pct_start")
    ax.set_title(f"{h['num_steps']} training steps")
  axes[0].legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2, fontsize=8, frameon=False)
  ax = axes[2]
  for h, color in ((short, "tab:blue"), (long, "tab:green")):
    grid = np.asarray(h["grid"], dtype=float)
    best_per_peak = np.nanmin(grid, axis=1)
    ax.plot(peaks, best_per_peak, "-o", color=color, ms=4, label=f"{h['num_steps']} steps (best pct_start)")
    tb = h["tune_best"]  # tune's best point: its own pct_start, so it may lie below the curve
    ax.plot(
      tb["peak_value"],
      tb["loss"],
      "*",
      color=color,
      mec="k",
      ms=13,
      label=f"tune's best, {h['num_steps']} steps",
    )
    k = int(np.nanargmin(best_per_peak))
    ax.plot(peaks[k], best_per_peak[k], "o", mfc="none", mec=color, mew=2, ms=12,
            label=f"grid's best, {h['num_steps']} steps")  # fmt: skip
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("peak_value (log scale)")
  ax.set_ylabel("held-out loss (log scale)")
  ax.set_title("the best rate depends on the horizon")
  ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2, fontsize=8, frameon=False)
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  sys.exit(main())
