"""Weight-decay masks, weight-decay schedules and parameter groups against torch.optim param groups.

Tolerances: float32 ``rtol=1e-5`` (``atol=1e-6`` for parameters passing near 0), compared after
every update; float64 (a subprocess with ``JAX_ENABLE_X64=1``) ``rtol=1e-10``.
"""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S
from tests.parity.test_torch_optimizers import GRADS, PARAMS, TORCH, _assert_close, _run_jax, _torch_kwargs

torch = pytest.importorskip("torch")

K = len(GRADS["w"])
# jax.tree leaf order of PARAMS: b, s, w. PyTorch habit: no decay for biases and scalars.
MASK = {"w": True, "b": False, "s": False}


def _torch_groups(cls, kwargs, wd, *, set_wd=None, params=PARAMS, grads=GRADS, dtype=np.float32):
  """torch ``cls`` with groups [w: weight_decay=wd] and [b, s: weight_decay=0]; leaves after each update.

  ``set_wd(k)`` (optional) sets the first group's weight decay before update k.
  """
  leaves = [torch.tensor(np.asarray(p, dtype), requires_grad=True) for p in jax.tree.leaves(params)]
  opt = cls(
    [{"params": [leaves[2]], "weight_decay": wd}, {"params": leaves[:2], "weight_decay": 0.0}], **kwargs
  )
  out = []
  for k in range(K):
    if set_wd is not None:
      opt.param_groups[0]["weight_decay"] = set_wd(k)
    for p, g in zip(leaves, jax.tree.leaves(grads)):
      p.grad = torch.tensor(np.asarray(g[k], dtype))
    opt.step()
    out.append([p.detach().numpy().copy() for p in leaves])
  return out


def _jax_steps(tx, params=PARAMS, grads=GRADS):
  state = tx.init(params)
  out = []
  for k in range(K):
    u, state = tx.update(jax.tree.map(lambda g, k=k: g[k], grads), state, params)
    params = optax.apply_updates(params, u)
    out.append([np.asarray(x) for x in jax.tree.leaves(params)])
  return out


MASKED = [
  ("sgd", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
  ("adagrad", dict(learning_rate=0.1, lr_decay=0.05)),
  ("rmsprop", dict(learning_rate=0.01, momentum=0.9, centered=True)),
  ("adam", dict(learning_rate=0.01, amsgrad=True)),
  ("adamw", dict(learning_rate=0.01, amsgrad=True)),
]


@pytest.mark.parametrize("name,kwargs", MASKED, ids=[n for n, _ in MASKED])
def test_mask_matches_torch_group_without_weight_decay(name, kwargs):
  theirs = _torch_groups(TORCH[name](), _torch_kwargs(kwargs), 0.1)[-1]
  for mask in (MASK, lambda p: {k: v.ndim == 2 for k, v in p.items()}):
    _assert_close(_run_jax(getattr(O, name)(**kwargs, weight_decay=0.1, mask=mask)), theirs)


def test_mask_is_not_optax_masked_trap():
  """Masked-out leaves get the optimizer's update, not their raw gradient (optax.masked's trap)."""
  ours = _run_jax(O.adamw(0.01, weight_decay=0.1, mask=MASK))
  no_decay = _run_jax(O.adamw(0.01, weight_decay=0.0))
  _assert_close(ours[:2], no_decay[:2])  # b and s: plain Adam
  trap = _run_jax(optax.masked(O.adamw(0.01, weight_decay=0.1), MASK))
  assert np.max(np.abs(trap[0] - ours[0])) > 0.1  # optax.masked moved b by its summed raw gradients


def test_mask_prefix_and_bad_masks():
  prefix = _run_jax(O.adam(0.01, weight_decay=0.1, mask={"w": True, "b": False, "s": False}))
  _assert_close(_run_jax(O.adam(0.01, weight_decay=0.1, mask=lambda p: MASK)), prefix)
  with pytest.raises(ValueError, match="adam: `mask` must be a pytree of Python bools"):
    O.adam(0.01, weight_decay=0.1, mask={"w": 1.0})
  tx = O.sgd(0.1, weight_decay=0.1, mask={"w": True})
  with pytest.raises(ValueError, match="sgd: `mask` must have the structure of the params"):
    tx.update(PARAMS, tx.init(PARAMS), PARAMS)


WD_SCHEDULE = S.cosine_annealing(0.2, total_steps=K, end_value=0.01)


@pytest.mark.parametrize("name,kwargs", MASKED, ids=[n for n, _ in MASKED])
def test_weight_decay_schedule_matches_torch_group_weight_decay_set_each_step(name, kwargs):
  """Update k uses weight_decay(k); in torch, param_groups[0]["weight_decay"] = value before step k."""
  values = np.asarray(WD_SCHEDULE(jnp.arange(K)), np.float64)
  theirs = _torch_groups(TORCH[name](), _torch_kwargs(kwargs), 0.0, set_wd=lambda k: float(values[k]))
  ours = _jax_steps(getattr(O, name)(**kwargs, weight_decay=WD_SCHEDULE, mask=MASK))
  # Centered RMSprop's sqrt(v - m^2) amplifies float32 rounding: 1.1e-6 absolute on a bias passing
  # near 0 (-0.0055) at some step, without any weight decay on it; hence atol=3e-6 there.
  atol = 3e-6 if name == "rmsprop" else 1e-6
  for a, b in zip(ours, theirs, strict=True):
    _assert_close(a, b, atol=atol)
  # also through optax.inject_hyperparams (the schedule is evaluated there) and under jit
  tx = optax.inject_hyperparams(getattr(O, name), static_args=("mask",))(
    **kwargs, weight_decay=WD_SCHEDULE, mask=MASK
  )
  _assert_close(_run_jax(tx), theirs[-1], atol=atol)


# ---------------------------------------------------------------------------------------- groups
# torch.optim.AdamW([{w: lr 1e-2, wd 0.1}, {b, s: lr 3e-2, wd 0, betas (0.8, 0.99)}]) with a scheduler


def _groups_tx(kind, x64=False):
  lrs = {"decay": 1e-2, "no_decay": 3e-2}
  if kind == "cosine" and not x64:  # CosineAnnealingLR(T_max=K, eta_min=1e-3) on each group's base rate
    sched = {g: S.cosine_annealing(lr, total_steps=K, end_value=1e-3) for g, lr in lrs.items()}
  elif kind == "cosine":  # the same closed form in float64 (lr_jax schedules may compute in float32)
    cos = lambda lr: lambda t: 1e-3 + (lr - 1e-3) * (1 + jnp.cos(jnp.pi * (t + 0.0) / K)) / 2
    sched = {g: cos(lr) for g, lr in lrs.items()}
  else:  # LambdaLR with one lambda per group; t + 1.0 (not t + 1): an int32 / int would be float32
    sched = {
      "decay": lambda t: lrs["decay"] * jnp.minimum(1.0, (t + 1.0) / 10),
      "no_decay": lambda t: lrs["no_decay"] * 0.95**t,
    }
  return O.param_groups(
    {
      "decay": O.adamw(sched["decay"], weight_decay=0.1),
      "no_decay": O.adamw(sched["no_decay"], b1=0.8, b2=0.99, weight_decay=0.0),
    },
    rules={r"^w$": "decay", r".*": "no_decay"},
  )


def _groups_torch(kind, params, grads, dtype):
  leaves = [torch.tensor(np.asarray(p, dtype), requires_grad=True) for p in jax.tree.leaves(params)]
  opt = torch.optim.AdamW(
    [
      {"params": [leaves[2]], "lr": 1e-2, "weight_decay": 0.1},
      {"params": leaves[:2], "lr": 3e-2, "weight_decay": 0.0, "betas": (0.8, 0.99)},
    ]
  )
  if kind == "cosine":
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=K, eta_min=1e-3)
  else:
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [lambda t: min(1.0, (t + 1) / 10), lambda t: 0.95**t])
  out = []
  for k in range(K):
    for p, g in zip(leaves, jax.tree.leaves(grads)):
      p.grad = torch.tensor(np.asarray(g[k], dtype))
    opt.step()
    sched.step()
    out.append([p.detach().numpy().copy() for p in leaves])
  return out


