"""The training plumbing every tool shares: batch checks, the one step body, chunked runs with progress.

``lr_find``, ``sweep`` and ``tasks.fit`` all train the same way (a plain Optax loop written as a
``lax.scan``)::

    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)

That step is :func:`train_step`. The rest of this module prepares ``batches`` (a pytree of arrays
whose leading axis indexes mini-batches, or a Python list of batches, which is stacked), checks that
``loss_fn`` returns a real scalar without running it, and runs a scan either as one program or in
about 20 chunks between progress-bar updates (:func:`run_chunked`).
"""

from __future__ import annotations

import functools
import math
import sys
import time
import types
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

# --------------------------------------------------------------------------------------------------
# Batches.


def _is_batch_list(batches) -> bool:
  """A Python list of batches (what a data loader gives): every element a container of arrays."""
  return (
    isinstance(batches, list)
    and len(batches) > 0
    and all(isinstance(b, (tuple, list, dict)) for b in batches)
  )


def _stack(batches: list, fn: str):
  """Stacks a list of same-shaped batches into one pytree with a leading batch-index axis."""
  first = jax.tree_util.tree_structure(batches[0])
  shapes0 = [np.shape(x) for x in jax.tree_util.tree_leaves(batches[0])]
  for i, b in enumerate(batches):
    if jax.tree_util.tree_structure(b) != first:
      raise ValueError(
        f"{fn}: every batch in the list `batches` must have the same structure, got batch 0 with "
        f"{first} and batch {i} with {jax.tree_util.tree_structure(b)}."
      )
    shapes = [np.shape(x) for x in jax.tree_util.tree_leaves(b)]
    if shapes != shapes0:
      raise ValueError(
        f"{fn}: the batches of a list `batches` are stacked, so they must all have the same shapes, "
        f"got leaf shapes {shapes0} for batch 0 and {shapes} for batch {i} "
        "(drop the last, smaller batch, e.g. drop_last=True)."
      )
  return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *batches)


def prepare_batches(batches, fn: str, *, stacklevel: int = 4) -> tuple[Any, int]:
  """Checks ``batches`` and returns ``(batches as JAX arrays, number of batches)``.

  ``batches`` is a pytree of arrays whose leading axis indexes mini-batches (every leaf the same
  length), or a Python list of batches with identical shapes, which is stacked into that form.
  A batch in which some leaf is a scalar (``(X, y)`` with ``X`` of shape ``[n, d]`` and ``y`` of
  shape ``[n]`` passed as is: each "batch" one example) gets a warning, since it usually means the
  data were not cut into mini-batches.

  Raises:
    ValueError: no leaves, a scalar leaf, leaves with different leading axes, zero batches, or a list
      of batches that differ in structure or shape.
  """
  if _is_batch_list(batches):
    batches = _stack(batches, fn)
  leaves = jax.tree_util.tree_leaves(batches)
  if not leaves:
    raise ValueError(
      f"{fn}: `batches` must be a pytree of arrays with a leading batch axis, got batches={batches!r}."
    )
  shapes = [np.shape(x) for x in leaves]
  if any(len(s) == 0 for s in shapes):
    raise ValueError(
      f"{fn}: `batches` leaves must have a leading axis indexing batches, got leaf shapes {shapes}."
    )
  lead = {s[0] for s in shapes}
  if len(lead) != 1:
    raise ValueError(
      f"{fn}: `batches` leaves must share their leading axis, got leading axes {sorted(lead)}."
    )
  n = lead.pop()
  if n < 1:
    raise ValueError(f"{fn}: `batches` must hold at least one batch, got leading axis 0.")
  if any(len(s) == 1 for s in shapes) and any(len(s) > 1 for s in shapes):
    warnings.warn(
      f"{fn}: each batch holds a single example (leaf shapes per batch {[s[1:] for s in shapes]}): "
      f"the leading axis of `batches` indexes batches, so {n} batches of one example each are used. "
      "Stack mini-batches (e.g. X.reshape(num_batches, batch_size, ...)), or pass one full batch as "
      "(X[None], y[None]).",
      UserWarning,
      stacklevel=stacklevel,
    )
  return jax.tree_util.tree_map(jnp.asarray, batches), n


