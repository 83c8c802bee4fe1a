"""``skip_nonfinite``: skip (and count) updates whose gradients hold a NaN or an inf."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from lr_jax._validation import poison
from lr_jax.optimizers._common import _whole_at_least
from lr_jax.schedules._base import as_float

__all__ = ["SkipNonfiniteState", "skip_nonfinite"]

_FN = "skip_nonfinite"


class SkipNonfiniteState(NamedTuple):
  """State of :func:`skip_nonfinite` (field names as Optax's ``ApplyIfFiniteState``)."""

  notfinite_count: jax.Array  # shape=(), int32: consecutive non-finite gradients (0 after a finite one)
  last_finite: jax.Array  # shape=(), bool: whether the last gradient was finite
  total_notfinite: jax.Array  # shape=(), int32: non-finite gradients since init (saturates at 2**31-1)
  inner_state: Any  # state of the wrapped optimizer, untouched by every skipped update


def _all_finite(tree) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.array(True)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def skip_nonfinite(
  optimizer: optax.GradientTransformation, max_consecutive: Any | None = None
) -> optax.GradientTransformationExtraArgs:
  """Wraps ``optimizer`` so that a gradient with a NaN or an inf is skipped, counted, and harmless.

  For each ``update(grads, state, params, **extra_args)``::

      finite = all(isfinite(grads))
      notfinite_count = 0 if finite else notfinite_count + 1
      apply = finite or notfinite_count > max_consecutive      (max_consecutive=None: apply = finite)
      updates, inner_state = optimizer.update(grads, ...)   if apply
                           = zeros_like(grads), inner_state  otherwise (state unchanged)

  A skipped step leaves every part of the inner state as it was: moments, step counters, schedule
  counters and a ``reduce_on_plateau`` in the chain (its ``value=`` is not seen either). Extra
  arguments such as ``value=`` are passed through to ``optimizer``. The state counts the skipped
  steps (``total_notfinite``) so a training loop can log them.

  Twin: ``optax.apply_if_finite(optimizer, max_consecutive_errors)``, with the same state fields.
  Differences: ``max_consecutive=None`` (the default) never lets a non-finite gradient through,
  where Optax's wrapper always gives up after ``max_consecutive_errors`` skips in a row and then
  writes the NaN into the state; ``max_consecutive`` may be traced (Optax's is a Python int). Only
  the gradients are checked, not the updates the optimizer makes of them: a configuration made
  invalid by traced hyperparameters still shows up as NaN updates (lr_jax's NaN lanes in a sweep).
  Both wrappers use ``lax.cond``, so the inner optimizer's state must keep its dtypes from ``init``
  to ``update`` (every lr_jax optimizer does).

  Args:
    optimizer: any ``optax.GradientTransformation`` (``ExtraArgs`` ones too).
    max_consecutive: None (default) to skip every non-finite gradient; or a whole number >= 0: after
      more than that many non-finite gradients in a row the update is applied anyway (Optax's
      behaviour, which makes a persistent fault visible as NaN parameters).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`SkipNonfiniteState`.

  Raises:
    ValueError: if ``optimizer`` is not a ``GradientTransformation`` or a concrete
      ``max_consecutive`` is not a whole number >= 0. A traced invalid ``max_consecutive`` gives NaN
      updates instead.

  References:
    Optax, `apply_if_finite
    <https://optax.readthedocs.io/en/latest/api/transformations.html#optax.apply_if_finite>`_.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.skip_nonfinite(optimizers.adam(0.1))
    >>> params = jnp.ones(2)
    >>> state = tx.init(params)
    >>> u, state = tx.update(jnp.array([1.0, jnp.nan]), state, params)
    >>> print(f"{float(jnp.abs(u).sum()):.2f}", int(state.total_notfinite), int(state.inner_state[0].count))
    0.00 1 0
    >>> u, state = tx.update(jnp.array([1.0, 1.0]), state, params)
    >>> print(f"{float(u[0]):.2f}", int(state.total_notfinite), int(state.inner_state[0].count))
    -0.10 1 1
  """
  fn = _FN
  if not isinstance(optimizer, optax.GradientTransformation):
    raise ValueError(
      f"{fn}: `optimizer` must be an optax.GradientTransformation, got optimizer={optimizer!r}."
    )
  ok = True
  if max_consecutive is not None:
    max_consecutive, ok = _whole_at_least(max_consecutive, 0, fn=fn, name="max_consecutive")
  inner = optax.with_extra_args_support(optimizer)

  def init_fn(params) -> SkipNonfiniteState:
    return SkipNonfiniteState(
      notfinite_count=jnp.zeros([], jnp.int32),
      last_finite=jnp.array(True),
      total_notfinite=jnp.zeros([], jnp.int32),
      inner_state=inner.init(params),
    )

  def update_fn(updates, state: SkipNonfiniteState, params=None, **extra_args):
    finite = _all_finite(updates)
    notfinite_count = jnp.where(finite, jnp.zeros([], jnp.int32), optax.safe_increment(state.notfinite_count))
    apply = finite
    if max_consecutive is not None:  # `number` turned any integer beyond int32 into a float
      apply = finite | (notfinite_count.astype(jnp.float32) > as_float(max_consecutive, jnp.float32))

    def do_update(_):
      return inner.update(updates, state.inner_state, params, **extra_args)

    def skip_update(_):
      return optax.tree.zeros_like(updates), state.inner_state

    new_updates, inner_state = lax.cond(apply, do_update, skip_update, None)
    new_updates = jax.tree.map(lambda u: poison(u, ok), new_updates)
    return new_updates, SkipNonfiniteState(
      notfinite_count=notfinite_count,
      last_finite=finite,
      total_notfinite=jnp.where(finite, state.total_notfinite, optax.safe_increment(state.total_notfinite)),
      inner_state=inner_state,
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
