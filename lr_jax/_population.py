"""A population of training lanes in one compiled program: the engine of :func:`lr_jax.search`.

A *lane* is one training run: its hyperparameters (one traced scalar per name), its seed, and its
carry ``(trained params, frozen arrays, optimizer state, alive)``. A :class:`Population` holds n
lanes on the device(s) and offers the moves every search method is made of:

* :meth:`Population.advance`: train every lane (or a masked subset) k more steps from its carry, and
  score it on held-out data (``eval_fn``) or, without one, on the training batches;
* :meth:`Population.select`: keep some lanes (a gather: fewer lanes, continuing from their state);
* :meth:`Population.copy`: overwrite lanes with copies of others (PBT's exploit: the carry rows are
  copied bit for bit) and give them new hyperparameters (PBT's explore);
* :meth:`Population.finalize`, :meth:`Population.params`, :meth:`Population.opt_state`.

The programs are the ones of :func:`lr_jax.sweep` (``_lane_init``/``_lane_steps``/``_lane_eval``,
vmapped or ``lax.map``-ped over lanes, sharded over a mesh). Each is compiled once per lane count (and
per step count for :meth:`advance`); new hyperparameter values, masks, copies and selections of the
same size reuse them. Masked lanes are computed and then discarded (a ``where`` on the carry), so a
mask saves no time, only a recompilation; :meth:`select` saves time.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lr_jax import _loop
from lr_jax import _sweep as _sw

__all__ = ["Advanced", "Population", "compile_counts", "start"]


class Advanced(NamedTuple):
  """What :meth:`Population.advance` returns (NumPy, one row per lane).

  Fields:
    losses: ``[lanes, steps]`` training loss of each step (NaN from a non-finite loss on, and for
      masked-off lanes).
    score: ``[lanes]`` after the steps: ``eval_fn``'s value (mean over ``eval_batches``) when an
      ``eval_fn`` was given, else the mean training loss over every training batch; NaN for a diverged
      lane and for a masked-off lane.
  """

  losses: np.ndarray
  score: np.ndarray


# --------------------------------------------------------------------------------------------------
# Programs (each compiled once per lane count; ``advance`` also per step count).


def _lane_score(c, data, eval_batches, spec):
  if spec.eval_fn is not None:
    return _sw._lane_eval(c, eval_batches, spec)
  return _sw._lane_final(c, data, eval_batches, spec)["train_loss"]


@functools.partial(jax.jit, static_argnames=("spec", "length", "score"), donate_argnames=("carry",))
def _advance(carry, hp, mask, data, score_data, eval_batches, t0, *, spec, length: int, score: bool = True):
  """``length`` steps on ``data`` (stacked: indexed by the clock; streamed: this chunk, scanned), then
  the score on ``score_data`` (the training batches for a score without ``eval_fn``; else unused), or
  NaN with ``score=False`` (a streamed advance's chunks before its last)."""

  def local(carry, hp, mask, data, score_data, eval_batches, t0):
    def lane(x):
      c0, h, m = x
      c, losses, _ = _sw._lane_steps(c0, h, data, eval_batches, t0, spec, length)
      score_ = _lane_score(c, score_data, eval_batches, spec) if score else jnp.float32(jnp.nan)
      keep = functools.partial(jnp.where, m)
      train, frozen, state, alive = c
      c = (
        jax.tree_util.tree_map(keep, train, c0[0]),
        frozen,
        jax.tree_util.tree_map(keep, state, c0[2]),
        keep(alive, c0[3]),
      )
      return c, jnp.where(m, losses, jnp.nan), jnp.where(m, score_, jnp.nan)

    return _sw._over_configs(lane, (carry, hp, mask), spec)

  return _sw._sharded(local, spec, 3, 4)(carry, hp, mask, data, score_data, eval_batches, t0)


@jax.jit
def _gather(tree, idx):
  return jax.tree_util.tree_map(lambda x: x[idx], tree)


def compile_counts() -> dict[str, int]:
  """How many programs each jitted entry point holds (``jit._cache_size()``), for tests and benchmarks."""
  return {
    "init": _sw._run_init._cache_size(),
    "advance": _advance._cache_size(),
    "gather": _gather._cache_size(),
    "final": _sw._run_final._cache_size(),
  }


# --------------------------------------------------------------------------------------------------
# The population.


def _columns(hparams, fn: str) -> tuple[dict, int]:
  if not isinstance(hparams, Mapping) or not hparams:
    raise ValueError(
      f"{fn}: `hparams` must be a non-empty dict {{name: [values per lane]}}, got {hparams!r}."
    )
  cols, n = {}, None
  for k, v in hparams.items():
    if not isinstance(k, str):
      raise ValueError(f"{fn}: `hparams` names must be strings, got {k!r}.")  # noqa: TRY004 - the contract: a named ValueError
    a = np.asarray(v)
    if a.ndim != 1 or a.shape[0] == 0:
      raise ValueError(
        f"{fn}: `hparams[{k!r}]` must be a non-empty 1-D sequence (one value per lane), got {v!r}."
      )
    if n is not None and a.shape[0] != n:
      raise ValueError(
        f"{fn}: every `hparams` column must have one value per lane ({n}), got {k!r} with {a.shape[0]}."
      )
    n = a.shape[0]
    cols[k] = a
  return cols, n


def _lane_seeds(seeds, n: int, init_fn, fn: str) -> np.ndarray:
  if seeds is None:
    return np.arange(n, dtype=np.uint32) if init_fn is not None else np.zeros(n, np.uint32)
  if init_fn is None:
    raise ValueError(
      f"{fn}: `seeds` needs `init_fn` (key -> params): with shared params every seed would train the same "
      f"run, got seeds={seeds!r} with init_fn=None."
    )
  s = np.asarray(seeds)
  if s.shape != (n,) or s.dtype.kind not in "iu" or np.any(s < 0) or np.any(s >= 2**32):
    raise ValueError(
      f"{fn}: `seeds` must hold one integer in [0, 2**32) per lane ({n}), got seeds={seeds!r}."
    )
  return s.astype(np.uint32)


class Population:
  """n training lanes on the device(s); built by :func:`start`. Lane i is row i of every array.

  Attributes (read-only; NumPy): ``size`` (lanes), ``hparams`` (``{name: [size]}``, as the lanes see
  them: int32 or float32), ``seeds`` (``[size]``), ``steps`` (``[size]``: steps each lane has been
  trained, counting the steps of the lane it was copied from), ``step`` (the population's clock: steps
  advanced so far; batch ``t % num_batches`` feeds step t), ``steps_trained`` (total lane-steps
  computed on unmasked lanes, the budget spent), ``alive`` (``[size]`` bool: no non-finite loss yet).
  With an iterable ``batches``, step t trains every lane on the t-th batch read.
  """

  def __init__(self, plan, n: int, fn: str):
    self._plan = plan
    self._fn = fn
    self.size = n
    self.step = 0
    self.steps = np.zeros(n, np.int64)
    self.steps_trained = 0

  # ------------------------------------------------------------------ placement helpers
  @property
  def _spec(self):
    return self._plan.spec

  def _padded(self) -> int:
    d = self._plan.num_devices
    return -(-self.size // d) * d

  def _pad(self, x: np.ndarray) -> np.ndarray:
    extra = self._padded() - x.shape[0]
    return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)]) if extra else x

  def _respec(self, n: int):
    """The spec for ``n`` lanes: same functions and strategy, new per-device lane count."""
    d = self._plan.num_devices
    local = -(-n // d)
    spec = self._spec
    chunk = local if spec.chunk_size >= spec.local_configs else min(spec.chunk_size, local)
    return dataclasses.replace(spec, local_configs=local, chunk_size=chunk)

  @property
  def hparams(self) -> dict[str, np.ndarray]:
    return {k: v[: self.size].copy() for k, v in self._hp.items()}

  @property
  def seeds(self) -> np.ndarray:
    return self._seeds[: self.size].copy()

  @property
  def alive(self) -> np.ndarray:
    return _sw._fetch(self._carry[3])[: self.size].astype(bool)

  # ------------------------------------------------------------------ moves
  def advance(self, steps: int, mask: Sequence[bool] | np.ndarray | None = None) -> Advanced:
    """Trains the lanes where ``mask`` is True (default all) ``steps`` more steps from their carry.

    Lane i runs ``steps`` plain Optax steps with ``optimizer(hparams_i)`` on batches
    ``step, step + 1, ...`` (cycled), then is scored. A masked-off lane keeps its carry unchanged
    (bit for bit) and gets NaN losses and score. One program per (lane count, ``steps``).
    """
    fn = self._fn
    steps = int(steps)
    if steps < 0:
      raise ValueError(f"{fn}: `steps` must be >= 0, got steps={steps}.")
    if mask is None:
      m = np.ones(self.size, bool)
    else:
      m = np.asarray(mask)
      if m.shape != (self.size,) or m.dtype != bool:
        raise ValueError(
          f"{fn}: `mask` must be a bool array with one entry per lane ({self.size}), got {mask!r}."
        )
    mp = self._put_exact(np.concatenate([m, np.zeros(self._padded() - self.size, bool)]))
    plan = self._plan
    if self._stream is None:
      score_data = None if self._spec.eval_fn is not None else plan.batches
      carry, losses, score = _advance(
        self._carry, self._hp_dev, mp, plan.batches, score_data, plan.eval_batches,
        jnp.asarray(self.step, jnp.int32), spec=self._spec, length=steps,
      )  # fmt: skip
      self._carry = carry
    else:
      losses, score = self._advance_streamed(steps, mp)
    self.step += steps
    self.steps = self.steps + steps * m
    self.steps_trained += steps * int(m.sum())
    return Advanced(_sw._fetch(losses)[: self.size], _sw._fetch(score)[: self.size])

  def _advance_streamed(self, steps: int, mask):
    """``advance`` on an iterable ``batches``: ``chunk_steps`` batches at a time are read, stacked and
    trained by one scan (the next chunk is read and sent while one runs: three chunks in memory at
    most); the score comes after the last chunk, on it when there is no ``eval_fn``."""
    plan, spec, fn = self._plan, self._spec, self._fn
    if steps == 0:  # a score, no training: on the last chunk read
      if self._last is None and spec.eval_fn is None:
        raise ValueError(
          f"{fn}: with an iterable `batches` and no `eval_fn`, a lane is scored on the batches it last "
          "trained on: advance at least one step first."
        )
      last = self._last
      empty = (
        jax.tree_util.tree_map(lambda x: x[:0], last)
        if last is not None
        else _sw._place(self._empty, spec.mesh)
      )
      carry, losses, score = _advance(
        self._carry, self._hp_dev, mask, empty, None if spec.eval_fn is not None else last, plan.eval_batches,
        jnp.asarray(self.step, jnp.int32), spec=spec, length=0,
      )  # fmt: skip
      self._carry = carry
      return losses, score
    parts = _sw._parts(steps, self._chunk_steps, None)
    data = _sw._place(self._stream.chunk(parts[0][1]), spec.mesh)
    rows = []
    for n, (t0, length) in enumerate(parts):
      last = n + 1 == len(parts)
      score_data = data if last and spec.eval_fn is None else None
      carry, losses, score = _advance(
        self._carry, self._hp_dev, mask, data, score_data, plan.eval_batches,
        jnp.asarray(self.step + t0, jnp.int32), spec=spec, length=length, score=last,
      )  # fmt: skip
      self._carry = carry
      if last:
        self._last = data
      else:
        data = _sw._place(self._stream.chunk(parts[n + 1][1]), spec.mesh)  # read and sent while this runs
      if rows:  # else the loop would read the whole stream ahead of the device; the chunk before this
        jax.block_until_ready(rows[-1])  # one, so that one chunk stays queued (as in sweep's _run)
      rows.append(losses)
    return (rows[0] if len(rows) == 1 else jnp.concatenate(rows, axis=1)), score

  def evaluate(self) -> np.ndarray:
    """The score of every lane now (``advance(0).score``), without training."""
    return self.advance(0).score

  def _put_exact(self, x: np.ndarray):
    mesh = self._spec.mesh
    if mesh is None:
      return jnp.asarray(x)
    return _sw._put(x, NamedSharding(mesh, P(tuple(mesh.axis_names))))

  def _take(self, idx: np.ndarray, n: int):
    """Rows ``idx`` (``[n]``, into the current lanes) of the carry, hparams, seeds and steps."""
    idx = np.asarray(idx, np.int64)
    old_size = self.size
    self.size = n
    if n != old_size:
      self._plan = dataclasses.replace(self._plan, spec=self._respec(n))
    pidx = self._pad(idx)
    carry = _gather(self._carry, jnp.asarray(pidx, jnp.int32))
    mesh = self._spec.mesh
    if mesh is not None:
      carry = jax.device_put(carry, NamedSharding(mesh, P(tuple(mesh.axis_names))))
    self._carry = carry
    self._hp = {k: v[pidx] for k, v in self._hp.items()}
    self._hp_dev = {k: self._put_exact(v) for k, v in self._hp.items()}
    self._seeds = self._seeds[pidx]
    self.steps = self.steps[idx]

  def select(self, lanes: Sequence[int] | np.ndarray) -> Population:
    """Keeps lanes ``lanes`` (indices, in that order; the population shrinks or reorders), each
    continuing from its carry. One gather program per (old, new) lane count. Returns ``self``."""
    idx = self._check_lanes(lanes, "lanes")
    if idx.size == 0:
      raise ValueError(f"{self._fn}: `lanes` must keep at least one lane, got lanes={lanes!r}.")
    self._take(idx, int(idx.size))
    return self

  def copy(self, dst, src, hparams: Mapping[str, Any] | None = None) -> Population:
    """Lanes ``dst`` become copies of lanes ``src`` (carry rows, bit for bit: params, optimizer state,
    alive flag, steps, seed), then take ``hparams`` (``{name: [len(dst)] values}``; names left out keep
    the source's). A fixed-size gather: one program per lane count. Returns ``self``."""
    dst = self._check_lanes(dst, "dst")
    src = self._check_lanes(src, "src")
    if dst.shape != src.shape or len(set(dst.tolist())) != dst.size:
      raise ValueError(
        f"{self._fn}: `dst` must be distinct lanes, as many as `src`, got dst={dst!r}, src={src!r}."
      )
    idx = np.arange(self.size)
    idx[dst] = src
    self._take(idx, self.size)
    if hparams:
      self.set_hparams(dst, hparams)
    return self

  def set_hparams(self, lanes, hparams: Mapping[str, Any]) -> Population:
    """Gives lanes ``lanes`` new hyperparameter values (``{name: [len(lanes)] values}``), cast to the
    column's dtype (an integer column rounds). The carry is untouched. Returns ``self``."""
    lanes = self._check_lanes(lanes, "lanes")
    for k, v in hparams.items():
      if k not in self._hp:
        raise ValueError(f"{self._fn}: unknown hyperparameter {k!r}; the lanes have {sorted(self._hp)}.")
      v = np.asarray(v)
      if v.shape != lanes.shape:
        raise ValueError(
          f"{self._fn}: `hparams[{k!r}]` must have one value per lane ({lanes.size}), got {v!r}."
        )
      col = self._hp[k].copy()
      col[lanes] = np.round(v) if col.dtype.kind in "iu" else v
      col = col[: self.size]
      self._hp[k] = self._pad(col)
      self._hp_dev[k] = self._put_exact(self._hp[k])
    return self

  def _check_lanes(self, lanes, name) -> np.ndarray:
    idx = np.asarray(lanes)
    if idx.ndim != 1 or (
      idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= self.size)
    ):
      raise ValueError(
        f"{self._fn}: `{name}` must be a 1-D array of lane indices in [0, {self.size}), got {name}={lanes!r}."
      )
    return idx.astype(np.int64)

  # ------------------------------------------------------------------ results
  def finalize(self) -> dict[str, np.ndarray]:
    """``{"train_loss": [size], "eval": [size] (with an eval_fn)}`` of the lanes now: the mean loss over
    every training batch and ``eval_fn``'s value, NaN for a diverged lane (``sweep``'s final numbers)."""
    plan = self._plan
    data = plan.batches
    if self._stream is not None:
      if self._last is None:
        raise ValueError(f"{self._fn}: with an iterable `batches`, finalize after at least one step.")
      data = self._last
    out = _sw._run_final(self._carry, data, plan.eval_batches, spec=self._spec)
    return {k: _sw._fetch(v)[: self.size] for k, v in out.items()}

  def params(self, lanes=None):
    """The params of lanes ``lanes`` (default all), as the pytree given, with a leading lane axis; an
    int gives one lane's params without that axis."""
    return self._rows(lanes, params=True)

  def opt_state(self, lanes=None):
    """The optimizer state of lanes ``lanes`` (default all); an int gives one lane's."""
    return self._rows(lanes, params=False)

  def _rows(self, lanes, params: bool):
    train, frozen, state, _ = self._carry
    one = isinstance(lanes, (int, np.integer))
    idx = np.arange(self.size) if lanes is None else self._check_lanes(np.atleast_1d(lanes), "lanes")
    sel = (int(idx[0]),) if one else (jnp.asarray(idx),)
    take = functools.partial(jax.tree_util.tree_map, lambda x: x[sel] if _loop._is_array(x) else x)
    if params:
      return self._spec.split.merge(take(train), take(frozen))
    return take(state)

  def __repr__(self) -> str:
    return (
      f"Population({self.size} lanes, hparams {sorted(self._hp)}, step {self.step}, "
      f"steps_trained {self.steps_trained}, strategy {_sw._strategy(self._spec.chunk_size, self._spec.local_configs)!r})"
    )


