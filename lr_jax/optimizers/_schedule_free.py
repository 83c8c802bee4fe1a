"""Schedule-Free SGD, AdamW and RAdam with the numerics of the ``schedulefree`` 1.4 package."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lr_jax._validation import all_ok, check, flag, number, poison
from lr_jax.optimizers._adam import _one_minus_pow
from lr_jax.optimizers._common import (
  _Flat,
  _learning_rate,
  _lerp,
  _map_leaves,
  _non_negative,
  _unit_interval,
  _WeightDecay,
  _whole_at_least,
)
from lr_jax.schedules._base import as_float

__all__ = [
  "ScheduleFreeState",
  "schedule_free_adamw",
  "schedule_free_eval_params",
  "schedule_free_radam",
  "schedule_free_sgd",
  "schedule_free_train_params",
]

_SGD, _ADAMW, _RADAM = "sgd", "adamw", "radam"


class ScheduleFreeState(NamedTuple):
  """State of :func:`schedule_free_sgd`, :func:`schedule_free_adamw` and :func:`schedule_free_radam`.

  The parameters handed to ``update`` are the gradient points ``y`` (PyTorch's parameters in train
  mode); ``z`` is the base sequence, and the evaluation point ``x`` is computed from both by
  :func:`schedule_free_eval_params`. The scalars mirror ``schedulefree``'s param-group entries.
  """

  count: jax.Array  # shape=(), int32: updates so far (schedulefree's group["k"]); saturates at 2**31-1
  b1: jax.Array  # shape=(), real dtype: momentum (sgd) / b1 (adamw, radam), the interpolation weight
  next_lr: jax.Array  # shape=(), real dtype: step size of the next update (lr * warm-up or rectification)
  lr_max: jax.Array  # shape=(), real dtype: max step size so far (group["lr_max"]; 0 before any update)
  weight_sum: jax.Array  # shape=(), real dtype: sum of the averaging weights (group["weight_sum"])
  z: optax.Params  # the base (SGD/Adam) sequence, same tree as params, at least float32
  nu: Any  # adamw/radam: EMA of squared grads (exp_avg_sq), same tree as params; sgd: None


# Bernoulli coefficients B_2k / (2k)! of h(y) = y / expm1(y) - 1 + y / 2 = sum_k B_2k y^2k / (2k)!
_H_COEFFS = (
  1 / 12,
  -1 / 720,
  1 / 30240,
  -1 / 1209600,
  1 / 47900160,
  -691 / 1307674368000,
  7 / 523069747200,
  -3617 / 10670622842880000,
)


def _h(y):
  """``y / expm1(y) - 1 + y / 2`` for 0 <= y <= 1, by its Taylor series (no cancellation)."""
  y2 = y * y
  series = jnp.zeros_like(y)
  for c in reversed(_H_COEFFS):
    series = (series + as_float(c, y.dtype)) * y2
  return series


def _radam_rho(t, c2):
  """RAdam's ``rho_t = rho_inf - 2 t b2^t / (1 - b2^t)`` with ``rho_inf = 2 / (1 - b2) - 1``, accurately.

  With ``lam = -log(b2)`` it is ``1 + 2 / expm1(lam) - 2 t / expm1(lam t)`` (one plus twice the mean of a
  geometric distribution truncated to t terms). For ``lam t < 1`` the two large terms cancel (about
  2000x in the first steps for b2 = 0.999, which costs the textbook form its float32 accuracy), and it
  is evaluated as ``t + 2 (h(lam) - h(lam t)) / lam`` with ``h(y) = y / expm1(y) - 1 + y / 2`` from its
  series; for ``lam t >= 1`` the direct form loses at most a factor 2.4. ``c2`` = 1 - b2; b2 = 0 gives
  rho_t = 1 (never rectified).
  """
  positive = c2 < 1
  lam = -jnp.log1p(-jnp.where(positive, c2, 0.5))
  y = lam * t
  small = y < 1
  ys = jnp.where(small, y, 0)
  series = t + 2 * (_h(jnp.minimum(lam, 1)) - _h(ys)) / lam
  yl = jnp.where(small, 1, y)
  direct = 1 + 2 / jnp.expm1(lam) - 2 * t / jnp.expm1(yl)
  return jnp.where(positive, jnp.where(small, series, direct), jnp.ones_like(t))


def _radam_rect(t, c2, silent):
  """(rectification factor, adam phase?) of schedulefree's RAdam at update t = 1, 2, ..."""
  rho_t = _radam_rho(t, c2)
  rho_inf = 2 / c2 - 1
  adam_phase = rho_t > 4
  num = (rho_t - 4) * (rho_t - 2) * rho_inf
  den = (rho_inf - 4) * (rho_inf - 2) * rho_t
  rect = jnp.sqrt(jnp.where(adam_phase, num / jnp.where(adam_phase, den, 1), 1))
  fallback = jnp.asarray(0.0 if silent else 1.0, rect.dtype)
  return jnp.where(adam_phase, rect, fallback), adam_phase


