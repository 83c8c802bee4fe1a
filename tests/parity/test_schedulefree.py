"""Parity of lr_jax's schedule-free optimizers with the ``schedulefree`` 1.4.1 reference package.

Every optimizer with every combination of its options (warm-up on/off, weight decay on/off, ``r``,
``weight_lr_power``, momentum / ``b1``; RAdam: ``silent_sgd_phase`` instead of warm-up) runs 200
updates of the same noisy gradients of a random nonconvex problem from the same initial values, in
both frameworks. Compared: the training parameters ``y``, the base sequence ``z``, the evaluation
parameters (``schedule_free_eval_params`` against the reference after ``optimizer.eval()``), and the
averaging scalars ``lr_max`` and ``weight_sum`` after every update, and the step size of every update.

* float64 (``jax.enable_x64``, scoped): within 1e-10 relative (measured: SGD, AdamW 5e-15).
* float64 RAdam: parameters 4e-15; the step sizes of the first updates 7.5e-12, which is the
  reference's own rounding error: it computes rho_t in the textbook form, which cancels ~2000x in the
  first steps (lr_jax's form does not, see ``_radam_rho``; with the textbook form swapped in, the step
  sizes agree exactly).
* float32: the error against the reference's float64 run stays within 3x the reference's own
  float32-vs-float64 gap (its float32 drift) plus 1e-6, and below 2e-5, relative (measured: <= 1.5e-6,
  <= 3.5x the gap).

The JAX side runs each option grid as one jitted, vmapped ``lax.scan`` (so the options are traced
hyperparameters, too). ``optax.contrib.schedule_free_*`` is compared as well: it agrees without warm-up
and differs with it (see the docstring of ``schedule_free_sgd``).
"""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from lr_jax import optimizers as O
from lr_jax import schedules as S

torch = pytest.importorskip("torch")
schedulefree = pytest.importorskip("schedulefree")

STEPS = 200
SHAPES = {"b": (5,), "w": (4, 5)}  # jax.tree order (sorted keys)
LR = {"sgd": 0.05, "adamw": 0.01, "radam": 0.01}
# option grids: every combination; (name, off value, on value)
KINDS = ("sgd", "adamw", "radam")
GRID = {
  "sgd": [("warmup", 0, 20), ("wd", 0.0, 0.01), ("r", 0.0, 1.5), ("wlp", 2.0, 0.0), ("b1", 0.9, 0.5)],
  "adamw": [("warmup", 0, 20), ("wd", 0.0, 0.01), ("r", 0.0, 1.5), ("wlp", 2.0, 0.0), ("b1", 0.9, 0.5)],
  "radam": [("silent", True, False), ("wd", 0.0, 0.01), ("r", 0.0, 1.5), ("wlp", 2.0, 0.0), ("b1", 0.9, 0.5)],
}


def _combos(kind):
  names = [n for n, *_ in GRID[kind]]
  return [dict(zip(names, vals, strict=True)) for vals in itertools.product(*[v for _, *v in GRID[kind]])]


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  init = {n: rng.normal(size=s) for n, s in SHAPES.items()}
  a = {n: rng.uniform(0.5, 2.0, size=s) for n, s in SHAPES.items()}
  c = {n: rng.normal(size=s) for n, s in SHAPES.items()}
  noise = {n: 0.3 * rng.normal(size=(STEPS, *s)) for n, s in SHAPES.items()}
  return init, a, c, noise


PROBLEM = _problem()


def _grad(p, a, c, noise, lib):
  """Gradient of sum(a (p - c)^2 / 2 + 0.5 cos(2 p)), plus noise: nonconvex, elementwise."""
  return a * (p - c) - lib.sin(2 * p) + noise


# ------------------------------------------------------------------------------------------ reference


def _torch_opt(kind, ps, lr, o):
  if kind == "sgd":
    cls, extra = schedulefree.SGDScheduleFree, {"momentum": o["b1"], "warmup_steps": o["warmup"]}
  elif kind == "adamw":
    cls, extra = schedulefree.AdamWScheduleFree, {"betas": (o["b1"], 0.999), "warmup_steps": o["warmup"]}
  else:
    cls, extra = schedulefree.RAdamScheduleFree, {"betas": (o["b1"], 0.999), "silent_sgd_phase": o["silent"]}
  return cls(ps, lr=lr, weight_decay=o["wd"], r=o["r"], weight_lr_power=o["wlp"], **extra)


