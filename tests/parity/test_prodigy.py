"""Parity of ``optimizers.prodigy`` with the reference package ``prodigyopt`` 1.1.2.

Every combination of the boolean options (``decouple``, ``use_bias_correction``,
``safeguard_warmup``), each with four settings of the numeric ones (``weight_decay``, ``growth_rate``,
``d_coef``, ``d0``, ``b1``, ``b3``), plus ``slice_p=3``, runs 200 updates of the same noisy gradients
of a random convex, non-quadratic problem (two leaves: one ``d`` for the whole tree) from the same initial
values in both frameworks. Compared: the parameters after 200 updates and ``d`` after every update.

* float64 (``jax.enable_x64``, scoped): within 1e-10 relative.
* float32: the error against the reference's float64 run stays within 3x the reference's own
  float32-vs-float64 gap plus 1e-6 (its float32 drift); for ``d`` plus 2e-6 (see ``check_float32``).
  The float32 runs use hyperparameters rounded to float32 on both sides (they are traced float32
  values here).

The JAX side runs each option set as one jitted, vmapped ``lax.scan`` (the numeric options are traced,
so vmap over them is checked against the reference lane by lane). This module also holds the harness
that ``test_dadapt.py`` and ``test_dog.py`` use.
"""

import functools
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
prodigyopt = pytest.importorskip("prodigyopt")

STEPS = 200
SHAPES = {"s": (), "w": (4, 5)}  # jax.tree order (sorted keys); two leaves: one d for the tree
NAMES = sorted(SHAPES)


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  init = {n: rng.normal(size=s) for n, s in SHAPES.items()}
  a = {n: rng.uniform(0.5, 2.0, size=s) for n, s in SHAPES.items()}
  c = {n: rng.normal(size=s) for n, s in SHAPES.items()}
  noise = {n: 0.3 * rng.normal(size=(STEPS, *s)) for n, s in SHAPES.items()}
  return init, a, c, noise


PROBLEM = _problem()


def _grad(p, a, c, noise, lib):
  """Gradient of sum(a (p - c)^2 / 2 + cos(2 p) / 8), plus noise (a >= 1/2: convex, not quadratic).

  Convex, so that rounding errors are not amplified: these methods take large steps, and on a
  nonconvex problem the reference's own float32 run ends 50% away from its float64 run.
  """
  return a * (p - c) - 0.25 * lib.sin(2 * p) + noise


# ------------------------------------------------------------------------------------------ harness


def run_torch(make_opt, dtype, d_of, lr_at=None, zero_grads=0, problem=PROBLEM, after_step=None):
  """Reference run: (param leaves after STEPS updates, d_of(opt) after every update).

  ``lr_at(k)`` sets every group's ``lr`` before update k (what a scheduler does); the first
  ``zero_grads`` updates get zero gradients; ``after_step(k)`` runs after each update.
  """
  threads = torch.get_num_threads()
  torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and the test machine is shared)
  try:
    return _run_torch(make_opt, dtype, d_of, lr_at, zero_grads, problem, after_step)
  finally:
    torch.set_num_threads(threads)


def _run_torch(make_opt, dtype, d_of, lr_at, zero_grads, problem, after_step):
  init, a, c, noise = problem
  ps = [torch.tensor(np.array(init[n]), dtype=dtype) for n in NAMES]
  opt = make_opt(ps)
  ta = [torch.tensor(a[n], dtype=dtype) for n in NAMES]
  tc = [torch.tensor(c[n], dtype=dtype) for n in NAMES]
  tn = [torch.tensor(noise[n], dtype=dtype) for n in NAMES]
  ds = []
  for k in range(STEPS):
    for i, p in enumerate(ps):
      g = _grad(p, ta[i], tc[i], tn[i][k], torch)
      p.grad = torch.zeros_like(g) if k < zero_grads else g
    if lr_at is not None:
      for group in opt.param_groups:
        group["lr"] = lr_at(k)
    opt.step()
    if after_step is not None:
      after_step(k)
    ds.append(np.asarray(d_of(opt), np.float64))
  return [p.detach().numpy().copy() for p in ps], np.array(ds)