def _state_dtype(params):
  from lr_jax.optimizers._state import real_dtype  # no cycle

  return real_dtype(params)


def _open_unit(value, *, fn: str, name: str):
  value = number(value, fn=fn, name=name)
  return value, check((value > 0) & (value < 1), fn=fn, must=f"`{name}` must be in (0, 1)", **{name: value})


def _schedule_free(
  kind, learning_rate, b1, b2, eps, weight_decay, warmup_steps, r, weight_lr_power, silent, mask, fn, b1_name
):
  lr = _learning_rate(learning_rate, fn)
  scheduled = callable(lr)
  b1, ok_b1 = _open_unit(b1, fn=fn, name=b1_name)
  oks = [ok_b1]
  if kind != _SGD:
    b2, ok = _unit_interval(b2, fn=fn, name="b2")
    eps, ok_eps = _non_negative(eps, fn=fn, name="eps")
    oks += [ok, ok_eps]
  if kind != _RADAM:
    warmup_steps, ok = _whole_at_least(warmup_steps, 0, fn=fn, name="warmup_steps")
    oks.append(ok)
  r, ok_r = _non_negative(r, fn=fn, name="r")
  weight_lr_power, ok_p = _non_negative(weight_lr_power, fn=fn, name="weight_lr_power")
  silent = flag(silent, fn=fn, name="silent_sgd_phase")
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  ok = all_ok(*oks, ok_r, ok_p)

  def rate(k, dt):
    """(step size of update k = 0, 1, ..., adam phase?) in dtype ``dt``; schedulefree's ``lr``."""
    base = as_float(lr(k) if scheduled else lr, dt)
    t = k.astype(dt) + 1
    if kind == _RADAM:
      rect, adam_phase = _radam_rect(t, as_float(1 - b2, dt), silent)
      return base * rect, adam_phase
    w = as_float(warmup_steps, dt)
    warm = jnp.where(t <= w, t / jnp.where(w > 0, w, 1), 1)  # k < warmup_steps
    return base * warm, True

  def init_fn(params):
    dt = _state_dtype(params)
    count = jnp.zeros([], jnp.int32)

    def z0(p):  # a copy (never the params' own buffer, so both can be donated)
      return jnp.array(p, dtype=jnp.promote_types(p.dtype, jnp.float32), copy=True)

    z = jax.tree.map(z0, params)
    return ScheduleFreeState(
      count=count,
      b1=as_float(b1, dt),
      next_lr=poison(rate(count, dt)[0], ok),
      lr_max=jnp.zeros([], dt),
      weight_sum=jnp.zeros([], dt),
      z=z,
      nu=None if kind == _SGD else jax.tree.map(jnp.zeros_like, z),
    )

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(
        f"{fn}: `params` must be passed to update(): the schedule-free step interpolates the current "
        f"parameters, e.g. `updates, state = opt.update(grads, state, params)`, got params=None."
      )
    chex.assert_trees_all_equal_shapes(updates, state.z)
    chex.assert_trees_all_equal_shapes(params, state.z)
    if kind != _SGD:
      chex.assert_trees_all_equal_shapes(updates, state.nu)
    decays, _, ok_wd = decay.per_leaf(updates, params, state.count)
    ok_all = all_ok(ok, ok_wd)
    sdt = state.weight_sum.dtype
    k = state.count
    lr_k, adam_phase = rate(k, sdt)
    t = k.astype(sdt) + 1  # no int32 overflow at the saturated count
    lr_max = jnp.maximum(lr_k, state.lr_max)
    weight = jnp.power(t, as_float(r, sdt)) * jnp.power(lr_max, as_float(weight_lr_power, sdt))
    weight_sum = state.weight_sum + weight
    ckp1 = jnp.where(weight_sum == 0, 0, weight / jnp.where(weight_sum == 0, 1, weight_sum))
    b1_k = as_float(b1, sdt)  # from the closure: optax.inject_hyperparams may change it between updates
    # y <- lerp(y, z, c) + lr (b1 (1 - c) - 1) g  (the reference) is evaluated, with z = z_new + lr g, as
    # y <- lerp(y, z_new, c) - lr (1 - c) (1 - b1) g: the same number, but y's update then reads the new z,
    # so XLA updates y and z in place without copying either (no copy of either).
    y_lr = -lr_k * (1 - ckp1) * as_float(1 - b1, sdt)
    if kind != _SGD:
      bc2 = _one_minus_pow(as_float(1 - b2, sdt), t)

    def leaf(g, wd, y, z, nu):
      dt = z.dtype
      g = g.astype(dt)
      y = y.astype(dt)
      if kind == _SGD:
        if wd is not None:  # coupled L2 at y, before the step
          g = g + as_float(wd, dt) * y
        g_y = g
      else:
        nu = as_float(b2, dt) * nu + as_float(1 - b2, dt) * (g * g)
        eps_, bc2_ = as_float(eps, dt), bc2.astype(dt)
        # The normalised gradient, written twice in two forms (equal to rounding) so that XLA recomputes
        # it inside the z and the y loops instead of storing it in a temporary buffer (52 bytes per
        # parameter instead of 56, and no parameter-sized allocation per step).
        g_z = g / (jnp.sqrt(nu / bc2_) + eps_)
        g_y = g * (1 / (jnp.sqrt(nu * (1 / bc2_)) + eps_))
        if kind == _RADAM:
          g_z, g_y = jnp.where(adam_phase, g_z, g), jnp.where(adam_phase, g_y, g)
        g = g_z
        if wd is not None:  # decay at y, after the normalisation
          g = g + as_float(wd, dt) * y
          g_y = g_y + as_float(wd, dt) * y
      z_new = z - lr_k.astype(dt) * g
      y_new = _lerp(y, z_new, ckp1.astype(dt)) + y_lr.astype(dt) * g_y
      return poison(y_new - y, ok_all), z_new, nu

    # Passes over memory (XLA:CPU fuses one output array per loop, so each of y, z and nu is its own
    # loop): nu reads g, nu; z reads g, nu, z (and y, for the weight decay); y reads g, nu, y, z. AdamW
    # and RAdam: 13 array reads and writes with weight decay, 12 without, against Adam's 10 (g, m, v, p
    # read; m, v, p written), so about 1.3x / 1.2x Adam's step on a memory-bound CPU; this is the
    # least for three separately written arrays (y's update needs the normalised gradient, hence g and
    # nu, and z, whose old value its own loop has overwritten). SGD: 7 (z reads g, z; y reads g, y, z).
    new_updates, z, nu = _map_leaves(leaf, 3, updates, _Flat(decays), params, state.z, state.nu)
    new_updates = jax.tree.map(lambda u, g: u.astype(g.dtype), new_updates, updates)
    count = optax.safe_increment(k)
    return new_updates, ScheduleFreeState(
      count=count,
      b1=b1_k,
      next_lr=poison(rate(count, sdt)[0], ok_all),
      lr_max=lr_max,
      weight_sum=weight_sum,
      z=z,
      nu=None if kind == _SGD else nu,
    )

  return optax.GradientTransformation(init_fn, update_fn)


