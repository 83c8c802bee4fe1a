"""Train a grid of hyperparameter configurations at once: ``lax.scan`` over steps, ``vmap`` over configurations.

Also the home of :class:`SweepResult` (``lr_jax.SweepResult``). The package attribute ``lr_jax.sweep``
is the *function* :func:`sweep`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lr_jax import _loop
from lr_jax._validation import flag, number

__all__ = ["SweepResult", "expand_grid", "sweep"]

SEEDS = "seeds"
EVAL_MODES = ("min", "max")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

# On CPU, a vmapped batch of configurations turns each matmul into a batched matmul, which XLA:CPU
# can run slower than separate GEMMs once the per-configuration work is large. Measured on an idle
# 2-core CPU (32 configurations, Adam; loss+grad FLOPs per step from XLA's cost analysis):
#   tanh MLP 64-H-10 with a gather loss, 100 steps: H=4/batch 8 (1.1e4): vmap 25 ms, lax.map 35 ms;
#   H=32/batch 256 (2.6e6): 109 vs 137 ms; H=128/batch 64 (2.6e6): 113 vs 106 ms;
#   H=256/batch 256 (2.1e7): 823 vs 699 ms; H=512/batch 128 (2.1e7): 1105 vs 754 ms.
#   The digits MLP 64-32-10 (full batch of 1797, one-hot loss, 1.9e7), 300 steps: vmap 1.22 s,
#   lax.map 1.58 s, a Python loop of 32 jitted scans 1.67 s.
# Under heavy load the crossover moves down (H=128/batch 64: vmap 113 ms vs map 38 ms). So
# configurations run one at a time (``lax.map``) above this many FLOPs; ``max_parallel`` overrides.
CPU_VMAP_MAX_FLOPS = 3e7


# --------------------------------------------------------------------------------------------------
# Grid.


def expand_grid(grid) -> list[dict]:
  """The configurations of a grid, in grid order.

  A dict of named axes gives their Cartesian product (the first axis varies slowest, as
  ``itertools.product``); a list of dicts is taken as it is (every dict with the same keys). Every
  value is checked by the one number validator of lr_jax (``lr_jax._validation.number``): a finite
  real number, not a bool or a string.

  Args:
    grid: ``{"name": [values...], ...}`` or ``[{"name": value, ...}, ...]``; values are real numbers.

  Returns:
    A list of dicts, one per configuration.

  Raises:
    ValueError: an empty grid or axis, a non-numeric or non-finite value, or dicts with different keys.

  Examples:
    >>> expand_grid({"lr": [0.1, 0.01], "seeds": [0, 1]})
    [{'lr': 0.1, 'seeds': 0}, {'lr': 0.1, 'seeds': 1}, {'lr': 0.01, 'seeds': 0}, {'lr': 0.01, 'seeds': 1}]
  """
  fn = "sweep"
  if isinstance(grid, Mapping):
    if not grid:
      raise ValueError(f"{fn}: `grid` must name at least one axis, got grid={grid!r}.")
    axes = {}
    for name, values in grid.items():
      if not isinstance(name, str):
        raise ValueError(f"{fn}: `grid` axis names must be strings, got {name!r}.")
      values = list(np.asarray(values).tolist()) if isinstance(values, (np.ndarray, jax.Array)) else values
      if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(
          f"{fn}: `grid` axis {name!r} must be a non-empty sequence of numbers, got {values!r}."
        )
      axes[name] = list(values)
    configs = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
  elif isinstance(grid, Sequence) and not isinstance(grid, (str, bytes)) and len(grid) > 0:
    if not all(isinstance(c, Mapping) for c in grid):
      raise ValueError(f"{fn}: `grid` must be a dict of axes or a list of dicts, got grid={grid!r}.")
    keys = list(grid[0])
    if not keys:
      raise ValueError(
        f"{fn}: `grid` configurations must name at least one hyperparameter, got grid={grid!r}."
      )
    for c in grid:
      if set(c) != set(keys):
        raise ValueError(f"{fn}: every configuration in `grid` must have the keys {keys}, got {sorted(c)}.")
    configs = [{k: c[k] for k in keys} for c in grid]
  else:
    raise ValueError(f"{fn}: `grid` must be a dict of axes or a non-empty list of dicts, got grid={grid!r}.")
  for c in configs:
    for k, v in c.items():
      if not isinstance(k, str):
        raise ValueError(f"{fn}: `grid` hyperparameter names must be strings, got {k!r}.")
      if isinstance(v, (np.ndarray, jax.Array)) and np.ndim(v) != 0:
        raise ValueError(f"{fn}: `grid` values must be scalars, got {k} with shape {np.shape(v)}.")
      number(v, fn=fn, name=f"grid[{k!r}]")
  return configs


def _is_integer(v) -> bool:
  return isinstance(v, numbers.Integral) or np.asarray(v).dtype.kind in "iu"


def _column(name: str, values: list, fn: str = "sweep") -> np.ndarray:
  """One grid axis as the array the lanes see, never wrapping or silently rounding an integer.

  Integers fitting int32 are int32; past int32 they are int64 with ``jax_enable_x64``, else float32
  when float32 holds them exactly (2**32 does, 2**32 + 10 does not: a ``ValueError``). Other values
  are JAX's default float (float32, or float64 with x64).
  """
  if all(_is_integer(v) for v in values):
    ints = [int(v) for v in values]
    if all(_INT32[0] <= v <= _INT32[1] for v in ints):
      return np.asarray(ints, np.int32)
    if jax.config.jax_enable_x64 and all(_INT64[0] <= v <= _INT64[1] for v in ints):
      return np.asarray(ints, np.int64)
    as_float = np.asarray([float(v) for v in ints], jax.dtypes.canonicalize_dtype(np.float64))
    for v, f in zip(ints, as_float):
      if int(f) != v:
        raise ValueError(
          f"{fn}: `grid` axis {name!r} holds an integer past int32 that {as_float.dtype} cannot hold "
          f"exactly (it would become {int(f)}), got {name}={v}; enable jax_enable_x64 to sweep it as int64."
        )
    return as_float
  return np.asarray([float(v) for v in values], jax.dtypes.canonicalize_dtype(np.float64))


# --------------------------------------------------------------------------------------------------
# Result.


class SweepResult(NamedTuple):
  """Result of :func:`sweep`; configuration i is ``configs[i]`` (grid order).

  Fields:
    losses: ``[configs, num_steps]``; ``losses[i, t]`` is configuration i's training loss at step t,
      on the parameters before update t (as a plain Optax loop records it). NaN from the first
      non-finite loss on.
    train_loss: ``[configs]`` the mean loss of the trained parameters over every batch of
      ``batches`` (the whole training set as given, not one minibatch); NaN for invalid or
      diverged configurations.
    eval: ``[configs]`` ``eval_fn(trained params)``, or None without ``eval_fn``.
    eval_mode: ``"min"`` or ``"max"``: the better direction of ``eval`` (None without ``eval_fn``).
    configs: one dict of hyperparameter values per configuration.
    valid: ``[configs]`` bool: every loss (and the eval) finite.
    strategy: how configurations were batched: ``"vmap"`` (all at once), ``"chunked"`` (``vmap``
      over ``chunk_size`` at a time, ``lax.map`` over the chunks) or ``"map"`` (one at a time,
      ``lax.map``), per device.
    chunk_size: configurations vmapped together on one device.
    num_devices: devices the configuration axis was sharded over.

  Configurations are ranked by ``eval`` in the direction ``eval_mode`` when an ``eval_fn`` was
  given, else by ``train_loss`` (lower is better): :meth:`score`, :meth:`best`, :meth:`table` and
  :meth:`plot` all use that one ranking.
  """

  losses: np.ndarray
  train_loss: np.ndarray
  eval: np.ndarray | None
  eval_mode: str | None
  configs: list
  valid: np.ndarray
  strategy: str
  chunk_size: int
  num_devices: int

  def score(self, key: str | None = None, mode: str | None = None) -> tuple[np.ndarray, str, str]:
    """The quantity configurations are ranked by: ``(values [configs], key, mode)``.

    Args:
      key: ``"eval"`` or ``"train_loss"``; default ``"eval"`` when an ``eval_fn`` was given, else
        ``"train_loss"``.
      mode: ``"min"`` or ``"max"``; default ``eval_mode`` for ``"eval"`` and ``"min"`` for ``"train_loss"``.

    Returns:
      ``values`` (float64, NaN for invalid configurations), the key's name and the direction.

    Raises:
      ValueError: an unknown ``key`` or ``mode``, or ``key="eval"`` without an ``eval_fn``.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from lr_jax import sweep
      >>> res = sweep(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...             optimizer=lambda h: optax.sgd(h["lr"]), grid={"lr": [0.1, 0.2]}, num_steps=5,
      ...             eval_fn=lambda w: -jnp.sum(w**2), eval_mode="max")
      >>> values, key, mode = res.score()
      >>> print(key, mode, *(f"{v:.4f}" for v in values))
      eval max -0.2147 -0.0121
    """
    fn = "SweepResult.score"
    if key is None:
      key = "eval" if self.eval is not None else "train_loss"
    if key not in ("eval", "train_loss") or (key == "eval" and self.eval is None):
      raise ValueError(f"{fn}: `key` must be 'train_loss' or (with an eval_fn) 'eval', got key={key!r}.")
    if mode is None:
      mode = (self.eval_mode or "min") if key == "eval" else "min"
    if mode not in EVAL_MODES:
      raise ValueError(f"{fn}: `mode` must be 'min' or 'max', got mode={mode!r}.")
    values = np.asarray(self.eval if key == "eval" else self.train_loss, dtype=np.float64)
    return np.where(np.asarray(self.valid), values, np.nan), key, mode

  def _ranks(self, key=None, mode=None) -> np.ndarray:
    values, _, mode = self.score(key, mode)
    ok = np.isfinite(values)
    order = np.argsort(np.where(ok, -values if mode == "max" else values, np.inf), kind="stable")
    ranks = np.zeros(len(values), np.int64)
    ranks[order] = np.arange(1, len(values) + 1)
    return np.where(ok, ranks, 0)

  def table(self) -> list[dict]:
    """One dict per configuration (grid order): its hyperparameters, ``train_loss``, ``eval`` (if any),
    ``valid`` and ``rank`` (1 = best by :meth:`score`; None for an invalid configuration).

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from lr_jax import sweep
      >>> res = sweep(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...             optimizer=lambda h: optax.sgd(h["lr"]), grid={"lr": [0.1, 0.2, 1e4]}, num_steps=5)
      >>> for row in res.table(): print(row["lr"], f"{row['train_loss']:.4f}", row["valid"], row["rank"])
      0.1 0.2147 True 2
      0.2 0.0121 True 1
      10000.0 nan False None
    """
    ranks = self._ranks()
    rows = []
    for i, c in enumerate(self.configs):
      row = dict(c, train_loss=float(self.train_loss[i]))
      if self.eval is not None:
        row["eval"] = float(self.eval[i])
      row["valid"] = bool(self.valid[i])
      row["rank"] = int(ranks[i]) if ranks[i] else None
      rows.append(row)
    return rows

  def best(self, key: str | None = None, mode: str | None = None) -> dict:
    """The :meth:`table` row of the best valid configuration, by :meth:`score`.

    Args:
      key: ``"eval"`` or ``"train_loss"``; default ``"eval"`` when an ``eval_fn`` was given, else
        ``"train_loss"``.
      mode: ``"min"`` or ``"max"``; default the sweep's ``eval_mode`` for ``"eval"`` and ``"min"``
        for ``"train_loss"``.

    Raises:
      ValueError: if no configuration is valid, or ``key`` / ``mode`` is unknown.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from lr_jax import sweep
      >>> res = sweep(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...             optimizer=lambda h: optax.sgd(h["lr"]), grid={"lr": [0.1, 0.4, 2.0]}, num_steps=5)
      >>> print(res.best()["lr"])
      0.4
    """
    ranks = self._ranks(key, mode)
    if not np.any(ranks):
      raise ValueError("SweepResult.best: no configuration finished with finite losses.")
    row = self.table()[int(np.argmax(ranks == 1))]
    return row

  def plot(self, ax=None):
    """Loss curves, and the ranking score against each swept axis; see :func:`lr_jax.plot.sweep`."""
    from lr_jax import plot

    return plot.sweep(self, ax=ax)

  def __repr__(self) -> str:
    c, n = np.shape(self.losses)
    try:
      row = self.best()
      _, key, mode = self.score()
      best = ", ".join(f"{k}={row[k]!r}" for k in self.configs[0])
      best = f"best=({best}) by {key} ({mode}) {row[key]:.4g}"
    except ValueError:
      best = "best=None"
    return (
      f"SweepResult({c} configurations x {n} steps, {int(np.sum(self.valid))} valid, {best}, "
      f"strategy={self.strategy!r}, chunk_size={self.chunk_size}, num_devices={self.num_devices})"
    )


# --------------------------------------------------------------------------------------------------
# The compiled program. ``spec`` holds everything static; arrays with a configuration axis are
# ``hp`` (dict of [C] arrays), ``seeds`` ([C]) and the carry.


@dataclasses.dataclass(frozen=True)
class _Spec:
  loss_fn: Callable
  optimizer: Callable
  eval_fn: Callable | None
  init_fn: Callable | None
  num_steps: int
  num_batches: int
  chunk_size: int  # configurations vmapped at once per device
  local_configs: int  # configurations per device
  mesh: Mesh | None


def _lane_init(hp, seed, params, spec: _Spec):
  p = spec.init_fn(jax.random.key(seed)) if spec.init_fn is not None else params
  return (p, spec.optimizer(hp).init(p), jnp.array(True))


def _lane_steps(carry, hp, batches, t0, spec: _Spec, length: int):
  tx = spec.optimizer(hp)

  def body(c, t):
    p, s, alive = c
    i = lax.rem(t, jnp.asarray(spec.num_batches, t.dtype))
    loss, p, s = _loop.train_step(spec.loss_fn, tx, p, s, _loop.take(batches, i))
    alive = alive & jnp.isfinite(loss)
    return (p, s, alive), jnp.where(alive, loss, jnp.nan)

  return lax.scan(body, carry, t0 + jnp.arange(length, dtype=jnp.int32))


def _lane_final(carry, batches, spec: _Spec):
  p, _, alive = carry
  loss = _loop.mean_loss(spec.loss_fn, p, batches)
  alive = alive & jnp.isfinite(loss)
  out = {"train_loss": jnp.where(alive, loss, jnp.nan)}
  if spec.eval_fn is not None:
    e = jnp.asarray(spec.eval_fn(p))
    out["eval"] = jnp.where(alive & jnp.isfinite(e), e, jnp.nan)
  return out


def _over_configs(fn, xs, spec: _Spec):
  """Maps ``fn`` over the leading (configuration) axis of ``xs`` with the chosen strategy."""
  if spec.chunk_size >= spec.local_configs:
    return jax.vmap(fn)(xs)
  return lax.map(fn, xs, batch_size=spec.chunk_size if spec.chunk_size > 1 else None)


def _sharded(fn, spec: _Spec, n_config_args: int, n_shared_args: int):
  """``fn(*config_args, *shared_args)`` with the configuration axis sharded over ``spec.mesh``."""
  if spec.mesh is None:
    return fn
  axes = P(tuple(spec.mesh.axis_names))
  in_specs = (axes,) * n_config_args + (P(),) * n_shared_args
  return jax.shard_map(fn, mesh=spec.mesh, in_specs=in_specs, out_specs=axes, check_vma=False)


@functools.partial(jax.jit, static_argnames=("spec",))
def _run_all(hp, seeds, params, batches, *, spec: _Spec):
  """init -> scan over all steps -> train loss / eval, for every configuration: one program."""

  def local(hp, seeds, params, batches):
    def lane(x):
      h, seed = x
      carry, losses = _lane_steps(_lane_init(h, seed, params, spec), h, batches, 0, spec, spec.num_steps)
      return losses, _lane_final(carry, batches, spec)

    return _over_configs(lane, (hp, seeds), spec)

  return _sharded(local, spec, 2, 2)(hp, seeds, params, batches)


@functools.partial(jax.jit, static_argnames=("spec",))
def _run_init(hp, seeds, params, *, spec: _Spec):
  def local(hp, seeds, params):
    return _over_configs(lambda x: _lane_init(x[0], x[1], params, spec), (hp, seeds), spec)

  return _sharded(local, spec, 2, 1)(hp, seeds, params)


@functools.partial(jax.jit, static_argnames=("spec", "length"))
def _run_steps(carry, hp, batches, t0, *, spec: _Spec, length: int):
  def local(carry, hp, batches, t0):
    return _over_configs(lambda x: _lane_steps(x[0], x[1], batches, t0, spec, length), (carry, hp), spec)

  return _sharded(local, spec, 2, 2)(carry, hp, batches, t0)


@functools.partial(jax.jit, static_argnames=("spec",))
def _run_final(carry, batches, *, spec: _Spec):
  def local(carry, batches):
    return _over_configs(lambda c: _lane_final(c, batches, spec), carry, spec)

  return _sharded(local, spec, 1, 1)(carry, batches)


# --------------------------------------------------------------------------------------------------
# Strategy and placement.


def _platform(mesh: Mesh | None) -> str:
  return (mesh.devices.flat[0] if mesh is not None else jax.devices()[0]).platform


def _step_flops(loss_fn, params_shape, batches) -> float:
  """XLA's FLOP estimate for one configuration's loss and gradient (lowering only, no compile)."""
  try:
    lowered = jax.jit(jax.value_and_grad(loss_fn)).lower(params_shape, _loop.batch_spec(batches))
    cost = lowered.cost_analysis()
    if isinstance(cost, (list, tuple)):
      cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", 0.0))
  except Exception:  # cost analysis is advisory: unknown -> vmap
    return 0.0


def _choose_chunk(platform, local_configs, max_parallel, flops) -> int:
  if max_parallel is not None:
    return max(1, min(int(max_parallel), local_configs))
  if platform == "cpu" and flops > CPU_VMAP_MAX_FLOPS:
    return 1
  return local_configs


def _strategy(chunk, local_configs) -> str:
  if chunk >= local_configs:
    return "vmap"
  return "map" if chunk == 1 else "chunked"


def _put(x, sharding):
  """Places a host array on ``sharding`` (works with several processes: each fills its shards)."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _fetch(x) -> np.ndarray:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    x = multihost_utils.process_allgather(x, tiled=True)
  return np.asarray(x)


