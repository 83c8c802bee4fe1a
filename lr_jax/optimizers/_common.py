"""Private helpers shared by the optimizer modules: learning-rate validation and scaling, moment
dtypes, the coupled weight-decay term and per-leaf mapping."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_jax._validation import check, is_traced, number, poison
from lr_jax.schedules._base import as_float


def _static_zero(x) -> bool:
  """True only for a plain Python ``int``/``float`` equal to 0 (never for arrays or tracers).

  Decides *structure* (is a buffer kept, is the weight-decay term computed); arrays and tracers
  always get the general path, so the state's structure never depends on a traced value.
  """
  return isinstance(x, (int, float)) and not isinstance(x, bool) and x == 0


def _learning_rate(learning_rate, fn: str):
  """Validates a concrete learning rate (>= 0); a traced negative one becomes NaN.

  A schedule (anything that is not a number) is passed through untouched: it was validated by its
  own constructor, and ``optax.scale_by_learning_rate`` decides how to apply it.
  """
  is_number = isinstance(learning_rate, (numbers.Real, np.ndarray, np.generic, jax.Array, str, bytes))
  if not (is_number or learning_rate is None):
    if callable(learning_rate) and not isinstance(learning_rate, optax.GradientTransformation):
      return learning_rate
    raise ValueError(
      f"{fn}: `learning_rate` must be a number, an array or a schedule (a callable step -> rate), "
      f"got learning_rate={learning_rate!r}."
    )
  lr = number(learning_rate, fn=fn, name="learning_rate")
  ok = check(lr >= 0, fn=fn, must="`learning_rate` must be >= 0", learning_rate=lr)
  return poison(lr, ok)


def _scale_by_learning_rate(learning_rate) -> optax.GradientTransformation:
  """``optax.scale_by_learning_rate``, keeping each update's dtype (bf16 params, bf16 updates)."""
  inner = optax.scale_by_learning_rate(learning_rate)

  def update_fn(updates, state, params=None):
    scaled, state = inner.update(updates, state, params)
    return jax.tree.map(lambda s, u: s.astype(u.dtype), scaled, updates), state

  return optax.GradientTransformation(inner.init, update_fn)


def _moment_dtype_option(moment_dtype, fn: str):
  """Checks the static ``moment_dtype`` option: None, "params" or a floating dtype."""
  if moment_dtype is None or (isinstance(moment_dtype, str) and moment_dtype == "params"):
    return moment_dtype
  try:
    dt = jnp.dtype(moment_dtype)
  except TypeError:
    dt = None
  if dt is None or not jnp.issubdtype(dt, jnp.floating):
    raise ValueError(
      f"{fn}: `moment_dtype` must be None, 'params' or a floating dtype, got moment_dtype={moment_dtype!r}."
    )
  return dt


def _moment_dtype(dtype, moment_dtype) -> jnp.dtype:
  """The dtype of a moment for a parameter of ``dtype``.

  None: at least float32 (bf16/f16 params get float32 moments, float64 keeps float64);
  "params": the parameter's own dtype; otherwise the given dtype.
  """
  if moment_dtype is None:
    return jnp.promote_types(dtype, jnp.float32)
  if isinstance(moment_dtype, str):
    return jnp.dtype(dtype)
  return jnp.dtype(moment_dtype)


def _zeros(params, moment_dtype, fill=0.0):
  """A moment tree mirroring ``params`` (filled with ``fill``) in the moment dtype."""

  def one(p):
    dt = _moment_dtype(p.dtype, moment_dtype)
    return jnp.full(jnp.shape(p), as_float(fill, dt), dt)

  return jax.tree.map(one, params)


def _params_for_decay(params, updates, weight_decay, fn: str):
  """The params tree if weight decay is used (raising if it was not passed), else ``updates``."""
  if _static_zero(weight_decay):
    return updates  # a placeholder of the right structure; never read
  if params is None:
    raise ValueError(f"{fn}: `params` must be passed to update() when weight_decay is used, got params=None.")
  return params


def _with_coupled_decay(g, p, weight_decay, dt, use_decay: bool):
  """``g`` cast to ``dt``, plus the coupled L2 term ``weight_decay * p`` when ``use_decay`` (static)."""
  x = g.astype(dt)
  if use_decay:
    x = x + as_float(weight_decay, dt) * p.astype(dt)
  return x


def _unit_interval(value, *, fn: str, name: str, closed: bool = False):
  """Validates ``value`` in [0, 1) (or [0, 1] with ``closed``); returns (value, ok)."""
  value = number(value, fn=fn, name=name)
  upper = (value <= 1) if closed else (value < 1)
  must = f"`{name}` must be in [0, 1{']' if closed else ')'}"
  return value, check((value >= 0) & upper, fn=fn, must=must, **{name: value})


def _non_negative(value, *, fn: str, name: str):
  """Validates ``value`` >= 0; returns (value, ok)."""
  value = number(value, fn=fn, name=name)
  return value, check(value >= 0, fn=fn, must=f"`{name}` must be >= 0", **{name: value})


def _whole_at_least(value, minimum: int, *, fn: str, name: str):
  """Validates a whole number >= ``minimum`` (patience, counts); returns (value, ok).

  Concrete values are checked by ``number(integer=True)`` and ``check``; a traced value must also
  be whole, which is folded into ``ok`` (a NaN lane through ``poison``).
  """
  value = number(value, fn=fn, name=name, integer=True)
  ok = check(value >= minimum, fn=fn, must=f"`{name}` must be >= {minimum}", **{name: value})
  if is_traced(value):
    ok = ok & (jnp.round(value) == value)
  return value, ok


def _map_leaves(fn, n_out: int, updates, *trees):
  """Calls ``fn(u, *xs)`` per leaf of ``updates`` (a ``None`` tree gives ``None`` leaves).

  ``fn`` returns a tuple of ``n_out`` values; value ``i`` of every leaf is gathered into tree ``i``
  (same structure as ``updates``), and the ``n_out`` trees are returned as a tuple.
  """
  treedef = jax.tree.structure(updates)
  n = treedef.num_leaves
  flats = [[None] * n if t is None else treedef.flatten_up_to(t) for t in trees]
  outs = [fn(u, *xs) for u, *xs in zip(treedef.flatten_up_to(updates), *flats, strict=True)]
  cols = list(zip(*outs, strict=True)) if outs else [()] * n_out
  return tuple(treedef.unflatten(list(col)) for col in cols)


def _lerp(start, end, weight):
  """``torch.lerp`` to the rounding: ``start + w*(end-start)`` if w < 0.5 else ``end - (end-start)*(1-w)``."""
  diff = end - start
  return jnp.where(weight < 0.5, start + weight * diff, end - diff * (1 - weight))
