"""A PyTorch training recipe ported to lr_jax, run in both frameworks from the same weights and batches.

The recipe: AdamW with weight decay on the weights only (PyTorch: two param groups; lr_jax: ``mask=``),
a linear warm-up then cosine annealing stepped every update (SequentialLR(LinearLR, CosineAnnealingLR)),
gradient-norm clipping (``clip_grad_norm_``), ReduceLROnPlateau on a validation loss once per epoch,
and the learning rate logged every update (``get_last_lr()`` / ``optimizers.current_lr``). The port::

    tx = optax.chain(
        optimizers.clip_grad_norm(1.0),
        optimizers.adamw(schedules.warmup(schedules.cosine_annealing(lr, total - warm), warm,
                                          init_value=lr * start_factor),
                         weight_decay=wd, mask=lambda p: {k: k.startswith("w") for k in p}),
        optimizers.reduce_on_plateau(factor=0.5, patience=1),
    )
    # per update:  updates, state = tx.update(grads, state, params);  log optimizers.current_lr(state)
    # per epoch:   state = optimizers.plateau_step(state, evaluate(params))

Run: python examples/port_pytorch_recipe.py --steps 200 (needs torch: pip install lr_jax[parity])
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_jax import optimizers, schedules

STEPS_PER_EPOCH, BATCH = 10, 8
LR, START_FACTOR, WARM, WD, MAX_NORM = 0.01, 0.1, 5, 0.05, 1.0


def data(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=((STEPS_PER_EPOCH + 2) * BATCH, 4)).astype(np.float32)
  y = (np.sin(x @ np.array([1.0, -2.0, 0.5, 0.3])) + 0.1 * rng.normal(size=len(x))).astype(np.float32)
  init = {
    "w1": (rng.normal(size=(4, 16)) * 0.5).astype(np.float32),
    "b1": np.zeros(16, np.float32),
    "w2": (rng.normal(size=(16, 1)) * 0.5).astype(np.float32),
    "b2": np.zeros(1, np.float32),
  }
  return x, y[:, None], init


def loss_fn(p, x, y):
  """Mean squared error of a 4 -> 16 -> 1 tanh MLP (the same expression in NumPy, JAX and torch)."""
  h = (x @ p["w1"] + p["b1"][None]).tanh() if hasattr(x, "tanh") else jnp.tanh(x @ p["w1"] + p["b1"][None])
  return ((h @ p["w2"] + p["b2"][None] - y) ** 2).mean()


def batch(x, y, i):
  return x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]


def run_lr_jax(total, x, y, init):
  sched = schedules.warmup(schedules.cosine_annealing(LR, total - WARM), WARM, init_value=LR * START_FACTOR)
  tx = optax.chain(
    optimizers.clip_grad_norm(MAX_NORM),
    optimizers.adamw(sched, weight_decay=WD, mask=lambda p: {k: k.startswith("w") for k in p}),
    optimizers.reduce_on_plateau(factor=0.5, patience=1),
  )
  params = jax.tree.map(jnp.asarray, init)
  state = tx.init(params)

  @jax.jit
  def step(params, state, xb, yb):
    loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss, optimizers.current_lr(state)

  evaluate = jax.jit(lambda p: loss_fn(p, *batch(x, y, STEPS_PER_EPOCH)))
  plateau_step = jax.jit(optimizers.plateau_step)
  losses, lrs = [], []
  for t in range(total):
    params, state, loss, lr = step(params, state, *batch(x, y, t % STEPS_PER_EPOCH))
    if (t + 1) % STEPS_PER_EPOCH == 0:
      state = plateau_step(state, evaluate(params))
      lr = optimizers.current_lr(state)
    losses.append(float(loss))
    lrs.append(float(lr))
  return np.array(losses), np.array(lrs), float(state[2].scale)


def run_torch(total, x, y, init):
  import torch

  p = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
  groups = [
    {"params": [p["w1"], p["w2"]], "weight_decay": WD},
    {"params": [p["b1"], p["b2"]], "weight_decay": 0.0},
  ]
  opt = torch.optim.AdamW(groups, lr=LR)
  LRS = torch.optim.lr_scheduler
  warm = LRS.LinearLR(opt, start_factor=START_FACTOR, total_iters=WARM)
  cos = LRS.CosineAnnealingLR(opt, T_max=total - WARM)
  sched = LRS.SequentialLR(opt, [warm, cos], milestones=[WARM])
  plateau = LRS.ReduceLROnPlateau(opt, factor=0.5, patience=1)
  xt, yt = torch.tensor(x), torch.tensor(y)
  losses, lrs = [], []
  for t in range(total):
    opt.zero_grad()
    loss = loss_fn(p, *batch(xt, yt, t % STEPS_PER_EPOCH))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(p.values()), MAX_NORM)
    opt.step()
    sched.step()
    if (t + 1) % STEPS_PER_EPOCH == 0:
      with torch.no_grad():
        plateau.step(float(loss_fn(p, *batch(xt, yt, STEPS_PER_EPOCH))))
    losses.append(float(loss.detach()))
    lrs.append(opt.param_groups[0]["lr"])  # get_last_lr() of the scheduler stepped last
  return np.array(losses), np.array(lrs)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=200, help="updates (10 per epoch)")
  parser.add_argument("--figure", help="unused (kept for the examples' common interface)")
  args = parser.parse_args(argv)
  total = max(args.steps // STEPS_PER_EPOCH, 2) * STEPS_PER_EPOCH
  x, y, init = data()
  j_loss, j_lr, scale = run_lr_jax(total, x, y, init)
  t_loss, t_lr = run_torch(total, x, y, init)
  print(f"{total} updates, {total // STEPS_PER_EPOCH} epochs; lr every epoch (lr_jax current_lr):")
  print(" ".join(f"{lr:.3g}" for lr in j_lr[STEPS_PER_EPOCH - 1 :: STEPS_PER_EPOCH]))
  print(f"final loss: lr_jax {j_loss[-1]:.6f}, torch {t_loss[-1]:.6f}; plateau scale at the end: {scale:g}")
  print(f"largest relative loss difference: {np.max(np.abs(j_loss - t_loss) / np.abs(t_loss)):.2e}")
  print(f"largest lr difference, relative to the peak lr: {np.max(np.abs(j_lr - t_lr)) / LR:.2e}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
