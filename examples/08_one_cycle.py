"""Tutorial section 8: the one-cycle policy (rate up then down, momentum down then up).

With peak = ``peak_value``, lr0 = peak / div_factor, floor = lr0 / final_div_factor, T =
``total_steps`` and the warm-up ending at step a = pct_start * T - 1 (PyTorch's OneCycleLR)::

    lr(t) = lr0 + (peak - lr0) * (1 - cos(pi * t / a)) / 2                       t <= a
          = floor + (peak - floor) * (1 + cos(pi * (t - a) / (T - 1 - a))) / 2    a < t <= T - 1

and the momentum runs the opposite way, from ``max_momentum`` down to ``base_momentum`` and back.
Momentum schedules plug into any optimizer hyperparameter through ``optax.inject_hyperparams``.

Run: python examples/08_one_cycle.py --steps 300 [--figure one_cycle.png]
"""

import sys
from pathlib import Path

import numpy as np
import optax

from lr_jax import optimizers, schedules, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors


def main(argv=None):
  args = parse_args(argv, __file__, __doc__, steps=300, min_steps=10, what="SGD updates of the fit")

  lr = schedules.one_cycle(0.1, total_steps=100)
  momentum = schedules.one_cycle_momentum(total_steps=100)
  steps = np.array([0, 10, 20, 29, 50, 75, 99])
  print("step        " + " ".join(f"{t:>9d}" for t in steps))
  print("rate:       " + " ".join(f"{v:9.3e}" for v in np.asarray(lr(steps))))
  print("momentum:   " + " ".join(f"{v:9.5f}" for v in np.asarray(momentum(steps))))

  total = args.steps
  x, y = tasks.linreg_data()
  batches = tasks.make("linreg").batches
  opt = optax.inject_hyperparams(optimizers.sgd)(
    learning_rate=schedules.one_cycle(0.5, total_steps=total),
    momentum=schedules.one_cycle_momentum(total_steps=total),
  )
  params, curve = tasks.fit(tasks.linreg_loss, tasks.linreg_init(), batches, opt, total)
  print(
    f"y = 3x + 2 + noise, sgd with one_cycle(0.5) and its momentum cycle, batches of 10, {total} updates: "
    f"m = {params['m']:.5f}, b = {params['b']:.5f}, MSE = {tasks.linreg_loss(params, (x, y)):.6f}"
  )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    t = np.arange(100)
    a.plot(t, np.asarray(lr(t)), label="rate")
    a.set(xlabel="step", ylabel="learning rate", title="one_cycle(0.1, total_steps=100)")
    a2 = a.twinx()
    a2.plot(t, np.asarray(momentum(t)), color="C1", label="momentum")
    a2.set_ylabel("momentum")
    a2.legend(
      *(x + y for x, y in zip(a.get_legend_handles_labels(), a2.get_legend_handles_labels())),
      loc="upper center",
      bbox_to_anchor=(0.5, -0.2),
      ncol=2,
    )
    b.semilogy(np.asarray(curve))
    b.set(xlabel="update", ylabel="mini-batch MSE", title="y = 3x + 2 + noise, one-cycle sgd")
    fig.savefig(args.figure, dpi=90)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
