"""Cosine schedules: ``cosine_annealing`` and ``cosine_warm_restarts`` (SGDR)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lr_jax._validation import ge, gt, poison
from lr_jax.schedules._base import ArrayLike, Schedule, as_float, as_step, hyper, register, schedule_class
from lr_jax.schedules._steps import _remainder

__all__ = ["cosine_annealing", "cosine_warm_restarts"]


@schedule_class
class CosineAnnealing(Schedule):
  """See :func:`cosine_annealing`."""

  init_value: ArrayLike = hyper()
  total_steps: ArrayLike = hyper(rules=(gt(0),))
  end_value: ArrayLike = hyper(0.0)
  name = "cosine_annealing"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, total, end = (as_float(x, dt) for x in (self.init_value, self.total_steps, self.end_value))
    t = as_step(step, dt)
    # (1 + cos(pi * t / T)) / 2 == sin^2(pi/2 * (T - t) / T): exact near the end of the decay.
    remaining = jnp.clip(total - t, 0, total) / total
    rate = end + (init - end) * jnp.square(jnp.sin(0.5 * jnp.pi * remaining))
    return poison(rate, self.valid())


@register("cosine_annealing")
def cosine_annealing(
  init_value: ArrayLike, total_steps: ArrayLike, end_value: ArrayLike = 0.0
) -> CosineAnnealing:
  """Cosine annealing from ``init_value`` to ``end_value`` over ``total_steps``, then ``end_value``.

  With T = ``total_steps``::

      lr(t) = end + (init - end) * (1 + cos(pi * min(t, T) / T)) / 2

  Matches ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T, eta_min=end)`` for t <= T (with
  ``init_value`` the optimizer's lr); past T it holds ``end_value``, where PyTorch's climbs back up
  (period 2T). Optax's ``cosine_decay_schedule`` takes ``alpha = end / init`` instead of ``end_value``.

  Args:
    init_value: rate at step 0.
    total_steps: length of the decay; must be > 0.
    end_value: rate at and after ``total_steps``.

  Returns:
    A ``CosineAnnealing`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    Loshchilov & Hutter, `SGDR <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.cosine_annealing(1.0, total_steps=100)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 50, 100, 200)))
    1.00 0.50 0.00 0.00
  """
  return CosineAnnealing.build(
    "cosine_annealing", init_value=init_value, total_steps=total_steps, end_value=end_value
  )


def _power_and_sum(m: jax.Array, n: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(m**n, 1 + m + ... + m**(n-1))`` for whole ``0 <= n < 256``, by binary powering (8 bits).

  Exact while the results are representable (whole ``m``), unlike ``exp(n * log(m))``, so restarts
  fall exactly on integer steps. A whole ``m >= 2`` needs n < 256 for any float32 step.
  """
  k = n.astype(jnp.int32)
  p, g = jnp.ones_like(n), jnp.zeros_like(n)
  for bit in range(7, -1, -1):
    p, g = p * p, g * (1 + p)  # n -> 2n
    on = ((k >> bit) & 1) == 1
    p, g = jnp.where(on, p * m, p), jnp.where(on, g + p, g)  # 2n -> 2n + 1
  return p, g


def _cycle_index(t: jax.Array, period: jax.Array, mult: jax.Array) -> jax.Array:
  """``log_mult(1 + t (mult - 1) / period)`` (mult > 1): cycle n starts where this reaches n.

  Computed as ``logaddexp(0, log t - log period + log(mult - 1)) / log1p(mult - 1)``, which neither
  overflows for a huge ``mult`` nor loses ``mult - 1`` near 1, and has finite gradients at t = 0.
  """
  log_x = jnp.log(t) - jnp.log(period) + jnp.log(mult - 1)
  return jnp.logaddexp(0.0, log_x) / jnp.log1p(mult - 1)


def _remaining_whole(t: jax.Array, period: jax.Array, mult: jax.Array) -> jax.Array:
  """Fraction of the cycle still ahead at ``t``, for a whole ``mult >= 2``: exact restarts below 2**24.

  Cycle n starts at ``S_n = period * (1 + mult + ... + mult**(n-1))``; n comes from the logarithm,
  which in float32 can land one cycle off next to a restart, so it is moved by +-1 (twice) until
  ``S_n <= t < S_n + period * mult**n``, with ``S_n`` computed exactly.
  """
  n = jnp.clip(jnp.floor(_cycle_index(t, period, mult)), 0, 255)
  p, g = _power_and_sum(mult, n)
  start, length = period * g, period * p
  for _ in range(2):
    over = start > t
    length = jnp.where(over, length / mult, length)
    start = jnp.where(over, start - length, start)
    under = start + length <= t
    start = jnp.where(under, start + length, start)
    length = jnp.where(under, length * mult, length)
  length = jnp.minimum(length, jnp.finfo(length.dtype).max)
  return jnp.clip(start + length - t, 0, length) / length


