"""Long runs and precision.

* Step counters saturate at int32 max (2**31-1) instead of wrapping, and the updates stay finite.
* Every schedule gives finite rates for every int32 step (all 2**k +- 1, 100k random steps, and
  extreme but valid hyperparameters such as ``total_steps=2**31-1``).
* Periodic schedules are at the right place of their cycle at steps near 2**31 (float32 alone
  cannot count past 2**24).
* Float32 cancellation near phase ends: rates within ``ULPS`` float32 rounding steps of the exact
  value, computed independently with mpmath (50 digits) from PyTorch's formulas, with the
  hyperparameters rounded to float32 first (the float32 program's exact input).
* With ``jax_enable_x64`` (a subprocess): dtypes follow JAX's convention. Float64 hyperparameters,
  and Python-number ones (weak: JAX's default float, float64 with x64), give float64 rates, equal to
  each other and within ``X64_RTOL`` of the rates of float32 hyperparameters, which stay float32;
  int64 steps work; float32 parameters keep float32 updates and states (also under a float64
  schedule); float64 parameters train like float32 ones within ``X64_RTOL``.
"""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import optax
import pytest

from lr_jax import optimizers, schedules
from tests.helpers import SCHEDULE_CASES, build

ROOT = Path(__file__).resolve().parents[1]
INT32_MAX = 2**31 - 1
ULPS = 4  # "one rounding step" of each of the few float32 operations (a sin, a square, a lerp)
X64_RTOL = 1e-5  # float32 vs float64: ~1e-7 per operation, a few tens of operations (and 20 Adam steps)
mpmath.mp.dps = 50


@jax.jit
def _rates(schedule, steps):
  return schedule(steps)


# ------------------------------------------------------------------------------ counters saturate


def _optimizer_cases():
  S, O = schedules, optimizers
  return {
    "sgd": O.sgd(S.cosine_annealing(0.1, 100), momentum=0.9),
    "adagrad": O.adagrad(0.1, lr_decay=0.01),
    "rmsprop": O.rmsprop(S.one_cycle(0.01, 100), momentum=0.5, centered=True),
    "adam": O.adam(S.warmup(S.inverse_sqrt(0.01, 10), 5), amsgrad=True),
    "adamw": O.adamw(S.cyclic(0.001, 0.01, 50), weight_decay=0.1),
    "plateau": optax.chain(O.adam(0.01), O.reduce_on_plateau(accumulation_steps=3)),
    "skip": O.skip_nonfinite(O.adam(0.01)),
  }


PARAMS = {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.1, -0.1])}
GRADS = {"w": jnp.array([[0.5, -1.0], [2.0, 0.1]]), "b": jnp.array([0.3, -0.2])}


def _saturate(state):
  return jax.tree.map(lambda x: jnp.full_like(x, INT32_MAX) if jnp.result_type(x) == jnp.int32 else x, state)


def _int_fields(state):
  out = {}
  for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
    if jnp.result_type(x) == jnp.int32:
      out[jax.tree_util.keystr(path)] = int(x)
  return out


@pytest.mark.parametrize("name", sorted(_optimizer_cases()))
def test_counters_saturate_at_int32_max(name):
  tx = _optimizer_cases()[name]
  extra = {"value": jnp.float32(1.0)} if name == "plateau" else {}
  state = _saturate(tx.init(PARAMS))
  update = jax.jit(lambda s: tx.update(GRADS, s, PARAMS, **extra))
  for _ in range(2):
    updates, state = update(state)
  fields = _int_fields(state)
  assert fields and all(v >= 0 for v in fields.values()), fields  # nothing wrapped to negative
  counts = {k: v for k, v in fields.items() if k.endswith(".count")}
  assert counts and all(v == INT32_MAX for v in counts.values()), fields
  assert all(np.all(np.isfinite(u)) for u in jax.tree.leaves(updates)), updates
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating))


def test_optax_safe_increment_is_what_we_rely_on():
  assert int(optax.safe_increment(jnp.int32(INT32_MAX))) == INT32_MAX


# ------------------------------------------------------------------- finite for every int32 step


def _all_int32_steps():
  rng = np.random.RandomState(0)
  pow2 = [2**k + d for k in range(32) for d in (-1, 0, 1)]
  steps = np.concatenate(
    [np.arange(0, 1001), pow2, rng.randint(0, INT32_MAX, 100_000), [INT32_MAX - d for d in range(4)]]
  )
  return np.clip(steps, 0, INT32_MAX).astype(np.int32)


