"""SGD with PyTorch's momentum, dampening, Nesterov and coupled weight decay."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lr_jax._validation import all_ok, check, flag, poison
from lr_jax.optimizers._common import (
  _Flat,
  _learning_rate,
  _map_leaves,
  _moment_dtype,
  _moment_dtype_option,
  _non_negative,
  _scale_by_learning_rate,
  _static_zero,
  _unit_interval,
  _WeightDecay,
  _with_coupled_decay,
  _zeros,
)
from lr_jax.schedules._base import as_float

__all__ = ["ScaleBySGDState", "scale_by_sgd", "sgd"]


class ScaleBySGDState(NamedTuple):
  """State of :func:`scale_by_sgd`."""

  count: jax.Array  # shape=(), int32; optax.safe_increment (saturates at 2**31-1)
  trace: Any  # momentum buffer, same tree as params (None when momentum is the Python number 0)


def _nesterov_ok(nesterov: bool, momentum, dampening, fn: str):
  """PyTorch's rule for Nesterov momentum: ``momentum > 0`` and ``dampening == 0`` (ValueError / NaN lane)."""
  if not nesterov:
    return True
  return check(
    (momentum > 0) & (dampening == 0),
    fn=fn,
    must="nesterov=True requires `momentum` > 0 and `dampening` == 0",
    momentum=momentum,
    dampening=dampening,
  )


def _scale_by_sgd(momentum, dampening, nesterov, weight_decay, moment_dtype, mask, fn):
  momentum, ok_m = _non_negative(momentum, fn=fn, name="momentum")
  dampening, ok_d = _unit_interval(dampening, fn=fn, name="dampening", closed=True)
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  nesterov = flag(nesterov, fn=fn, name="nesterov")
  moment_dtype = _moment_dtype_option(moment_dtype, fn)
  ok_n = _nesterov_ok(nesterov, momentum, dampening, fn)
  ok = all_ok(ok_m, ok_d, ok_n)
  use_trace = not _static_zero(momentum)

  def init_fn(params):
    trace = _zeros(params, moment_dtype) if use_trace else None
    return ScaleBySGDState(count=jnp.zeros([], jnp.int32), trace=trace)

  def update_fn(updates, state, params=None):
    if use_trace:
      chex.assert_trees_all_equal_shapes(updates, state.trace)
    decays, params, ok_wd = decay.per_leaf(updates, params, state.count)
    ok_all = all_ok(ok, ok_wd)
    first = state.count == 0

    def leaf(g, wd, p, buf):
      dt = buf.dtype if use_trace else _moment_dtype(g.dtype, moment_dtype)
      d_p = _with_coupled_decay(g, p, wd, dt)
      new_buf = None
      if use_trace:
        mom = as_float(momentum, dt)
        # torch: the first step sets buf = g (no dampening); later buf = m * buf + (1 - d) * g
        new_buf = jnp.where(first, d_p, mom * buf + (1 - as_float(dampening, dt)) * d_p)
        step = d_p + mom * new_buf if nesterov else new_buf
        d_p = jnp.where(mom != 0, step, d_p)  # torch ignores the buffer when momentum == 0
      return poison(d_p, ok_all).astype(g.dtype), new_buf

    new_updates, trace = _map_leaves(leaf, 2, updates, _Flat(decays), params, state.trace)
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
  mask: Any = None,
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
    weight_decay: >= 0, the coupled L2 penalty: a number or a schedule ``step -> value``
      (update k, counted from 0, uses ``weight_decay(k)``). ``params`` must be passed to
      ``update`` when it is non-zero; a traced non-zero value without ``params`` gives NaN updates.
    moment_dtype: dtype of the buffer: None (default) is at least float32; "params" keeps the
      parameters' dtype; or any floating dtype (give it as a string, e.g. "bfloat16", under
      ``optax.inject_hyperparams``, which takes callables such as ``jnp.bfloat16`` for schedules).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools``. Leaves where it
      is False get no decay term but still the full optimizer update (unlike ``optax.masked``,
      which passes their raw gradients through). Under ``optax.inject_hyperparams`` give a callable
      mask in ``static_args``.

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
  return _scale_by_sgd(momentum, dampening, nesterov, weight_decay, moment_dtype, mask, "scale_by_sgd")


def sgd(
  learning_rate: optax.ScalarOrSchedule,
  momentum: chex.Numeric = 0.0,
  dampening: chex.Numeric = 0.0,
  nesterov: bool = False,
  weight_decay: chex.Numeric = 0.0,
  *,
  moment_dtype: Any = None,
  mask: Any = None,
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
      An lr_jax schedule with concrete hyperparameters is evaluated at construction (every step
      below 4096, a log grid up to 2**31 - 1, and its whole-number hyperparameters +-1) and a
      negative value raises; plain callables are not called.
    momentum: momentum factor >= 0.
    dampening: in [0, 1]; ignored when ``momentum`` == 0.
    nesterov: Nesterov momentum; requires ``momentum`` > 0 and ``dampening`` == 0.
    weight_decay: >= 0, the coupled L2 penalty: a number or a schedule ``step -> value``
      (update k, counted from 0, uses ``weight_decay(k)``). ``params`` must be passed to
      ``update`` when it is non-zero; a traced non-zero value without ``params`` gives NaN updates.
    moment_dtype: dtype of the momentum buffer (see :func:`scale_by_sgd`).
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
    _scale_by_sgd(momentum, dampening, nesterov, weight_decay, moment_dtype, mask, fn),
    _scale_by_learning_rate(lr),
  )
