"""Adam and AdamW with PyTorch's numerics (coupled vs decoupled weight decay, PyTorch's AMSGrad)."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lr_jax._validation import all_ok, choice, flag, poison
from lr_jax.optimizers._common import (
  _Flat,
  _learning_rate,
  _lerp,
  _map_leaves,
  _moment_dtype_option,
  _non_negative,
  _scale_by_learning_rate,
  _sqrt,
  _unit_interval,
  _WeightDecay,
  _with_coupled_decay,
  _zeros,
)
from lr_jax.schedules._base import as_float

__all__ = ["ScaleByAdamState", "adam", "adamw", "scale_by_adam"]

_AMSGRAD_MAX = ("raw", "corrected")


class ScaleByAdamState(NamedTuple):
  """State of :func:`scale_by_adam`."""

  count: jax.Array  # shape=(), int32; optax.safe_increment (saturates at 2**31-1)
  mu: optax.Updates  # EMA of grads (first moment), same tree as params
  nu: optax.Updates  # EMA of squared grads (raw second moment), same tree as params
  nu_max: Any  # amsgrad=True: running max of nu (raw, or bias-corrected), same tree as params; else None


def _one_minus_pow(c, t):
  """``1 - (1 - c)**t`` accurately in float32 (``c`` = 1 - beta, computed before rounding)."""
  return -jnp.expm1(t * jnp.log1p(-c))


def _scale_by_adam(
  b1, b2, eps, weight_decay, amsgrad, decoupled_weight_decay, amsgrad_max, moment_dtype, mask, fn
):
  b1, ok_b1 = _unit_interval(b1, fn=fn, name="b1")
  b2, ok_b2 = _unit_interval(b2, fn=fn, name="b2")
  eps, ok_eps = _non_negative(eps, fn=fn, name="eps")
  decay = _WeightDecay(weight_decay, mask, fn=fn)
  amsgrad = flag(amsgrad, fn=fn, name="amsgrad")
  decoupled = flag(decoupled_weight_decay, fn=fn, name="decoupled_weight_decay")
  amsgrad_max = choice(amsgrad_max, _AMSGRAD_MAX, fn=fn, name="amsgrad_max")
  moment_dtype = _moment_dtype_option(moment_dtype, fn)
  ok = all_ok(ok_b1, ok_b2, ok_eps)

  def init_fn(params):
    return ScaleByAdamState(
      count=jnp.zeros([], jnp.int32),
      mu=_zeros(params, moment_dtype),
      nu=_zeros(params, moment_dtype),
      nu_max=_zeros(params, moment_dtype) if amsgrad else None,
    )

  def update_fn(updates, state, params=None):
    chex.assert_trees_all_equal_shapes(updates, state.mu)
    chex.assert_trees_all_equal_shapes(updates, state.nu)
    if amsgrad:
      chex.assert_trees_all_equal_shapes(updates, state.nu_max)
    decays, params, ok_wd = decay.per_leaf(updates, params, state.count)
    ok_all = all_ok(ok, ok_wd)
    count_inc = optax.safe_increment(state.count)  # t = 1, 2, ... (saturating)

    def leaf(g, wd, p, mu, nu, nu_max):
      dt = mu.dtype
      x = _with_coupled_decay(g, p, None if decoupled else wd, dt)
      c1 = as_float(1 - b1, dt)  # 1 - beta before rounding, as torch's Python floats
      c2 = as_float(1 - b2, dt)
      t = count_inc.astype(dt)
      bc1 = _one_minus_pow(c1, t)
      bc2 = _one_minus_pow(c2, t)
      mu = _lerp(mu, x, c1)
      nu = as_float(b2, dt) * nu + c2 * (x * x)
      if amsgrad and amsgrad_max == "raw":  # torch: max over the raw nu, then / sqrt(bc2)
        nu_max = jnp.maximum(nu_max, nu)
        denom = _sqrt(nu_max) / jnp.sqrt(bc2) + as_float(eps, dt)
      elif amsgrad:  # optax: max over the bias-corrected nu
        nu_max = jnp.maximum(nu_max, nu / bc2)
        denom = _sqrt(nu_max) + as_float(eps, dt)
      else:
        denom = _sqrt(nu) / jnp.sqrt(bc2) + as_float(eps, dt)
      u = mu / denom / bc1
      if wd is not None and decoupled:  # lr_t * (u + wd * p) == p * lr_t * wd + lr_t * u, torch's AdamW
        u = u + as_float(wd, dt) * p.astype(dt)
      return poison(u, ok_all).astype(g.dtype), mu, nu, nu_max

    new_updates, mu, nu, nu_max = _map_leaves(
      leaf, 4, updates, _Flat(decays), params, state.mu, state.nu, state.nu_max
    )
    return new_updates, ScaleByAdamState(count=count_inc, mu=mu, nu=nu, nu_max=nu_max if amsgrad else None)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adam(
  b1: chex.Numeric = 0.9,
  b2: chex.Numeric = 0.999,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  amsgrad: bool = False,
  *,
  decoupled_weight_decay: bool = False,
  amsgrad_max: str = "raw",
  moment_dtype: Any = None,
  mask: Any = None,
) -> optax.GradientTransformation:
  """PyTorch's Adam / AdamW / AMSGrad direction, before the learning rate.

  With t = 1, 2, ... the update number::

      g  <- g + weight_decay * p                           (coupled: Adam)
      m  <- b1 * m + (1 - b1) * g
      v  <- b2 * v + (1 - b2) * g^2
      vm <- max(vm, v)                                     (amsgrad; raw v, PyTorch)
      u  <- m / (1 - b1^t) / (sqrt(v or vm) / sqrt(1 - b2^t) + eps)
      u  <- u + weight_decay * p                           (decoupled_weight_decay: AdamW)

  Chained with ``optax.scale_by_learning_rate`` this is ``torch.optim.Adam`` (or ``AdamW`` /
  ``Adam(decoupled_weight_decay=True)``): the decoupled term becomes ``lr_t * weight_decay * p``,
  PyTorch's ``p *= 1 - lr_t * weight_decay`` with the same scheduled ``lr_t``. Without AMSGrad and
  weight decay it equals ``optax.scale_by_adam``; with ``amsgrad=True`` PyTorch keeps the maximum of
  the *raw* ``v`` and divides by the current ``sqrt(1 - b2^t)``, while ``optax.scale_by_amsgrad``
  keeps the maximum of the bias-corrected ``v / (1 - b2^t)``: ``amsgrad_max="corrected"`` gives
  Optax's form.

  Complex parameters are treated as PyTorch treats them (``torch.view_as_real``): a complex number
  is a pair of reals, every moment (``v`` included) is kept per real component, and ``g^2`` is
  ``re(g)^2`` and ``im(g)^2``, not ``|g|^2`` (Optax's ``scale_by_adam`` uses ``|g|^2``, the same
  for real parameters). This holds for every optimizer in :mod:`lr_jax.optimizers`.

  Args:
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: >= 0, added to the bias-corrected root.
    weight_decay: >= 0, a number or a schedule ``step -> value``
      (update k, counted from 0, uses ``weight_decay(k)``). ``params`` must be passed to
      ``update`` when it is non-zero; a traced non-zero value without ``params`` gives NaN updates.
    amsgrad: use the running maximum of the second moment.
    decoupled_weight_decay: AdamW's decay (``+ weight_decay * p`` after the normalisation)
      instead of Adam's L2 term on the gradient.
    amsgrad_max: "raw" (PyTorch, default) or "corrected" (Optax).
    moment_dtype: dtype of the moments: None (default) is at least float32; "params" keeps the
      parameters' dtype; or any floating dtype (a string such as "bfloat16" under
      ``optax.inject_hyperparams``, which takes callables such as ``jnp.bfloat16`` for schedules).
      Complex parameters get complex moments (complex64, complex128 for float64).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools``. Leaves where it
      is False get no decay term but still the full optimizer update (unlike ``optax.masked``,
      which passes their raw gradients through). Under ``optax.inject_hyperparams`` give a callable
      mask in ``static_args``.

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`ScaleByAdamState`.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the
      updates NaN instead.

  References:
    Kingma & Ba, `Adam: A Method for Stochastic Optimization <https://arxiv.org/abs/1412.6980>`_,
    ICLR 2015; Reddi et al., `On the Convergence of Adam and Beyond
    <https://openreview.net/forum?id=ryQu7f-RZ>`_, ICLR 2018.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.scale_by_adam()
    >>> state = tx.init(jnp.zeros(1))
    >>> u, state = tx.update(jnp.array([-3.0]), state)
    >>> print(f"{float(u[0]):.2f}")
    -1.00
  """
  return _scale_by_adam(
    b1,
    b2,
    eps,
    weight_decay,
    amsgrad,
    decoupled_weight_decay,
    amsgrad_max,
    moment_dtype,
    mask,
    "scale_by_adam",
  )


def adam(
  learning_rate: optax.ScalarOrSchedule = 1e-3,
  b1: chex.Numeric = 0.9,
  b2: chex.Numeric = 0.999,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 0.0,
  amsgrad: bool = False,
  *,
  amsgrad_max: str = "raw",
  moment_dtype: Any = None,
  mask: Any = None,
) -> optax.GradientTransformation:
  """Adam with PyTorch's numerics (``torch.optim.Adam``), coupled weight decay.

  ``optax.chain(scale_by_adam(...), optax.scale_by_learning_rate(learning_rate))``::

      g <- g + weight_decay * p
      m <- b1 * m + (1 - b1) * g;   v <- b2 * v + (1 - b2) * g^2;   (amsgrad: vm <- max(vm, v))
      p <- p - lr_t / (1 - b1^t) * m / (sqrt(v or vm) / sqrt(1 - b2^t) + eps)

  Twin: ``torch.optim.Adam(params, lr, betas=(b1, b2), eps, weight_decay, amsgrad)``; with a
  schedule, update k (counted from 0) uses ``learning_rate(k)``, like a torch scheduler stepped
  after each update. Differences from Optax: ``optax.adam`` has no weight decay (the same numbers
  otherwise); ``optax.amsgrad`` takes the maximum of the bias-corrected second moment
  (``amsgrad_max="corrected"`` gives that form), PyTorch and this function the raw one.

  Args:
    learning_rate: a float, an array, a traced value or a schedule (lr_jax's or Optax's); >= 0.
      An lr_jax schedule with concrete hyperparameters is evaluated at construction (every step
      below 4096, a log grid up to 2**31 - 1, and its whole-number hyperparameters +-1) and a
      negative value raises; plain callables are not called.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: >= 0, added to the bias-corrected root.
    weight_decay: >= 0, the coupled L2 penalty: a number or a schedule ``step -> value``
      (update k, counted from 0, uses ``weight_decay(k)``). ``params`` must be passed to
      ``update`` when it is non-zero; a traced non-zero value without ``params`` gives NaN updates.
    amsgrad: use the running maximum of the second moment.
    amsgrad_max: "raw" (PyTorch, default) or "corrected" (Optax).
    moment_dtype: dtype of the moments (see :func:`scale_by_adam`).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools``. Leaves where it
      is False get no decay term but still the full optimizer update (unlike ``optax.masked``,
      which passes their raw gradients through). Under ``optax.inject_hyperparams`` give a callable
      mask in ``static_args``.

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the
      updates NaN instead.

  References:
    Kingma & Ba, `Adam: A Method for Stochastic Optimization <https://arxiv.org/abs/1412.6980>`_,
    ICLR 2015.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.adam(0.1)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> u, state = tx.update(jnp.array([2.0]), state, params)
    >>> print(f"{float(u[0]):.2f}")
    -0.10
  """
  fn = "adam"
  lr = _learning_rate(learning_rate, fn)
  return optax.chain(
    _scale_by_adam(b1, b2, eps, weight_decay, amsgrad, False, amsgrad_max, moment_dtype, mask, fn),
    _scale_by_learning_rate(lr),
  )


def adamw(
  learning_rate: optax.ScalarOrSchedule = 1e-3,
  b1: chex.Numeric = 0.9,
  b2: chex.Numeric = 0.999,
  eps: chex.Numeric = 1e-8,
  weight_decay: chex.Numeric = 1e-2,
  amsgrad: bool = False,
  *,
  amsgrad_max: str = "raw",
  moment_dtype: Any = None,
  mask: Any = None,
) -> optax.GradientTransformation:
  """AdamW with PyTorch's numerics (``torch.optim.AdamW``), decoupled weight decay.

  ``optax.chain(scale_by_adam(..., decoupled_weight_decay=True), optax.scale_by_learning_rate(lr))``::

      m <- b1 * m + (1 - b1) * g;   v <- b2 * v + (1 - b2) * g^2;   (amsgrad: vm <- max(vm, v))
      p <- p - lr_t * weight_decay * p - lr_t / (1 - b1^t) * m / (sqrt(v or vm) / sqrt(1 - b2^t) + eps)

  i.e. PyTorch's ``p *= 1 - lr_t * weight_decay`` followed by the Adam step, with the decay scaled
  by the *same* scheduled ``lr_t``: the decay term is emitted by ``scale_by_adam`` as
  ``weight_decay * p`` and multiplied by ``lr_t`` together with the Adam direction, so a schedule
  (or a ``reduce_on_plateau`` after it) scales both, as in PyTorch. Twin:
  ``torch.optim.AdamW(params, lr, betas=(b1, b2), eps, weight_decay, amsgrad)``. Differences from
  ``optax.adamw``: the default ``weight_decay`` is PyTorch's 1e-2 (Optax: 1e-4), and AMSGrad is
  PyTorch's (see :func:`adam`). To exempt biases and norms from the decay (PyTorch: a param group
  with ``weight_decay=0``), pass ``mask=``, as in ``optax.adamw``; do not wrap the optimizer in
  ``optax.masked``, which leaves the masked-out parameters' raw gradients as their updates (they
  move uphill). Per-group learning rates and betas: :func:`param_groups`.

  Args:
    learning_rate: a float, an array, a traced value or a schedule (lr_jax's or Optax's); >= 0.
      An lr_jax schedule with concrete hyperparameters is evaluated at construction (every step
      below 4096, a log grid up to 2**31 - 1, and its whole-number hyperparameters +-1) and a
      negative value raises; plain callables are not called.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: >= 0, added to the bias-corrected root.
    weight_decay: >= 0, the decoupled decay rate: a number or a schedule ``step -> value``
      (update k, counted from 0, uses ``weight_decay(k)``). ``params`` must be passed to
      ``update`` when it is non-zero; a traced non-zero value without ``params`` gives NaN updates.
    amsgrad: use the running maximum of the second moment.
    amsgrad_max: "raw" (PyTorch, default) or "corrected" (Optax).
    moment_dtype: dtype of the moments (see :func:`scale_by_adam`).
    mask: where to apply the weight decay: None (everywhere), a pytree of bools with the params'
      structure (or a prefix of it), or a callable ``params -> pytree of bools``. Leaves where it
      is False get no decay term but still the full optimizer update (unlike ``optax.masked``,
      which passes their raw gradients through). Under ``optax.inject_hyperparams`` give a callable
      mask in ``static_args``.

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values make the
      updates NaN instead.

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization <https://arxiv.org/abs/1711.05101>`_,
    ICLR 2019.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers
    >>> tx = optimizers.adamw(0.1, weight_decay=0.5)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> u, state = tx.update(jnp.array([2.0]), state, params)
    >>> print(f"{float(u[0]):.2f}")
    -0.15
  """
  fn = "adamw"
  lr = _learning_rate(learning_rate, fn)
  return optax.chain(
    _scale_by_adam(b1, b2, eps, weight_decay, amsgrad, True, amsgrad_max, moment_dtype, mask, fn),
    _scale_by_learning_rate(lr),
  )