def schedule_free_sgd(
  learning_rate: optax.ScalarOrSchedule = 1.0,
  momentum: chex.Numeric = 0.9,
  weight_decay: chex.Numeric = 0.0,
  warmup_steps: chex.Numeric = 0,
  r: chex.Numeric = 0.0,
  weight_lr_power: chex.Numeric = 2.0,
  *,
  mask: Any = None,
) -> optax.GradientTransformation:
  """Schedule-Free SGD with the numerics of ``schedulefree.SGDScheduleFree`` (1.4).

  The parameters given to ``update`` are the gradient points ``y``; the state keeps the SGD sequence
  ``z``; evaluate at ``x`` = :func:`schedule_free_eval_params`. With k = 0, 1, ... the update number,
  ``b`` = ``momentum`` and ``lr_k`` = ``learning_rate(k) * min(1, (k + 1) / warmup_steps)``::

      g        <- g + weight_decay * y
      lr_max   <- max(lr_max, lr_k);   w = (k + 1)**r * lr_max**weight_lr_power
      c        <- w / (weight_sum <- weight_sum + w)               (0 while weight_sum = 0)
      y        <- lerp(y, z, c) + lr_k * (b * (1 - c) - 1) * g     (x <- (1 - c) x + c z, y = lerp(x, z, 1 - b))
      z        <- z - lr_k * g

  Twin: ``schedulefree.SGDScheduleFree(params, lr, momentum, weight_decay, warmup_steps, r,
  weight_lr_power)`` in train mode; a schedule as ``learning_rate`` is the reference with a PyTorch
  scheduler stepped after every update (it sets ``group["lr"]``, which the warm-up then multiplies);
  the warm-up is the optimizer's own and weights the average through ``lr_max``, so give warm-up as
  ``warmup_steps``, not in the schedule. Differences from ``optax.contrib.schedule_free_sgd``: Optax's
  inner SGD reads its warm-up at count k while the averaging weight reads it at k + 1, so with
  ``warmup_steps > 0`` its first z-step is zero and every later one lags by one (the reference and
  this function use k + 1 for both); Optax has no ``r``. Without warm-up the two agree to rounding.

  Args:
    learning_rate: >= 0: a float, an array, a traced value or a schedule (update k uses
      ``learning_rate(k)``, before the warm-up factor).
    momentum: the interpolation ``b`` in (0, 1): ``y = (1 - b) z + b x``.
    warmup_steps: whole number >= 0: linear warm-up ``(k + 1) / warmup_steps`` of the step size.
    weight_decay: >= 0, the L2 penalty taken at the gradient point ``y``: a number or a schedule
      ``step -> value`` (update k, counted from 0, uses ``weight_decay(k)``).
    r: >= 0, polynomial weighting of the average: update t has weight ``t**r * lr_max**weight_lr_power``.
    weight_lr_power: >= 0, the power of the largest step size so far in the averaging weight (0: no
      weighting by the step size).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools`` (PyTorch: a param
      group with ``weight_decay=0``).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`ScheduleFreeState`; ``update`` needs
    ``params``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the updates
      NaN instead.

  References:
    Defazio et al., `The Road Less Scheduled <https://arxiv.org/abs/2405.15682>`_, NeurIPS 2024.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.schedule_free_sgd(0.1, warmup_steps=2)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   u, state = tx.update(2 * params, state, params)
    ...   params = params + u
    >>> x = optimizers.schedule_free_eval_params(params, state)
    >>> print(f"{float(params[0]):.4f} {float(x[0]):.4f} {float(state.next_lr):.2f}")
    0.6628 0.6731 0.10
  """
  return _schedule_free(
    _SGD, learning_rate, momentum, None, None, weight_decay, warmup_steps, r, weight_lr_power, True, mask,
    "schedule_free_sgd", "momentum",
  )  # fmt: skip