@pytest.mark.parametrize("kind", ["cosine", "lambda"])
def test_param_groups_match_torch_adamw_groups_every_step_float32(kind):
  ours = _jax_steps(_groups_tx(kind))
  theirs = _groups_torch(kind, PARAMS, GRADS, np.float32)
  for a, b in zip(ours, theirs, strict=True):
    _assert_close(a, b)


def test_param_groups_match_torch_adamw_groups_every_step_float64():
  # scoped x64 (jax.enable_x64), as a process started with JAX_ENABLE_X64=1 has it, without starting one
  with jax.enable_x64(True):
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), PARAMS)
    grads = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), GRADS)
    report = {}
    for kind in ("cosine", "lambda"):
      ours = _jax_steps(_groups_tx(kind, x64=True), params, grads)
      theirs = _groups_torch(kind, params, grads, np.float64)
      assert all(x.dtype == np.float64 for x in ours[-1])
      report[kind] = max(
        float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3)))
        for sa, sb in zip(ours, theirs)
        for a, b in zip(sa, sb)
      )
  assert all(v < 1e-10 for v in report.values()), report


def test_param_groups_labels_function_and_errors():
  label_fn = lambda p: {k: "decay" if k == "w" else "no_decay" for k in p}
  groups = {"decay": O.adamw(0.01, weight_decay=0.1), "no_decay": O.adamw(0.01, weight_decay=0.0)}
  _assert_close(
    _run_jax(O.param_groups(groups, label_fn)), _run_jax(O.adamw(0.01, weight_decay=0.1, mask=MASK))
  )
  with pytest.raises(ValueError, match="param_groups: exactly one of `labels` and `rules`"):
    O.param_groups(groups)
  with pytest.raises(ValueError, match="param_groups: `rules` must name groups"):
    O.param_groups(groups, rules={".*": "other"})
  with pytest.raises(ValueError, match="param_groups: `groups` values must be optax.GradientTransformations"):
    O.param_groups({"a": 0.1}, rules={".*": "a"})
  tx = O.param_groups(groups, rules={"^w$": "decay"})
  with pytest.raises(ValueError, match="param_groups: parameter 'b' matches no pattern of `rules`"):
    tx.init(PARAMS)
