"""Gradient accumulation: under ``optax.MultiSteps`` a schedule counts optimizer updates, not micro-batches.

PyTorch's loop accumulates ``k`` micro-batches (``(loss / k).backward()`` each), then calls
``optimizer.step(); scheduler.step(); optimizer.zero_grad()``: the scheduler advances once per
optimizer update. ``optax.MultiSteps(opt, every_k_schedule=k)`` calls the inner optimizer (and so its
schedule's count) once per ``k`` micro-batches, averaging their gradients. The parameters after every
optimizer update and the rate (``current_lr`` against ``get_last_lr()``) must agree: float64 (x64,
scoped, with ``accumulator_dtype=jnp.float64``: Optax accumulates in float32 by default, 2e-7 relative
after one update) to 1e-10 and float32 to float32 rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S

torch = pytest.importorskip("torch")
sched = torch.optim.lr_scheduler

K = 4  # micro-batches per optimizer update
UPDATES = 12
RNG = np.random.RandomState(0)
X = RNG.randn(UPDATES * K, 8, 3)  # one micro-batch of 8 examples per row
Y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * RNG.randn(UPDATES * K, 8)
W0, B0 = RNG.randn(3) * 0.1, np.array(0.0)
TOL = {"float32": {"rtol": 2e-5, "atol": 1e-6}, "float64": {"rtol": 1e-10, "atol": 1e-12}}

# name -> (torch optimizer, its scheduler, the lr_jax twin schedule, the lr_jax optimizer given it)
CASES = {
  "sgd_momentum_steplr": (
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    lambda o: sched.StepLR(o, step_size=3, gamma=0.5),
    lambda: S.step_decay(0.05, 3, 0.5),
    lambda lr: O.sgd(lr, momentum=0.9),
  ),
  "adamw_cosine": (
    lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.01),
    lambda o: sched.CosineAnnealingLR(o, T_max=UPDATES),
    lambda: S.cosine_annealing(0.1, UPDATES),
    lambda lr: O.adamw(lr, weight_decay=0.01),
  ),
  "adam_one_cycle": (
    lambda ps: torch.optim.Adam(ps, lr=0.1),
    # total_steps = UPDATES + 1: get_last_lr() after the last update is still inside the cycle
    lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=UPDATES + 1, cycle_momentum=False),
    lambda: S.one_cycle(0.1, UPDATES + 1),
    O.adam,
  ),
}


def _torch_run(name, dtype):
  """Parameters and ``get_last_lr()`` after each optimizer update of PyTorch's accumulation loop."""
  make_opt, make_sched, _, _ = CASES[name]
  w = torch.nn.Parameter(torch.tensor(W0, dtype=dtype))
  b = torch.nn.Parameter(torch.tensor(B0, dtype=dtype))
  opt = make_opt([w, b])
  s = make_sched(opt)
  params, lrs = [], []
  for i in range(UPDATES * K):
    x, y = torch.tensor(X[i], dtype=dtype), torch.tensor(Y[i], dtype=dtype)
    loss = torch.mean((x @ w + b - y) ** 2)
    (loss / K).backward()
    if (i + 1) % K == 0:
      opt.step()
      s.step()
      opt.zero_grad()
      params.append(np.concatenate([w.detach().numpy().ravel(), b.detach().numpy().ravel()]))
      lrs.append(s.get_last_lr()[0])
  return np.array(params), np.array(lrs)


def _loss(p, x, y):
  return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


def _jax_run(name, dtype):
  _, _, schedule, make = CASES[name]
  # Optax accumulates in float32 by default (accumulator_dtype=jnp.float32): float64 params need float64
  tx = optax.MultiSteps(make(schedule()), every_k_schedule=K, accumulator_dtype=dtype)
  p = {"w": jnp.asarray(W0, dtype), "b": jnp.asarray(B0, dtype)}
  state = tx.init(p)

  @jax.jit
  def micro(p, state, x, y):
    updates, state = tx.update(jax.grad(_loss)(p, x, y), state, p)
    return optax.apply_updates(p, updates), state, O.current_lr(state)

  params, lrs = [], []
  for i in range(UPDATES * K):
    p, state, lr = micro(p, state, jnp.asarray(X[i], dtype), jnp.asarray(Y[i], dtype))
    if (i + 1) % K == 0:
      assert p["w"].dtype == dtype
      params.append(np.concatenate([np.asarray(p["w"]).ravel(), np.asarray(p["b"]).ravel()]))
      lrs.append(float(lr))
  return np.array(params), np.array(lrs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_multisteps_schedule_counts_optimizer_updates_as_torch(name, dtype):
  want_p, want_lr = _torch_run(name, getattr(torch, dtype))
  with jax.enable_x64(dtype == "float64"):
    got_p, got_lr = _jax_run(name, jnp.dtype(dtype))
  np.testing.assert_allclose(got_lr, want_lr, **TOL[dtype])  # the rate of the next update, after each
  np.testing.assert_allclose(got_p, want_p, **TOL[dtype])  # the parameters after each optimizer update
  # The test can tell: a schedule counting micro-batches would give other rates.
  per_micro = np.asarray(CASES[name][2]()(K * np.arange(1, UPDATES + 1)), np.float64)
  assert np.max(np.abs(per_micro - want_lr)) > 1e-3 * np.max(want_lr)
