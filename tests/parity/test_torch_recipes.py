"""Four PyTorch training recipes ported to lr_jax, run side by side from the same weights and batches.

Each recipe trains a small MLP (3 -> 8 -> 1, tanh, mean squared error) for 8 epochs of 5 mini-batches
in both frameworks, written the way the README's "Porting from PyTorch" table says:

* SGD(momentum) + OneCycleLR (momentum cycled too), scheduler stepped per update;
* AdamW + SequentialLR(LinearLR warm-up, CosineAnnealingLR) + clip_grad_norm_;
* RMSprop + StepLR stepped per epoch + ReduceLROnPlateau on a validation loss (``plateau_step``);
* Adagrad + CosineAnnealingWarmRestarts, stepped per update.

After every update: the loss, every parameter, and ``optimizers.current_lr(state)`` against
``optimizer.param_groups[0]["lr"]`` (what ``scheduler.get_last_lr()`` returns): float32 to 1e-5
relative, float64 (``jax.enable_x64``) to 1e-10.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S

torch = pytest.importorskip("torch")

EPOCHS, STEPS = 8, 5  # epochs, mini-batches per epoch
N = EPOCHS * STEPS
BATCH = 6


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(STEPS * BATCH + 12, 3))
  y = np.sin(x @ np.array([1.0, -2.0, 0.5]))[:, None] + 0.1 * rng.normal(size=(len(x), 1))
  init = {
    "w1": rng.normal(size=(3, 8)) * 0.5,
    "b1": rng.normal(size=(8,)) * 0.1,
    "w2": rng.normal(size=(8, 1)) * 0.5,
    "b2": np.zeros(1),
  }
  return x, y, init


def _batch(x, y, t):
  i = t % STEPS
  return x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]


def _val(x, y):
  return x[STEPS * BATCH :], y[STEPS * BATCH :]


def _loss(p, x, y, np_=jnp):
  h = np_.tanh(x @ p["w1"] + p["b1"][None])
  return ((h @ p["w2"] + p["b2"][None] - y) ** 2).mean()


# ------------------------------------------------------------------------------------------- recipes


def _jax_recipe(name, f):
  """(optimizer, uses plateau_step) in lr_jax; ``f`` makes hyperparameters of the run's float dtype."""
  if name == "sgd_one_cycle":
    # the momentum cycle is injected; the rate schedule passes through, so the state keeps it
    dtype = None if f is float else jnp.float64  # inject_hyperparams makes float32 otherwise
    tx = optax.inject_hyperparams(O.sgd, static_args=("learning_rate",), hyperparam_dtype=dtype)(
      learning_rate=S.one_cycle(f(0.1), N + 1),
      momentum=S.one_cycle_momentum(N + 1, base_momentum=f(0.85), max_momentum=f(0.95)),
    )
    return tx, False
  if name == "adamw_warmup_cosine_clip":
    sched = S.warmup(S.cosine_annealing(f(0.01), N - 10, f(1e-4)), 10, init_value=f(0.01) * f(0.1))
    return optax.chain(O.clip_grad_norm(0.5), O.adamw(sched, weight_decay=0.05)), False
  if name == "rmsprop_steplr_plateau":
    sched = S.step_decay(f(0.01), step_size=2 * STEPS, gamma=f(0.5))
    return optax.chain(O.rmsprop(sched), O.reduce_on_plateau(factor=0.5, patience=1, threshold=0.05)), True
  if name == "adagrad_warm_restarts":
    return O.adagrad(S.cosine_warm_restarts(f(0.1), 10, 2, f(0.001))), False
  raise AssertionError(name)


def _torch_recipe(name, params):
  """(optimizer, per-update schedulers, per-epoch schedulers, plateau scheduler or None, max_norm)."""
  LR = torch.optim.lr_scheduler
  if name == "sgd_one_cycle":
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    # total_steps = N + 1: PyTorch raises past total_steps, lr_jax holds the last rate
    return opt, [LR.OneCycleLR(opt, max_lr=0.1, total_steps=N + 1)], [], None, None
  if name == "adamw_warmup_cosine_clip":
    opt = torch.optim.AdamW(params, lr=0.01, weight_decay=0.05)
    warm = LR.LinearLR(opt, start_factor=0.1, total_iters=10)
    cos = LR.CosineAnnealingLR(opt, T_max=N - 10, eta_min=1e-4)
    return opt, [LR.SequentialLR(opt, [warm, cos], milestones=[10])], [], None, 0.5
  if name == "rmsprop_steplr_plateau":
    opt = torch.optim.RMSprop(params, lr=0.01)
    plateau = LR.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.05)
    return opt, [], [LR.StepLR(opt, step_size=2, gamma=0.5)], plateau, None
  if name == "adagrad_warm_restarts":
    opt = torch.optim.Adagrad(params, lr=0.1)
    return opt, [LR.CosineAnnealingWarmRestarts(opt, T_0=10, T_mult=2, eta_min=0.001)], [], None, None
  raise AssertionError(name)


