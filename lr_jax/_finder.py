"""The LR range test (``lr_find``): one jit-compiled ``lax.scan`` over a ramp of learning rates.

The run is a single ``lax.scan`` (or, with ``progress=True``, the same scan cut into chunks between
progress-bar updates). Divergence is a flag carried through the scan: once it is raised the
parameters freeze and the remaining points are NaN, with no Python ``break``. Repeats (different batch
orders) are ``vmap``ped in the same program. The suggestion rules (:func:`steepest`, :func:`minimum`,
:func:`valley`) are pure functions of ``(lrs, smoothed_losses)`` that run on the host.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from lr_jax import _loop
from lr_jax._validation import check, choice, flag, is_traced, number

__all__ = ["LRFindResult", "lr_find", "minimum", "steepest", "valley"]

SUGGESTION_METHODS = ("steepest", "minimum", "valley")


# --------------------------------------------------------------------------------------------------
# Suggestion rules: pure functions of a finite, already-trimmed curve.


def steepest(lrs: np.ndarray, losses: np.ndarray) -> float:
  """The rate where the loss falls fastest against log(lr): ``argmin d loss / d log(lr)``.

  torch-lr-finder and Lightning's rule, with the derivative taken against ``log(lr)`` (Lightning
  2.5.3 takes it against linear lr, which its issue #21141 reports as a regression; torch-lr-finder
  spaces by index, which is the same thing on an exponential ramp). Uses ``np.gradient`` (central
  differences, one-sided at the ends).

  Args:
    lrs: increasing rates, at least 2.
    losses: the (smoothed) losses at ``lrs``, all finite.

  Returns:
    The suggested rate (a point of ``lrs``).

  Examples:
    >>> lrs = np.logspace(-3, 0, 7)
    >>> print(f"{steepest(lrs, np.array([5., 5., 4.8, 3., 1., 0.8, 0.9])):.3f}")
    0.032
  """
  g = np.gradient(losses, np.log(lrs))
  return float(lrs[int(np.argmin(g))])


def minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
  """The rate at the minimum loss, divided by 10 (fastai's ``SuggestionMethod.Minimum``).

  Args:
    lrs: increasing rates.
    losses: the (smoothed) losses at ``lrs``, all finite.

  Returns:
    ``lrs[argmin(losses)] / 10``.

  Examples:
    >>> print(f"{minimum(np.array([0.01, 0.1, 1.0]), np.array([3.0, 1.0, 2.0])):.3f}")
    0.010
  """
  return float(lrs[int(np.argmin(losses))] / 10)


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
  """fastai's valley rule: the point a half of the way down the longest decreasing run.

  Finds the longest strictly decreasing subsequence of ``losses`` (O(n^2), as fastai's
  ``SuggestionMethod.Valley``), of length L ending at index ``end``, and returns the rate at index
  ``start + int(L / 3) + int(L / 6)`` with fastai's ``start = end - L`` (one before the run's first
  index). Difference: the index is clamped at 0; fastai's can be -1 (a curve that never decreases
  gives L = 1, end = 0), which picks the *last* rate.

  Args:
    lrs: increasing rates.
    losses: the (smoothed) losses at ``lrs``, all finite.

  Returns:
    The suggested rate (a point of ``lrs``).

  References:
    fastai ``callback/schedule.py``, ``valley`` (fastai 2.7).

  Examples:
    >>> lrs = np.logspace(-3, 0, 7)
    >>> print(f"{valley(lrs, np.array([5., 5., 4.8, 3., 1., 0.8, 0.9])):.4f}")  # L = 5, end = 5: 0 + 1 + 0
    0.0032
  """
  n = len(losses)
  lds = np.ones(n, dtype=np.int64)
  max_start = max_end = 0
  for i in range(1, n):
    for j in range(i):
      if losses[i] < losses[j] and lds[i] < lds[j] + 1:
        lds[i] = lds[j] + 1
      if lds[max_end] < lds[i]:
        max_end = i
        max_start = max_end - lds[max_end]
  sections = (max_end - max_start) / 3
  idx = max(max_start + int(sections) + int(sections / 2), 0)
  return float(lrs[idx])


_RULES = {"steepest": steepest, "minimum": minimum, "valley": valley}


def _suggest(lrs, smoothed, stop, method, skip_start, skip_end, *, fn: str, stacklevel: int = 3) -> float:
  """Applies a rule to the curve up to ``stop`` (inclusive), trimmed like fastai (``[n//10 : -5]``).

  The answer always lies in ``[lrs[0], lrs[-1]]`` (``[min_lr, max_lr]``). When fewer than 2 points
  are left after cutting at the divergence and trimming, or when the rule points outside the ramp
  (``"minimum"``: the lowest loss within 10x of ``min_lr``), the result is NaN and a
  ``RuntimeWarning`` says why.
  """
  lo, hi = float(lrs[0]), float(lrs[-1])
  end = len(lrs) if stop is None else stop + 1
  lrs, smoothed = np.asarray(lrs[:end], np.float64), np.asarray(smoothed[:end], np.float64)
  finite = np.isfinite(smoothed)
  if not finite.all():  # cut at the first non-finite point
    cut = int(np.argmin(finite))
    lrs, smoothed = lrs[:cut], smoothed[:cut]
  kept = slice(skip_start, max(len(lrs) - skip_end, 0))
  if len(lrs[kept]) < 2:
    if stop is None:
      where = f"the curve has {len(lrs)} finite points"
    else:
      why = "a non-finite loss (NaN/inf)" if len(lrs) <= stop else "the smoothed loss passing the threshold"
      where = f"the run stopped at step {stop} (lr={float(lrs[-1] if len(lrs) else lo):.3g}) on {why}"
    warnings.warn(
      f"{fn}: no suggestion (NaN): {where}, leaving {len(lrs)} points before it and "
      f"{len(lrs[kept])} after dropping the first {skip_start} and last {skip_end}; a rule needs 2. "
      "A loss that diverges this early usually means bad data (NaN/inf in a batch) or a loss that is "
      "not finite at the initial parameters; otherwise lower min_lr.",
      RuntimeWarning,
      stacklevel=stacklevel,
    )
    return float("nan")
  lrs, smoothed = lrs[kept], smoothed[kept]
  rate = _RULES[method](lrs, smoothed)
  if not lo <= rate <= hi:
    warnings.warn(
      f"{fn}: no suggestion (NaN): the {method!r} rule gives {rate:.3g}, outside the tested range "
      f"[min_lr, max_lr] = [{lo:.3g}, {hi:.3g}] (the smoothed loss is lowest at lr="
      f"{float(lrs[int(np.argmin(smoothed))]):.3g}); lower min_lr.",
      RuntimeWarning,
      stacklevel=stacklevel,
    )
    return float("nan")
  return rate


# --------------------------------------------------------------------------------------------------
# Result.


class LRFindResult(NamedTuple):
  """Result of :func:`lr_find`. With ``num_repeats > 1`` the curves are the mean over repeats.

  Fields:
    lrs: ``[num_steps]`` the ramp; update t used ``lrs[t]``.
    losses: ``[num_steps]`` raw training loss at step t (on the parameters before update t); NaN
      after the run stopped.
    smoothed_losses: ``[num_steps]`` bias-corrected EMA of ``losses``; NaN after the run stopped.
    diverged_at: index of the step where divergence was detected (the run stopped there), or None.
    suggestion: the suggested rate, by ``method``: always in ``[min_lr, max_lr]``, or NaN (with a
      ``RuntimeWarning`` saying why) when too few points precede the divergence or the rule points
      below ``min_lr``.
    method: the rule behind ``suggestion``.
    losses_std: ``[num_steps]`` standard deviation of the smoothed losses over repeats (0 for one run).
    repeat_losses: ``[num_repeats, num_steps]`` raw losses of each repeat.
    repeat_smoothed_losses: ``[num_repeats, num_steps]`` smoothed losses of each repeat.
    repeat_diverged_at: ``diverged_at`` of each repeat (a tuple).
  """

  lrs: np.ndarray
  losses: np.ndarray
  smoothed_losses: np.ndarray
  diverged_at: int | None
  suggestion: float
  method: str
  losses_std: np.ndarray
  repeat_losses: np.ndarray
  repeat_smoothed_losses: np.ndarray
  repeat_diverged_at: tuple

  def __repr__(self) -> str:
    repeats = len(self.repeat_diverged_at)
    lo, hi = float(self.lrs[0]), float(self.lrs[-1])
    return (
      f"LRFindResult({len(self.lrs)} steps from {lo:.3g} to {hi:.3g}, {repeats} repeat"
      f"{'s' if repeats != 1 else ''}, diverged_at={self.diverged_at}, "
      f"suggestion={self.suggestion:.3g} ({self.method}))"
    )

  def suggest(self, method: str | None = None, *, skip_start: int | None = None, skip_end: int = 5) -> float:
    """The rate suggested by ``method`` from the (mean) smoothed curve.

    The curve is cut at the divergence point and trimmed as fastai does: the first
    ``skip_start`` (default ``num_steps // 10``) and the last ``skip_end`` points are dropped
    (unless fewer than 2 points would remain).

    Args:
      method: ``"steepest"`` (steepest descent against log lr), ``"minimum"`` (rate at the minimum
        / 10) or ``"valley"`` (fastai's valley rule); default ``self.method``.
      skip_start: points dropped at the start.
      skip_end: points dropped before the end of the valid curve.

    Returns:
      The suggested rate, a float in ``[min_lr, max_lr]``; NaN, with a ``RuntimeWarning`` saying why,
      when fewer than 2 points are left before the divergence after trimming, or when the rule
      points outside the ramp (``"minimum"`` with the lowest loss within 10x of ``min_lr``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from lr_jax import lr_find
      >>> res = lr_find(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...               optimizer=lambda lr: optax.sgd(lr), min_lr=1e-4, max_lr=10.0)
      >>> print(res.suggest("steepest") < 1.0, res.suggest("minimum") < 1.0)  # SGD diverges above 1
      True True
    """
    method = self.method if method is None else method
    choice(method, SUGGESTION_METHODS, fn="LRFindResult.suggest", name="method")
    skip_start = len(self.lrs) // 10 if skip_start is None else skip_start
    return _suggest(
      self.lrs,
      self.smoothed_losses,
      self.diverged_at,
      method,
      skip_start,
      skip_end,
      fn="LRFindResult.suggest",
    )

  def repeat_suggestions(self, method: str | None = None) -> np.ndarray:
    """The suggestion of each repeat on its own (``[num_repeats]``); their spread is what repeats reduce.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from lr_jax import lr_find
      >>> res = lr_find(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((4, 2)),
      ...               min_lr=1e-4, num_steps=20, num_repeats=3, key=jax.random.key(0))
      >>> print(res.repeat_suggestions().shape)
      (3,)
    """
    method = self.method if method is None else method
    choice(method, SUGGESTION_METHODS, fn="LRFindResult.repeat_suggestions", name="method")
    skip = len(self.lrs) // 10
    return np.array(
      [
        _suggest(self.lrs, s, d, method, skip, 5, fn="LRFindResult.repeat_suggestions")
        for s, d in zip(self.repeat_smoothed_losses, self.repeat_diverged_at)
      ]
    )

  def plot(self, ax=None):
    """Plots the curve (and the repeats' spread), marking the suggestion; returns the Axes.

    See :func:`lr_jax.plot.lr_find`.
    """
    from lr_jax import plot

    return plot.lr_find(self, ax=ax)


# --------------------------------------------------------------------------------------------------
# The compiled run.


def _default_optimizer(learning_rate) -> optax.GradientTransformation:
  """SGD with momentum 0.9: ``lr_jax.optimizers._sgd`` (PyTorch's ``SGD(momentum=0.9)``)."""
  from lr_jax import optimizers

  return optimizers.sgd(learning_rate, momentum=0.9)


@functools.partial(jax.jit, static_argnames=("num_steps", "mode"))
def _ramp(min_lr, max_lr, *, num_steps, mode):
  dt = jnp.result_type(float)
  lo, hi = jnp.asarray(min_lr, dt), jnp.asarray(max_lr, dt)
  i = jnp.arange(num_steps)
  frac = i.astype(dt) / (num_steps - 1)
  if mode == "exponential":
    lrs = jnp.exp(jnp.log(lo) + frac * (jnp.log(hi) - jnp.log(lo)))
  else:
    lrs = lo + frac * (hi - lo)
  return jnp.where(i == 0, lo, jnp.where(i == num_steps - 1, hi, lrs))  # both ends exactly


def _is_key(key) -> bool:
  """A typed key (``jax.random.key``) or a legacy raw ``uint32[2]`` key (``jax.random.PRNGKey``)."""
  if not isinstance(key, jax.Array):
    return False
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key.shape == ()
  return key.dtype == jnp.uint32 and key.shape == (2,)


def _orders(key, num_repeats: int, num_steps: int, n: int) -> jax.Array:
  """``[num_repeats, num_steps]`` batch indices: a fresh permutation of the n batches per pass."""
  if key is None and num_repeats == 1:
    return (jnp.arange(num_steps) % n)[None, :]
  key = jax.random.key(0) if key is None else key
  return _shuffled_orders(key, num_repeats=num_repeats, num_steps=num_steps, n=n)


@functools.partial(jax.jit, static_argnames=("num_repeats", "num_steps", "n"))
def _shuffled_orders(key, *, num_repeats, num_steps, n):
  passes = -(-num_steps // n)
  # argsort of uniforms: a uniformly random permutation per pass (ties have probability ~0), and
  # one sort compiles in milliseconds where jax.random.permutation's shuffle takes seconds on CPU.
  u = jax.random.uniform(key, (num_repeats, passes, n))
  return jnp.argsort(u, axis=-1).reshape(num_repeats, passes * n)[:, :num_steps]


def _init(params, lr0, loss_dtype, optimizer):
  state = optimizer(lr0).init(params)
  return (params, state, jnp.zeros((), loss_dtype), jnp.full((), jnp.inf, loss_dtype), jnp.array(True))


def _steps(carry, batches, order, lrs, t0, smoothing, threshold, *, loss_fn, optimizer, length):
  """``length`` steps from ``t0`` of one repeat; returns the carry and (loss, smoothed, diverged) rows."""
  ts = t0 + jnp.arange(length)
  idx = lax.dynamic_slice_in_dim(order, t0, length)
  lr_row = lax.dynamic_slice_in_dim(lrs, t0, length)

  def body(c, x):
    params, state, avg, best, alive = c
    t, i, lr = x
    loss, new_params, new_state = _loop.train_step(
      loss_fn, optimizer(lr), params, state, _loop.take(batches, i)
    )
    beta = jnp.asarray(smoothing, loss.dtype)
    new_avg = beta * avg + (1 - beta) * loss
    smooth = new_avg / (1 - beta ** (t + 1).astype(loss.dtype))
    new_best = jnp.minimum(best, smooth)
    diverged = (
      ~jnp.isfinite(loss) | ~jnp.isfinite(smooth) | (smooth > jnp.asarray(threshold, loss.dtype) * new_best)
    )
    keep = alive & ~diverged  # still running after this step: commit the update
    sel = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, old)
    out = (jnp.where(alive, loss, jnp.nan), jnp.where(alive, smooth, jnp.nan), alive & diverged)
    return (sel(new_params, params), sel(new_state, state), new_avg, new_best, keep), out

  return lax.scan(body, carry, (ts, idx, lr_row))


_STATIC = ("loss_fn", "optimizer", "length")


def _init_all_impl(params, lrs, *, optimizer, loss_dtype, num_repeats):
  one = _init(params, lrs[0], loss_dtype, optimizer)
  return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_repeats, *jnp.shape(x))), one)


def _steps_all_impl(carry, batches, orders, lrs, t0, smoothing, threshold, *, loss_fn, optimizer, length):
  run = functools.partial(_steps, loss_fn=loss_fn, optimizer=optimizer, length=length)
  return jax.vmap(run, in_axes=(0, None, 0, None, None, None, None))(
    carry, batches, orders, lrs, t0, smoothing, threshold
  )


_init_all = jax.jit(_init_all_impl, static_argnames=("optimizer", "loss_dtype", "num_repeats"))
_steps_all = jax.jit(_steps_all_impl, static_argnames=_STATIC)


@functools.partial(jax.jit, static_argnames=("loss_fn", "optimizer", "loss_dtype"))
def _find_all(params, batches, orders, lrs, smoothing, threshold, *, loss_fn, optimizer, loss_dtype):
  """The whole test in one program: init, then one scan per repeat, vmapped over repeats."""
  num_repeats, num_steps = orders.shape
  carry = _init_all_impl(params, lrs, optimizer=optimizer, loss_dtype=loss_dtype, num_repeats=num_repeats)
  return _steps_all_impl(
    carry,
    batches,
    orders,
    lrs,
    0,
    smoothing,
    threshold,
    loss_fn=loss_fn,
    optimizer=optimizer,
    length=num_steps,
  )[1]


# --------------------------------------------------------------------------------------------------
# Public entry point.


def lr_find(
  loss_fn: Callable[[Any, Any], jax.Array],
  params: Any,
  batches: Any,
  *,
  optimizer: Callable[[Any], optax.GradientTransformation] | None = None,
  min_lr: float = 1e-7,
  max_lr: float = 10.0,
  num_steps: int = 100,
  mode: str = "exponential",
  smoothing: float = 0.98,
  diverge_threshold: float | None = 4.0,
  num_repeats: int = 1,
  key: jax.Array | None = None,
  method: str = "minimum",
  progress: bool = False,
) -> LRFindResult:
  """The LR range test: train with a rate ramping from ``min_lr`` to ``max_lr``; suggest a rate.

  Step t (t = 0 .. N-1, N = ``num_steps``) computes the loss and gradient of batch ``order[t]`` at
  the current parameters, records the loss, then updates with rate ``lrs[t]``::

      exponential: lrs[t] = min_lr * (max_lr / min_lr) ** (t / (N - 1))
      linear:      lrs[t] = min_lr + (max_lr - min_lr) * t / (N - 1)
      avg[t]      = beta * avg[t-1] + (1 - beta) * loss[t]        (avg[-1] = 0, beta = smoothing)
      smooth[t]   = avg[t] / (1 - beta ** (t + 1))                (bias-corrected EMA)
      diverged[t] = smooth[t] > diverge_threshold * min(smooth[:t+1])  or  loss[t] not finite

  At the first diverged step the run freezes (parameters and optimizer state stop changing) and every
  later point is NaN; there is no Python loop per step: the whole test is one jit-compiled
  ``lax.scan`` (``vmap``ped over repeats), so changing ``min_lr``/``max_lr``/``smoothing``/
  ``diverge_threshold`` reuses the compiled program. ``num_repeats > 1`` trains that many runs from
  the same ``params`` with different batch orders (one permutation of the batches per pass, drawn
  from ``key``); the curves are their mean (the EMA is linear, so the mean of the smoothed curves is
  the smoothed mean), cut at the earliest divergence, and ``losses_std`` gives their spread.

  Compared with the other finders (defaults in parentheses): like fastai's ``Learner.lr_find``
  (``start_lr=1e-7, end_lr=10, num_it=100``, debiased EMA with 0.98, stop when ``smooth > 4 best``)
  and Lightning's ``Tuner.lr_find`` (``mode="exponential"``, ``early_stop_threshold=4.0``), with the
  grid of torch-lr-finder's ``range_test`` (``step_mode="exp"``; it hits both ``start_lr`` and
  ``end_lr``, fastai's never reaches ``end_lr`` and Lightning skips a grid point). torch-lr-finder
  smooths with a non-debiased EMA (``smooth_f=0.05``) and stops at ``diverge_th=5`` times the best;
  pass ``smoothing=0.95, diverge_threshold=5.0`` for similar settings. The suggestion rules and their
  trimming (``[N//10 : -5]`` of the curve up to the divergence point) follow fastai; ``"steepest"``
  is torch-lr-finder's and Lightning's rule, taken against log(lr). The default ``method`` is
  ``"minimum"`` (fastai's ``SuggestionMethod.Minimum``), the one rule that passed both of our
  checks: on noise-free least squares it lands within 100x below 2/lambda_max (``"valley"``, fastai's
  default, lands about 400x below: a noise-free curve creeps down from the first step, so the
  longest decreasing run is most of the ramp); on minibatch curves single runs of ``"steepest"``
  pick the noise of the first smoothed points (suggestions 1e-6..1e-5, spread over 1-2 decades).
  ``result.suggest(m)`` gives every rule without rerunning.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar`` (differentiable in ``params``).
    params: initial parameters (a pytree); they are not modified.
    batches: a pytree of arrays whose leading axis indexes batches, cycled if shorter than
      ``num_steps``, or a Python list of batches of equal shapes (what a data loader gives), stacked
      here. A batch with a scalar leaf (``(X, y)`` of shapes ``[n, d]``, ``[n]`` passed as is: one
      example per batch) gets a warning; pass one full batch as ``(X[None], y[None])``.
    optimizer: a function ``learning_rate -> optax.GradientTransformation`` (called with a traced
      scalar at each step, as ``optax.inject_hyperparams`` does); default SGD with momentum 0.9
      (``lr_jax.optimizers._sgd(lr, momentum=0.9)``, PyTorch's ``SGD``). Its state must not depend on
      the rate's value.
    min_lr: first rate; must be > 0.
    max_lr: last rate; must be > ``min_lr``.
    num_steps: number of steps (grid points); must be >= 10.
    mode: ``"exponential"`` or ``"linear"`` spacing.
    smoothing: EMA coefficient beta, in [0, 1) (0 = no smoothing).
    diverge_threshold: stop when the smoothed loss exceeds this times its minimum; must be > 1, or
      None to stop only at non-finite losses. Assumes positive losses.
    num_repeats: runs with different batch orders, vmapped; must be >= 1.
    key: PRNG key for the batch orders. None keeps the given order for a single run (and uses
      ``jax.random.key(0)`` for repeats).
    method: the rule for ``suggestion``: ``"steepest"``, ``"minimum"`` or ``"valley"``.
    progress: show a progress bar on stderr (the scan then runs in about 20 chunks).

  Returns:
    An :class:`LRFindResult`.

  Raises:
    ValueError: ``min_lr <= 0``, ``min_lr >= max_lr``, ``num_steps < 10``, ``num_repeats < 1``,
      ``smoothing`` outside [0, 1), ``diverge_threshold <= 1``, a ``key`` that is not a PRNG key,
      a ``loss_fn`` that does not return a scalar, ``batches`` leaves with different leading axes
      (or listed batches of different shapes), or a call under ``jax.jit``/``vmap`` (traced
      arguments, or a call while tracing: the result holds Python floats).

  Warns:
    RuntimeWarning: when no rate can be suggested (``suggestion`` is then NaN), saying why.

  References:
    L. N. Smith, `Cyclical Learning Rates for Training Neural Networks
    <https://arxiv.org/abs/1506.01186>`_, WACV 2017, section 3.3.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import lr_find
    >>> loss = lambda w, b: 0.5 * jnp.sum((w - b) ** 2)  # Hessian 1: plain SGD diverges above lr = 2
    >>> res = lr_find(loss, jnp.ones(3), jnp.zeros((1, 3)), optimizer=optax.sgd, min_lr=1e-4, max_lr=100.0)
    >>> print(0.02 < res.suggestion < 2.0 < res.lrs[res.diverged_at])
    True
  """
  a = _check_arguments(
    loss_fn,
    params,
    batches,
    optimizer,
    min_lr,
    max_lr,
    num_steps,
    mode,
    smoothing,
    diverge_threshold,
    num_repeats,
    key,
    method,
    progress,
  )
  lrs, orders = _plan(a)
  losses, smoothed, flags = _run(a, loss_fn, params, lrs, orders)
  return _collect(np.asarray(lrs), np.asarray(losses), np.asarray(smoothed), np.asarray(flags), a.method)


# --------------------------------------------------------------------------------------------------
# The steps of ``lr_find``: check arguments, plan, run, collect.


class _Args(NamedTuple):
  batches: Any
  num_batches: int
  loss_dtype: Any
  optimizer: Callable
  min_lr: float
  max_lr: float
  num_steps: int
  mode: str
  smoothing: float
  diverge_threshold: float
  num_repeats: int
  key: Any
  method: str
  progress: bool


def _check_arguments(
  loss_fn,
  params,
  batches,
  optimizer,
  min_lr,
  max_lr,
  num_steps,
  mode,
  smoothing,
  diverge_threshold,
  num_repeats,
  key,
  method,
  progress,
) -> _Args:
  fn = "lr_find"
  named = {
    "params": params,
    "batches": batches,
    "min_lr": min_lr,
    "max_lr": max_lr,
    "num_steps": num_steps,
    "smoothing": smoothing,
    "diverge_threshold": diverge_threshold,
    "num_repeats": num_repeats,
    "key": key,
  }
  for name, v in named.items():
    if is_traced(v):
      raise ValueError(
        f"{fn}: must be called outside jax.jit/vmap (it runs its own compiled program and returns "
        f"Python floats), got a traced `{name}`."
      )
  if isinstance(jnp.zeros(()), jax.core.Tracer):  # inside a jit trace, even with concrete arguments
    raise ValueError(
      f"{fn}: must be called outside jax.jit (it runs its own compiled program and returns Python "
      "floats), got a call while tracing a jitted function."
    )
  min_lr = number(min_lr, fn=fn, name="min_lr")
  max_lr = number(max_lr, fn=fn, name="max_lr")
  num_steps = number(num_steps, fn=fn, name="num_steps", integer=True)
  num_repeats = number(num_repeats, fn=fn, name="num_repeats", integer=True)
  smoothing = number(smoothing, fn=fn, name="smoothing")
  check(min_lr > 0, fn=fn, must="`min_lr` must be > 0", min_lr=min_lr)
  check(max_lr > min_lr, fn=fn, must="`max_lr` must be > `min_lr`", min_lr=min_lr, max_lr=max_lr)
  check(num_steps >= 10, fn=fn, must="`num_steps` must be >= 10", num_steps=num_steps)
  check(
    num_steps < 2**31, fn=fn, must="`num_steps` must fit an int32 step counter (< 2**31)", num_steps=num_steps
  )
  check(num_repeats >= 1, fn=fn, must="`num_repeats` must be >= 1", num_repeats=num_repeats)
  check((smoothing >= 0) & (smoothing < 1), fn=fn, must="`smoothing` must be in [0, 1)", smoothing=smoothing)
  if diverge_threshold is None:
    diverge_threshold = float("inf")
  else:
    diverge_threshold = number(diverge_threshold, fn=fn, name="diverge_threshold")
    check(
      diverge_threshold > 1,
      fn=fn,
      must="`diverge_threshold` must be > 1",
      diverge_threshold=diverge_threshold,
    )
  mode = choice(mode, ("exponential", "linear"), fn=fn, name="mode")
  method = choice(method, SUGGESTION_METHODS, fn=fn, name="method")
  progress = flag(progress, fn=fn, name="progress")
  if optimizer is None:
    optimizer = _default_optimizer
  elif isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
    raise ValueError(
      f"{fn}: `optimizer` must be a function learning_rate -> GradientTransformation "
      f"(e.g. `lambda lr: optax.adam(lr)`), got optimizer={optimizer!r}."
    )
  if key is not None and not _is_key(key):
    raise ValueError(f"{fn}: `key` must be a PRNG key (jax.random.key(seed)) or None, got key={key!r}.")
  batches, n = _loop.prepare_batches(batches, fn)
  loss_dtype = _loop.check_scalar_loss(loss_fn, params, batches, fn)
  return _Args(
    batches,
    n,
    loss_dtype,
    optimizer,
    min_lr,
    max_lr,
    int(num_steps),
    mode,
    smoothing,
    diverge_threshold,
    int(num_repeats),
    key,
    method,
    progress,
  )


def _plan(a: _Args):
  """The ramp of rates and each repeat's batch order."""
  lrs = _ramp(a.min_lr, a.max_lr, num_steps=a.num_steps, mode=a.mode)
  return lrs, _orders(a.key, a.num_repeats, a.num_steps, a.num_batches)


def _run(a: _Args, loss_fn, params, lrs, orders):
  """Every repeat's ``(losses, smoothed, diverged flags)``, each ``[num_repeats, num_steps]``."""
  hyper = (lrs, a.smoothing, a.diverge_threshold)
  _, rows = _loop.run_chunked(
    a.num_steps,
    a.progress,
    "lr_find",
    whole=lambda: _find_all(
      params, a.batches, orders, *hyper, loss_fn=loss_fn, optimizer=a.optimizer, loss_dtype=a.loss_dtype
    ),
    init=lambda: _init_all(
      params, lrs, optimizer=a.optimizer, loss_dtype=a.loss_dtype, num_repeats=a.num_repeats
    ),
    steps=lambda carry, t0, length: _steps_all(
      carry,
      a.batches,
      orders,
      lrs,
      t0,
      a.smoothing,
      a.diverge_threshold,
      loss_fn=loss_fn,
      optimizer=a.optimizer,
      length=length,
    ),
  )
  return rows


def _collect(lrs, losses, smoothed, flags, method) -> LRFindResult:
  stops = tuple(int(np.argmax(f)) if f.any() else None for f in flags)
  hit = [s for s in stops if s is not None]
  stop = min(hit) if hit else None
  with np.errstate(invalid="ignore"):  # inf losses of a diverged step: NaN statistics, masked below
    mean_loss, mean_smooth = losses.mean(axis=0), smoothed.mean(axis=0)
    std = smoothed.std(axis=0)
  if stop is not None:  # the mean curve stops where the first repeat stopped
    for arr in (mean_loss, mean_smooth, std):
      arr[stop + 1 :] = np.nan
  skip = len(lrs) // 10
  suggestion = _suggest(lrs, mean_smooth, stop, method, skip, 5, fn="lr_find", stacklevel=4)
  return LRFindResult(lrs, mean_loss, mean_smooth, stop, suggestion, method, std, losses, smoothed, stops)
