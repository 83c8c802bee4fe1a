"""PyTorch's relative-factor schedulers, ported exactly: ``linear_lr`` (``LinearLR``) and ``constant_lr``
(``ConstantLR``). Their hyperparameters are factors of the optimizer's base rate, as in PyTorch, so
``SequentialLR([LinearLR(...), X], [W])`` maps to ``join([linear_lr(...), x], [W])`` in one line."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lr_jax._validation import WHOLE, between, ge, poison
from lr_jax.schedules._base import ArrayLike, Schedule, as_float, as_step, hyper, register, schedule_class
from lr_jax.schedules._steps import _passed

__all__ = ["constant_lr", "linear_lr"]


@schedule_class
class LinearLR(Schedule):
  """See :func:`linear_lr`."""

  base_value: ArrayLike = hyper()
  start_factor: ArrayLike = hyper(1 / 3, rules=(between(0, 1, open_lo=True),))
  end_factor: ArrayLike = hyper(1.0, rules=(between(0, 1),))
  total_iters: ArrayLike = hyper(5, rules=(ge(1), WHOLE))
  name = "linear_lr"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    base, start, end, total = (
      as_float(x, dt) for x in (self.base_value, self.start_factor, self.end_factor, self.total_iters)
    )
    total = jnp.where(total >= 1, total, 1)  # keeps an invalid lane finite before poisoning
    t = jnp.clip(as_step(step, dt), 0, total)
    done, remaining = t / total, (total - t) / total
    # A two-sided lerp (each form exact at its own end), as in ``linear``.
    factor = jnp.where(done < 0.5, start + (end - start) * done, end + (start - end) * remaining)
    return poison(base * factor, self.valid())


@register("linear_lr")
def linear_lr(
  base_value: ArrayLike,
  start_factor: ArrayLike = 1 / 3,
  end_factor: ArrayLike = 1.0,
  total_iters: ArrayLike = 5,
) -> LinearLR:
  """PyTorch's ``LinearLR``: the base rate times a factor ramped linearly over ``total_iters`` steps.

  With T = ``total_iters``::

      lr(t) = base * (start + (end - start) * min(t, T) / T)

  Exactly ``torch.optim.lr_scheduler.LinearLR(opt, start_factor, end_factor, total_iters)`` for an
  optimizer whose lr is ``base_value`` (the rate after t calls of ``scheduler.step()``), with
  PyTorch's defaults and constraints (``start_factor`` in (0, 1], ``end_factor`` in [0, 1], a whole
  ``total_iters`` >= 1). It then holds ``base * end_factor``. :func:`linear` is the same ramp
  between absolute rates (and may start at 0 or rise above the start).

  Args:
    base_value: the optimizer's base learning rate.
    start_factor: factor at step 0; in (0, 1].
    end_factor: factor at and after ``total_iters``; in [0, 1].
    total_iters: length of the ramp; a whole number >= 1.

  Returns:
    A ``LinearLR`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    PyTorch, `LinearLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.LinearLR.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.linear_lr(0.3, start_factor=0.5, total_iters=4)
    >>> print(*(f"{lr(t):.4f}" for t in range(6)))
    0.1500 0.1875 0.2250 0.2625 0.3000 0.3000
  """
  return LinearLR.build(
    "linear_lr",
    base_value=base_value,
    start_factor=start_factor,
    end_factor=end_factor,
    total_iters=total_iters,
  )


@schedule_class
class ConstantLR(Schedule):
  """See :func:`constant_lr`."""

  base_value: ArrayLike = hyper()
  factor: ArrayLike = hyper(1 / 3, rules=(between(0, 1),))
  total_iters: ArrayLike = hyper(5, rules=(ge(1), WHOLE))
  name = "constant_lr"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    base, factor, total = (as_float(x, dt) for x in (self.base_value, self.factor, self.total_iters))
    done = _passed(step, jnp.reshape(total, (1,)), dt, strict=False)[..., 0]  # t >= T, exact for int steps
    return poison(jnp.where(done, base, base * factor), self.valid())


@register("constant_lr")
def constant_lr(base_value: ArrayLike, factor: ArrayLike = 1 / 3, total_iters: ArrayLike = 5) -> ConstantLR:
  """PyTorch's ``ConstantLR``: the base rate times ``factor`` for ``total_iters`` steps, then the base rate.

  With T = ``total_iters``::

      lr(t) = base * factor     t < T
            = base              t >= T

  Exactly ``torch.optim.lr_scheduler.ConstantLR(opt, factor, total_iters)`` for an optimizer whose
  lr is ``base_value``, with PyTorch's defaults and constraints (``factor`` in [0, 1], a whole
  ``total_iters`` >= 1; PyTorch's ``total_iters=0`` keeps the factor forever, a quirk not ported).

  Args:
    base_value: the optimizer's base learning rate.
    factor: multiplier during the first ``total_iters`` steps; in [0, 1].
    total_iters: steps at the reduced rate; a whole number >= 1.

  Returns:
    A ``ConstantLR`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    PyTorch, `ConstantLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ConstantLR.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.constant_lr(0.3, factor=0.5, total_iters=2)
    >>> print(*(f"{lr(t):.2f}" for t in range(4)))
    0.15 0.15 0.30 0.30
  """
  return ConstantLR.build("constant_lr", base_value=base_value, factor=factor, total_iters=total_iters)