def _run_torch(kind, o, dtype, lr_lambda=None):
  """Reference run: (y leaves, z leaves, eval leaves, per-update [lr, lr_max, weight_sum])."""
  init, a, c, noise = PROBLEM
  names = sorted(SHAPES)
  ps = [torch.tensor(init[n], dtype=dtype) for n in names]
  opt = _torch_opt(kind, ps, LR[kind], o)
  sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda) if lr_lambda else None
  opt.train()
  scalars = []
  t = {k: [torch.tensor(d[n], dtype=dtype) for n in names] for k, d in (("a", a), ("c", c))}
  tn = [torch.tensor(noise[n], dtype=dtype) for n in names]
  for k in range(STEPS):
    for i, p in enumerate(ps):
      p.grad = _grad(p, t["a"][i], t["c"][i], tn[i][k], torch)
    opt.step()
    if sched:
      sched.step()
    g = opt.param_groups[0]
    scalars.append([g["scheduled_lr"], g["lr_max"], g["weight_sum"]])
  y = [p.detach().numpy().copy() for p in ps]
  z = [opt.state[p]["z"].numpy().copy() for p in ps]
  opt.eval()
  x = [p.detach().numpy().copy() for p in ps]
  return y, z, x, np.array(scalars)


# ----------------------------------------------------------------------------------------------- jax


def _make(kind, hp, silent=True, lr=None):
  lr = hp["lr"] if lr is None else lr
  common = {"weight_decay": hp["wd"], "r": hp["r"], "weight_lr_power": hp["wlp"]}
  if kind == "sgd":
    return O.schedule_free_sgd(lr, momentum=hp["b1"], warmup_steps=hp["warmup"], **common)
  if kind == "adamw":
    return O.schedule_free_adamw(lr, b1=hp["b1"], warmup_steps=hp["warmup"], **common)
  return O.schedule_free_radam(lr, b1=hp["b1"], silent_sgd_phase=silent, **common)


def _scan(tx, init, a, c, noise):
  """200 updates in one lax.scan: (y, z, eval params, per-update [lr, lr_max, weight_sum])."""

  def body(carry, noise_k):
    p, s = carry
    g = jax.tree.map(lambda p_, a_, c_, n_: _grad(p_, a_, c_, n_, jnp), p, a, c, noise_k)
    lr = s.next_lr  # the step size this update uses
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), jnp.stack([lr, s.lr_max, s.weight_sum])

  (p, s), scalars = lax.scan(body, (init, tx.init(init)), noise)
  return p, s.z, O.schedule_free_eval_params(p, s), scalars


VARIANTS = (("sgd", True), ("adamw", True), ("radam", True), ("radam", False))  # (kind, silent_sgd_phase)


# combinations also run with plain Python hyperparameters (static: a Python 0 takes no decay term)
STATIC = {"sgd": (0,), "adamw": (0,), "radam": (0, 16)}  # the defaults (RAdam: both phases)


def _python_hp(kind, o):
  return {**{k: o.get(k, 0) for k in ("wd", "r", "wlp", "b1", "warmup")}, "lr": LR[kind]}


@functools.partial(jax.jit, static_argnames=("variants", "with_static"))
def _run_grids(variants, hps, init, a, c, noise, with_static=True):
  """Every variant's grid, and the STATIC runs, in one compiled program (one compilation per dtype)."""
  grids = [
    jax.vmap(lambda h, k=kind, s=silent: _scan(_make(k, h, s), init, a, c, noise))(hp)
    for (kind, silent), hp in zip(variants, hps, strict=True)
  ]
  static = {}
  for kind, idx in STATIC.items() if with_static else ():
    for i in idx:
      o = _combos(kind)[i]
      static[kind, i] = _scan(_make(kind, _python_hp(kind, o), o.get("silent", True)), init, a, c, noise)
  return grids, static


