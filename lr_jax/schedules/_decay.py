"""Decay schedules: constant, step, multi-step, exponential, inverse-time, polynomial, linear, piecewise.

Each is a frozen pytree dataclass (numeric hyperparameters are leaves, ``staircase`` is static)
built by a validating public constructor. Concrete bad values raise ``ValueError``; traced ones
make the rates NaN (``valid()``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lr_jax._validation import NONDECREASING, WHOLE, Rule, between, ge, gt, is_traced, poison
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
from lr_jax.schedules._steps import _decay_progress, _floor_div, _passed, _remainder

__all__ = [
  "constant",
  "exponential_decay",
  "inverse_time_decay",
  "linear",
  "multistep_decay",
  "piecewise_constant",
  "polynomial_decay",
  "step_decay",
]


# --------------------------------------------------------------------------------------------------
# constant


@schedule_class
class Constant(Schedule):
  """See :func:`constant`."""

  value: ArrayLike = hyper()
  name = "constant"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    t = as_step(step, dt)
    return poison(as_float(self.value, dt) * jnp.ones_like(t), self.valid())


@register("constant")
def constant(value: ArrayLike) -> Constant:
  """The same rate ``value`` at every step.

  ::

      lr(t) = value

  Matches ``torch.optim.lr_scheduler.ConstantLR(factor=1.0)`` (with ``value`` the optimizer's lr)
  and ``optax.constant_schedule(value)``; unlike Optax's, the result has the shape of ``step``.

  Args:
    value: the rate; any finite number.

  Returns:
    A ``Constant`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if ``value`` is not a finite number.

  References:
    PyTorch, `ConstantLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ConstantLR.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.constant(0.1)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 10, 1000)))
    0.10 0.10 0.10
  """
  return Constant.build("constant", value=value)


# --------------------------------------------------------------------------------------------------
# step_decay


@schedule_class
class StepDecay(Schedule):
  """See :func:`step_decay`."""

  init_value: ArrayLike = hyper()
  step_size: ArrayLike = hyper(rules=(gt(0),))
  gamma: ArrayLike = hyper(0.1, rules=(between(0, 1, open_lo=True),))
  name = "step_decay"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, size, gamma = (as_float(x, dt) for x in (self.init_value, self.step_size, self.gamma))
    size = jnp.where(size > 0, size, 1)  # keeps an invalid lane's arithmetic finite before poisoning
    k = _floor_div(step, size, dt)
    return poison(init * jnp.power(gamma, k), self.valid())


@register("step_decay")
def step_decay(init_value: ArrayLike, step_size: ArrayLike, gamma: ArrayLike = 0.1) -> StepDecay:
  """Multiplies the rate by ``gamma`` every ``step_size`` steps.

  ::

      lr(t) = init * gamma ** floor(t / step_size)

  Matches ``torch.optim.lr_scheduler.StepLR(step_size, gamma)`` with ``init_value`` the optimizer's lr,
  and Keras ``ExponentialDecay(init, decay_steps=step_size, decay_rate=gamma, staircase=True)``.
  Differences: ``step_size`` may be any positive real (PyTorch requires an int) and may be traced;
  ``gamma`` must be in (0, 1] (PyTorch also accepts growth, which overflows long before 2**31 steps).

  Args:
    init_value: rate for steps ``[0, step_size)``.
    step_size: steps between two drops; must be > 0.
    gamma: factor applied at each drop; must be in (0, 1].

  Returns:
    A ``StepDecay`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    PyTorch, `StepLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.StepLR.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.step_decay(1.0, step_size=30, gamma=0.1)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 29, 30, 60)))
    1.00 1.00 0.10 0.01
  """
  return StepDecay.build("step_decay", init_value=init_value, step_size=step_size, gamma=gamma)


# --------------------------------------------------------------------------------------------------
# multistep_decay


@schedule_class
class MultistepDecay(Schedule):
  """See :func:`multistep_decay`."""

  init_value: ArrayLike = hyper()
  milestones: ArrayLike = hyper(rules=(ge(0), WHOLE, NONDECREASING), array=True)
  gamma: ArrayLike = hyper(0.1, rules=(gt(0),))
  name = "multistep_decay"
  rules = (
    Rule(
      ("init_value", "milestones", "gamma"),
      lambda init, milestones, gamma: _finite_peak(init, gamma, np.shape(milestones)[0]),
      "`gamma` ** len(milestones) * |init_value| must stay finite in float32",
    ),
  )

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, milestones, gamma = (as_float(x, dt) for x in (self.init_value, self.milestones, self.gamma))
    # gamma ** (milestones passed) as a product of one factor per milestone (a duplicated milestone
    # counts twice): a few multiplies per step instead of a per-element power, and PyTorch's
    # repeated multiplication.
    passed = _passed(step, milestones, dt, strict=False)  # drops at t == milestone
    return poison(init * jnp.prod(jnp.where(passed, gamma, 1), axis=-1), self.valid())


def _finite_peak(init, gamma, n: int):
  """``|init| * gamma ** n`` is finite in float32 (growth, ``gamma > 1``, may overflow)."""
  if is_traced((init, gamma)):
    return jnp.isfinite(jnp.abs(as_float(init, jnp.float32)) * jnp.power(as_float(gamma, jnp.float32), n))
  return np.abs(np.float64(init)) * np.float64(gamma) ** n <= np.finfo(np.float32).max


@register("multistep_decay")
def multistep_decay(init_value: ArrayLike, milestones: ArrayLike, gamma: ArrayLike = 0.1) -> MultistepDecay:
  """Multiplies the rate by ``gamma`` at each milestone.

  ::

      lr(t) = init * gamma ** #{i : milestones[i] <= t}

  Matches ``torch.optim.lr_scheduler.MultiStepLR(milestones, gamma)`` with ``init_value`` the
  optimizer's lr: the rate drops *at* ``t == milestone``, and a milestone listed k times applies
  ``gamma ** k`` (PyTorch counts milestones with a ``Counter``). ``milestones`` is one array leaf, so
  it can be traced and vmapped (a batch of milestone lists of the same length). Differences: the
  milestones must be sorted (PyTorch sorts them), and ``gamma > 1`` (growth) is allowed, as in PyTorch.

  Args:
    init_value: rate before the first milestone.
    milestones: non-decreasing whole numbers >= 0 (a list or 1-D array; may be empty).
    gamma: factor applied at each milestone; must be > 0.

  Returns:
    A ``MultistepDecay`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range or ``milestones`` is not 1-D. Traced
      invalid values give NaN rates.

  References:
    PyTorch, `MultiStepLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.MultiStepLR.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.multistep_decay(1.0, milestones=[30, 80], gamma=0.1)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 29, 30, 79, 80)))
    1.00 1.00 0.10 0.10 0.01
  """
  return MultistepDecay.build("multistep_decay", init_value=init_value, milestones=milestones, gamma=gamma)


# --------------------------------------------------------------------------------------------------
# exponential_decay


@schedule_class
class ExponentialDecay(Schedule):
  """See :func:`exponential_decay`."""

  init_value: ArrayLike = hyper()
  gamma: ArrayLike = hyper(rules=(gt(0),))
  decay_steps: ArrayLike = hyper(1, rules=(gt(0),))
  staircase: bool = static_field(False)
  transition_begin: ArrayLike = hyper(0, rules=(ge(0), WHOLE))
  end_value: ArrayLike | None = hyper(None)  # None: no bound (a pytree node without leaves)
  name = "exponential_decay"
  rules = (
    Rule(
      ("gamma",),
      lambda g: g <= 1,
      "`gamma` must be in (0, 1] without `end_value` (growth needs `end_value` as its ceiling)",
      when=lambda v: v["end_value"] is None,
    ),
    Rule(
      ("init_value", "gamma"),
      lambda init, g: (g <= 1) | (init > 0),
      "`init_value` must be > 0 when `gamma` > 1 (growth toward the `end_value` ceiling)",
      when=lambda v: v["end_value"] is not None,
    ),
  )

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, gamma, ds = (as_float(x, dt) for x in (self.init_value, self.gamma, self.decay_steps))
    p = _decay_progress(_shift(step, self.transition_begin, dt), ds, dt, self.staircase)
    if self.end_value is None:
      return poison(init * jnp.power(gamma, p), self.valid())
    end = as_float(self.end_value, dt)
    grow = gamma >= 1
    # gamma < 1: `end_value` is a floor (a growing lane's gamma is replaced here: no overflow to inf)
    decayed = jnp.maximum(init * jnp.power(jnp.where(grow, 1, gamma), p), end)
    # gamma >= 1: a ceiling. Growth reaches it at p_hit = log(end / init) / log(gamma) (init > 0); the
    # exponent is capped one factor of gamma past that point, so the power never overflows to inf
    # (nor its gradient to NaN) and the ceiling is exact on the plateau.
    ratio = end / jnp.where(init > 0, init, 1)
    lratio = jnp.log(jnp.where(ratio > 1, ratio, 1))  # end <= init: capped at p = 1, then min gives end
    cap = lratio / jnp.log(jnp.where(gamma > 1, gamma, 2)) + 1  # gamma == 1: any cap (1 ** p == 1)
    grown = init * jnp.power(jnp.where(grow, gamma, 1), jnp.minimum(p, cap))
    return poison(jnp.where(grow, jnp.minimum(grown, end), decayed), self.valid())


def _shift(step: ArrayLike, begin: ArrayLike, dt):
  """``max(step - begin, 0)``: exact integer arithmetic for integer steps (``begin`` is whole)."""
  step = jnp.asarray(step)
  if jnp.issubdtype(step.dtype, jnp.integer):
    s = jnp.maximum(step, 0)
    s = s.astype(jnp.int32) if s.dtype.itemsize < 4 else s
    b = jnp.clip(jnp.round(as_float(begin, dt)), 0, 2**31 - 1 - 2**7)  # float32-safe int32 bound
    return jnp.maximum(s - b.astype(s.dtype), 0)
  return jnp.maximum(as_step(step, dt) - as_float(begin, dt), 0)


@register("exponential_decay")
def exponential_decay(
  init_value: ArrayLike,
  gamma: ArrayLike,
  decay_steps: ArrayLike = 1,
  staircase: bool = False,
  transition_begin: ArrayLike = 0,
  end_value: ArrayLike | None = None,
) -> ExponentialDecay:
  """Exponential decay by ``gamma`` every ``decay_steps`` steps (continuously, or in stairs).

  With b = ``transition_begin``::

      p = max(t - b, 0) / decay_steps            (floor of it if staircase)
      lr(t) = init * gamma ** p
      lr(t) = max(lr(t), end_value)              if end_value is given and gamma < 1 (a floor)
      lr(t) = min(lr(t), end_value)              if end_value is given and gamma >= 1 (a ceiling)

  With ``decay_steps=1`` this is ``torch.optim.lr_scheduler.ExponentialLR(gamma)`` (``init_value``
  the optimizer's lr); in general it is Keras ``ExponentialDecay(init, decay_steps,
  decay_rate=gamma, staircase)`` and exactly Optax ``exponential_decay(init, transition_steps=
  decay_steps, decay_rate=gamma, transition_begin=b, staircase=staircase, end_value=end_value)``,
  including Optax's choice of floor or ceiling. Unlike Optax's, ``gamma``, ``decay_steps``,
  ``transition_begin`` and ``end_value`` can be traced (vmap over them; the floor/ceiling choice
  follows the traced ``gamma``). Growth (``gamma > 1``, allowed by PyTorch, Keras and Optax) needs
  ``end_value`` as its ceiling and ``init_value > 0``; without a ceiling it would overflow to inf
  long before step 2**31, so it is rejected (for a warm-up use :func:`warmup`). Optax turns
  ``transition_steps <= 0`` or ``decay_rate == 0`` into a constant and a negative
  ``transition_begin`` into 0 with a log message; here those are errors.

  Args:
    init_value: rate for steps ``t <= transition_begin``.
    gamma: factor per ``decay_steps`` steps; must be in (0, 1], or > 0 with ``end_value``.
    decay_steps: steps per factor ``gamma``; must be > 0.
    staircase: if True, decay in discrete stairs (static, not traceable).
    transition_begin: steps to hold ``init_value`` before decaying; a whole number >= 0.
    end_value: ``None`` (no bound), or the floor (decay) or ceiling (growth) of the rate.

  Returns:
    An ``ExponentialDecay`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    Keras, `ExponentialDecay <https://keras.io/api/optimizers/learning_rate_schedules/exponential_decay/>`_;
    Optax, `exponential_decay <https://optax.readthedocs.io/en/latest/api/optimizer_schedules.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.exponential_decay(1.0, gamma=0.5, decay_steps=10)
    >>> print(*(f"{lr(t):.3f}" for t in (0, 5, 10, 20)))
    1.000 0.707 0.500 0.250
    >>> stairs = schedules.exponential_decay(1.0, gamma=0.5, decay_steps=10, staircase=True)
    >>> print(*(f"{stairs(t):.3f}" for t in (0, 9, 10, 20)))
    1.000 1.000 0.500 0.250
    >>> floor = schedules.exponential_decay(1.0, 0.5, 10, transition_begin=5, end_value=0.3)
    >>> print(*(f"{floor(t):.3f}" for t in (0, 5, 15, 25, 100)))
    1.000 1.000 0.500 0.300 0.300
    >>> grow = schedules.exponential_decay(0.1, 2.0, 10, end_value=1.0)
    >>> print(*(f"{grow(t):.3f}" for t in (0, 10, 20, 30, 40, 10**6)))
    0.100 0.200 0.400 0.800 1.000 1.000
  """
  fn = "exponential_decay"
  return ExponentialDecay.build(
    fn,
    init_value=init_value,
    gamma=gamma,
    decay_steps=decay_steps,
    staircase=staircase,
    transition_begin=transition_begin,
    end_value=end_value,
  )


# --------------------------------------------------------------------------------------------------
# inverse_time_decay


@schedule_class
class InverseTimeDecay(Schedule):
  """See :func:`inverse_time_decay`."""

  init_value: ArrayLike = hyper()
  decay_rate: ArrayLike = hyper(rules=(ge(0),))
  decay_steps: ArrayLike = hyper(1, rules=(gt(0),))
  staircase: bool = static_field(False)
  name = "inverse_time_decay"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, rate, ds = (as_float(x, dt) for x in (self.init_value, self.decay_rate, self.decay_steps))
    rate = jnp.maximum(rate, 0)  # keeps an invalid lane finite before poisoning
    p = _decay_progress(step, ds, dt, self.staircase)
    return poison(init / (1 + rate * p), self.valid())


@register("inverse_time_decay")
def inverse_time_decay(
  init_value: ArrayLike, decay_rate: ArrayLike, decay_steps: ArrayLike = 1, staircase: bool = False
) -> InverseTimeDecay:
  """The "1/t" decay.

  ::

      p = t / decay_steps            (floor(t / decay_steps) if staircase)
      lr(t) = init / (1 + decay_rate * p)

  Matches Keras ``InverseTimeDecay(init, decay_steps, decay_rate, staircase)``. PyTorch has it only
  inside ``Adagrad(lr_decay=...)`` (``lr / (1 + (k - 1) * lr_decay)``, with k counted from 1), which
  is ``inverse_time_decay(lr, decay_rate=lr_decay)`` at step ``k - 1``. ``decay_rate`` must be >= 0
  (Keras accepts negative rates, which divide by zero).

  Args:
    init_value: rate at step 0.
    decay_rate: must be >= 0 (0 gives a constant).
    decay_steps: time unit of the decay; must be > 0.
    staircase: if True, decay in discrete stairs (static, not traceable).

  Returns:
    An ``InverseTimeDecay`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    Keras, `InverseTimeDecay <https://keras.io/api/optimizers/learning_rate_schedules/inverse_time_decay/>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.inverse_time_decay(1.0, decay_rate=0.5, decay_steps=10)
    >>> print(*(f"{lr(t):.3f}" for t in (0, 10, 20, 100)))
    1.000 0.667 0.500 0.167
  """
  return InverseTimeDecay.build(
    "inverse_time_decay",
    init_value=init_value,
    decay_rate=decay_rate,
    decay_steps=decay_steps,
    staircase=staircase,
  )


# --------------------------------------------------------------------------------------------------
# polynomial_decay


@schedule_class
class PolynomialDecay(Schedule):
  """See :func:`polynomial_decay`."""

  init_value: ArrayLike = hyper()
  total_steps: ArrayLike = hyper(rules=(gt(0),))
  end_value: ArrayLike = hyper(0.0)
  power: ArrayLike = hyper(1.0, rules=(ge(0),))
  cycle: bool = static_field(False)
  name = "polynomial_decay"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, total, end, power = (
      as_float(x, dt) for x in (self.init_value, self.total_steps, self.end_value, self.power)
    )
    total = jnp.where(total > 0, total, 1)
    t = as_step(step, dt)
    if self.cycle:  # Keras: the horizon is the first multiple of T at or past t (T itself at t = 0)
      ceil = _floor_div(step, total, dt) + (_remainder(step, total, dt) > 0).astype(dt)  # ceil(t / T)
      k = jnp.maximum(ceil, 1)
      horizon = total * k
      remaining = jnp.clip(horizon - t, 0, horizon) / horizon
    else:
      remaining = jnp.clip(total - t, 0, total) / total  # 1 - min(t, T) / T, exact at T
    return poison(end + (init - end) * jnp.power(remaining, power), self.valid())


@register("polynomial_decay")
def polynomial_decay(
  init_value: ArrayLike,
  total_steps: ArrayLike,
  end_value: ArrayLike = 0.0,
  power: ArrayLike = 1.0,
  cycle: bool = False,
) -> PolynomialDecay:
  """Polynomial decay from ``init_value`` to ``end_value`` over ``total_steps``, then ``end_value``.

  With T = ``total_steps``::

      lr(t) = end + (init - end) * (1 - min(t, T) / T) ** power                    cycle=False
      lr(t) = end + (init - end) * (1 - t / H) ** power,  H = T * max(ceil(t / T), 1)   cycle=True

  With ``cycle=True`` (Keras ``PolynomialDecay(cycle=True)``) the horizon H grows to the first
  multiple of T at or past t, so the rate reaches ``end_value`` at t = T, 2T, 3T, ... and jumps back
  up right after each (to ``end + (init - end) * (1 - (kT + 1) / ((k + 1) T)) ** power``: a lower
  peak each cycle); at t = 0 the horizon is T (Keras's multiplier 1 at step 0). The formula is
  Keras 3's, ``keras/src/optimizers/schedules/learning_rate_schedule.py`` (``PolynomialDecay.__call__``,
  keras-team/keras commit 2534b64), written here independently; for integer steps the multiple is
  found with exact integer arithmetic.

  With ``end_value=0`` this is ``torch.optim.lr_scheduler.PolynomialLR(total_iters=T, power)``
  (``init_value`` the optimizer's lr; PyTorch always decays to 0). It is also Optax
  ``polynomial_schedule(init, end, power, transition_steps=T)`` and Keras ``PolynomialDecay(init, T,
  end, power, cycle=False)``. Unlike Optax's, ``total_steps`` can be traced (Optax branches on it in
  Python). ``power`` must be >= 0; ``power=0`` gives a constant ``init_value``. HF transformers'
  ``get_polynomial_decay_schedule_with_warmup(W, N, lr_end, power)`` (optimizer lr ``lr``) is
  ``warmup(polynomial_decay(lr, N - W, lr_end, power), W)`` (see :func:`warmup`).

  Args:
    init_value: rate at step 0.
    total_steps: length of the decay; must be > 0.
    end_value: rate at and after ``total_steps``.
    power: exponent of the decay; must be >= 0.
    cycle: if True, restart the decay over a longer horizon after each multiple of T (static).

  Returns:
    A ``PolynomialDecay`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    PyTorch, `PolynomialLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.PolynomialLR.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.polynomial_decay(1.0, total_steps=100, power=2.0)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 50, 100, 200)))
    1.00 0.25 0.00 0.00
    >>> cyc = schedules.polynomial_decay(1.0, total_steps=10, cycle=True)
    >>> print(*(f"{cyc(t):.2f}" for t in (0, 5, 10, 11, 15, 20, 21, 30)))
    1.00 0.50 0.00 0.45 0.25 0.00 0.30 0.00
  """
  return PolynomialDecay.build(
    "polynomial_decay",
    init_value=init_value,
    total_steps=total_steps,
    end_value=end_value,
    power=power,
    cycle=cycle,
  )


# --------------------------------------------------------------------------------------------------
# linear


@schedule_class
class Linear(Schedule):
  """See :func:`linear`."""

  init_value: ArrayLike = hyper()
  end_value: ArrayLike = hyper()
  total_steps: ArrayLike = hyper(rules=(gt(0),))
  name = "linear"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, end, total = (as_float(x, dt) for x in (self.init_value, self.end_value, self.total_steps))
    total = jnp.where(total > 0, total, 1)
    # A two-sided lerp: init + (end - init) * pct is exact near pct = 0 and end + (init - end) * (1 - pct)
    # near pct = 1; each is used on its own half, so neither end cancels in float32.
    t = jnp.clip(as_step(step, dt), 0, total)
    done, remaining = t / total, (total - t) / total
    rate = jnp.where(done < 0.5, init + (end - init) * done, end + (init - end) * remaining)
    return poison(rate, self.valid())


@register("linear")
def linear(init_value: ArrayLike, end_value: ArrayLike, total_steps: ArrayLike) -> Linear:
  """Linear interpolation from ``init_value`` to ``end_value`` over ``total_steps``, then ``end_value``.

  With T = ``total_steps``::

      lr(t) = init + (end - init) * min(t, T) / T

  (computed as ``end + (init - end) * (1 - min(t, T) / T)``, which is exact at t = T in float32).
  Matches ``torch.optim.lr_scheduler.LinearLR(start_factor=init/base, end_factor=end/base,
  total_iters=T)`` for an optimizer lr ``base``, and Optax ``linear_schedule(init, end,
  transition_steps=T)``. Differences: values are absolute rates, not factors <= 1 of a base rate, and
  ``total_steps`` may be traced.

  Args:
    init_value: rate at step 0.
    end_value: rate at and after ``total_steps``.
    total_steps: length of the ramp; must be > 0.

  Returns:
    A ``Linear`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    PyTorch, `LinearLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.LinearLR.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.linear(0.1, 1.0, total_steps=10)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 5, 10, 20)))
    0.10 0.55 1.00 1.00
  """
  return Linear.build("linear", init_value=init_value, end_value=end_value, total_steps=total_steps)


# --------------------------------------------------------------------------------------------------
# piecewise_constant


@schedule_class
class PiecewiseConstant(Schedule):
  """See :func:`piecewise_constant`."""

  boundaries: ArrayLike = hyper(rules=(NONDECREASING,), array=True)
  values: ArrayLike = hyper(array=True)
  name = "piecewise_constant"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    boundaries, values = as_float(self.boundaries, dt), as_float(self.values, dt)
    passed = _passed(step, boundaries, dt, strict=True)  # a boundary step keeps the old value (Keras)
    rate = jnp.broadcast_to(values[0], passed.shape[:-1])
    # Boundaries are sorted: a chain of selects (cheaper than a gather on CPU).
    for i in range(boundaries.shape[0]):
      rate = jnp.where(passed[..., i], values[i + 1], rate)
    return poison(rate, self.valid())


@register("piecewise_constant")
def piecewise_constant(boundaries: ArrayLike, values: ArrayLike) -> PiecewiseConstant:
  """Constant pieces: ``values[i]`` between consecutive ``boundaries``.

  With b = ``boundaries`` (n of them) and v = ``values`` (n + 1)::

      lr(t) = v[0]   if t <= b[0]
              v[i]   if b[i-1] < t <= b[i]
              v[n]   if t > b[n-1]

  Matches Keras ``PiecewiseConstantDecay(boundaries, values)``: a boundary step still has the old
  value, so the switch happens at ``t = b + 1``. (Optax's ``piecewise_constant_schedule`` switches at
  ``t = b`` and takes cumulative scales; MultiStepLR, i.e. :func:`multistep_decay`, also switches at
  ``t = b``.) Both arguments are array leaves, so they can be traced and vmapped.

  Args:
    boundaries: non-decreasing steps (a list or 1-D array; may be empty).
    values: the rates, one more than ``boundaries``.

  Returns:
    A ``PiecewiseConstant`` schedule.

  Raises:
    ValueError: if the lengths do not match, an argument is not 1-D, or concrete ``boundaries`` are
      not sorted. Traced unsorted boundaries give NaN rates.

  References:
    Keras, `PiecewiseConstantDecay <https://keras.io/api/optimizers/learning_rate_schedules/piecewise_constant_decay/>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.piecewise_constant(boundaries=[10, 20], values=[1.0, 0.5, 0.1])
    >>> print(*(f"{lr(t):.2f}" for t in (0, 10, 11, 20, 21)))
    1.00 1.00 0.50 0.50 0.10
  """
  fn = "piecewise_constant"
  s = PiecewiseConstant.build(fn, boundaries=boundaries, values=values)
  if jnp.shape(s.values)[0] != jnp.shape(s.boundaries)[0] + 1:
    raise ValueError(
      f"{fn}: `values` must have one more entry than `boundaries`, got {jnp.shape(s.values)[0]} values "
      f"and {jnp.shape(s.boundaries)[0]} boundaries."
    )
  return s