def schedule_free_adamw(
  learning_rate: optax.ScalarOrSchedule = 0.0025,
  b1: chex.Numeric = 0.9,
  b2: chex.Numeric = 0.999,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  warmup_steps: chex.Numeric = 0,
  r: chex.Numeric = 0.0,
  weight_lr_power: chex.Numeric = 2.0,
  *,
  mask: Any = None,
) -> optax.GradientTransformation:
  """Schedule-Free AdamW with the numerics of ``schedulefree.AdamWScheduleFree`` (1.4).

  As :func:`schedule_free_sgd`, with the gradient normalised by Adam's second moment (no first
  moment: ``b1`` is the interpolation), t = k + 1::

      v <- b2 * v + (1 - b2) * g^2
      g <- g / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * y
      (then the lr_max / weight_sum / c / y / z steps of schedule_free_sgd, with b = b1)

  Twin: ``schedulefree.AdamWScheduleFree(params, lr, betas=(b1, b2), eps, weight_decay, warmup_steps,
  r, weight_lr_power)`` in train mode. The decay is decoupled from the normalisation but multiplied
  by the step size (PyTorch's AdamW convention). Differences from ``optax.contrib.schedule_free_adamw``:
  the warm-up lag of :func:`schedule_free_sgd` (Optax's first z-step is zero when ``warmup_steps >
  0``) and no ``r``; otherwise the same to rounding.

  Args:
    learning_rate: >= 0: a float, an array, a traced value or a schedule (update k uses
      ``learning_rate(k)``, before the warm-up factor).
    b1: the interpolation in (0, 1): ``y = (1 - b1) z + b1 x``.
    b2: second-moment decay, in [0, 1).
    eps: >= 0, added to the bias-corrected root.
    warmup_steps: whole number >= 0: linear warm-up ``(k + 1) / warmup_steps`` of the step size.
    weight_decay: >= 0, the L2 penalty taken at the gradient point ``y``: a number or a schedule
      ``step -> value`` (update k, counted from 0, uses ``weight_decay(k)``).
    r: >= 0, polynomial weighting of the average: update t has weight ``t**r * lr_max**weight_lr_power``.
    weight_lr_power: >= 0, the power of the largest step size so far in the averaging weight (0: no
      weighting by the step size).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools`` (PyTorch: a param
      group with ``weight_decay=0``).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`ScheduleFreeState`; ``update`` needs
    ``params``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the updates
      NaN instead.

  References:
    Defazio et al., `The Road Less Scheduled <https://arxiv.org/abs/2405.15682>`_, NeurIPS 2024.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.schedule_free_adamw(0.1)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   u, state = tx.update(2 * params, state, params)
    ...   params = params + u
    >>> x = optimizers.schedule_free_eval_params(params, state)
    >>> print(f"{float(params[0]):.4f} {float(x[0]):.4f}")
    0.7968 0.8061
  """
  return _schedule_free(
    _ADAMW, learning_rate, b1, b2, eps, weight_decay, warmup_steps, r, weight_lr_power, True, mask,
    "schedule_free_adamw", "b1",
  )  # fmt: skip


