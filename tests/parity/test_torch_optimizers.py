"""Parity of lr_jax.optimizers with torch.optim: parameters after 60 updates of the same gradients.

Tolerance: float32, ``rtol=1e-5`` plus ``atol=1e-6`` (parameters that pass near zero have no
meaningful relative error; 1e-6 is ~10 float32 ulps at the parameters' scale of 1).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S

torch = pytest.importorskip("torch")

K = 60  # updates per run
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}
RTOL, ATOL = 1e-5, 1e-6


def _data(seed=0, k=K):
  rng = np.random.default_rng(seed)
  params = {n: rng.normal(size=s).astype(np.float32) for n, s in SHAPES.items()}
  grads = {n: rng.normal(size=(k, *s)).astype(np.float32) for n, s in SHAPES.items()}
  return params, grads


PARAMS, GRADS = _data()


def _at(tree, k):
  return jax.tree.map(lambda x: x[k], tree)


def _run_jax(tx, params=PARAMS, grads=GRADS):
  """The parameters after ``len(grads)`` eager updates, as a list of leaves (jax.tree order).

  Eager, not jitted: for these tiny trees a compile per configuration costs more than the updates.
  The vmapped-grid test below runs the same code jitted.
  """
  state = tx.init(params)
  for k in range(len(jax.tree.leaves(grads)[0])):
    u, state = tx.update(_at(grads, k), state, params)
    params = optax.apply_updates(params, u)
  return [np.asarray(x) for x in jax.tree.leaves(params)]


def _run_torch(cls, kwargs, scheduler=None, clip=None, groups=None, params=PARAMS, grads=GRADS):
  """torch.optim ``cls`` on the same leaves; ``scheduler(opt)`` is stepped after each update."""
  leaves = jax.tree.leaves(params)
  gleaves = jax.tree.leaves(grads)
  ps = [torch.tensor(np.array(p), requires_grad=True) for p in leaves]
  opt = cls(groups(ps) if groups else ps, **kwargs)
  sched = scheduler(opt) if scheduler else None
  for k in range(len(gleaves[0])):
    for p, g in zip(ps, gleaves):
      p.grad = torch.tensor(np.array(g[k]))
    if clip is not None:
      torch.nn.utils.clip_grad_norm_(ps, clip)
    opt.step()
    if sched is not None:
      sched.step()
  return [p.detach().numpy() for p in ps]


def _torch_kwargs(kwargs):
  kw = dict(kwargs)
  if "learning_rate" in kw:
    kw["lr"] = kw.pop("learning_rate")
  if "b1" in kw or "b2" in kw:
    kw["betas"] = (kw.pop("b1", 0.9), kw.pop("b2", 0.999))
  return kw


def _assert_close(ours, theirs, rtol=RTOL, atol=ATOL):
  for a, b in zip(ours, theirs, strict=True):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


TORCH = {
  "sgd": lambda: torch.optim.SGD,
  "adagrad": lambda: torch.optim.Adagrad,
  "rmsprop": lambda: torch.optim.RMSprop,
  "adam": lambda: torch.optim.Adam,
  "adamw": lambda: torch.optim.AdamW,
}


def _cases():
  cases = []
  for m in (0.0, 0.9):
    for d in (0.0, 0.3):
      for n in (False, True):
        for wd in (0.0, 0.01):
          if n and (m == 0 or d != 0):
            continue
          cases.append(
            ("sgd", dict(learning_rate=0.05, momentum=m, dampening=d, nesterov=n, weight_decay=wd))
          )
  for lrd in (0.0, 0.05):
    for acc in (0.0, 0.1):
      for wd in (0.0, 0.01):
        cases.append(
          ("adagrad", dict(learning_rate=0.1, lr_decay=lrd, initial_accumulator_value=acc, weight_decay=wd))
        )
  for centered in (False, True):
    for m in (0.0, 0.9):
      for wd in (0.0, 0.01):
        cases.append(("rmsprop", dict(learning_rate=0.01, momentum=m, centered=centered, weight_decay=wd)))
  cases.append(("rmsprop", dict(learning_rate=0.01, alpha=0.9, eps=1e-3, momentum=0.5, centered=True)))
  for name in ("adam", "adamw"):
    for ams in (False, True):
      for wd in (0.0, 0.05):
        cases.append((name, dict(learning_rate=0.01, amsgrad=ams, weight_decay=wd)))
  cases.append(("adam", dict(learning_rate=0.02, b1=0.5, b2=0.9, eps=1e-3)))
  cases.append(("adamw", dict(learning_rate=0.02, b1=0.8, b2=0.95, eps=1e-6)))  # default weight_decay=1e-2
  return cases


CASES = _cases()


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch(name, kwargs):
  ours = _run_jax(getattr(O, name)(**kwargs))
  theirs = _run_torch(TORCH[name](), _torch_kwargs(kwargs))
  _assert_close(ours, theirs)


# One representative of each optimizer, with every feature that interacts with the learning rate.
SCHEDULED = [
  ("sgd", dict(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
  ("sgd", dict(learning_rate=0.05, momentum=0.8, dampening=0.2)),
  ("adagrad", dict(learning_rate=0.1, lr_decay=0.05, weight_decay=0.01)),
  ("rmsprop", dict(learning_rate=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
  ("adam", dict(learning_rate=0.01, amsgrad=True, weight_decay=0.05)),
  ("adamw", dict(learning_rate=0.01, amsgrad=True, weight_decay=0.1)),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULED)])
@pytest.mark.parametrize("kind", ["lr_jax_cosine", "optax_linear"])
def test_schedule_as_learning_rate_matches_torch_scheduler(name, kwargs, kind):
  base = kwargs["learning_rate"]
  if kind == "lr_jax_cosine":
    lr = S.cosine_annealing(base, total_steps=K, end_value=0.1 * base)
    scheduler = lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=K, eta_min=0.1 * base)
  else:  # an Optax schedule (a plain closure), and torch's LinearLR
    lr = optax.linear_schedule(base, 0.02 * base, transition_steps=40)
    scheduler = lambda opt: torch.optim.lr_scheduler.LinearLR(
      opt, start_factor=1.0, end_factor=0.02, total_iters=40
    )
  ours = _run_jax(getattr(O, name)(**{**kwargs, "learning_rate": lr}))
  theirs = _run_torch(TORCH[name](), _torch_kwargs(kwargs), scheduler=scheduler)
  _assert_close(ours, theirs)


def test_rmsprop_momentum_schedule_differs_from_optax_but_not_torch():
  """The trap: with momentum and a changing LR, Optax's rmsprop (LR inside the buffer) drifts."""
  lr = optax.linear_schedule(0.01, 0.0002, transition_steps=40)
  with jax.numpy_dtype_promotion("standard"):
    theirs_optax = _run_jax(optax.rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False, momentum=0.9))
  ours = _run_jax(O.rmsprop(lr, momentum=0.9))
  theirs = _run_torch(
    torch.optim.RMSprop,
    dict(lr=0.01, momentum=0.9),
    scheduler=lambda opt: torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.02, total_iters=40),
  )
  _assert_close(ours, theirs)
  gap = max(np.max(np.abs(a - b)) for a, b in zip(theirs_optax, theirs))
  assert gap > 1e-2, gap


