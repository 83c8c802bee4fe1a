"""Tutorial section 4: Adam, momentum plus an RMSprop-like per-parameter rate, bias-corrected.

With g_t the gradient at update t = 1, 2, ... (PyTorch's ``torch.optim.Adam``, b1 = 0.9, b2 = 0.999)::

    m_t = b1 * m_{t-1} + (1 - b1) * g_t               v_t = b2 * v_{t-1} + (1 - b2) * g_t**2
    theta_t = theta_{t-1} - lr * (m_t / (1 - b1**t)) / (sqrt(v_t / (1 - b2**t)) + eps)

Bias correction makes the first update exactly lr * sign(g) for every parameter. On the raw house
sizes, where plain gradient descent at rate 0.01 diverges, Adam at 0.01 is stable. Then
y = 3x + 2 + noise is fitted with ``optimizers.adam``.

Run: python examples/04_adam.py --steps 500 [--figure adam.png]
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from lr_jax import optimizers, tasks

SIZES = np.array([1000.0, 1500.0, 2000.0, 2500.0], np.float32)  # square feet
PRICES = np.array([250.0, 350.0, 450.0, 550.0], np.float32)  # thousands of dollars
NAME, HOUSE_RATE, LINE_RATE = "adam", 0.01, 0.05


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

  optimizer = optimizers.adam
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
