"""``reduce_on_plateau``: PyTorch's ReduceLROnPlateau as an Optax transformation."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lr_jax._validation import all_ok, check, choice, number, poison
from lr_jax.optimizers._common import _non_negative, _whole_at_least
from lr_jax.schedules._base import as_float

__all__ = ["ReduceOnPlateauState", "reduce_on_plateau"]

_FN = "reduce_on_plateau"
_INT32_MAX = 2**31 - 1


class ReduceOnPlateauState(NamedTuple):
  """State of :func:`reduce_on_plateau` (every field a scalar)."""

  count: jax.Array  # int32, calls of `update` so far; saturates at 2**31 - 1
  scale: jax.Array  # float32, the multiplier now in force (PyTorch's lr / base_lr)
  best: jax.Array  # float32, best (averaged) value so far; +inf (min) / -inf (max) before the first
  num_bad: jax.Array  # int32, evaluations without improvement since the last improvement/reduction
  cooldown_counter: jax.Array  # int32, evaluations of cooldown still to go
  acc_sum: jax.Array  # float32, sum of the values of the evaluation being accumulated
  acc_count: jax.Array  # int32, how many values `acc_sum` holds (0 .. accumulation_steps - 1)


def reduce_on_plateau(
  factor: Any = 0.1,
  patience: Any = 10,
  threshold: Any = 1e-4,
  threshold_mode: str = "rel",
  cooldown: Any = 0,
  min_scale: Any = 0.0,
  mode: str = "min",
  accumulation_steps: Any = 1,
) -> optax.GradientTransformationExtraArgs:
  """Scales the updates by a multiplier that shrinks when the monitored value stops improving.

  ``update(updates, state, params=None, *, value)`` takes the monitored value (a loss, or an accuracy
  with ``mode="max"``). Values are averaged over ``accumulation_steps`` calls; every
  ``accumulation_steps``-th call the average ``v`` is one *evaluation* (an "epoch")::

      improved  = isfinite(v) and (best is +-inf or v better than best by the threshold), where
                  rel, min: v < best - |best| * threshold      abs, min: v < best - threshold
                  rel, max: v > best + |best| * threshold      abs, max: v > best + threshold
      best      = v if improved
      num_bad   = 0 if improved else num_bad + 1
      if cooldown_counter > 0:  cooldown_counter -= 1;  num_bad = 0
      if num_bad > patience:                   # the (patience + 1)-th bad evaluation in a row
          scale = min(scale, max(scale * factor, min_scale))
          cooldown_counter = cooldown;  num_bad = 0

  ``best`` starts at +inf (``mode="min"``) or -inf (``"max"``), ``scale`` at 1. Between evaluations
  the state other than the accumulator is unchanged. The updates of every call are multiplied by
  the ``scale`` after that call's evaluation (as in Optax's version), so with ``value`` the loss at
  the current parameters the rate changes exactly where PyTorch's does when ``scheduler.step(loss)``
  runs before ``optimizer.step()``. ``state.scale`` is the multiplier now in force.

  Twin: ``torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode, factor, patience, threshold,
  threshold_mode, cooldown, min_lr=min_scale * lr, eps=0)``: ``state.scale`` equals its
  ``get_last_lr()[0] / lr`` after every ``step(v)``. Deliberate differences from PyTorch:

  * ``threshold_mode="rel"`` compares with ``best -+ |best| * threshold``. PyTorch uses
    ``best * (1 -+ threshold)``, which for negative values moves the bar the wrong way: with
    ``mode="min", threshold=0.1`` it counts a worsening -1 -> -0.95 -> -0.9 as improvement. For values with the
    sign PyTorch assumes (positive losses in min mode, positive scores in max mode) both agree.
  * NaN and +-inf values are never an improvement (PyTorch takes -inf as a new best in min mode,
    after which nothing improves again); the scale stays finite.
  * No ``eps``: PyTorch skips reductions smaller than ``eps`` in absolute lr units (1e-8 by
    default), which has no meaning for a unitless scale. The scale never increases (PyTorch's
    ``min_lr`` above the current lr leaves the lr unchanged too).
  * ``accumulation_steps`` (from Optax) averages several values per evaluation; PyTorch needs you
    to average yourself and call ``step`` once per epoch.
  * Values, ``best`` and ``scale`` are float32 (PyTorch: Python floats), so values that differ from
    the threshold bar by less than a float32 rounding step may be judged differently, and the scale
    underflows to 0 after about 38 reductions by 0.1.

  Differences from ``optax.contrib.reduce_on_plateau``: Optax reduces on the ``patience``-th bad
  step (``plateau_count == patience``), one step earlier than PyTorch; with ``patience=0`` it
  reduces once at the first step, even if it improved, and never again. Optax's relative test
  ``v < (1 - rtol) * best - atol`` has the same negative-value problem as PyTorch's, it has no max
  mode, and ``factor`` and ``rtol`` cannot be traced. Here every numeric hyperparameter can be
  traced (``jax.vmap`` over ``factor``, ``patience``, ``threshold``, ``cooldown``, ``min_scale``,
  ``accumulation_steps``).

  Args:
    factor: multiplier applied at each reduction; in (0, 1).
    patience: number of bad evaluations tolerated; the next one reduces. A whole number >= 0.
    threshold: how much better than ``best`` a value must be to count as an improvement; >= 0.
    threshold_mode: ``"rel"`` (relative to ``|best|``) or ``"abs"``.
    cooldown: evaluations after a reduction during which bad evaluations are not counted;
      a whole number >= 0.
    min_scale: the scale never goes below this; >= 0.
    mode: ``"min"`` (lower values are better) or ``"max"``.
    accumulation_steps: calls whose values are averaged into one evaluation; a whole number >= 1.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``optax.chain`` passes ``value=`` through to it.

  Raises:
    ValueError: if a concrete hyperparameter is out of range or a mode is unknown, or if ``value``
      is not a scalar. Traced invalid hyperparameters give a NaN scale (and NaN updates) instead.

  References:
    PyTorch, `ReduceLROnPlateau
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ReduceLROnPlateau.html>`_.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> opt = optax.chain(optax.sgd(1.0), optimizers.reduce_on_plateau(factor=0.5, patience=1))
    >>> params = {"w": jnp.ones(2)}
    >>> state = opt.init(params)
    >>> scales = []
    >>> for loss in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]:
    ...   updates, state = opt.update({"w": jnp.ones(2)}, state, params, value=loss)
    ...   scales.append(state[1].scale)
    >>> print(*(f"{s:.2f}" for s in scales))
    1.00 1.00 1.00 0.50 0.50 0.25
  """
  fn = _FN
  mode = choice(mode, ("min", "max"), fn=fn, name="mode")
  threshold_mode = choice(threshold_mode, ("rel", "abs"), fn=fn, name="threshold_mode")
  factor = number(factor, fn=fn, name="factor")
  ok_f = check((factor > 0) & (factor < 1), fn=fn, must="`factor` must be in (0, 1)", factor=factor)
  patience, ok_p = _whole_at_least(patience, 0, fn=fn, name="patience")
  threshold, ok_t = _non_negative(threshold, fn=fn, name="threshold")
  cooldown, ok_c = _whole_at_least(cooldown, 0, fn=fn, name="cooldown")
  min_scale, ok_m = _non_negative(min_scale, fn=fn, name="min_scale")
  accumulation_steps, ok_a = _whole_at_least(accumulation_steps, 1, fn=fn, name="accumulation_steps")
  ok = all_ok(ok_f, ok_p, ok_t, ok_c, ok_m, ok_a)
  f32, i32 = jnp.float32, jnp.int32
  worst = jnp.inf if mode == "min" else -jnp.inf

  def init_fn(params) -> ReduceOnPlateauState:
    del params
    return ReduceOnPlateauState(
      count=jnp.zeros((), i32),
      scale=poison(jnp.ones((), f32), ok),
      best=jnp.full((), worst, f32),
      num_bad=jnp.zeros((), i32),
      cooldown_counter=jnp.zeros((), i32),
      acc_sum=jnp.zeros((), f32),
      acc_count=jnp.zeros((), i32),
    )

  def _evaluate(state: ReduceOnPlateauState, v: jax.Array):
    """One evaluation (PyTorch's ``step(v)``): returns (scale, best, num_bad, cooldown_counter)."""
    thr = as_float(threshold, f32)
    best = state.best
    margin = jnp.abs(best) * thr if threshold_mode == "rel" else thr
    better = v < best - margin if mode == "min" else v > best + margin
    improved = jnp.isfinite(v) & (jnp.isinf(best) | better)
    best = jnp.where(improved, v, best)
    num_bad = jnp.where(improved, jnp.zeros((), i32), optax.safe_increment(state.num_bad))
    in_cooldown = state.cooldown_counter > 0
    cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
    num_bad = jnp.where(in_cooldown, jnp.zeros((), i32), num_bad)
    reduce = num_bad.astype(f32) > as_float(patience, f32)
    fac = as_float(factor, f32)
    floor = as_float(min_scale, f32)
    reduced = jnp.minimum(state.scale, jnp.maximum(state.scale * fac, floor))
    scale = jnp.where(reduce, reduced, state.scale)
    cool = jnp.clip(as_float(cooldown, f32), 0, _INT32_MAX - 127).astype(i32)
    cooldown_counter = jnp.where(reduce, cool, cooldown_counter)
    num_bad = jnp.where(reduce, jnp.zeros((), i32), num_bad)
    return scale, best, num_bad, cooldown_counter

  def update_fn(updates, state: ReduceOnPlateauState, params=None, *, value, **extra_args):
    del params, extra_args
    if jnp.ndim(value) != 0:
      raise ValueError(f"{fn}: `value` must be a scalar, got value with shape {jnp.shape(value)}.")
    v = jnp.asarray(value).astype(f32)
    acc_sum = state.acc_sum + v
    acc_count = optax.safe_increment(state.acc_count)
    decide = acc_count.astype(f32) >= as_float(accumulation_steps, f32)
    mean = acc_sum / acc_count.astype(f32)
    scale, best, num_bad, cooldown_counter = _evaluate(state, mean)
    keep = lambda new, old: jnp.where(decide, new, old)
    new_state = ReduceOnPlateauState(
      count=optax.safe_increment(state.count),
      scale=poison(keep(scale, state.scale), ok),
      best=keep(best, state.best),
      num_bad=keep(num_bad, state.num_bad),
      cooldown_counter=keep(cooldown_counter, state.cooldown_counter),
      acc_sum=jnp.where(decide, jnp.zeros((), f32), acc_sum),
      acc_count=jnp.where(decide, jnp.zeros((), i32), acc_count),
    )
    s = new_state.scale
    updates = jax.tree.map(lambda g: g * s.astype(g.dtype), updates)
    return updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
