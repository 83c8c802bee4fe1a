"""Train a grid of hyperparameter configurations at once: ``lax.scan`` over steps, ``vmap`` over configurations.

:class:`SweepResult` (``lr_jax.SweepResult``) lives in ``_sweep_result.py``. The package attribute
``lr_jax.sweep`` is the *function* :func:`sweep`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lr_jax import _loop
from lr_jax._sweep_result import EVAL_MODES, SeedRuns, SweepResult, TrainedRun, _take_lane
from lr_jax._validation import flag, number

__all__ = ["SeedRuns", "SweepResult", "TrainedRun", "expand_grid", "sweep"]

SEEDS = "seeds"
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
    >>> expand_grid({"lr": [0.1, 0.01], "b1": [0.9, 0.99]})
    [{'lr': 0.1, 'b1': 0.9}, {'lr': 0.1, 'b1': 0.99}, {'lr': 0.01, 'b1': 0.9}, {'lr': 0.01, 'b1': 0.99}]
  """
  fn = "sweep"
  if isinstance(grid, Mapping):
    if not grid:
      raise ValueError(f"{fn}: `grid` must name at least one axis, got grid={grid!r}.")
    axes = {}
    for name, values in grid.items():
      if not isinstance(name, str):
        raise ValueError(f"{fn}: `grid` axis names must be strings, got {name!r}.")
      # an array axis as a list (a 0-d array becomes a number, refused below as not a sequence)
      values = np.asarray(values).tolist() if isinstance(values, (np.ndarray, jax.Array)) else values
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
# The compiled program. ``spec`` holds everything static (functions compared by code, see
# ``_loop.SameCode``); arrays with a run axis are ``hp`` (dict of [runs] arrays), ``seeds`` ([runs])
# and the carry ``(trained leaves, frozen arrays, optimizer state, alive)``.


@dataclasses.dataclass(frozen=True)
class _Spec:
  loss_fn: _loop.SameCode
  optimizer: _loop.SameCode
  eval_fn: _loop.SameCode | None
  init_fn: _loop.SameCode | None
  split: _loop.ParamSplit
  num_steps: int
  num_batches: int  # stacked batches, cycled; 0 when streamed (each chunk is scanned as it comes)
  eval_every: int | None
  eval_batched: bool  # eval_fn(params, batch), averaged over eval_batches
  chunk_size: int  # runs vmapped at once per device
  local_configs: int  # runs per device
  mesh: Mesh | None


def _lane_loss(spec: _Spec, frozen):
  return lambda train, batch: spec.loss_fn(spec.split.merge(train, frozen), batch)


def _lane_init(hp, seed, params, spec: _Spec):
  if spec.init_fn is not None:
    _, train, frozen = _loop.split_params(spec.init_fn(jax.random.key(seed)))
  else:
    train, frozen = params
  return (train, frozen, spec.optimizer(hp).init(train), jnp.array(True))


def _lane_eval(carry, eval_batches, spec: _Spec):
  train, frozen, _, alive = carry
  p = spec.split.merge(train, frozen)
  if spec.eval_batched:
    e = jnp.mean(lax.map(lambda b: jnp.asarray(spec.eval_fn(p, b)), eval_batches))
  else:
    e = jnp.asarray(spec.eval_fn(p))
  return jnp.where(alive & jnp.isfinite(e), e, jnp.nan)


def _lane_steps(carry, hp, data, eval_batches, t0, spec: _Spec, length: int):
  """``length`` steps from step ``t0`` (a multiple of ``eval_every``): ``(carry, losses, evals)``.

  ``data``: the stacked batches (cycled, step t uses ``t % num_batches``) or, streamed, this chunk's
  ``length`` batches (scanned). With ``eval_every = k``, an outer scan over periods of k steps
  evaluates after each (no evaluation is traced into the per-step body).
  """
  tx = spec.optimizer(hp)
  streamed = spec.num_batches == 0

  def step(c, x):
    train, frozen, s, alive = c
    t, batch = x
    if not streamed:
      batch = _loop.take(data, lax.rem(t, jnp.asarray(spec.num_batches, t.dtype)))
    loss, train, s = _loop.train_step(_lane_loss(spec, frozen), tx, train, s, batch)
    alive = alive & jnp.isfinite(loss)
    return (train, frozen, s, alive), jnp.where(alive, loss, jnp.nan)

  xs = (t0 + jnp.arange(length, dtype=jnp.int32), data if streamed else None)
  k = spec.eval_every
  if k is None:
    carry, losses = lax.scan(step, carry, xs)
    return carry, losses, None
  m = length // k
  parts, evals = [], None  # None, not a zero-size array: lax.map(batch_size=) cannot reshape those
  if m:

    def period(c, x):
      c, losses = lax.scan(step, c, x)
      return c, (losses, _lane_eval(c, eval_batches, spec))

    head = jax.tree_util.tree_map(lambda a: a[: m * k].reshape((m, k, *a.shape[1:])), xs)
    carry, (losses, evals) = lax.scan(period, carry, head)
    parts.append(losses.reshape(-1))
  if length > m * k:
    carry, losses = lax.scan(step, carry, jax.tree_util.tree_map(lambda a: a[m * k :], xs))
    parts.append(losses)
  return carry, jnp.concatenate(parts), evals


