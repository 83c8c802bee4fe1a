"""Exact step arithmetic shared by the schedules (private).

Steps are float32 in the schedules, which rounds integer steps above 2**24 by up to 128; the
discontinuous schedules use these helpers so that a drop or restart lands on the exact integer step
up to 2**31-1. Also: argument shaping for array hyperparameters (milestones, boundaries).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lr_jax.schedules._base import ArrayLike, as_step

_SPLIT = 4096


def _int_step(step: ArrayLike):
  """``max(step, 0)`` as an integer array of at least 32 bits, or ``None`` for float steps."""
  step = jnp.asarray(step)
  if not jnp.issubdtype(step.dtype, jnp.integer):
    return None
  s = jnp.maximum(step, 0)
  return s.astype(jnp.int32) if s.dtype.itemsize < 4 else s


def _split_step(step: ArrayLike, dt) -> tuple[jax.Array, jax.Array]:
  """A step as ``hi + lo`` with both parts exact in ``dt``; steps below 0 count as 0.

  An integer step is split at a multiple of 4096 (so ``hi`` has at most 19 significant bits below
  2**31 and is exact in float32, as is ``lo < 4096``); a float step is ``(step, 0)``. Discontinuous
  schedules use the two parts so that a drop lands on the exact integer step up to 2**31-1, where
  float32 alone rounds steps above 2**24 by up to 128.
  """
  s = _int_step(step)
  if s is None:
    t = as_step(step, dt)
    return t, jnp.zeros_like(t)
  lo = s % _SPLIT
  return (s - lo).astype(dt), lo.astype(dt)


def _split_remainder(step: ArrayLike, d: jax.Array, dt):
  """Splits ``max(step, 0) = (hi - r) + d * wrap + x`` for ``d > 0``, every part exact in ``dt``.

  ``hi + lo`` is the step (``_split_step``), ``r = hi mod d`` (``fmod`` is exact on floats) and ``wrap``
  says whether ``r + lo`` reaches ``d``; then ``x = r + lo - d`` (< 4096, exact), else ``x = r + lo``.
  """
  hi, lo = _split_step(step, dt)
  r = jnp.remainder(hi, d)
  gap = d - r  # exact whenever it is <= 4096 (Sterbenz, or small operands), which is all `wrap` needs
  wrap = lo >= gap
  return hi, r, wrap, jnp.where(wrap, lo - gap, r + lo)


def _whole_divisor(step: ArrayLike, d: jax.Array):
  """``(integer steps, d as an integer, "every d is whole")``, or ``None`` for float steps."""
  s = _int_step(step)
  if s is None:
    return None
  whole = jnp.all((d == jnp.round(d)) & (d >= 1) & (d <= 2**30))
  return s, jnp.clip(jnp.round(d), 1, 2**30).astype(s.dtype), whole


def _int_div(s: jax.Array, d: jax.Array) -> jax.Array:
  """``s // d`` for ``s >= 0``, ``d >= 1``: one truncating division (``//`` adds a sign fix-up that
  costs a second division per element)."""
  s, d = jnp.broadcast_arrays(s, d)
  return jax.lax.div(s, d)


def _int_rem(s: jax.Array, d: jax.Array) -> jax.Array:
  """``s % d`` for ``s >= 0``, ``d >= 1`` (see :func:`_int_div`)."""
  s, d = jnp.broadcast_arrays(s, d)
  return jax.lax.rem(s, d)


def _remainder_float(step: ArrayLike, d: jax.Array, dt) -> jax.Array:
  _, _, wrap, x = _split_remainder(step, d, dt)
  # Without a wrap, x = r + lo < d exactly; float32 may round it up to d (the end of the cycle), kept.
  return jnp.where(wrap, jnp.remainder(x, d), x)


def _remainder(step: ArrayLike, d: jax.Array, dt) -> jax.Array:
  """``max(step, 0) mod d`` for ``d > 0``; for integer steps up to 2**31-1 exact up to one rounding.

  Integer steps with a whole ``d`` take integer arithmetic; ``lax.cond`` runs only the branch
  needed (both, as a select, only when ``d`` is batched under ``vmap``).
  """
  w = _whole_divisor(step, d)
  if w is None:
    return _remainder_float(step, d, dt)
  s, d_int, whole = w
  return jax.lax.cond(
    whole,
    lambda: _int_rem(s, d_int).astype(dt),
    lambda: jnp.broadcast_to(_remainder_float(step, d, dt), jnp.broadcast_shapes(s.shape, jnp.shape(d))),
  )


def _floor_div_float(step: ArrayLike, d: jax.Array, dt) -> jax.Array:
  hi, r, wrap, x = _split_remainder(step, d, dt)
  q_hi = jnp.round((hi - r) / d)  # (hi - r) / d is whole; float32 puts it within 128 / d of it
  q = jnp.floor(x / d)
  q = jnp.where(q * d > x, q - 1, q)  # float rounding of x / d across a whole number
  q = jnp.where((q + 1) * d <= x, q + 1, q)
  return q_hi + jnp.where(wrap, 1 + q, 0)


def _floor_div(step: ArrayLike, d: jax.Array, dt) -> jax.Array:
  """``floor(max(step, 0) / d)`` for ``d > 0``.

  Exact for integer steps up to 2**31-1 when ``d`` is a whole number (integer division, the only
  branch run) or > 512 (the exact split above); otherwise within one float32 rounding of the step.
  """
  w = _whole_divisor(step, d)
  if w is None:
    return _floor_div_float(step, d, dt)
  s, d_int, whole = w
  return jax.lax.cond(
    whole,
    lambda: _int_div(s, d_int).astype(dt),
    lambda: jnp.broadcast_to(_floor_div_float(step, d, dt), jnp.broadcast_shapes(s.shape, jnp.shape(d))),
  )


def _passed(step: ArrayLike, points: jax.Array, dt, *, strict: bool) -> jax.Array:
  """``step >= points[i]`` (``>`` if ``strict``), one column per point (``step.shape + (n,)``).

  Exact for integer steps up to 2**31-1: with ``hi + lo`` the step (``_split_step``), the sign of
  ``(hi - p) + lo`` is exact (``hi - p`` is exact when small, and when large ``lo`` cannot flip it).
  """
  hi, lo = _split_step(step, dt)
  points = jnp.reshape(points, (1,) * hi.ndim + points.shape)  # explicit broadcast (rank promotion off)
  diff = (hi[..., None] - points) + lo[..., None]
  return diff > 0 if strict else diff >= 0


def _decay_progress(step: ArrayLike, decay_steps: jax.Array, dt, staircase: bool) -> jax.Array:
  """``p = t / decay_steps`` (``floor`` of it with ``staircase``); ``decay_steps <= 0`` counts as 1.

  (An invalid ``decay_steps`` only keeps an invalid lane's arithmetic finite before poisoning.)
  """
  ds = jnp.where(decay_steps > 0, decay_steps, 1)
  return _floor_div(step, ds, dt) if staircase else as_step(step, dt) / ds
