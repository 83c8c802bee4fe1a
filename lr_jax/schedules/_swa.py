"""``swalr``: PyTorch's ``SWALR`` (anneal to the stochastic-weight-averaging rate) as a schedule wrapper."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lr_jax._validation import ge, poison
from lr_jax.schedules._base import (
  ArrayLike,
  Schedule,
  as_float,
  as_step,
  child,
  hyper,
  register,
  schedule_class,
  static_field,
)

__all__ = ["swalr"]


@schedule_class
class Swalr(Schedule):
  """See :func:`swalr`."""

  schedule: Schedule = child()
  swa_start: ArrayLike = hyper(rules=(ge(0),))
  swa_lr: ArrayLike = hyper()
  anneal_epochs: ArrayLike = hyper(10, rules=(ge(0),))
  anneal_strategy: str = static_field("cos", options=("cos", "linear"))
  name = "swalr"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    start, swa, a = (as_float(x, dt) for x in (self.swa_start, self.swa_lr, self.anneal_epochs))
    t = as_step(step, dt)
    before = as_float(self.schedule(step), dt)
    s0 = as_float(self.schedule(start), dt)
    pos = a > 0
    x = jnp.where(pos, jnp.clip((t - start) / jnp.where(pos, a, 1), 0, 1), 1)
    if self.anneal_strategy == "cos":
      alpha, keep = jnp.square(jnp.sin(0.5 * jnp.pi * x)), jnp.square(jnp.cos(0.5 * jnp.pi * x))
    else:
      alpha, keep = x, 1 - x
    rate = jnp.where(t < start, before, swa * alpha + s0 * keep)  # exact at both ends
    return poison(rate, self.valid())


@register("swalr")
def swalr(
  schedule: Schedule | Callable[[ArrayLike], ArrayLike],
  swa_start: ArrayLike,
  swa_lr: ArrayLike,
  anneal_epochs: ArrayLike = 10,
  anneal_strategy: str = "cos",
) -> Swalr:
  """Runs ``schedule`` until ``swa_start``, then anneals to ``swa_lr`` and holds it (SWA's rate).

  With s = ``schedule``, S = ``swa_start``, A = ``anneal_epochs`` and x = min((t - S) / A, 1)
  (x = 1 when A = 0)::

      lr(t) = s(t)                                    t < S
            = swa_lr * a(x) + s(S) * (1 - a(x))       t >= S
      a(x)  = (1 - cos(pi * x)) / 2                   anneal_strategy="cos"
            = x                                       anneal_strategy="linear"

  Matches ``torch.optim.swa_utils.SWALR(optimizer, swa_lr, anneal_epochs=A, anneal_strategy=...)``
  in the usual recipe: ``scheduler.step()`` for the epochs before S, ``swa_scheduler.step()`` from
  epoch S on (the rate of epoch S is still s(S); SWALR's k-th step gives epoch S + k). Count the
  steps in epochs with :func:`per_epoch` as PyTorch does, or in updates. A may be fractional here
  (PyTorch requires an int). With A = 0, PyTorch's constructor already sets ``swa_lr`` (before S,
  for as long as the other scheduler does not overwrite it); here the rate switches at S. Average the parameters from S on (a running mean, see the README's
  recipe: ``torch.optim.swa_utils.AveragedModel``'s default).

  Args:
    schedule: the rate before S: an lr_jax schedule (serializable) or any ``step -> rate`` callable.
    swa_start: S, the step (epoch) where the anneal begins; must be >= 0.
    swa_lr: the rate SWA holds after the anneal.
    anneal_epochs: A, length of the anneal in steps; must be >= 0 (0: ``swa_lr`` from S on).
    anneal_strategy: ``"cos"`` or ``"linear"``.

  Returns:
    A ``Swalr`` schedule (a pytree holding ``schedule`` as a child).

  Raises:
    ValueError: if a concrete hyperparameter is out of range, ``anneal_strategy`` is unknown or
      ``schedule`` is not callable. Traced invalid values give NaN rates.

  References:
    Izmailov et al., `Averaging Weights Leads to Wider Optima and Better Generalization
    <https://arxiv.org/abs/1803.05407>`_, UAI 2018.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.swalr(schedules.constant(1.0), swa_start=4, swa_lr=0.1, anneal_epochs=2)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 3, 4, 5, 6, 10)))
    1.00 1.00 1.00 0.55 0.10 0.10
  """
  return Swalr.build(
    "swalr",
    schedule=schedule,
    swa_start=swa_start,
    swa_lr=swa_lr,
    anneal_epochs=anneal_epochs,
    anneal_strategy=anneal_strategy,
  )
