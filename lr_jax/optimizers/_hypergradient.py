"""Online hypergradient descent (Baydin et al., ICLR 2018): SGD and Adam whose learning rate is
adapted at every update from the dot product of the gradient with the previous update direction.

With ``d_t`` the update direction before the learning rate (``u_t = -alpha_t * d_t``), the derivative
of the loss at ``theta_{t-1}`` with respect to the rate used one update earlier is::

    h_t = grad f(theta_{t-1}) . d u_{t-1} / d alpha = -g_t . d_{t-1}

(``theta_{t-1}``'s dependence on earlier rates is ignored, as in the paper), so one step of gradient
descent on the rate is ``alpha_t = alpha_{t-1} - beta * h_t = alpha_{t-1} + beta * g_t . d_{t-1}``,
taken *before* the update that uses ``alpha_t``. The multiplicative rule normalises the hypergradient
by the two norms: ``alpha_t = alpha_{t-1} * (1 - beta * h_t / (|g_t| |d_{t-1}|))``, i.e. the rate is
multiplied by ``1 + beta * cos(g_t, d_{t-1})``. The dot product and the norms are sums over the whole
parameter tree (one rate for the model, as the reference's one parameter group).

``d_0 = 0``: the first update has no previous direction, so ``h_1 = 0`` and it uses the initial rate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lr_jax._validation import all_ok, choice, flag, poison
from lr_jax.optimizers._adam import _one_minus_pow
from lr_jax.optimizers._common import (
  _Flat,
  _learning_rate,
  _lerp,
  _map_leaves,
  _non_negative,
  _static_zero,
  _unit_interval,
  _WeightDecay,
  _with_coupled_decay,
  _zeros,
)
from lr_jax.optimizers._sgd import _nesterov_ok
from lr_jax.schedules._base import as_float

__all__ = ["HypergradientAdamState", "HypergradientSGDState", "hypergradient_adam", "hypergradient_sgd"]

_VARIANTS = ("additive", "multiplicative")
# hypergrad_lr=None: the reference implementation's defaults for the additive rule (SGDHD 1e-6,
# AdamHD 1e-8: the hypergradient is a dot product, so its scale is the problem's); the multiplicative
# rule's beta is dimensionless (the rate changes by at most a factor 1 +- beta per update).
_DEFAULT_BETA = {("sgd", "additive"): 1e-6, ("adam", "additive"): 1e-8}
_DEFAULT_BETA_MULTIPLICATIVE = 0.02


class HypergradientSGDState(NamedTuple):
  """State of :func:`hypergradient_sgd`. ``learning_rate`` is the adapted rate of the last update."""

  count: jax.Array  # shape=(), int32; updates so far; optax.safe_increment (saturates at 2**31-1)
  learning_rate: jax.Array  # shape=(), params' real dtype (>= float32); alpha_t (alpha_0 before any update)
  direction: optax.Updates  # d_t, the last update divided by -alpha_t; same tree as params (zeros at first)
  trace: Any  # momentum buffer, same tree as params (None when momentum is the Python number 0)


class HypergradientAdamState(NamedTuple):
  """State of :func:`hypergradient_adam`. ``learning_rate`` is the adapted rate of the last update.

  The previous direction ``m_hat / (sqrt(v_hat) + eps)`` is recomputed from ``mu``, ``nu`` and
  ``count``: Adam-HD keeps Adam's two moments and nothing more.
  """

  count: jax.Array  # shape=(), int32; optax.safe_increment (saturates at 2**31-1)
  learning_rate: jax.Array  # shape=(), params' real dtype (>= float32); alpha_t (alpha_0 before any update)
  mu: optax.Updates  # EMA of grads (first moment), same tree as params
  nu: optax.Updates  # EMA of squared grads (raw second moment), same tree as params


# ------------------------------------------------------------------------------------------------
# Shared by both optimizers
# ------------------------------------------------------------------------------------------------


def _initial_rate(learning_rate, fn: str):
  """The initial rate: a number, an array or a traced value, >= 0 (a schedule makes no sense here)."""
  if callable(learning_rate) and not isinstance(learning_rate, jax.Array):
    raise ValueError(  # noqa: TRY004 - the contract: a named ValueError
      f"{fn}: `learning_rate` must be a number (the initial rate, which hypergradient descent then "
      f"adapts), not a schedule, got learning_rate={learning_rate!r}."
    )
  return _learning_rate(learning_rate, fn)


def _hypergrad_lr(hypergrad_lr, variant: str, which: str, fn: str):
  """``(beta, ok)``: the default for None; >= 0 (additive), in [0, 1) (multiplicative)."""
  if hypergrad_lr is None:
    hypergrad_lr = _DEFAULT_BETA.get((which, variant), _DEFAULT_BETA_MULTIPLICATIVE)
  if variant == "multiplicative":
    return _unit_interval(hypergrad_lr, fn=fn, name="hypergrad_lr")
  return _non_negative(hypergrad_lr, fn=fn, name="hypergrad_lr")


def _rate_dtype(params):
  from lr_jax.optimizers._state import real_dtype  # _state imports this module

  return real_dtype(params)


def _rdot(x, y):
  """``sum(x * y)`` over one leaf, complex numbers as pairs of reals (``torch.view_as_real``)."""
  if jnp.iscomplexobj(x):
    return jnp.sum(x.real * y.real) + jnp.sum(x.imag * y.imag)
  return jnp.sum(x * y)


def _tree_sum(values, dt):
  return sum((v.astype(dt) for v in values), start=jnp.zeros([], dt))


def _adapt(alpha, xs, ds, beta, variant: str):
  """``alpha_t`` from ``alpha_{t-1}``, the gradients ``xs`` and the previous directions ``ds``.

  additive:        alpha + beta * <g, d>                       (= alpha - beta * h)
  multiplicative:  alpha * (1 + beta * <g, d> / (|g| |d|))     (unchanged when |g| |d| == 0)
  """
  dt = alpha.dtype
  gd = _tree_sum([_rdot(x, d) for x, d in zip(xs, ds, strict=True)], dt)
  b = as_float(beta, dt)
  if variant == "additive":
    return alpha + b * gd
  norms = jnp.sqrt(_tree_sum([_rdot(x, x) for x in xs], dt)) * jnp.sqrt(
    _tree_sum([_rdot(d, d) for d in ds], dt)
  )
  positive = norms > 0
  cos = jnp.where(positive, gd / jnp.where(positive, norms, 1), 0)
  return alpha * (1 + b * cos)


# ------------------------------------------------------------------------------------------------
# SGD-HD (SGDN-HD with momentum / Nesterov)
# ------------------------------------------------------------------------------------------------


def hypergradient_sgd(
  learning_rate: chex.Numeric,
  hypergrad_lr: chex.Numeric | None = None,
  momentum: chex.Numeric = 0.0,
  dampening: chex.Numeric = 0.0,
  nesterov: bool = False,
  weight_decay: chex.Numeric = 0.0,
  *,
  variant: str = "additive",
  mask: Any = None,
) -> optax.GradientTransformation:
  """SGD whose learning rate is adapted online by hypergradient descent (SGD-HD, SGDN-HD).

  With ``g_t`` the gradient (plus ``weight_decay * p``), ``d_t`` the update's direction (PyTorch's
  SGD direction, as :func:`sgd`) and ``beta`` = ``hypergrad_lr``; ``d_0 = 0``::

      g_t     <- g_t + weight_decay * p
      alpha_t <- alpha_{t-1} + beta * <g_t, d_{t-1}>                             (variant="additive")
      alpha_t <- alpha_{t-1} * (1 + beta * <g_t, d_{t-1}> / (|g_t| |d_{t-1}|))   (variant="multiplicative")
      buf     <- g_t (first update);  buf <- momentum * buf + (1 - dampening) * g_t  (afterwards)
      d_t     <- g_t + momentum * buf  if nesterov  else  buf     (d_t = g_t when momentum == 0)
      p       <- p - alpha_t * d_t

  ``<g_t, d_{t-1}>`` is minus the hypergradient ``h_t = g_t . d u_{t-1} / d alpha``: the
  direction enters *before* the learning rate scales it (``u_{t-1} = -alpha_{t-1} d_{t-1}``), so for
  plain SGD it is the dot product of successive gradients. The first update uses ``alpha_0`` (no
  previous direction: ``h_1 = 0``); the rate is adapted before the update that uses it. Sums run over
  the whole parameter tree. The additive rule does not keep the rate positive (neither does the
  paper's): with a large ``beta`` it can overshoot below 0; the multiplicative rule keeps its sign
  (``beta < 1``), and an initial rate of 0 stays 0 there.

  Equal to the authors' ``hypergrad.SGDHD`` (gbaydin/hypergradient-descent: ``lr``, ``hypergrad_lr``,
  ``momentum``, ``dampening``, ``nesterov``, ``weight_decay``), which has the additive rule only.
  Optax has no hypergradient optimizer. ``optimizers.current_lr(state)`` (and ``state.learning_rate``)
  is ``alpha_t``, the rate of the last update (the reference's ``param_groups[0]["lr"]`` after
  ``step()``); the next update adapts it first.

  Args:
    learning_rate: the initial rate ``alpha_0`` >= 0: a number, an array or a traced value (not a
      schedule: hypergradient descent is the schedule).
    hypergrad_lr: ``beta`` >= 0, the learning rate of the learning rate; in [0, 1) for the
      multiplicative rule. None: 1e-6 (additive, the reference's default; its scale is that of the
      gradients' dot product, the paper uses 1e-3 on its problems) or 0.02 (multiplicative).
    momentum: momentum factor >= 0 (0 disables the buffer).
    dampening: in [0, 1]; ignored when ``momentum`` == 0.
    nesterov: Nesterov momentum (SGDN-HD); requires ``momentum`` > 0 and ``dampening`` == 0.
    weight_decay: >= 0, the coupled L2 penalty (it enters the hypergradient too, as in the
      reference): a number or a schedule ``step -> value``. ``params`` must be passed to ``update``
      when it is non-zero.
    variant: "additive" (the paper's algorithms) or "multiplicative" (its normalised rule).
    mask: where to apply the weight decay (see :func:`adam`).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`HypergradientSGDState`.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the rate
      and the updates NaN instead.

  References:
    Baydin, Cornish, Martinez Rubio, Schmidt & Wood, `Online Learning Rate Adaptation with
    Hypergradient Descent <https://arxiv.org/abs/1703.04782>`_, ICLR 2018.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optimizers.hypergradient_sgd(0.01, hypergrad_lr=0.01)
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> for _ in range(3):  # f = |p|^2: successive gradients agree, so the rate grows
    ...   updates, state = tx.update(2 * params, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(f"{float(optimizers.current_lr(state)):.4f}")
    0.3189
  """
  fn = "hypergradient_sgd"
  variant = choice(variant, _VARIANTS, fn=fn, name="variant")
  lr = _initial_rate(learning_rate, fn)
  beta, ok_beta = _hypergrad_lr(hypergrad_lr, variant, "sgd", fn)
  momentum, ok_m = _non_negative(momentum, fn=fn, name="momentum")
  dampening, ok_d = _unit_interval(dampening, fn=fn, name="dampening", closed=True)
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  nesterov = flag(nesterov, fn=fn, name="nesterov")
  ok_n = _nesterov_ok(nesterov, momentum, dampening, fn)
  ok = all_ok(ok_beta, ok_m, ok_d, ok_n)
  use_trace = not _static_zero(momentum)

  def init_fn(params):
    return HypergradientSGDState(
      count=jnp.zeros([], jnp.int32),
      learning_rate=as_float(lr, _rate_dtype(params)),
      direction=_zeros(params, None),
      trace=_zeros(params, None) if use_trace else None,
    )

  def update_fn(updates, state, params=None):
    chex.assert_trees_all_equal_shapes(updates, state.direction)
    if use_trace:
      chex.assert_trees_all_equal_shapes(updates, state.trace)
    decays, params, ok_wd = decay.per_leaf(updates, params, state.count)
    first = state.count == 0

    def leaf(g, wd, p, buf):
      dt = buf.dtype
      x = _with_coupled_decay(g, p, wd, dt)
      new_buf, d = None, x
      if use_trace:
        mom = as_float(momentum, dt)
        new_buf = jnp.where(first, x, mom * buf + (1 - as_float(dampening, dt)) * x)
        step = x + mom * new_buf if nesterov else new_buf
        d = jnp.where(mom != 0, step, x)  # torch ignores the buffer when momentum == 0
      return x, d, new_buf

    bufs = state.trace if use_trace else state.direction  # (only its dtype is read without momentum)
    xs, ds, trace = _map_leaves(leaf, 3, updates, _Flat(decays), params, bufs)
    treedef = jax.tree.structure(updates)
    alpha = _adapt(
      state.learning_rate, treedef.flatten_up_to(xs), treedef.flatten_up_to(state.direction), beta, variant
    )
    alpha = poison(alpha, all_ok(ok, ok_wd))
    new_updates = jax.tree.map(lambda g, d: (-alpha.astype(d.dtype) * d).astype(g.dtype), updates, ds)
    return new_updates, HypergradientSGDState(
      count=optax.safe_increment(state.count),
      learning_rate=alpha,
      direction=ds,
      trace=trace if use_trace else None,
    )

  return optax.GradientTransformation(init_fn, update_fn)


# ------------------------------------------------------------------------------------------------
# Adam-HD
# ------------------------------------------------------------------------------------------------


def hypergradient_adam(
  learning_rate: chex.Numeric = 1e-3,
  hypergrad_lr: chex.Numeric | None = None,
  b1: chex.Numeric = 0.9,
  b2: chex.Numeric = 0.999,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  *,
  variant: str = "additive",
  mask: Any = None,
) -> optax.GradientTransformation:
  """Adam whose learning rate is adapted online by hypergradient descent (Adam-HD).

  With ``g_t`` the gradient (plus ``weight_decay * p``), ``beta`` = ``hypergrad_lr``, ``t = 1, 2, ...``
  and ``d_t`` Adam's bias-corrected direction (``d_0 = 0``)::

      g_t     <- g_t + weight_decay * p
      alpha_t <- alpha_{t-1} + beta * <g_t, d_{t-1}>                             (variant="additive")
      alpha_t <- alpha_{t-1} * (1 + beta * <g_t, d_{t-1}> / (|g_t| |d_{t-1}|))   (variant="multiplicative")
      m <- b1 * m + (1 - b1) * g_t;    v <- b2 * v + (1 - b2) * g_t^2
      d_t     <- (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
      p       <- p - alpha_t * d_t

  ``<g_t, d_{t-1}>`` is minus the hypergradient ``h_t = g_t . d u_{t-1} / d alpha`` (Adam's direction
  before the learning rate scales it); the first update uses ``alpha_0``. ``d_t`` is the paper's
  Adam-HD direction and :func:`adam`'s (PyTorch's ``eps`` outside the bias-corrected root).
  Differences from the authors' ``hypergrad.AdamHD`` (gbaydin/hypergradient-descent): it adds ``eps``
  to the *uncorrected* ``sqrt(v)`` (the torch.optim.Adam of 2018: ``eps`` scaled by
  ``sqrt(1 - b2^t)``, negligible once ``t`` is large), and it adapts the rate once per parameter
  tensor, in sequence (the second tensor's update already uses the rate moved by the first tensor's
  hypergradient); here, as in the paper, one dot product over the whole tree adapts one rate, once
  per update (the same numbers for a single tensor, up to ``eps``). The additive rule does not keep
  the rate positive; the multiplicative one does (``beta < 1``). Optax has no Adam-HD.

  ``optimizers.current_lr(state)`` (and ``state.learning_rate``) is ``alpha_t``, the rate of the last
  update (the reference's ``param_groups[0]["lr"]`` after ``step()``).

  Args:
    learning_rate: the initial rate ``alpha_0`` >= 0: a number, an array or a traced value.
    hypergrad_lr: ``beta`` >= 0; in [0, 1) for the multiplicative rule. None: 1e-8 (additive, the
      reference's default; the paper uses 1e-7 on its problems) or 0.02 (multiplicative).
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: >= 0, added to the bias-corrected root.
    weight_decay: >= 0, the coupled L2 penalty (in the hypergradient too), a number or a schedule;
      ``params`` must be passed to ``update`` when it is non-zero.
    variant: "additive" (the paper's Adam-HD) or "multiplicative" (its normalised rule).
    mask: where to apply the weight decay (see :func:`adam`).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`HypergradientAdamState`.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the rate
      and the updates NaN instead.

  References:
    Baydin, Cornish, Martinez Rubio, Schmidt & Wood, `Online Learning Rate Adaptation with
    Hypergradient Descent <https://arxiv.org/abs/1703.04782>`_, ICLR 2018; Kingma & Ba, `Adam
    <https://arxiv.org/abs/1412.6980>`_, ICLR 2015.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optimizers.hypergradient_adam(0.01, hypergrad_lr=0.01)
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(2 * params, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(f"{float(optimizers.current_lr(state)):.4f}")
    0.1264
  """
  fn = "hypergradient_adam"
  variant = choice(variant, _VARIANTS, fn=fn, name="variant")
  lr = _initial_rate(learning_rate, fn)
  beta, ok_beta = _hypergrad_lr(hypergrad_lr, variant, "adam", fn)
  b1, ok_b1 = _unit_interval(b1, fn=fn, name="b1")
  b2, ok_b2 = _unit_interval(b2, fn=fn, name="b2")
  eps, ok_eps = _non_negative(eps, fn=fn, name="eps")
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  ok = all_ok(ok_beta, ok_b1, ok_b2, ok_eps)

  def init_fn(params):
    return HypergradientAdamState(
      count=jnp.zeros([], jnp.int32),
      learning_rate=as_float(lr, _rate_dtype(params)),
      mu=_zeros(params, None),
      nu=_zeros(params, None),
    )

  def update_fn(updates, state, params=None):
    chex.assert_trees_all_equal_shapes(updates, state.mu)
    chex.assert_trees_all_equal_shapes(updates, state.nu)
    decays, params, ok_wd = decay.per_leaf(updates, params, state.count)
    first = state.count == 0
    count_inc = optax.safe_increment(state.count)

    def leaf(g, wd, p, mu, nu):
      dt = mu.dtype
      x = _with_coupled_decay(g, p, wd, dt)
      c1 = as_float(1 - b1, dt)  # 1 - beta before rounding, as torch's Python floats
      c2 = as_float(1 - b2, dt)
      e = as_float(eps, dt)
      # the previous direction d_{t-1}, from the moments before this update (0 before the first)
      t_prev = jnp.maximum(state.count, 1).astype(dt)
      denom = jnp.sqrt(nu) / jnp.sqrt(_one_minus_pow(c2, t_prev)) + e
      d_prev = jnp.where(first, 0, mu / jnp.where(first, 1, denom) / _one_minus_pow(c1, t_prev))
      t = count_inc.astype(dt)
      mu = _lerp(mu, x, c1)
      nu = as_float(b2, dt) * nu + c2 * (x * x)
      d = mu / (jnp.sqrt(nu) / jnp.sqrt(_one_minus_pow(c2, t)) + e) / _one_minus_pow(c1, t)
      return x, d_prev, d, mu, nu

    xs, d_prev, ds, mu, nu = _map_leaves(leaf, 5, updates, _Flat(decays), params, state.mu, state.nu)
    treedef = jax.tree.structure(updates)
    alpha = _adapt(
      state.learning_rate, treedef.flatten_up_to(xs), treedef.flatten_up_to(d_prev), beta, variant
    )
    alpha = poison(alpha, all_ok(ok, ok_wd))
    new_updates = jax.tree.map(lambda g, d: (-alpha.astype(d.dtype) * d).astype(g.dtype), updates, ds)
    return new_updates, HypergradientAdamState(count=count_inc, learning_rate=alpha, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)
