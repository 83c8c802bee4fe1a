"""Your own model: a Flax NNX module swept over learning rates, then trained further.

NNX's functional API splits a module into a static ``graphdef`` and an ``nnx.State`` of arrays:
the state is what ``lr_jax.sweep`` trains, and ``nnx.merge(graphdef, state)`` rebuilds the module
inside the loss. (An NNX module can also be passed as it is: in Flax >= 0.12 it is a pytree.)
``init_fn`` builds one state per seed; the data come from a generator of NumPy mini-batches,
streamed in chunks; the held-out set gives an accuracy curve per configuration. The winner's
state and Adam state then continue training in a plain Optax loop.

Run: python examples/own_model_nnx.py --steps 200
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import lr_jax
from lr_jax import tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors


class MLP(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(64, 32, rngs=rngs)
    self.out = nnx.Linear(32, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(jnp.tanh(self.hidden(x)))


GRAPHDEF, _ = nnx.split(MLP(nnx.Rngs(0)))


def init_fn(key):
  return nnx.split(MLP(nnx.Rngs(key)))[1]  # the nnx.State of a freshly initialised module


def loss_fn(state, batch):
  x, labels = batch
  logits = nnx.merge(GRAPHDEF, state)(x)
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def accuracy(state, batch):
  x, labels = batch
  return jnp.mean(jnp.argmax(nnx.merge(GRAPHDEF, state)(x), axis=-1) == labels)


def loader(x, y, batch_size=64, seed=0):
  """Endless shuffled mini-batches of NumPy arrays, as a grain / tf.data pipeline yields them."""
  rng = np.random.default_rng(seed)
  while True:
    order = rng.permutation(len(x))
    for i in range(0, len(x) - batch_size + 1, batch_size):
      yield x[order[i : i + batch_size]], y[order[i : i + batch_size]]


def main(argv=None):
  args = parse_args(argv, __file__, __doc__, steps=200, min_steps=4)
  d = tasks.digits_data()
  held_out = (d["x_test"].reshape(9, 50, 64), d["y_test"].reshape(9, 50))  # 450 images, 9 batches

  res = lr_jax.sweep(
    loss_fn,
    None,
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

  state, opt_state = res.best_params(), res.best_opt_state()  # an nnx.State and its Adam state
  tx = optax.adam(best["lr"])
  start = float(np.mean([accuracy(state, b) for b in zip(*held_out)]))

  @jax.jit
  def step(state, opt_state, batch):
    grads = jax.grad(loss_fn)(state, batch)
    updates, opt_state = tx.update(grads, opt_state, state)
    return optax.apply_updates(state, updates), opt_state

  data = loader(d["x_train"], d["y_train"], seed=1)
  for _ in range(args.steps):
    state, opt_state = step(state, opt_state, next(data))
  end = float(np.mean([accuracy(state, b) for b in zip(*held_out)]))
  model = nnx.merge(GRAPHDEF, state)  # the trained module
  print(f"winner trained {args.steps} more steps: held-out accuracy {start:.4f} -> {end:.4f}")
  print(f"trained module: {type(model).__name__} with hidden kernel {model.hidden.kernel.shape}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