RECIPES = ["sgd_one_cycle", "adamw_warmup_cosine_clip", "rmsprop_steplr_plateau", "adagrad_warm_restarts"]


def run_torch(name, dtype):
  x, y, init = _data()
  tdt = torch.float64 if dtype == np.float64 else torch.float32
  p = {k: torch.tensor(v, dtype=tdt, requires_grad=True) for k, v in init.items()}
  opt, per_update, per_epoch, plateau, max_norm = _torch_recipe(name, list(p.values()))
  xv, yv = (torch.tensor(a, dtype=tdt) for a in _val(x, y))
  losses, lrs, params = [], [], []
  for t in range(N):
    xb, yb = (torch.tensor(a, dtype=tdt) for a in _batch(x, y, t))
    opt.zero_grad()
    loss = _loss(p, xb, yb, np_=torch)
    loss.backward()
    loss = loss.detach()
    if max_norm is not None:
      torch.nn.utils.clip_grad_norm_(list(p.values()), max_norm)
    opt.step()
    for s in per_update:
      s.step()
    if (t + 1) % STEPS == 0:
      for s in per_epoch:
        s.step()
      if plateau is not None:
        with torch.no_grad():
          plateau.step(float(_loss(p, xv, yv, np_=torch)))
    losses.append(float(loss))
    lrs.append(opt.param_groups[0]["lr"])
    params.append({k: v.detach().numpy().copy() for k, v in p.items()})
  return np.array(losses), np.array(lrs), params


def run_jax(name, dtype):
  x, y, init = _data()
  # float64: strongly typed float64 arrays (np.float64 hyperparameters give float32 rates under jit)
  f = functools.partial(jnp.asarray, dtype=jnp.float64) if dtype == np.float64 else float
  tx, uses_plateau = _jax_recipe(name, f)
  params = {k: jnp.asarray(v, dtype) for k, v in init.items()}
  state = tx.init(params)
  xv, yv = (jnp.asarray(a, dtype) for a in _val(x, y))

  @jax.jit
  def step(params, state, xb, yb):
    loss, grads = jax.value_and_grad(_loss)(params, xb, yb)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss, O.current_lr(state)

  evaluate = jax.jit(lambda p: _loss(p, xv, yv))
  plateau_step = jax.jit(O.plateau_step)
  losses, lrs, out = [], [], []
  for t in range(N):
    xb, yb = (jnp.asarray(a, dtype) for a in _batch(x, y, t))
    params, state, loss, lr = step(params, state, xb, yb)
    if uses_plateau and (t + 1) % STEPS == 0:
      state = plateau_step(state, evaluate(params))
      lr = O.current_lr(state)
    losses.append(float(loss))
    lrs.append(float(lr))
    out.append(jax.tree.map(np.asarray, params))
  return np.array(losses), np.array(lrs), out


def _compare(name, dtype, rtol, atol):
  t_loss, t_lr, t_params = run_torch(name, dtype)
  j_loss, j_lr, j_params = run_jax(name, dtype)
  assert len(set(np.round(t_lr, 12))) > 3  # the rate really moves
  np.testing.assert_allclose(j_lr, t_lr, rtol=rtol, err_msg=f"{name}: current_lr vs get_last_lr")
  np.testing.assert_allclose(j_loss, t_loss, rtol=rtol, err_msg=f"{name}: losses")
  for t, (a, b) in enumerate(zip(j_params, t_params, strict=True)):
    for k in b:
      np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=f"{name}: {k} after update {t}")
  return t_lr


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_float32(name):
  lrs = _compare(name, np.float32, rtol=1e-5, atol=1e-6)
  if name == "rmsprop_steplr_plateau":  # ReduceLROnPlateau did cut, beyond StepLR's halvings
    step_lr = 0.01 * 0.5 ** ((np.arange(N) + 1) // (2 * STEPS))
    assert np.min(lrs / step_lr) <= 0.5


def test_recipes_float64():
  # scoped x64 (jax.enable_x64): float64 arrays and Python-float hyperparameters as float64, as a process
  # started with JAX_ENABLE_X64=1 has them, without starting one
  with jax.enable_x64(True):
    assert jnp.asarray(1.0).dtype == jnp.float64
    for name in RECIPES:
      _compare(name, np.float64, rtol=1e-10, atol=1e-12)


def test_port_pytorch_recipe_example_runs_and_matches():
  import contextlib
  import io
  import re
  import runpy

  root = Path(__file__).resolve().parents[2]
  ns = runpy.run_path(str(root / "examples" / "port_pytorch_recipe.py"))
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    assert ns["main"](["--steps", "40"]) == 0
  text = out.getvalue()
  loss_diff = float(re.search(r"largest relative loss difference: (\S+)", text).group(1))
  lr_diff = float(re.search(r"largest lr difference, relative to the peak lr: (\S+)", text).group(1))
  assert loss_diff < 1e-5 and lr_diff < 1e-6, text
  assert float(re.search(r"plateau scale at the end: (\S+)", text).group(1)) < 1.0, text  # a cut happened
