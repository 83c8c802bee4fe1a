"""Composing schedules: ``join`` (one after another) and ``multiply`` (pointwise product)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from lr_jax._validation import check, number, poison, valid_all
from lr_jax.schedules._base import (
  ArrayLike,
  Schedule,
  as_float,
  as_schedule,
  as_step,
  register,
  schedule_class,
)
from lr_jax.schedules._steps import _nondecreasing, _split_step, _stack_traced

__all__ = ["join", "multiply"]


def _piece(s: Schedule, t: jax.Array, dt) -> jax.Array:
  """``s(t)`` as ``dt``, broadcast to ``t``'s shape (a plain callable may return a scalar)."""
  return jnp.broadcast_to(as_float(s(t), dt), t.shape)


@schedule_class
class Join(Schedule):
  """See :func:`join`."""

  schedules: tuple
  boundaries: ArrayLike
  name = "join"

  def valid(self):
    return valid_all(self.boundaries >= 0, _nondecreasing(self.boundaries))

  def __call__(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    step, bounds = jnp.asarray(step), jnp.asarray(self.boundaries)
    hi, lo = _split_step(step, dt)
    rate = _piece(self.schedules[0], hi + lo, dt)
    exact = jnp.issubdtype(step.dtype, jnp.integer) and jnp.issubdtype(bounds.dtype, jnp.integer)
    if exact:  # integer steps and boundaries: switch on the exact step, up to 2**31-1
      it = jnp.promote_types(step.dtype, bounds.dtype)
      ints = jnp.maximum(step, 0).astype(it)
    for i, s in enumerate(self.schedules[1:]):
      if exact:
        local = (ints - bounds[i].astype(it)).astype(dt)  # sign exact; value within one rounding
      else:
        local = (hi - as_float(bounds[i], dt)) + lo  # exact sign for integer steps
      rate = jnp.where(local < 0, rate, _piece(s, jnp.maximum(local, 0), dt))
    return poison(rate, self.valid())


@register("join")
def join(schedules: Sequence[Schedule | Callable], boundaries: ArrayLike) -> Join:
  """Runs ``schedules`` one after another, each from its own step 0, switching at ``boundaries``.

  With boundaries b_1 <= ... <= b_{n-1} (and b_0 = 0)::

      lr(t) = s_i(t - b_i)      for b_i <= t < b_{i+1}

  Piece i + 1 takes over at ``t >= b_{i+1}`` (the boundary step already belongs to it) and sees local
  time. Same as ``optax.join_schedules`` and ``torch.optim.lr_scheduler.SequentialLR(schedulers,
  milestones=boundaries)`` (for schedulers whose rate does not depend on the optimizer's current lr).
  Unlike Optax's, ``boundaries`` is a pytree leaf, so it can be traced and vmapped. With integer
  steps and integer boundaries the switch lands on the exact step up to 2**31-1 (float32 alone
  rounds steps above 2**24).

  Args:
    schedules: a non-empty sequence of lr_jax schedules or ``step -> rate`` callables (plain
      callables work but cannot be serialized by ``to_config``).
    boundaries: ``len(schedules) - 1`` non-negative, non-decreasing steps.

  Returns:
    A ``Join`` schedule (a pytree holding the pieces as children).

  Raises:
    ValueError: if ``boundaries`` has the wrong length, or concrete boundaries are negative or not
      sorted. Traced invalid boundaries give NaN rates.

  References:
    PyTorch, `SequentialLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.SequentialLR.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> a = schedules.cosine_annealing(0.1, total_steps=2)
    >>> b = schedules.cosine_annealing(1.0, total_steps=4)
    >>> lr = schedules.join([a, b], boundaries=[3])
    >>> print(*(f"{lr(t):.2f}" for t in range(8)))
    0.10 0.05 0.00 1.00 0.85 0.50 0.15 0.00
  """
  fn = "join"
  if isinstance(schedules, (str, bytes)) or not isinstance(schedules, Sequence) or not schedules:
    raise ValueError(
      f"{fn}: `schedules` must be a non-empty sequence of schedules, got schedules={schedules!r}."
    )
  schedules = tuple(as_schedule(s, fn=fn, name="schedules") for s in schedules)
  boundaries = number(_stack_traced(boundaries), fn=fn, name="boundaries", allow_array=True)
  if jnp.shape(boundaries) != (len(schedules) - 1,):
    raise ValueError(
      f"{fn}: `boundaries` must be a 1-D sequence of len(schedules) - 1 = {len(schedules) - 1} steps, "
      f"got boundaries with shape {jnp.shape(boundaries)}."
    )
  check(
    valid_all(boundaries >= 0, _nondecreasing(boundaries)),
    fn=fn,
    must="`boundaries` must be >= 0 and non-decreasing",
    boundaries=boundaries,
  )
  return Join(schedules, boundaries)


@schedule_class
class Multiply(Schedule):
  """See :func:`multiply`."""

  schedules: tuple
  name = "multiply"

  def __call__(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    t = as_step(step, dt)
    rate = _piece(self.schedules[0], t, dt)
    for s in self.schedules[1:]:
      rate = rate * _piece(s, t, dt)
    return rate


@register("multiply")
def multiply(*schedules: Schedule | Callable) -> Multiply:
  """The pointwise product of schedules.

  ::

      lr(t) = s_1(t) * s_2(t) * ... * s_n(t)

  Use it to put an envelope on a schedule (a cyclic rate times an exponential decay) or to scale one
  by a factor schedule. PyTorch's twin is ``ChainedScheduler`` of multiplicative (recursive)
  schedulers, e.g. ``[ExponentialLR, CosineAnnealingLR(eta_min=0)]``; ``ChainedScheduler`` is a
  product only when every scheduler is recursive (``eta_min=0``), while this is always the product.

  Args:
    *schedules: one or more lr_jax schedules or ``step -> rate`` callables (plain callables work but
      cannot be serialized by ``to_config``).

  Returns:
    A ``Multiply`` schedule (a pytree holding the factors as children).

  Raises:
    ValueError: if no schedule is given or one is not callable.

  References:
    PyTorch, `ChainedScheduler
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ChainedScheduler.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.multiply(schedules.cosine_annealing(2.0, 4), lambda t: 0.5)
    >>> print(*(f"{lr(t):.2f}" for t in range(5)))
    1.00 0.85 0.50 0.15 0.00
  """
  fn = "multiply"
  if not schedules:
    raise ValueError(f"{fn}: `schedules` must hold at least one schedule, got schedules=().")
  return Multiply(tuple(as_schedule(s, fn=fn, name="schedules") for s in schedules))