def _lane_final(carry, data, eval_batches, spec: _Spec):
  train, frozen, _, alive = carry
  loss = _loop.mean_loss(_lane_loss(spec, frozen), train, data)
  alive = alive & jnp.isfinite(loss)
  out = {"train_loss": jnp.where(alive, loss, jnp.nan)}
  if spec.eval_fn is not None:
    out["eval"] = _lane_eval((train, frozen, None, alive), eval_batches, spec)
  return out


def _over_configs(fn, xs, spec: _Spec):
  """Maps ``fn`` over the leading (run) axis of ``xs`` with the chosen strategy."""
  if spec.chunk_size >= spec.local_configs:
    return jax.vmap(fn)(xs)
  return lax.map(fn, xs, batch_size=spec.chunk_size if spec.chunk_size > 1 else None)


def _sharded(fn, spec: _Spec, n_config_args: int, n_shared_args: int):
  """``fn(*config_args, *shared_args)`` with the run axis sharded over ``spec.mesh``."""
  if spec.mesh is None:
    return fn
  axes = P(tuple(spec.mesh.axis_names))
  in_specs = (axes,) * n_config_args + (P(),) * n_shared_args
  return jax.shard_map(fn, mesh=spec.mesh, in_specs=in_specs, out_specs=axes, check_vma=False)


@functools.partial(jax.jit, static_argnames=("spec",))
def _run_all(hp, seeds, params, batches, eval_batches, *, spec: _Spec):
  """init -> scan over all steps -> train loss / eval, for every run: one program."""

  def local(hp, seeds, params, batches, eval_batches):
    def lane(x):
      h, seed = x
      carry = _lane_init(h, seed, params, spec)
      carry, losses, evals = _lane_steps(carry, h, batches, eval_batches, 0, spec, spec.num_steps)
      return carry, losses, evals, _lane_final(carry, batches, eval_batches, spec)

    return _over_configs(lane, (hp, seeds), spec)

  return _sharded(local, spec, 2, 3)(hp, seeds, params, batches, eval_batches)


@functools.partial(jax.jit, static_argnames=("spec",))
def _run_init(hp, seeds, params, *, spec: _Spec):
  def local(hp, seeds, params):
    return _over_configs(lambda x: _lane_init(x[0], x[1], params, spec), (hp, seeds), spec)

  return _sharded(local, spec, 2, 1)(hp, seeds, params)


@functools.partial(jax.jit, static_argnames=("spec", "length"), donate_argnames=("carry",))
def _run_steps(carry, hp, data, eval_batches, t0, *, spec: _Spec, length: int):
  def local(carry, hp, data, eval_batches, t0):
    def lane(x):
      return _lane_steps(x[0], x[1], data, eval_batches, t0, spec, length)

    return _over_configs(lane, (carry, hp), spec)

  return _sharded(local, spec, 2, 3)(carry, hp, data, eval_batches, t0)


@functools.partial(jax.jit, static_argnames=("spec",))
def _run_final(carry, data, eval_batches, *, spec: _Spec):
  def local(carry, data, eval_batches):
    return _over_configs(lambda c: _lane_final(c, data, eval_batches, spec), carry, spec)

  return _sharded(local, spec, 1, 2)(carry, data, eval_batches)


# --------------------------------------------------------------------------------------------------
# Strategy and placement.


def _platform(mesh: Mesh | None) -> str:
  return (mesh.devices.flat[0] if mesh is not None else jax.devices()[0]).platform


