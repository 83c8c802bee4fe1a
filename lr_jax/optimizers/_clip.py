"""Gradient clipping with PyTorch's numerics: ``clip_grad_norm`` and ``clip_grad_value``."""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_jax._validation import check, flag, is_traced, number, poison
from lr_jax.optimizers._common import _non_negative
from lr_jax.optimizers._state import real_dtype
from lr_jax.schedules._base import as_float

__all__ = ["ClipGradNormState", "clip_grad_norm", "clip_grad_value"]


class ClipGradNormState(NamedTuple):
  """State of :func:`clip_grad_norm`."""

  total_norm: jax.Array  # shape=(), the total norm of the last gradients (what clip_grad_norm_ returns)


def _norm_type(norm_type, fn: str) -> float:
  if isinstance(norm_type, str) and norm_type == "inf":
    return math.inf
  if (
    is_traced(norm_type)
    or isinstance(norm_type, bool)
    or not isinstance(norm_type, (numbers.Real, np.generic))
  ):
    raise ValueError(
      f"{fn}: `norm_type` must be a concrete number > 0 or inf (under optax.inject_hyperparams pass "
      f"static_args=('norm_type',)), got norm_type={norm_type!r}."
    )
  p = float(norm_type)
  if not (p > 0):
    raise ValueError(f"{fn}: `norm_type` must be a concrete number > 0 or inf, got norm_type={norm_type!r}.")
  return p


def _vector_norm(x: jax.Array, p: float) -> jax.Array:
  """``torch.linalg.vector_norm(x, p)`` of a flattened array (|x| for complex entries)."""
  a = jnp.abs(jnp.ravel(x))
  if a.size == 0:
    return jnp.zeros((), a.dtype)
  if p == math.inf:
    return jnp.max(a)
  if p == 1:
    return jnp.sum(a)
  if p == 2:
    return jnp.sqrt(jnp.sum(a * a))
  return jnp.sum(a**p) ** (1.0 / p)