def scan(tx, d_of, init, a, c, noise, zero_grads=0):
  """STEPS updates in one lax.scan: (params, d_of(state) after every update, final state)."""

  def body(carry, xs):
    k, noise_k = xs
    p, s = carry
    g = jax.tree.map(lambda p_, a_, c_, n_: _grad(p_, a_, c_, n_, jnp), p, a, c, noise_k)
    g = jax.tree.map(lambda x: jnp.where(k < zero_grads, jnp.zeros_like(x), x), g)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), d_of(s)

  (p, s), ds = lax.scan(body, (init, tx.init(init)), (jnp.arange(STEPS), noise))
  return p, ds, s


@functools.partial(jax.jit, static_argnames=("build", "flagsets", "zero_grads"))
def run_grid(build, flagsets, hps, init, a, c, noise, zero_grads=0):
  """For each option set (static) ``build(hp, **flags) -> (tx, d_of)``, vmapped over its lanes.

  All option sets are compiled as one program (one compile per dtype instead of one per set).
  """
  outs = []
  for flags, hp in zip(flagsets, hps, strict=True):

    def one(h, flags=flags):
      tx, d_of = build(h, **dict(flags))
      p, ds, _ = scan(tx, d_of, init, a, c, noise, zero_grads)
      return p, ds

    outs.append(jax.vmap(one)(hp))
  return outs


def jax_problem(dtype, problem=PROBLEM):
  return jax.tree.map(lambda v: jnp.asarray(v, dtype), problem)


def run_sets(build, sets, dtype, zero_grads=0):
  """``sets``: [(flags dict, lanes)], lanes a list of dicts of numbers; every set runs its lanes
  vmapped, all in one jitted program. Returns, per set, [(param leaves, ds)] per lane."""
  flagsets = tuple(tuple(sorted(flags.items())) for flags, _ in sets)
  hps = [{k: jnp.asarray([lane[k] for lane in lanes], dtype) for k in lanes[0]} for _, lanes in sets]
  outs = run_grid(build, flagsets, hps, *jax_problem(dtype), zero_grads=zero_grads)
  return [
    [([np.asarray(v[j]) for v in jax.tree.leaves(p)], np.asarray(ds[j])) for j in range(len(lanes))]
    for (p, ds), (_, lanes) in zip(outs, sets, strict=True)
  ]


def rel(a, b):
  """Largest elementwise error, relative to the largest magnitude of the reference, over leaves."""
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - y)) / np.max(np.abs(y))) for x, y in zip(a, b))