def _step_flops(loss, params_shape, batch_spec) -> float:
  """XLA's FLOP estimate for one run's loss and gradient (lowering only, no compile)."""
  try:
    lowered = jax.jit(jax.value_and_grad(loss)).lower(params_shape, batch_spec)
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
  if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.wrap_key_data(_put(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _place(tree, mesh: Mesh | None):
  """Starts the (asynchronous) transfer of a host pytree to the device(s), replicated over ``mesh``."""
  if mesh is None:
    return jax.device_put(tree)
  rep = NamedSharding(mesh, P())
  if jax.process_count() > 1:
    return jax.tree_util.tree_map(lambda x: _put(x, rep), tree)
  return jax.device_put(tree, rep)


def _fetch(x) -> np.ndarray:
  return np.asarray(_gathered(x))


def _gathered(tree):
  """``tree`` with every array leaf that spans several processes gathered whole onto this process (a
  plain local ``jax.Array``, usable outside the mesh; one compiled copy for the whole tree); other
  leaves as they are. With several processes it is a collective: every process calls it alike."""
  if jax.process_count() == 1:
    return tree
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  idx = [i for i, x in enumerate(leaves) if isinstance(x, jax.Array) and not x.is_fully_addressable]
  if idx:
    whole = [_replicated(leaves[i].sharding) for i in idx]
    got = jax.jit(_identity, out_shardings=whole)([leaves[i] for i in idx])
    for i, x in zip(idx, got):
      leaves[i] = x.addressable_data(0)
  return jax.tree_util.tree_unflatten(treedef, leaves)


def _identity(x):
  return x


def _replicated(sharding) -> NamedSharding:
  mesh = getattr(sharding, "mesh", None)
  if not isinstance(mesh, Mesh):
    mesh = Mesh(np.array(sorted(sharding.device_set, key=lambda d: d.id)), ("devices",))
  return NamedSharding(mesh, P())


# --------------------------------------------------------------------------------------------------
# The steps of ``sweep``: check arguments, plan, run, collect.

# Steps per chunk of a streamed ``batches`` (``chunk_steps=None``). Measured on a 2-core CPU, 32 Adam
# rates x 300 steps of the digits MLP on mini-batches of 64, median seconds (stacked: 0.281):
# chunks of 100: 0.332, 50: 0.306, 25: 0.300. Smaller chunks overlap reading with training sooner
# and make the last-chunk train_loss cheaper; each chunk costs one dispatch (microseconds).
STREAM_CHUNK_STEPS = 32


@dataclasses.dataclass(frozen=True)
class _Args:
  configs: list
  columns: dict  # grid axis -> [configs] array, as the lanes see it
  seeds: tuple
  seeded: bool  # seeds= given
  batches: Any  # stacked batches, or None when streamed
  stream: Any  # a _loop.BatchStream, or None
  batch_spec: Any  # one stacked batch's abstract shape
  num_batches: int
  eval_batches: Any
  split: _loop.ParamSplit
  params: Any  # (train, frozen) shared by every run, or None with an init_fn
  params_shape: Any  # (train, frozen) abstract
  num_steps: int
  eval_every: int | None
  chunk_steps: int
  keep_params: bool
  max_parallel: int | None
  eval_mode: str | None
  progress: bool


@dataclasses.dataclass(frozen=True)
class _Plan:
  spec: _Spec
  hp: dict
  seeds: Any
  params: Any  # shared (train, frozen) (None with an init_fn)
  batches: Any
  eval_batches: Any
  configs: list
  num_devices: int


def _positive_int(v, name, fn="sweep", upper=2**31):
  v = int(number(v, fn=fn, name=name, integer=True))
  if not 1 <= v < upper:
    raise ValueError(f"{fn}: `{name}` must be >= 1 and < 2**31, got {name}={v}.")
  return v


def _check_seeds(seeds, init_fn, fn="sweep") -> tuple:
  if seeds is None:
    return (0,)
  if init_fn is None:
    raise ValueError(
      f"{fn}: `seeds` needs `init_fn` (key -> params): with shared params every seed would train the same "
      f"run, got seeds={seeds!r} with init_fn=None."
    )
  if isinstance(seeds, (numbers.Integral, np.integer)) and not isinstance(seeds, bool):
    if seeds < 1:
      raise ValueError(f"{fn}: `seeds` must be >= 1 (a count) or a sequence of seeds, got seeds={seeds!r}.")
    return tuple(range(int(seeds)))
  if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)) or len(seeds) == 0:
    raise ValueError(
      f"{fn}: `seeds` must be a count >= 1 or a non-empty sequence of seeds, got seeds={seeds!r}."
    )
  out = []
  for s in seeds:
    number(s, fn=fn, name="seeds", integer=True)
    if not 0 <= int(s) < 2**32:
      raise ValueError(f"{fn}: every seed must be in [0, 2**32), got seeds={list(seeds)!r}.")
    out.append(int(s))
  if len(set(out)) != len(out):
    raise ValueError(f"{fn}: `seeds` must be distinct, got seeds={out!r}.")
  return tuple(out)