def clip_grad_norm(
  max_norm: Any, norm_type: Any = 2.0, error_if_nonfinite: bool = False
) -> optax.GradientTransformation:
  """Scales the gradients down so that their total norm is at most ``max_norm``, as PyTorch does.

  With ``p = norm_type``, over the leaves ``g_i`` of the gradient tree::

      total_norm = || (||g_1||_p, ||g_2||_p, ...) ||_p        (p = inf: max |g|)
      g_i       <- g_i * min(max_norm / (total_norm + 1e-6), 1)

  Twin: ``torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)``, with
  the same ``+ 1e-6`` and the same order of operations (the norm of the per-tensor norms, the factor in
  the gradients' dtype): equal to it to 1e-12 in float64. ``optax.clip_by_global_norm`` has no
  ``+ 1e-6`` (``g * max_norm / total_norm``), which makes a clipped recipe drift from PyTorch's
  (2.5e-5 relative after 100 clipped Adam steps). The state keeps ``total_norm`` (what
  ``clip_grad_norm_`` returns), to log it.

  A non-finite total norm (a NaN or inf gradient, or an overflow) gives what PyTorch gives with
  ``error_if_nonfinite=False``: ``max_norm / (inf + 1e-6) = 0``, so gradients become 0 (0 * inf and
  0 * NaN give NaN). With ``error_if_nonfinite=True``, PyTorch raises ``RuntimeError``; here it does the
  same when the gradients are concrete (outside ``jit``), and under ``jit``, where nothing can raise,
  every gradient becomes NaN instead (documented, checkify-free): wrap the optimizer in
  ``optimizers.skip_nonfinite`` to skip such steps.

  Args:
    max_norm: the largest total norm allowed; >= 0 (may be traced).
    norm_type: ``p`` of the p-norm: a concrete number > 0, or ``float("inf")`` / ``"inf"``.
    error_if_nonfinite: raise (eagerly) or return NaN gradients (under ``jit``) when the total norm is
      NaN or infinite.

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`ClipGradNormState`.

  Raises:
    ValueError: if a concrete ``max_norm`` is negative or not a number, or ``norm_type`` is not > 0.
      A traced negative ``max_norm`` gives NaN gradients.
    RuntimeError: from ``update``, outside ``jit``, with ``error_if_nonfinite=True`` and a non-finite
      total norm.

  References:
    PyTorch, `clip_grad_norm_
    <https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html>`_.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.clip_grad_norm(1.0)
    >>> g = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}
    >>> clipped, state = tx.update(g, tx.init(g))
    >>> print(float(state.total_norm), [round(float(x), 6) for x in clipped["a"]])
    5.0 [0.6, 0.0]
  """
  fn = "clip_grad_norm"
  max_norm, ok = _non_negative(max_norm, fn=fn, name="max_norm")
  p = _norm_type(norm_type, fn)
  error_if_nonfinite = flag(error_if_nonfinite, fn=fn, name="error_if_nonfinite")

  def init_fn(params) -> ClipGradNormState:
    return ClipGradNormState(total_norm=jnp.zeros((), real_dtype(params)))

  def update_fn(updates, state: ClipGradNormState, params=None):
    del params
    leaves = jax.tree.leaves(updates)
    dt = state.total_norm.dtype
    if not leaves:
      return updates, ClipGradNormState(jnp.zeros((), dt))
    norms = jnp.stack([_vector_norm(g, p).astype(dt) for g in leaves])
    total = _vector_norm(norms, p)
    finite = jnp.isfinite(total)
    if error_if_nonfinite and not is_traced(total) and not bool(finite):
      raise RuntimeError(
        f"{fn}: the total norm of order {p} of the gradients is non-finite (total_norm={float(total)}), "
        "so it cannot be clipped; pass error_if_nonfinite=False to scale by it anyway."
      )
    coef = jnp.minimum(as_float(max_norm, dt) / (total + as_float(1e-6, dt)), as_float(1.0, dt))
    coef = poison(coef, ok)
    if error_if_nonfinite:
      coef = jnp.where(finite, coef, jnp.nan)
    clipped = jax.tree.map(lambda g: g * coef.astype(g.dtype), updates)
    return clipped, ClipGradNormState(total_norm=total)

  return optax.GradientTransformation(init_fn, update_fn)


def clip_grad_value(clip_value: Any) -> optax.GradientTransformation:
  """Clamps every gradient entry to ``[-clip_value, clip_value]``, as PyTorch does.

  Per entry::

      g <- min(max(g, -clip_value), clip_value)

  Twin: ``torch.nn.utils.clip_grad_value_(parameters, clip_value)`` (and ``optax.clip``, which is the
  same rule). NaN entries stay NaN.

  Args:
    clip_value: the largest magnitude allowed; >= 0 (may be traced).

  Returns:
    An ``optax.GradientTransformation`` (no state: ``optax.EmptyState``).

  Raises:
    ValueError: if a concrete ``clip_value`` is negative or not a number. A traced negative one gives
      NaN gradients.

  References:
    PyTorch, `clip_grad_value_
    <https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_value_.html>`_.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.clip_grad_value(0.5)
    >>> g = jnp.array([-2.0, 0.25, 3.0])
    >>> print(tx.update(g, tx.init(g))[0].tolist())
    [-0.5, 0.25, 0.5]
  """
  fn = "clip_grad_value"
  clip_value = number(clip_value, fn=fn, name="clip_value")
  ok = check(clip_value >= 0, fn=fn, must="`clip_value` must be >= 0", clip_value=clip_value)

  def update_fn(updates, state, params=None):
    del params

    def one(g):
      c = poison(as_float(clip_value, g.dtype), ok).astype(g.dtype)
      return jnp.clip(g, -c, c)

    return jax.tree.map(one, updates), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)