@pytest.mark.parametrize("name,kwargs", [SCHEDULED[0], SCHEDULED[4]], ids=["sgd", "adam"])
def test_clip_by_global_norm_then_optimizer_matches_torch_clip_grad_norm(name, kwargs):
  # torch divides by (norm + 1e-6), optax by norm: a ~1e-6 relative difference in the clipped
  # gradients, far below the tolerance after 60 steps.
  ours = _run_jax(optax.chain(optax.clip_by_global_norm(1.0), getattr(O, name)(**kwargs)))
  theirs = _run_torch(TORCH[name](), _torch_kwargs(kwargs), clip=1.0)
  _assert_close(ours, theirs)


def test_masked_weight_decay_matches_torch_param_groups():
  """Decay only "w": masked adamw(wd) on w, masked adamw(wd=0) on the rest == two torch groups."""
  decay = {"w": True, "b": False, "s": False}
  no_decay = {k: not v for k, v in decay.items()}
  tx = optax.chain(
    optax.masked(O.adamw(0.01, weight_decay=0.1, amsgrad=True), decay),
    optax.masked(O.adamw(0.01, weight_decay=0.0, amsgrad=True), no_decay),
  )
  ours = _run_jax(tx)
  # jax.tree leaf order: b, s, w
  groups = lambda ps: [dict(params=[ps[2]], weight_decay=0.1), dict(params=ps[:2], weight_decay=0.0)]
  theirs = _run_torch(torch.optim.AdamW, dict(lr=0.01, amsgrad=True), groups=groups)
  _assert_close(ours, theirs)


# vmap over a grid of every numeric hyperparameter at once, each lane against torch.
_ADAM_GRID = dict(
  learning_rate=[0.01, 0.02, 0.005],
  b1=[0.9, 0.5, 0.0],
  b2=[0.999, 0.9, 0.99],
  eps=[1e-8, 1e-3, 1e-5],
  weight_decay=[0.05, 0.0, 0.1],
)
GRIDS = {
  "sgd": (
    dict(nesterov=False),
    dict(
      learning_rate=[0.05, 0.02, 0.1],
      momentum=[0.9, 0.0, 0.5],
      dampening=[0.1, 0.5, 0.0],
      weight_decay=[0.01, 0.0, 0.1],
    ),
  ),
  "adagrad": (
    dict(),
    dict(
      learning_rate=[0.1, 0.05, 0.2],
      lr_decay=[0.05, 0.0, 0.2],
      weight_decay=[0.01, 0.0, 0.1],
      initial_accumulator_value=[0.0, 0.1, 1.0],
      eps=[1e-10, 1e-3, 1e-6],
    ),
  ),
  "rmsprop": (
    dict(centered=True),
    dict(
      learning_rate=[0.01, 0.02, 0.005],
      alpha=[0.99, 0.9, 0.5],
      eps=[1e-8, 1e-3, 1e-5],
      weight_decay=[0.01, 0.0, 0.1],
      momentum=[0.9, 0.0, 0.5],
    ),
  ),
  "adam": (dict(amsgrad=True), _ADAM_GRID),
  "adamw": (dict(amsgrad=False), _ADAM_GRID),
}


@pytest.mark.parametrize("name", list(GRIDS))
def test_vmapped_hyperparameter_grid_matches_torch_per_lane(name):
  static, grid = GRIDS[name]
  arrays = {k: jnp.asarray(v, jnp.float32) for k, v in grid.items()}

  def run(hp):
    tx = getattr(O, name)(**hp, **static)

    def body(carry, g):
      p, s = carry
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(body, (PARAMS, tx.init(PARAMS)), GRADS)
    return p

  out = jax.jit(jax.vmap(run))(arrays)
  for lane in range(3):
    kwargs = {**static, **{k: v[lane] for k, v in grid.items()}}
    theirs = _run_torch(TORCH[name](), _torch_kwargs(kwargs))
    ours = [np.asarray(x[lane]) for x in jax.tree.leaves(out)]
    # A traced b2 is float32 before 1 - b2 is formed (torch: float64), 1.3e-5 relative for 0.999.
    _assert_close(ours, theirs, rtol=2e-5 if name.startswith("adam") else RTOL)
