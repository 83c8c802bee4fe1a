"""Composing schedules: ``join`` (one after another) and ``multiply`` (pointwise product)."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lr_jax._validation import NONDECREASING, WHOLE, ge, number, poison
from lr_jax.schedules._base import (
  ArrayLike,
  Schedule,
  as_float,
  as_schedule,
  as_step,
  child,
  hyper,
  register,
  schedule_class,
)
from lr_jax.schedules._steps import _floor_div, _split_step

__all__ = ["add", "join", "multiply", "per_epoch"]


def _term(s, *, fn: str):
  """A term of ``multiply``/``add``: a number becomes ``constant(s)``; a callable is wrapped."""
  from lr_jax.schedules._decay import constant

  if isinstance(s, (numbers.Real, np.ndarray, np.generic, jax.Array)) and not isinstance(s, bool):
    return constant(number(s, fn=fn, name="schedules"))
  return as_schedule(s, fn=fn, name="schedules")


def _piece(s: Schedule, t: jax.Array, dt) -> jax.Array:
  """``s(t)`` as ``dt``, broadcast to ``t``'s shape (a plain callable may return a scalar)."""
  return jnp.broadcast_to(as_float(s(t), dt), t.shape)


@schedule_class
class Join(Schedule):
  """See :func:`join`."""

  schedules: tuple
  boundaries: ArrayLike = hyper(rules=(ge(0), NONDECREASING), array=True)
  name = "join"

  def _eval(self, step: ArrayLike) -> jax.Array:
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
  scalar = isinstance(boundaries, numbers.Real) or getattr(boundaries, "ndim", None) == 0
  out = None if scalar else Join.build(fn, schedules=schedules, boundaries=boundaries)
  if scalar or jnp.shape(out.boundaries) != (len(schedules) - 1,):
    raise ValueError(
      f"{fn}: `boundaries` must be a 1-D sequence of len(schedules) - 1 = {len(schedules) - 1} steps, "
      f"got boundaries with shape {jnp.shape(boundaries if scalar else out.boundaries)}."
    )
  return out


@schedule_class
class Multiply(Schedule):
  """See :func:`multiply`."""

  schedules: tuple
  name = "multiply"

  def _eval(self, step: ArrayLike) -> jax.Array:
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
    *schedules: one or more lr_jax schedules, ``step -> rate`` callables (plain callables work but
      cannot be serialized by ``to_config``) or numbers (as :func:`constant`; ``multiply(s, 0.5)``).

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
  return Multiply(tuple(_term(s, fn=fn) for s in schedules))


@schedule_class
class Add(Schedule):
  """See :func:`add`."""

  schedules: tuple
  name = "add"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    t = as_step(step, dt)
    rate = _piece(self.schedules[0], t, dt)
    for s in self.schedules[1:]:
      rate = rate + _piece(s, t, dt)
    return rate


@register("add")
def add(*schedules: Schedule | Callable) -> Add:
  """The pointwise sum of schedules (what ``s + t`` and ``s - t`` build).

  ::

      lr(t) = s_1(t) + s_2(t) + ... + s_n(t)

  Schedules support arithmetic with numbers and with each other: ``0.5 * s`` and ``s * t`` give
  :func:`multiply`, ``s + t`` and ``s + 0.1`` give ``add``, ``s - t`` is ``add(s, multiply(constant(-1),
  t))``, ``s / 2`` is ``multiply(s, constant(0.5))`` (a number becomes :func:`constant`). The results
  are schedule values like any other: pytrees (the numbers are leaves, so they can be traced) with a
  JSON config. PyTorch has no such operators (a ``LambdaLR`` writes them by hand).

  Args:
    *schedules: one or more lr_jax schedules, ``step -> rate`` callables (plain callables work but
      cannot be serialized by ``to_config``) or numbers (as :func:`constant`).

  Returns:
    An ``Add`` schedule (a pytree holding the terms as children).

  Raises:
    ValueError: if no schedule is given or one is not callable.

  References:
    PyTorch, `LambdaLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.LambdaLR.html>`_ (the hand-written form).

  Examples:
    >>> from lr_jax import schedules
    >>> cos = schedules.cosine_annealing(1.0, total_steps=4)
    >>> lr = 0.5 * cos + 0.1
    >>> print(*(f"{lr(t):.3f}" for t in range(5)))
    0.600 0.527 0.350 0.173 0.100
    >>> print(lr.to_config()["name"], f"{(cos / 2)(2):.2f}", f"{(cos - cos)(1):.2f}")
    add 0.25 0.00
  """
  fn = "add"
  if not schedules:
    raise ValueError(f"{fn}: `schedules` must hold at least one schedule, got schedules=().")
  return Add(tuple(_term(s, fn=fn) for s in schedules))


@schedule_class
class PerEpoch(Schedule):
  """See :func:`per_epoch`."""

  schedule: Schedule = child()
  steps_per_epoch: ArrayLike = hyper(rules=(ge(1), WHOLE))
  name = "per_epoch"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    step = jnp.asarray(step)
    spe = as_float(self.steps_per_epoch, dt)
    spe = jnp.where(spe >= 1, jnp.round(spe), 1)  # keeps an invalid lane finite before poisoning
    epoch = _floor_div(step, spe, dt)  # exact for integer steps (a whole divisor)
    if jnp.issubdtype(step.dtype, jnp.integer):
      epoch = epoch.astype(jnp.int32)  # the inner schedule sees an integer epoch, as in PyTorch
    return poison(_piece(self.schedule, epoch, dt), self.valid())


@register("per_epoch")
def per_epoch(schedule: Schedule | Callable, steps_per_epoch: ArrayLike) -> PerEpoch:
  """A schedule stepped once per epoch: the rate is constant within an epoch.

  With E = ``steps_per_epoch`` and s = ``schedule`` (counted in epochs)::

      lr(t) = s(floor(t / E))

  This is PyTorch's usual loop, ``scheduler.step()`` once after each epoch of ``E`` optimizer
  steps: the rate of update t equals ``get_last_lr()`` after ``floor(t / E)`` scheduler steps. Pass
  the result as the optimizer's ``learning_rate``: Optax counts updates, and this converts. Integer
  steps give the inner schedule integer epochs (exact up to 2**31-1).

  Args:
    schedule: an lr_jax schedule or any ``epoch -> rate`` callable.
    steps_per_epoch: optimizer updates per epoch; a whole number >= 1 (may be traced).

  Returns:
    A ``PerEpoch`` schedule (a pytree holding ``schedule`` as a child).

  Raises:
    ValueError: if ``steps_per_epoch`` is not a whole number >= 1 (traced: NaN rates), or
      ``schedule`` is not callable.

  References:
    PyTorch, `How to adjust learning rate
    <https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.per_epoch(schedules.step_decay(1.0, step_size=2, gamma=0.5), steps_per_epoch=3)
    >>> print(*(f"{lr(t):.2f}" for t in range(0, 14, 2)))
    1.00 1.00 1.00 0.50 0.50 0.50 0.25
  """
  return PerEpoch.build("per_epoch", schedule=schedule, steps_per_epoch=steps_per_epoch)