def _check_functions(loss_fn, optimizer, eval_fn, eval_mode, init_fn, fn="sweep"):
  if not callable(loss_fn):
    raise ValueError(
      f"{fn}: `loss_fn` must be a function (params, batch) -> scalar, got loss_fn={loss_fn!r}."
    )
  if isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
    raise ValueError(
      f"{fn}: `optimizer` must be a function hparams -> GradientTransformation "
      f"(e.g. `lambda h: optax.adam(h['lr'])`), got optimizer={optimizer!r}."
    )
  if init_fn is not None and not callable(init_fn):
    raise ValueError(f"{fn}: `init_fn` must be a function key -> params or None, got init_fn={init_fn!r}.")
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


def _check_optimizer_builds(optimizer, columns: dict, train_shape, fn="sweep"):
  """Traces ``optimizer(hparams).init(params)`` abstractly (``jax.eval_shape``: nothing runs, and the
  values are traced, so an invalid grid value still gives a NaN lane, not an error): a key the grid does
  not have, or a return value that is not an Optax transformation, is a named ``ValueError`` here
  instead of a ``KeyError`` or ``AttributeError`` from inside the vmapped trace."""
  hp = {k: jax.ShapeDtypeStruct((), v.dtype) for k, v in columns.items()}

  def build(h, train):
    tx = optimizer(h)
    if not callable(getattr(tx, "init", None)) or not callable(getattr(tx, "update", None)):
      raise ValueError(
        f"{fn}: `optimizer(hparams)` must return an optax.GradientTransformation (e.g. `lambda h: "
        f"optax.adam(h['lr'])`), got {_describe(tx)}."
      )
    return tx.init(train)

  try:
    jax.eval_shape(build, hp, train_shape)
  except KeyError as e:
    if not e.args or e.args[0] in columns:  # a KeyError of the user's own, not a missing grid axis
      raise
    raise ValueError(
      f"{fn}: `optimizer(hparams)` reads the key {e.args[0]!r}, which the grid does not have; `hparams` "
      f"holds the grid's axes {sorted(columns)}."
    ) from None


def _describe(x) -> str:
  if isinstance(x, (jax.Array, jax.core.Tracer)):  # a tracer's repr names JAX internals
    return f"an array of dtype {x.dtype} and shape {tuple(x.shape)}"
  return repr(x)


def _check_params(params, init_fn, fn="sweep"):
  """``(split, shared (train, frozen) or None, abstract (train, frozen))``."""
  if init_fn is not None:
    if params is not None:
      raise ValueError(
        f"{fn}: `params` must be None when `init_fn` makes the params of each run, got params={params!r}."
      )
    split, train, frozen = _loop.abstract_split(init_fn, jax.random.key(0))
    shared, shape = None, (train, frozen)
  else:
    if params is None:
      raise ValueError(f"{fn}: `params` (a pytree) or `init_fn` (key -> params) is required, got neither.")
    split, train, frozen = _loop.split_params(params)
    shared = (jax.tree_util.tree_map(jnp.asarray, train), tuple(jnp.asarray(x) for x in frozen))
    shape = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), shared)
  if not jax.tree_util.tree_leaves(shape[0]):
    made = "init_fn's params" if init_fn is not None else f"params={params!r}"
    raise ValueError(
      f"{fn}: `params` must hold at least one floating-point array to train (leaves of other types are "
      f"kept as they are), got {made}; to initialise each run from a key, pass init_fn=."
    )
  return split, shared, shape