def start(
  loss_fn: Callable[[Any, Any], jax.Array],
  params: Any,
  batches: Any,
  *,
  optimizer: Callable[[dict], Any],
  hparams: Mapping[str, Any],
  seeds: Sequence[int] | None = None,
  init_fn: Callable[[jax.Array], Any] | None = None,
  eval_fn: Callable[..., jax.Array] | None = None,
  eval_mode: str | None = None,
  eval_batches: Any = None,
  max_parallel: int | None = None,
  mesh=None,
  chunk_steps: int | None = None,
  fn: str = "search",
) -> Population:
  """Starts a population: lane i gets ``hparams[name][i]`` and seed ``seeds[i]`` and is initialised
  as a :func:`lr_jax.sweep` run (``optimizer(h).init(params)``, or ``init_fn(jax.random.key(seed))``).

  Args are those of :func:`lr_jax.sweep`, except ``hparams`` (``{name: [n] values}``, numbers; integer
  columns are int32, others float32) and ``seeds`` (one per lane; default ``0..n-1`` with an
  ``init_fn``). Stacked ``batches`` (or a list of batches) are indexed by the population's clock
  (step t uses batch ``t % n``); an iterable is read as the clock advances, ``chunk_steps`` batches
  at a time (as in ``sweep``), every lane training on the same batch at the same step, and a score
  without ``eval_fn`` is then the mean loss over the last chunk read. ``fn`` names the caller in
  error messages.
  """
  cols, n = _columns(hparams, fn)
  _sw._check_functions(loss_fn, optimizer, eval_fn, eval_mode, init_fn, fn=fn)
  lane_seeds = _lane_seeds(seeds, n, init_fn, fn)
  grid = [{k: v[i].item() for k, v in cols.items()} for i in range(n)]
  try:
    args = _sw._check_arguments(
      loss_fn, params, batches, optimizer, grid, 1, init_fn, None, eval_fn, eval_mode, eval_batches,
      None, True, chunk_steps, max_parallel, mesh, False,
    )  # fmt: skip
  except ValueError as e:
    msg = str(e)
    raise ValueError(f"{fn}: {msg.removeprefix('sweep: ')}") from None
  plan = _sw._plan(args, loss_fn, optimizer, eval_fn, init_fn, mesh)
  pop = Population(plan, n, fn)
  pop._stream, pop._chunk_steps, pop._last = args.stream, args.chunk_steps, None
  if args.stream is not None:
    args.stream.fn = fn  # its errors (a source that runs out, a batch of another shape) name the caller
    # a zero-step chunk (an evaluation before any step reads nothing)
    pop._empty = jax.tree_util.tree_map(lambda x: np.zeros((0, *x.shape[1:]), x.dtype), args.stream.spec())
  pop._hp = {k: np.concatenate([v, np.repeat(v[-1:], pop._padded() - n)]) for k, v in args.columns.items()}
  pop._hp_dev = plan.hp
  pop._seeds = pop._pad(lane_seeds)
  pop._carry = _sw._run_init(plan.hp, pop._put_exact(pop._seeds), plan.params, spec=plan.spec)
  return pop
