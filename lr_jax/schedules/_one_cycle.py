"""The 1cycle policy: ``one_cycle`` (PyTorch's ``OneCycleLR`` rate) and ``one_cycle_momentum``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lr_jax._validation import WHOLE, Rule, between, gt, poison
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

__all__ = ["one_cycle", "one_cycle_momentum"]

_ANNEALS = ("cos", "linear")


def _phases(t, total, pct, three_phase: bool, anneal: str, values, pct_final=None):
  """PyTorch's OneCycleLR interpolation through ``values`` (one ``(start, end)`` pair per phase).

  Phase ends are ``pct*N - 1``, (three-phase) ``2*pct*N - 2`` (``pct_final*N - 2`` when given), and
  ``N - 1``; each phase starts where the previous one ends. A step belongs to the first phase whose
  end it does not pass (else the last one). Steps past ``N - 1`` hold the value at ``N - 1``.
  """
  ends = [pct * total - 1]
  if three_phase:
    ends.append((2 * pct if pct_final is None else pct_final) * total - 2)
  ends.append(total - 1)
  starts = [jnp.zeros_like(total)] + ends[:-1]
  t = jnp.clip(t, 0, jnp.maximum(total - 1, 0))

  # Select each step's phase first (its start, end and values), then interpolate once: one pair of
  # sines per step instead of one per phase.
  first, last = values[-1]
  s, e = starts[-1], ends[-1]
  for i in reversed(range(len(ends) - 1)):
    inside = t <= ends[i]
    first, last = jnp.where(inside, values[i][0], first), jnp.where(inside, values[i][1], last)
    s, e = jnp.where(inside, starts[i], s), jnp.where(inside, ends[i], e)
  span = e - s
  pos = span > 0
  safe = jnp.where(pos, span, 1)
  # Fractions of the phase done and still ahead, each exact at its own end of the phase. An empty
  # phase (PyTorch divides 0 by 0 there) gives its end value.
  done = jnp.clip(jnp.where(pos, (t - s) / safe, 1), 0, 1)
  ahead = jnp.clip(jnp.where(pos, (e - t) / safe, 0), 0, 1)
  if anneal == "cos":  # (1 + cos(pi * done)) / 2 == sin^2(pi/2 * ahead); 1 - that == sin^2(pi/2 * done)
    w_first, w_last = jnp.square(jnp.sin(0.5 * jnp.pi * ahead)), jnp.square(jnp.sin(0.5 * jnp.pi * done))
  else:
    w_first, w_last = ahead, done
  return first * w_first + last * w_last


_PCT_FINAL_RULES = (
  Rule(
    ("pct_start", "pct_final"),
    lambda start, final: (final > start) & (final < 1),
    "`pct_final` must be in (pct_start, 1)",
    when=lambda v: v["pct_final"] is not None,
  ),
)


def _final(s, dt):
  return None if s.pct_final is None else as_float(s.pct_final, dt)


def _check_pct_final(pct_final, three_phase, *, fn: str):
  """``pct_final`` (checked, or ``None``); it places the end of phase 2, so it needs three phases."""
  if pct_final is not None and three_phase is not True:
    raise ValueError(f"{fn}: `pct_final` requires three_phase=True, got pct_final={pct_final!r}.")
  return pct_final


@schedule_class
class OneCycle(Schedule):
  """See :func:`one_cycle`."""

  peak_value: ArrayLike = hyper()
  total_steps: ArrayLike = hyper(rules=(gt(0), WHOLE))
  pct_start: ArrayLike = hyper(0.3, rules=(between(0, 1, open_lo=True, open_hi=True),))
  anneal: str = static_field("cos", options=_ANNEALS)
  div_factor: ArrayLike = hyper(25.0, rules=(gt(0),))
  final_div_factor: ArrayLike = hyper(1e4, rules=(gt(0),))
  three_phase: bool = static_field(False)
  pct_final: ArrayLike | None = hyper(None)
  name = "one_cycle"
  rules = _PCT_FINAL_RULES

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    peak, total, pct, div, final_div = (
      as_float(x, dt)
      for x in (self.peak_value, self.total_steps, self.pct_start, self.div_factor, self.final_div_factor)
    )
    initial = peak / div
    floor = initial / final_div
    if self.three_phase:
      values = [(initial, peak), (peak, initial), (initial, floor)]
    else:
      values = [(initial, peak), (peak, floor)]
    rate = _phases(as_step(step, dt), total, pct, self.three_phase, self.anneal, values, _final(self, dt))
    return poison(rate, self.valid())


@schedule_class
class OneCycleMomentum(Schedule):
  """See :func:`one_cycle_momentum`."""

  total_steps: ArrayLike = hyper(rules=(gt(0), WHOLE))
  pct_start: ArrayLike = hyper(0.3, rules=(between(0, 1, open_lo=True, open_hi=True),))
  anneal: str = static_field("cos", options=_ANNEALS)
  base_momentum: ArrayLike = hyper(0.85, rules=(between(0, 1),))
  max_momentum: ArrayLike = hyper(0.95, rules=(between(0, 1),))
  three_phase: bool = static_field(False)
  pct_final: ArrayLike | None = hyper(None)
  name = "one_cycle_momentum"
  rules = _PCT_FINAL_RULES

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    total, pct, lo, hi = (
      as_float(x, dt) for x in (self.total_steps, self.pct_start, self.base_momentum, self.max_momentum)
    )
    if self.three_phase:
      values = [(hi, lo), (lo, hi), (hi, hi)]
    else:
      values = [(hi, lo), (lo, hi)]
    rate = _phases(as_step(step, dt), total, pct, self.three_phase, self.anneal, values, _final(self, dt))
    return poison(rate, self.valid())


@register("one_cycle")
def one_cycle(
  peak_value: ArrayLike,
  total_steps: ArrayLike,
  pct_start: ArrayLike = 0.3,
  anneal: str = "cos",
  div_factor: ArrayLike = 25.0,
  final_div_factor: ArrayLike = 1e4,
  three_phase: bool = False,
  pct_final: ArrayLike | None = None,
) -> OneCycle:
  """The 1cycle learning rate: warm up to ``peak_value``, then anneal far below the start.

  With N = ``total_steps``, p = ``pct_start``, initial = peak / ``div_factor`` and
  floor = initial / ``final_div_factor``, the rate interpolates between these points (a phase
  starts where the previous one ends, the first at step 0)::

      two phases:    initial -> peak     until step  p*N - 1
                     peak    -> floor    until step  N - 1
      three phases:  initial -> peak     until step  p*N - 1
                     peak    -> initial  until step  2*p*N - 2   (pct_final*N - 2 if given)
                     initial -> floor    until step  N - 1
      anneal="cos":    lr = end + (start - end) * (1 + cos(pi * frac)) / 2
      anneal="linear": lr = end + (start - end) * (1 - frac)
      lr(t) = lr(N - 1) for t > N - 1

  where frac is the fraction of the current phase already done. A step belongs to the first phase
  whose end it does not pass. This is exactly ``torch.optim.lr_scheduler.OneCycleLR(max_lr=peak,
  total_steps=N, pct_start=p, anneal_strategy=anneal, div_factor=..., final_div_factor=...,
  three_phase=...)``'s rate for t <= N - 1 (the floor is initial / final_div_factor, not
  peak / final_div_factor); past N - 1 it holds the final value where PyTorch raises. Optax's
  ``cosine_onecycle_schedule`` peaks one step later (at ``int(p*N)``) and cannot trace ``pct_start``.
  ``pct_final`` is Optax's ``linear_onecycle_schedule(pct_final=...)``: the fraction of the cycle at
  which the anneal back to the initial rate ends (Optax's default 0.85); in PyTorch's step convention
  that phase ends at step ``pct_final*N - 2``, so ``pct_final = 2 * pct_start`` (the default, ``None``)
  is PyTorch's three-phase cycle. Optax's linear 1cycle itself, with its own step convention, is
  :func:`piecewise_interpolate` (it is built from Optax's ``piecewise_interpolate_schedule``).
  The matching momentum cycle is :func:`one_cycle_momentum`.

  Args:
    peak_value: the highest rate (PyTorch's ``max_lr``).
    total_steps: length of the cycle; a whole number > 0 (PyTorch's int ``total_steps``).
    pct_start: fraction of the cycle spent warming up; must be in (0, 1).
    anneal: ``"cos"`` or ``"linear"`` (PyTorch's ``anneal_strategy``).
    div_factor: initial = peak_value / div_factor; must be > 0.
    final_div_factor: floor = initial / final_div_factor; must be > 0.
    three_phase: if True, anneal back to the initial rate before the final annihilation phase.
    pct_final: ``None`` (PyTorch's ``2 * pct_start``) or where phase 2 ends, as a fraction of the
      cycle, in (pct_start, 1); only with ``three_phase=True``.

  Returns:
    A ``OneCycle`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if a concrete hyperparameter is out of range or ``anneal`` is unknown. Traced invalid
      values give NaN rates.

  References:
    Smith & Topin, `Super-Convergence <https://arxiv.org/abs/1708.07120>`_, 2017.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.one_cycle(1.0, total_steps=10, pct_start=0.3, anneal="linear", div_factor=5.0)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 1, 2, 6, 9, 20)))
    0.20 0.60 1.00 0.43 0.00 0.00
    >>> three = schedules.one_cycle(1.0, 20, 0.25, "linear", 5.0, three_phase=True, pct_final=0.6)
    >>> print(*(f"{three(t):.2f}" for t in (0, 4, 7, 10, 15, 19)))
    0.20 1.00 0.60 0.20 0.09 0.00
  """
  fn = "one_cycle"
  return OneCycle.build(
    fn,
    peak_value=peak_value,
    total_steps=total_steps,
    pct_start=pct_start,
    anneal=anneal,
    div_factor=div_factor,
    final_div_factor=final_div_factor,
    three_phase=three_phase,
    pct_final=_check_pct_final(pct_final, three_phase, fn=fn),
  )


@register("one_cycle_momentum")
def one_cycle_momentum(
  total_steps: ArrayLike,
  pct_start: ArrayLike = 0.3,
  anneal: str = "cos",
  base_momentum: ArrayLike = 0.85,
  max_momentum: ArrayLike = 0.95,
  three_phase: bool = False,
  pct_final: ArrayLike | None = None,
) -> OneCycleMomentum:
  """The 1cycle momentum cycle, opposite to the rate: ``max -> base -> max``.

  Same phases and annealing as :func:`one_cycle` (N = ``total_steps``, p = ``pct_start``)::

      two phases:    max -> base  until step  p*N - 1
                     base -> max  until step  N - 1
      three phases:  max -> base  until step  p*N - 1
                     base -> max  until step  2*p*N - 2   (pct_final*N - 2 if given)
                     max          until step  N - 1
      m(t) = m(N - 1) for t > N - 1

  This is the ``momentum`` (or ``betas[0]``) that ``torch.optim.lr_scheduler.OneCycleLR`` writes into
  the optimizer with ``cycle_momentum=True``, as a schedule: feed it to ``b1`` or ``momentum``
  through ``optax.inject_hyperparams``. Past N - 1 it holds the final value where PyTorch raises.

  Args:
    total_steps: length of the cycle; a whole number > 0.
    pct_start: fraction of the cycle spent warming up the rate; must be in (0, 1).
    anneal: ``"cos"`` or ``"linear"``.
    base_momentum: the lowest momentum (at the rate's peak); must be in [0, 1].
    max_momentum: the momentum at the start and at the end; must be in [0, 1].
    three_phase: as in :func:`one_cycle`; phase 3 holds ``max_momentum``.
    pct_final: as in :func:`one_cycle` (the end of phase 2, with ``three_phase=True``).

  Returns:
    A ``OneCycleMomentum`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if a concrete hyperparameter is out of range or ``anneal`` is unknown. Traced invalid
      values give NaN.

  References:
    Smith, `A disciplined approach to neural network hyper-parameters: Part 1
    <https://arxiv.org/abs/1803.09820>`_, 2018.

  Examples:
    >>> import optax
    >>> from lr_jax import schedules
    >>> m = schedules.one_cycle_momentum(total_steps=10, pct_start=0.3, anneal="linear")
    >>> print(*(f"{m(t):.3f}" for t in (0, 1, 2, 6, 9)))
    0.950 0.900 0.850 0.907 0.950
    >>> opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=m)
  """
  fn = "one_cycle_momentum"
  return OneCycleMomentum.build(
    fn,
    total_steps=total_steps,
    pct_start=pct_start,
    anneal=anneal,
    base_momentum=base_momentum,
    max_momentum=max_momentum,
    three_phase=three_phase,
    pct_final=_check_pct_final(pct_final, three_phase, fn=fn),
  )
