"""Cyclical learning rates: ``cyclic`` (PyTorch's ``CyclicLR``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lr_jax._validation import Rule, between, ge, gt, poison
from lr_jax.schedules._base import (
  ArrayLike,
  Schedule,
  as_float,
  as_step,
  hyper,
  register,
  schedule_class,
  static_field,
)
from lr_jax.schedules._steps import _floor_div, _remainder

__all__ = ["cyclic"]

_MODES = ("triangular", "triangular2", "exp_range")


@schedule_class
class Cyclic(Schedule):
  """See :func:`cyclic`."""

  base_value: ArrayLike = hyper()
  max_value: ArrayLike = hyper()
  step_size_up: ArrayLike = hyper(2000, rules=(gt(0),))
  step_size_down: ArrayLike = hyper(2000, rules=(ge(0),))
  mode: str = static_field("triangular", options=_MODES)
  gamma: ArrayLike = hyper(1.0, rules=(between(0, 1, open_lo=True),))
  name = "cyclic"
  rules = (Rule(("base_value", "max_value"), lambda b, m: b <= m, "`base_value` must be <= `max_value`"),)

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    base, peak, up, down, gamma = (
      as_float(x, dt)
      for x in (self.base_value, self.max_value, self.step_size_up, self.step_size_down, self.gamma)
    )
    t = as_step(step, dt)
    total = up + down
    # Completed cycles (PyTorch's ``cycle - 1``) and the position inside the current one, exact for
    # integer steps up to 2**31-1 (a float32 step alone loses the position past 2**24).
    done = _floor_div(step, total, dt)
    pos = jnp.clip(_remainder(step, total, dt), 0, total)
    rise = pos / up
    fall = (total - pos) / jnp.where(down > 0, down, 1)
    height = jnp.where(pos <= up, rise, fall)  # triangle wave in [0, 1]
    if self.mode == "triangular":
      scale = jnp.ones_like(t)
    elif self.mode == "triangular2":
      scale = jnp.exp2(-done)
    else:  # exp_range: gamma ** t per iteration
      scale = jnp.power(gamma, t)
    w = height * scale
    rate = base * (1 - w) + peak * w  # exact at both ends, also when max >> base
    return poison(rate, self.valid())


@register("cyclic")
def cyclic(
  base_value: ArrayLike,
  max_value: ArrayLike,
  step_size_up: ArrayLike = 2000,
  step_size_down: ArrayLike | None = None,
  mode: str = "triangular",
  gamma: ArrayLike = 1.0,
) -> Cyclic:
  """Cyclical learning rate: a triangle wave between ``base_value`` and ``max_value``.

  With up = ``step_size_up``, down = ``step_size_down``, L = up + down, c = floor(t / L) (completed
  cycles) and p = t - c * L (position in the cycle)::

      h(t)  = p / up                 if p <= up      (rising)
            = (L - p) / down         otherwise       (falling)
      f(t)  = 1                      mode="triangular"
            = 1 / 2**c               mode="triangular2"  (amplitude halves every cycle)
            = gamma**t               mode="exp_range"    (per step, not per cycle)
      lr(t) = base + (max - base) * h(t) * f(t)

  Matches ``torch.optim.lr_scheduler.CyclicLR(base_lr=base, max_lr=max, step_size_up=up,
  step_size_down=down, mode=mode, gamma=gamma)`` (PyTorch writes triangular2's factor as
  ``1/2**(cycle-1)`` with cycles counted from 1; that is ``1/2**c`` here). Differences: no custom
  ``scale_fn`` (compose with :func:`multiply` instead), the momentum cycle is not produced, and
  ``gamma`` must be in (0, 1] (PyTorch accepts any value; ``gamma > 1`` overflows). ``gamma`` is
  ignored by the triangular modes. ``step_size_down=0`` gives a sawtooth. Step sizes may be real
  numbers, as in PyTorch (which takes ``float(step_size_up)``).

  Args:
    base_value: lower bound of the cycle (the rate at step 0); must be <= ``max_value`` (PyTorch
      does not check; a base above the max would turn the cycle upside down).
    max_value: upper bound of the cycle (reached at step ``step_size_up`` in the first cycle).
    step_size_up: steps in the rising half of a cycle; must be > 0.
    step_size_down: steps in the falling half; must be >= 0. ``None`` means ``step_size_up``.
    mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
    gamma: per-step decay of the amplitude in ``"exp_range"`` mode; must be in (0, 1].

  Returns:
    A ``Cyclic`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if a concrete hyperparameter is out of range or ``mode`` is unknown. Traced invalid
      values give NaN rates.

  References:
    Smith, `Cyclical Learning Rates for Training Neural Networks <https://arxiv.org/abs/1506.01186>`_,
    WACV 2017.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.cyclic(0.1, 1.0, step_size_up=2, step_size_down=4, mode="triangular2")
    >>> print(*(f"{lr(t):.3f}" for t in range(9)))
    0.100 0.550 1.000 0.775 0.550 0.325 0.100 0.325 0.550
  """
  return Cyclic.build(
    "cyclic",
    base_value=base_value,
    max_value=max_value,
    step_size_up=step_size_up,
    step_size_down=step_size_up if step_size_down is None else step_size_down,
    mode=mode,
    gamma=gamma,
  )