def _check_arguments(
  loss_fn, params, batches, optimizer, grid, num_steps, init_fn, seeds, eval_fn, eval_mode, eval_batches,
  eval_every, keep_params, chunk_steps, max_parallel, mesh, progress,
) -> _Args:  # fmt: skip
  fn = "sweep"
  configs = expand_grid(grid)
  if SEEDS in configs[0]:
    raise ValueError(
      f"{fn}: `grid` has a {SEEDS!r} axis; seeds are a keyword: sweep(..., init_fn=..., seeds=n) trains "
      f"every configuration from n seeds and averages over them, got grid axes {list(configs[0])}."
    )
  num_steps = _positive_int(num_steps, "num_steps")
  if max_parallel is not None:
    max_parallel = int(number(max_parallel, fn=fn, name="max_parallel", integer=True))
    if max_parallel < 1:
      raise ValueError(f"{fn}: `max_parallel` must be >= 1 or None, got max_parallel={max_parallel}.")
  progress = flag(progress, fn=fn, name="progress")
  keep_params = flag(keep_params, fn=fn, name="keep_params")
  _check_functions(loss_fn, optimizer, eval_fn, eval_mode, init_fn)
  if eval_fn is None and (eval_batches is not None or eval_every is not None):
    raise ValueError(
      f"{fn}: `eval_batches` and `eval_every` need an eval_fn, got eval_fn=None with "
      f"eval_batches={'given' if eval_batches is not None else None}, eval_every={eval_every!r}."
    )
  if eval_every is not None:
    eval_every = _positive_int(eval_every, "eval_every")
    if eval_every > num_steps:
      raise ValueError(
        f"{fn}: `eval_every` must be <= num_steps, got eval_every={eval_every} with num_steps={num_steps}."
      )
  chunk_steps = STREAM_CHUNK_STEPS if chunk_steps is None else _positive_int(chunk_steps, "chunk_steps")
  if mesh is not None and not isinstance(mesh, Mesh):
    raise ValueError(f"{fn}: `mesh` must be a jax.sharding.Mesh or None, got mesh={mesh!r}.")
  seeds_t = _check_seeds(seeds, init_fn)
  columns = {k: _column(k, [cfg[k] for cfg in configs]) for k in configs[0]}
  split, shared, shape = _check_params(params, init_fn)
  stream = None
  if _loop.is_stream(batches):
    stream = _loop.BatchStream(batches, fn)
    batches, n, spec_batches = None, 0, stream.spec()
  else:
    batches, n = _loop.prepare_batches(batches, fn)
    spec_batches = batches
  _loop.check_split_loss(loss_fn, split, shape, spec_batches, fn)
  if eval_batches is not None:
    if _loop.is_stream(eval_batches):
      eval_batches = list(eval_batches)  # held-out data is evaluated again and again: kept whole
    eval_batches, _ = _loop.prepare_batches(eval_batches, fn)
  if eval_fn is not None:
    out = _loop.eval_output(eval_fn, split, shape, eval_batches)
    if getattr(out, "shape", None) != () or jnp.issubdtype(getattr(out, "dtype", None), jnp.complexfloating):
      what = "eval_fn(params)" if eval_batches is None else "eval_fn(params, batch)"
      # a complex value would be ranked by its real part (NumPy drops the imaginary part)
      raise ValueError(f"{fn}: `eval_fn` must return a real scalar ({what}), got {out!r}.")
  _check_optimizer_builds(optimizer, columns, shape[0], fn)
  return _Args(
    configs, columns, seeds_t, seeds is not None, batches, stream, _loop.batch_spec(spec_batches), n,
    eval_batches, split, shared, shape, num_steps, eval_every, chunk_steps, keep_params, max_parallel,
    eval_mode, progress,
  )  # fmt: skip


