"""Cyclical learning rates: ``cyclic`` (PyTorch's ``CyclicLR``) and its momentum cycle ``cyclic_momentum``."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lr_jax._validation import Rule, choice, ge, gt, poison
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
from lr_jax.schedules._steps import _floor_div, _remainder

__all__ = ["cyclic", "cyclic_momentum"]

_MODES = ("triangular", "triangular2", "exp_range")
_SCALE_MODES = ("cycle", "iterations")


def _wave(step: ArrayLike, up: jax.Array, down: jax.Array, dt):
  """``(t, completed cycles, triangle wave in [0, 1])``, exact for integer steps up to 2**31-1."""
  t = as_step(step, dt)
  total = up + down
  # Completed cycles (PyTorch's ``cycle - 1``) and the position inside the current one (a float32
  # step alone loses the position past 2**24).
  done = _floor_div(step, total, dt)
  pos = jnp.clip(_remainder(step, total, dt), 0, total)
  rise = pos / up
  fall = (total - pos) / jnp.where(down > 0, down, 1)
  return t, done, jnp.where(pos <= up, rise, fall)


def _blend(lo, hi, w):
  """``lo + (hi - lo) * w``, exact at w = 0 and w = 1 (also when hi >> lo)."""
  return lo * (1 - w) + hi * w


def _builtin(lo, hi, height, done, t, mode: str, gamma):
  """The rate of PyTorch's built-in modes, going from ``lo`` (wave 0) to ``hi`` (wave 1).

  ``exp_range`` with ``gamma > 1`` (PyTorch allows it; its float ``gamma ** t`` raises OverflowError
  once it passes 1.8e308): the rate saturates at the largest finite float instead of becoming inf
  (and stays ``lo`` exactly at the bottom of each cycle, where ``0 * inf`` would be NaN).
  """
  if mode == "triangular":
    return _blend(lo, hi, height)
  if mode == "triangular2":
    return _blend(lo, hi, height * jnp.exp2(-done))
  scale = jnp.power(gamma, t)  # exp_range: gamma ** t per iteration
  big = jnp.finfo(scale.dtype).max
  grow = jnp.where(height > 0, jnp.clip(lo + (hi - lo) * (height * scale), -big, big), lo)
  return jnp.where(gamma > 1, grow, _blend(lo, hi, height * scale))


def _custom(lo, hi, height, done, step, scale_fn: Schedule, scale_mode: str, dt):
  """PyTorch's custom ``scale_fn``: at the cycle number (from 1) or at the iteration."""
  x = done + 1 if scale_mode == "cycle" else step
  return _blend(lo, hi, height * as_float(scale_fn(x), dt))


@schedule_class
class Cyclic(Schedule):
  """See :func:`cyclic`."""

  base_value: ArrayLike = hyper()
  max_value: ArrayLike = hyper()
  step_size_up: ArrayLike = hyper(2000, rules=(gt(0),))
  step_size_down: ArrayLike = hyper(2000, rules=(ge(0),))
  mode: str = static_field("triangular", options=_MODES)
  gamma: ArrayLike = hyper(1.0, rules=(gt(0),))
  name = "cyclic"
  rules = (Rule(("base_value", "max_value"), lambda b, m: b <= m, "`base_value` must be <= `max_value`"),)

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    base, peak, up, down, gamma = (
      as_float(x, dt)
      for x in (self.base_value, self.max_value, self.step_size_up, self.step_size_down, self.gamma)
    )
    t, done, height = _wave(step, up, down, dt)
    rate = _builtin(base, peak, height, done, t, self.mode, gamma)
    return poison(rate, self.valid())


@schedule_class
class CyclicScaled(Schedule):
  """See :func:`cyclic` (with a custom ``scale_fn``)."""

  base_value: ArrayLike = hyper()
  max_value: ArrayLike = hyper()
  step_size_up: ArrayLike = hyper(rules=(gt(0),))
  step_size_down: ArrayLike = hyper(rules=(ge(0),))
  scale_fn: Schedule = child()
  scale_mode: str = static_field("cycle", options=_SCALE_MODES)
  name = "cyclic"
  rules = Cyclic.rules

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    base, peak, up, down = (
      as_float(x, dt) for x in (self.base_value, self.max_value, self.step_size_up, self.step_size_down)
    )
    _, done, height = _wave(step, up, down, dt)
    rate = _custom(base, peak, height, done, step, self.scale_fn, self.scale_mode, dt)
    return poison(rate, self.valid())