def rel_steps(a, b):
  """Largest relative error of a per-update scalar (or per-leaf scalars) sequence."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


REPORT: dict = {}


def check_float64(name, mine, ref, tol=1e-10):
  """Params and every d within ``tol`` relative; records the worst error under ``name``."""
  err_p, err_d = rel(mine[0], ref[0]), rel_steps(mine[1], ref[1])
  assert err_p < tol and err_d < tol, (name, err_p, err_d)
  worst = REPORT.get(name, (0.0, 0.0))
  REPORT[name] = (max(worst[0], err_p), max(worst[1], err_d))


def check_float32(name, mine, ref64, ref32):
  """Params within 3x the reference's own float32 drift + 1e-6; d within 3x its drift + 2e-6.

  The references keep ``d`` in a Python float (float64) even for float32 params: where ``d`` grows
  by ``growth_rate`` per step, their float32 run has exactly their float64 run's ``d`` (drift 0),
  while lr_jax's float32 ``d`` carries float32 rounding (measured: up to 1.1e-6 after 200 steps).
  """
  err, drift = rel(mine[0], ref64[0]), rel(ref32[0], ref64[0])
  assert err <= 3 * drift + 1e-6, (name, err, drift)
  err_d, drift_d = rel_steps(mine[1], ref64[1]), rel_steps(ref32[1], ref64[1])
  assert err_d <= 3 * drift_d + 2e-6, (name, err_d, drift_d)
  worst = REPORT.get(name, (0.0, 0.0))
  REPORT[name] = (max(worst[0], err / max(drift, 1e-12)), max(worst[1], err_d / max(drift_d, 1e-12)))


# ------------------------------------------------------------------------------------------ Prodigy

FLAGS = [
  {"decouple": dc, "use_bias_correction": bc, "safeguard_warmup": sg, "slice_p": 1}
  for dc in (True, False)
  for bc in (False, True)
  for sg in (False, True)
] + [{"decouple": True, "use_bias_correction": False, "safeguard_warmup": False, "slice_p": 3}]
LANES = [
  {
    "lr": 1.0,
    "b1": 0.9,
    "b2": 0.999,
    "b3": math.sqrt(0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "d0": 1e-6,
    "d_coef": 1.0,
    "growth": math.inf,
  },
  {
    "lr": 1.0,
    "b1": 0.9,
    "b2": 0.99,
    "b3": 0.9,
    "eps": 1e-8,
    "weight_decay": 0.01,
    "d0": 1e-4,
    "d_coef": 2.0,
    "growth": math.inf,
  },
  {
    "lr": 0.5,
    "b1": 0.0,
    "b2": 0.999,
    "b3": 0.99,
    "eps": 1e-6,
    "weight_decay": 0.1,
    "d0": 1e-6,
    "d_coef": 0.5,
    "growth": 1.02,
  },
  {
    "lr": 0.25,
    "b1": 0.5,
    "b2": 0.9,
    "b3": math.sqrt(0.9),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "d0": 1e-5,
    "d_coef": 1.0,
    "growth": 1.1,
  },
]
# Every option set runs two of the four numeric settings (each setting meets every boolean option
# both ways); float32 runs the default options, all of them on, and slice_p=3.
SETS = [(flags, [LANES[i % 4], LANES[(i + 1) % 4]]) for i, flags in enumerate(FLAGS)]
SETS32 = [SETS[0], SETS[7], SETS[8]]


def _build(h, decouple, use_bias_correction, safeguard_warmup, slice_p):
  tx = O.prodigy(
    h["lr"],
    b1=h["b1"],
    b2=h["b2"],
    b3=h["b3"],
    eps=h["eps"],
    weight_decay=h["weight_decay"],
    decouple=decouple,
    use_bias_correction=use_bias_correction,
    safeguard_warmup=safeguard_warmup,
    d0=h["d0"],
    d_coef=h["d_coef"],
    growth_rate=h["growth"],
    slice_p=slice_p,
  )
  return tx, lambda s: s.d


def _torch_prodigy(lane, flags):
  def make(ps):
    return prodigyopt.Prodigy(
      ps,
      lr=lane["lr"],
      betas=(lane["b1"], lane["b2"]),
      beta3=lane["b3"],
      eps=lane["eps"],
      weight_decay=lane["weight_decay"],
      d0=lane["d0"],
      d_coef=lane["d_coef"],
      growth_rate=lane["growth"],
      **flags,
    )

  return make


def _d(opt):
  return opt.param_groups[0]["d"]


def _references(sets, dtype):
  return [[run_torch(_torch_prodigy(lane, flags), dtype, _d) for lane in lanes] for flags, lanes in sets]


@functools.cache
def _ref64():
  return _references(SETS, torch.float64)


def test_float64_every_option_combination():
  with jax.enable_x64(True):
    ours = run_sets(_build, SETS, jnp.float64)
  for (flags, lanes), mine_set, ref_set in zip(SETS, ours, _ref64(), strict=True):
    for lane, mine, ref in zip(lanes, mine_set, ref_set, strict=True):
      check_float64("prodigy float64", mine, ref)
      assert ref[1][-1] > 10 * lane["d0"], (flags, lane)  # d did adapt


def rounded_to_float32(sets):
  """The option sets with every numeric value rounded to float32: the traced (vmapped) values are
  float32, so the reference runs get the same numbers (``math.inf`` stays inf)."""
  return [
    (flags, [{k: float(np.float32(v)) for k, v in lane.items()} for lane in lanes]) for flags, lanes in sets
  ]


def test_float32_within_the_references_own_drift():
  sets = rounded_to_float32(SETS32)
  ours = run_sets(_build, sets, jnp.float32)
  ref32 = _references(sets, torch.float32)
  ref64 = _references(sets, torch.float64)
  for mine_set, r64_set, r32_set in zip(ours, ref64, ref32, strict=True):
    for mine, r64, r32 in zip(mine_set, r64_set, r32_set, strict=True):
      check_float32("prodigy float32 (error / drift)", mine, r64, r32)


def test_schedule_as_multiplier_and_steps_with_lr_zero():
  """``learning_rate=cosine(1, 150)`` reaches exactly 0 at update 150: the reference skips those
  updates (no move, no change of k or d) and so does lr_jax; == setting group['lr'] before each step."""
  with jax.enable_x64(True):
    sched = S.cosine_annealing(jnp.asarray(1.0, jnp.float64), 150)
    lrs = np.asarray(jax.jit(sched)(jnp.arange(STEPS)))
    assert lrs.dtype == np.float64 and lrs[150] == 0.0 and lrs[149] > 0
    tx = O.prodigy(sched, use_bias_correction=True)
    p, ds, state = jax.jit(lambda *t: scan(tx, lambda s: s.d, *t))(*jax_problem(jnp.float64))
    mine = ([np.asarray(v) for v in jax.tree.leaves(p)], np.asarray(ds))
    assert int(state.count) == STEPS and int(state.k) == 150  # 50 updates with lr == 0 were skipped
  make = lambda ps: prodigyopt.Prodigy(ps, use_bias_correction=True)
  ref = run_torch(make, torch.float64, _d, lr_at=lambda k: float(lrs[k]))
  check_float64("prodigy cosine schedule, float64", mine, ref)


def test_zero_gradients_skip_the_first_updates():
  """The first 3 gradients are zero: sum|s| == 0, the reference returns early (moments still decay)."""
  ref = run_torch(lambda ps: prodigyopt.Prodigy(ps, weight_decay=0.0), torch.float64, _d, zero_grads=3)
  with jax.enable_x64(True):
    mine = run_sets(_build, [(FLAGS[0], LANES[:1])], jnp.float64, zero_grads=3)[0][0]
  check_float64("prodigy zero gradients, float64", mine, ref)


def test_optax_contrib_prodigy_is_the_bias_corrected_variant():
  """optax.contrib.prodigy always bias-corrects the step: it equals the reference with
  ``use_bias_correction=True`` and differs from its default (False) by O(1) relative."""
  with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
    tx = optax.contrib.prodigy(1.0)
    p, _, _ = jax.jit(lambda *t: scan(tx, lambda s: s.estim_lr, *t))(*jax_problem(jnp.float64))
    theirs = [np.asarray(v) for v in jax.tree.leaves(p)]
  ref_default = run_torch(lambda ps: prodigyopt.Prodigy(ps), torch.float64, _d)
  ref_bc = run_torch(lambda ps: prodigyopt.Prodigy(ps, use_bias_correction=True), torch.float64, _d)
  assert rel(theirs, ref_bc[0]) < 1e-10
  assert rel(theirs, ref_default[0]) > 1e-2


def test_zz_report(capsys):
  with capsys.disabled():
    for name, (p, d) in sorted(REPORT.items()):
      print(f"\n{name:40s} params {p:.1e}  d {d:.1e}", end="")