# --------------------------------------------------------------------------------------------------
# The steps of ``sweep``: check arguments, plan, run, collect.


@dataclasses.dataclass(frozen=True)
class _Args:
  configs: list
  columns: dict  # grid axis -> [configs] array, as the lanes see it
  batches: Any
  num_batches: int
  init_fn: Callable | None
  params_shape: Any
  num_steps: int
  max_parallel: int | None
  eval_mode: str | None
  progress: bool


@dataclasses.dataclass(frozen=True)
class _Plan:
  spec: _Spec
  hp: dict
  seeds: Any
  params: Any  # shared initial params (None with an init_fn)
  batches: Any
  configs: list
  num_devices: int


def _check_arguments(
  loss_fn, params, batches, optimizer, grid, num_steps, eval_fn, eval_mode, max_parallel, mesh, progress
) -> _Args:
  fn = "sweep"
  configs = expand_grid(grid)
  num_steps = int(number(num_steps, fn=fn, name="num_steps", integer=True))
  if not 1 <= num_steps < 2**31:
    raise ValueError(
      f"{fn}: `num_steps` must be >= 1 and fit an int32 step counter (< 2**31), got num_steps={num_steps}."
    )
  if max_parallel is not None:
    max_parallel = int(number(max_parallel, fn=fn, name="max_parallel", integer=True))
    if max_parallel < 1:
      raise ValueError(f"{fn}: `max_parallel` must be >= 1 or None, got max_parallel={max_parallel}.")
  progress = flag(progress, fn=fn, name="progress")
  if isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
    raise ValueError(
      f"{fn}: `optimizer` must be a function hparams -> GradientTransformation "
      f"(e.g. `lambda h: optax.adam(h['lr'])`), got optimizer={optimizer!r}."
    )
  if eval_fn is not None and not callable(eval_fn):
    raise ValueError(f"{fn}: `eval_fn` must be a function params -> scalar or None, got eval_fn={eval_fn!r}.")
  if eval_fn is not None and (not isinstance(eval_mode, str) or eval_mode not in EVAL_MODES):
    raise ValueError(
      f"{fn}: `eval_mode` must be 'min' or 'max' when eval_fn is given, got eval_mode={eval_mode!r}."
    )
  if eval_fn is None and eval_mode is not None:
    raise ValueError(
      f"{fn}: `eval_mode` is the better direction of eval_fn's value, so it needs an eval_fn, "
      f"got eval_mode={eval_mode!r} with eval_fn=None."
    )
  if mesh is not None and not isinstance(mesh, Mesh):
    raise ValueError(f"{fn}: `mesh` must be a jax.sharding.Mesh or None, got mesh={mesh!r}.")
  init_fn = params if callable(params) else None
  if SEEDS in configs[0]:
    if init_fn is None:
      raise ValueError(f"{fn}: a {SEEDS!r} axis in `grid` needs `params` to be a function key -> params.")
    for cfg in configs:
      number(cfg[SEEDS], fn=fn, name=SEEDS, integer=True)
      if not 0 <= cfg[SEEDS] < 2**32:
        raise ValueError(f"{fn}: `{SEEDS}` must be in [0, 2**32), got {SEEDS}={cfg[SEEDS]!r}.")
  columns = {k: _column(k, [cfg[k] for cfg in configs]) for k in configs[0] if k != SEEDS}
  batches, n = _loop.prepare_batches(batches, fn)
  params_shape = jax.eval_shape(init_fn, jax.random.key(0)) if init_fn is not None else params
  _loop.check_scalar_loss(loss_fn, params_shape, batches, fn)
  if eval_fn is not None:
    out = jax.eval_shape(eval_fn, params_shape)
    if getattr(out, "shape", None) != ():
      raise ValueError(f"{fn}: `eval_fn` must return a scalar, got {out!r}.")
  return _Args(
    configs, columns, batches, n, init_fn, params_shape, num_steps, max_parallel, eval_mode, progress
  )


