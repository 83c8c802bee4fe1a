"""Cosine schedules: ``cosine_annealing`` and ``cosine_warm_restarts`` (SGDR)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lr_jax._validation import check, number, poison
from lr_jax.schedules._base import ArrayLike, Schedule, as_float, as_step, register, schedule_class

__all__ = ["cosine_annealing"]


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