@register("cyclic")
def cyclic(
  base_value: ArrayLike,
  max_value: ArrayLike,
  step_size_up: ArrayLike = 2000,
  step_size_down: ArrayLike | None = None,
  mode: str = "triangular",
  gamma: ArrayLike = 1.0,
  scale_fn: Schedule | Callable[[ArrayLike], ArrayLike] | None = None,
  scale_mode: str = "cycle",
) -> Cyclic | CyclicScaled:
  """Cyclical learning rate: a triangle wave between ``base_value`` and ``max_value``.

  With up = ``step_size_up``, down = ``step_size_down``, L = up + down, c = floor(t / L) (completed
  cycles) and p = t - c * L (position in the cycle)::

      h(t)  = p / up                 if p <= up      (rising)
            = (L - p) / down         otherwise       (falling)
      f(t)  = 1                      mode="triangular"
            = 1 / 2**c               mode="triangular2"  (amplitude halves every cycle)
            = gamma**t               mode="exp_range"    (per step, not per cycle)
            = scale_fn(c + 1)        scale_fn given, scale_mode="cycle" (PyTorch counts cycles from 1)
            = scale_fn(t)            scale_fn given, scale_mode="iterations"
      lr(t) = base + (max - base) * h(t) * f(t)

  Matches ``torch.optim.lr_scheduler.CyclicLR(base_lr=base, max_lr=max, step_size_up=up,
  step_size_down=down, mode=mode, gamma=gamma)`` (PyTorch writes triangular2's factor as
  ``1/2**(cycle-1)`` with cycles counted from 1; that is ``1/2**c`` here), and with a custom
  ``scale_fn`` / ``scale_mode`` (``mode`` and ``gamma`` are then unused, as in PyTorch). To stay a
  pytree with a JSON config, ``scale_fn`` is best an lr_jax schedule, which is called with the cycle
  number or the step (e.g. ``exponential_decay(1.0, 0.5)`` halves the amplitude each cycle from the
  second on); a plain callable works too, but cannot be serialized. PyTorch's momentum cycle
  (``cycle_momentum=True``) is :func:`cyclic_momentum`. ``gamma > 1`` (a growing amplitude) is
  allowed, as in PyTorch; where ``gamma**t`` passes the float range the rate saturates at the largest
  finite float (3.4e38 in float32) rather than becoming inf (PyTorch's Python float raises
  ``OverflowError``). ``gamma`` is ignored by the triangular modes. ``step_size_down=0`` gives a
  sawtooth. Step sizes may be real numbers, as in PyTorch (which takes ``float(step_size_up)``).

  Args:
    base_value: lower bound of the cycle (the rate at step 0); must be <= ``max_value`` (PyTorch
      does not check; a base above the max would turn the cycle upside down).
    max_value: upper bound of the cycle (reached at step ``step_size_up`` in the first cycle).
    step_size_up: steps in the rising half of a cycle; must be > 0.
    step_size_down: steps in the falling half; must be >= 0. ``None`` means ``step_size_up``.
    mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
    gamma: per-step factor of the amplitude in ``"exp_range"`` mode; must be > 0.
    scale_fn: ``None`` (use ``mode``) or a schedule (any ``x -> factor`` callable) for the amplitude.
    scale_mode: ``"cycle"`` (``scale_fn`` of the cycle number, from 1) or ``"iterations"`` (of the step).

  Returns:
    A ``Cyclic`` schedule (``CyclicScaled`` with a ``scale_fn``; pytrees).

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
    >>> halve = schedules.exponential_decay(2.0, 0.5)  # 2 * 0.5**x: 1, 1/2, 1/4 at cycles 1, 2, 3
    >>> lr = schedules.cyclic(0.1, 1.0, step_size_up=2, step_size_down=4, scale_fn=halve)
    >>> print(*(f"{lr(t):.3f}" for t in range(9)))
    0.100 0.550 1.000 0.775 0.550 0.325 0.100 0.325 0.550
  """
  down = step_size_up if step_size_down is None else step_size_down
  kw = {
    "base_value": base_value,
    "max_value": max_value,
    "step_size_up": step_size_up,
    "step_size_down": down,
  }
  if scale_fn is not None:
    choice(mode, _MODES, fn="cyclic", name="mode")
    return CyclicScaled.build("cyclic", **kw, scale_fn=scale_fn, scale_mode=scale_mode)
  choice(scale_mode, _SCALE_MODES, fn="cyclic", name="scale_mode")
  return Cyclic.build("cyclic", **kw, mode=mode, gamma=gamma)


_MOMENTUM_ORDER = Rule(
  ("base_momentum", "max_momentum"), lambda b, m: b <= m, "`base_momentum` must be <= `max_momentum`"
)


@schedule_class
class CyclicMomentum(Schedule):
  """See :func:`cyclic_momentum`."""

  base_momentum: ArrayLike = hyper(0.8)
  max_momentum: ArrayLike = hyper(0.9)
  step_size_up: ArrayLike = hyper(2000, rules=(gt(0),))
  step_size_down: ArrayLike = hyper(2000, rules=(ge(0),))
  mode: str = static_field("triangular", options=_MODES)
  gamma: ArrayLike = hyper(1.0, rules=(gt(0),))
  name = "cyclic_momentum"
  rules = (_MOMENTUM_ORDER,)

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    lo, hi, up, down, gamma = (
      as_float(x, dt)
      for x in (self.base_momentum, self.max_momentum, self.step_size_up, self.step_size_down, self.gamma)
    )
    t, done, height = _wave(step, up, down, dt)
    return poison(_builtin(hi, lo, height, done, t, self.mode, gamma), self.valid())


