"""DoG and LDoG (dog-optimizer 1.0.3): SGD with the step size "distance over gradients", and the
polynomial-decay average of the iterates that the authors pair them with."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lr_jax._validation import all_ok, poison
from lr_jax.optimizers._common import _non_negative, _WeightDecay
from lr_jax.optimizers._prodigy import (
  _copy,
  _lr_free_rate,
  _positive,
  _rate_at,
  _require_params,
  _state_dtype,
  _warn_if_steps_round_away,
)
from lr_jax.schedules._base import as_float

__all__ = [
  "DoGState",
  "PolynomialDecayAverageState",
  "dog",
  "ldog",
  "polynomial_decay_average",
]


class DoGState(NamedTuple):
  """State of :func:`dog` and :func:`ldog`.

  ``eta`` is the step size of the last update: a scalar for :func:`dog`, a tree of scalars (one per
  leaf of the params) for :func:`ldog`; ``rbar`` and ``g_sq`` have the same form.
  """

  count: jax.Array  # shape=(), int32; updates so far (0: the first step); saturates
  eta: Any  # shape=() (dog) or a tree of shape-() leaves (ldog); the last step size
  rbar: Any  # same form; the largest distance from x0 so far (or reps_rel * (1 + |x0|))
  g_sq: Any  # same form; eps + the sum of squared gradient norms so far (the reference's G)
  x0: optax.Updates  # the params given to init (the reference: at the first update; the same values)


def _norm(x, dt):
  x = x.astype(dt)
  return jnp.sqrt(jnp.sum(x * x))


def _dog(learning_rate, reps_rel, eps, weight_decay, init_eta, mask, layerwise, fn):
  lr = _lr_free_rate(learning_rate, fn)
  if init_eta is None:
    reps_rel, ok_r = _positive(reps_rel, fn=fn, name="reps_rel")
    ok_eta = True
  else:  # the reference: init_eta gives the first step size and sets reps_rel = 0
    init_eta, ok_eta = _positive(init_eta, fn=fn, name="init_eta")
    reps_rel, ok_r = 0.0, True
  eps, ok_eps = _non_negative(eps, fn=fn, name="eps")
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  ok = all_ok(ok_r, ok_eta, ok_eps)

  def init_fn(params):
    dt = _state_dtype(params, fn)
    if init_eta is None:
      _warn_if_steps_round_away(params, reps_rel, "reps_rel", 1.0, fn, "raise reps_rel (1e-2) or set init_eta")
    treedef = jax.tree.structure(params)

    def zero():  # a buffer per field and leaf: states are donated
      return (
        treedef.unflatten([jnp.zeros([], dt) for _ in range(treedef.num_leaves)])
        if layerwise
        else jnp.zeros([], dt)
      )

    return DoGState(
      count=jnp.zeros([], jnp.int32),
      eta=zero(),
      rbar=zero(),
      g_sq=zero(),
      x0=jax.tree.map(lambda p: _copy(p, jnp.promote_types(p.dtype, jnp.float32)), params),
    )

  def update_fn(updates, state, params=None):
    _require_params(params, fn)
    chex.assert_trees_all_equal_shapes(updates, state.x0)
    dt = _state_dtype(state.x0)
    decays, _, ok_wd = decay.per_leaf(updates, params, state.count)
    ok_all = all_ok(ok, ok_wd)
    f = lambda x: as_float(x, dt)
    first = state.count == 0
    treedef = jax.tree.structure(updates)
    gs, ps, x0s = (treedef.flatten_up_to(t) for t in (updates, params, state.x0))
    xs = []
    for g, p, x0, wd in zip(gs, ps, x0s, decays, strict=True):
      x = g.astype(x0.dtype)
      if wd is not None:
        x = x + as_float(wd, x0.dtype) * p.astype(x0.dtype)
      xs.append(x)
    # Passes over memory: |p - x0| reads p, x0; |g|^2 reads g (and p with weight decay); the params
    # read g, p: 6 array reads and writes against Adam's 10. |p| (for the first rbar) is a pass over
    # the params at the first update only.
    p_norms = (
      jax.lax.cond(first, lambda: jnp.stack([_norm(p, dt) for p in ps]), lambda: jnp.zeros([len(ps)], dt))
      if ps
      else jnp.zeros([0], dt)
    )
    dists = jnp.stack([_norm(p.astype(x0.dtype) - x0, dt) for p, x0 in zip(ps, x0s)]) if ps else p_norms
    g_sqs = jnp.stack([jnp.sum(jnp.square(x)).astype(dt) for x in xs]) if ps else p_norms
    if layerwise:  # one DoG per leaf
      rbar0, dist, g_sq_now = f(reps_rel) * (1 + p_norms), dists, g_sqs
      old_rbar = jnp.stack(treedef.flatten_up_to(state.rbar)) if ps else p_norms
      old_g_sq = jnp.stack(treedef.flatten_up_to(state.g_sq)) if ps else p_norms
    else:  # all leaves as one vector: the norm of the per-leaf norms, as the reference
      rbar0 = f(reps_rel) * (1 + _norm(p_norms, dt))
      dist, g_sq_now = _norm(dists, dt), jnp.sum(g_sqs)
      old_rbar, old_g_sq = state.rbar, state.g_sq
    rbar = jnp.where(first, rbar0, jnp.maximum(old_rbar, dist))
    g_sq = jnp.where(first, g_sq_now + f(eps), old_g_sq + g_sq_now)
    rate, ok_rate = _rate_at(lr, state.count, dt)
    ok_all = all_ok(ok_all, ok_rate)
    eta = rate * rbar / jnp.sqrt(g_sq)
    if init_eta is not None:
      eta = jnp.where(first, eta * 0 + f(init_eta), eta)
    etas = list(eta) if layerwise else [eta] * len(xs)
    out = [
      poison(-e.astype(x.dtype) * x, ok_all).astype(g.dtype) for e, x, g in zip(etas, xs, gs, strict=True)
    ]
    as_state = (lambda v: treedef.unflatten(list(v))) if layerwise else (lambda v: v)
    new_state = DoGState(
      count=optax.safe_increment(state.count),
      eta=as_state(eta),
      rbar=as_state(rbar),
      g_sq=as_state(g_sq),
      x0=state.x0,
    )
    return treedef.unflatten(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def dog(
  learning_rate: optax.ScalarOrSchedule = 1.0,
  reps_rel: chex.Numeric = 1e-6,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  init_eta: chex.Numeric | None = None,
  *,
  mask: Any = None,
) -> optax.GradientTransformation:
  """DoG, "distance over gradients" (``dog.DoG``): SGD whose step size needs no tuning.

  With ``x0`` the params at the first update, norms over the whole tree (all leaves as one vector)::

      g    <- g + weight_decay * p
      rbar =  reps_rel * (1 + |x0|)                    at the first update
      rbar <- max(rbar, |p - x0|)                      afterwards
      G    <- G + |g|^2                                (G starts at eps)
      eta  =  learning_rate(count) * rbar / sqrt(G)    (init_eta at the first update, if given)
      p    <- p - eta * g

  ``state.eta`` is the step size of the last update. The authors recommend evaluating an average of
  the iterates: chain :func:`polynomial_decay_average` after it. Equal to ``dog.DoG`` 1.0.3 to
  float64 rounding (tests/parity/test_dog.py); ``optax.contrib.dog`` equals it too (to 1e-15 in
  float64, its ``init_step=("heuristic", reps_rel)``), but has no LDoG and no averager.

  Args:
    learning_rate: >= 0, the multiplier ``c`` of the step (1, the reference's advice), or a schedule.
    reps_rel: > 0, the initial distance relative to ``1 + |x0|`` (1e-6; 1e-4 with batch norm).
    eps: >= 0, added once to the sum of squared gradient norms.
    weight_decay: >= 0, added to the gradient (L2), a number or a schedule.
    init_eta: > 0 or None: the first step size, replacing ``reps_rel`` (then ``rbar`` starts at 0).
    mask: where to apply the weight decay (see :func:`adam`).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`DoGState`; ``update`` needs ``params``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range, or (from ``init``) the params are
      complex. Traced invalid values make the updates NaN instead.

  References:
    Ivgi, Hinder & Carmon, `DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule
    <https://arxiv.org/abs/2302.12022>`_, ICML 2023.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optimizers.dog()
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> @jax.jit  # one compiled step instead of op-by-op dispatch
    ... def step(params, state):
    ...   u, state = tx.update(2 * params, state, params)
    ...   return optax.apply_updates(params, u), state
    >>> for _ in range(100):
    ...   params, state = step(params, state)
    >>> print(f"eta = {float(state.eta):.3f}")
    eta = 0.058
  """
  return _dog(learning_rate, reps_rel, eps, weight_decay, init_eta, mask, False, "dog")


def ldog(
  learning_rate: optax.ScalarOrSchedule = 1.0,
  reps_rel: chex.Numeric = 1e-6,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  init_eta: chex.Numeric | None = None,
  *,
  mask: Any = None,
) -> optax.GradientTransformation:
  """Layer-wise DoG (``dog.LDoG``): the rule of :func:`dog` applied to each leaf separately.

  For every leaf ``i``: ``rbar_i = reps_rel * (1 + |x0_i|)``, then ``max(rbar_i, |p_i - x0_i|)``;
  ``G_i <- G_i + |g_i|^2`` (from ``eps``); ``eta_i = learning_rate * rbar_i / sqrt(G_i)``;
  ``p_i <- p_i - eta_i * g_i``. ``state.eta`` is a tree of scalars, one per leaf. Equal to
  ``dog.LDoG`` 1.0.3 (a leaf is a PyTorch parameter) to float64 rounding; Optax has no LDoG.

  Args:
    learning_rate: >= 0, the multiplier of the step, or a schedule.
    reps_rel: > 0, the initial distance relative to ``1 + |x0_i|``.
    eps: >= 0, added once to each sum of squared gradient norms.
    weight_decay: >= 0, added to the gradient (L2), a number or a schedule.
    init_eta: > 0 or None: the first step size of every leaf, replacing ``reps_rel``.
    mask: where to apply the weight decay (see :func:`adam`).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`DoGState`; ``update`` needs ``params``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range, or (from ``init``) the params are
      complex. Traced invalid values make the updates NaN instead.

  References:
    Ivgi, Hinder & Carmon, `DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule
    <https://arxiv.org/abs/2302.12022>`_, ICML 2023.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optimizers.ldog()
    >>> params = {"a": jnp.array([1.0]), "b": jnp.array([-2.0])}
    >>> state = tx.init(params)
    >>> @jax.jit
    ... def step(params, state):
    ...   grads = {"a": 2 * params["a"], "b": 2 * params["b"]}
    ...   u, state = tx.update(grads, state, params)
    ...   return optax.apply_updates(params, u), state
    >>> for _ in range(100):
    ...   params, state = step(params, state)
    >>> print(f"eta_a = {float(state.eta['a']):.3f}, eta_b = {float(state.eta['b']):.3f}")
    eta_a = 0.061, eta_b = 0.059
  """
  return _dog(learning_rate, reps_rel, eps, weight_decay, init_eta, mask, True, "ldog")


class PolynomialDecayAverageState(NamedTuple):
  """State of :func:`polynomial_decay_average`: ``average`` holds the averaged parameters."""

  count: jax.Array  # shape=(), int32; averaging steps so far; saturates
  average: optax.Params  # the averaged params, same tree and dtypes as params


def polynomial_decay_average(gamma: chex.Numeric = 8.0) -> optax.GradientTransformation:
  """Polynomial-decay averaging of the iterates (``dog.PolynomialDecayAverager``), as a transformation.

  Chained last (``optax.chain(dog(), polynomial_decay_average())``), it passes the updates through
  unchanged and averages the new parameters ``x_t = params + updates``, t = 1, 2, ...::

      avg_t = (1 - w_t) * avg_(t-1) + w_t * x_t,     w_t = (gamma + 1) / (gamma + t)

  (``avg_0`` = the params given to ``init``; ``w_1 = 1``.) Read the average with
  ``state[-1].average`` (or ``optax.tree_utils.tree_get(state, "average")``) and evaluate the
  model there. Equal to ``PolynomialDecayAverager(model, gamma).step()`` after each optimizer step,
  to float64 rounding.

  Args:
    gamma: >= 0; 0 is the plain running mean, larger values weigh recent iterates more.

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`PolynomialDecayAverageState`;
    ``update`` needs ``params``.

  Raises:
    ValueError: if a concrete ``gamma`` is negative. A traced negative one makes the average NaN.

  References:
    Shamir & Zhang, `Stochastic Gradient Descent for Non-smooth Optimization
    <https://arxiv.org/abs/1212.1824>`_, ICML 2013.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> from lr_jax import optimizers
    >>> tx = optimizers.polynomial_decay_average(gamma=0.0)  # the running mean
    >>> params = jnp.array([0.0])
    >>> state = tx.init(params)
    >>> for step in (1.0, 2.0, 3.0):
    ...   u, state = tx.update(jnp.array([step]), state, params)
    ...   params = optax.apply_updates(params, u)
    >>> print(f"{float(params[0]):.1f} {float(state.average[0]):.2f}")
    6.0 3.33
  """
  fn = "polynomial_decay_average"
  gamma, ok = _non_negative(gamma, fn=fn, name="gamma")

  def init_fn(params):
    average = jax.tree.map(lambda p: _copy(p, p.dtype), params)  # own buffers (donation)
    return PolynomialDecayAverageState(count=jnp.zeros([], jnp.int32), average=average)

  def update_fn(updates, state, params=None):
    _require_params(params, fn)
    t = optax.safe_increment(state.count)

    def one(avg, p, u):
      dt = jnp.promote_types(avg.dtype, jnp.float32)
      gm = as_float(gamma, dt)
      w = (gm + 1) / (gm + t.astype(dt))
      x = optax.apply_updates(p, u)
      new = avg.astype(dt) * (1 - w) + x.astype(dt) * w
      return poison(new, ok).astype(avg.dtype)

    return updates, PolynomialDecayAverageState(
      count=t, average=jax.tree.map(one, state.average, params, updates)
    )

  return optax.GradientTransformation(init_fn, update_fn)
