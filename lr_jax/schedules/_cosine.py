"""Cosine schedules: ``cosine_annealing``, ``cosine_warm_restarts`` (SGDR, timm/Keras options) and the
Hugging Face twins ``cosine_with_min_lr`` and ``cosine_with_restarts``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lr_jax._validation import WHOLE, Rule, between, ge, gt, number, poison, static_equal
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

__all__ = ["cosine_annealing", "cosine_warm_restarts", "cosine_with_min_lr", "cosine_with_restarts"]


@schedule_class
class CosineAnnealing(Schedule):
  """See :func:`cosine_annealing`."""

  init_value: ArrayLike = hyper()
  total_steps: ArrayLike = hyper(rules=(gt(0),))
  end_value: ArrayLike = hyper(0.0)
  exponent: ArrayLike = hyper(1.0, rules=(gt(0),))
  name = "cosine_annealing"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, total, end, p = (
      as_float(x, dt) for x in (self.init_value, self.total_steps, self.end_value, self.exponent)
    )
    t = as_step(step, dt)
    # (1 + cos(pi * t / T)) / 2 == sin^2(pi/2 * (T - t) / T): exact near the end of the decay.
    remaining = jnp.clip(total - t, 0, total) / total
    remaining = jnp.where(total > 0, remaining, 0)  # a total that underflows to 0 (1e-60): end_value
    rate = end + (init - end) * _pow(jnp.square(jnp.sin(0.5 * jnp.pi * remaining)), p)
    return poison(rate, self.valid())


@register("cosine_annealing")
def cosine_annealing(
  init_value: ArrayLike, total_steps: ArrayLike, end_value: ArrayLike = 0.0, exponent: ArrayLike = 1.0
) -> CosineAnnealing:
  """Cosine annealing from ``init_value`` to ``end_value`` over ``total_steps``, then ``end_value``.

  With T = ``total_steps`` and p = ``exponent``::

      lr(t) = end + (init - end) * ((1 + cos(pi * min(t, T) / T)) / 2) ** p

  Matches ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T, eta_min=end)`` for t <= T (with
  ``init_value`` the optimizer's lr, p = 1); past T it holds ``end_value``, where PyTorch's climbs back
  up (period 2T). Matches Optax's ``cosine_decay_schedule(init, T, alpha=end / init, exponent=p)``
  (Optax takes the ratio ``alpha`` instead of ``end_value``); a warm-up cosine with an exponent
  (``optax.warmup_cosine_decay_schedule(..., exponent=p)``) is ``warmup(cosine_annealing(..., exponent=p),
  W)``. ``exponent=1`` (the default) computes exactly what it did before the option existed.

  Args:
    init_value: rate at step 0.
    total_steps: length of the decay; must be > 0.
    end_value: rate at and after ``total_steps``.
    exponent: power of the cosine factor (Optax's ``exponent``); must be > 0. Above 1 the rate falls
      sooner, below 1 later.

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
    >>> print(f"{schedules.cosine_annealing(1.0, total_steps=100, exponent=2.0)(50):.2f}")
    0.25
  """
  return CosineAnnealing.build(
    "cosine_annealing", init_value=init_value, total_steps=total_steps, end_value=end_value, exponent=exponent
  )


def _pow(x: jax.Array, p: jax.Array) -> jax.Array:
  """``x ** p`` for ``x`` in [0, 1], exactly ``x`` when ``p == 1`` (the default path stays bit-identical)."""
  pos = x > 0  # 0 ** p = 0 for p > 0, with finite gradients in p (log 0 is never taken)
  y = jnp.where(pos, jnp.power(jnp.where(pos, x, 1), p), 0)
  return _exactly_at_one(x, y, p)


def _exactly_at_one(x: jax.Array, y: jax.Array, p: jax.Array) -> jax.Array:
  """``y`` (a function of ``x`` and ``p`` that equals ``x`` at ``p == 1``, such as ``x ** p``), but
  exactly ``x`` where ``p == 1``, with ``y``'s derivatives there (in ``p`` too: ``x log x`` for a
  power, which a plain ``where(p == 1, x, y)`` would make 0)."""
  sg = jax.lax.stop_gradient
  return jnp.where(p == 1, sg(x) + (y - sg(y)), y)


def _pow_log(x: jax.Array, p: jax.Array) -> jax.Array:
  """``x ** p`` for ``x`` in [0, 1] as ``exp(p log x)``: cheaper than ``power`` for a run-time ``p``
  (no special cases), where XLA would not fold a constant ``p`` anyway (k-decay's 1.5)."""
  pos = x > 0
  return jnp.where(pos, jnp.exp(p * jnp.log(jnp.where(pos, x, 1))), 0)


def _power_and_sum(m: jax.Array, n: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(m**n, 1 + m + ... + m**(n-1))`` for whole ``0 <= n < 256``, by binary powering (8 bits).

  Exact while the results are representable (whole ``m``), unlike ``exp(n * log(m))``, so restarts
  fall exactly on integer steps. A whole ``m >= 2`` needs n < 256 for any float32 step.
  """
  k = n.astype(jnp.int32)
  p, g = jnp.ones_like(n), jnp.zeros_like(n)
  for bit in range(7, -1, -1):
    p, g = p * p, g * (1 + p)  # n -> 2n
    on = ((k >> bit) & 1) == 1
    p, g = jnp.where(on, p * m, p), jnp.where(on, g + p, g)  # 2n -> 2n + 1
  return p, g


def _cycle_index(t: jax.Array, period: jax.Array, mult: jax.Array) -> jax.Array:
  """``log_mult(1 + t (mult - 1) / period)`` (mult > 1): cycle n starts where this reaches n.

  Computed as ``logaddexp(0, log t - log period + log(mult - 1)) / log1p(mult - 1)``, which neither
  overflows for a huge ``mult`` nor loses ``mult - 1`` near 1, and has finite gradients at t = 0.
  """
  log_x = jnp.log(t) - jnp.log(period) + jnp.log(mult - 1)
  return jnp.logaddexp(0.0, log_x) / jnp.log1p(mult - 1)


def _remaining_whole(t: jax.Array, period: jax.Array, mult: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(Fraction of the cycle still ahead at ``t``, cycle index), for a whole ``mult >= 2``: exact restarts
  below 2**24.

  Cycle n starts at ``S_n = period * (1 + mult + ... + mult**(n-1))``; n comes from the logarithm,
  which in float32 can land one cycle off next to a restart, so it is moved by +-1 (twice) until
  ``S_n <= t < S_n + period * mult**n``, with ``S_n`` computed exactly.
  """
  # n needs to be right only to +-2 (corrected below), so one log1p does: log_mult(1 + x), with x
  # capped at the largest float (a huge mult would overflow it; then n is still within the +-2).
  x = jnp.minimum(t / period * (mult - 1), jnp.finfo(t.dtype).max)
  n = jnp.clip(jnp.floor(jnp.log1p(x) / jnp.log1p(mult - 1)), 0, 255)
  p, g = _power_and_sum(mult, n)
  start, length = period * g, period * p
  for _ in range(2):
    over = start > t
    length = jnp.where(over, length / mult, length)
    start = jnp.where(over, start - length, start)
    n = jnp.where(over, n - 1, n)
    under = start + length <= t
    start = jnp.where(under, start + length, start)
    length = jnp.where(under, length * mult, length)
    n = jnp.where(under, n + 1, n)
  length = jnp.minimum(length, jnp.finfo(length.dtype).max)
  return jnp.clip(start + length - t, 0, length) / length, n


def _remaining_fractional(t: jax.Array, period: jax.Array, mult: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(Fraction of the cycle still ahead at ``t``, cycle index), for any ``mult > 1``.

  With u = ``_cycle_index`` and f = u - floor(u), the position in the cycle is
  ``T_cur / T_i = (mult**f - 1) / (mult - 1)``, so ``1 - T_cur / T_i = mult**f * (mult**(1 - f) - 1) /
  (mult - 1)``. Working with f keeps the error at one float32 rounding of u, where ``t - S_n`` would
  lose ``S_n``'s rounding (large after many short cycles, e.g. mult = 1.001).
  """
  u = _cycle_index(t, period, mult)
  # u carries a few roundings; within them of a whole number, take the restart (as the recursion
  # T_cur >= T_i does), so an exact restart step such as t = 1 for period 1 gets init_value.
  whole = jnp.round(u)
  u = jnp.where(jnp.abs(u - whole) <= 4 * jnp.finfo(u.dtype).eps * jnp.maximum(u, 1), whole, u)
  f = u - jnp.floor(u)
  lm = jnp.log1p(mult - 1)
  return jnp.clip(jnp.exp(f * lm) * jnp.expm1((1 - f) * lm) / (mult - 1), 0, 1), jnp.floor(u)


def _shift(step: ArrayLike, w, dt):
  """``step - w`` as ``(shifted step, fractional part of w or None)``.

  For integer steps the whole part of ``w`` is taken in integers (exact to 2**31-1) and the fractional
  part is returned apart (0 for a whole ``w``, traced or not); float steps are shifted in ``dt``.
  """
  st = jnp.asarray(step)
  if jnp.issubdtype(st.dtype, jnp.integer):
    wf = as_float(w, dt)
    wi = jnp.floor(wf)
    return jnp.maximum(st, 0).astype(jnp.int32) - wi.astype(jnp.int32), wf - wi
  return as_step(step, dt) - as_float(w, dt), None


def _safe_div(num, den):
  """``num / den`` where ``den > 0``, else 0 (finite gradients on both sides)."""
  pos = den > 0
  return jnp.where(pos, num / jnp.where(pos, den, 1), 0)


def _restarts(vals, step, spec, branch: str):
  """The rate of :class:`CosineWarmRestarts` at ``step``: ``branch`` "plain" (SGDR alone), "options"
  (the general formula) or "at_defaults" (a lax.cond of the two on whether the options are at their
  defaults). ``vals``: the nine hyperparameters as floats; ``spec``: (dtype, warmup_prefix, k static 1)."""
  dt, prefix, k_one = spec
  init, period, mult, end, decay, limit, kd, w, w0 = vals
  period = jnp.where(period >= 1, period, 1)  # keeps invalid lanes finite until poisoned
  t_all = as_step(step, dt)
  cstep, frac = _shift(step, w, dt) if prefix else (step, None)
  tf = cstep if frac is None else as_step(cstep, dt) - frac  # the cycles' clock
  t = as_step(tf, dt)
  # One of three branches, chosen by the scalar period_mult with lax.switch so that only the
  # branch needed runs; period_mult can still be traced (under vmap over it the switch becomes a
  # per-lane select of all three). Each gives (fraction of the cycle still ahead, cycle index).
  one = mult <= 1
  whole = mult == jnp.round(mult)
  safe = jnp.where(one, 2, mult)  # keeps the unused branches finite (and their gradients)
  shape = jnp.broadcast_shapes(t.shape, period.shape, mult.shape)
  index = jnp.where(one, 0, jnp.where(whole, 1, 2))

  def pick(branches):
    if index.ndim == 0:
      return jax.lax.switch(
        index,
        [lambda f=f: jax.tree.map(lambda x: jnp.broadcast_to(x, shape).astype(dt), f()) for f in branches],
      )
    outs = [f() for f in branches]  # array-valued hyperparameters: every branch, selected elementwise
    return jax.tree.map(
      lambda a, b, c: jnp.select([index == 0, index == 1], [a, b], c), outs[0], outs[1], outs[2]
    )

  def cosine(remaining, peak):
    # (1 + cos(pi * T_cur / T_i)) / 2 == sin^2(pi/2 * (T_i - T_cur) / T_i): exact at cycle ends.
    return end + (peak - end) * jnp.square(jnp.sin(0.5 * jnp.pi * remaining))

  def plain():  # SGDR alone (the options at their defaults): the cycle index is not needed
    remaining = pick(
      (
        lambda: (period - _remainder(step, period, dt)) / period,  # exact for integer steps to 2**31-1
        lambda: _remaining_whole(t_all, period, safe)[0],
        lambda: _remaining_fractional(t_all, period, safe)[0],
      )
    )
    return jnp.broadcast_to(cosine(remaining, init), shape)

  def options():  # decay, cycle limit, k-decay, warm-up
    def first():  # exact for integer steps to 2**31-1 (also after a whole warm-up prefix)
      out = ((period - _remainder(cstep, period, dt)) / period, _floor_div(cstep, period, dt))
      if frac is None:
        return out
      off = ((period - _remainder(tf, period, dt)) / period, _floor_div(tf, period, dt))
      return tuple(jnp.where(frac == 0, a, b) for a, b in zip(out, off))  # a fractional prefix

    remaining, cycle = pick(
      (
        first,
        lambda: _remaining_whole(t, period, safe),
        lambda: _remaining_fractional(t, period, safe),
      )
    )
    # k-decay: cos(pi * (T_cur / T_i) ** k); exactly the plain fraction when k == 1.
    if not k_one:  # a static k of 1: no power (a log and an exp per step)
      # exactly the plain fraction at k == 1 (1 - (1 - r) would round it), with the k-derivative
      remaining = _exactly_at_one(remaining, 1 - _pow_log(1 - remaining, kd), kd)
    rate = cosine(remaining, init * jnp.exp(cycle * jnp.log(decay)))  # init * decay**cycle
    rate = jnp.where((limit > 0) & (cycle >= limit), end, rate)
    ramp = w0 + (init - w0) * _safe_div(t_all, w)  # exactly w0 at step 0
    return jnp.broadcast_to(jnp.where(t_all < w, ramp, rate), shape)

  if branch == "plain":
    return plain()
  if branch == "options":
    return options()
  at_defaults = (decay == 1) & (limit == 0) & (kd == 1) & (w == 0)
  return jax.lax.cond(at_defaults, plain, options)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _restarts_fast(vals, step, spec):
  """SGDR alone when the (traced, scalar) options are at their defaults, else the general formula; the
  derivatives always those of the general formula (its value at the defaults is the same)."""
  return _restarts(vals, step, spec, "at_defaults")


@_restarts_fast.defjvp
def _restarts_fast_jvp(spec, primals, tangents):
  vals, step = primals
  dvals, dstep = tangents
  return jax.jvp(lambda v, s: _restarts(v, s, spec, "options"), (vals, step), (dvals, dstep))


@schedule_class
class CosineWarmRestarts(Schedule):
  """See :func:`cosine_warm_restarts`."""

  init_value: ArrayLike = hyper()
  period: ArrayLike = hyper(rules=(ge(1),))
  period_mult: ArrayLike = hyper(1, rules=(ge(1),))
  end_value: ArrayLike = hyper(0.0)
  decay: ArrayLike = hyper(1.0, rules=(between(0, 1, open_lo=True),))
  cycle_limit: ArrayLike = hyper(0, rules=(ge(0), WHOLE))
  k_decay: ArrayLike = hyper(1.0, rules=(gt(0),))
  warmup_steps: ArrayLike = hyper(0, rules=(ge(0),))
  warmup_init: ArrayLike = hyper(0.0)
  warmup_prefix: bool = static_field(False)
  name = "cosine_warm_restarts"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    fields = ("init_value", "period", "period_mult", "end_value", "decay", "cycle_limit", "k_decay",
              "warmup_steps", "warmup_init")  # fmt: skip
    vals = tuple(as_float(getattr(self, k), dt) for k in fields)
    # Which formula: the options at their defaults as static numbers: SGDR alone ("plain"). One of them
    # set to another static number, or array-valued: the general formula ("options"). Traced scalars
    # (under jit, vmap, grad) that may sit at the defaults: "fast", which runs SGDR alone when they do
    # (a lax.cond) and takes its derivatives from the general formula (a custom JVP: a cond or select
    # on "at the default" alone would differentiate only the plain branch, 0 in decay and k_decay).
    defaults = (("decay", 1), ("cycle_limit", 0), ("k_decay", 1), ("warmup_steps", 0))
    opts = [getattr(self, k) for k, _ in defaults]
    if all(static_equal(x, v) for x, (_, v) in zip(opts, defaults)):
      branch = "plain"
    elif any(
      (isinstance(x, (int, float)) and not static_equal(x, v)) or jnp.ndim(x) > 0
      for x, (_, v) in zip(opts, defaults)
    ) or any(jnp.ndim(v) > 0 for v in vals):
      branch = "options"
    else:
      branch = "fast"
    spec = (dt, self.warmup_prefix, static_equal(self.k_decay, 1))
    if branch == "fast":
      rate = _restarts_fast(vals, step, spec)
    else:
      rate = _restarts(vals, step, spec, branch)
    return poison(rate, self.valid())


@register("cosine_warm_restarts")
def cosine_warm_restarts(
  init_value: ArrayLike,
  period: ArrayLike,
  period_mult: ArrayLike = 1,
  end_value: ArrayLike = 0.0,
  decay: ArrayLike = 1.0,
  cycle_limit: ArrayLike | None = None,
  k_decay: ArrayLike = 1.0,
  warmup_steps: ArrayLike = 0,
  warmup_init: ArrayLike = 0.0,
  warmup_prefix: bool = False,
) -> CosineWarmRestarts:
  """Cosine annealing from ``init_value`` to ``end_value``, restarted at the end of each cycle (SGDR).

  Cycle i (counted from 0) lasts ``period * period_mult**i`` steps. With T_cur the steps since the
  last restart, T_i the length of the current cycle, d = ``decay``, k = ``k_decay``::

      lr(t) = end + (init * d**i - end) * (1 + cos(pi * (T_cur / T_i)**k)) / 2
      lr(t) = end                                          i >= cycle_limit (when cycle_limit > 0)
      lr(t) = w0 + (init - w0) * t / W                     t < W (W = warmup_steps, w0 = warmup_init)

  With ``warmup_prefix=False`` the warm-up replaces the first W steps of the first cycle (the cycles
  count from step 0, as timm's default); with ``warmup_prefix=True`` the cycles start after it (t - W).

  Twins:

  * ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0=period, T_mult=period_mult,
    eta_min=end_value)`` (``init_value`` the optimizer's lr) with the defaults of the other options
    (which compute exactly what this schedule computed before they existed).
  * timm ``CosineLRScheduler(t_initial=period, lr_min=end, cycle_mul=period_mult, cycle_decay=decay,
    cycle_limit=cycle_limit, warmup_t=W, warmup_lr_init=w0, warmup_prefix=..., k_decay=k)`` (timm
    1.0, ``timm/scheduler/cosine_lr.py``), the lr the optimizer holds at step (or epoch) t. timm's
    ``cycle_limit`` defaults to 1 (a single cycle); here ``None`` (or 0) means no limit.
  * Keras ``CosineDecayRestarts(init, first_decay_steps=period, t_mul=period_mult, m_mul=decay,
    alpha=0)``. Keras decays the amplitude above ``alpha * init`` rather than the peak; with
    ``alpha > 0`` it is ``cosine_warm_restarts(init * (1 - alpha), period, period_mult, decay=m_mul)
    + init * alpha`` (a schedule too).

  Differences: ``period`` and ``period_mult`` may be non-integer (PyTorch requires ints; ``period_mult``
  like 1.5 works as in Keras and timm) and traced. The cycle is found in closed form, with no state:
  exactly for ``period_mult == 1`` and integer steps up to 2**31-1; for a whole ``period_mult >= 2``
  through a logarithm corrected by +-1 cycle, so restarts fall on the exact step while it is below
  2**24 (float32); for a fractional ``period_mult`` from the fractional part of that logarithm (as
  Keras does), rounded to the restart when it is within float32 rounding of one. All three branches
  are computed and one is selected, so ``period_mult`` can be traced. Without ``cycle_limit`` there
  is no horizon: it restarts forever. ``decay`` is in (0, 1]: a growing peak (Keras allows
  ``m_mul > 1``) would overflow before step 2**31.

  Args:
    init_value: rate at the start of the first cycle (and of every cycle when ``decay == 1``).
    period: length of the first cycle in steps; must be >= 1 (PyTorch: a whole T_0 >= 1; fractional
      periods are allowed here).
    period_mult: growth factor of the cycle length; must be >= 1.
    end_value: rate approached at the end of every cycle (not decayed, as timm's ``lr_min``).
    decay: factor of the peak per cycle (timm ``cycle_decay``, Keras ``m_mul``); in (0, 1].
    cycle_limit: number of cycles run before holding ``end_value``; a whole number >= 0. ``None`` or
      0: no limit.
    k_decay: the k of k-decay, > 0: the cycle's cosine runs on ``(T_cur / T_i)**k``; k > 1 keeps the
      rate high for longer, k < 1 drops it sooner.
    warmup_steps: W, length of a linear warm-up from ``warmup_init`` to ``init_value``; >= 0.
    warmup_init: rate at step 0 when W > 0 (timm ``warmup_lr_init``).
    warmup_prefix: whether the cycles start after the warm-up (True) or at step 0 (False).

  Returns:
    A ``CosineWarmRestarts`` schedule.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    Loshchilov & Hutter, `SGDR <https://arxiv.org/abs/1608.03983>`_, ICLR 2017. Zhang & Li,
    `k-decay <https://arxiv.org/abs/2004.05909>`_, 2020.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.cosine_warm_restarts(1.0, period=10, period_mult=2)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 5, 10, 20, 30)))
    1.00 0.50 1.00 0.50 1.00
    >>> lr = schedules.cosine_warm_restarts(1.0, period=10, decay=0.5, cycle_limit=2)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 5, 10, 15, 20)))
    1.00 0.50 0.50 0.25 0.00
  """
  return CosineWarmRestarts.build(
    "cosine_warm_restarts",
    init_value=init_value,
    period=period,
    period_mult=period_mult,
    end_value=end_value,
    decay=decay,
    cycle_limit=0 if cycle_limit is None else cycle_limit,
    k_decay=k_decay,
    warmup_steps=warmup_steps,
    warmup_init=warmup_init,
    warmup_prefix=warmup_prefix,
  )


def _hf_progress(step: ArrayLike, peak, total, w, dt):
  """(t, linear warm-up ``peak * t / W``, progress ``(t - W) / (N - W)`` clipped to [0, 1]) as in HF."""
  t = as_step(step, dt)
  ramp = peak * _safe_div(t, w)
  progress = jnp.clip(_safe_div(t - w, total - w), 0, 1)
  return t, ramp, progress


_AFTER_WARMUP = Rule(
  ("warmup_steps", "total_steps"), lambda w, n: w < n, "`warmup_steps` must be < `total_steps`"
)


@schedule_class
class CosineWithMinLr(Schedule):
  """See :func:`cosine_with_min_lr`."""

  peak_value: ArrayLike = hyper()
  total_steps: ArrayLike = hyper(rules=(gt(0),))
  warmup_steps: ArrayLike = hyper(0, rules=(ge(0),))
  num_cycles: ArrayLike = hyper(0.5, rules=(gt(0),))
  min_lr: ArrayLike = hyper(0.0)
  name = "cosine_with_min_lr"
  rules = (_AFTER_WARMUP,)

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    peak, total, w, cycles, low = (
      as_float(x, dt)
      for x in (self.peak_value, self.total_steps, self.warmup_steps, self.num_cycles, self.min_lr)
    )
    t, ramp, progress = _hf_progress(step, peak, total, w, dt)
    # (1 + cos(2 pi c x)) / 2 == cos^2(pi c x)
    rate = low + (peak - low) * jnp.square(jnp.cos(jnp.pi * cycles * progress))
    return poison(jnp.where(t < w, ramp, rate), self.valid())


@register("cosine_with_min_lr")
def cosine_with_min_lr(
  peak_value: ArrayLike,
  total_steps: ArrayLike,
  warmup_steps: ArrayLike = 0,
  num_cycles: ArrayLike = 0.5,
  min_lr: ArrayLike | None = None,
  min_lr_rate: ArrayLike | None = None,
) -> CosineWithMinLr:
  """Linear warm-up from 0 to ``peak_value``, then a cosine wave down to ``min_lr`` (Hugging Face).

  With N = ``total_steps``, W = ``warmup_steps``, c = ``num_cycles``, m = ``min_lr`` and
  x = (t - W) / (N - W) clipped to [0, 1]::

      lr(t) = peak * t / W                                  t < W
            = m + (peak - m) * (1 + cos(2 pi c x)) / 2      t >= W

  Matches HF transformers ``get_cosine_with_min_lr_schedule_with_warmup(num_warmup_steps=W,
  num_training_steps=N, num_cycles=c, min_lr=m)`` (or ``min_lr_rate=m / peak``) times the optimizer's
  lr ``peak_value``, and with neither ``min_lr`` nor ``min_lr_rate`` ``get_cosine_schedule_with_warmup``
  (HF's ``"cosine"``, which goes to 0). c = 0.5 (the default) is one half-wave from ``peak_value`` to
  ``min_lr``. Differences: past N it holds the rate at N (``min_lr`` for c = 0.5), where HF's
  cosine continues (and climbs back up); HF requires exactly one of ``min_lr`` / ``min_lr_rate``.
  ``min_lr_rate`` is stored as ``min_lr = min_lr_rate * peak_value`` (so the config holds ``min_lr``).
  Optax's ``warmup_cosine_decay_schedule(0, peak, W, N, end_value=m)`` is the c = 0.5 case.

  Args:
    peak_value: rate at the end of the warm-up (HF: the optimizer's lr).
    total_steps: N, the end of the cosine; must be > 0 and > ``warmup_steps``.
    warmup_steps: W, length of the linear warm-up from 0; must be >= 0.
    num_cycles: c, number of cosine waves over N - W steps (0.5: a half-wave down); must be > 0.
    min_lr: the lowest rate (absolute). Give at most one of ``min_lr`` and ``min_lr_rate``.
    min_lr_rate: the lowest rate as a fraction of ``peak_value``.

  Returns:
    A ``CosineWithMinLr`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if a concrete hyperparameter is out of range or both ``min_lr`` and ``min_lr_rate``
      are given. Traced invalid values give NaN rates.

  References:
    Loshchilov & Hutter, `SGDR <https://arxiv.org/abs/1608.03983>`_, ICLR 2017; HF transformers
    ``optimization.py``.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.cosine_with_min_lr(1.0, total_steps=12, warmup_steps=2, min_lr_rate=0.1)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 1, 2, 7, 12, 20)))
    0.00 0.50 1.00 0.55 0.10 0.10
  """
  fn = "cosine_with_min_lr"
  if min_lr is not None and min_lr_rate is not None:
    raise ValueError(
      f"{fn}: give at most one of `min_lr` and `min_lr_rate`, got min_lr={min_lr!r}, min_lr_rate={min_lr_rate!r}."
    )
  if min_lr_rate is not None:
    rate = number(min_lr_rate, fn=fn, name="min_lr_rate")
    peak = number(peak_value, fn=fn, name="peak_value")
    min_lr = rate * peak
  return CosineWithMinLr.build(
    fn,
    peak_value=peak_value,
    total_steps=total_steps,
    warmup_steps=warmup_steps,
    num_cycles=num_cycles,
    min_lr=0.0 if min_lr is None else min_lr,
  )


@schedule_class
class CosineWithRestarts(Schedule):
  """See :func:`cosine_with_restarts`."""

  peak_value: ArrayLike = hyper()
  total_steps: ArrayLike = hyper(rules=(gt(0),))
  warmup_steps: ArrayLike = hyper(0, rules=(ge(0),))
  num_cycles: ArrayLike = hyper(1, rules=(gt(0),))
  name = "cosine_with_restarts"
  rules = (_AFTER_WARMUP,)

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    peak, total, w, cycles = (
      as_float(x, dt) for x in (self.peak_value, self.total_steps, self.warmup_steps, self.num_cycles)
    )
    t, ramp, progress = _hf_progress(step, peak, total, w, dt)
    phase = jnp.remainder(cycles * progress, 1.0)
    # (1 + cos(pi * f)) / 2 == cos^2(pi/2 * f)
    rate = jnp.where(progress >= 1, 0, peak * jnp.square(jnp.cos(0.5 * jnp.pi * phase)))
    return poison(jnp.where(t < w, ramp, rate), self.valid())


@register("cosine_with_restarts")
def cosine_with_restarts(
  peak_value: ArrayLike, total_steps: ArrayLike, warmup_steps: ArrayLike = 0, num_cycles: ArrayLike = 1
) -> CosineWithRestarts:
  """Linear warm-up from 0 to ``peak_value``, then ``num_cycles`` hard-restarted cosines to 0 (HF).

  With N = ``total_steps``, W = ``warmup_steps``, c = ``num_cycles`` and x = (t - W) / (N - W)::

      lr(t) = peak * t / W                                  t < W
            = peak * (1 + cos(pi * ((c x) mod 1))) / 2      W <= t < N
            = 0                                             t >= N

  Matches HF transformers ``get_cosine_with_hard_restarts_schedule_with_warmup(num_warmup_steps=W,
  num_training_steps=N, num_cycles=c)`` times the optimizer's lr ``peak_value`` (HF's
  ``"cosine_with_restarts"``). Each cycle lasts (N - W) / c steps; c may be fractional (the last
  cycle is cut at N). For cycles of a fixed length with no horizon, see :func:`cosine_warm_restarts`.

  Args:
    peak_value: rate at the end of the warm-up and at every restart.
    total_steps: N; must be > 0 and > ``warmup_steps``.
    warmup_steps: W, length of the linear warm-up from 0; must be >= 0.
    num_cycles: c, number of cosine cycles between W and N; must be > 0.

  Returns:
    A ``CosineWithRestarts`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    Loshchilov & Hutter, `SGDR <https://arxiv.org/abs/1608.03983>`_, ICLR 2017; HF transformers
    ``optimization.py``.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.cosine_with_restarts(1.0, total_steps=10, warmup_steps=2, num_cycles=2)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 1, 2, 4, 6, 8, 10)))
    0.00 0.50 1.00 0.50 1.00 0.50 0.00
  """
  return CosineWithRestarts.build(
    "cosine_with_restarts",
    peak_value=peak_value,
    total_steps=total_steps,
    warmup_steps=warmup_steps,
    num_cycles=num_cycles,
  )
