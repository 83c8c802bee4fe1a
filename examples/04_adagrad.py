"""Tutorial section 4: Adagrad, a per-parameter rate from the running sum of squared gradients.

With g_t the gradient at update t = 1, 2, ... (PyTorch's ``torch.optim.Adagrad``)::

    G_t = G_{t-1} + g_t**2                      (G_0 = 0)
    theta_t = theta_{t-1} - lr * g_t / (sqrt(G_t) + eps)

The first update moves every parameter by exactly ``lr`` (g / sqrt(g**2) = sign(g)), whatever the
scale of its gradient: on the raw house sizes, where plain gradient descent at rate 0.01 diverges,
Adagrad at 0.01 is stable. Then y = 3x + 2 + noise is fitted with ``optimizers.adagrad``.

Run: python examples/04_adagrad.py --steps 500 [--figure adagrad.png]
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from lr_jax import optimizers, tasks

SIZES = np.array([1000.0, 1500.0, 2000.0, 2500.0], np.float32)  # square feet
PRICES = np.array([250.0, 350.0, 450.0, 550.0], np.float32)  # thousands of dollars
NAME, HOUSE_RATE, LINE_RATE = "adagrad", 0.01, 0.5


def half_mse(params, batch):
  """The tutorial's loss J(m, b) = mean((m * size + b - price)**2) / 2."""
  x, y = batch
  return 0.5 * jnp.mean(jnp.square(params["m"] * x + params["b"] - y))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=500, help="updates of each run (at least 3)")
  parser.add_argument("--figure", help="write this section's figure (PNG) here")
  args = parser.parse_args(argv)
  steps = max(args.steps, 3)

  optimizer = optimizers.adagrad
  zero = {"m": jnp.float32(0.0), "b": jnp.float32(0.0)}
  house = (SIZES[None], PRICES[None])
  trail, losses = tasks.fit(half_mse, zero, house, optimizer(HOUSE_RATE), steps, history=True)
  print(f"house prices, raw sizes, {NAME}({HOUSE_RATE}), from m = b = 0:")
  for k in range(3):
    print(f"after update {k + 1}: m = {trail['m'][k]:.6g}, b = {trail['b'][k]:.6g}")
  final = jax.tree.map(lambda a: a[-1], trail)
  print(
    f"after update {steps}: m = {final['m']:.6g}, b = {final['b']:.6g}, "
    f"J = {half_mse(final, (SIZES, PRICES)):.6g} (J(0, 0) = {losses[0]:.6g})"
  )

  task = tasks.make("linreg")
  params, curve = tasks.fit(task.loss_fn, task.params, task.batches, optimizer(LINE_RATE), steps)
  print(
    f"y = 3x + 2 + noise, {NAME}({LINE_RATE}), {steps} updates: m = {params['m']:.5f}, "
    f"b = {params['b']:.5f}, MSE = {tasks.linreg_loss(params, tasks.linreg_data()):.6f}"
  )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(np.asarray(trail["m"]), label="m (slope)")
    a.plot(np.asarray(trail["b"]) / 250, label="b / 250 (intercept)")
    a.set(xlabel="update", title=f"house prices, raw sizes, {NAME}({HOUSE_RATE})")
    a.legend()
    b.semilogy(np.asarray(curve))
    b.set(xlabel="update", ylabel="training MSE", title=f"y = 3x + 2 + noise, {NAME}({LINE_RATE})")
    fig.tight_layout()
    fig.savefig(args.figure, dpi=90)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