@functools.cache
def _jax_results(dtype_name):
  """{kind: [(y, z, eval, scalars) per combination of ``_combos(kind)``]} for float32 or float64."""
  dtype = jnp.dtype(dtype_name)
  init, a, c, noise = jax.tree.map(lambda v: jnp.asarray(v, dtype), PROBLEM)
  hps, idxs = [], []
  for kind, silent in VARIANTS:
    combos = _combos(kind)
    idx = [i for i, o in enumerate(combos) if o.get("silent", True) == silent]
    hp = {
      k: jnp.asarray([combos[i].get(k, 0) for i in idx], jnp.int32 if k == "warmup" else dtype)
      for k in ("wd", "r", "wlp", "b1", "warmup")
    }
    hp["lr"] = jnp.full(len(idx), LR[kind], dtype)
    hps.append(hp)
    idxs.append(idx)
  results, static = _run_grids(VARIANTS, hps, init, a, c, noise, with_static=dtype == jnp.float64)
  out = {kind: [None] * len(_combos(kind)) for kind in KINDS}
  for (kind, i), (y, z, x, scalars) in static.items():
    leaves = lambda t: [np.asarray(v) for v in jax.tree.leaves(t)]
    out[kind, i] = (leaves(y), leaves(z), leaves(x), np.asarray(scalars))
  for (kind, _), idx, (y, z, x, scalars) in zip(VARIANTS, idxs, results, strict=True):
    for j, i in enumerate(idx):
      pick = lambda t, j=j: [np.asarray(v[j]) for v in jax.tree.leaves(t)]
      out[kind][i] = (pick(y), pick(z), pick(x), np.asarray(scalars[j]))
  return out


def _rel(a, b):
  """Largest elementwise error, relative to the largest magnitude of the reference, over leaves."""
  return max(np.max(np.abs(np.asarray(x, np.float64) - y)) / np.max(np.abs(y)) for x, y in zip(a, b))


@functools.cache
def _torch_runs(kind, dtype_name):
  dtype = getattr(torch, dtype_name)
  return [_run_torch(kind, o, dtype) if _in_float32_set(o, dtype_name) else None for o in _combos(kind)]


def _in_float32_set(o, dtype_name):
  """float64: every combination; float32: the half whose number of options on is even (every pair of
  options still appears in all four on/off combinations), to halve the reference's runtime."""
  if dtype_name == "float64":
    return True
  on = sum(o[n] != off for n, off, _ in GRID[_kind_of(o)])
  return on % 2 == 0


def _kind_of(o):
  return "radam" if "silent" in o else "sgd"  # sgd and adamw share option names and off values


@pytest.mark.parametrize("kind", KINDS)
def test_float64_parity_every_option_combination(kind):
  with jax.enable_x64(True):
    ours = _jax_results("float64")[kind]
  combos, worst = _combos(kind), 0.0
  for o, mine, ref in zip(combos, ours, _torch_runs(kind, "float64"), strict=True):
    errs = [_rel(mine[i], ref[i]) for i in range(3)]  # y, z, eval params
    errs.append(np.max(np.abs(mine[3] - ref[3]) / np.maximum(np.abs(ref[3]), 1e-300)))  # every update
    assert max(errs) < 1e-10, (o, errs)
    worst = max(worst, *errs)
  for i in STATIC[kind]:  # the same combination with Python hyperparameters (the static code paths)
    mine, ref = _jax_results("float64")[kind, i], _torch_runs(kind, "float64")[i]
    errs = [_rel(mine[j], ref[j]) for j in range(3)]
    assert max(errs) < 1e-10, (combos[i], errs)
  print(f"{kind} float64 worst relative error over {len(combos)} combinations: {worst:.1e}")