@schedule_class
class CyclicMomentumScaled(Schedule):
  """See :func:`cyclic_momentum` (with a custom ``scale_fn``)."""

  base_momentum: ArrayLike = hyper()
  max_momentum: ArrayLike = hyper()
  step_size_up: ArrayLike = hyper(rules=(gt(0),))
  step_size_down: ArrayLike = hyper(rules=(ge(0),))
  scale_fn: Schedule = child()
  scale_mode: str = static_field("cycle", options=_SCALE_MODES)
  name = "cyclic_momentum"
  rules = (_MOMENTUM_ORDER,)

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    lo, hi, up, down = (
      as_float(x, dt) for x in (self.base_momentum, self.max_momentum, self.step_size_up, self.step_size_down)
    )
    _, done, height = _wave(step, up, down, dt)
    return poison(_custom(hi, lo, height, done, step, self.scale_fn, self.scale_mode, dt), self.valid())


@register("cyclic_momentum")
def cyclic_momentum(
  base_momentum: ArrayLike = 0.8,
  max_momentum: ArrayLike = 0.9,
  step_size_up: ArrayLike = 2000,
  step_size_down: ArrayLike | None = None,
  mode: str = "triangular",
  gamma: ArrayLike = 1.0,
  scale_fn: Schedule | Callable[[ArrayLike], ArrayLike] | None = None,
  scale_mode: str = "cycle",
) -> CyclicMomentum | CyclicMomentumScaled:
  """The momentum cycle of PyTorch's ``CyclicLR``: from ``max_momentum`` down to ``base_momentum`` and back.

  With h(t) and f(t) the triangle wave and the amplitude factor of :func:`cyclic` (same step sizes,
  mode, ``gamma``, ``scale_fn`` and ``scale_mode``)::

      m(t) = max_momentum - (max_momentum - base_momentum) * h(t) * f(t)

  so the momentum is lowest where :func:`cyclic`'s rate is highest. Matches the momentum that
  ``torch.optim.lr_scheduler.CyclicLR(..., cycle_momentum=True, base_momentum=b, max_momentum=m)``
  writes into the optimizer (``momentum`` of SGD, ``betas[0]`` of Adam) after each ``step()``. Use it
  as ``b1`` / ``momentum`` through ``optax.inject_hyperparams``. ``gamma > 1`` saturates as in
  :func:`cyclic` (the momentum then falls without bound: keep ``gamma <= 1`` for a momentum).

  Args:
    base_momentum: lowest momentum (at the peak of the rate); must be <= ``max_momentum``.
    max_momentum: momentum at step 0 and at every cycle boundary.
    step_size_up: steps in the rising half of the rate (the falling half of the momentum); > 0.
    step_size_down: steps in the other half; >= 0. ``None`` means ``step_size_up``.
    mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
    gamma: per-step factor of the amplitude in ``"exp_range"`` mode; must be > 0.
    scale_fn: ``None`` (use ``mode``) or a schedule (any ``x -> factor`` callable) for the amplitude.
    scale_mode: ``"cycle"`` (``scale_fn`` of the cycle number, from 1) or ``"iterations"``.

  Returns:
    A ``CyclicMomentum`` schedule (``CyclicMomentumScaled`` with a ``scale_fn``; pytrees).

  Raises:
    ValueError: if a concrete hyperparameter is out of range or a mode is unknown. Traced invalid
      values give NaN momenta.

  References:
    Smith, `A disciplined approach to neural network hyper-parameters: Part 1
    <https://arxiv.org/abs/1803.09820>`_, 2018 (cyclical momentum).

  Examples:
    >>> from lr_jax import schedules
    >>> m = schedules.cyclic_momentum(0.8, 0.9, step_size_up=2)
    >>> print(*(f"{m(t):.2f}" for t in range(5)))
    0.90 0.85 0.80 0.85 0.90
  """
  down = step_size_up if step_size_down is None else step_size_down
  kw = {
    "base_momentum": base_momentum,
    "max_momentum": max_momentum,
    "step_size_up": step_size_up,
    "step_size_down": down,
  }
  if scale_fn is not None:
    choice(mode, _MODES, fn="cyclic_momentum", name="mode")
    return CyclicMomentumScaled.build("cyclic_momentum", **kw, scale_fn=scale_fn, scale_mode=scale_mode)
  choice(scale_mode, _SCALE_MODES, fn="cyclic_momentum", name="scale_mode")
  return CyclicMomentum.build("cyclic_momentum", **kw, mode=mode, gamma=gamma)
