"""Tutorial section 6: warm-up, a short ramp before the main schedule.

With W warm-up steps and a main schedule s::

    lr(t) = init + (s(0) - init) * t / W     for t < W
          = s(t - W)                         for t >= W

(PyTorch: ``SequentialLR([LinearLR, X], milestones=[W])``). The Transformer's inverse square root
schedule warms up linearly and then decays as ``peak * sqrt(W / t)``. Early updates, when Adam's
second-moment estimates and the weights are still poor, are kept small.

Run: python examples/06_warmup.py --steps 300 [--figure warmup.png]
"""

import sys
from pathlib import Path

import numpy as np

from lr_jax import optimizers, schedules, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors


def main(argv=None):
  args = parse_args(argv, __file__, __doc__, steps=300, min_steps=20, what="Adam updates of the fit")

  rules = {
    "warmup+cosine": schedules.warmup(schedules.cosine_annealing(0.1, total_steps=90), warmup_steps=10),
    "inverse_sqrt": schedules.inverse_sqrt(0.1, warmup_steps=10),
  }
  steps = np.array([0, 1, 5, 10, 55, 100, 160])
  print("rate at step     " + " ".join(f"{t:>8d}" for t in steps))
  for name, lr in rules.items():
    print(f"{name + ':':<16} " + " ".join(f"{v:8.5f}" for v in np.asarray(lr(steps))))

  total = args.steps
  warm = total // 10
  task = tasks.make("linreg")
  batch = tasks.linreg_data()
  curves = {}
  for name, lr in {
    "no warm-up": schedules.cosine_annealing(0.5, total_steps=total),
    "warm-up": schedules.warmup(schedules.cosine_annealing(0.5, total_steps=total - warm), warmup_steps=warm),
  }.items():
    params, curves[name] = tasks.fit(task.loss_fn, task.params, task.batches, optimizers.adam(lr), total)
    print(
      f"y = 3x + 2 + noise, adam, cosine from 0.5, {name}, {total} updates: m = {params['m']:.5f}, "
      f"b = {params['b']:.5f}, MSE = {task.loss_fn(params, batch):.6f}"
    )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    t = np.arange(200)
    for name, lr in rules.items():
      a.plot(t, np.asarray(lr(t)), label=name)
    a.set(xlabel="step", ylabel="learning rate", title="warm-up (10 steps)")
    a.legend()
    for name, c in curves.items():
      b.semilogy(np.asarray(c), label=name)
    b.set(xlabel="update", ylabel="training MSE", title="y = 3x + 2 + noise, adam")
    b.legend()
    fig.savefig(args.figure, dpi=90)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
