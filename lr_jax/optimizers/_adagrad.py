"""Adagrad with PyTorch's numerics (lr_decay, initial accumulator 0, eps outside the square root)."""

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
  _map_leaves,
  _moment_dtype_option,
  _non_negative,
  _scale_by_learning_rate,
  _sqrt,
  _WeightDecay,
  _with_coupled_decay,
  _zeros,
)
from lr_jax.schedules._base import as_float

__all__ = ["ScaleByAdagradState", "adagrad", "scale_by_adagrad"]


class ScaleByAdagradState(NamedTuple):
  """State of :func:`scale_by_adagrad`."""

  count: jax.Array  # shape=(), int32; optax.safe_increment (saturates at 2**31-1)
  sum_of_squares: optax.Updates  # G, same tree as params, starts at initial_accumulator_value


def _scale_by_adagrad(
  lr_decay, weight_decay, initial_accumulator_value, eps, eps_in_sqrt, moment_dtype, mask, fn
):
  lr_decay, ok_lrd = _non_negative(lr_decay, fn=fn, name="lr_decay")
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  initial_accumulator_value, ok_acc = _non_negative(
    initial_accumulator_value, fn=fn, name="initial_accumulator_value"
  )
  eps, ok_eps = _non_negative(eps, fn=fn, name="eps")
  eps_in_sqrt = flag(eps_in_sqrt, fn=fn, name="eps_in_sqrt")
  moment_dtype = _moment_dtype_option(moment_dtype, fn)
  ok = all_ok(ok_lrd, ok_acc, ok_eps)

  def init_fn(params):
    return ScaleByAdagradState(
      count=jnp.zeros([], jnp.int32), sum_of_squares=_zeros(params, moment_dtype, initial_accumulator_value)
    )

  def update_fn(updates, state, params=None):
    chex.assert_trees_all_equal_shapes(updates, state.sum_of_squares)
    decays, params, ok_wd = decay.per_leaf(updates, params, state.count)
    ok_all = all_ok(ok, ok_wd)

    def leaf(g, wd, p, acc):
      dt = acc.dtype
      x = _with_coupled_decay(g, p, wd, dt)
      acc = acc + x * x
      e = as_float(eps, dt)
      denom = _sqrt(acc + e) if eps_in_sqrt else _sqrt(acc) + e
      # torch: clr = lr / (1 + (t - 1) * lr_decay), with t - 1 = count before this update
      u = x / denom / (1 + state.count.astype(dt) * as_float(lr_decay, dt))
      return poison(u, ok_all).astype(g.dtype), acc

    new_updates, acc = _map_leaves(leaf, 2, updates, _Flat(decays), params, state.sum_of_squares)
    return new_updates, ScaleByAdagradState(count=optax.safe_increment(state.count), sum_of_squares=acc)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adagrad(
  lr_decay: chex.Numeric = 0.0,
  weight_decay: chex.Numeric = 0.0,
  initial_accumulator_value: chex.Numeric = 0.0,
  eps: chex.Numeric = 1e-10,
  *,
  eps_in_sqrt: bool = False,
  moment_dtype: Any = None,
  mask: Any = None,
) -> optax.GradientTransformation:
  """PyTorch's Adagrad direction (with its ``lr_decay`` factor), before the learning rate.

  With t = 1, 2, ... the update number and ``G_0 = initial_accumulator_value``::

      g   <- g + weight_decay * p
      G   <- G + g^2
      u   <- g / (sqrt(G) + eps) / (1 + (t - 1) * lr_decay)

  so that ``p <- p - lr_t * u`` after ``optax.scale_by_learning_rate`` is exactly
  ``torch.optim.Adagrad`` (``clr = lr / (1 + (t - 1) * lr_decay)``). ``eps_in_sqrt=True`` gives
  Optax's ``g / sqrt(G + eps)`` instead; ``optax.scale_by_rss`` equals
  ``scale_by_adagrad(initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True)``.

  Args:
    lr_decay: >= 0, the 1/t decay of the step size.
    weight_decay: >= 0, the coupled L2 penalty: a number or a schedule ``step -> value``
      (update k, counted from 0, uses ``weight_decay(k)``). ``params`` must be passed to
      ``update`` when it is non-zero; a traced non-zero value without ``params`` gives NaN updates.
    initial_accumulator_value: >= 0, the start value of ``G`` (PyTorch 0, Optax 0.1).
    eps: >= 0, added to ``sqrt(G)`` (or to ``G`` with ``eps_in_sqrt``).
    eps_in_sqrt: Optax's placement of ``eps`` (inside the square root).
    moment_dtype: dtype of ``G``: None (default) is at least float32; "params" keeps the
      parameters' dtype; or any floating dtype (a string such as "bfloat16" under
      ``optax.inject_hyperparams``, which takes callables such as ``jnp.bfloat16`` for schedules).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools``. Leaves where it
      is False get no decay term but still the full optimizer update (unlike ``optax.masked``,
      which passes their raw gradients through). Under ``optax.inject_hyperparams`` give a callable
      mask in ``static_args``.

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`ScaleByAdagradState`.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the
      updates NaN instead.

  References:
    Duchi et al., `Adaptive Subgradient Methods for Online Learning and Stochastic Optimization
    <https://jmlr.org/papers/v12/duchi11a.html>`_, JMLR 2011.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.scale_by_adagrad()
    >>> state = tx.init(jnp.zeros(1))
    >>> u, state = tx.update(jnp.array([3.0]), state)
    >>> u, state = tx.update(jnp.array([4.0]), state)
    >>> print(f"{float(u[0]):.2f}")
    0.80
  """
  return _scale_by_adagrad(
    lr_decay,
    weight_decay,
    initial_accumulator_value,
    eps,
    eps_in_sqrt,
    moment_dtype,
    mask,
    "scale_by_adagrad",
  )


