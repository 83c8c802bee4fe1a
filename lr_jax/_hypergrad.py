"""Gradients of the held-out loss with respect to hyperparameters, through the whole training run.

Every numeric hyperparameter of every lr_jax schedule and optimizer is a traced value, and a training
run is one ``lax.scan``; so the loss after training is a differentiable function of ``peak_value``,
``pct_start``, ``warmup_steps`` (as a float), ``weight_decay``, ``b1``... :func:`hypergradient`
computes it and its gradient (forward mode, or reverse mode with rematerialised segments);
:func:`lr_jax.tune` (``_tune.py``) runs a few steps of Adam on the hyperparameters with it. The
results live in ``_hypergrad_result.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from lr_jax import _loop
from lr_jax import _sweep as _sw
from lr_jax._hypergrad_result import HypergradResult
from lr_jax._validation import number

__all__ = ["HypergradResult", "hypergradient"]

MODES = ("forward", "reverse")


# --------------------------------------------------------------------------------------------------
# The differentiated program. ``spec`` holds everything static; the coordinates ``u`` (one scalar per
# differentiated hyperparameter), their context ``ctx`` and the fixed hyperparameters are traced, so
# new values reuse the compiled program.


@dataclasses.dataclass(frozen=True)
class _Spec:
  loss_fn: _loop.SameCode
  optimizer: _loop.SameCode
  eval_fn: _loop.SameCode | None
  split: _loop.ParamSplit
  num_steps: int
  num_batches: int
  eval_kind: str  # "fn": eval_fn(params); "fn_batches": eval_fn(params, b) averaged; "loss": loss_fn averaged
  mode: str
  segment: int  # reverse mode: steps per rematerialised segment; 0: no rematerialisation
  names: tuple  # the differentiated hyperparameters, in order
  kinds: (
    tuple  # per name: "log" (h = base * exp(u)), "linear" (base + u), "logit" (lo + (hi - lo) sigmoid(u))
  )
  chunk: int = 1  # tune: lanes vmapped at once
  lanes: int = 1  # tune: starts x seeds


def _hparams(u, ctx, fixed, spec: _Spec) -> dict:
  """The hyperparameters ``make_optimizer`` gets: the fixed ones and each coordinate mapped back."""
  h = dict(fixed)
  for name, kind in zip(spec.names, spec.kinds):
    base, lo, hi = ctx[name]
    if kind == "log":
      h[name] = base * jnp.exp(u[name])
    elif kind == "linear":
      h[name] = base + u[name]
    else:
      h[name] = lo + (hi - lo) * jax.nn.sigmoid(u[name])
  return h


def _train(tx, train, frozen, batches, spec: _Spec):
  """``num_steps`` plain Optax steps from ``tx.init(train)``; ``(trained leaves, losses)``.

  Step t uses batch ``t % num_batches``. With ``spec.segment = k > 0`` the scan is nested: an outer
  scan over ``ceil(num_steps / k)`` segments of k steps, each segment under ``jax.checkpoint``, so
  reverse mode stores the carry at segment boundaries and recomputes the steps of one segment at a
  time (memory about ``num_steps / k + k`` carries instead of ``num_steps``). Steps past
  ``num_steps`` in the last segment leave the carry as it is (one segment body is compiled, not two).
  """
  n, total = spec.num_batches, spec.num_steps

  def loss(tr, batch):
    return spec.loss_fn(spec.split.merge(tr, frozen), batch)

  def step(carry, t):
    tr, s = carry
    value, tr, s = _loop.train_step(loss, tx, tr, s, _loop.take(batches, lax.rem(t, jnp.int32(n))))
    return (tr, s), value

  carry = (train, tx.init(train))
  k = spec.segment
  if k == 0 or spec.mode == "forward":
    (train, _), losses = lax.scan(step, carry, jnp.arange(total, dtype=jnp.int32))
    return train, losses
  m = -(-total // k)

  def masked(c, t):
    new, value = step(c, t)
    keep = t < total
    return jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, c), value

  # prevent_cse=False: inside a scan, CSE across segments cannot happen anyway (jax.checkpoint docs)
  segment = jax.checkpoint(lambda c, x: lax.scan(step if m * k == total else masked, c, x), prevent_cse=False)
  (train, _), losses = lax.scan(segment, carry, jnp.arange(m * k, dtype=jnp.int32).reshape(m, k))
  return train, losses.reshape(-1)[:total]


def _evaluate(train, frozen, batches, eval_batches, spec: _Spec):
  p = spec.split.merge(train, frozen)
  if spec.eval_kind == "fn":
    return jnp.asarray(spec.eval_fn(p))
  fn = spec.eval_fn if spec.eval_kind == "fn_batches" else spec.loss_fn
  data = batches if eval_batches is None else eval_batches
  return jnp.mean(lax.map(lambda b: jnp.asarray(fn(p, b)), data))


def _objective(u, ctx, fixed, train, frozen, batches, eval_batches, spec: _Spec):
  """The held-out loss after training with the hyperparameters at ``u``; aux: (losses, trained leaves)."""
  tx = spec.optimizer(**_hparams(u, ctx, fixed, spec))
  train, losses = _train(tx, train, frozen, batches, spec)
  return _evaluate(train, frozen, batches, eval_batches, spec), (losses, train)


def _value_and_grad(f, u, mode: str):
  """``(value, {name: d value / d u[name]}, aux)`` of ``f(u) -> (value, aux)``.

  Forward mode: one ``jax.jvp`` per coordinate, vmapped over the basis tangents (the primal run is
  shared: it does not depend on the tangent), as ``jax.jacfwd`` does. Reverse mode: ``jax.grad``.
  """
  if mode == "reverse":
    (value, aux), grads = jax.value_and_grad(f, has_aux=True)(u)
    return value, grads, aux
  names = list(u)
  eye = jnp.eye(len(names), dtype=jnp.result_type(*u.values()))
  basis = {k: eye[i] for i, k in enumerate(names)}
  value, dv, aux = jax.vmap(lambda t: jax.jvp(f, (u,), (t,), has_aux=True), out_axes=(None, 0, None))(basis)
  return value, {k: dv[i] for i, k in enumerate(names)}, aux


@functools.partial(jax.jit, static_argnames=("spec",))
def _hypergrad_program(u, ctx, fixed, train, frozen, batches, eval_batches, *, spec: _Spec):
  f = functools.partial(
    _objective, ctx=ctx, fixed=fixed, train=train, frozen=frozen, batches=batches, eval_batches=eval_batches,
    spec=spec,
  )  # fmt: skip
  return _value_and_grad(f, u, spec.mode)


# --------------------------------------------------------------------------------------------------
# Argument checks shared by ``hypergradient`` and ``tune``.


@dataclasses.dataclass(frozen=True)
class _Data:
  split: _loop.ParamSplit
  params: Any  # (train, frozen) shared, or None with init_fn
  shape: Any  # (train, frozen) abstract
  batches: Any
  num_batches: int
  eval_batches: Any
  eval_kind: str
  num_steps: int


def _check_data(fn, loss_fn, params, batches, num_steps, eval_fn, eval_batches, init_fn=None) -> _Data:
  if not callable(loss_fn):
    raise ValueError(  # noqa: TRY004 - the contract: a named ValueError
      f"{fn}: `loss_fn` must be a function (params, batch) -> scalar, got loss_fn={loss_fn!r}."
    )
  if eval_fn is not None and not callable(eval_fn):
    raise ValueError(f"{fn}: `eval_fn` must be a function or None, got eval_fn={eval_fn!r}.")
  if init_fn is not None and not callable(init_fn):
    raise ValueError(f"{fn}: `init_fn` must be a function key -> params or None, got init_fn={init_fn!r}.")
  if _loop.is_stream(batches):
    raise ValueError(
      f"{fn}: `batches` must be stacked arrays (a pytree whose leading axis indexes batches) or a list of "
      f"batches: training is differentiated as one program, so an iterable is not supported, got {batches!r}."
    )
  split, shared, shape = _sw._check_params(params, init_fn, fn)
  batches, n = _loop.prepare_batches(batches, fn, stacklevel=5)
  num_steps = n if num_steps is None else _sw._positive_int(num_steps, "num_steps", fn)
  _loop.check_split_loss(loss_fn, split, shape, batches, fn)
  if eval_batches is not None:
    if _loop.is_stream(eval_batches):
      eval_batches = list(eval_batches)
    eval_batches, _ = _loop.prepare_batches(eval_batches, fn, stacklevel=5)
  if eval_fn is None:
    kind = "loss"
    if eval_batches is not None:
      _loop.check_split_loss(loss_fn, split, shape, eval_batches, fn, "eval_batches")
  else:
    kind = "fn" if eval_batches is None else "fn_batches"
    out = _loop.eval_output(eval_fn, split, shape, eval_batches)
    shp, dt = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shp != () or not jnp.issubdtype(dt, jnp.floating):
      what = "eval_fn(params, batch)" if eval_batches is not None else "eval_fn(params)"
      raise ValueError(f"{fn}: `eval_fn` must return a real scalar ({what}), got {out!r}.")
  return _Data(split, shared, shape, batches, n, eval_batches, kind, num_steps)


def _check_optimizer(fn, make_optimizer, hparams: dict):
  """Builds ``make_optimizer(**hparams)`` once with concrete values: bad values raise here, by name."""
  if isinstance(make_optimizer, optax.GradientTransformation) or not callable(make_optimizer):
    raise ValueError(  # noqa: TRY004 - the contract: a named ValueError
      f"{fn}: `make_optimizer` must be a function (**hparams) -> GradientTransformation (e.g. `lambda "
      f"peak_value: optimizers.adam(schedules.one_cycle(peak_value, 100))`), got make_optimizer={make_optimizer!r}."
    )
  try:
    tx = make_optimizer(**hparams)
  except TypeError as e:
    raise ValueError(
      f"{fn}: `make_optimizer(**hparams)` failed with hparams names {sorted(hparams)}: {e}"
    ) from e
  if not isinstance(tx, (optax.GradientTransformation, optax.GradientTransformationExtraArgs)):
    raise ValueError(  # noqa: TRY004 - the contract: a named ValueError
      f"{fn}: `make_optimizer(**hparams)` must return an optax.GradientTransformation, got {tx!r}."
    )


def _fixed_value(name, v, fn):
  """A fixed hyperparameter as the traced scalar the program sees (int32 for whole ints, else the
  default float), as ``sweep`` passes grid values."""
  return jnp.asarray(_sw._column(name, [v], fn)[0])


def _mode(mode, fn):
  if not isinstance(mode, str) or mode not in MODES:
    raise ValueError(f"{fn}: `mode` must be 'forward' or 'reverse', got mode={mode!r}.")
  return mode


def _segment(checkpoint_every, mode, num_steps, fn) -> int:
  """Steps per rematerialised segment: about sqrt(num_steps) by default, spread so that the last
  segment is as full as the others (``ceil(N / ceil(N / ceil(sqrt N)))``)."""
  if checkpoint_every is None:
    if mode != "reverse":
      return 0
    m = -(-num_steps // max(1, math.ceil(math.sqrt(num_steps))))
    return -(-num_steps // m)
  if mode != "reverse":
    raise ValueError(
      f"{fn}: `checkpoint_every` applies to mode='reverse' (forward mode keeps no history), got "
      f"checkpoint_every={checkpoint_every!r} with mode={mode!r}."
    )
  if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (numbers.Integral, np.integer)):
    raise ValueError(  # noqa: TRY004 - the contract: a named ValueError
      f"{fn}: `checkpoint_every` must be an integer >= 0 or None, got checkpoint_every={checkpoint_every!r}."
    )
  if checkpoint_every < 0:
    raise ValueError(f"{fn}: `checkpoint_every` must be >= 0, got checkpoint_every={checkpoint_every}.")
  return min(int(checkpoint_every), num_steps)


def _float_dtype():
  return jnp.result_type(float)


# --------------------------------------------------------------------------------------------------
# hypergradient


def hypergradient(
  loss_fn: Callable[[Any, Any], jax.Array],
  params: Any,
  batches: Any,
  make_optimizer: Callable[..., optax.GradientTransformation],
  hparams: Mapping[str, float],
  num_steps: int | None = None,
  *,
  eval_fn: Callable[..., jax.Array] | None = None,
  eval_batches: Any = None,
  wrt: Sequence[str] | None = None,
  mode: str = "forward",
  log_space: bool | str | Collection[str] = "auto",
  checkpoint_every: int | None = None,
) -> HypergradResult:
  """The held-out loss after training, and its gradient with respect to the hyperparameters.

  Training is a plain Optax loop from ``params``, one ``lax.scan`` (step t uses batch ``t % n``)::

      tx = make_optimizer(**hparams);  p = params;  s = tx.init(p)
      for t in range(num_steps):
        losses[t], g = value_and_grad(loss_fn)(p, batch[t % n])
        u, s = tx.update(g, s, p);  p = optax.apply_updates(p, u)
      value = L(p)

  where the objective ``L`` is ``eval_fn(p)``; with ``eval_batches``, ``mean(eval_fn(p, b) for b in
  eval_batches)``; without ``eval_fn``, the mean of ``loss_fn(p, b)`` over ``eval_batches`` (or,
  without them, over the training batches: a training loss, not a held-out one). Since every lr_jax
  schedule and optimizer takes traced hyperparameters, ``value`` is a differentiable function of
  ``h = hparams``, and this returns ``value`` and, for each hyperparameter h in ``wrt``::

      grads[h] = d value / d log h = h * d value / d h    (log_space: h > 0)
      grads[h] = d value / d h                            (otherwise)

  ``log_space="auto"`` (default) takes the log of every differentiated hyperparameter whose value is
  > 0 (a rate, a decay, a step count, ``pct_start``), and plain ``d/dh`` for the others (a
  ``weight_decay`` of 0, a negative offset); ``True`` requires them all > 0, ``False`` is plain
  everywhere, and a collection of names takes the log of exactly those. ``result.log_space`` says which.

  **Modes.** ``mode="forward"``: ``jax.jvp`` through the training scan with one tangent per
  differentiated hyperparameter (vmapped, sharing the primal run): memory independent of
  ``num_steps`` (the carry holds the params and one tangent of them per hyperparameter), compute
  about one training run plus one forward-over-reverse pass per hyperparameter; best for a few.
  ``mode="reverse"``: ``jax.grad`` through the scan, whose cost does not grow with the number of
  hyperparameters, with rematerialisation: the scan is cut into segments of ``checkpoint_every``
  steps (default ``ceil(sqrt(num_steps))``), each under ``jax.checkpoint``; the backward pass stores
  the carry (params and optimizer state) at segment boundaries and recomputes one segment at a time,
  so memory is about ``(num_steps / k + k)`` carries and one segment's activations, O(sqrt(num_steps)),
  for about one extra forward pass. ``checkpoint_every=0`` stores every step instead (memory
  O(num_steps), no recomputation). Both give the same gradient (tested against each other and
  against central finite differences in float64).

  **Step counts as floats.** A differentiated hyperparameter is passed to ``make_optimizer`` as a
  float (its relaxation), also when ``hparams`` gives an integer. Schedules continuous in their step
  counts can be differentiated through them; the rate is then piecewise smooth, with kinks where the
  count crosses a whole number (where JAX returns one of the one-sided derivatives: evaluate
  between whole numbers). Continuous: ``cosine_annealing``, ``linear`` and ``polynomial_decay``
  (``total_steps``); ``exponential_decay`` and ``inverse_time_decay`` (``decay_steps``, not
  ``staircase``); ``warmup`` and ``inverse_sqrt`` (``warmup_steps``); ``warmup_stable_decay``
  (``total_steps``, ``warmup_steps``, ``decay_steps``); ``cosine_with_min_lr`` and
  ``cosine_with_restarts`` (``total_steps``, ``warmup_steps``, ``num_cycles``);
  ``cosine_warm_restarts`` (``warmup_steps``); ``cyclic`` (``step_size_up``, ``step_size_down``);
  ``cooldown`` (``start``, ``length``); ``swalr`` (``swa_start``, ``anneal_epochs``);
  ``piecewise_interpolate`` (``boundaries``); ``join`` (``boundaries``, where the joined schedules
  meet); ``one_cycle`` (``pct_start``). Piecewise constant (derivative 0, useless): ``step_decay``
  (``step_size``), ``staircase=True`` decays, ``piecewise_constant`` (``boundaries``). With jumps
  (correct between them): ``cosine_warm_restarts`` (``period``, ``period_mult``). Whole numbers only
  (a fractional value gives NaN rates): ``one_cycle`` / ``one_cycle_momentum`` (``total_steps``),
  ``multistep_decay`` (``milestones``), ``exponential_decay`` (``transition_begin``), ``linear_lr``
  / ``constant_lr`` (``total_iters``), ``per_epoch`` (``steps_per_epoch``).

  **Compilation.** One program per distinct (functions, hyperparameter names, shapes, dtypes,
  ``num_steps``, mode, segment); the hyperparameter values are traced arguments, so new values reuse
  it. Functions are compared by their code and captures, as in :func:`lr_jax.sweep`.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``, the training loss.
    params: initial parameters (any pytree; as in :func:`lr_jax.sweep`).
    batches: stacked batches (a pytree whose leading axis indexes batches) or a list of batches.
    make_optimizer: ``make_optimizer(**hparams) -> optax.GradientTransformation``, built from lr_jax
      schedules and optimizers (Optax's own schedules cannot trace step counts).
    hparams: ``{name: number}``, the point at which to differentiate; every key is passed to
      ``make_optimizer``.
    num_steps: training steps (default: one pass over ``batches``).
    eval_fn: the objective, ``eval_fn(params) -> scalar``, or ``eval_fn(params, batch)`` with
      ``eval_batches``; it must be a differentiable loss (an accuracy has zero gradient).
    eval_batches: held-out batches (stacked or a list).
    wrt: the names to differentiate (default: every key of ``hparams``); the others are fixed.
    mode: ``"forward"`` or ``"reverse"``.
    log_space: ``"auto"``, ``True``, ``False`` or a collection of names (see above).
    checkpoint_every: reverse mode only: steps per rematerialised segment (default
      ``ceil(sqrt(num_steps))``; 0: none).

  Returns:
    A :class:`HypergradResult` (``value``, ``grads``, ``log_space``, ``losses``, ``params``, ...).

  Warns:
    RuntimeWarning: when ``value`` or a gradient is not finite (a diverged run): the NaN comes back,
      with the step where the training loss first was not finite.

  Raises:
    ValueError: a bad ``mode``, ``log_space``, ``wrt``, ``checkpoint_every`` (or one given in forward
      mode), ``num_steps``; a hyperparameter that is not a finite number, or not > 0 in log space;
      ``make_optimizer`` not callable, failing or not returning a GradientTransformation (an invalid
      hyperparameter value raises the schedule's own ``ValueError``); an iterable ``batches``;
      ``loss_fn``/``eval_fn`` not returning a real scalar.

  References:
    Maclaurin, Duvenaud & Adams, `Gradient-based Hyperparameter Optimization through Reversible
    Learning <https://arxiv.org/abs/1502.03492>`_, ICML 2015 (reverse mode through training);
    Franceschi, Donini, Frasconi & Pontil, `Forward and Reverse Gradient-Based Hyperparameter
    Optimization <https://arxiv.org/abs/1703.01785>`_, ICML 2017 (forward mode: memory independent
    of the horizon); Griewank & Walther, *Evaluating Derivatives* (2008), ch. 12 (checkpointing);
    Wu, Ren, Liao & Grosse, `Understanding Short-Horizon Bias in Stochastic Meta-Optimization
    <https://arxiv.org/abs/1803.02021>`_, ICLR 2018 (why greedy short-horizon tuning decays the rate too early).

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import hypergradient, optimizers
    >>> loss = lambda w, b: jnp.mean((w - b) ** 2)
    >>> res = hypergradient(loss, jnp.zeros(()), jnp.ones((1, 4)), lambda lr: optimizers.sgd(lr),
    ...                     {"lr": 0.1}, num_steps=10)
    >>> # w - 1 shrinks by (1 - 2 lr) a step: value = 0.8**20, d value / d log lr = lr * 20 * 0.8**19 * -2
    >>> print(f"{res.value:.5f} {res.grads['lr']:.5f} {res.log_space}")
    0.01153 -0.05765 {'lr': True}
  """
  spec, args, data, logs = _prepare(
    loss_fn, params, batches, make_optimizer, hparams, num_steps, eval_fn, eval_batches, wrt, mode, log_space,
    checkpoint_every,
  )  # fmt: skip
  value, grads, (losses, train) = _hypergrad_program(*args, spec=spec)
  _warn_nonfinite(value, grads, losses, fn="hypergradient")
  return HypergradResult(
    value=value,
    grads=grads,
    hparams=dict(hparams),
    log_space=logs,
    losses=losses,
    params=data.split.merge(train, args[4]),
    mode=spec.mode,
    checkpoint_every=spec.segment if spec.mode == "reverse" else None,
  )


def _warn_nonfinite(value, grads, losses, *, fn: str):
  """A ``RuntimeWarning`` when the objective or a gradient is not finite, saying where it went wrong:
  the NaN is returned (as ``lr_find`` returns a NaN suggestion), never silently used as a number."""
  value = float(value)
  bad = sorted(k for k, g in grads.items() if not np.isfinite(float(g)))
  if np.isfinite(value) and not bad:
    return
  losses = np.asarray(losses)
  nonfinite = np.flatnonzero(~np.isfinite(losses))
  if nonfinite.size:
    where = (
      f"training diverged: the training loss is {losses[nonfinite[0]]} from step {int(nonfinite[0])} of "
      f"{losses.size} on (lower the rate, or clip the gradients)"
    )
  elif not np.isfinite(value):
    where = "training stayed finite, so the objective (eval_fn) is not finite at the trained params"
  else:
    where = (
      "training and the objective stayed finite, but the derivative overflowed or hit a non-differentiable "
      "point (a chaotic run: try fewer steps or a smaller rate)"
    )
  what = f"value={value}" if not np.isfinite(value) else f"value={value:.6g} but grads of {bad} not finite"
  warnings.warn(f"{fn}: not finite ({what}): {where}.", RuntimeWarning, stacklevel=3)


def _prepare(
  loss_fn, params, batches, make_optimizer, hparams, num_steps, eval_fn, eval_batches, wrt, mode, log_space,
  checkpoint_every,
):  # fmt: skip
  """Checks the arguments of :func:`hypergradient`; ``(spec, args of _hypergrad_program, data, log_space)``
  (the benchmark lowers the program from these to read its memory)."""
  fn = "hypergradient"
  mode = _mode(mode, fn)
  if not isinstance(hparams, Mapping) or not hparams:
    raise ValueError(f"{fn}: `hparams` must be a non-empty dict {{name: number}}, got hparams={hparams!r}.")
  for k, v in hparams.items():
    if not isinstance(k, str):
      raise ValueError(f"{fn}: `hparams` names must be strings, got {k!r}.")  # noqa: TRY004 - the contract: a named ValueError
    number(v, fn=fn, name=f"hparams[{k!r}]")
  hparams = dict(hparams)
  names = _check_wrt(wrt, hparams, fn)
  logs = _check_log_space(log_space, names, hparams, fn)
  data = _check_data(fn, loss_fn, params, batches, num_steps, eval_fn, eval_batches)
  segment = _segment(checkpoint_every, mode, data.num_steps, fn)
  _check_optimizer(fn, make_optimizer, hparams)
  dt = _float_dtype()
  spec = _Spec(
    _loop.SameCode(loss_fn), _loop.SameCode(make_optimizer), None if eval_fn is None else _loop.SameCode(eval_fn),
    data.split, data.num_steps, data.num_batches, data.eval_kind, mode, segment, names,
    tuple("log" if logs[k] else "linear" for k in names),
  )  # fmt: skip
  zero = jnp.zeros((), dt)
  u = {k: zero for k in names}
  ctx = {k: (jnp.asarray(float(hparams[k]), dt), zero, zero) for k in names}
  fixed = {k: _fixed_value(k, v, fn) for k, v in hparams.items() if k not in names}
  train, frozen = data.params
  return spec, (u, ctx, fixed, train, frozen, data.batches, data.eval_batches), data, logs


def _check_wrt(wrt, hparams, fn) -> tuple:
  if wrt is None:
    return tuple(hparams)
  if isinstance(wrt, str):
    wrt = (wrt,)
  if not isinstance(wrt, Collection) or not wrt:
    raise ValueError(
      f"{fn}: `wrt` must be a non-empty list of hyperparameter names or None, got wrt={wrt!r}."
    )
  wrt = tuple(wrt)
  unknown = [k for k in wrt if k not in hparams]
  if unknown or len(set(wrt)) != len(wrt):
    raise ValueError(
      f"{fn}: `wrt` must name distinct keys of hparams ({sorted(hparams)}), got wrt={list(wrt)!r}."
    )
  return wrt


def _check_log_space(log_space, names, hparams, fn) -> dict:
  if isinstance(log_space, str) and log_space == "auto":
    return {k: bool(float(hparams[k]) > 0) for k in names}
  if isinstance(log_space, (bool, np.bool_)):
    chosen = set(names) if log_space else set()
  elif isinstance(log_space, Collection) and not isinstance(log_space, (str, bytes, Mapping)):
    chosen = set(log_space)
    if not chosen <= set(names):
      raise ValueError(
        f"{fn}: `log_space` names must be differentiated hyperparameters ({list(names)}), got "
        f"log_space={sorted(log_space)!r}."
      )
  else:
    raise ValueError(  # noqa: TRY004 - the contract: a named ValueError
      f"{fn}: `log_space` must be 'auto', True, False or a collection of names, got log_space={log_space!r}."
    )
  for k in chosen:
    if not float(hparams[k]) > 0:
      raise ValueError(
        f"{fn}: a hyperparameter in log space must be > 0, got {k}={hparams[k]!r} (use log_space='auto', "
        "which differentiates it plainly)."
      )
  return {k: k in chosen for k in names}
