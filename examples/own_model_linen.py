"""Your own model: a Flax linen module swept over learning rates, the winner continued as a TrainState.

A linen model's ``params`` collection is a plain pytree: ``init_fn`` makes one per seed
(``model.init(key, x)["params"]``) and the loss calls ``model.apply``. The data come from a
generator of NumPy mini-batches, streamed in chunks; the held-out set gives an accuracy curve per
configuration. The winner's params and Adam state become a ``flax.training.train_state.TrainState``
that keeps training, exactly as if the sweep's run had never stopped.

Run: python examples/own_model_linen.py --steps 200
"""

import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

import lr_jax
from lr_jax import tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(10)(jnp.tanh(nn.Dense(32)(x)))


MODEL = MLP()


def init_fn(key):
  return MODEL.init(key, jnp.zeros((1, 64)))["params"]


def loss_fn(params, batch):
  x, labels = batch
  logits = MODEL.apply({"params": params}, x)
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def accuracy(params, batch):
  x, labels = batch
  return jnp.mean(jnp.argmax(MODEL.apply({"params": params}, x), axis=-1) == labels)


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

  state = train_state.TrainState(
    step=args.steps,
    apply_fn=MODEL.apply,
    params=res.best_params(),
    tx=optax.adam(best["lr"]),
    opt_state=res.best_opt_state(),
  )
  start = float(np.mean([accuracy(state.params, b) for b in zip(*held_out)]))

  @jax.jit
  def step(state, batch):
    return state.apply_gradients(grads=jax.grad(loss_fn)(state.params, batch))

  data = loader(d["x_train"], d["y_train"], seed=1)
  for _ in range(args.steps):
    state = step(state, next(data))
  end = float(np.mean([accuracy(state.params, b) for b in zip(*held_out)]))
  print(f"winner trained {args.steps} more steps: held-out accuracy {start:.4f} -> {end:.4f}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
