"""``cooldown``: a final decay (WSD-style) appended to any schedule."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lr_jax._validation import ge, gt, poison, static_equal
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

__all__ = ["cooldown"]

_SHAPES = ("1-sqrt", "linear", "cosine")


def _safe_div(num, den):
  pos = den > 0
  return jnp.where(pos, num / jnp.where(pos, den, 1), 0)


def _cool(q, r, shape: str):
  """``(f, g)`` with ``f + g == 1``: the weights of the start rate and of the end value at progress q."""
  if shape == "linear":
    return r, q
  if shape == "cosine":  # f = (1 + cos(pi q)) / 2 = sin^2(pi/2 r), g = sin^2(pi/2 q)
    return jnp.square(jnp.sin(0.5 * jnp.pi * r)), jnp.square(jnp.sin(0.5 * jnp.pi * q))
  g = jnp.sqrt(q)  # 1-sqrt
  return 1 - g, g


@schedule_class
class Cooldown(Schedule):
  """See :func:`cooldown`."""

  schedule: Schedule = child()
  start: ArrayLike = hyper(rules=(ge(0),))
  length: ArrayLike = hyper(rules=(gt(0),))
  end_value: ArrayLike = hyper(0.0)
  shape: str = static_field("1-sqrt", options=_SHAPES)
  name = "cooldown"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    start, length, end = (as_float(x, dt) for x in (self.start, self.length, self.end_value))
    t = as_step(step, dt)
    before = as_float(self.schedule(step), dt)
    s0 = as_float(self.schedule(start), dt)  # the rate the cooldown starts from
    r = jnp.clip(_safe_div(start + length - t, length), 0, 1)  # cooldown still ahead, exact near the end
    q = 1 - r  # progress: exact near the start (Sterbenz), and 0 and 1 at the ends
    f, g = _cool(q, r, self.shape)
    # exact at both ends of the cooldown; a static end_value 0 drops the 0 * g that XLA would keep (a
    # traced one keeps it: same value, and the derivative in end_value is g, not 0)
    cool = s0 * f if static_equal(self.end_value, 0) else s0 * f + end * g
    rate = jnp.where(t < start, before, cool)
    return poison(rate, self.valid())


@register("cooldown")
def cooldown(
  schedule: Schedule | Callable[[ArrayLike], ArrayLike],
  start: ArrayLike,
  length: ArrayLike,
  shape: str = "1-sqrt",
  end_value: ArrayLike = 0.0,
) -> Cooldown:
  """Runs ``schedule`` until ``start``, then cools down from its rate there to ``end_value``.

  With s = ``schedule``, S = ``start``, L = ``length`` and q = (t - S) / L::

      lr(t) = s(t)                                   t < S
            = end + (s(S) - end) * f(q)              S <= t < S + L
            = end                                    t >= S + L
      f(q)  = 1 - sqrt(q)                            shape="1-sqrt"
            = 1 - q                                  shape="linear"
            = (1 + cos(pi * q)) / 2                  shape="cosine"

  The cooldown of the warmup-stable-decay (WSD, "trapezoidal") schedule, on any schedule: a constant
  rate with a cooldown matches cosine annealing at any length and lets one run be extended, and the
  1-sqrt shape does best (Hägele et al.); a linear decay to 0 matches or beats cosine (Defazio et
  al.). ``cooldown(warmup(constant(peak), W), N - D, D, shape)`` is HF transformers
  ``get_wsd_schedule(W, N, num_decay_steps=D, decay_type=shape)`` times ``peak`` (as is
  :func:`warmup_stable_decay`). PyTorch and Optax have no such wrapper (an Optax
  ``join_schedules([s, linear_schedule(...)])`` needs the rate at S by hand).

  Args:
    schedule: an lr_jax schedule (serializable) or any ``step -> rate`` callable.
    start: S, the step where the cooldown begins; must be >= 0.
    length: L, the length of the cooldown in steps; must be > 0.
    shape: ``"1-sqrt"``, ``"linear"`` or ``"cosine"``.
    end_value: rate at and after S + L.

  Returns:
    A ``Cooldown`` schedule (a pytree holding ``schedule`` as a child).

  Raises:
    ValueError: if a concrete hyperparameter is out of range, ``shape`` is unknown or ``schedule``
      is not callable. Traced invalid values give NaN rates.

  References:
    Hägele et al., `Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations
    <https://arxiv.org/abs/2405.18392>`_, NeurIPS 2024. Defazio et al., `When, Why and How Much?
    Adaptive Learning Rate Scheduling by Refinement <https://arxiv.org/abs/2310.07831>`_, 2023.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.cooldown(schedules.constant(1.0), start=6, length=4)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 5, 6, 7, 8, 10, 20)))
    1.00 1.00 1.00 0.50 0.29 0.00 0.00
  """
  return Cooldown.build(
    "cooldown", schedule=schedule, start=start, length=length, shape=shape, end_value=end_value
  )