def _plan(a: _Args, loss_fn, optimizer, eval_fn, init_fn, mesh) -> _Plan:
  """Lays out runs (configuration-major, then seed), pads them to a multiple of the device count,
  picks a strategy, places the arrays."""
  if mesh is None and len(jax.devices()) > 1:
    mesh = Mesh(np.array(jax.devices()), ("configs",))
  num_devices = 1 if mesh is None else mesh.devices.size
  c, s = len(a.configs), len(a.seeds)
  runs = c * s
  r_pad = -(-runs // num_devices) * num_devices
  hp = {k: np.repeat(v, s) for k, v in a.columns.items()}
  hp = {k: np.concatenate([v, np.repeat(v[-1:], r_pad - runs)]) for k, v in hp.items()}
  seeds = np.tile(np.asarray(a.seeds, np.uint32), c)
  seeds = np.concatenate([seeds, np.repeat(seeds[-1:], r_pad - runs)])
  local = r_pad // num_devices
  split = a.split
  flops = _step_flops(lambda pf, b: loss_fn(split.merge(*pf), b), a.params_shape, a.batch_spec)
  chunk = _choose_chunk(_platform(mesh), local, a.max_parallel, flops)
  spec = _Spec(
    _loop.SameCode(loss_fn), _loop.SameCode(optimizer), None if eval_fn is None else _loop.SameCode(eval_fn),
    None if init_fn is None else _loop.SameCode(init_fn), split, a.num_steps, a.num_batches, a.eval_every,
    a.eval_batches is not None, chunk, local, mesh,
  )  # fmt: skip
  batches, eval_batches, shared = a.batches, a.eval_batches, a.params
  if mesh is not None:
    cfg_sharding = NamedSharding(mesh, P(tuple(mesh.axis_names)))
    hp = {k: _put(v, cfg_sharding) for k, v in hp.items()}
    seeds = _put(seeds, cfg_sharding)
    batches, eval_batches, shared = (
      None if x is None else _place(x, mesh) for x in (batches, eval_batches, shared)
    )
  return _Plan(spec, hp, seeds, shared, batches, eval_batches, a.configs, num_devices)


def _parts(total: int, length: int, k: int | None) -> list[tuple[int, int]]:
  """(start, length) chunks of ``length`` steps, rounded up to a multiple of ``k`` (evaluations fall
  at multiples of k, so each chunk starts at one)."""
  if k is not None:
    length = -(-length // k) * k
  return [(t, min(length, total - t)) for t in range(0, total, length)]


def _run(plan: _Plan, a: _Args):
  """Trains every run; returns ``(carry, losses [runs, steps], evals [runs, E], final)``."""
  spec = plan.spec
  if a.stream is None and not a.progress:
    return _run_all(plan.hp, plan.seeds, plan.params, plan.batches, plan.eval_batches, spec=spec)
  if a.stream is None:
    parts = _parts(a.num_steps, max(1, math.ceil(a.num_steps / 20)), a.eval_every)
    data = plan.batches
  else:
    parts = _parts(a.num_steps, a.chunk_steps, a.eval_every)
    data = _place(a.stream.chunk(parts[0][1]), spec.mesh)
  bar = _loop.Progress(a.num_steps, "sweep", a.progress)
  carry = _run_init(plan.hp, plan.seeds, plan.params, spec=spec)
  losses, evals = [], []
  for n, (t0, length) in enumerate(parts):
    t0 = jnp.asarray(t0, jnp.int32)
    carry, rows, ev = _run_steps(carry, plan.hp, data, plan.eval_batches, t0, spec=spec, length=length)
    if a.stream is not None and n + 1 < len(parts):
      data = _place(a.stream.chunk(parts[n + 1][1]), spec.mesh)  # read and sent while this chunk runs
    losses.append(rows)
    evals.append(ev)
    if n > 0:
      # Dispatch is asynchronous: without a wait the loop would read the whole stream ahead of the
      # device, and memory would grow with the dataset. Waiting for the chunk before this one (not
      # this one) keeps one chunk queued behind the running one, so the device does not idle while
      # the host dispatches (measured on a GPU: 10 chunks of 32 steps lost 20% to that idling); three
      # chunks of data at most are alive.
      jax.block_until_ready(losses[n - 1])
      bar.update(parts[n - 1][1])
  jax.block_until_ready(losses[-1])
  bar.update(parts[-1][1])
  final = _run_final(carry, data, plan.eval_batches, spec=spec)
  evals = [e for e in evals if e is not None]
  return carry, jnp.concatenate(losses, axis=1), jnp.concatenate(evals, axis=1) if evals else None, final


def _lanes(tree, runs: int, shape: tuple):
  """The first ``runs`` rows of every leaf, reshaped to ``shape`` (drops padding; adds the seed axis)."""

  def cut(x):
    if x.shape[0] != runs:
      x = x[:runs]
    return x.reshape(shape + x.shape[1:]) if shape != (runs,) else x

  return jax.tree_util.tree_map(cut, tree)


def _collect(plan: _Plan, a: _Args, carry, losses, evals, final) -> SweepResult:
  c, s = len(plan.configs), len(a.seeds)
  runs = c * s
  # With several processes: every run's numbers (and kept state) gathered to each, in one program.
  kept, losses, evals, final = _gathered((carry if a.keep_params else None, losses, evals, final))
  losses = _fetch(losses)[:runs].reshape(c, s, -1)
  train_loss = _fetch(final["train_loss"])[:runs].reshape(c, s)
  ev = _fetch(final["eval"])[:runs].reshape(c, s) if "eval" in final else None
  curve = _fetch(evals)[:runs].reshape(c, s, -1) if a.eval_every is not None else None
  valid = np.all(np.isfinite(losses), axis=2) & np.isfinite(train_loss)
  if ev is not None:
    valid &= np.isfinite(ev)
  by_seed = SeedRuns(a.seeds, losses, train_loss, ev, curve, valid)
  spec = plan.spec
  result = SweepResult(
    losses=losses.mean(axis=1),
    train_loss=train_loss.mean(axis=1),
    eval=None if ev is None else ev.mean(axis=1),
    eval_mode=a.eval_mode,
    configs=plan.configs,
    valid=np.all(valid, axis=1),
    strategy=_strategy(spec.chunk_size, spec.local_configs),
    chunk_size=spec.chunk_size,
    num_devices=plan.num_devices,
    eval_curve=None if curve is None else curve.mean(axis=1),
    eval_steps=None if curve is None else a.eval_every * np.arange(1, curve.shape[2] + 1),
    by_seed=by_seed,
    seeds=a.seeds if a.seeded else None,
  )
  train, frozen, opt_state, _ = kept if a.keep_params else carry
  best_run = None
  if np.any(result.valid):
    i, j = result._best_lane(None, None, None, "sweep")
    lane = (i * s + j,)
    p = spec.split.merge(_take_lane(train, lane), _take_lane(frozen, lane))
    best_run = TrainedRun(i, a.seeds[j], _gathered(p), _gathered(_take_lane(opt_state, lane)))
  if not a.keep_params:
    return result._replace(best_run=best_run)
  shape = (c, s) if a.seeded else (c,)
  params = spec.split.merge(_lanes(train, runs, shape), _lanes(frozen, runs, shape))
  return result._replace(params=params, opt_state=_lanes(opt_state, runs, shape), best_run=best_run)


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
  init_fn: Callable[[jax.Array], Any] | None = None,
  seeds: int | Sequence[int] | None = None,
  eval_fn: Callable[..., jax.Array] | None = None,
  eval_mode: str | None = None,
  eval_batches: Any = None,
  eval_every: int | None = None,
  keep_params: bool = True,
  chunk_steps: int | None = None,
  max_parallel: int | None = None,
  mesh: Mesh | None = None,
  progress: bool = False,
) -> SweepResult:
  """Trains every configuration of a hyperparameter grid, all in one jit-compiled program.

  For each configuration i with hyperparameters ``h_i`` (a dict of traced scalars) and each seed,
  with the batches ``batch[0], batch[1], ...``::

      tx = optimizer(h_i);  p = params (or init_fn(jax.random.key(seed)));  s = tx.init(p)
      for t in range(num_steps):
        losses[i, t], g = value_and_grad(loss_fn)(p, batch[t])
        u, s = tx.update(g, s, p);  p = optax.apply_updates(p, u)
        if eval_every and (t + 1) % eval_every == 0: eval_curve[i].append(evaluate(p))
      train_loss[i] = mean(loss_fn(p, b) for b in the training batches);  eval[i] = evaluate(p)

  where ``evaluate(p)`` is ``eval_fn(p)``, or ``mean(eval_fn(p, b) for b in eval_batches)``. That
  is a plain Optax loop, run as ``lax.scan`` over steps and ``vmap`` over configurations and seeds
  (hyperparameters are traced, so every lr_jax schedule and optimizer can be swept, including step
  counts and ``pct_start``, which Optax's own schedules cannot trace). There is no Python loop per
  configuration or per step. A run whose hyperparameters are invalid (lr_jax schedules give NaN
  rates) or whose loss becomes non-finite comes back NaN from that step on, and ``valid`` is False;
  the sweep never aborts. With an ``eval_fn``, ``eval_mode`` says whether its value is better low (a
  loss) or high (an accuracy), and :meth:`SweepResult.best`, ``table()``, ``plot()`` and the CLI rank
  by it (else by ``train_loss``), averaged over seeds.

  **Models.** ``params`` may be any pytree: a dict, a Flax linen ``params`` collection, a Flax NNX
  module or its ``nnx.State``, an Equinox module. Its array leaves of a floating dtype are trained;
  other arrays (integer counters, PRNG keys) are carried unchanged; any other leaf (an Equinox
  module's activation function, a Python float) is static, as ``eqx.partition(params,
  eqx.is_inexact_array)`` splits it. ``loss_fn`` always gets the whole pytree; ``optimizer(h)`` is
  initialised and updated on the trained part (the same pytree with ``None`` at the other leaves,
  as ``eqx.filter`` gives). For a different initialisation per seed, pass ``init_fn`` (``key ->
  params``) and ``params=None``; a callable ``params`` is never taken for an init function.

  **Data.** ``batches`` is either stacked (a pytree of arrays whose leading axis indexes batches,
  cycled: step t uses batch ``t % n``; or a list of equal-shaped batches, stacked here), or any
  other iterable of batches (a generator, a data loader yielding NumPy or JAX arrays): that is
  consumed ``chunk_steps`` batches at a time, each chunk stacked on the host and trained by one
  compiled ``lax.scan``; the next chunk is read and transferred (``jax.device_put`` is
  asynchronous) while the current one runs and one more waits queued, so memory holds three chunks
  at most, not the dataset. A re-iterable source that runs out is started again (an epoch); an
  exhausted iterator raises.

  **Results.** ``result.params`` and ``result.opt_state`` hold the trained params and optimizer
  state of every run (``keep_params=False`` keeps only the winner's, in ``result.best_run``);
  :meth:`SweepResult.best_params` and :meth:`SweepResult.best_opt_state` give the winner's, to
  train further with ``optimizer(hparams of result.best())``.

  **Compilation.** The program is compiled once per distinct (functions, grid axis names, shapes,
  dtypes, num_steps, strategy); new grid values and new data of the same shapes reuse it. Functions
  (``loss_fn``, ``optimizer``, ``eval_fn``, ``init_fn``) are compared by their code and what they
  capture, not by identity: the same ``lambda`` evaluated again (in a loop, a function called
  again, a notebook cell run again) reuses the program. It recompiles when the code differs, or when
  a captured value differs: numbers, strings and tuples of them by value, functions by these rules,
  anything else (an array, a model, a module) by identity, so a lambda closing over a *new* array
  recompiles; pass such data as ``batches``/``eval_batches`` or capture one array object.

  Strategy: on GPU/TPU all runs of a device are vmapped at once (``max_parallel`` bounds that,
  vmapping chunks of it with ``lax.map`` over the chunks). On CPU a vmapped batch of matmuls is
  slower than separate ones once a run's step costs more than ``CPU_VMAP_MAX_FLOPS`` (XLA's
  estimate; measurements next to the constant), so there runs go one at a time with ``lax.map``
  inside the same program. ``result.strategy`` says which was used. With several devices (``mesh``,
  or all of ``jax.devices()`` when there are several), the run axis is sharded over them with
  ``jax.shard_map`` on a ``NamedSharding``, padded to a multiple of the device count by repeating
  the last run (the padding is dropped from the result); this works on one host or several
  (``jax.distributed``: call ``jax.distributed.initialize`` first, then ``sweep`` with the same
  arguments and the same batches on every process; every result, ``params`` and ``opt_state``
  included, comes back whole on every process as local arrays, equal to the one-process run).

  There is no single twin: this replaces a Python loop of training runs (or Optuna/Ray Tune
  trials) with one compiled program.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``.
    params: initial parameters (any pytree, shared by all runs), or None with ``init_fn``.
    batches: stacked batches, a list of batches, or any iterable of batches (see Data above).
    optimizer: ``hparams -> optax.GradientTransformation``; ``hparams`` is a dict of the grid's
      axes holding traced scalars (int32 for integer axes, float32 for float axes; an integer past
      int32 is int64 with ``jax_enable_x64``, else float32 if exact, else a ``ValueError``), e.g.
      ``lambda h: optimizers.adam(schedules.one_cycle(h["peak"], 1000, pct_start=h["pct"]))``.
    grid: a dict of named axes (Cartesian product, first axis slowest) or a list of dicts.
    num_steps: training steps per run; must be >= 1.
    init_fn: ``key -> params``, called with ``jax.random.key(seed)`` for each seed (seed 0 without
      ``seeds``).
    seeds: with ``init_fn``: a count n (seeds 0..n-1) or a sequence of distinct seeds in
      [0, 2**32). Every configuration is trained from each; results are averaged over seeds.
    eval_fn: ``eval_fn(params) -> scalar``, or with ``eval_batches`` ``eval_fn(params, batch) ->
      scalar`` (averaged over the batches, each weighted equally).
    eval_mode: ``"min"`` (``eval_fn`` is a loss) or ``"max"`` (an accuracy); required with
      ``eval_fn``, and only with it.
    eval_batches: held-out batches for ``eval_fn``, stacked or a list (an iterable is read whole).
    eval_every: also evaluate after every ``eval_every`` steps, into ``result.eval_curve``.
    keep_params: keep every run's trained params and optimizer state (default); False keeps only
      the winner's.
    chunk_steps: steps per chunk of an iterable ``batches`` (default ``STREAM_CHUNK_STEPS`` = 32),
      rounded up to a multiple of ``eval_every``; bounds the memory the data takes.
    max_parallel: at most this many runs vmapped at once per device (bounds memory).
    mesh: a ``jax.sharding.Mesh`` to shard the run axis over (all its axes).
    progress: show a progress bar on stderr (the scan then runs in about 20 chunks, same numbers).

  Returns:
    A :class:`SweepResult`.

  Raises:
    ValueError: a malformed ``grid`` (a value that is not a finite real number, an integer float32
      cannot hold, or a ``"seeds"`` axis), ``num_steps < 1``, ``max_parallel < 1``, ``seeds`` without
      ``init_fn``, ``params`` with ``init_fn`` (or neither), params with nothing to train, a
      ``loss_fn`` or ``eval_fn`` that does not return a scalar, ``eval_fn`` without ``eval_mode`` (or
      the reverse), ``eval_batches``/``eval_every`` without ``eval_fn``, ``batches`` leaves with
      different leading axes (or batches of different shapes), an iterator that runs out, or a
      non-callable ``optimizer``.

  References:
    Bradbury et al., JAX (``jax.vmap``, ``jax.sharding``); Kidger & Garcia, Equinox (2021), for the
    partition of a model into trained arrays and static leaves.

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
    >>> print(res.best()["lr"], res.best_params())
    0.3 [0.01089575 0.01089575]
  """
  args = _check_arguments(
    loss_fn, params, batches, optimizer, grid, num_steps, init_fn, seeds, eval_fn, eval_mode, eval_batches,
    eval_every, keep_params, chunk_steps, max_parallel, mesh, progress,
  )  # fmt: skip
  plan = _plan(args, loss_fn, optimizer, eval_fn, init_fn, mesh)
  carry, losses, evals, final = _run(plan, args)
  return _collect(plan, args, carry, losses, evals, final)