def schedule_free_radam(
  learning_rate: optax.ScalarOrSchedule = 0.0025,
  b1: chex.Numeric = 0.9,
  b2: chex.Numeric = 0.999,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  r: chex.Numeric = 0.0,
  weight_lr_power: chex.Numeric = 2.0,
  silent_sgd_phase: bool = True,
  *,
  mask: Any = None,
) -> optax.GradientTransformation:
  """Schedule-Free RAdam with the numerics of ``schedulefree.RAdamScheduleFree`` (1.4): no warm-up knob.

  As :func:`schedule_free_adamw` with the warm-up replaced by RAdam's rectification, t = k + 1::

      rho_inf = 2 / (1 - b2) - 1;   rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
      lr_k = learning_rate(k) * sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                                                    if rho_t > 4 (Adam-normalised g)
           = learning_rate(k) * (0 if silent_sgd_phase else 1)    otherwise (raw g: an SGD step)

  ``rho_t`` is evaluated as ``1 + 2 / expm1(l) - 2 t / expm1(l t)`` with ``l = -log(b2)``, and through a
  series where those two terms cancel (the textbook form loses 1e-4 relative in float32 in the first
  steps), so float32 runs get float32-accurate rectifications. Twin: ``schedulefree.RAdamScheduleFree(params,
  lr, betas=(b1, b2), eps, weight_decay, r, weight_lr_power, silent_sgd_phase)`` in train mode. Optax
  has no schedule-free RAdam.

  Args:
    learning_rate: >= 0: a float, an array, a traced value or a schedule (update k uses
      ``learning_rate(k)``, before the rectification).
    b1: the interpolation in (0, 1): ``y = (1 - b1) z + b1 x``.
    b2: second-moment decay, in [0, 1).
    eps: >= 0, added to the bias-corrected root.
    weight_decay: >= 0, the L2 penalty taken at the gradient point ``y``: a number or a schedule
      ``step -> value`` (update k, counted from 0, uses ``weight_decay(k)``).
    r: >= 0, polynomial weighting of the average: update t has weight ``t**r * lr_max**weight_lr_power``.
    weight_lr_power: >= 0, the power of the largest step size so far in the averaging weight (0: no
      weighting by the step size).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools`` (PyTorch: a param
      group with ``weight_decay=0``).
    silent_sgd_phase: while ``rho_t <= 4`` (the first 5 updates for b2 = 0.999) only the second
      moment is updated (True, the reference's default); False takes plain SGD steps instead.

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`ScheduleFreeState`; ``update`` needs
    ``params``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the updates
      NaN instead.

  References:
    Defazio et al., `The Road Less Scheduled <https://arxiv.org/abs/2405.15682>`_, NeurIPS 2024;
    Liu et al., `On the Variance of the Adaptive Learning Rate and Beyond
    <https://arxiv.org/abs/1908.03265>`_, ICLR 2020.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.schedule_free_radam(0.1)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> for _ in range(7):
    ...   u, state = tx.update(2 * params, state, params)
    ...   params = params + u
    >>> print(f"{float(params[0]):.4f} {float(state.lr_max):.4f}")
    0.9942 0.0033
  """
  return _schedule_free(
    _RADAM, learning_rate, b1, b2, eps, weight_decay, 0, r, weight_lr_power, silent_sgd_phase, mask,
    "schedule_free_radam", "b1",
  )  # fmt: skip