def adagrad(
  learning_rate: optax.ScalarOrSchedule = 1e-2,
  lr_decay: chex.Numeric = 0.0,
  weight_decay: chex.Numeric = 0.0,
  initial_accumulator_value: chex.Numeric = 0.0,
  eps: chex.Numeric = 1e-10,
  *,
  eps_in_sqrt: bool = False,
  moment_dtype: Any = None,
  mask: Any = None,
) -> optax.GradientTransformation:
  """Adagrad with PyTorch's numerics (``torch.optim.Adagrad``).

  ``optax.chain(scale_by_adagrad(...), optax.scale_by_learning_rate(learning_rate))``; with t = 1,
  2, ... the update number::

      g <- g + weight_decay * p
      G <- G + g^2                                    (G_0 = initial_accumulator_value)
      p <- p - lr_t / (1 + (t - 1) * lr_decay) * g / (sqrt(G) + eps)

  Twin: ``torch.optim.Adagrad(params, lr, lr_decay, weight_decay, initial_accumulator_value, eps)``;
  with a schedule, update k (counted from 0) uses ``learning_rate(k)`` in place of ``lr``, like a
  torch scheduler stepped after each update. Differences from ``optax.adagrad``: Optax starts ``G``
  at 0.1 (here 0, like PyTorch), puts ``eps`` inside the square root (``eps_in_sqrt=True`` gives
  that form) with default 1e-7, and has no ``lr_decay`` or ``weight_decay``.
  ``adagrad(lr, initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True)`` equals
  ``optax.adagrad(lr)``.

  Args:
    learning_rate: a float, an array, a traced value or a schedule (lr_jax's or Optax's); >= 0.
      An lr_jax schedule with concrete hyperparameters is evaluated at construction (every step
      below 4096, a log grid up to 2**31 - 1, and its whole-number hyperparameters +-1) and a
      negative value raises; plain callables are not called.
    lr_decay: >= 0, the 1/t decay of the step size.
    weight_decay: >= 0, the coupled L2 penalty: a number or a schedule ``step -> value``
      (update k, counted from 0, uses ``weight_decay(k)``). ``params`` must be passed to
      ``update`` when it is non-zero; a traced non-zero value without ``params`` gives NaN updates.
    initial_accumulator_value: >= 0, the start value of the sum of squares.
    eps: >= 0, added to the square root (or inside it with ``eps_in_sqrt``).
    eps_in_sqrt: Optax's placement of ``eps``.
    moment_dtype: dtype of the accumulator (see :func:`scale_by_adagrad`).
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
    Duchi et al., `Adaptive Subgradient Methods for Online Learning and Stochastic Optimization
    <https://jmlr.org/papers/v12/duchi11a.html>`_, JMLR 2011.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.adagrad(0.1)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> u, state = tx.update(jnp.array([2.0]), state, params)
    >>> print(f"{float(u[0]):.2f}")
    -0.10
  """
  fn = "adagrad"
  lr = _learning_rate(learning_rate, fn)
  return optax.chain(
    _scale_by_adagrad(
      lr_decay, weight_decay, initial_accumulator_value, eps, eps_in_sqrt, moment_dtype, mask, fn
    ),
    _scale_by_learning_rate(lr),
  )