def _plan(a: _Args, loss_fn, params, optimizer, eval_fn, mesh) -> _Plan:
  """Pads the configurations to a multiple of the device count, picks a strategy, places the arrays."""
  if mesh is None and len(jax.devices()) > 1:
    mesh = Mesh(np.array(jax.devices()), ("configs",))
  num_devices = 1 if mesh is None else mesh.devices.size
  c = len(a.configs)
  c_pad = -(-c // num_devices) * num_devices
  padded = a.configs + [a.configs[-1]] * (c_pad - c)
  hp = {k: np.concatenate([v, np.repeat(v[-1:], c_pad - c)]) for k, v in a.columns.items()}
  seeds = np.asarray([int(cfg.get(SEEDS, 0)) for cfg in padded], np.uint32)
  local = c_pad // num_devices
  flops = _step_flops(loss_fn, a.params_shape, a.batches)
  chunk = _choose_chunk(_platform(mesh), local, a.max_parallel, flops)
  spec = _Spec(loss_fn, optimizer, eval_fn, a.init_fn, a.num_steps, a.num_batches, chunk, local, mesh)
  batches = a.batches
  shared = None if a.init_fn is not None else params
  if mesh is not None:
    cfg_sharding = NamedSharding(mesh, P(tuple(mesh.axis_names)))
    hp = {k: _put(v, cfg_sharding) for k, v in hp.items()}
    seeds = _put(seeds, cfg_sharding)
    rep = NamedSharding(mesh, P())
    batches = jax.device_put(batches, rep)
    if shared is not None:
      shared = jax.device_put(shared, rep)
  return _Plan(spec, hp, seeds, shared, batches, a.configs, num_devices)


def _run(plan: _Plan, progress: bool):
  """Trains every configuration; returns ``(losses [C, steps], {"train_loss", "eval"?})``."""
  spec = plan.spec
  carry, out = _loop.run_chunked(
    spec.num_steps,
    progress,
    "sweep",
    whole=lambda: _run_all(plan.hp, plan.seeds, plan.params, plan.batches, spec=spec),
    init=lambda: _run_init(plan.hp, plan.seeds, plan.params, spec=spec),
    steps=lambda carry, t0, length: _run_steps(carry, plan.hp, plan.batches, t0, spec=spec, length=length),
  )
  if carry is None:
    return out
  return out, _run_final(carry, plan.batches, spec=spec)


def _collect(plan: _Plan, losses, final, eval_mode) -> SweepResult:
  c = len(plan.configs)
  losses = _fetch(losses)[:c]
  train_loss = _fetch(final["train_loss"])[:c]
  ev = _fetch(final["eval"])[:c] if "eval" in final else None
  valid = np.all(np.isfinite(losses), axis=1) & np.isfinite(train_loss)
  if ev is not None:
    valid &= np.isfinite(ev)
  spec = plan.spec
  strategy = _strategy(spec.chunk_size, spec.local_configs)
  return SweepResult(
    losses, train_loss, ev, eval_mode, plan.configs, valid, strategy, spec.chunk_size, plan.num_devices
  )


# --------------------------------------------------------------------------------------------------
# Public entry point.


def sweep(
  loss_fn: Callable[[Any, Any], jax.Array],
  params: Any,
  batches: Any,
  *,
  optimizer: Callable[[dict], optax.GradientTransformation],
  grid,
  num_steps: int,
  eval_fn: Callable[[Any], jax.Array] | None = None,
  eval_mode: str | None = None,
  max_parallel: int | None = None,
  mesh: Mesh | None = None,
  progress: bool = False,
) -> SweepResult:
  """Trains every configuration of a hyperparameter grid, all in one jit-compiled program.

  For each configuration i with hyperparameters ``h_i`` (a dict of traced scalars), with the n
  batches ``batch[0..n-1]``::

      tx = optimizer(h_i);  p = params (or params(jax.random.key(seed_i)));  s = tx.init(p)
      for t in range(num_steps):
        losses[i, t], g = value_and_grad(loss_fn)(p, batch[t % n])
        u, s = tx.update(g, s, p);  p = optax.apply_updates(p, u)
      train_loss[i] = mean(loss_fn(p, batch[j]) for j in range(n));  eval[i] = eval_fn(p)

  exactly as a plain Optax loop, but as ``lax.scan`` over steps and ``vmap`` over configurations
  (hyperparameters are traced, so every lr_jax schedule and optimizer can be swept, including
  step counts and ``pct_start``, which Optax's own schedules cannot trace). There is no Python loop
  per configuration or per step. A configuration whose hyperparameters are invalid (lr_jax
  schedules give NaN rates) or whose loss becomes non-finite comes back NaN from that step on, and
  ``valid`` is False; the sweep never aborts. ``train_loss`` is the loss of the trained parameters
  on the whole training set as given (every batch), so configurations can be ranked by it; with an
  ``eval_fn``, ``eval_mode`` says whether its value is better low (a loss) or high (an accuracy),
  and :meth:`SweepResult.best`, ``table()``, ``plot()`` and the CLI rank by it.

  Strategy: on GPU/TPU all configurations of a device are vmapped at once (``max_parallel`` bounds
  that, vmapping chunks of it with ``lax.map`` over the chunks). On CPU a vmapped batch of matmuls
  is slower than separate ones once a configuration's step costs more than ``CPU_VMAP_MAX_FLOPS``
  (XLA's estimate; measurements next to the constant), so there configurations run one at a time
  with ``lax.map`` inside the same program. ``result.strategy`` says which was used. With several
  devices (``mesh``, or all of ``jax.devices()`` when there are several), the configuration axis is
  sharded over them with ``jax.shard_map`` on a ``NamedSharding``, padded to a multiple of the
  device count by repeating the last configuration (the padding is dropped from the result); this
  works on one host or several (``jax.distributed``; every process passes the same arguments).

  There is no single twin: this replaces a Python loop of training runs (or Optuna/Ray Tune
  trials) with one compiled program.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``.
    params: initial parameters (a pytree shared by all configurations), or a function
      ``key -> params``, called with ``jax.random.key(seed)`` for the ``"seeds"`` axis of the grid
      (seed 0 without one).
    batches: a pytree of arrays whose leading axis indexes batches, cycled (step t uses ``t % n``),
      or a Python list of batches of equal shapes (what a data loader gives), stacked here.
    optimizer: ``hparams -> optax.GradientTransformation``; ``hparams`` is a dict of the grid's
      axes (without ``"seeds"``) holding traced scalars (int32 for integer axes, float32 for float
      axes; an integer past int32 is int64 with ``jax_enable_x64``, else float32 if exact, else a
      ``ValueError``), e.g. ``lambda h: optimizers.adam(schedules.one_cycle(h["peak"], 1000, pct_start=h["pct"]))``.
    grid: a dict of named axes (Cartesian product, first axis slowest) or a list of dicts.
    num_steps: training steps per configuration; must be >= 1.
    eval_fn: optional ``eval_fn(params) -> scalar``, applied to each configuration's trained params.
    eval_mode: ``"min"`` (``eval_fn`` is a loss) or ``"max"`` (an accuracy); required with
      ``eval_fn``, and only with it.
    max_parallel: at most this many configurations vmapped at once per device (bounds memory).
    mesh: a ``jax.sharding.Mesh`` to shard the configuration axis over (all its axes).
    progress: show a progress bar on stderr (the scan then runs in about 20 chunks, same numbers).

  Returns:
    A :class:`SweepResult`.

  Raises:
    ValueError: a malformed ``grid`` (a value that is not a finite real number, or an integer
      float32 cannot hold), ``num_steps < 1``, ``max_parallel < 1``, a ``"seeds"`` axis with
      ``params`` not a function, a ``loss_fn`` or ``eval_fn`` that does not return a scalar,
      ``eval_fn`` without ``eval_mode`` (or the reverse), ``batches`` leaves with different leading
      axes (or listed batches of different shapes), or a non-callable ``optimizer``.

  References:
    Bradbury et al., JAX (``jax.vmap``, ``jax.sharding``); the "train many models in one program"
    pattern of Smith & Topin's hyperparameter sweeps is what ``lr_find`` suggests a starting point for.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import sweep, schedules
    >>> loss = lambda w, b: jnp.sum((w - b) ** 2)
    >>> res = sweep(loss, jnp.ones(2), jnp.zeros((1, 2)),
    ...             optimizer=lambda h: optax.sgd(schedules.cosine_annealing(h["lr"], h["steps"])),
    ...             grid={"lr": [0.1, 0.3], "steps": [10, 0]}, num_steps=10)
    >>> print(res.strategy, res.valid.tolist())
    vmap [True, False, True, False]
    >>> print(*(f"{x:.4f}" for x in res.train_loss))
    0.1828 nan 0.0002 nan
  """
  args = _check_arguments(
    loss_fn, params, batches, optimizer, grid, num_steps, eval_fn, eval_mode, max_parallel, mesh, progress
  )
  plan = _plan(args, loss_fn, params, optimizer, eval_fn, mesh)
  losses, final = _run(plan, args.progress)
  return _collect(plan, losses, final, args.eval_mode)
