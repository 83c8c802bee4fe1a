"""Tutorial section 7: StepLR and MultiStepLR, ported from a PyTorch recipe.

PyTorch's ``StepLR(optimizer, step_size, gamma)`` multiplies the rate by ``gamma`` every
``step_size`` calls of ``scheduler.step()``, usually once per epoch::

    lr(epoch) = lr0 * gamma ** floor(epoch / step_size)

lr_jax's schedules count optimizer updates, so a recipe stepped per epoch becomes
``step_decay(lr0, step_size=step_size * steps_per_epoch, gamma)`` (``MultiStepLR(milestones)``
becomes ``multistep_decay(lr0, [m * steps_per_epoch for m in milestones], gamma)``).

Run: python examples/07_step_lr.py --steps 600 [--figure step_lr.png]
"""

import sys
from pathlib import Path

import numpy as np

from lr_jax import optimizers, schedules, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors

STEPS_PER_EPOCH = 10


def main(argv=None):
  args = parse_args(
    argv, __file__, __doc__, steps=600, min_steps=1, what="SGD updates of the fit (10 per epoch)"
  )

  step_lr = schedules.step_decay(
    0.1, step_size=30 * STEPS_PER_EPOCH, gamma=0.1
  )  # StepLR(step_size=30, gamma=0.1)
  multistep = schedules.multistep_decay(
    0.1, milestones=[30 * STEPS_PER_EPOCH, 80 * STEPS_PER_EPOCH], gamma=0.1
  )
  epochs = np.array([0, 29, 30, 59, 60, 79, 80, 90])
  print("epoch               " + " ".join(f"{e:>7d}" for e in epochs))
  print("StepLR(30, 0.1):    " + " ".join(f"{v:7.0e}" for v in np.asarray(step_lr(epochs * STEPS_PER_EPOCH))))
  print(
    "MultiStepLR(30,80): " + " ".join(f"{v:7.0e}" for v in np.asarray(multistep(epochs * STEPS_PER_EPOCH)))
  )

  # y = 3x + 2 + noise in mini-batches of 10 points: one epoch is 10 updates.
  x, y = tasks.linreg_data()
  batches = tasks.make("linreg").batches
  lr = schedules.step_decay(0.5, step_size=20 * STEPS_PER_EPOCH, gamma=0.5)
  params, curve = tasks.fit(tasks.linreg_loss, tasks.linreg_init(), batches, optimizers.sgd(lr), args.steps)
  print(
    f"y = 3x + 2 + noise, sgd(step_decay(0.5, step_size=200, gamma=0.5)), batches of 10, {args.steps} updates: "
    f"m = {params['m']:.5f}, b = {params['b']:.5f}, MSE = {tasks.linreg_loss(params, (x, y)):.6f}"
  )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    t = np.arange(100 * STEPS_PER_EPOCH)
    a.semilogy(t / STEPS_PER_EPOCH, np.asarray(step_lr(t)), label="StepLR(step_size=30, gamma=0.1)")
    a.semilogy(t / STEPS_PER_EPOCH, np.asarray(multistep(t)), "--", label="MultiStepLR([30, 80], 0.1)")
    a.set(
      xlabel="epoch (10 updates each)", ylabel="learning rate", title="per-epoch recipes as step schedules"
    )
    a.legend()
    b.semilogy(np.asarray(curve))
    b.set(xlabel="update", ylabel="mini-batch MSE", title="y = 3x + 2 + noise, step decay every 20 epochs")
    fig.savefig(args.figure, dpi=90)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
