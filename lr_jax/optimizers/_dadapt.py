"""D-Adaptation (dadaptation 3.2): Adam, SGD and AdaGrad whose step size ``d`` is estimated as they go.

Step time: on a CPU these steps are memory-bound and XLA:CPU writes one array per loop, so a step
costs at least its number of whole-array reads and writes. Adam has 10 (g, m, v, p read; m, v, p
written, in 3 loops). D-Adapt Adam has 17 (a reduction over g, s, v before the update, a third
moment s, a sum over the new s): at least 1.7x Adam's step; D-Adapt AdaGrad 16 (1.6x); D-Adapt SGD
10 (11 at its first update). The global sums cost more than their count says: XLA:CPU's reduction kernels (YNNPACK)
stream memory more slowly than its elementwise loops (bench/bench_lr_free.py measures the steps
against Adam's). The comments in each ``update_fn`` list the passes. Without ``_after`` and
``_unshared`` XLA would also copy state arrays or write shared temporaries (D-Adapt Adam 23
accesses, AdaGrad 31 before them).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lr_jax._validation import all_ok, flag, poison
from lr_jax.optimizers._common import _unit_interval, _WeightDecay, _with_coupled_decay
from lr_jax.optimizers._prodigy import (
  _bias_corrections,
  _copy,
  _derived,
  _growth_rate,
  _lr_free_rate,
  _moment,
  _positive,
  _rate_at,
  _require_params,
  _state_dtype,
  _tree_sum,
)
from lr_jax.schedules._base import as_float

__all__ = [
  "DAdaptAdagradState",
  "DAdaptAdamState",
  "DAdaptSGDState",
  "dadapt_adagrad",
  "dadapt_adam",
  "dadapt_sgd",
]


def _dot(x, y):
  """``sum(x * y)`` of one leaf, as one reduction loop (``jnp.vdot`` may materialise its operands)."""
  return jnp.sum(x * y)


def _unshared(value, count, which: int = 0):
  """``value``, as a number computed at run time (``count`` is an update counter, never negative).

  For a constant used in a reduction and elsewhere (``eps``): XLA:CPU shares one broadcast of it
  between its users, and its reduction kernels (YNNPACK) cannot take a shared broadcast, so it
  writes a params-sized array of ``eps`` and reads it back (2 passes over memory). A run-time scalar
  is broadcast inside each loop instead; give each reduction its own ``which`` (equal expressions
  would be merged into one shared broadcast again). The number is unchanged.
  """
  return jnp.where(count >= -which, value, jnp.zeros_like(value))


def _after(scalar):
  """``True``, computed from ``scalar``: ``where(_after(r), new, old)`` is ``new``, ordered after ``r``.

  A reduction over an old state array and the in-place write of its new value are otherwise
  unordered, and XLA then copies the array first to keep the old value alive (a whole extra read and
  write of it per step). Selecting the new value under a condition computed from the reduction makes
  the write depend on it, so the reduction runs first and the update happens in place. The condition
  is true for every value, NaN included (``lax.optimization_barrier`` would say the same, but XLA:CPU
  removes barriers before it inserts copies); the numbers are unchanged.
  """
  return (scalar == scalar) | (scalar != scalar)  # noqa: PLR0124 (true, NaN included; not folded)


def _bump_d(d, d_hat, growth_rate):
  """dadaptation's ``d = max(d, min(d_hat, d * growth_rate))``."""
  return jnp.maximum(d, jnp.minimum(d_hat, d * growth_rate))


# ------------------------------------------------------------------------------------------------
# D-Adapt Adam
# ------------------------------------------------------------------------------------------------


class DAdaptAdamState(NamedTuple):
  """State of :func:`dadapt_adam`. ``d`` is the current step-size estimate (``group['d']``)."""

  count: jax.Array  # shape=(), int32; updates so far (the learning-rate schedule's step); saturates
  k: jax.Array  # shape=(), int32; updates taken (group['k']: bias correction)
  d: jax.Array  # shape=(), params' real dtype; the step-size estimate
  numerator_weighted: jax.Array  # shape=(), group['numerator_weighted']
  exp_avg: optax.Updates  # EMA of d * lr * grads, same tree as params
  exp_avg_sq: optax.Updates  # EMA of grads^2, same tree as params
  s: optax.Updates  # sqrt(b2)-EMA of d * lr * grads, same tree as params


