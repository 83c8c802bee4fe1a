"""The shared body of tutorial section 4 (``04_adagrad.py``, ``04_rmsprop.py``, ``04_adam.py``).

Each script names its optimizer and two constant rates; :func:`run` fits the raw house prices
(where plain gradient descent at rate 0.01 diverges) and then y = 3x + 2 + noise with it, prints
the first and last updates and the final losses, and draws the section's figure.
"""

import jax
import jax.numpy as jnp
import numpy as np
from _cli import parse_args  # examples/_cli.py (the scripts put examples/ on sys.path)

from lr_jax import tasks

SIZES = np.array([1000.0, 1500.0, 2000.0, 2500.0], np.float32)  # square feet
PRICES = np.array([250.0, 350.0, 450.0, 550.0], np.float32)  # thousands of dollars


def half_mse(params, batch):
  """The tutorial's loss J(m, b) = mean((m * size + b - price)**2) / 2."""
  x, y = batch
  return 0.5 * jnp.mean(jnp.square(params["m"] * x + params["b"] - y))


def run(argv, script, doc, optimizer, name, house_rate, line_rate):
  """Parses ``argv`` (``--steps``, ``--figure``; ``script`` and ``doc`` are the script's ``__file__``
  and docstring) and runs the section with ``optimizer`` (printed as ``name``) at ``house_rate`` and
  ``line_rate``; returns 0."""
  args = parse_args(argv, script, doc, steps=500, what="updates of each run")
  steps = args.steps

  zero = {"m": jnp.float32(0.0), "b": jnp.float32(0.0)}
  house = (SIZES[None], PRICES[None])
  trail, losses = tasks.fit(half_mse, zero, house, optimizer(house_rate), steps, history=True)
  print(f"house prices, raw sizes, {name}({house_rate}), from m = b = 0:")
  for k in range(min(3, steps)):
    print(f"after update {k + 1}: m = {trail['m'][k]:.6g}, b = {trail['b'][k]:.6g}")
  final = jax.tree.map(lambda a: a[-1], trail)
  print(
    f"after update {steps}: m = {final['m']:.6g}, b = {final['b']:.6g}, "
    f"J = {half_mse(final, (SIZES, PRICES)):.6g} (J(0, 0) = {losses[0]:.6g})"
  )

  task = tasks.make("linreg")
  params, curve = tasks.fit(task.loss_fn, task.params, task.batches, optimizer(line_rate), steps)
  print(
    f"y = 3x + 2 + noise, {name}({line_rate}), {steps} updates: m = {params['m']:.5f}, "
    f"b = {params['b']:.5f}, MSE = {tasks.linreg_loss(params, tasks.linreg_data()):.6f}"
  )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    a.plot(np.asarray(trail["m"]), label="m (slope)")
    a.plot(np.asarray(trail["b"]) / 250, label="b / 250 (intercept)")
    a.set(xlabel="update", ylabel="parameter value", title=f"house prices, raw sizes, {name}({house_rate})")
    a.legend()
    b.semilogy(np.asarray(curve))
    b.set(xlabel="update", ylabel="training MSE", title=f"y = 3x + 2 + noise, {name}({line_rate})")
    fig.savefig(args.figure, dpi=90)
  return 0
