"""``reduce_on_plateau``: PyTorch's ReduceLROnPlateau as an Optax transformation."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lr_jax._validation import all_ok, check, choice, number, poison
from lr_jax.optimizers._common import _non_negative, _whole_at_least
from lr_jax.schedules._base import as_float

__all__ = ["ReduceOnPlateauState", "plateau_step", "reduce_on_plateau"]

_FN = "reduce_on_plateau"
_INT32_MAX = 2**31 - 1


class ReduceOnPlateauState(NamedTuple):
  """State of :func:`reduce_on_plateau` (every field a scalar).

  Besides the counters it keeps the hyperparameters (as arrays), so that :func:`plateau_step` can
  advance the state from the state alone.
  """

  count: jax.Array  # int32, calls of `update` so far; saturates at 2**31 - 1
  scale: jax.Array  # params' real dtype (float32; float64 params: float64), the multiplier now in force
  best: jax.Array  # same dtype, best (averaged) value so far; +inf (min) / -inf (max) before the first
  num_bad: jax.Array  # int32, evaluations without improvement since the last improvement/reduction
  cooldown_counter: jax.Array  # int32, evaluations of cooldown still to go
  acc_sum: jax.Array  # same dtype, sum of the values of the evaluation being accumulated
  acc_count: jax.Array  # int32, how many values `acc_sum` holds (0 .. accumulation_steps - 1)
  factor: jax.Array  # hyperparameters as given to reduce_on_plateau; factor, threshold, min_scale, eps in
  # the dtype of `scale`, patience float32
  patience: jax.Array  # float32
  threshold: jax.Array  # float32
  cooldown: jax.Array  # int32 (clipped to int32's range)
  min_scale: jax.Array  # float32
  eps: jax.Array  # float32
  maximize: jax.Array  # bool, mode == "max"
  relative: jax.Array  # bool, threshold_mode == "rel"


def _evaluate(state: ReduceOnPlateauState, v: jax.Array) -> ReduceOnPlateauState:
  """One evaluation with value ``v`` (PyTorch's ``scheduler.step(v)``); the accumulator is untouched."""
  f32, i32 = jnp.float32, jnp.int32
  best = state.best
  margin = jnp.where(state.relative, jnp.abs(best) * state.threshold, state.threshold)
  better = jnp.where(state.maximize, v > best + margin, v < best - margin)
  improved = jnp.isfinite(v) & (jnp.isinf(best) | better)
  best = jnp.where(improved, v, best)
  num_bad = jnp.where(improved, jnp.zeros((), i32), optax.safe_increment(state.num_bad))
  in_cooldown = state.cooldown_counter > 0
  cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
  num_bad = jnp.where(in_cooldown, jnp.zeros((), i32), num_bad)
  reduce = num_bad.astype(f32) > state.patience
  new_scale = jnp.maximum(state.scale * state.factor, state.min_scale)
  # PyTorch: new_lr = max(old_lr * factor, min_lr); the lr changes only if old_lr - new_lr > eps
  scale = jnp.where(reduce & (state.scale - new_scale > state.eps), new_scale, state.scale)
  return state._replace(
    scale=scale,
    best=best,
    num_bad=jnp.where(reduce, jnp.zeros((), i32), num_bad),
    cooldown_counter=jnp.where(reduce, state.cooldown, cooldown_counter),
  )


def plateau_step(opt_state, value):
  """Advances every :func:`reduce_on_plateau` in ``opt_state`` by one observed value.

  PyTorch's ``scheduler.step(val_loss)``, once per epoch: each ``ReduceOnPlateauState`` found anywhere
  in ``opt_state`` (inside ``optax.chain``, ``optax.inject_hyperparams``, ``optax.multi_transform``,
  ``optax.MultiSteps``, ``optax.apply_if_finite``, ``skip_nonfinite``, ...) makes one evaluation with
  ``v = value``::

      improved = isfinite(v) and (best is +-inf or v better than best by the threshold)
      best = v if improved;  num_bad = 0 if improved else num_bad + 1
      if cooldown_counter > 0:  cooldown_counter -= 1;  num_bad = 0
      if num_bad > patience:
          new = max(scale * factor, min_scale)
          scale = new if scale - new > eps            (PyTorch: old_lr - new_lr > eps)
          cooldown_counter = cooldown;  num_bad = 0

  The hyperparameters are read from the state. The updates that follow are multiplied by the new
  ``scale``, as the optimizer steps after ``scheduler.step(v)`` use PyTorch's new lr. ``count`` and the
  ``accumulation_steps`` accumulator are left as they are. Everything else in ``opt_state`` is returned
  unchanged. Jittable and vmappable (``value`` a scalar per state).

  Twin: the canonical PyTorch loop ::

      for epoch in ...:                          for epoch in ...:
        for x, y in train: ...; opt.step()         for x, y in train: params, state = step(...)
        sched.step(evaluate())                     state = optimizers.plateau_step(state, evaluate(params))

  with ``reduce_on_plateau`` chained after the optimizer and ``update`` called without ``value``.

  Args:
    opt_state: an optimizer state holding at least one ``ReduceOnPlateauState``.
    value: the monitored value (a validation loss; an accuracy with ``mode="max"``): a scalar.

  Returns:
    ``opt_state`` with every ``ReduceOnPlateauState`` advanced.

  Raises:
    ValueError: if ``value`` is not a real scalar or ``opt_state`` holds no ``ReduceOnPlateauState``.

  References:
    PyTorch, `ReduceLROnPlateau.step
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ReduceLROnPlateau.html>`_.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optax.chain(optimizers.sgd(0.1), optimizers.reduce_on_plateau(factor=0.5, patience=1))
    >>> state = tx.init(jnp.zeros(2))
    >>> for val_loss in [1.0, 1.0, 1.0]:
    ...   state = optimizers.plateau_step(state, val_loss)
    >>> print(f"{state[1].scale:.2f} {optimizers.current_lr(state):.3f}")
    0.50 0.050
  """
  fn = "plateau_step"
  if jnp.ndim(value) != 0:
    raise ValueError(f"{fn}: `value` must be a scalar, got value with shape {jnp.shape(value)}.")
  try:
    v = jnp.asarray(value)
  except TypeError:
    v = None
  if v is None or not (jnp.issubdtype(v.dtype, jnp.integer) or jnp.issubdtype(v.dtype, jnp.floating)):
    raise ValueError(f"{fn}: `value` must be a real number, got value={value!r}.")
  is_plateau = lambda x: isinstance(x, ReduceOnPlateauState)
  if not any(is_plateau(x) for x in jax.tree.leaves(opt_state, is_leaf=is_plateau)):
    raise ValueError(
      f"{fn}: `opt_state` must hold a reduce_on_plateau state, got opt_state={type(opt_state).__name__} "
      "without one (chain optimizers.reduce_on_plateau() after the optimizer)."
    )
  return jax.tree.map(
    lambda x: _evaluate(x, v.astype(x.best.dtype)) if is_plateau(x) else x, opt_state, is_leaf=is_plateau
  )


def reduce_on_plateau(
  factor: Any = 0.1,
  patience: Any = 10,
  threshold: Any = 1e-4,
  threshold_mode: str = "rel",
  cooldown: Any = 0,
  min_scale: Any = 0.0,
  mode: str = "min",
  accumulation_steps: Any = 1,
  eps: Any = 0.0,
) -> optax.GradientTransformationExtraArgs:
  """Scales the updates by a multiplier that shrinks when the monitored value stops improving.

  Two ways to feed it the monitored value (a loss, or an accuracy with ``mode="max"``):

  * **Once per epoch, PyTorch's loop (recommended).** Call ``update`` without ``value`` (it only
    multiplies the updates by the scale in force) and, after each epoch,
    ``state = optimizers.plateau_step(state, val_loss)``: PyTorch's ``scheduler.step(val_loss)``. The
    rate then changes exactly where PyTorch's does, starting with the first update after the cut.
  * **Per update, Optax's form.** ``update(updates, state, params, value=loss)``: values are averaged
    over ``accumulation_steps`` calls and every ``accumulation_steps``-th call makes one evaluation
    with that average, before its own updates are scaled. ``patience`` and ``cooldown`` then count
    evaluations of ``accumulation_steps`` updates each, and a cut applies to the update of the call
    that triggered it: one update earlier than PyTorch's epoch loop on the same (training) losses.
    Passing each update a validation loss computed once per epoch with ``accumulation_steps=1``
    counts every update as an evaluation: the rate collapses within ``patience`` updates.

  One evaluation with value ``v``::

      improved  = isfinite(v) and (best is +-inf or v better than best by the threshold), where
                  rel, min: v < best - |best| * threshold      abs, min: v < best - threshold
                  rel, max: v > best + |best| * threshold      abs, max: v > best + threshold
      best      = v if improved
      num_bad   = 0 if improved else num_bad + 1
      if cooldown_counter > 0:  cooldown_counter -= 1;  num_bad = 0
      if num_bad > patience:                   # the (patience + 1)-th bad evaluation in a row
          new = max(scale * factor, min_scale)
          scale = new if scale - new > eps     # PyTorch: skip a reduction of eps or less
          cooldown_counter = cooldown;  num_bad = 0

  ``best`` starts at +inf (``mode="min"``) or -inf (``"max"``), ``scale`` at 1. Between evaluations
  the state other than the accumulator is unchanged. ``state.scale`` is the multiplier now in force;
  :func:`current_lr` multiplies it into the optimizer's rate. The state also keeps the
  hyperparameters, for :func:`plateau_step`.

  Twin: ``torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode, factor, patience, threshold,
  threshold_mode, cooldown, min_lr, eps)`` on an optimizer with learning rate ``lr``, with
  ``min_scale = min_lr / lr`` and ``eps = eps_torch / lr`` (PyTorch's ``min_lr`` and ``eps`` are in
  learning-rate units, the scale is unitless): ``state.scale`` equals its ``get_last_lr()[0] / lr`` after
  every ``step(v)``. Deliberate differences from PyTorch:

  * ``threshold_mode="rel"`` compares with ``best -+ |best| * threshold``. PyTorch uses
    ``best * (1 -+ threshold)``, which for negative values moves the bar the wrong way: with
    ``mode="min", threshold=0.1`` it counts a worsening -1 -> -0.95 -> -0.9 as improvement. For values with the
    sign PyTorch assumes (positive losses in min mode, positive scores in max mode) both agree.
  * NaN and +-inf values are never an improvement (PyTorch takes -inf as a new best in min mode,
    after which nothing improves again); the scale stays finite.
  * ``eps`` defaults to 0 (PyTorch: 1e-8 in lr units, which only matters once the lr is near 1e-8).
    With a schedule under the plateau (StepLR and ReduceLROnPlateau on one optimizer), PyTorch's
    ``min_lr`` and ``eps`` bound the product ``schedule * scale``; here they bound the scale.
    The scale never increases (PyTorch's ``min_lr`` above the current lr leaves the lr unchanged too).
  * ``accumulation_steps`` (from Optax) averages several values per evaluation; PyTorch needs you
    to average yourself and call ``step`` once per epoch.
  * Values, ``best`` and ``scale`` are in the params' dtype: float32 (PyTorch: Python floats), so
    values that differ from the threshold bar by less than a float32 rounding step may be judged
    differently, and the scale underflows to 0 after about 38 reductions by 0.1; float64 params (with
    ``jax_enable_x64``) give a float64 state, PyTorch's numbers.

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
    accumulation_steps: calls of ``update`` with ``value`` averaged into one evaluation (the
      per-update form only; :func:`plateau_step` is always one evaluation); a whole number >= 1.
    eps: a reduction of the scale by ``eps`` or less is skipped (PyTorch's ``eps / lr``); >= 0.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``optax.chain`` passes ``value=`` through to it
    (``value`` is optional: without it the update only applies the scale in force).

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
  eps, ok_e = _non_negative(eps, fn=fn, name="eps")
  accumulation_steps, ok_a = _whole_at_least(accumulation_steps, 1, fn=fn, name="accumulation_steps")
  ok = all_ok(ok_f, ok_p, ok_t, ok_c, ok_m, ok_e, ok_a)
  f32, i32 = jnp.float32, jnp.int32
  worst = jnp.inf if mode == "min" else -jnp.inf

  def hyper(dt) -> dict:
    return {
      "factor": as_float(factor, dt),
      "patience": as_float(patience, f32),
      "threshold": as_float(threshold, dt),
      "cooldown": jnp.clip(as_float(cooldown, f32), 0, _INT32_MAX - 127).astype(i32),
      "min_scale": as_float(min_scale, dt),
      "eps": as_float(eps, dt),
      "maximize": jnp.asarray(mode == "max"),
      "relative": jnp.asarray(threshold_mode == "rel"),
    }

  def init_fn(params) -> ReduceOnPlateauState:
    # the params' real dtype: float32 (bf16 too), float64 with float64/complex128 params (x64)
    wide = any(getattr(x, "dtype", None) in (jnp.float64, jnp.complex128) for x in jax.tree.leaves(params))
    dt = jnp.dtype(jnp.float64 if wide else jnp.float32)
    return ReduceOnPlateauState(
      count=jnp.zeros((), i32),
      scale=poison(jnp.ones((), dt), ok),
      best=jnp.full((), worst, dt),
      num_bad=jnp.zeros((), i32),
      cooldown_counter=jnp.zeros((), i32),
      acc_sum=jnp.zeros((), dt),
      acc_count=jnp.zeros((), i32),
      **hyper(dt),
    )

  def update_fn(updates, state: ReduceOnPlateauState, params=None, *, value=None, **extra_args):
    del params, extra_args
    state = state._replace(count=optax.safe_increment(state.count), **hyper(state.best.dtype))
    if value is not None:
      if jnp.ndim(value) != 0:
        raise ValueError(f"{fn}: `value` must be a scalar, got value with shape {jnp.shape(value)}.")
      v = jnp.asarray(value).astype(state.best.dtype)
      acc_sum = state.acc_sum + v
      acc_count = optax.safe_increment(state.acc_count)
      decide = acc_count.astype(f32) >= as_float(accumulation_steps, f32)
      evaluated = _evaluate(state, acc_sum / acc_count.astype(f32))
      state = jax.tree.map(lambda new, old: jnp.where(decide, new, old), evaluated, state)
      state = state._replace(
        acc_sum=jnp.where(decide, jnp.zeros_like(acc_sum), acc_sum),
        acc_count=jnp.where(decide, jnp.zeros((), i32), acc_count),
      )
    state = state._replace(scale=poison(state.scale, ok))
    s = state.scale
    updates = jax.tree.map(lambda g: g * s.astype(g.dtype), updates)
    return updates, state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
