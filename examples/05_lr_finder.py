"""Tutorial section 5: the learning-rate range test ("LR finder").

Train once while the rate grows exponentially from ``min_lr`` to ``max_lr`` over N steps::

    lr_i = min_lr * (max_lr / min_lr) ** (i / (N - 1))
    avg_i = beta * avg_{i-1} + (1 - beta) * loss_i,   smoothed_i = avg_i / (1 - beta**(i + 1))

and stop when the smoothed loss explodes. The loss falls while the rate is useful and blows up
once it is too large; a rate a little below the explosion is a good choice (Smith 2017).

On the least-squares line y = 3x + 2 + noise the explosion point is known exactly: plain gradient
descent on mean((m x + b - y)**2) diverges for rates above 2 / lambda_max, lambda_max the largest
eigenvalue of the Hessian (2 / n) X^T X. The finder's suggestion lands below that threshold.

Run: python examples/05_lr_finder.py --steps 100 [--figure lr_finder.png]
"""

import sys
from pathlib import Path

import numpy as np

import lr_jax
from lr_jax import optimizers, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors


def main(argv=None):
  args = parse_args(argv, __file__, __doc__, steps=100, min_steps=10, what="steps of the range test")

  x, y = tasks.linreg_data()  # all 100 points in every step: plain (full-batch) gradient descent
  full = (x[None], y[None])
  design = np.stack([x.astype(np.float64), np.ones_like(x, np.float64)], axis=1)
  lam = np.linalg.eigvalsh(2.0 / len(x) * design.T @ design)
  print(
    f"Hessian of the MSE: lambda_max = {lam[-1]:.6g}; gradient descent diverges above 2/lambda_max = {2 / lam[-1]:.6g}"
  )

  result = lr_jax.lr_find(
    tasks.linreg_loss,
    tasks.linreg_init(),
    full,
    optimizer=optimizers.sgd,
    min_lr=1e-4,
    max_lr=10.0,
    num_steps=args.steps,
    method="minimum",
  )
  lrs, losses, smooth = (np.asarray(a) for a in (result.lrs, result.losses, result.smoothed_losses))
  print("first rates: " + " ".join(f"{v:.6g}" for v in lrs[:3]) + f"; last rate: {lrs[-1]:.6g}")
  print("first losses: " + " ".join(f"{v:.6g}" for v in losses[:3]))
  print("first smoothed losses: " + " ".join(f"{v:.6g}" for v in smooth[:3]))
  print(
    f"diverged at index: {result.diverged_at} (rate {lrs[result.diverged_at]:.6g})"
    if result.diverged_at is not None
    else "diverged at index: None"
  )
  print(f"suggested rate: {result.suggestion:.6g} = {result.suggestion * lam[-1] / 2:.3g} x the threshold")

  params, _ = tasks.fit(tasks.linreg_loss, tasks.linreg_init(), full, optimizers.sgd(result.suggestion), 500)
  print(
    f"gradient descent at the suggested rate, 500 steps: m = {params['m']:.4f}, b = {params['b']:.4f}, "
    f"MSE = {tasks.linreg_loss(params, tasks.linreg_data()):.5f}"
  )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.loglog(lrs, losses, color="0.7", label="loss")
    ax.loglog(lrs, smooth, color="C0", label="smoothed loss")
    ax.axvline(result.suggestion, color="C2", ls="--", label=f"suggestion {result.suggestion:.3g}")
    ax.axvline(2 / lam[-1], color="C3", ls=":", label=f"2/lambda_max = {2 / lam[-1]:.3g}")
    ax.set(xlabel="learning rate", ylabel="MSE", title="LR range test on y = 3x + 2 + noise (sgd)")
    ax.set_ylim(top=100 * losses[0])
    ax.legend()
    fig.savefig(args.figure, dpi=90)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
