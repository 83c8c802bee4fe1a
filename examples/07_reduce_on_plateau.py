"""Tutorial section 7: ReduceLROnPlateau, cut the rate when the monitored loss stops improving.

Once per evaluation (an epoch) with value v (PyTorch's rule, ``mode="min"``, relative threshold)::

    improved = v < best - |best| * threshold
    best = v and num_bad = 0 if improved, else num_bad += 1
    if num_bad > patience:  scale *= factor;  num_bad = 0

``optimizers.reduce_on_plateau`` is an Optax transformation: chain it after an optimizer. PyTorch's loop
(an epoch of updates, then ``sched.step(val_loss)``) is ``state = optimizers.plateau_step(state, val)``
once per epoch, with ``update`` called without ``value``; ``optimizers.current_lr(state)`` is the rate
the next update uses (``get_last_lr()``). The per-update form passes the loss as ``value=`` to
``update`` and averages ``accumulation_steps`` of them per evaluation; ``state.scale`` is the
multiplier now in force.

Run: python examples/07_reduce_on_plateau.py --steps 600 [--figure reduce_on_plateau.png]
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_jax import optimizers, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args  # --steps and --figure, one-line errors

VALUES = [1.0, 0.7, 0.6, 0.6, 0.61, 0.59, 0.6, 0.6, 0.58, 0.57, 0.57, 0.57, 0.57, 0.57]
STEPS_PER_EPOCH = 10


def main(argv=None):
  args = parse_args(
    argv, __file__, __doc__, steps=600, min_steps=STEPS_PER_EPOCH, what="SGD updates, 10 per epoch"
  )

  plateau = optimizers.reduce_on_plateau(factor=0.5, patience=2, threshold=0.02)
  state = plateau.init({"w": jnp.zeros(())})
  scales = []
  for v in VALUES:
    _, state = plateau.update({"w": jnp.zeros(())}, state, value=v)
    scales.append(float(state.scale))
  print("reduce_on_plateau(factor=0.5, patience=2, threshold=0.02)")
  print("epoch loss: " + " ".join(f"{v:5.2f}" for v in VALUES))
  print("scale:      " + " ".join(f"{s:5.2f}" for s in scales))

  # SGD on mini-batches of y = 3x + 2 + noise; the plateau monitors the loss averaged over each epoch.
  xb, yb = tasks.make("linreg").batches
  opt = optax.chain(
    optimizers.sgd(0.5),
    optimizers.reduce_on_plateau(factor=0.5, patience=3, accumulation_steps=STEPS_PER_EPOCH),
  )

  @jax.jit
  def train(params):
    def step(carry, t):
      params, state = carry
      i = t % STEPS_PER_EPOCH
      loss, grads = jax.value_and_grad(tasks.linreg_loss)(params, (xb[i], yb[i]))
      updates, state = opt.update(grads, state, params, value=loss)
      return (optax.apply_updates(params, updates), state), (loss, state[1].scale)

    (params, _), (losses, trace) = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(args.steps))
    return params, losses, trace

  params, losses, trace = train(tasks.linreg_init())
  trace = np.asarray(trace)
  drops = [int(t) // STEPS_PER_EPOCH + 1 for t in np.flatnonzero(np.diff(trace) < 0) + 1]
  print(
    f"y = 3x + 2 + noise, sgd(0.5) + reduce_on_plateau(0.5, patience=3), {args.steps} updates: "
    f"m = {params['m']:.4f}, b = {params['b']:.4f}, final scale = {trace[-1]:.6g}, "
    f"halved after epochs {drops}"
  )

  # PyTorch's epoch loop: 9 mini-batches of updates, then the loss on a held-out batch -> plateau_step.
  tx = optax.chain(optimizers.sgd(0.5), optimizers.reduce_on_plateau(factor=0.5, patience=3))
  update = jax.jit(lambda p, s, b: _sgd_step(tx, p, s, b))
  evaluate = jax.jit(lambda p: tasks.linreg_loss(p, (xb[-1], yb[-1])))
  plateau_step = jax.jit(optimizers.plateau_step)
  params = tasks.linreg_init()
  state = tx.init(params)
  lrs = []
  for _ in range(args.steps // STEPS_PER_EPOCH):
    for i in range(STEPS_PER_EPOCH - 1):
      params, state = update(params, state, (xb[i], yb[i]))
    state = plateau_step(state, evaluate(params))  # PyTorch: scheduler.step(val_loss)
    lrs.append(float(optimizers.current_lr(state)))  # PyTorch: scheduler.get_last_lr()[0]
  print(
    f"epoch loop, sgd(0.5) + plateau_step(validation loss, 0.5, patience=3), {len(lrs)} epochs: "
    f"m = {params['m']:.4f}, b = {params['b']:.4f}, current_lr every 10 epochs: "
    + " ".join(f"{lr:.6g}" for lr in lrs[9::10])
  )

  if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    a.plot(VALUES, "o-", label="monitored loss")
    a.step(range(len(scales)), scales, where="post", label="scale")
    a.set(xlabel="evaluation (epoch)", ylabel="loss / scale", title="factor 0.5, patience 2, threshold 2%")
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below the axes, off the curves
    epoch_loss = np.asarray(losses)[: len(losses) // STEPS_PER_EPOCH * STEPS_PER_EPOCH].reshape(
      -1, STEPS_PER_EPOCH
    )
    b.semilogy(epoch_loss.mean(axis=1), label="epoch mean loss")
    b.semilogy(trace[STEPS_PER_EPOCH - 1 :: STEPS_PER_EPOCH], label="scale")
    b.set(xlabel="epoch", ylabel="loss / scale", title="y = 3x + 2 + noise, sgd(0.5) + plateau")
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.savefig(args.figure, dpi=90)
  return 0


def _sgd_step(tx, params, state, batch):
  grads = jax.grad(tasks.linreg_loss)(params, batch)
  updates, state = tx.update(grads, state, params)  # no value=: the scale in force is applied
  return optax.apply_updates(params, updates), state


if __name__ == "__main__":
  raise SystemExit(main())