ALL_STEPS = _all_int32_steps()


def _long_run_schedules():
  """Extreme but valid hyperparameters: lengths of 2**31-1, tiny periods, many restarts."""
  S, big = schedules, INT32_MAX
  return {
    "cosine_annealing_big": S.cosine_annealing(1.0, big, 1e-3),
    "linear_big": S.linear(0.0, 1.0, big),
    "polynomial_big": S.polynomial_decay(1.0, big, 0.0, 0.5),
    "one_cycle_big": S.one_cycle(1.0, big, three_phase=True),
    "one_cycle_momentum_big": S.one_cycle_momentum(big),
    "warmup_big": S.warmup(S.constant(1.0), big),
    "inverse_sqrt_big": S.inverse_sqrt(1.0, big),
    "wsd_big": S.warmup_stable_decay(1.0, big, 2**30, 2**30 - 1, decay="1-sqrt"),
    "restarts_1": S.cosine_warm_restarts(1.0, 1),
    "restarts_mult2": S.cosine_warm_restarts(1.0, 1, 2),
    "restarts_mult1.01": S.cosine_warm_restarts(1.0, 3, 1.01),
    "cyclic_1": S.cyclic(0.1, 1.0, 1, 1),
    "cyclic_exp": S.cyclic(0.1, 1.0, 7, 3, mode="exp_range", gamma=0.999999),
    "cyclic_tri2": S.cyclic(0.1, 1.0, 2**30, 2**30, mode="triangular2"),
    "exp_decay_tiny": S.exponential_decay(1.0, 1e-30),
    "exp_decay_slow": S.exponential_decay(1.0, 0.9999999, decay_steps=1e-3),
    "inverse_time": S.inverse_time_decay(1.0, 1e30, 1e-30),
    "step_decay_1": S.step_decay(1.0, 1, 1e-30),
    "multistep_many": S.multistep_decay(1.0, list(range(0, 2**31 - 1, 2**24)), 0.5),
    "piecewise_big": S.piecewise_constant([0, INT32_MAX - 1], [1.0, 2.0, 3.0]),
    "join_big": S.join([S.constant(1.0), S.cosine_annealing(1.0, big)], [big - 1]),
  }


LONG = _long_run_schedules()


@pytest.mark.parametrize("name", sorted(SCHEDULE_CASES) + sorted(LONG))
def test_every_schedule_is_finite_for_every_int32_step(name):
  if name in LONG:
    variants = [LONG[name]]
  else:
    ctor, kwargs, alts, _ = SCHEDULE_CASES[name]
    variants = [build(ctor, kwargs), build(ctor, {**kwargs, **alts})]
  for s in variants:
    r = np.asarray(_rates(s, ALL_STEPS))
    bad = ALL_STEPS[~np.isfinite(r)]
    assert bad.size == 0, (name, s, bad[:10])


# ------------------------------------------------------- periodic schedules near step 2**31


def _exact_cyclic(base, peak, up, down, t):
  cycle = up + down
  pos = t % cycle  # Python ints: exact
  h = mpmath.mpf(pos) / up if pos <= up else mpmath.mpf(cycle - pos) / down
  return base + (peak - base) * h


def _exact_restarts(init, period, end, t):
  pos = t % period
  return end + (init - end) * (1 + mpmath.cos(mpmath.pi * pos / period)) / 2


NEAR_MAX = (
  [2**30 + d for d in range(-3, 4)] + [INT32_MAX - d for d in range(12)] + [2**31 - 4000 * k for k in (1, 2)]
)


@pytest.mark.parametrize("kind", ["cyclic", "restarts"])
def test_periodic_schedules_know_their_phase_near_int32_max(kind):
  """Float32 holds integers exactly only up to 2**24; the phase must be computed without that loss."""
  if kind == "cyclic":
    base, peak, up, down = 0.1, 1.0, 1500, 2500
    s = schedules.cyclic(base, peak, up, down)
    exact = [
      _exact_cyclic(mpmath.mpf(float(np.float32(base))), mpmath.mpf(float(np.float32(peak))), up, down, t)
      for t in NEAR_MAX
    ]
  else:
    init, period = 1.0, 1000
    s = schedules.cosine_warm_restarts(init, period)
    exact = [_exact_restarts(mpmath.mpf(init), period, 0, t) for t in NEAR_MAX]
  got = np.asarray(_rates(s, np.array(NEAR_MAX, np.int32)), np.float64)
  exact = np.array([float(e) for e in exact])
  # the amplitude is 1: a one-step error of position is 1/1500 (cyclic) or up to pi/1000 (restarts)
  np.testing.assert_allclose(got, exact, rtol=0, atol=2e-6, err_msg=f"{kind} at steps {NEAR_MAX}")


