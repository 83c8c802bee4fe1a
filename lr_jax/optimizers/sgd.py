"""SGD with PyTorch's momentum, dampening, Nesterov and coupled weight decay.

This module also holds the small private helpers shared by the other optimizer modules
(``adagrad``, ``rmsprop``, ``adam``): learning-rate validation and scaling, moment dtypes and the
coupled weight-decay term.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_jax._validation import all_ok, check, flag, number, poison
from lr_jax.schedules._base import as_float

__all__ = ["ScaleBySGDState", "scale_by_sgd", "sgd"]


# --------------------------------------------------------------------------------------------------
# Shared private helpers (used by adagrad.py, rmsprop.py and adam.py too).
# --------------------------------------------------------------------------------------------------


def _static_zero(x) -> bool:
  """True only for a plain Python/NumPy number equal to 0 (never for arrays or tracers).

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
    return learning_rate
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


# --------------------------------------------------------------------------------------------------
# SGD
# --------------------------------------------------------------------------------------------------


class ScaleBySGDState(NamedTuple):
  """State of :func:`scale_by_sgd`."""

  count: jax.Array  # shape=(), int32; optax.safe_increment (saturates at 2**31-1)
  trace: Any  # momentum buffer, same tree as params (None when momentum is the Python number 0)


def _scale_by_sgd(momentum, dampening, nesterov, weight_decay, moment_dtype, fn):
  momentum, ok_m = _non_negative(momentum, fn=fn, name="momentum")
  dampening, ok_d = _unit_interval(dampening, fn=fn, name="dampening", closed=True)
  weight_decay, ok_wd = _non_negative(weight_decay, fn=fn, name="weight_decay")
  nesterov = flag(nesterov, fn=fn, name="nesterov")
  moment_dtype = _moment_dtype_option(moment_dtype, fn)
  ok_n = True
  if nesterov:
    ok_n = check(
      (momentum > 0) & (dampening == 0),
      fn=fn,
      must="nesterov=True requires `momentum` > 0 and `dampening` == 0",
      momentum=momentum,
      dampening=dampening,
    )
  ok = all_ok(ok_m, ok_d, ok_wd, ok_n)
  use_trace = not _static_zero(momentum)
  use_decay = not _static_zero(weight_decay)

  def init_fn(params):
    trace = _zeros(params, moment_dtype) if use_trace else None
    return ScaleBySGDState(count=jnp.zeros([], jnp.int32), trace=trace)

  def update_fn(updates, state, params=None):
    if use_trace:
      chex.assert_trees_all_equal_shapes(updates, state.trace)
    params = _params_for_decay(params, updates, weight_decay, fn)
    first = state.count == 0

    def leaf(g, p, buf):
      dt = buf.dtype if use_trace else _moment_dtype(g.dtype, moment_dtype)
      d_p = g.astype(dt)
      if use_decay:
        d_p = d_p + as_float(weight_decay, dt) * p.astype(dt)
      new_buf = None
      if use_trace:
        mom = as_float(momentum, dt)
        # torch: the first step sets buf = g (no dampening); later buf = m * buf + (1 - d) * g
        new_buf = jnp.where(first, d_p, mom * buf + (1 - as_float(dampening, dt)) * d_p)
        step = d_p + mom * new_buf if nesterov else new_buf
        d_p = jnp.where(mom != 0, step, d_p)  # torch ignores the buffer when momentum == 0
      return poison(d_p, ok).astype(g.dtype), new_buf

    new_updates, trace = _map_leaves(leaf, 2, updates, params, state.trace)
    return new_updates, ScaleBySGDState(
      count=optax.safe_increment(state.count), trace=trace if use_trace else None
    )

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_sgd(
  momentum: chex.Numeric = 0.0,
  dampening: chex.Numeric = 0.0,
  nesterov: bool = False,
  weight_decay: chex.Numeric = 0.0,
  *,
  moment_dtype: Any = None,
) -> optax.GradientTransformation:
  """PyTorch's SGD direction (momentum, dampening, Nesterov, coupled weight decay), before the LR.

  With ``g`` the gradient, ``p`` the parameter, ``mu`` = ``momentum``, ``d`` = ``dampening``::

      g   <- g + weight_decay * p
      buf <- g                              on the first update
      buf <- mu * buf + (1 - d) * g         afterwards
      u   <- g + mu * buf   if nesterov  else  buf        (u = g when mu == 0)

  Chain it with ``optax.scale_by_learning_rate`` (as :func:`sgd` does) to get
  ``p <- p - lr_t * u``, exactly ``torch.optim.SGD``: the learning rate multiplies the buffer from
  outside, so a schedule changes every step's size without rescaling the history. Optax's
  ``optax.sgd`` puts the learning rate *inside* its trace (same numbers for a constant rate,
  different with a schedule), has no dampening, and starts the trace at 0 instead of ``g``.

  Args:
    momentum: momentum factor ``mu`` >= 0 (0 disables the buffer).
    dampening: in [0, 1]; ignored when ``momentum`` == 0, like PyTorch.
    nesterov: Nesterov momentum; requires ``momentum`` > 0 and ``dampening`` == 0.
    weight_decay: >= 0, the coupled L2 term added to the gradient (``params`` must be passed).
    moment_dtype: dtype of the buffer: None (default) is at least float32; "params" keeps the
      parameters' dtype; or any floating dtype (give it as a string, e.g. "bfloat16", under
      ``optax.inject_hyperparams``, which takes callables such as ``jnp.bfloat16`` for schedules).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`ScaleBySGDState`.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the
      updates NaN instead.

  References:
    Sutskever et al., `On the importance of initialization and momentum in deep learning
    <https://proceedings.mlr.press/v28/sutskever13.html>`_, ICML 2013.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.scale_by_sgd(momentum=0.9)
    >>> state = tx.init(jnp.zeros(1))
    >>> for _ in range(2):
    ...   u, state = tx.update(jnp.ones(1), state)
    >>> print(f"{float(u[0]):.2f}")
    1.90
  """
  return _scale_by_sgd(momentum, dampening, nesterov, weight_decay, moment_dtype, "scale_by_sgd")