def _find_state(opt_state, fn: str) -> ScheduleFreeState:
  found = [
    s
    for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, ScheduleFreeState))
    if isinstance(s, ScheduleFreeState)
  ]
  if len(found) != 1:
    raise ValueError(
      f"{fn}: `opt_state` must hold exactly one ScheduleFreeState (the state of schedule_free_sgd, "
      f"schedule_free_adamw or schedule_free_radam, possibly inside optax.chain or other wrappers), "
      f"got {len(found)}."
    )
  return found[0]


def _interpolate(a, opt_state, fn, weight_of_b1):
  state = _find_state(opt_state, fn)
  chex.assert_trees_all_equal_shapes(a, state.z)

  def one(p, z):
    dt = z.dtype
    w = weight_of_b1(state.b1.astype(dt))
    return _lerp(p.astype(dt), z, w).astype(p.dtype)

  return jax.tree.map(one, a, state.z)


def schedule_free_eval_params(params: optax.Params, opt_state: optax.OptState) -> optax.Params:
  """The evaluation point ``x`` of a schedule-free run: PyTorch's ``optimizer.eval()``, as a pure function.

  With ``y`` = ``params`` (the parameters being trained) and ``b`` the state's ``b1`` (momentum)::

      x = lerp(y, z, 1 - 1 / b) = (y - (1 - b) z) / b

  Use ``x`` for validation, test and checkpoints meant for inference; keep training ``y`` (nothing
  needs switching back: :func:`schedule_free_train_params` is the inverse, for a checkpoint saved in
  eval mode). Unlike PyTorch's ``eval()``/``train()`` pair, which overwrites the parameters twice and
  so perturbs ``y`` by rounding on every round trip, ``params`` is never modified.
  ``optax.contrib.schedule_free_eval_params(state, params)`` computes the same ``x`` with the
  arguments the other way round.

  BatchNorm: the running statistics collected during training belong to ``y``, not ``x``. As in
  schedulefree's README, recompute them at ``x`` before evaluating: run about 50 training batches
  through the model in training mode with ``x`` and keep only the new statistics (Flax:
  ``_, upd = model.apply({"params": x, "batch_stats": stats}, batch, train=True,
  mutable=["batch_stats"])``, repeated with ``stats = upd["batch_stats"]``), then evaluate with
  ``x`` and those statistics.

  Args:
    params: the current (training) parameters ``y``.
    opt_state: the optimizer state; the one :class:`ScheduleFreeState` in it is used (inside
      ``optax.chain``, ``optax.MultiSteps`` and other wrappers too).

  Returns:
    ``x``, a tree like ``params``.

  Raises:
    ValueError: if ``opt_state`` holds no (or more than one) :class:`ScheduleFreeState`.

  References:
    Defazio et al., `The Road Less Scheduled <https://arxiv.org/abs/2405.15682>`_, NeurIPS 2024.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.schedule_free_sgd(0.5, momentum=0.5)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   u, state = tx.update(jnp.array([1.0]), state, params)
    ...   params = params + u
    >>> x = optimizers.schedule_free_eval_params(params, state)
    >>> print(float(params[0]), float(state.z[0]), float(x[0]))
    0.125 0.0 0.25
  """
  return _interpolate(params, opt_state, "schedule_free_eval_params", lambda b: 1 - 1 / b)


