"""Tutorial section 5: cyclical learning rates (triangular, triangular2, exp_range).

With up = ``step_size_up``, down = ``step_size_down``, L = up + down, c = floor(t / L) and
p = t - c * L::

    h(t)  = p / up  while rising (p <= up),  (L - p) / down  while falling
    lr(t) = base + (max - base) * h(t) * f(t)
    f(t)  = 1 (triangular),  1 / 2**c (triangular2),  gamma**t (exp_range)

The rate sweeps back and forth between ``base`` and ``max`` instead of only decaying (Smith 2017).
Prints Smith's example (base 0.001, max 0.006, step_size_up 2000) in the three modes, then fits
y = 3x + 2 + noise with gradient descent under a triangular cycle.

Run: python examples/05_cyclic.py --steps 400 [--figure cyclic.png]
"""

import sys
from pathlib import Path

import numpy as np

from lr_jax import optimizers, schedules, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors


def main(argv=None):
  args = parse_args(argv, __file__, __doc__, steps=400, min_steps=1, what="gradient-descent steps of the fit")

  modes = {
    "triangular": schedules.cyclic(0.001, 0.006, step_size_up=2000),
    "triangular2": schedules.cyclic(0.001, 0.006, step_size_up=2000, mode="triangular2"),
    "exp_range": schedules.cyclic(0.001, 0.006, step_size_up=2000, mode="exp_range", gamma=0.9999),
  }
  steps = np.array([0, 1000, 2000, 3000, 4000, 6000, 10000])
  print("rate at step   " + " ".join(f"{t:>9d}" for t in steps))
  for name, lr in modes.items():
    print(f"{name + ':':<14} " + " ".join(f"{v:9.6f}" for v in np.asarray(lr(steps))))

  lr = schedules.cyclic(0.05, 0.5, step_size_up=50)
  task = tasks.make("linreg")
  params, curve = tasks.fit(task.loss_fn, task.params, task.batches, optimizers.sgd(lr), args.steps)
  print(
    f"y = 3x + 2 + noise, sgd(cyclic(0.05, 0.5, step_size_up=50)), {args.steps} steps: "
    f"m = {params['m']:.5f}, b = {params['b']:.5f}, "
    f"MSE = {tasks.linreg_loss(params, tasks.linreg_data()):.6f}"
  )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    t = np.arange(12001)
    for name, s in modes.items():
      a.plot(t, np.asarray(s(t)), label=name)
    a.set(xlabel="step", ylabel="learning rate", title="cyclic(0.001, 0.006, step_size_up=2000)")
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)  # below the axes, off the curves
    b.semilogy(np.asarray(curve), color="C3")
    b.set(xlabel="step", ylabel="mini-batch MSE (red)", title="y = 3x + 2 + noise, triangular cycle 0.05-0.5")
    b2 = b.twinx()
    b2.plot(np.asarray(lr(np.arange(args.steps))), color="0.6", lw=0.8)
    b2.set_ylabel("learning rate (grey)")
    fig.savefig(args.figure, dpi=90)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