def sgd(
  learning_rate: optax.ScalarOrSchedule,
  momentum: chex.Numeric = 0.0,
  dampening: chex.Numeric = 0.0,
  nesterov: bool = False,
  weight_decay: chex.Numeric = 0.0,
  *,
  moment_dtype: Any = None,
) -> optax.GradientTransformation:
  """Stochastic gradient descent with PyTorch's numerics (``torch.optim.SGD``).

  ``optax.chain(scale_by_sgd(...), optax.scale_by_learning_rate(learning_rate))``::

      g   <- g + weight_decay * p
      buf <- g  (first update);  buf <- momentum * buf + (1 - dampening) * g  (afterwards)
      u   <- g + momentum * buf  if nesterov  else  buf    (u = g when momentum == 0)
      p   <- p - lr_t * u

  Twin: ``torch.optim.SGD(params, lr, momentum, dampening, weight_decay, nesterov)``; the
  parameters after k updates match it within float32 rounding, also with a schedule (update k,
  counted from 0, uses ``learning_rate(k)``, like a torch scheduler stepped after each update).
  Differences from ``optax.sgd``: the learning rate is applied outside the momentum buffer (Optax
  puts it inside its trace, which differs as soon as the rate changes over time), and there are
  dampening (PyTorch's first buffer is the undamped ``g``) and coupled weight decay. With a
  constant rate and no dampening, ``sgd(lr, momentum, nesterov=n)`` equals
  ``optax.sgd(lr, momentum, nesterov=n)``.

  Args:
    learning_rate: a float, an array, a traced value or a schedule (lr_jax's or Optax's); >= 0.
    momentum: momentum factor >= 0.
    dampening: in [0, 1]; ignored when ``momentum`` == 0.
    nesterov: Nesterov momentum; requires ``momentum`` > 0 and ``dampening`` == 0.
    weight_decay: >= 0, coupled L2 penalty (``params`` must be passed to ``update``).
    moment_dtype: dtype of the momentum buffer (see :func:`scale_by_sgd`).

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the
      updates NaN instead.

  References:
    Sutskever et al., `On the importance of initialization and momentum in deep learning
    <https://proceedings.mlr.press/v28/sutskever13.html>`_, ICML 2013.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.sgd(0.1, momentum=0.9)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> u, state = tx.update(jnp.array([2.0]), state, params)
    >>> print(f"{float(u[0]):.2f}")
    -0.20
  """
  fn = "sgd"
  lr = _learning_rate(learning_rate, fn)
  return optax.chain(
    _scale_by_sgd(momentum, dampening, nesterov, weight_decay, moment_dtype, fn),
    _scale_by_learning_rate(lr),
  )
