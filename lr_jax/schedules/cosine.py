"""Cosine schedules: ``cosine_annealing`` and ``cosine_warm_restarts`` (SGDR)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from lr_jax._validation import check, number, poison
from lr_jax.schedules._base import ArrayLike, Schedule, as_float, as_step, register, schedule_class
from lr_jax.schedules.decay import _ok

__all__ = ["cosine_annealing", "cosine_warm_restarts"]


@schedule_class
class CosineAnnealing(Schedule):
  """See :func:`cosine_annealing`."""

  init_value: ArrayLike
  total_steps: ArrayLike
  end_value: ArrayLike = 0.0
  name = "cosine_annealing"

  def valid(self):
    return self.total_steps > 0

  def __call__(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, total, end = (as_float(x, dt) for x in (self.init_value, self.total_steps, self.end_value))
    t = as_step(step, dt)
    # (1 + cos(pi * t / T)) / 2 == sin^2(pi/2 * (T - t) / T): exact near the end of the decay.
    remaining = jnp.clip(total - t, 0, total) / total
    rate = end + (init - end) * jnp.square(jnp.sin(0.5 * jnp.pi * remaining))
    return poison(rate, self.valid())


@register("cosine_annealing")
def cosine_annealing(init_value: ArrayLike, total_steps: ArrayLike, end_value: ArrayLike = 0.0) -> CosineAnnealing:
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
  fn = "cosine_annealing"
  init_value = number(init_value, fn=fn, name="init_value")
  total_steps = number(total_steps, fn=fn, name="total_steps")
  end_value = number(end_value, fn=fn, name="end_value")
  check(total_steps > 0, fn=fn, must="`total_steps` must be > 0", total_steps=total_steps)
  return CosineAnnealing(init_value, total_steps, end_value)


_SPLIT = 4096  # integer steps are split as hi + lo, hi a multiple of 4096: exact in float32 below 2**36


def _remainder(step: ArrayLike, period: jax.Array, dt) -> jax.Array:
  """``max(step, 0) mod period``, exact for integer steps up to 2**31-1 (float32 alone is not past 2**24)."""
  step = jnp.asarray(step)
  if not jnp.issubdtype(step.dtype, jnp.integer):
    return jnp.remainder(as_step(step, dt), period)
  s = jnp.maximum(step, 0)
  lo = s % _SPLIT
  r = jnp.remainder((s - lo).astype(dt), period)  # fmod is exact on floats
  return jnp.remainder(r + lo.astype(dt), period)


def _power_and_sum(m: jax.Array, n: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(m**n, 1 + m + ... + m**(n-1))`` for whole ``0 <= n < 2**31`` by binary powering.

  Exact whenever the results are representable (integer ``m``), unlike ``exp(n * log(m))``, so
  restart boundaries fall exactly on integer steps; and accurate for ``m`` near 1, unlike
  ``(m**n - 1) / (m - 1)``.
  """
  k = n.astype(jnp.int32)

  def body(i, carry):
    p, g = carry
    p2, g2 = p * p, g * (1 + p)  # n -> 2n
    bit = ((k >> (30 - i)) & 1) == 1
    return jnp.where(bit, p2 * m, p2), jnp.where(bit, g2 + p2, g2)  # 2n -> 2n + 1

  return lax.fori_loop(0, 31, body, (jnp.ones_like(n), jnp.zeros_like(n)))


def _geometric_cycle(t: jax.Array, period: jax.Array, mult: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Position in, and length of, the cycle holding ``t`` when cycle i lasts ``period * mult**i`` (mult > 1).

  Cycle n starts at ``S_n = period * (mult**n - 1) / (mult - 1)``, so ``n = floor(log_mult(1 + t (mult - 1) /
  period))``. In float32 that logarithm can land one cycle off next to a restart, so n is then moved
  by +-1 (twice) until ``S_n <= t < S_n + period * mult**n``.
  """
  log_x = jnp.log(t / period) + jnp.log(mult - 1)  # log(t (mult - 1) / period), without overflow
  n = jnp.floor(jnp.logaddexp(0.0, log_x) / jnp.log(mult))  # logaddexp(0, log x) = log1p(x)
  n = jnp.clip(n, 0, 2**30)
  p, g = _power_and_sum(mult, n)
  start, length = period * g, period * p
  for _ in range(2):
    over = start > t
    length = jnp.where(over, length / mult, length)
    start = jnp.where(over, start - length, start)
    under = start + length <= t
    start = jnp.where(under, start + length, start)
    length = jnp.where(under, length * mult, length)
  return t - start, length


@schedule_class
class CosineWarmRestarts(Schedule):
  """See :func:`cosine_warm_restarts`."""

  init_value: ArrayLike
  period: ArrayLike
  period_mult: ArrayLike = 1
  end_value: ArrayLike = 0.0
  name = "cosine_warm_restarts"

  def valid(self):
    return _ok(self.period > 0, self.period_mult >= 1)

  def __call__(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, period, mult, end = (as_float(x, dt) for x in (self.init_value, self.period, self.period_mult, self.end_value))
    period = jnp.where(period > 0, period, 1)  # keeps invalid lanes finite until poisoned
    t = as_step(step, dt)
    # Both branches are computed and selected, so period_mult can be traced.
    equal = mult <= 1
    pos_eq = _remainder(step, period, dt)
    pos_geo, len_geo = _geometric_cycle(t, period, jnp.where(equal, 2, mult))
    pos = jnp.where(equal, pos_eq, pos_geo)
    length = jnp.minimum(jnp.where(equal, period, len_geo), jnp.finfo(dt).max)
    # (1 + cos(pi * pos / length)) / 2 == sin^2(pi/2 * (length - pos) / length): exact at cycle ends.
    remaining = jnp.clip(length - pos, 0, length) / length
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
  in Keras) and traced. The cycle is found in closed form (no state): exactly for ``period_mult ==
  1`` and integer steps up to 2**31-1; for ``period_mult > 1`` through a logarithm corrected by +-1
  cycle, so restarts fall on the exact steps while they are below 2**24 (float32). The schedule has
  no horizon: it restarts forever.

  Args:
    init_value: rate at the start of every cycle.
    period: length of the first cycle; must be > 0.
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
  fn = "cosine_warm_restarts"
  init_value = number(init_value, fn=fn, name="init_value")
  period = number(period, fn=fn, name="period")
  period_mult = number(period_mult, fn=fn, name="period_mult")
  end_value = number(end_value, fn=fn, name="end_value")
  check(period > 0, fn=fn, must="`period` must be > 0", period=period)
  check(period_mult >= 1, fn=fn, must="`period_mult` must be >= 1", period_mult=period_mult)
  return CosineWarmRestarts(init_value, period, period_mult, end_value)