@pytest.mark.parametrize("kind", KINDS)
def test_float32_parity_within_the_references_own_drift(kind):
  ours, combos, worst, worst_err, n = _jax_results("float32")[kind], _combos(kind), 0.0, 0.0, 0
  for o, mine, ref64, ref32 in zip(combos, ours, _torch_runs(kind, "float64"), _torch_runs(kind, "float32")):
    if ref32 is None:
      continue
    n += 1
    for i in range(3):  # y, z, eval params
      err, drift = _rel(mine[i], ref64[i]), _rel(ref32[i], ref64[i])
      # 3x the reference's own float32 error (plus 10 ulps) and 2e-5 absolute, relative to the scale
      assert err <= 3 * drift + 1e-6 and err < 2e-5, (o, i, err, drift)
      worst, worst_err = max(worst, err / drift), max(worst_err, err)
    np.testing.assert_allclose(mine[3], ref64[3], rtol=2e-6, err_msg=str(o))
  print(
    f"{kind} float32: error <= {worst_err:.1e}, error / reference drift <= {worst:.2f} over {n} combinations"
  )


def test_a_schedule_as_learning_rate_is_a_torch_scheduler_stepped_per_update():
  """lr_jax cosine schedule == LambdaLR(cosine) on the reference (it sets group['lr'] each step)."""
  o = {"warmup": 10, "wd": 0.01, "r": 0.0, "wlp": 2.0, "b1": 0.9}
  ref = _run_torch("adamw", o, torch.float64, lr_lambda=lambda k: 0.5 * (1 + math.cos(math.pi * k / STEPS)))
  with jax.enable_x64(True):
    f = lambda v: jnp.asarray(v, jnp.float64)
    tx = O.schedule_free_adamw(S.cosine_annealing(f(LR["adamw"]), STEPS), weight_decay=0.01, warmup_steps=10)
    init, a, c, noise = jax.tree.map(f, PROBLEM)
    mine = jax.jit(functools.partial(_scan, tx))(init, a, c, noise)
    mine = [[np.asarray(v) for v in jax.tree.leaves(t)] for t in mine[:3]] + [np.asarray(mine[3])]
  for i in range(3):
    assert _rel(mine[i], ref[i]) < 1e-10
  np.testing.assert_allclose(mine[3], ref[3], rtol=1e-10, atol=1e-300)
  assert ref[3][-1, 0] < 1e-3 * LR["adamw"]  # the schedule did act


# -------------------------------------------------------------------------------- optax.contrib


def _optax_run(tx):
  init, a, c, noise = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), PROBLEM)

  def body(carry, noise_k):
    p, s = carry
    g = jax.tree.map(lambda p_, a_, c_, n_: _grad(p_, a_, c_, n_, jnp), p, a, c, noise_k)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  (p, s), _ = jax.jit(lambda: lax.scan(body, (init, tx.init(init)), noise))()
  x = optax.contrib.schedule_free_eval_params(s, p)
  return [np.asarray(v) for v in jax.tree.leaves(p)], [np.asarray(v) for v in jax.tree.leaves(x)]


@pytest.mark.parametrize("kind", ("sgd", "adamw"))
def test_optax_contrib_lags_the_warmup_by_one_step(kind):
  """optax.contrib.schedule_free_*: equal to the reference without warm-up, different with it.

  Its inner optimizer reads the warm-up schedule at count k (0 at the first update, so the first
  z-step is zero) while its averaging weight reads it at k + 1, as the reference does for both.
  """
  build = optax.contrib.schedule_free_sgd if kind == "sgd" else optax.contrib.schedule_free_adamw
  with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
    for warmup, i in ((0, 0), (20, 16)):  # combination i: only the warm-up differs from the defaults
      assert _combos(kind)[i] == {"warmup": warmup, "wd": 0.0, "r": 0.0, "wlp": 2.0, "b1": 0.9}
      ref = _torch_runs(kind, "float64")[i]
      y, x = _optax_run(build(LR[kind], warmup_steps=warmup or None, b1=0.9))
      err = max(_rel(y, ref[0]), _rel(x, ref[2]))
      print(f"optax.contrib.schedule_free_{kind}, warmup_steps={warmup}: relative difference {err:.1e}")
      if warmup:  # the README quotes these
        assert f"{err:.0e}" == {"sgd": "6e-03", "adamw": "7e-03"}[kind], err
      else:
        assert err < 1e-10, err
