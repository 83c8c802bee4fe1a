"""Your own model: an Equinox ``eqx.nn.MLP`` swept over learning rates, then trained further.

The module itself is what ``lr_jax.sweep`` trains: its floating-point arrays are the parameters,
its other leaves (the activation function) stay as they are, as ``eqx.partition(model,
eqx.is_inexact_array)`` splits it. ``init_fn`` builds one model per seed; the data come from a
generator of NumPy mini-batches (as a data loader yields them), streamed in chunks; the held-out
set gives an accuracy curve per configuration. The winner's params and Adam state then continue
training in a plain Equinox loop.

Run: python examples/own_model_equinox.py --steps 200
"""

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import lr_jax
from lr_jax import tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors


def loader(x, y, batch_size=64, seed=0):
  """Endless shuffled mini-batches of NumPy arrays, as a grain / tf.data pipeline yields them."""
  rng = np.random.default_rng(seed)
  while True:
    order = rng.permutation(len(x))
    for i in range(0, len(x) - batch_size + 1, batch_size):
      yield x[order[i : i + batch_size]], y[order[i : i + batch_size]]


def init_fn(key):
  return eqx.nn.MLP(64, 10, 32, 1, activation=jnp.tanh, key=key)


def loss_fn(model, batch):
  x, labels = batch
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(jax.vmap(model)(x), labels))


def accuracy(model, batch):
  x, labels = batch
  return jnp.mean(jnp.argmax(jax.vmap(model)(x), axis=-1) == labels)


def main(argv=None):
  args = parse_args(argv, __file__, __doc__, steps=200, min_steps=4)
  d = tasks.digits_data()
  held_out = (d["x_test"].reshape(9, 50, 64), d["y_test"].reshape(9, 50))  # 450 images, 9 batches

  res = lr_jax.sweep(
    loss_fn,
    None,  # init_fn makes the model of each seed
    loader(d["x_train"], d["y_train"]),
    init_fn=init_fn,
    seeds=2,
    optimizer=lambda h: optax.adam(h["lr"]),
    grid={"lr": [1e-3, 3e-3, 1e-2, 3e-2]},
    num_steps=args.steps,
    eval_fn=accuracy,
    eval_mode="max",
    eval_batches=held_out,
    eval_every=args.steps // 4,
  )
  for row, curve in zip(res.table(), res.eval_curve):
    print(f"lr {row['lr']:g}: held-out accuracy {row['eval']:.4f} (seeds {row['eval_min']:.4f}-{row['eval_max']:.4f});"
          f" curve " + " ".join(f"{a:.3f}" for a in curve))  # fmt: skip
  best = res.best()
  print(f"best: lr {best['lr']:g}, held-out accuracy {best['eval']:.4f} (mean of 2 seeds)")

  model, state = res.best_params(), res.best_opt_state()  # the winner's seed, as trained
  tx = optax.adam(best["lr"])
  start = float(np.mean([accuracy(model, b) for b in zip(*held_out)]))

  @eqx.filter_jit
  def step(model, state, batch):
    grads = eqx.filter_grad(loss_fn)(model, batch)
    updates, state = tx.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
    return eqx.apply_updates(model, updates), state

  data = loader(d["x_train"], d["y_train"], seed=1)
  for _ in range(args.steps):
    model, state = step(model, state, next(data))
  end = float(np.mean([accuracy(model, b) for b in zip(*held_out)]))
  print(f"winner trained {args.steps} more steps: held-out accuracy {start:.4f} -> {end:.4f}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
