"""Tutorial section 7: cosine annealing, and cosine annealing with warm restarts (SGDR).

With T = ``total_steps``::

    lr(t) = end + (init - end) * (1 + cos(pi * min(t, T) / T)) / 2

``cosine_warm_restarts`` runs the same curve over periods T_0, T_0 * mult, T_0 * mult**2, ... and
jumps back to ``init`` at the start of each period (PyTorch's CosineAnnealingWarmRestarts).

Run: python examples/07_cosine_annealing.py --steps 500 [--figure cosine_annealing.png]
"""

import sys
from pathlib import Path

import numpy as np

from lr_jax import optimizers, schedules, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors


def main(argv=None):
  args = parse_args(argv, __file__, __doc__, steps=500, min_steps=1, what="SGD updates of each fit")

  rules = {
    "cosine(T=100)": schedules.cosine_annealing(0.1, total_steps=100, end_value=0.001),
    "restarts(10, x2)": schedules.cosine_warm_restarts(0.1, period=10, period_mult=2, end_value=0.001),
  }
  steps = np.array([0, 5, 9, 10, 20, 29, 30, 50, 70, 100, 150])
  print("rate at step      " + " ".join(f"{t:>8d}" for t in steps))
  for name, lr in rules.items():
    print(f"{name + ':':<17} " + " ".join(f"{v:8.5f}" for v in np.asarray(lr(steps))))

  x, y = tasks.linreg_data()
  batches = tasks.make("linreg").batches
  curves = {}
  for name, lr in {
    "constant 0.5": 0.5,
    "cosine 0.5 -> 0": schedules.cosine_annealing(0.5, total_steps=args.steps),
  }.items():
    params, curves[name] = tasks.fit(
      tasks.linreg_loss, tasks.linreg_init(), batches, optimizers.sgd(lr), args.steps
    )
    print(
      f"y = 3x + 2 + noise, sgd, batches of 10, {name}, {args.steps} updates: m = {params['m']:.5f}, "
      f"b = {params['b']:.5f}, MSE = {tasks.linreg_loss(params, (x, y)):.6f}"
    )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    t = np.arange(160)
    for name, lr in rules.items():
      a.plot(t, np.asarray(lr(t)), label=name)
    shapes = {  # timm's restarts with a decaying peak; WSD with a 1-sqrt cooldown (HF, arXiv 2405.18392)
      "restarts(10, x2), decay 0.7": schedules.cosine_warm_restarts(0.1, 10, 2, 0.001, decay=0.7),
      "WSD, 1-sqrt cooldown": schedules.cooldown(schedules.warmup(schedules.constant(0.1), 10), 110, 40),
    }
    for name, lr in shapes.items():
      a.plot(t, np.asarray(lr(t)), label=name, ls="--")
    a.set(xlabel="step", ylabel="learning rate", title="cosine annealing (0.1 -> 0.001)")
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below the axes, off the curves
    for name, c in curves.items():
      b.semilogy(np.asarray(c), label=name, lw=0.8)
    b.set(xlabel="update", ylabel="mini-batch MSE", title="y = 3x + 2 + noise, sgd")
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.savefig(args.figure, dpi=90)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
