"""Prodigy (prodigyopt 1.1.2): Adam whose step size ``d`` is estimated as it goes.

Also the helpers the other learning-rate-free optimizers (``_dadapt.py``, ``_dog.py``) share: the
validation of their scalars, the learning rate as a multiplier evaluated inside the transformation,
and sums over the whole parameter tree (the references estimate one ``d`` per parameter group).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_jax._validation import all_ok, check, flag, is_traced, number, poison
from lr_jax.optimizers._adam import _one_minus_pow
from lr_jax.optimizers._common import _learning_rate, _unit_interval, _WeightDecay
from lr_jax.optimizers._state import real_dtype
from lr_jax.schedules._base import as_float

__all__ = ["ProdigyState", "prodigy"]


# ------------------------------------------------------------------------------------------------
# Shared by the learning-rate-free optimizers
# ------------------------------------------------------------------------------------------------


def _positive(value, *, fn: str, name: str):
  """Validates ``value`` > 0; returns (value, ok)."""
  value = number(value, fn=fn, name=name)
  return value, check(value > 0, fn=fn, must=f"`{name}` must be > 0", **{name: value})


def _growth_rate(value, *, fn: str):
  """Validates ``growth_rate`` > 0, where ``inf`` (no limit, the references' default) is allowed."""
  if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isinf(value) and value > 0:
    return value, True
  if isinstance(value, (np.ndarray, np.generic, jax.Array)) and not is_traced(value):
    arr = np.asarray(value)
    if arr.ndim == 0 and np.issubdtype(arr.dtype, np.floating) and np.isposinf(arr):
      return arr, True
  return _positive(value, fn=fn, name="growth_rate")


def _lr_free_rate(learning_rate, fn: str):
  """The learning-rate multiplier (a number or a schedule ``step -> value``), validated >= 0."""
  return _learning_rate(learning_rate, fn)


def _rate_at(learning_rate, count, dt):
  """``(rate, ok)``: the multiplier for update ``count`` (counted from 0) as a ``dt`` scalar, and
  whether it is a number (a traced invalid learning rate is NaN: its lane's updates become NaN,
  where a NaN multiplier alone would only skip the update)."""
  lr = learning_rate(count) if callable(learning_rate) else learning_rate
  rate = as_float(lr, dt)
  ok = jnp.logical_not(jnp.isnan(rate)) if (callable(learning_rate) or is_traced(learning_rate)) else True
  return rate, ok


def _derived(fn, dt, *values):
  """``fn(*values)`` rounded once to ``dt``: computed in float64 when every value is concrete.

  For constants such as ``1 - sqrt(b2)``: in float32 the cancellation loses most digits (the
  references compute them from Python floats), so concrete ones are computed before rounding.
  ``fn`` uses operators and ``** 0.5`` only, so that it works on NumPy values and on tracers.
  """
  if is_traced(values):
    return fn(*(as_float(v, dt) for v in values))
  return as_float(np.asarray(fn(*(np.float64(v) for v in values))), dt)


def _bias_corrections(b1, b2, k1, dt):
  """Adam's ``(1 - b1^k1, 1 - b2^k1)``, accurate in float32 (``1 - b`` computed before rounding)."""
  c1 = _derived(lambda b: 1 - b, dt, b1)
  c2 = _derived(lambda b: 1 - b, dt, b2)
  return _one_minus_pow(c1, k1), _one_minus_pow(c2, k1)


def _warn_if_steps_round_away(params, value, name: str, scale: float, fn: str, remedy: str):
  """Warns when 16-bit float params meet a concrete initial step ``value < scale * eps`` (``eps`` of
  the coarsest 16-bit dtype among the params).

  The first steps of these methods are ``value``-sized (Prodigy's ``d0``, DoG's ``reps_rel``); in
  float16/bfloat16 they round away, the params never move, and the step size, estimated from how far
  the params moved, never grows: training silently stops at the start. The reference packages,
  which also update params in their own dtype, do the same. Measured on a 64-parameter quadratic
  (normal init, 100 steps): Prodigy is stuck at its default ``d0=1e-6`` in both, slow at 1e-5 in
  bfloat16 and trains from 1e-4 (float16 from 1e-5): ``scale`` 1e-2. DoG is stuck up to
  ``reps_rel=1e-3`` in bfloat16 and 1e-4 in float16, and trains from 10x those: ``scale`` 1.
  """
  if is_traced(value):
    return
  half = sorted({str(jnp.result_type(x)) for x in jax.tree.leaves(params)} & {"bfloat16", "float16"})
  if half and float(value) < scale * max(float(jnp.finfo(d).eps) for d in half):
    warnings.warn(
      f"{fn}: {'/'.join(half)} params with {name}={float(value):g}: the first steps are below the "
      f"dtype's resolution and round away, so the params barely move and the step size, estimated "
      f"from how far they moved, grows slowly or never (the reference implementation does the same). Keep "
      f"float32 params (cast to 16 bits inside the loss), or {remedy}.",
      RuntimeWarning,
      stacklevel=3,
    )


def _require_params(params, fn: str):
  if params is None:
    raise ValueError(
      f"{fn}: `params` must be passed to update(), e.g. `updates, state = opt.update(grads, state, params)`, "
      "got params=None."
    )


def _tree_sum(values, dt):
  """The sum of per-leaf scalars (``values`` a list), in ``dt``; 0 for an empty list."""
  return sum((v.astype(dt) for v in values), start=jnp.zeros([], dt))


def _state_dtype(params, fn: str | None = None) -> jnp.dtype:
  """The dtype of the step-size scalars: the params' real dtype, at least float32.

  With ``fn`` (from ``init``), complex params are refused: the reference implementations' global
  inner products and norms (``torch.dot``, ``.norm()``) are not defined for them the way
  ``torch.view_as_real`` would give, so a silent wrong number is replaced by a clear error.
  """
  if fn is not None:
    bad = [jnp.result_type(x) for x in jax.tree.leaves(params) if jnp.iscomplexobj(x)]
    if bad:
      raise ValueError(
        f"{fn}: complex params are not supported; pass real params (e.g. split real and imaginary "
        f"parts), got params with dtype={bad[0]}."
      )
  return real_dtype(params)


def _copy(p, dtype):
  """``p`` as a new buffer of ``dtype`` (never the params' own buffer: params and state are donated)."""
  return jnp.array(p, dtype=dtype, copy=True)


def _moment(p):
  """A zero moment for ``p``, in its dtype promoted to at least float32."""
  return jnp.zeros(jnp.shape(p), jnp.promote_types(p.dtype, jnp.float32))


# ------------------------------------------------------------------------------------------------
# Prodigy
# ------------------------------------------------------------------------------------------------


class ProdigyState(NamedTuple):
  """State of :func:`prodigy`.

  ``d`` is the current estimate of the step size: the next update moves by about
  ``d * learning_rate(count) * bias_correction`` per coordinate (Adam-normalised).
  """

  count: jax.Array  # shape=(), int32; updates so far (the learning-rate schedule's step); saturates
  k: jax.Array  # shape=(), int32; updates taken (prodigyopt's group['k']: bias correction)
  d: jax.Array  # shape=(), params' real dtype; the step-size estimate (prodigyopt's group['d'])
  d_max: jax.Array  # shape=(), the largest estimate so far (group['d_max'])
  d_numerator: jax.Array  # shape=(), the b3-weighted numerator (group['d_numerator'])
  exp_avg: optax.Updates  # EMA of d * grads, same tree as params
  exp_avg_sq: optax.Updates  # EMA of d^2 * grads^2, same tree as params
  s: optax.Updates  # b3-weighted sum of scaled grads, each leaf flattened (every slice_p-th entry)
  p0: optax.Updates  # the initial params, each leaf flattened (every slice_p-th entry)


def prodigy(
  learning_rate: optax.ScalarOrSchedule = 1.0,
  b1: chex.Numeric = 0.9,
  b2: chex.Numeric = 0.999,
  b3: chex.Numeric | None = None,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  decouple: bool = True,
  use_bias_correction: bool = False,
  safeguard_warmup: bool = False,
  d0: chex.Numeric = 1e-6,
  d_coef: chex.Numeric = 1.0,
  growth_rate: chex.Numeric = math.inf,
  *,
  slice_p: int = 1,
  mask: Any = None,
) -> optax.GradientTransformation:
  """Prodigy: Adam with a step size ``d`` estimated from the distance travelled (``prodigyopt.Prodigy``).

  With ``lr`` = ``learning_rate(count)`` (a multiplier, 1 by default), ``k`` the updates taken so far,
  ``bc = sqrt(1 - b2^(k+1)) / (1 - b1^(k+1))`` (``use_bias_correction``, else 1), ``x0`` the initial
  params and sums over *all* leaves of the tree (one ``d`` for the whole model)::

      dlr   = d * lr * bc
      g     <- g + weight_decay * p                                     (decouple=False)
      num   <- b3 * num + (d / d0) * dlr * <g, x0 - p>
      m     <- b1 * m + (1 - b1) * d * g;     v <- b2 * v + (1 - b2) * d^2 * g^2
      s     <- b3 * s + (d / d0) * (d if safeguard_warmup else dlr) * g
      d_hat =  d_coef * num / sum|s|
      d     <- max(d, d_hat) if d == d0;   d_max <- max(d_max, d_hat);   d <- min(d_max, d * growth_rate)
      p     <- p - dlr * weight_decay * p - dlr * m / (sqrt(v) + d * eps)   (the decay: decouple=True)

  ``b3`` defaults to ``sqrt(b2)``. As in the reference, an update with ``lr == 0`` changes nothing
  (not even ``k``), and an update where ``sum|s| == 0`` (all gradients zero so far) leaves the
  parameters, ``d`` and ``k`` as they were. The learning rate is applied inside, because it enters
  the estimate of ``d``: use a schedule with peak 1 (e.g. ``schedules.cosine_annealing(1.0, T)``),
  as the reference recommends, not ``optax.chain(prodigy(), optax.scale(...))``.

  Parity: equal to ``prodigyopt.Prodigy`` 1.1.2 (``lr, betas=(b1, b2), beta3=b3, eps, weight_decay,
  decouple, use_bias_correction, safeguard_warmup, d0, d_coef, growth_rate, slice_p``) on one
  parameter group, to float64 rounding over 200 steps (tests/parity/test_prodigy.py). Differences
  from ``optax.contrib.prodigy``: Optax always applies the bias correction (the reference's default
  is off), has no ``growth_rate``, no coupled weight decay (``decouple=False``), no ``slice_p``, and
  always updates (no skipped steps); it equals this function with ``use_bias_correction=True``.

  Args:
    learning_rate: the multiplier of ``d``: a number or a schedule ``step -> value`` (>= 0).
    b1: Adam's first-moment decay, in [0, 1).
    b2: Adam's second-moment decay, in [0, 1).
    b3: decay of the ``d`` estimate's running sums, in [0, 1]; None means ``sqrt(b2)``.
    eps: > 0, added to ``sqrt(v)`` (scaled by ``d``).
    weight_decay: >= 0, a number or a schedule; decoupled (AdamW) or coupled (L2 on the gradient).
    decouple: AdamW-style decay (True, the reference's default) or an L2 term on the gradient.
    use_bias_correction: Adam's bias correction of the step (off in the reference by default).
    safeguard_warmup: leave ``lr`` out of ``s`` (the denominator of the estimate).
    d0: > 0, the initial estimate.
    d_coef: > 0, multiplies the estimate (the knob to tune: 0.5 or 2 also work).
    growth_rate: > 0, the largest factor by which ``d`` may grow per step (``inf``: no limit).
    slice_p: a whole number >= 1 (static): estimate ``d`` from every ``slice_p``-th entry of each
      (flattened) leaf only, saving memory (an approximation for ``slice_p > 1``, as in the reference).
    mask: where to apply the weight decay (see :func:`adam`).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`ProdigyState`; ``update`` needs
    ``params``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range, or (from ``init``) the params are
      complex. Traced invalid values make the updates NaN instead.

  References:
    Mishchenko & Defazio, `Prodigy: An Expeditiously Adaptive Parameter-Free Learner
    <https://arxiv.org/abs/2306.06101>`_, ICML 2024.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optimizers.prodigy()
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> for _ in range(100):
    ...   u, state = tx.update(2 * params, state, params)  # the gradient of |p|^2
    ...   params = optax.apply_updates(params, u)
    >>> # prodigyopt.Prodigy gives the same in float32 (0.486; in float64: 0.519, as lr_jax with x64)
    >>> print(f"d = {float(state.d):.3f}, |p| = {float(jnp.linalg.norm(params)):.3f}")
    d = 0.486, |p| = 0.009
  """
  fn = "prodigy"
  lr = _lr_free_rate(learning_rate, fn)
  b1, ok_b1 = _unit_interval(b1, fn=fn, name="b1")
  b2, ok_b2 = _unit_interval(b2, fn=fn, name="b2")
  if b3 is None:
    ok_b3 = True
  else:
    b3, ok_b3 = _unit_interval(b3, fn=fn, name="b3", closed=True)
  eps, ok_eps = _positive(eps, fn=fn, name="eps")
  d0, ok_d0 = _positive(d0, fn=fn, name="d0")
  d_coef, ok_coef = _positive(d_coef, fn=fn, name="d_coef")
  growth_rate, ok_growth = _growth_rate(growth_rate, fn=fn)
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  decouple = flag(decouple, fn=fn, name="decouple")
  use_bias_correction = flag(use_bias_correction, fn=fn, name="use_bias_correction")
  safeguard_warmup = flag(safeguard_warmup, fn=fn, name="safeguard_warmup")
  if not isinstance(slice_p, (int, np.integer)) or isinstance(slice_p, bool) or slice_p < 1:
    raise ValueError(
      f"{fn}: `slice_p` must be a whole number >= 1 (static; under optax.inject_hyperparams pass "
      f"static_args=('slice_p',)), got slice_p={slice_p!r}."
    )
  slice_p = int(slice_p)
  ok = all_ok(ok_b1, ok_b2, ok_b3, ok_eps, ok_d0, ok_coef, ok_growth)
  momentless = is_traced(b1) or float(b1) == 0  # static: can b1 be 0?

  def sliced(x):
    return jnp.ravel(x)[::slice_p]

  def init_fn(params):
    dt = _state_dtype(params, fn)
    _warn_if_steps_round_away(params, d0, "d0", 1e-2, fn, "raise d0 (1e-3 trains where 1e-6 does not)")
    return ProdigyState(
      count=jnp.zeros([], jnp.int32),
      k=jnp.zeros([], jnp.int32),
      d=as_float(d0, dt),
      d_max=as_float(d0, dt),
      d_numerator=jnp.zeros([], dt),
      exp_avg=jax.tree.map(_moment, params),
      exp_avg_sq=jax.tree.map(_moment, params),
      s=jax.tree.map(lambda p: _moment(sliced(p)), params),
      p0=jax.tree.map(lambda p: _copy(sliced(p), _moment(p).dtype), params),
    )

  def update_fn(updates, state, params=None):
    _require_params(params, fn)
    chex.assert_trees_all_equal_shapes(updates, state.exp_avg, state.exp_avg_sq)
    dt = state.d.dtype
    decays, _, ok_wd = decay.per_leaf(updates, params, state.count)
    f = lambda x: as_float(x, dt)
    beta1, beta2 = f(b1), f(b2)
    c1 = _derived(lambda b: 1 - b, dt, b1)
    c2 = _derived(lambda b: 1 - b, dt, b2)
    beta3 = _derived(lambda b: b**0.5, dt, b2) if b3 is None else f(b3)
    rate, ok_rate = _rate_at(lr, state.count, dt)
    ok_all = all_ok(ok, ok_wd, ok_rate)
    d, d_max = state.d, state.d_max
    k1 = (state.k + 1).astype(dt)
    if use_bias_correction:
      bc1, bc2 = _bias_corrections(b1, b2, k1, dt)
      bc = jnp.sqrt(bc2) / bc1
    else:
      bc = jnp.ones([], dt)
    dlr = d * rate * bc
    active = rate > 0  # prodigyopt: `if group_lr > 0.0`; lr == 0 skips the whole step
    d_ratio = d / f(d0)
    s_scale = d_ratio * (d if safeguard_warmup else dlr)

    treedef = jax.tree.structure(updates)
    leaves = [
      treedef.flatten_up_to(t) for t in (updates, params, state.exp_avg, state.exp_avg_sq, state.s, state.p0)
    ]
    # Passes over memory (XLA:CPU fuses one output array per loop): <g, x0 - p> reads g, x0, p; m, v
    # and s are written in place (each reads g and itself); sum|s| reads the new s; the params read p,
    # m, v. 17 array reads and writes against Adam's 10 (g, m, v, p read; m, v, p written): the extra
    # reduction, the third moment s and the sum over it make the step at least 1.7x Adam's on a
    # memory-bound CPU, more since XLA:CPU's reduction kernels stream memory more slowly than its
    # elementwise loops (no copies or materialised temporaries: the compiled step has these 6 loops).
    dots, l1s, ms, vs, ss, xs_full = [], [], [], [], [], []
    for g, p, m, v, s, p0, wd in zip(*leaves, decays, strict=True):
      x = g.astype(m.dtype)
      if wd is not None and not decouple:
        x = x + f(wd).astype(m.dtype) * p.astype(m.dtype)
      xs = sliced(x)
      dots.append(jnp.vdot(xs, p0 - sliced(p).astype(m.dtype)))
      m_new = beta1 * m + (d * c1) * x
      v_new = beta2 * v + (d * d * c2) * (x * x)
      s_new = beta3 * s + s_scale * xs
      ms.append(jnp.where(active, m_new, m).astype(m.dtype))
      vs.append(jnp.where(active, v_new, v).astype(v.dtype))
      ss.append(jnp.where(active, s_new, s).astype(s.dtype))
      l1s.append(jnp.sum(jnp.abs(s_new)))
      xs_full.append(x)
    delta_num = jnp.where(active, d_ratio * dlr * _tree_sum(dots, dt), 0)
    d_denom = jnp.where(active, _tree_sum(l1s, dt), 0)
    d_numerator = beta3 * state.d_numerator + delta_num
    taken = d_denom != 0  # prodigyopt returns early when d_denom == 0

    d_hat = f(d_coef) * d_numerator / d_denom
    d_new = jnp.where(d == f(d0), jnp.maximum(d, d_hat), d)
    d_max_new = jnp.maximum(d_max, d_hat)
    d_new = jnp.minimum(d_max_new, d_new * f(growth_rate))

    out = []
    for m, v, x, p, wd in zip(ms, vs, xs_full, leaves[1], decays, strict=True):
      # b1 == 0: prodigyopt keeps no first moment and steps with d_new * g (m holds d_old * g)
      num = jnp.where(beta1 > 0, m, d_new * x) if momentless else m
      u = -dlr * num / (jnp.sqrt(v) + d_new * f(eps))
      if wd is not None and decouple:
        u = u - (f(wd) * dlr) * p.astype(m.dtype)
      out.append(poison(jnp.where(taken, u, 0), ok_all).astype(p.dtype))
    new_state = ProdigyState(
      count=optax.safe_increment(state.count),
      k=jnp.where(taken, optax.safe_increment(state.k), state.k),
      d=jnp.where(taken, d_new, d),
      d_max=jnp.where(taken, d_max_new, d_max),
      d_numerator=jnp.where(taken, d_numerator, state.d_numerator),
      exp_avg=treedef.unflatten(ms),
      exp_avg_sq=treedef.unflatten(vs),
      s=treedef.unflatten(ss),
      p0=state.p0,
    )
    return treedef.unflatten(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)