def _remaining_fractional(t: jax.Array, period: jax.Array, mult: jax.Array) -> jax.Array:
  """Fraction of the cycle still ahead at ``t``, for any ``mult > 1``.

  With u = ``_cycle_index`` and f = u - floor(u), the position in the cycle is
  ``T_cur / T_i = (mult**f - 1) / (mult - 1)``, so ``1 - T_cur / T_i = mult**f * (mult**(1 - f) - 1) /
  (mult - 1)``. Working with f keeps the error at one float32 rounding of u, where ``t - S_n`` would
  lose ``S_n``'s rounding (large after many short cycles, e.g. mult = 1.001).
  """
  u = _cycle_index(t, period, mult)
  # u carries a few roundings; within them of a whole number, take the restart (as the recursion
  # T_cur >= T_i does), so an exact restart step such as t = 1 for period 1 gets init_value.
  whole = jnp.round(u)
  u = jnp.where(jnp.abs(u - whole) <= 4 * jnp.finfo(u.dtype).eps * jnp.maximum(u, 1), whole, u)
  f = u - jnp.floor(u)
  lm = jnp.log1p(mult - 1)
  return jnp.clip(jnp.exp(f * lm) * jnp.expm1((1 - f) * lm) / (mult - 1), 0, 1)


@schedule_class
class CosineWarmRestarts(Schedule):
  """See :func:`cosine_warm_restarts`."""

  init_value: ArrayLike = hyper()
  period: ArrayLike = hyper(rules=(ge(1),))
  period_mult: ArrayLike = hyper(1, rules=(ge(1),))
  end_value: ArrayLike = hyper(0.0)
  name = "cosine_warm_restarts"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, period, mult, end = (
      as_float(x, dt) for x in (self.init_value, self.period, self.period_mult, self.end_value)
    )
    period = jnp.where(period >= 1, period, 1)  # keeps invalid lanes finite until poisoned
    t = as_step(step, dt)
    # One of three branches, chosen by the scalar period_mult with lax.switch so that only the
    # branch needed runs; period_mult can still be traced (under vmap over it the switch becomes a
    # per-lane select of all three).
    one = mult <= 1
    whole = mult == jnp.round(mult)
    safe = jnp.where(one, 2, mult)  # keeps the unused branches finite (and their gradients)
    shape = jnp.broadcast_shapes(t.shape, period.shape, mult.shape)
    branches = (
      lambda: (period - _remainder(step, period, dt)) / period,  # exact for integer steps to 2**31-1
      lambda: _remaining_whole(t, period, safe),
      lambda: _remaining_fractional(t, period, safe),
    )
    index = jnp.where(one, 0, jnp.where(whole, 1, 2))
    if index.ndim == 0:
      remaining = jax.lax.switch(
        index, [lambda f=f: jnp.broadcast_to(f(), shape).astype(dt) for f in branches]
      )
    else:  # array-valued hyperparameters: every branch, selected elementwise
      remaining = jnp.select([index == 0, index == 1], [branches[0](), branches[1]()], branches[2]())
    # (1 + cos(pi * T_cur / T_i)) / 2 == sin^2(pi/2 * (T_i - T_cur) / T_i): exact at cycle ends.
    rate = end + (init - end) * jnp.square(jnp.sin(0.5 * jnp.pi * remaining))
    return poison(rate, self.valid())


@register("cosine_warm_restarts")
def cosine_warm_restarts(
  init_value: ArrayLike, period: ArrayLike, period_mult: ArrayLike = 1, end_value: ArrayLike = 0.0
) -> CosineWarmRestarts:
  """Cosine annealing from ``init_value`` to ``end_value``, restarted at the end of each cycle (SGDR).

  Cycle i lasts ``period * period_mult**i`` steps. With T_cur the steps since the last restart and
  T_i the length of the current cycle::

      lr(t) = end + (init - end) * (1 + cos(pi * T_cur / T_i)) / 2

  Matches ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0=period, T_mult=period_mult,
  eta_min=end_value)`` (``init_value`` the optimizer's lr) and Keras ``CosineDecayRestarts(init,
  first_decay_steps=period, t_mul=period_mult, m_mul=1.0, alpha=end/init)``. Differences: ``period``
  and ``period_mult`` may be non-integer (PyTorch requires ints; ``period_mult`` like 1.5 works as
  in Keras) and traced. The cycle is found in closed form, with no state: exactly for
  ``period_mult == 1`` and integer steps up to 2**31-1; for a whole ``period_mult >= 2`` through a
  logarithm corrected by +-1 cycle, so restarts fall on the exact step while it is below 2**24
  (float32); for a fractional ``period_mult`` from the fractional part of that logarithm (as Keras
  does), rounded to the restart when it is within float32 rounding of one. All three branches are
  computed and one is selected, so ``period_mult`` can be traced. There is no horizon: it restarts
  forever.

  Args:
    init_value: rate at the start of every cycle.
    period: length of the first cycle in steps; must be >= 1 (PyTorch: a whole T_0 >= 1; fractional
      periods are allowed here).
    period_mult: growth factor of the cycle length; must be >= 1.
    end_value: rate approached at the end of every cycle.

  Returns:
    A ``CosineWarmRestarts`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    Loshchilov & Hutter, `SGDR <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.cosine_warm_restarts(1.0, period=10, period_mult=2)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 5, 10, 20, 30)))
    1.00 0.50 1.00 0.50 1.00
  """
  return CosineWarmRestarts.build(
    "cosine_warm_restarts", init_value=init_value, period=period, period_mult=period_mult, end_value=end_value
  )