def schedule_free_train_params(eval_params: optax.Params, opt_state: optax.OptState) -> optax.Params:
  """The training point ``y`` from the evaluation point ``x``: PyTorch's ``optimizer.train()``.

  The inverse of :func:`schedule_free_eval_params`::

      y = lerp(x, z, 1 - b) = b x + (1 - b) z

  Needed only to resume from parameters saved in eval mode (schedulefree's recommendation for
  checkpoints); a JAX loop keeps ``y`` and never switches.

  Args:
    eval_params: the evaluation parameters ``x``.
    opt_state: the optimizer state holding one :class:`ScheduleFreeState`.

  Returns:
    ``y``, a tree like ``eval_params``.

  Raises:
    ValueError: if ``opt_state`` holds no (or more than one) :class:`ScheduleFreeState`.

  References:
    Defazio et al., `The Road Less Scheduled <https://arxiv.org/abs/2405.15682>`_, NeurIPS 2024.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.schedule_free_sgd(0.5, momentum=0.5)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   u, state = tx.update(jnp.array([1.0]), state, params)
    ...   params = params + u
    >>> x = optimizers.schedule_free_eval_params(params, state)
    >>> print(float(x[0]), float(optimizers.schedule_free_train_params(x, state)[0]))
    0.25 0.125
  """
  return _interpolate(eval_params, opt_state, "schedule_free_train_params", lambda b: 1 - b)