# ------------------------------------------------------- float32 cancellation near phase ends


def f32(x):
  return mpmath.mpf(float(np.float32(x)))


def _cos_anneal(start, end, pct):
  """PyTorch's ``_annealing_cos``: end + (start - end) / 2 * (cos(pi * pct) + 1)."""
  return end + (start - end) / 2 * (mpmath.cos(mpmath.pi * pct) + 1)


def _exact_one_cycle(peak, total, pct_start, div, final_div, t, anneal="cos", three_phase=False):
  """PyTorch's OneCycleLR.get_lr, in 50-digit arithmetic."""
  initial = peak / div
  floor = initial / final_div
  if three_phase:
    phases = [
      (pct_start * total - 1, initial, peak),
      (2 * pct_start * total - 2, peak, initial),
      (mpmath.mpf(total - 1), initial, floor),
    ]
  else:
    phases = [(pct_start * total - 1, initial, peak), (mpmath.mpf(total - 1), peak, floor)]
  start = mpmath.mpf(0)
  for i, (end_step, a, b) in enumerate(phases):
    if t <= end_step or i == len(phases) - 1:
      p = (t - start) / (end_step - start)
      return _cos_anneal(a, b, p) if anneal == "cos" else (b - a) * p + a
    start = end_step


def _cases_near_phase_ends():
  T = 10**6
  out = []
  for total in (1000, T, 10**7):
    for end in (0.0, 1e-4):
      s = schedules.cosine_annealing(0.1, total, end)
      ts = [0, 1, 2, total - 3, total - 2, total - 1, total, total + 1]
      out.append(
        (
          f"cosine_annealing(T={total}, end={end})",
          s,
          ts,
          lambda t, total=total, end=end: _cos_anneal(f32(0.1), f32(end), mpmath.mpf(min(t, total)) / total),
        )
      )
  out.append(
    (
      "linear(0.1 -> 0)",
      schedules.linear(0.1, 0.0, T),
      [0, 1, T - 2, T - 1, T],
      lambda t: f32(0.1) * (1 - mpmath.mpf(min(t, T)) / T),
    )
  )
  out.append(
    (
      "linear(0 -> 0.1)",
      schedules.linear(0.0, 0.1, T),
      [0, 1, 2, T - 1, T],
      lambda t: f32(0.1) * mpmath.mpf(min(t, T)) / T,
    )
  )
  out.append(
    (
      "polynomial_decay(p=2)",
      schedules.polynomial_decay(0.1, T, 0.0, 2.0),
      [0, 1, T - 2, T - 1, T],
      lambda t: f32(0.1) * (1 - mpmath.mpf(min(t, T)) / T) ** 2,
    )
  )
  for anneal in ("cos", "linear"):
    for three in (False, True):
      s = schedules.one_cycle(0.1, T, pct_start=0.25, anneal=anneal, three_phase=three)
      e1 = T // 4 - 1
      ts = [0, 1, e1 - 2, e1 - 1, e1, e1 + 1, e1 + 2, T - 3, T - 2, T - 1]
      if three:
        ts += [2 * e1 - 1, 2 * e1, 2 * e1 + 1]
      out.append(
        (
          f"one_cycle({anneal}, three_phase={three})",
          s,
          ts,
          lambda t, anneal=anneal, three=three: _exact_one_cycle(
            f32(0.1), T, f32(0.25), f32(25.0), f32(1e4), t, anneal, three
          ),
        )
      )
  N, W, D = T, 1000, 10**5
  out.append(
    (
      "warmup_stable_decay(cosine)",
      schedules.warmup_stable_decay(0.1, N, W, D, decay="cosine"),
      [0, 1, W - 1, W, N - D, N - D + 1, N - 2, N - 1, N],
      lambda t: (
        f32(0.1) * t / W
        if t < W
        else f32(0.1)
        if t < N - D
        else _cos_anneal(f32(0.1), 0, mpmath.mpf(t - (N - D)) / D)
        if t < N
        else mpmath.mpf(0)
      ),
    )
  )
  out.append(
    (
      "cyclic(triangular)",
      schedules.cyclic(0.001, 0.1, 5000, 7000),
      [0, 1, 4999, 5000, 5001, 11999, 12000, 12001],
      lambda t: _exact_cyclic(f32(0.001), f32(0.1), 5000, 7000, t),
    )
  )
  out.append(
    (
      "cosine_warm_restarts",
      schedules.cosine_warm_restarts(0.1, 10**4, 1, 1e-5),
      [0, 1, 10**4 - 1, 10**4, 10**4 + 1, 10**7 - 1, 10**7],
      lambda t: _cos_anneal(f32(0.1), f32(1e-5), mpmath.mpf(t % 10**4) / 10**4),
    )
  )
  out.append(
    (
      "inverse_sqrt",
      schedules.inverse_sqrt(0.1, 4000),
      [0, 1, 3999, 4000, 4001, 10**7],
      lambda t: f32(0.1) * min(mpmath.mpf(t) / 4000, mpmath.sqrt(mpmath.mpf(4000) / max(t, 1))),
    )
  )
  return out


