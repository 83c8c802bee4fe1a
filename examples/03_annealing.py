"""Tutorial section 3: learning-rate annealing with step, exponential and 1/t decay.

    step decay:         lr(t) = lr0 * gamma ** floor(t / step_size)
    exponential decay:  lr(t) = lr0 * gamma ** t
    1/t decay:          lr(t) = lr0 / (1 + decay_rate * t)

Prints each schedule's rate at a few steps, then fits y = 3x + 2 + noise with plain gradient descent
(``optimizers.sgd``) under a fixed rate and each decay, with the total distance budget sum(lr(t)).

Run: python examples/03_annealing.py --steps 500 [--figure annealing.png]
"""

import sys
from pathlib import Path

import numpy as np

from lr_jax import optimizers, schedules, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors


def main(argv=None):
  args = parse_args(
    argv, __file__, __doc__, steps=500, min_steps=1, what="gradient-descent steps of each fit"
  )

  rules = {
    "fixed": schedules.constant(0.5),
    "step": schedules.step_decay(0.5, step_size=100, gamma=0.5),
    "exponential": schedules.exponential_decay(0.5, gamma=0.99),
    "1/t": schedules.inverse_time_decay(0.5, decay_rate=0.01),
  }
  steps = np.array([0, 1, 50, 99, 100, 200, 500])
  print("rate at step    " + " ".join(f"{t:>9d}" for t in steps))
  for name, lr in rules.items():
    print(f"{name + ':':<15} " + " ".join(f"{v:9.6f}" for v in np.asarray(lr(steps))))

  task = tasks.make("linreg")
  batch = tasks.linreg_data()
  curves = {}
  for name, lr in rules.items():
    params, curves[name] = tasks.fit(task.loss_fn, task.params, task.batches, optimizers.sgd(lr), args.steps)
    budget = float(np.sum(np.asarray(lr(np.arange(args.steps)), np.float64)))
    print(
      f"fit {name + ',':<12} {args.steps} steps: m = {params['m']:.5f}, b = {params['b']:.5f}, "
      f"MSE = {task.loss_fn(params, batch):.6f}, sum of rates = {budget:.4f}"
    )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    t = np.arange(args.steps)
    for name, lr in rules.items():
      a.plot(t, np.asarray(lr(t)), label=name)
      b.semilogy(t, np.asarray(curves[name]), label=name)
    a.set(xlabel="step", ylabel="learning rate", title="annealing schedules")
    b.set(xlabel="step", ylabel="training MSE", title="y = 3x + 2 + noise, gradient descent")
    a.legend()
    b.legend()
    fig.savefig(args.figure, dpi=90)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
