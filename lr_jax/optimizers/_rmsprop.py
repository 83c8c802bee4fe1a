"""RMSprop with PyTorch's numerics (eps outside the root, centered form, LR outside the momentum)."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lr_jax._validation import all_ok, flag, poison
from lr_jax.optimizers._common import (
  _Flat,
  _learning_rate,
  _lerp,
  _map_leaves,
  _moment_dtype_option,
  _non_negative,
  _scale_by_learning_rate,
  _sqrt,
  _static_zero,
  _unit_interval,
  _WeightDecay,
  _with_coupled_decay,
  _zeros,
)
from lr_jax.schedules._base import as_float

__all__ = ["ScaleByRMSPropState", "rmsprop", "scale_by_rmsprop"]


class ScaleByRMSPropState(NamedTuple):
  """State of :func:`scale_by_rmsprop`."""

  count: jax.Array  # shape=(), int32; optax.safe_increment (saturates at 2**31-1)
  nu: optax.Updates  # EMA of squared grads, same tree as params
  mu: Any  # EMA of grads (centered=True), same tree as params; else None
  trace: Any  # momentum buffer of g / avg, same tree as params; None when momentum is the Python 0


def _scale_by_rmsprop(alpha, eps, weight_decay, momentum, centered, eps_in_sqrt, moment_dtype, mask, fn):
  alpha, ok_a = _unit_interval(alpha, fn=fn, name="alpha")
  eps, ok_eps = _non_negative(eps, fn=fn, name="eps")
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  momentum, ok_m = _non_negative(momentum, fn=fn, name="momentum")
  centered = flag(centered, fn=fn, name="centered")
  eps_in_sqrt = flag(eps_in_sqrt, fn=fn, name="eps_in_sqrt")
  moment_dtype = _moment_dtype_option(moment_dtype, fn)
  ok = all_ok(ok_a, ok_eps, ok_m)
  use_trace = not _static_zero(momentum)

  def init_fn(params):
    return ScaleByRMSPropState(
      count=jnp.zeros([], jnp.int32),
      nu=_zeros(params, moment_dtype),
      mu=_zeros(params, moment_dtype) if centered else None,
      trace=_zeros(params, moment_dtype) if use_trace else None,
    )

  def update_fn(updates, state, params=None):
    chex.assert_trees_all_equal_shapes(updates, state.nu)
    if centered:
      chex.assert_trees_all_equal_shapes(updates, state.mu)
    if use_trace:
      chex.assert_trees_all_equal_shapes(updates, state.trace)
    decays, params, ok_wd = decay.per_leaf(updates, params, state.count)
    ok_all = all_ok(ok, ok_wd)

    def leaf(g, wd, p, nu, mu, buf):
      dt = nu.dtype
      x = _with_coupled_decay(g, p, wd, dt)
      a = as_float(alpha, dt)
      w = as_float(1 - alpha, dt)  # 1 - alpha before rounding, as torch computes it
      nu = a * nu + w * (x * x)
      var = nu
      if centered:
        mu = _lerp(mu, x, w)
        var = nu - mu * mu
      e = as_float(eps, dt)
      avg = _sqrt(var + e) if eps_in_sqrt else _sqrt(var) + e
      u = x / avg
      if use_trace:
        m = as_float(momentum, dt)
        buf = m * buf + u
        u = jnp.where(m > 0, buf, u)  # torch uses the buffer only when momentum > 0
      return poison(u, ok_all).astype(g.dtype), nu, mu, buf

    new_updates, nu, mu, buf = _map_leaves(
      leaf, 4, updates, _Flat(decays), params, state.nu, state.mu, state.trace
    )
    return new_updates, ScaleByRMSPropState(
      count=optax.safe_increment(state.count),
      nu=nu,
      mu=mu if centered else None,
      trace=buf if use_trace else None,
    )

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_rmsprop(
  alpha: chex.Numeric = 0.99,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  momentum: chex.Numeric = 0.0,
  centered: bool = False,
  *,
  eps_in_sqrt: bool = False,
  moment_dtype: Any = None,
  mask: Any = None,
) -> optax.GradientTransformation:
  """PyTorch's RMSprop direction (centered form, momentum on ``g / avg``), before the LR.

  ::

      g   <- g + weight_decay * p
      v   <- alpha * v + (1 - alpha) * g^2
      gm  <- alpha * gm + (1 - alpha) * g                       (centered only)
      avg <- sqrt(v - gm^2) + eps  if centered  else  sqrt(v) + eps
      buf <- momentum * buf + g / avg;  u <- buf   if momentum > 0  else  u <- g / avg

  Chained with ``optax.scale_by_learning_rate`` this is ``torch.optim.RMSprop``: the learning rate
  multiplies the momentum buffer from outside. ``eps_in_sqrt=True`` gives Optax's
  ``sqrt(v + eps)``. ``optax.scale_by_rms`` differs: default decay 0.9, eps inside the root, no
  centered/momentum (those live in ``optax.rmsprop``, with the learning rate inside the buffer).

  Args:
    alpha: the EMA decay, in [0, 1).
    eps: >= 0, added to the root (or inside it with ``eps_in_sqrt``).
    weight_decay: >= 0, the coupled L2 penalty: a number or a schedule ``step -> value``
      (update k, counted from 0, uses ``weight_decay(k)``). ``params`` must be passed to
      ``update`` when it is non-zero; a traced non-zero value without ``params`` gives NaN updates.
    momentum: >= 0; 0 disables the buffer.
    centered: divide by the root of the variance estimate ``v - gm^2`` instead of ``v``.
    eps_in_sqrt: Optax's placement of ``eps``.
    moment_dtype: dtype of the moments: None (default) is at least float32; "params" keeps the
      parameters' dtype; or any floating dtype (a string such as "bfloat16" under
      ``optax.inject_hyperparams``, which takes callables such as ``jnp.bfloat16`` for schedules).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools``. Leaves where it
      is False get no decay term but still the full optimizer update (unlike ``optax.masked``,
      which passes their raw gradients through). Under ``optax.inject_hyperparams`` give a callable
      mask in ``static_args``.

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`ScaleByRMSPropState`.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the
      updates NaN instead.

  References:
    Tieleman & Hinton, `Lecture 6.5 - RMSprop <https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf>`_,
    COURSERA: Neural Networks for Machine Learning, 2012.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.scale_by_rmsprop(alpha=0.75, eps=0.0)
    >>> state = tx.init(jnp.zeros(1))
    >>> u, state = tx.update(jnp.array([3.0]), state)
    >>> print(f"{float(u[0]):.2f}")
    2.00
  """
  return _scale_by_rmsprop(
    alpha, eps, weight_decay, momentum, centered, eps_in_sqrt, moment_dtype, mask, "scale_by_rmsprop"
  )


def rmsprop(
  learning_rate: optax.ScalarOrSchedule = 1e-2,
  alpha: chex.Numeric = 0.99,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  momentum: chex.Numeric = 0.0,
  centered: bool = False,
  *,
  eps_in_sqrt: bool = False,
  moment_dtype: Any = None,
  mask: Any = None,
) -> optax.GradientTransformation:
  """RMSprop with PyTorch's numerics (``torch.optim.RMSprop``).

  ``optax.chain(scale_by_rmsprop(...), optax.scale_by_learning_rate(learning_rate))``::

      g   <- g + weight_decay * p
      v   <- alpha * v + (1 - alpha) * g^2
      avg <- sqrt(v - gm^2) + eps  (centered, gm the EMA of g)   else  sqrt(v) + eps
      momentum > 0:  buf <- momentum * buf + g / avg;   p <- p - lr_t * buf
      otherwise:     p <- p - lr_t * g / avg

  Twin: ``torch.optim.RMSprop(params, lr, alpha, eps, weight_decay, momentum, centered)``; with a
  schedule, update k (counted from 0) uses ``learning_rate(k)``, like a torch scheduler stepped
  after each update. Differences from ``optax.rmsprop``: Optax's default decay is 0.9 (here
  ``alpha=0.99``), it puts ``eps`` inside the square root by default (``eps_in_sqrt=True`` here
  gives that), and it multiplies by the learning rate *before* the momentum buffer, which differs
  from PyTorch (and from this function) as soon as the learning rate changes over time (a schedule
  with momentum). With a constant learning rate,
  ``rmsprop(lr, alpha=d, eps_in_sqrt=False)`` and ``optax.rmsprop(lr, decay=d, eps_in_sqrt=False)``
  agree.

  Args:
    learning_rate: a float, an array, a traced value or a schedule (lr_jax's or Optax's); >= 0.
      An lr_jax schedule with concrete hyperparameters is evaluated at construction (every step
      below 4096, a log grid up to 2**31 - 1, and its whole-number hyperparameters +-1) and a
      negative value raises; plain callables are not called.
    alpha: the EMA decay, in [0, 1).
    eps: >= 0, added to the root (or inside it with ``eps_in_sqrt``).
    weight_decay: >= 0, the coupled L2 penalty: a number or a schedule ``step -> value``
      (update k, counted from 0, uses ``weight_decay(k)``). ``params`` must be passed to
      ``update`` when it is non-zero; a traced non-zero value without ``params`` gives NaN updates.
    momentum: >= 0; 0 disables the buffer.
    centered: divide by the root of the variance estimate instead of the second moment.
    eps_in_sqrt: Optax's placement of ``eps``.
    moment_dtype: dtype of the moments (see :func:`scale_by_rmsprop`).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools``. Leaves where it
      is False get no decay term but still the full optimizer update (unlike ``optax.masked``,
      which passes their raw gradients through). Under ``optax.inject_hyperparams`` give a callable
      mask in ``static_args``.

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the
      updates NaN instead.

  References:
    Tieleman & Hinton, `Lecture 6.5 - RMSprop <https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf>`_,
    COURSERA: Neural Networks for Machine Learning, 2012.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.rmsprop(0.1, alpha=0.75, eps=0.0)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> u, state = tx.update(jnp.array([3.0]), state, params)
    >>> print(f"{float(u[0]):.2f}")
    -0.20
  """
  fn = "rmsprop"
  lr = _learning_rate(learning_rate, fn)
  return optax.chain(
    _scale_by_rmsprop(alpha, eps, weight_decay, momentum, centered, eps_in_sqrt, moment_dtype, mask, fn),
    _scale_by_learning_rate(lr),
  )