PHASE_CASES = _cases_near_phase_ends()


def _ulps(got, exact):
  """Distance in float32 rounding steps of the exact value (0 when both are 0)."""
  e32 = np.float32(exact)
  spacing = np.spacing(np.abs(e32)) if e32 != 0 else np.float32(np.finfo(np.float32).smallest_subnormal)
  return abs(float(got) - float(exact)) / float(spacing)


@pytest.mark.parametrize("label, s, steps, exact", PHASE_CASES, ids=[c[0] for c in PHASE_CASES])
def test_float32_near_phase_ends_is_within_a_few_ulp_of_exact(label, s, steps, exact):
  got = np.asarray(_rates(s, np.array(steps, np.int32)))
  errs = {t: round(_ulps(g, exact(t)), 2) for t, g in zip(steps, got)}
  assert max(errs.values()) <= ULPS, (label, errs)


# ------------------------------------------------------------------------------------ x64 mode


def _hyper_as(v, dt):
  """A hyperparameter as arrays of ``dt`` (nested schedules: every leaf); strings and flags as they are."""
  if isinstance(v, (bool, str)):
    return v
  if isinstance(v, schedules.Schedule) or (
    isinstance(v, (list, tuple)) and v and isinstance(v[0], schedules.Schedule)
  ):
    return jax.tree.map(lambda x: np.asarray(x, dt), v)
  return np.asarray(v, dt)


def _max_rel(got, want) -> float:
  """Largest difference relative to the largest |want| (rates decay to ~0)."""
  scale = float(np.max(np.abs(np.asarray(want)))) or 1.0
  return float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))) / scale)


@functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})  # compile time
def _all_rates(built, steps):
  return {name: (spy(steps), s32(steps), s64(steps)) for name, (spy, s32, s64) in built.items()}


def _int32_step_dtypes(built):
  """The rate's dtype at an int32 step, float32 and Python-number hyperparameters (shapes only: no compile)."""
  return jax.eval_shape(
    lambda: {name: (s32(jnp.int32(7)), spy(jnp.int32(7))) for name, (spy, s32, _) in built.items()}
  )