def batch_spec(batches):
  """The abstract shape of one batch (``ShapeDtypeStruct`` leaves)."""
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x)[1:], jnp.result_type(x)), batches)


def take(batches, i):
  """Batch ``i`` (a traced index) of stacked ``batches``."""
  return jax.tree_util.tree_map(lambda b: b[i], batches)


def plain_number(v):
  """A NumPy or JAX scalar as a Python number, for tables and results: ``np.int64(10)`` -> ``10``, and a
  float narrower than float64 by its shortest repr (``np.float32(0.1)`` -> ``0.1``, which rounds back
  to the same float32; its exact value would show as ``0.10000000149011612``); anything else as it is."""
  if not (isinstance(v, np.generic) or (isinstance(v, (np.ndarray, jax.Array)) and np.ndim(v) == 0)):
    return v
  v = np.asarray(v)[()]  # a NumPy scalar
  if isinstance(v, np.floating) and v.dtype.itemsize < 8:
    return float(str(v))
  return v.item()


_EVAL_SHAPE_CACHE: dict = {}
_EVAL_SHAPE_CACHE_SIZE = 128


def _abstract_signature(tree):
  """The treedef and every leaf's (shape, dtype, weak type): all that ``jax.eval_shape`` sees of
  ``tree``; None when a leaf is not an array or a ``ShapeDtypeStruct`` (then nothing is cached)."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  sig = []
  for x in leaves:
    if not isinstance(x, (jax.Array, np.ndarray, jax.ShapeDtypeStruct)):
      return None
    sig.append((tuple(x.shape), x.dtype, bool(getattr(x, "weak_type", False))))
  return treedef, tuple(sig)


def cached_eval_shape(key, fn: Callable, *args):
  """``jax.eval_shape(fn, *args)``, remembered under ``key`` (what ``fn`` computes: e.g. the
  :class:`SameCode` of the user's function and the :class:`ParamSplit`) and the arguments' shapes and
  dtypes, so that a second call with the same function and shapes does not trace it again (2-4 ms
  of host work each, as much as a short compiled run). ``key=None``, an unhashable key or a
  non-array leaf: traced every time. A failing trace is not remembered (it raises again)."""
  sigs = [_abstract_signature(a) for a in args]
  if key is None or any(s is None for s in sigs):
    return jax.eval_shape(fn, *args)
  # the tracing context that decides shapes, dtypes and errors: float64 under jax.enable_x64 (what
  # jnp.result_type(float) gives), and the promotion rules (jax.numpy_dtype_promotion("strict") refuses
  # what "standard" allows)
  full = (key, tuple(sigs), jnp.result_type(float), jax.config.jax_numpy_dtype_promotion)
  try:
    out = _EVAL_SHAPE_CACHE.pop(full)  # popped and set again below: the most recently used comes last
  except TypeError:  # an unhashable key
    return jax.eval_shape(fn, *args)
  except KeyError:
    out = jax.eval_shape(fn, *args)
  _EVAL_SHAPE_CACHE[full] = out
  if len(_EVAL_SHAPE_CACHE) > _EVAL_SHAPE_CACHE_SIZE:
    del _EVAL_SHAPE_CACHE[next(iter(_EVAL_SHAPE_CACHE))]
  return out


def check_scalar_loss(loss_fn, params, batches, fn: str, what: str = "batches", like=None, key=None):
  """Checks (abstractly, without running it) that ``loss_fn(params, batch)`` is a real scalar; its dtype.

  An exception of ``loss_fn`` on one batch of ``batches`` (a batch of the wrong shape, unstacked data)
  becomes a ``ValueError`` naming ``fn``, ``what`` (the argument's name) and the batch's leaves (and
  those of a batch of ``like``, the training batches, when ``batches`` are held-out ones), with the
  exception as its cause, instead of a shape error from deep inside the user's model. ``key``: what
  ``loss_fn`` computes, to remember the check (:func:`cached_eval_shape`).
  """
  if not callable(loss_fn):
    raise ValueError(
      f"{fn}: `loss_fn` must be a function (params, batch) -> scalar, got loss_fn={loss_fn!r}."
    )
  spec = batch_spec(batches)
  try:
    out = cached_eval_shape(key, loss_fn, params, spec)
  except Exception as e:
    leaves = lambda b: [f"{x.dtype}{list(x.shape)}" for x in jax.tree_util.tree_leaves(batch_spec(b))]
    other = "" if like is None else f", where a batch of `batches` has {leaves(like)}"
    raise ValueError(
      f"{fn}: `loss_fn(params, batch)` fails on a batch of `{what}` (leaves {leaves(batches)}{other}; the "
      f"leading axis of `{what}` indexes batches): {type(e).__name__}: {e}"
    ) from e
  shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
  if shape != () or not jnp.issubdtype(dtype, jnp.floating):
    got = f"shape {shape} and dtype {dtype}" if shape is not None else repr(out)
    on = "" if what == "batches" else f" on a batch of `{what}`"
    raise ValueError(f"{fn}: `loss_fn` must return a real scalar{on}, got {got}.")
  return dtype


def check_split_loss(loss_fn, split, shape, batches, fn: str, what: str = "batches"):
  """:func:`check_scalar_loss` of ``loss_fn`` on params split by ``split`` (``shape``: the abstract
  ``(trained, frozen)`` pair), remembered for the same function, split and shapes."""
  merged = lambda pf, b: loss_fn(split.merge(*pf), b)
  return check_scalar_loss(merged, shape, batches, fn, what, key=("split", SameCode(loss_fn), split))


def eval_output(eval_fn, split, shape, eval_batches=None):
  """The abstract value of ``eval_fn(params)``, or of ``eval_fn(params, batch)`` on a batch of
  ``eval_batches``, on params split by ``split`` (remembered as :func:`check_split_loss` is); the
  caller decides what it must be."""
  key = ("split", SameCode(eval_fn), split)
  if eval_batches is None:
    return cached_eval_shape(key, lambda pf: eval_fn(split.merge(*pf)), shape)
  return cached_eval_shape(key, lambda pf, b: eval_fn(split.merge(*pf), b), shape, batch_spec(eval_batches))


# --------------------------------------------------------------------------------------------------
# The step.


def train_step(loss_fn: Callable, tx: optax.GradientTransformation, params, state, batch):
  """One plain Optax step; returns ``(loss before the update, new params, new state)``."""
  loss, grads = jax.value_and_grad(loss_fn)(params, batch)
  updates, state = tx.update(grads, state, params)
  return loss, optax.apply_updates(params, updates), state


def mean_loss(loss_fn: Callable, params, batches) -> jax.Array:
  """The mean of ``loss_fn(params, batch)`` over every batch of stacked ``batches`` (one at a time)."""
  return jnp.mean(lax.map(lambda b: loss_fn(params, b), batches))


# --------------------------------------------------------------------------------------------------
# Progress and chunked execution.


class Progress:
  """A minimal stderr progress bar (no dependency)."""

  def __init__(self, total: int, desc: str, enabled: bool, stream=None):
    self.total, self.desc, self.enabled = total, desc, enabled
    self.stream = sys.stderr if stream is None else stream
    self.done, self.t0 = 0, time.perf_counter()
    self._draw()

  def update(self, n: int):
    self.done += n
    self._draw()

  def _draw(self):
    if not self.enabled:
      return
    width = 30
    k = int(width * self.done / max(self.total, 1))
    dt = time.perf_counter() - self.t0
    end = "\n" if self.done >= self.total else ""
    self.stream.write(f"\r{self.desc} [{'#' * k}{'.' * (width - k)}] {self.done}/{self.total} {dt:.1f}s{end}")
    self.stream.flush()


def chunks(total: int, progress: bool) -> list[tuple[int, int]]:
  """(start, length) pairs: the whole run, or about 20 equal chunks (at most 2 distinct lengths)."""
  if not progress:
    return [(0, total)]
  length = max(1, math.ceil(total / 20))
  return [(s, min(length, total - s)) for s in range(0, total, length)]


def run_chunked(total: int, progress: bool, desc: str, *, whole: Callable, init: Callable, steps: Callable):
  """Runs a scan of ``total`` steps as one program, or in chunks between progress-bar updates.

  Without progress: ``whole()``. With it: ``carry = init()``, then ``carry, rows = steps(carry, t0,
  length)`` per chunk; the rows (a pytree of arrays whose axis 1 is the step) are concatenated.

  Returns:
    ``(None, whole())`` or ``(carry, rows)``.
  """
  parts = chunks(total, progress)
  if len(parts) == 1:
    return None, whole()
  bar = Progress(total, desc, True)
  carry, rows = init(), []
  for t0, length in parts:
    carry, row = steps(carry, jnp.asarray(t0, jnp.int32), length)
    rows.append(jax.block_until_ready(row))
    bar.update(length)
  return carry, jax.tree_util.tree_map(lambda *r: jnp.concatenate(r, axis=1), *rows)


# --------------------------------------------------------------------------------------------------
# Params of any framework: the trained leaves, the frozen arrays, the static rest.


def is_trainable(x) -> bool:
  """A leaf that is trained: a JAX or NumPy array of a floating (or complex) dtype (Equinox's
  ``is_inexact_array``). Python floats, integer and key arrays, functions and other objects are not."""
  if isinstance(x, (jax.Array, np.ndarray, np.generic)):
    return jnp.issubdtype(x.dtype, jnp.inexact)
  return False


def _is_array(x) -> bool:
  return isinstance(x, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


class _Static:
  """A non-array leaf of a params pytree, compared by value when hashable, else by identity."""

  __slots__ = ("_key", "value")

  def __init__(self, value):
    self.value = value
    try:
      hash(value)
      self._key = (type(value), value)
    except TypeError:
      self._key = (type(value), _Id(value))

  def __eq__(self, other):
    return isinstance(other, _Static) and self._key == other._key

  def __hash__(self):
    return hash(self._key)


class _Id:
  """Compares by identity (and keeps the object alive, so its id stays unique)."""

  __slots__ = ("obj",)

  def __init__(self, obj):
    self.obj = obj

  def __eq__(self, other):
    return isinstance(other, _Id) and self.obj is other.obj

  def __hash__(self):
    return id(self.obj)


TRAIN, FROZEN = "train", "frozen"


class ParamSplit:
  """How a params pytree splits into trained leaves, frozen arrays and static leaves (hashable).

  ``kinds[i]`` is ``"train"`` (an inexact array: differentiated and updated), ``"frozen"`` (another
  array, e.g. an integer counter or a PRNG key: carried unchanged) or a :class:`_Static` (anything
  else, e.g. an Equinox module's activation function: part of the compiled program).
  """

  __slots__ = ("kinds", "treedef")

  def __init__(self, treedef, kinds):
    self.treedef, self.kinds = treedef, tuple(kinds)

  def __eq__(self, other):
    return isinstance(other, ParamSplit) and (self.treedef, self.kinds) == (other.treedef, other.kinds)

  def __hash__(self):
    return hash((self.treedef, self.kinds))

  def merge(self, train, frozen):
    """The full params from the trained tree (``None`` where not trained) and the frozen arrays."""
    t_leaves = self.treedef.flatten_up_to(train)
    frozen = iter(frozen)
    leaves = [
      t if k == TRAIN else next(frozen) if k == FROZEN else k.value for k, t in zip(self.kinds, t_leaves)
    ]
    return self.treedef.unflatten(leaves)


def split_params(params) -> tuple[ParamSplit, Any, tuple]:
  """``(split, train, frozen)``: as ``eqx.partition(params, eqx.is_inexact_array)``.

  ``train`` has the structure of ``params`` with ``None`` at every leaf that is not trained (what an
  Optax optimizer is given: it skips ``None``); ``frozen`` is the tuple of the other array leaves.
  ``split.merge(train, frozen)`` gives ``params`` back.
  """
  leaves, treedef = jax.tree_util.tree_flatten(params)
  kinds = [TRAIN if is_trainable(x) else FROZEN if _is_array(x) else _Static(x) for x in leaves]
  train = treedef.unflatten([x if k == TRAIN else None for k, x in zip(kinds, leaves)])
  frozen = tuple(x for k, x in zip(kinds, leaves) if k == FROZEN)
  return ParamSplit(treedef, kinds), train, frozen


def abstract_split(init_fn: Callable, key) -> tuple[ParamSplit, Any, tuple]:
  """:func:`split_params` of ``init_fn(key)``, traced abstractly (no FLOPs): as ``eqx.filter_eval_shape``."""
  box = {}

  def arrays(k):
    split, train, frozen = split_params(init_fn(k))
    box["split"] = split
    return train, frozen

  train, frozen = jax.eval_shape(arrays, key)
  return box["split"], train, frozen


# --------------------------------------------------------------------------------------------------
# Functions compared by their code, so fresh lambdas hit the compile cache.

_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def _value_key(v, depth: int):
  if isinstance(v, _SCALARS):
    return (type(v), repr(v))  # repr: -0.0 != 0.0, 1 != True
  if isinstance(v, tuple):
    return ("tuple", tuple(_value_key(x, depth) for x in v))
  if callable(v) and depth < 4:
    return _fn_key(v, depth + 1)
  return _Id(v)


def _global_names(code) -> set[str]:
  names = set(code.co_names)
  for c in code.co_consts:
    if hasattr(c, "co_names"):
      names |= _global_names(c)
  return names


def _fn_key(fn, depth: int = 0):
  """What :class:`SameCode` compares: code, defaults, closure values and referenced globals."""
  if isinstance(fn, types.FunctionType):
    cells = []
    for cell in fn.__closure__ or ():
      try:
        cells.append(_value_key(cell.cell_contents, depth))
      except ValueError:  # an empty cell
        cells.append(None)
    glob = fn.__globals__
    names = sorted(n for n in _global_names(fn.__code__) if n in glob)
    return (
      "function",
      fn.__code__,
      _value_key(fn.__defaults__ or (), depth),
      tuple(sorted((k, _value_key(v, depth)) for k, v in (fn.__kwdefaults__ or {}).items())),
      tuple(cells),
      tuple((n, _value_key(glob[n], depth)) for n in names),
    )
  if isinstance(fn, functools.partial):
    return (
      "partial",
      _value_key(fn.func, depth),
      _value_key(tuple(fn.args), depth),
      tuple(sorted((k, _value_key(v, depth)) for k, v in fn.keywords.items())),
    )
  if isinstance(fn, types.MethodType):
    return ("method", _value_key(fn.__func__, depth), _Id(fn.__self__))
  return _Id(fn)


class SameCode:
  """Wraps a function; two wrappers are equal when their functions would compute the same thing.

  Equal means: the same code object (equal by value, as Python compares code), the same defaults,
  and the same captured values -- each closure cell and each global the code names: numbers,
  strings, None and tuples of them by value, functions recursively by these rules (4 levels), any
  other object (an array, a module, a model) by identity. So ``lambda h: optax.adam(h["lr"])``
  written once and evaluated again (a loop, a notebook cell run again) is equal to the last one,
  while a lambda closing over a different float, or over a new array, is not. Used as a static
  argument of ``jax.jit``, it makes fresh lambdas of the same code reuse the compiled program.
  """

  __slots__ = ("_hash", "_key", "fn")

  def __init__(self, fn: Callable):
    self.fn = fn
    self._key = _fn_key(fn)
    try:
      self._hash = hash(self._key)
    except TypeError:  # an unhashable default or closure value: identity
      self._key = _Id(fn)
      self._hash = hash(self._key)

  def __call__(self, *args, **kwargs):
    return self.fn(*args, **kwargs)

  def __eq__(self, other):
    return isinstance(other, SameCode) and self._hash == other._hash and self._key == other._key

  def __hash__(self):
    return self._hash

  def __repr__(self):
    return f"SameCode({self.fn!r})"


# --------------------------------------------------------------------------------------------------
# Streaming: batches from any iterable, cut into chunks of steps stacked on the host.


def is_stream(batches) -> bool:
  """True for an iterable of batches that is not itself a batch pytree or a Python list of batches:
  a generator, an iterator, a data loader (anything iterable that is not a list, tuple, dict or array)."""
  if isinstance(batches, (list, tuple, dict, np.ndarray, np.generic, jax.Array, str, bytes)):
    return False
  return hasattr(batches, "__iter__") or hasattr(batches, "__next__")


class BatchStream:
  """Consumes an iterable of batches ``chunk(n)`` at a time, as host (NumPy) arrays stacked on a
  leading step axis; memory is bounded by one chunk. A re-iterable source (``iter(x) is not x``,
  e.g. a list or a PyTorch ``DataLoader``) is started again when it runs out (a new epoch); an
  iterator (a generator) that runs out raises ``ValueError``.

  Every batch must have the structure, leaf shapes and leaf dtypes of the first one (drop the last,
  smaller batch; cast every batch alike); a batch that differs is a ``ValueError`` naming its index.
  """

  def __init__(self, batches, fn: str):
    self.fn, self.source = fn, batches
    self.restartable = iter(batches) is not batches if hasattr(batches, "__iter__") else False
    self.it = iter(batches) if hasattr(batches, "__iter__") else batches
    self.consumed = 0
    first = self._next()
    self.pending = [first]
    leaves, self.treedef = jax.tree_util.tree_flatten(first)
    if not leaves:
      raise ValueError(f"{fn}: the batches of an iterable `batches` must hold arrays, got {first!r}.")
    self.shapes = [np.shape(x) for x in leaves]
    self.dtypes = [np.asarray(x).dtype for x in leaves]

  def _next(self):
    try:
      b = next(self.it)
    except StopIteration:
      if not self.restartable:
        raise ValueError(
          f"{self.fn}: the iterable `batches` ran out after {self.consumed} batches; it must yield a "
          "batch for every step (num_steps), or be re-iterable (then it is started again, an epoch)."
        ) from None
      self.it = iter(self.source)
      try:
        b = next(self.it)
      except StopIteration:
        raise ValueError(f"{self.fn}: the iterable `batches` yields no batch.") from None
    self.consumed += 1
    return b

  def spec(self):
    """One stacked batch (leading axis 1) of the first batch: what ``batch_spec`` and checks take."""
    return self.treedef.unflatten([np.asarray(x)[None] for x in jax.tree_util.tree_leaves(self.pending[0])])

  def chunk(self, n: int):
    """The next ``n`` batches stacked: a pytree of NumPy arrays of shape ``[n, *batch_shape]``."""
    out = [np.empty((n, *s), d) for s, d in zip(self.shapes, self.dtypes)]
    for j in range(n):
      b = self.pending.pop() if self.pending else self._next()
      leaves, treedef = jax.tree_util.tree_flatten(b)
      shapes = [np.shape(x) for x in leaves]
      if treedef != self.treedef or shapes != self.shapes:
        raise ValueError(
          f"{self.fn}: every batch of an iterable `batches` must have the structure and shapes of the "
          f"first, got leaf shapes {self.shapes} for batch 0 and {shapes} for batch {self.consumed - 1} "
          "(drop the last, smaller batch, e.g. drop_last=True)."
        )
      for k, (o, x) in enumerate(zip(out, leaves)):
        x = np.asarray(x)  # the one host copy of the leaf (none for a NumPy array)
        if x.dtype != o.dtype:  # assigned into `o`, it would be cast (a float batch truncated to int)
          got = [np.asarray(y).dtype if i != k else x.dtype for i, y in enumerate(leaves)]
          raise ValueError(
            f"{self.fn}: every batch of an iterable `batches` must have the dtypes of the first (the "
            f"stacked arrays take them), got leaf dtypes {[str(d) for d in self.dtypes]} for batch 0 and "
            f"{[str(d) for d in got]} for batch {self.consumed - 1} (leaf {k}: {x.dtype} where "
            f"{o.dtype} was expected)."
          )
        o[j] = x
    return self.treedef.unflatten(out)
