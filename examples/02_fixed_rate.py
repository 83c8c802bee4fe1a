"""Tutorial section 2: a fixed learning rate, and why rate 0.01 diverges on raw house sizes.

Gradient descent with a constant rate ``alpha``: ``theta <- theta - alpha * grad J(theta)``.

The house-price example (sizes 1000..2500 sq ft, prices 250..550 thousand dollars, m = b = 0, rate
0.01) computed honestly: its first gradients, the divergence of rate 0.01 on unscaled sizes, the
threshold 2 / lambda_max, and two fixes (standardised sizes; a rate below the threshold). Then the
tutorial's line y = 3x + 2 + noise fitted with ``optimizers.sgd`` at a fixed rate.

Run: python examples/02_fixed_rate.py --steps 1000 [--figure fixed_rate.png]
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lr_jax import optimizers, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors

SIZES = np.array([1000.0, 1500.0, 2000.0, 2500.0], np.float32)  # square feet
PRICES = np.array([250.0, 350.0, 450.0, 550.0], np.float32)  # thousands of dollars


def half_mse(params, batch):
  """The tutorial's loss J(m, b) = mean((m * size + b - price)**2) / 2."""
  x, y = batch
  return 0.5 * jnp.mean(jnp.square(params["m"] * x + params["b"] - y))


def descend(x, rate, steps):
  """Plain gradient descent on J from m = b = 0; the parameters after every step and the losses."""
  zero = {"m": jnp.float32(0.0), "b": jnp.float32(0.0)}
  return tasks.fit(half_mse, zero, (x[None], PRICES[None]), optimizers.sgd(rate), steps, history=True)


def main(argv=None):
  args = parse_args(
    argv, __file__, __doc__, steps=1000, min_steps=1, what="gradient-descent steps of the fixes and the fit"
  )

  print("House prices: J(m, b) = mean((m*size + b - price)**2) / 2, start m = b = 0, rate 0.01")
  zero = {"m": jnp.float32(0.0), "b": jnp.float32(0.0)}
  loss, grads = jax.value_and_grad(half_mse)(zero, (SIZES, PRICES))
  print(f"J(0, 0) = {loss:.6g}")
  print(f"dJ/dm = {grads['m']:.6g}")
  print(f"dJ/db = {grads['b']:.6g}")
  print(
    f"plain MSE = mean((pred - price)**2) doubles them: dMSE/dm = {2 * grads['m']:.8g}, dMSE/db = {2 * grads['b']:.8g}"
  )

  trail, losses = descend(SIZES, 0.01, 6)
  for k in range(4):
    print(f"raw sizes, rate 0.01, after step {k + 1}: m = {trail['m'][k]:.6g}, b = {trail['b'][k]:.6g}")
  print("raw sizes, rate 0.01, J before steps 1-6:", " ".join(f"{v:.3g}" for v in losses))

  design = np.stack([SIZES.astype(np.float64), np.ones(4)], axis=1)
  lam = np.linalg.eigvalsh(design.T @ design / 4)  # Hessian of J
  print(f"Hessian eigenvalues: lambda_min = {lam[0]:.6g}, lambda_max = {lam[1]:.8g}")
  print(f"divergence threshold 2/lambda_max = {2 / lam[1]:.6g}")
  print(f"per-step error growth |1 - 0.01*lambda_max| = {abs(1 - 0.01 * lam[1]):.6g}")

  mean, std = SIZES.mean(), SIZES.std()
  z = (SIZES - mean) / std
  print(f"fix 1: z = (size - {mean:.6g}) / {std:.6g}; z = " + ", ".join(f"{v:.6g}" for v in z))
  trail_z, _ = descend(z, 0.01, args.steps)
  mz, bz = trail_z["m"][-1], trail_z["b"][-1]
  print(f"fix 1: standardised sizes, rate 0.01, {args.steps} steps: m_z = {mz:.6g}, b = {bz:.6g}")
  print(f"fix 1: back in sq ft: slope = {mz / std:.6g}, intercept = {bz - mz * mean / std:.6g}")

  trail_s, losses_s = descend(SIZES, 5e-7, args.steps)
  print(
    f"fix 2: raw sizes, rate 5e-07 < 2/lambda_max, {args.steps} steps: "
    f"m = {trail_s['m'][-1]:.6g}, b = {trail_s['b'][-1]:.6g}, J = {half_mse(jax.tree.map(lambda a: a[-1], trail_s), (SIZES, PRICES)):.6g}"
  )

  task = tasks.make("linreg")
  params, fit_losses = tasks.fit(task.loss_fn, task.params, task.batches, optimizers.sgd(0.1), args.steps)
  print(
    f"y = 3x + 2 + noise, sgd rate 0.1, batches of 10, {args.steps} steps: m = {params['m']:.6g}, b = {params['b']:.6g}, "
    f"MSE = {tasks.linreg_loss(params, tasks.linreg_data()):.6g}"
  )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    a.semilogy(np.arange(1, 7), np.asarray(losses), "o-", color="C3", label="raw sizes, rate 0.01 (diverges)")
    a.set(xlabel="step", ylabel="J before the step", title="rate 0.01 on raw sizes")
    a.legend()
    _, losses_z = descend(z, 0.01, args.steps)
    b.semilogy(np.asarray(losses_z), label="standardised sizes, rate 0.01")
    b.semilogy(np.asarray(losses_s), label="raw sizes, rate 5e-7")
    b.semilogy(np.asarray(fit_losses), label="y = 3x + 2, rate 0.1")
    b.set(xlabel="step", ylabel="loss", title="the two fixes, and the tutorial's line")
    b.legend()
    fig.savefig(args.figure, dpi=90)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