def _x64_child():
  """Runs with JAX_ENABLE_X64=1; prints a JSON report (the parent asserts)."""
  assert jax.config.jax_enable_x64
  report = {"schedules": {}, "optimizers": {}, "dtypes": {}}
  steps64 = np.array([0, 1, 5, 10, 50, 99, 100, 101, 1000, 10**6, 2**24 + 1, INT32_MAX], np.int64)
  built = {
    name: (
      build(ctor, kwargs),  # Python numbers, as written
      build(ctor, {k: _hyper_as(v, np.float32) for k, v in kwargs.items()}),
      build(ctor, {k: _hyper_as(v, np.float64) for k, v in kwargs.items()}),
    )
    for name, (ctor, kwargs, _, _) in sorted(SCHEDULE_CASES.items())
  }
  # every schedule's rates in one compiled program (a compile per call would dominate this test);
  # the eager path's dtypes are checked in test_schedules_generic
  rates, int32_dtypes = _all_rates(built, steps64), _int32_step_dtypes(built)
  for name, (rpy, r32, r64) in rates.items():
    i32, i32_py = int32_dtypes[name]
    report["schedules"][name] = {
      "dtype_py": str(rpy.dtype),
      "dtype32": str(r32.dtype),
      "dtype64": str(r64.dtype),
      "finite": bool(np.all(np.isfinite(r32)) and np.all(np.isfinite(r64)) and np.all(np.isfinite(rpy))),
      "max_rel": _max_rel(r32, r64),
      "py_rel": _max_rel(rpy, r64),
      "int32_step": str(i32.dtype),
      "int32_step_py": str(i32_py.dtype),
      "jit_py": str(rpy.dtype),
    }
  for name, make in sorted(_x64_optimizer_makers().items()):
    results = {}
    for dt in (np.float32, np.float64):
      p = jax.tree.map(lambda x, dt=dt: jnp.asarray(x, dt), PARAMS)
      tx = make()
      st = tx.init(p)
      upd = jax.jit(tx.update)
      for i in range(20):
        g = jax.tree.map(
          lambda x, i=i, dt=dt: jnp.asarray(np.cos(np.asarray(x, np.float64) * (i + 1)), dt), PARAMS
        )
        u, st = upd(g, st, p)
        p = optax.apply_updates(p, u)
      results[str(np.dtype(dt))] = (p, st)
    p32, st32 = results["float32"]
    p64, st64 = results["float64"]
    diff = max(
      float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b)) / (np.abs(np.asarray(b)) + 1e-3)))
      for a, b in zip(jax.tree.leaves(p32), jax.tree.leaves(p64))
    )
    report["optimizers"][name] = {
      "max_rel": diff,
      "params32": sorted({str(x.dtype) for x in jax.tree.leaves(p32)}),
      "params64": sorted({str(x.dtype) for x in jax.tree.leaves(p64)}),
      "state32": sorted(
        {str(x.dtype) for x in jax.tree.leaves(st32) if jnp.issubdtype(x.dtype, jnp.floating)}
      ),
      "state64": sorted(
        {str(x.dtype) for x in jax.tree.leaves(st64) if jnp.issubdtype(x.dtype, jnp.floating)}
      ),
      "counts": sorted({str(x.dtype) for x in jax.tree.leaves(st32) if jnp.issubdtype(x.dtype, jnp.integer)}),
    }
  print(json.dumps(report))


def _x64_optimizer_makers():
  S, O = schedules, optimizers
  return {
    "sgd": lambda: O.sgd(S.cosine_annealing(0.1, 20), momentum=0.9, nesterov=True),
    "adagrad": lambda: O.adagrad(0.1, lr_decay=0.01),
    "rmsprop": lambda: O.rmsprop(0.01, centered=True, momentum=0.5),
    "adam": lambda: O.adam(S.one_cycle(0.01, 20), amsgrad=True),
    "adamw": lambda: O.adamw(0.01, weight_decay=0.1),
    "plateau": lambda: optax.chain(
      O.adam(S.cosine_annealing(0.01, 20)), O.reduce_on_plateau(accumulation_steps=3)
    ),
  }


@pytest.fixture(scope="module")
def x64_report():
  env = dict(
    os.environ, JAX_ENABLE_X64="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
  )
  code = "from tests.test_precision import _x64_child; _x64_child()"
  out = subprocess.run(
    [sys.executable, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0, out.stderr[-4000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_x64_schedules_follow_jax_dtypes_and_agree_with_float32(x64_report):
  bad = {}
  for name, r in x64_report["schedules"].items():
    if not (
      r["finite"]
      and r["dtype_py"] == r["int32_step_py"] == r["jit_py"] == "float64"  # Python floats: float64
      and r["dtype32"] == r["int32_step"] == "float32"  # float32 arrays keep float32
      and r["dtype64"] == "float64"
      and r["max_rel"] <= X64_RTOL
      and r["py_rel"] <= 1e-12  # the same float64 program as float64 arrays
    ):
      bad[name] = r
  assert not bad, bad
  assert set(x64_report["schedules"]) == set(SCHEDULE_CASES)


def test_x64_optimizers_agree_with_float32_and_keep_dtypes(x64_report):
  bad = {}
  for name, r in x64_report["optimizers"].items():
    ok = (
      r["max_rel"] <= X64_RTOL
      and r["params32"] == ["float32"]
      and r["params64"] == ["float64"]
      and r["state32"] == ["float32"]
      # float64 params: float64 state (plateau's scale and best too; its `patience`, a count, is float32)
      and r["state64"] == (["float32", "float64"] if name == "plateau" else ["float64"])
      and r["counts"] == ["int32"]
    )
    if not ok:
      bad[name] = r
  assert not bad, bad