def dadapt_adam(
  learning_rate: optax.ScalarOrSchedule = 1.0,
  b1: chex.Numeric = 0.9,
  b2: chex.Numeric = 0.999,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  decouple: bool = False,
  use_bias_correction: bool = False,
  d0: chex.Numeric = 1e-6,
  growth_rate: chex.Numeric = math.inf,
  *,
  mask: Any = None,
) -> optax.GradientTransformation:
  """D-Adapt Adam (``dadaptation.DAdaptAdam``): Adam with a step size ``d`` estimated as it goes.

  With ``lr = learning_rate(count)``, ``k`` the updates taken so far, ``bc = sqrt(1 - b2^(k+1)) /
  (1 - b1^(k+1))`` (``use_bias_correction``, else 1), ``sb = sqrt(b2)``, sums over all leaves::

      dlr = d * lr * bc
      g   <- g + weight_decay * p                                   (decouple=False)
      num <- sb * num + (1 - sb) * dlr * <g, s / (sqrt(v) + eps)>    (v before this step)
      m   <- b1 * m + (1 - b1) * dlr * g;    v <- b2 * v + (1 - b2) * g^2
      s   <- sb * s + (1 - sb) * dlr * g
      d   <- max(d, min(num / ((1 - sb) * sum|s|), d * growth_rate))
      p   <- p - dlr * weight_decay * p - m / (sqrt(v) + eps)       (the decay: decouple=True)

  An update where ``sum|s| == 0`` (``lr == 0``, or all gradients zero so far) moves nothing and
  keeps ``d``, ``num`` and ``k`` (the moments still decay, as in the reference). The learning rate
  is a multiplier applied inside (it enters the estimate): give schedules with peak 1.

  Parity: equal to ``dadaptation.DAdaptAdam`` 3.2 (``lr, betas=(b1, b2), eps, weight_decay,
  decouple, use_bias_correction, d0, growth_rate``; one parameter group, ``layer_scale=1``) to
  float64 rounding over 200 steps. ``optax.contrib.dadapt_adamw`` always applies the bias
  correction and decouples the weight decay: it equals this function with
  ``use_bias_correction=True, decouple=True`` (the reference's defaults are False, False), and has
  no ``growth_rate`` and no skipped steps.

  Args:
    learning_rate: the multiplier of ``d``: a number or a schedule ``step -> value`` (>= 0).
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: > 0, added to ``sqrt(v)``.
    weight_decay: >= 0, a number or a schedule; coupled (L2, default) or decoupled.
    decouple: AdamW-style decay instead of an L2 term on the gradient.
    use_bias_correction: Adam's bias correction of the step.
    d0: > 0, the initial estimate.
    growth_rate: > 0, the largest factor by which ``d`` may grow per step (``inf``: no limit).
    mask: where to apply the weight decay (see :func:`adam`).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`DAdaptAdamState`.

  Raises:
    ValueError: if a concrete hyperparameter is out of range, or (from ``init``) the params are
      complex. Traced invalid values make the updates NaN instead.

  References:
    Defazio & Mishchenko, `Learning-Rate-Free Learning by D-Adaptation
    <https://arxiv.org/abs/2301.07733>`_, ICML 2023.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optimizers.dadapt_adam()
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> @jax.jit  # one compiled step instead of op-by-op dispatch
    ... def step(params, state):
    ...   u, state = tx.update(2 * params, state, params)
    ...   return optax.apply_updates(params, u), state
    >>> for _ in range(100):
    ...   params, state = step(params, state)
    >>> print(f"d = {float(state.d):.3f}")
    d = 3.715
  """
  fn = "dadapt_adam"
  lr = _lr_free_rate(learning_rate, fn)
  b1, ok_b1 = _unit_interval(b1, fn=fn, name="b1")
  b2, ok_b2 = _unit_interval(b2, fn=fn, name="b2")
  eps, ok_eps = _positive(eps, fn=fn, name="eps")
  d0, ok_d0 = _positive(d0, fn=fn, name="d0")
  growth_rate, ok_growth = _growth_rate(growth_rate, fn=fn)
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  decouple = flag(decouple, fn=fn, name="decouple")
  use_bias_correction = flag(use_bias_correction, fn=fn, name="use_bias_correction")
  ok = all_ok(ok_b1, ok_b2, ok_eps, ok_d0, ok_growth)

  def init_fn(params):
    dt = _state_dtype(params, fn)
    return DAdaptAdamState(
      count=jnp.zeros([], jnp.int32),
      k=jnp.zeros([], jnp.int32),
      d=as_float(d0, dt),
      numerator_weighted=jnp.zeros([], dt),
      exp_avg=jax.tree.map(_moment, params),
      exp_avg_sq=jax.tree.map(_moment, params),
      s=jax.tree.map(_moment, params),
    )

  def update_fn(updates, state, params=None):
    chex.assert_trees_all_equal_shapes(updates, state.exp_avg, state.exp_avg_sq, state.s)
    dt = state.d.dtype
    decays, params, ok_wd = decay.per_leaf(updates, params, state.count)
    ok_all = all_ok(ok, ok_wd)
    f = lambda x: as_float(x, dt)
    beta1, beta2 = f(b1), f(b2)
    c1 = _derived(lambda b: 1 - b, dt, b1)
    c2 = _derived(lambda b: 1 - b, dt, b2)
    sb2 = _derived(lambda b: b**0.5, dt, b2)
    csb2 = _derived(lambda b: (1 - b) / (1 + b**0.5), dt, b2)  # 1 - sqrt(b2) without cancellation
    rate, ok_rate = _rate_at(lr, state.count, dt)
    ok_all = all_ok(ok_all, ok_rate)
    d = state.d
    k1 = (state.k + 1).astype(dt)
    if use_bias_correction:
      bc1, bc2 = _bias_corrections(b1, b2, k1, dt)
      bc = jnp.sqrt(bc2) / bc1
    else:
      bc = jnp.ones([], dt)
    dlr = d * rate * bc
    active = rate > 0

    treedef = jax.tree.structure(updates)
    flat = [treedef.flatten_up_to(t) for t in (updates, params, state.exp_avg, state.exp_avg_sq, state.s)]
    xs = [
      _with_coupled_decay(g, p, None if decouple else wd, m.dtype)
      for g, p, m, wd in zip(flat[0], flat[1], flat[2], decays, strict=True)
    ]
    # Passes over memory (XLA:CPU fuses one output per loop): <g, s / (sqrt(v) + eps)> reads g, s, v;
    # m, v and s are written in place (each reads g and itself); sum|s| reads the new s; the params
    # read p, m, v. 17 array reads and writes against Adam's 10 (g, m, v, p read; m, v, p written,
    # in 3 loops): the extra reduction and the third moment s make the step at least 1.7x Adam's on a
    # memory-bound CPU. The new s and v are selected under `_after(dot)`, which orders their writes
    # after the reduction that reads the old ones (otherwise XLA copies both first: 4 more passes).
    eps_dot = _unshared(f(eps), state.count)
    dot = _tree_sum([_dot(x, s / (jnp.sqrt(v) + eps_dot)) for x, s, v in zip(xs, flat[4], flat[3])], dt)
    written = active & _after(dot)
    ms, vs, ss = [], [], []
    for x, m, v, s in zip(xs, *flat[2:], strict=True):
      m_new = beta1 * m + (dlr * c1) * x
      v_new = beta2 * v + c2 * (x * x)
      s_new = sb2 * s + (dlr * csb2) * x
      ms.append(jnp.where(active, m_new, m).astype(m.dtype))
      vs.append(jnp.where(written, v_new, v).astype(v.dtype))
      ss.append(jnp.where(written, s_new, s).astype(s.dtype))
    numerator_acum = jnp.where(active, dlr * dot, 0)
    sk_l1 = jnp.where(active, _tree_sum([jnp.sum(jnp.abs(s)) for s in ss], dt), 0)
    numerator_weighted = sb2 * state.numerator_weighted + csb2 * numerator_acum
    taken = sk_l1 != 0
    d_hat = numerator_weighted / (csb2 * sk_l1)
    d_new = _bump_d(d, d_hat, f(growth_rate))

    out = []
    for m, v, p, wd in zip(ms, vs, flat[1], decays, strict=True):
      u = -m / (jnp.sqrt(v) + f(eps))
      if wd is not None and decouple:
        u = u - (f(wd) * dlr) * p.astype(m.dtype)
      out.append(poison(jnp.where(taken, u, 0), ok_all).astype(p.dtype))
    new_state = DAdaptAdamState(
      count=optax.safe_increment(state.count),
      k=jnp.where(taken, optax.safe_increment(state.k), state.k),
      d=jnp.where(taken, d_new, d),
      numerator_weighted=jnp.where(taken, numerator_weighted, state.numerator_weighted),
      exp_avg=treedef.unflatten(ms),
      exp_avg_sq=treedef.unflatten(vs),
      s=treedef.unflatten(ss),
    )
    return treedef.unflatten(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


# ------------------------------------------------------------------------------------------------
# D-Adapt SGD
# ------------------------------------------------------------------------------------------------


class DAdaptSGDState(NamedTuple):
  """State of :func:`dadapt_sgd`. ``d`` is the current estimate; a step moves ``d * lr / g0_norm``."""

  count: jax.Array  # shape=(), int32; updates so far (the learning-rate schedule's step); saturates
  k: jax.Array  # shape=(), int32; updates taken (group['k'])
  d: jax.Array  # shape=(), params' real dtype; the distance estimate (group['d'])
  numerator_weighted: jax.Array  # shape=(), group['numerator_weighted']
  g0_norm: jax.Array  # shape=(), the norm of the first gradient (without weight decay)
  s: optax.Updates  # sum of dlr * grads, same tree as params
  x0: optax.Updates  # the initial params


def dadapt_sgd(
  learning_rate: optax.ScalarOrSchedule = 1.0,
  momentum: chex.Numeric = 0.0,
  weight_decay: chex.Numeric = 0.0,
  d0: chex.Numeric = 1e-6,
  growth_rate: chex.Numeric = math.inf,
  *,
  mask: Any = None,
) -> optax.GradientTransformation:
  """D-Adapt SGD (``dadaptation.DAdaptSGD``): dual averaging with an estimated step size ``d``.

  With ``lr = learning_rate(count)``, ``g0`` the first gradient (without weight decay), ``x0`` the
  initial params, sums over all leaves::

      dlr = d * lr / |g0|
      g   <- g + weight_decay * p
      num <- num + dlr * <g, s>;     s <- s + dlr * g
      d   <- max(d, min(2 * num / |s|, d * growth_rate))
      p   <- momentum * p + (1 - momentum) * (x0 - s)

  (``momentum`` is primal averaging, as in the reference.) An update where ``|s| == 0`` moves
  nothing and keeps ``d``. Equal to ``dadaptation.DAdaptSGD`` 3.2 to float64 rounding (one group);
  Optax has no D-Adapt SGD. The reference raises at ``lr == 0`` (a schedule reaching 0); here such
  an update changes nothing but the counter.

  Args:
    learning_rate: the multiplier of ``d``: a number or a schedule ``step -> value`` (>= 0).
    momentum: in [0, 1), the weight of the current point in the primal average.
    weight_decay: >= 0 (coupled: added to the gradient), a number or a schedule.
    d0: > 0, the initial estimate.
    growth_rate: > 0, the largest factor by which ``d`` may grow per step (``inf``: no limit).
    mask: where to apply the weight decay (see :func:`adam`).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`DAdaptSGDState`; ``update``
    needs ``params``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range, or (from ``init``) the params are
      complex. Traced invalid values make the updates NaN instead.

  References:
    Defazio & Mishchenko, `Learning-Rate-Free Learning by D-Adaptation
    <https://arxiv.org/abs/2301.07733>`_, ICML 2023.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optimizers.dadapt_sgd()
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> @jax.jit  # one compiled step instead of op-by-op dispatch
    ... def step(params, state):
    ...   u, state = tx.update(2 * params, state, params)
    ...   return optax.apply_updates(params, u), state
    >>> for _ in range(100):
    ...   params, state = step(params, state)
    >>> print(f"d = {float(state.d):.3f}")
    d = 1.940
  """
  fn = "dadapt_sgd"
  lr = _lr_free_rate(learning_rate, fn)
  momentum, ok_m = _unit_interval(momentum, fn=fn, name="momentum")
  d0, ok_d0 = _positive(d0, fn=fn, name="d0")
  growth_rate, ok_growth = _growth_rate(growth_rate, fn=fn)
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  ok = all_ok(ok_m, ok_d0, ok_growth)

  def init_fn(params):
    dt = _state_dtype(params, fn)
    return DAdaptSGDState(
      count=jnp.zeros([], jnp.int32),
      k=jnp.zeros([], jnp.int32),
      d=as_float(d0, dt),
      numerator_weighted=jnp.zeros([], dt),
      g0_norm=jnp.zeros([], dt),
      s=jax.tree.map(_moment, params),
      x0=jax.tree.map(lambda p: _copy(p, _moment(p).dtype), params),
    )

  def update_fn(updates, state, params=None):
    _require_params(params, fn)
    chex.assert_trees_all_equal_shapes(updates, state.s, state.x0)
    dt = state.d.dtype
    decays, _, ok_wd = decay.per_leaf(updates, params, state.count)
    ok_all = all_ok(ok, ok_wd)
    f = lambda x: as_float(x, dt)
    rate, ok_rate = _rate_at(lr, state.count, dt)
    ok_all = all_ok(ok_all, ok_rate)
    active = rate > 0
    d = state.d

    treedef = jax.tree.structure(updates)
    flat = [treedef.flatten_up_to(t) for t in (updates, params, state.s, state.x0)]

    def first_norm():  # |g0|: a pass over the gradients at the first update only
      g_sq = _tree_sum([jnp.sum(jnp.square(g.astype(s.dtype))) for g, s in zip(flat[0], flat[2])], dt)
      return jnp.sqrt(jnp.where(active, g_sq, 0))

    g0_norm = jax.lax.cond(state.k == 0, first_norm, lambda: state.g0_norm)
    dlr = d * rate / g0_norm
    active = active & (g0_norm > 0)  # the reference divides by zero here; lr_jax skips the update

    # Passes over memory: <g, s> reads g and the old s (and p with weight decay); s is written in
    # place (reads g, s), |s|^2 reads the new s, the params read p, x0 and s: 10 array reads and
    # writes, Adam's count (11 at the first update, which also sums g^2). The new s is selected under `_after(dot)`, which orders its write after
    # the reduction that reads the old one (otherwise XLA copies s first).
    xs = [
      _with_coupled_decay(g, p, wd, s.dtype)
      for g, p, s, wd in zip(flat[0], flat[1], flat[2], decays, strict=True)
    ]
    dot = _tree_sum([_dot(x, s) for x, s in zip(xs, flat[2], strict=True)], dt)
    written = active & _after(dot)
    ss = [jnp.where(written, s + dlr * x, s).astype(s.dtype) for x, s in zip(xs, flat[2], strict=True)]
    numerator_weighted = state.numerator_weighted + jnp.where(active, dlr * dot, 0)
    sk_sq = jnp.where(active, _tree_sum([jnp.sum(s * s) for s in ss], dt), 0)
    taken = sk_sq != 0
    d_hat = 2 * numerator_weighted / jnp.sqrt(sk_sq)
    d_new = jnp.where(active, _bump_d(d, d_hat, f(growth_rate)), d)

    ck = 1 - f(momentum)
    out = []
    for p, s, x0 in zip(flat[1], ss, flat[3], strict=True):
      z = x0 - s
      p_new = p.astype(s.dtype) * (1 - ck) + ck * z
      out.append(poison(jnp.where(taken, p_new - p.astype(s.dtype), 0), ok_all).astype(p.dtype))
    new_state = DAdaptSGDState(
      count=optax.safe_increment(state.count),
      k=jnp.where(taken, optax.safe_increment(state.k), state.k),
      d=jnp.where(taken, d_new, d),
      numerator_weighted=jnp.where(taken, numerator_weighted, state.numerator_weighted),
      g0_norm=g0_norm,
      s=treedef.unflatten(ss),
      x0=state.x0,
    )
    return treedef.unflatten(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


# ------------------------------------------------------------------------------------------------
# D-Adapt AdaGrad
# ------------------------------------------------------------------------------------------------


class DAdaptAdagradState(NamedTuple):
  """State of :func:`dadapt_adagrad`. ``d`` is the current estimate (``group['d']``)."""

  count: jax.Array  # shape=(), int32; updates so far (the learning-rate schedule's step); saturates
  k: jax.Array  # shape=(), int32; updates taken (group['k'])
  d: jax.Array  # shape=(), params' real dtype; the step-size estimate
  gsq_weighted: jax.Array  # shape=(), sum of dlr^2 * |g|^2_(A^-1)
  sksq_weighted: jax.Array  # shape=(), |s|^2_(A^-1) at the last update taken
  skl1: jax.Array  # shape=(), sum|s| at the last update taken
  alphak: optax.Updates  # 1e-6 + sum of grads^2, same tree as params
  sk: optax.Updates  # sum of dlr * grads, same tree as params
  x0: optax.Updates  # the initial params


def dadapt_adagrad(
  learning_rate: optax.ScalarOrSchedule = 1.0,
  momentum: chex.Numeric = 0.0,
  weight_decay: chex.Numeric = 0.0,
  eps: chex.Numeric = 1e-6,
  d0: chex.Numeric = 1e-6,
  growth_rate: chex.Numeric = math.inf,
  *,
  mask: Any = None,
) -> optax.GradientTransformation:
  """D-Adapt AdaGrad (``dadaptation.DAdaptAdaGrad``): dual-averaged AdaGrad with an estimated ``d``.

  With ``lr = learning_rate(count)``, ``A = sqrt(alpha) + eps`` (elementwise), sums over all leaves::

      dlr   = d * lr
      g     <- g + weight_decay * p
      alpha <- alpha + g^2                   (alpha starts at 1e-6, as in the reference)
      s     <- s + dlr * g
      gsq   <- gsq + dlr^2 * sum(g^2 / A);   ssq = sum(s^2 / A);   l1 = sum|s|
      d     <- max(d, min((ssq - gsq) / l1, d * growth_rate))
      p     <- momentum * p + (1 - momentum) * (x0 - s / A)     (p <- x0 - s / A if momentum == 0)

  The reference keeps ``ssq`` and ``l1`` as running sums of their per-step changes (new minus old);
  here they are summed afresh from the new ``s`` (the same numbers up to rounding, and two passes over
  memory fewer). An update where ``l1 == 0`` moves nothing and keeps the scalars (``alpha`` and ``s``
  still change, as in the reference).
  Equal to ``dadaptation.DAdaptAdaGrad`` 3.2 (dense gradients) to float64 rounding; Optax has no
  D-Adapt AdaGrad.

  Args:
    learning_rate: the multiplier of ``d``: a number or a schedule ``step -> value`` (>= 0).
    momentum: in [0, 1), the weight of the current point in the primal average.
    weight_decay: >= 0 (coupled: added to the gradient), a number or a schedule.
    eps: > 0, added to ``sqrt(alpha)``.
    d0: > 0, the initial estimate.
    growth_rate: > 0, the largest factor by which ``d`` may grow per step (``inf``: no limit).
    mask: where to apply the weight decay (see :func:`adam`).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`DAdaptAdagradState`.

  Raises:
    ValueError: if a concrete hyperparameter is out of range, or (from ``init``) the params are
      complex. Traced invalid values make the updates NaN instead.

  References:
    Defazio & Mishchenko, `Learning-Rate-Free Learning by D-Adaptation
    <https://arxiv.org/abs/2301.07733>`_, ICML 2023.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optimizers.dadapt_adagrad()
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> @jax.jit  # one compiled step instead of op-by-op dispatch
    ... def step(params, state):
    ...   u, state = tx.update(2 * params, state, params)
    ...   return optax.apply_updates(params, u), state
    >>> for _ in range(100):
    ...   params, state = step(params, state)
    >>> print(f"d = {float(state.d):.3f}")
    d = 0.221
  """
  fn = "dadapt_adagrad"
  lr = _lr_free_rate(learning_rate, fn)
  momentum, ok_m = _unit_interval(momentum, fn=fn, name="momentum")
  eps, ok_eps = _positive(eps, fn=fn, name="eps")
  d0, ok_d0 = _positive(d0, fn=fn, name="d0")
  growth_rate, ok_growth = _growth_rate(growth_rate, fn=fn)
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  ok = all_ok(ok_m, ok_eps, ok_d0, ok_growth)

  def init_fn(params):
    dt = _state_dtype(params, fn)
    zero = lambda: jnp.zeros([], dt)
    return DAdaptAdagradState(
      count=jnp.zeros([], jnp.int32),
      k=jnp.zeros([], jnp.int32),
      d=as_float(d0, dt),
      gsq_weighted=zero(),
      sksq_weighted=zero(),
      skl1=zero(),
      alphak=jax.tree.map(lambda p: _moment(p) + as_float(1e-6, _moment(p).dtype), params),
      sk=jax.tree.map(_moment, params),
      x0=jax.tree.map(lambda p: _copy(p, _moment(p).dtype), params),
    )

  def update_fn(updates, state, params=None):
    _require_params(params, fn)
    chex.assert_trees_all_equal_shapes(updates, state.alphak, state.sk, state.x0)
    dt = state.d.dtype
    decays, _, ok_wd = decay.per_leaf(updates, params, state.count)
    ok_all = all_ok(ok, ok_wd)
    f = lambda x: as_float(x, dt)
    rate, ok_rate = _rate_at(lr, state.count, dt)
    ok_all = all_ok(ok_all, ok_rate)
    d = state.d
    dlr = d * rate

    treedef = jax.tree.structure(updates)
    flat = [treedef.flatten_up_to(t) for t in (updates, params, state.alphak, state.sk, state.x0)]
    # Passes over memory: alpha and s are written in place (each reads g and itself); the three sums
    # read (g, alpha), (s, alpha) and s; the params read p, x0, s and alpha: 16 array reads and
    # writes against Adam's 10, so the step is at least 1.6x Adam's on a memory-bound CPU. |s|^2_(A^-1)
    # and |s|_1 are summed afresh from the new s (the reference adds the change of each sum, new minus
    # old, to a running total: the same numbers up to rounding, and two passes over the old s and
    # alpha fewer).
    e_g, e_s = (_unshared(f(eps), state.count, i) for i in (0, 1))
    g_sqs, sqs, l1s, alphas, sks = [], [], [], [], []
    for g, p, a, sk, wd in zip(*flat[:4], decays, strict=True):
      x = _with_coupled_decay(g, p, wd, a.dtype)
      a = a + x * x
      sk = (sk + dlr * x).astype(a.dtype)
      # Three spellings of sqrt(a) (a > 0, so all equal): XLA:CPU would otherwise share one between
      # the two sums and the params' loop, and write it (and the denominators) to memory.
      g_sqs.append(jnp.sum(x * (x / (jnp.sqrt(a) + e_g.astype(a.dtype)))))
      sqs.append(jnp.sum(sk * (sk / (jnp.sqrt(jnp.abs(a)) + e_s.astype(a.dtype)))))
      l1s.append(jnp.sum(jnp.abs(sk)))
      alphas.append(a)
      sks.append(sk)
    sksq_weighted = _tree_sum(sqs, dt)
    skl1 = _tree_sum(l1s, dt)
    taken = skl1 != 0
    gsq_weighted = state.gsq_weighted + dlr * dlr * _tree_sum(g_sqs, dt)
    d_hat = (sksq_weighted - gsq_weighted) / skl1
    d_new = jnp.where(rate > 0, _bump_d(d, d_hat, f(growth_rate)), d)

    m = f(momentum)
    ck = 1 - m
    out = []
    for p, a, sk, x0 in zip(flat[1], alphas, sks, flat[4], strict=True):
      z = x0 - sk / (jnp.sqrt(jnp.maximum(a, 0)) + f(eps).astype(a.dtype))
      pp = p.astype(a.dtype)
      p_new = jnp.where(m != 0, pp * (1 - ck) + ck * z, z)
      out.append(poison(jnp.where(taken, p_new - pp, 0), ok_all).astype(p.dtype))
    keep = lambda new, old: jnp.where(taken, new, old)
    new_state = DAdaptAdagradState(
      count=optax.safe_increment(state.count),
      k=keep(optax.safe_increment(state.k), state.k),
      d=keep(d_new, d),
      gsq_weighted=keep(gsq_weighted, state.gsq_weighted),
      sksq_weighted=keep(sksq_weighted, state.sksq_weighted),
      skl1=keep(skl1, state.skl1),
      alphak=treedef.unflatten(alphas),
      sk=treedef.unflatten(sks),
      x0=state.x0,
    )
    return treedef.unflatten(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)
