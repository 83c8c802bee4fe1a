"""The LR range test (``lr_find``): one jit-compiled ``lax.scan`` over a ramp of learning rates.

The run is a single ``lax.scan`` (or, with ``progress=True``, the same scan cut into chunks between
progress-bar updates). Divergence is a flag carried through the scan: once it is raised the
parameters freeze and the remaining points are NaN, with no Python ``break``. Every run of the test
is a *lane*: repeats (different batch orders) and, in :func:`lr_find_grid`, the values of a second
hyperparameter are lanes ``vmap``ped in the same program, and with several devices the lanes are
sharded over them (``jax.shard_map``), as ``sweep`` shards its configurations. The suggestion rules
(:func:`minimum`, :func:`steepest`, :func:`valley`, :func:`steep`, :func:`slide`) are pure
functions of ``(lrs, smoothed_losses)`` that run on the host.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lr_jax import _loop
from lr_jax._sweep import _gathered, _place, _put
from lr_jax._validation import check, choice, flag, is_traced, number

__all__ = [
  "LRFindGrid",
  "LRFindResult",
  "lr_find",
  "lr_find_grid",
  "minimum",
  "slide",
  "steep",
  "steepest",
  "valley",
]

SUGGESTION_METHODS = ("minimum", "steepest", "valley", "steep", "slide")


# --------------------------------------------------------------------------------------------------
# Suggestion rules: pure functions of a finite, already-trimmed curve.


def steepest(lrs: np.ndarray, losses: np.ndarray) -> float:
  """The rate where the loss falls fastest against log(lr): ``argmin d loss / d log(lr)``, central.

  torch-lr-finder and Lightning's rule, with the derivative taken against ``log(lr)`` (Lightning
  2.5.3 takes it against linear lr, which its issue #21141 reports as a regression; torch-lr-finder
  spaces by index, which is the same thing on an exponential ramp). Uses ``np.gradient`` (central
  differences, one-sided at the ends). fastai's :func:`steep` takes forward differences instead
  and returns the left point of the steepest segment.

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


def steep(lrs: np.ndarray, losses: np.ndarray) -> float:
  """fastai's ``steep`` rule: the left end of the steepest forward difference against log(lr).

  ``g[i] = (loss[i+1] - loss[i]) / (log lr[i+1] - log lr[i])`` for i < n-1, and the rate is
  ``lrs[argmin g]`` (fastai ``SuggestionMethod.Steep``). Where :func:`steepest` (central
  differences) would pick the middle point of the two steepest segments, this picks the start.

  Args:
    lrs: increasing rates, at least 2.
    losses: the (smoothed) losses at ``lrs``, all finite.

  Returns:
    The suggested rate (a point of ``lrs``).

  References:
    fastai ``callback/schedule.py``, ``steep`` (fastai 2.7).

  Examples:
    >>> lrs = np.logspace(-3, 0, 7)
    >>> print(f"{steep(lrs, np.array([5., 5., 4.8, 3., 1., 0.8, 0.9])):.3f}")  # 3 -> 1 is the steepest step
    0.032
  """
  lrs, losses = np.asarray(lrs, np.float64), np.asarray(losses, np.float64)
  g = np.diff(losses) / np.diff(np.log(lrs))
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
  """fastai's valley rule (fastai's default): a third and a sixth of the way down the longest descent.

  Finds the longest strictly decreasing subsequence of ``losses`` (O(n^2), as fastai's
  ``SuggestionMethod.Valley``), of length L ending at index ``end``, and returns the rate at index
  ``start + int(L / 3) + int(L / 6)`` with fastai's ``start = end - L`` (one before the run's first
  index) and ``L / 3`` written as ``(end - start) / 3``. One difference: fastai's index is -1 when
  the longest descent is 2 points long and starts at index 0 (``start = -1``, ``int(2/3) = 0``), and
  ``lrs[-1]`` is then the *largest* rate; here the index is clamped to 0.

  Args:
    lrs: increasing rates.
    losses: the (smoothed) losses at ``lrs``, all finite.

  Returns:
    The suggested rate (a point of ``lrs``).

  References:
    fastai ``callback/schedule.py``, ``valley`` (fastai 2.7; the rule is ESRI's).

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


def slide(
  lrs: np.ndarray, losses: np.ndarray, lr_diff: int = 15, thresh: float = 0.005, adjust_value: float = 1.0
) -> float:
  """fastai's interval-slide rule: slide a window left until the slope stops changing.

  With ``g = np.gradient(losses)`` (per index), a window of ``lr_diff`` points starts at the right
  end (right index r = n-1, left l = r - lr_diff) and moves left one point at a time while
  ``|g[r] - g[l]| > thresh``; the answer is ``lrs[l] * adjust_value`` for the last window that was
  still moving (``lrs[n-1-lr_diff]`` if the first window already satisfies the test). ``thresh`` is
  absolute, in loss units per step, so the rule depends on the scale of the loss, as fastai's does.

  Args:
    lrs: increasing rates; more than ``lr_diff`` of them (fastai raises ``IndexError`` otherwise;
      here the rule has no answer and gives NaN).
    losses: the (smoothed) losses at ``lrs``, all finite.
    lr_diff: width of the window in points.
    thresh: largest change of the slope across the window that stops the slide.
    adjust_value: factor applied to the rate found.

  Returns:
    The suggested rate, or NaN when there are ``lr_diff`` points or fewer.

  References:
    fastai ``callback/schedule.py``, ``slide`` (fastai 2.7; the rule is Andrew Chang's).

  Examples:
    >>> lrs = np.logspace(-4, 0, 40)
    >>> losses = np.concatenate([np.full(20, 2.0), 2.0 - 0.1 * np.arange(1, 21)])  # flat, then falling
    >>> print(f"{slide(lrs, losses):.2e}")  # the first window (points 24..39) is already straight
    2.89e-02
  """
  losses = np.asarray(losses, np.float64)
  n = len(losses)
  if n <= lr_diff:
    return float("nan")
  g = np.gradient(losses)
  r, left = n - 1, n - 1 - lr_diff
  rate = lrs[left]
  while left >= 0 and abs(g[r] - g[left]) > thresh:
    rate = lrs[left]
    r, left = r - 1, left - 1
  return float(rate) * adjust_value


_RULES = {"steepest": steepest, "minimum": minimum, "valley": valley, "steep": steep, "slide": slide}


# A kept curve whose range is at most this fraction of its size is flat: the float32 rounding of the
# bias-corrected EMA of a constant loss is a few 1e-7 of it, a real curve changes by orders more.
_FLAT_RTOL = 1e-5


def _suggest_one(lrs, smoothed, stop, method, skip_start, skip_end, name="lr") -> tuple[float, str | None]:
  """One curve's suggestion and, when it is NaN, why (fastai's order: trim, then cut at a NaN).

  The curve up to ``stop`` (inclusive: what fastai's recorder holds when the run stops) is trimmed
  like fastai's ``lr_find`` (``[skip_start : len - skip_end]``, fastai's ``[num_it//10 : -5]``),
  then cut before its first non-finite point (fastai cuts at the first NaN; an inf is cut here too).
  """
  lo, hi = float(lrs[0]), float(lrs[-1])
  end = len(lrs) if stop is None else stop + 1
  lrs_c, sm_c = np.asarray(lrs[:end], np.float64), np.asarray(smoothed[:end], np.float64)
  kept = slice(skip_start, max(end - skip_end, 0))
  lrs_k, sm_k = lrs_c[kept], sm_c[kept]
  finite = np.isfinite(sm_k)
  if not finite.all():
    cut = int(np.argmin(finite))
    lrs_k, sm_k = lrs_k[:cut], sm_k[:cut]
  if len(lrs_k) < 2:
    if stop is None:
      where = f"the curve has {end} points"
    else:
      why = (
        "a non-finite loss (NaN/inf)"
        if not np.isfinite(sm_c[-1])
        else "the smoothed loss passing the threshold"
      )
      where = f"the run stopped at step {stop} ({name}={float(lrs_c[-1]):.3g}) on {why}"
    return float("nan"), (
      f"{where}, leaving {end} points up to it and {len(lrs_k)} finite ones after dropping the first "
      f"{skip_start} and last {skip_end}; a rule needs 2. A loss that diverges this early usually means "
      f"bad data (NaN/inf in a batch) or a loss that is not finite at the initial parameters; otherwise "
      f"lower min_lr."
    )
  span, size = float(np.ptp(sm_k)), float(np.max(np.abs(sm_k)))
  if span <= _FLAT_RTOL * size:  # every rule would pick the rounding noise of the EMA: no answer
    return float("nan"), (
      f"the smoothed loss is flat over the {len(lrs_k)} points kept ({name}={float(lrs_k[0]):.3g}.."
      f"{float(lrs_k[-1]):.3g}: it varies by {span:.3g} around {float(np.mean(sm_k)):.6g}), so the "
      f"{method!r} rule would pick rounding noise; raise max_lr, or check that the loss depends on the "
      "params (a zero gradient, frozen params)"
    )
  rate = _RULES[method](lrs_k, sm_k)
  if not np.isfinite(rate):
    return float("nan"), (
      f"the {method!r} rule has no answer on {len(lrs_k)} points (it needs more than 15: raise num_steps)"
    )
  if not lo * (1 - 1e-12) <= rate <= hi * (1 + 1e-12):
    return float("nan"), (
      f"the {method!r} rule gives {rate:.3g}, outside the tested range [min_lr, max_lr] = "
      f"[{lo:.3g}, {hi:.3g}] (the smoothed loss is lowest at {name}="
      f"{float(lrs_k[int(np.argmin(sm_k))]):.3g}); lower min_lr."
    )
  return float(min(max(rate, lo), hi)), None


def _still_falling(lrs, smoothed, stop, rate, skip_start, skip_end, name="lr") -> str | None:
  """Why the ``"minimum"`` rule's ``rate`` says nothing, or None: the run did not diverge, the smoothed
  loss is lowest at the last point kept and never above that in the ``skip_end`` points dropped after
  it, so the loss was still falling at ``max_lr`` and the rule's rate is set by ``max_lr``."""
  if stop is not None or not np.isfinite(rate):
    return None
  end = len(lrs) - skip_end
  sm = np.asarray(smoothed[skip_start:], np.float64)
  last = end - skip_start - 1  # the last kept point, in sm
  if last < 1 or not np.isfinite(sm).all() or int(np.argmin(sm[: last + 1])) != last:
    return None
  if sm[last + 1 :].size and sm[last + 1 :].max() > sm[last]:  # it turned up before max_lr
    return None
  return (
    f"the loss was still falling at max_lr: the run did not diverge and the smoothed loss is lowest at "
    f"the last point kept ({name}={float(lrs[skip_start + last]):.3g}; the last {skip_end}, dropped, are no "
    f"higher), so the 'minimum' rule's {rate:.3g} is set by max_lr={float(lrs[-1]):.3g}, not by the loss; "
    "raise max_lr."
  )


class _Stats(NamedTuple):
  suggestion: float
  per_repeat: np.ndarray
  band: tuple[float, float]
  why: str | None  # a warning to give, or None
  hint: str | None = None  # a warning about a finite suggestion, or None


def _suggest_all(
  lrs, mean_smoothed, stop, smoothed_rows, stops, method, skip_start, skip_end, name
) -> _Stats:
  """The suggestion: one run's rule, or with repeats the median of each repeat's (quartiles as a band);
  with ``"minimum"``, a hint when the (mean) curve was still falling at ``max_lr``."""
  stats = _suggest_rule(lrs, mean_smoothed, stop, smoothed_rows, stops, method, skip_start, skip_end, name)
  if method == "minimum":
    hint = _still_falling(lrs, mean_smoothed, stop, stats.suggestion, skip_start, skip_end, name)
    stats = stats._replace(hint=hint)
  return stats


def _suggest_rule(
  lrs, mean_smoothed, stop, smoothed_rows, stops, method, skip_start, skip_end, name
) -> _Stats:
  if len(stops) == 1:
    s, why = _suggest_one(lrs, mean_smoothed, stop, method, skip_start, skip_end, name)
    return _Stats(s, np.array([s]), (s, s), why)
  per, whys = [], []
  for row, st in zip(smoothed_rows, stops):
    s, why = _suggest_one(lrs, row, st, method, skip_start, skip_end, name)
    per.append(s)
    whys.append(why)
  per = np.array(per)
  ok = per[np.isfinite(per)]
  if len(ok) == 0:
    return _Stats(float("nan"), per, (float("nan"),) * 2, f"no repeat gave one; repeat 0: {whys[0]}")
  q25, med, q75 = (float(v) for v in np.percentile(ok, [25, 50, 75]))
  why = None
  if len(ok) < len(per):
    first = next(w for w in whys if w is not None)
    why = (
      f"{len(per) - len(ok)} of {len(per)} repeats gave no suggestion (the median is over the other "
      f"{len(ok)}); the first: {first}"
    )
  return _Stats(med, per, (q25, q75), why)


def _warn(fn: str, stats: _Stats, stacklevel: int):
  if stats.why is not None:
    what = "no suggestion (NaN)" if np.isnan(stats.suggestion) else "suggestion from some repeats only"
    warnings.warn(f"{fn}: {what}: {stats.why}", RuntimeWarning, stacklevel=stacklevel + 1)
  if stats.hint is not None:
    warnings.warn(f"{fn}: {stats.hint}", RuntimeWarning, stacklevel=stacklevel + 1)


# --------------------------------------------------------------------------------------------------
# Results.


class LRFindResult(NamedTuple):
  """Result of :func:`lr_find`. With ``num_repeats > 1`` the curves are the mean over repeats.

  Fields:
    lrs: ``[num_steps]`` the ramp; update t used ``lrs[t]`` (the ramped hyperparameter, ``name``).
    losses: ``[num_steps]`` the curve's raw loss at step t: the training loss of batch t on the
      parameters before update t, or with ``val_batches`` the mean validation loss on the parameters
      after update t; NaN after the run stopped.
    smoothed_losses: ``[num_steps]`` bias-corrected EMA of ``losses``; NaN after the run stopped.
    diverged_at: index of the step where divergence was detected (the run stopped there), or None.
    suggestion: the suggested rate, by ``method``: one run's rule, or with ``num_repeats > 1`` the
      median of the repeats' suggestions (each from its own curve). Always in ``[min_lr, max_lr]``,
      or NaN (with a ``RuntimeWarning`` saying why).
    method: the rule behind ``suggestion``.
    losses_std: ``[num_steps]`` standard deviation of the smoothed losses over repeats (0 for one run).
    repeat_losses: ``[num_repeats, num_steps]`` raw losses of each repeat.
    repeat_smoothed_losses: ``[num_repeats, num_steps]`` smoothed losses of each repeat.
    repeat_diverged_at: ``diverged_at`` of each repeat (a tuple).
    suggestion_per_repeat: ``[num_repeats]`` each repeat's suggestion by ``method`` (NaN where a
      repeat has none).
    suggestion_band: ``(q25, q75)``, the quartiles of the finite per-repeat suggestions (both equal
      to ``suggestion`` for one run): how far the batch order moves the answer.
    train_losses: ``[num_steps]`` mean training loss at each step (equal to ``losses`` without
      ``val_batches``).
    curve: ``"training loss"`` or ``"validation loss"``: what ``losses`` are.
    name: the hyperparameter the ramp varies (``"lr"``, or the ``name=`` given to :func:`lr_find`).
    fixed: the other hyperparameters held fixed for this curve (one row of :func:`lr_find_grid`),
      ``{}`` otherwise.
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
  suggestion_per_repeat: np.ndarray = np.zeros(0)
  suggestion_band: tuple = (float("nan"), float("nan"))
  train_losses: np.ndarray | None = None
  curve: str = "training loss"
  name: str = "lr"
  fixed: Mapping[str, float] = {}

  def __repr__(self) -> str:
    repeats = len(self.repeat_diverged_at)
    lo, hi = float(self.lrs[0]), float(self.lrs[-1])
    what = "" if self.name == "lr" else f" of {self.name}"
    fixed = "".join(f", {k}={v:.3g}" for k, v in self.fixed.items())
    curve = "" if self.curve == "training loss" else f", {self.curve}"
    sugg = f"suggestion={self.suggestion:.3g} ({self.method})"
    if repeats > 1:
      q25, q75 = self.suggestion_band
      sugg = (
        f"suggestion={self.suggestion:.3g} (median of {repeats} by {self.method}, quartiles "
        f"{q25:.3g}..{q75:.3g})"
      )
    return (
      f"LRFindResult({len(self.lrs)} steps{what} from {lo:.3g} to {hi:.3g}{fixed}{curve}, {repeats} repeat"
      f"{'s' if repeats != 1 else ''}, diverged_at={self.diverged_at}, {sugg})"
    )

  def _stats(self, method, skip_start, skip_end, fn) -> _Stats:
    method = self.method if method is None else method
    choice(method, SUGGESTION_METHODS, fn=fn, name="method")
    skip_start = len(self.lrs) // 10 if skip_start is None else skip_start
    skip_start = int(number(skip_start, fn=fn, name="skip_start", integer=True))
    skip_end = int(number(skip_end, fn=fn, name="skip_end", integer=True))
    check(skip_start >= 0, fn=fn, must="`skip_start` must be >= 0", skip_start=skip_start)
    check(skip_end >= 0, fn=fn, must="`skip_end` must be >= 0", skip_end=skip_end)
    return _suggest_all(
      self.lrs,
      self.smoothed_losses,
      self.diverged_at,
      self.repeat_smoothed_losses,
      self.repeat_diverged_at,
      method,
      skip_start,
      skip_end,
      self.name,
    )

  def suggest(self, method: str | None = None, *, skip_start: int | None = None, skip_end: int = 5) -> float:
    """The rate suggested by ``method``: for one run, the rule on its smoothed curve; with repeats,
    the median of the repeats' suggestions.

    Each curve is cut at its divergence point and trimmed as fastai does: the first ``skip_start``
    (default ``num_steps // 10``) and the last ``skip_end`` points are dropped, then the curve is
    cut before its first non-finite point.

    Args:
      method: ``"minimum"`` (rate at the minimum / 10), ``"steepest"`` (steepest descent against
        log lr, central differences), ``"valley"`` (fastai's default rule), ``"steep"`` (fastai's
        steepest forward difference) or ``"slide"`` (fastai's interval slide); default ``self.method``.
      skip_start: points dropped at the start.
      skip_end: points dropped before the end of the valid curve.

    Returns:
      The suggested rate, a float in ``[min_lr, max_lr]``; NaN, with a ``RuntimeWarning`` saying why,
      when fewer than 2 points are left before the divergence after trimming, when the smoothed loss
      is flat over them (varies by at most 1e-5 of its size: every rule would pick rounding noise),
      or when the rule points outside the ramp (``"minimum"`` with the lowest loss within 10x of
      ``min_lr``). With
      repeats, a repeat without a suggestion is left out of the median (with a warning). With
      ``"minimum"``, a ``RuntimeWarning`` also says when the loss was still falling at ``max_lr`` (no
      divergence, the smoothed loss lowest at the last point kept): the rate is then set by ``max_lr``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from lr_jax import lr_find
      >>> res = lr_find(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...               optimizer=lambda lr: optax.sgd(lr), min_lr=1e-4, max_lr=10.0)
      >>> print(res.suggest("steepest") < 1.0, res.suggest("minimum") < 1.0)  # SGD diverges above 1
      True True
    """
    stats = self._stats(method, skip_start, skip_end, "LRFindResult.suggest")
    _warn("LRFindResult.suggest", stats, 2)
    return stats.suggestion

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
        _suggest_one(self.lrs, s, d, method, skip, 5, self.name)[0]
        for s, d in zip(self.repeat_smoothed_losses, self.repeat_diverged_at)
      ]
    )

  def _peak(self, fn: str) -> float:
    if self.name != "lr":
      raise ValueError(f"{fn}: needs a learning-rate range test, got a ramp of name={self.name!r}.")
    if not np.isfinite(self.suggestion):
      raise ValueError(
        f"{fn}: needs a finite suggestion, got suggestion={self.suggestion} (see the RuntimeWarning of "
        "lr_find; pick a rate from result.suggest(method) or the plot)."
      )
    return float(self.suggestion)

  def one_cycle(self, total_steps: int, **kwargs):
    """The 1cycle schedule that peaks at the suggestion: ``schedules.one_cycle(suggestion, total_steps)``.

    The hand-off fastai makes with ``learn.fit_one_cycle(n, lr_max=suggestion)``. The defaults are
    PyTorch's ``OneCycleLR`` (``pct_start=0.3``, ``div_factor=25``, ``final_div_factor=1e4``);
    fastai's ``fit_one_cycle`` uses ``pct_start=0.25`` and ends at ``lr_max / 1e5``, that is
    ``final_div_factor=4e3`` here. Any keyword of :func:`lr_jax.schedules.one_cycle` passes through.

    Args:
      total_steps: length of the training run in optimizer steps.
      **kwargs: ``pct_start``, ``anneal``, ``div_factor``, ``final_div_factor``, ``three_phase``,
        ``pct_final``. Not ``peak_value``: the peak is the suggestion (for another peak call
        ``schedules.one_cycle(peak_value, total_steps, ...)``).

    Returns:
      A ``OneCycle`` schedule (give it to any optimizer as ``learning_rate``).

    Raises:
      ValueError: the suggestion is NaN, the test ramped another hyperparameter than the rate, or a
        keyword that :func:`lr_jax.schedules.one_cycle` does not take or that is set here (``peak_value``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from lr_jax import lr_find
      >>> res = lr_find(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)), min_lr=1e-4)
      >>> sched = res.one_cycle(1000)
      >>> print(bool(jnp.isclose(sched(300), res.suggestion)), bool(jnp.isclose(sched(0), res.suggestion / 25)))
      True True
    """
    from lr_jax import schedules

    fn = "LRFindResult.one_cycle"
    if "peak_value" in kwargs:  # passed on, it would be a TypeError "got multiple values"
      raise ValueError(
        f"{fn}: `peak_value` is the suggestion and cannot be passed, got peak_value={kwargs['peak_value']!r} "
        "(for another peak call schedules.one_cycle(peak_value, total_steps, ...))."
      )
    own = ("peak_value", "total_steps")
    allowed = [k for k in inspect.signature(schedules.one_cycle).parameters if k not in own]
    unknown = sorted(k for k in kwargs if k not in allowed)
    if unknown:
      raise ValueError(
        f"{fn}: unknown keyword {unknown[0]!r} (schedules.one_cycle takes {', '.join(allowed)}), "
        f"got {unknown[0]}={kwargs[unknown[0]]!r}."
      )
    return schedules.one_cycle(self._peak(fn), total_steps, **kwargs)

  def warmup_cosine(
    self, total_steps: int, warmup_steps: int | None = None, init_value: float = 0.0, end_value: float = 0.0
  ):
    """Linear warm-up to the suggestion, then cosine annealing: the other schedule people start from.

    ``schedules.warmup(schedules.cosine_annealing(suggestion, total_steps - W, end_value), W,
    init_value)``, W = ``warmup_steps`` (default ``total_steps // 20``, 5%): ``init_value`` at step
    0, the suggestion at step W, ``end_value`` at step ``total_steps``.

    Args:
      total_steps: length of the training run in optimizer steps; must be > ``warmup_steps``.
      warmup_steps: length of the warm-up.
      init_value: rate at step 0.
      end_value: rate at ``total_steps`` and after.

    Returns:
      A ``Warmup`` schedule.

    Raises:
      ValueError: the suggestion is NaN, the ramp was not the rate, or ``warmup_steps`` is not in
        ``[0, total_steps)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from lr_jax import lr_find
      >>> res = lr_find(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)), min_lr=1e-4)
      >>> sched = res.warmup_cosine(1000)  # 50 warm-up steps
      >>> print(float(sched(0)), bool(jnp.isclose(sched(50), res.suggestion)), float(sched(1000)))
      0.0 True 0.0
    """
    from lr_jax import schedules

    fn = "LRFindResult.warmup_cosine"
    peak = self._peak(fn)
    total_steps = int(number(total_steps, fn=fn, name="total_steps", integer=True))
    warmup_steps = total_steps // 20 if warmup_steps is None else warmup_steps
    warmup_steps = int(number(warmup_steps, fn=fn, name="warmup_steps", integer=True))
    check(
      0 <= warmup_steps < total_steps,
      fn=fn,
      must="`warmup_steps` must be in [0, total_steps)",
      warmup_steps=warmup_steps,
      total_steps=total_steps,
    )
    cosine = schedules.cosine_annealing(peak, total_steps - warmup_steps, end_value)
    return schedules.warmup(cosine, warmup_steps, init_value)

  def plot(self, ax=None):
    """Plots the curve (and the repeats' spread), marking the suggestion and its band; returns the Axes.

    See :func:`lr_jax.plot.lr_find`.
    """
    from lr_jax import plot

    return plot.lr_find(self, ax=ax)


class LRFindGrid(NamedTuple):
  """Result of :func:`lr_find_grid`: one range test (an :class:`LRFindResult`) per value of ``name``.

  Fields:
    name: the hyperparameter held fixed along each ramp (e.g. ``"weight_decay"``).
    values: ``[G]`` its values, one row each.
    rows: ``G`` :class:`LRFindResult`, row g run with ``name = values[g]``.

  ``lrs`` (the ramp), ``smoothed_losses`` (``[G, num_steps]``) and ``suggestions`` (``[G]``) are
  views across rows; :meth:`best` picks the row with the lowest smoothed loss; :meth:`plot` draws
  the smoothed loss as a heat map over (rate, value).
  """

  name: str
  values: np.ndarray
  rows: tuple

  @property
  def lrs(self) -> np.ndarray:
    return self.rows[0].lrs

  @property
  def smoothed_losses(self) -> np.ndarray:
    return np.stack([r.smoothed_losses for r in self.rows])

  @property
  def suggestions(self) -> np.ndarray:
    return np.array([r.suggestion for r in self.rows])

  def best(self) -> dict:
    """The row whose smoothed loss reaches the lowest value: ``{name: value, "suggestion": ...,
    "min_loss": ...}`` (the rule of Smith 2018: the weight decay whose range test goes lowest).

    Raises ``ValueError`` when no row has a finite smoothed loss."""
    finite = [np.asarray(r.smoothed_losses, np.float64) for r in self.rows]
    finite = [s[np.isfinite(s)] for s in finite]  # -inf is a divergence, not the lowest loss
    mins = np.array([s.min() if s.size else np.inf for s in finite])
    if not np.isfinite(mins).any():
      raise ValueError(
        f"LRFindGrid.best: no row has a finite smoothed loss (every range test over {self.name} "
        "diverged at once or saw only NaN); lower max_lr or check the loss."
      )
    g = int(np.argmin(mins))
    return {
      self.name: float(self.values[g]),
      "suggestion": float(self.rows[g].suggestion),
      "min_loss": float(mins[g]),
    }

  def __repr__(self) -> str:
    r0 = self.rows[0]
    cells = ", ".join(f"{v:.3g}: {r.suggestion:.3g}" for v, r in zip(self.values, self.rows))
    return (
      f"LRFindGrid({len(self.values)} values of {self.name} x {len(r0.lrs)} steps of {r0.name} from "
      f"{float(r0.lrs[0]):.3g} to {float(r0.lrs[-1]):.3g}; suggestions ({r0.method}) {{{cells}}})"
    )

  def plot(self, ax=None):
    """Heat map of the smoothed loss over (rate, ``name``), each row's suggestion marked; the Axes.

    See :func:`lr_jax.plot.lr_find_grid`.
    """
    from lr_jax import plot

    return plot.lr_find_grid(self, ax=ax)


# --------------------------------------------------------------------------------------------------
# The compiled run. A lane is one run of the test: (value of the grid hyperparameter, batch order).


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


def _is_plus_inf(value) -> bool:
  """``value`` is a real (non-bool) scalar equal to +inf: ``float("inf")``, ``np.inf``, a 0-d array."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(
    value, (float, np.floating, np.ndarray, jax.Array)
  ):
    return False
  return np.ndim(value) == 0 and jnp.issubdtype(np.result_type(value), jnp.floating) and np.isposinf(value)


def _is_key(key) -> bool:
  """A typed key (``jax.random.key``) or a legacy raw ``uint32[2]`` key (``jax.random.PRNGKey``)."""
  if not isinstance(key, jax.Array):
    return False
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key.shape == ()
  return key.dtype == jnp.uint32 and key.shape == (2,)


def _orders(key, num_repeats: int, num_steps: int, n: int) -> np.ndarray:
  """``[num_repeats, num_steps]`` batch indices: a fresh permutation of the n batches per pass."""
  if key is None and num_repeats == 1:
    return (np.arange(num_steps, dtype=np.int32) % n)[None, :]
  key = jax.random.key(0) if key is None else key
  return np.asarray(_shuffled_orders(key, num_repeats=num_repeats, num_steps=num_steps, n=n))


@functools.partial(jax.jit, static_argnames=("num_repeats", "num_steps", "n"))
def _shuffled_orders(key, *, num_repeats, num_steps, n):
  passes = -(-num_steps // n)
  # argsort of uniforms: a uniformly random permutation per pass (ties have probability ~0), and
  # one sort compiles in milliseconds where jax.random.permutation's shuffle takes seconds on CPU.
  u = jax.random.uniform(key, (num_repeats, passes, n))
  return jnp.argsort(u, axis=-1).reshape(num_repeats, passes * n)[:, :num_steps]


@dataclasses.dataclass(frozen=True)
class _Static:
  """What the compiled program depends on besides array shapes (hashable: a jit static argument)."""

  loss_fn: Callable
  optimizer: Callable
  loss_dtype: Any
  grid_name: str | None  # the optimizer's keyword set per lane (lr_find_grid), or None
  mesh: Mesh | None  # lanes sharded over this mesh, or None


def _tx(st: _Static, lr, h) -> optax.GradientTransformation:
  return st.optimizer(lr) if st.grid_name is None else st.optimizer(lr, **{st.grid_name: h})


def _lane_init(params, lr0, h, st: _Static):
  dt = st.loss_dtype
  state = _tx(st, lr0, h).init(params)
  return (params, state, jnp.zeros((), dt), jnp.full((), jnp.inf, dt), jnp.array(True))


def _lane_steps(carry, order, h, batches, val_batches, lrs, t0, smoothing, threshold, st: _Static, length):
  """``length`` steps from ``t0`` of one lane; the carry and (curve, smoothed, diverged, train) rows."""
  ts = t0 + jnp.arange(length)
  idx = lax.dynamic_slice_in_dim(order, t0, length)
  lr_row = lax.dynamic_slice_in_dim(lrs, t0, length)

  def body(c, x):
    params, state, avg, best, alive = c
    t, i, lr = x
    loss, new_params, new_state = _loop.train_step(
      st.loss_fn, _tx(st, lr, h), params, state, _loop.take(batches, i)
    )
    curve = loss if val_batches is None else _loop.mean_loss(st.loss_fn, new_params, val_batches)
    beta = jnp.asarray(smoothing, curve.dtype)
    new_avg = beta * avg + (1 - beta) * curve
    smooth = new_avg / (1 - beta ** (t + 1).astype(curve.dtype))
    new_best = jnp.minimum(best, smooth)
    diverged = (
      ~jnp.isfinite(loss)
      | ~jnp.isfinite(curve)
      | ~jnp.isfinite(smooth)
      | (smooth > jnp.asarray(threshold, curve.dtype) * new_best)
    )
    keep = alive & ~diverged  # still running after this step: commit the update
    sel = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, old)
    nan = jnp.asarray(jnp.nan, curve.dtype)
    out = (
      jnp.where(alive, curve, nan),
      jnp.where(alive, smooth, nan),
      alive & diverged,
      jnp.where(alive, loss.astype(curve.dtype), nan),
    )
    return (sel(new_params, params), sel(new_state, state), new_avg, new_best, keep), out

  return lax.scan(body, carry, (ts, idx, lr_row))


def _on_mesh(fn, mesh: Mesh | None, n_lane_args: int, n_shared_args: int):
  """``fn(*lane_args, *shared_args)`` with the lane axis sharded over ``mesh`` (``jax.shard_map``)."""
  if mesh is None:
    return fn
  lanes = P(tuple(mesh.axis_names))
  in_specs = (lanes,) * n_lane_args + (P(),) * n_shared_args
  return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=lanes, check_vma=False)


@functools.partial(jax.jit, static_argnames=("st",))
def _find_all(orders, hs, params, batches, val_batches, lrs, smoothing, threshold, *, st: _Static):
  """The whole test in one program: every lane's init and scan, vmapped (and sharded) over lanes."""
  num_steps = orders.shape[1]

  def local(orders, hs, params, batches, val_batches, lrs, smoothing, threshold):
    def lane(order, h):
      carry = _lane_init(params, lrs[0], h, st)
      run = _lane_steps(carry, order, h, batches, val_batches, lrs, 0, smoothing, threshold, st, num_steps)
      return run[1]

    return jax.vmap(lane)(orders, hs)

  return _on_mesh(local, st.mesh, 2, 6)(orders, hs, params, batches, val_batches, lrs, smoothing, threshold)


@functools.partial(jax.jit, static_argnames=("st",))
def _init_all(hs, params, lrs, *, st: _Static):
  def local(hs, params, lrs):
    return jax.vmap(lambda h: _lane_init(params, lrs[0], h, st))(hs)

  return _on_mesh(local, st.mesh, 1, 2)(hs, params, lrs)


@functools.partial(jax.jit, static_argnames=("st", "length"))
def _steps_all(
  carry, orders, hs, batches, val_batches, lrs, t0, smoothing, threshold, *, st: _Static, length
):
  def local(carry, orders, hs, batches, val_batches, lrs, t0, smoothing, threshold):
    def lane(c, order, h):
      return _lane_steps(c, order, h, batches, val_batches, lrs, t0, smoothing, threshold, st, length)

    return jax.vmap(lane)(carry, orders, hs)

  return _on_mesh(local, st.mesh, 3, 6)(
    carry, orders, hs, batches, val_batches, lrs, t0, smoothing, threshold
  )


# --------------------------------------------------------------------------------------------------
# Public entry points.


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
  val_batches: Any = None,
  name: str = "lr",
  mesh: Mesh | None = None,
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
  ``diverge_threshold`` reuses the compiled program.

  **Repeats.** ``num_repeats > 1`` trains that many runs from the same ``params`` with different
  batch orders (one permutation of the batches per pass, drawn from ``key``), vmapped in one
  program and, with several devices, sharded over them (``mesh``). Each repeat gets its own
  suggestion; ``suggestion`` is their median and ``suggestion_band`` their quartiles, so one noisy
  batch order cannot move the answer. The curves are the repeats' mean (the EMA is linear, so the
  mean of the smoothed curves is the smoothed mean), cut at the earliest divergence, and
  ``losses_std`` gives their spread.

  **Across processes.** Under ``jax.distributed`` (``jax.distributed.initialize(...)`` first, then
  the same call with the same arguments and data on every process), the repeats (and
  :func:`lr_find_grid`'s rows) are sharded over every process's devices and the result comes back
  whole on every process; it equals the one-process result (tested with two CPU processes: bit for
  bit, each lane being the same float32 program). A single run (``num_repeats=1``, no grid) is not
  split: every process runs it.

  **Validation mode.** With ``val_batches`` (held-out batches, stacked or a list), the curve is the
  mean loss over all of them on the parameters after each update (torch-lr-finder's
  ``val_loader``): smoothing, the stop rule and the suggestion use it; ``train_losses`` keeps the
  training losses. Each step then costs one pass over ``val_batches``.

  **Other hyperparameters.** ``optimizer`` receives the ramped value, whatever it is: ramp the weight
  decay with ``optimizer=lambda wd: optimizers.adamw(1e-3, weight_decay=wd), name="weight_decay"``
  (``min_lr``/``max_lr`` are then the ramp's ends, ``mode="linear"`` for a range such as momentum
  0.8..0.99); ``name`` labels the result. :func:`lr_find_grid` runs one ramp per value of a second
  hyperparameter (LR x weight decay) in the same program.

  **Rules.** The suggestion rules and their trimming (``[N//10 : -5]`` of the curve up to the
  divergence point, then cut at a NaN) follow fastai, whose four rules are here with fastai's
  semantics (``"valley"``, ``"slide"``, ``"minimum"``, ``"steep"``; tested against fastai's code)
  next to ``"steepest"``, torch-lr-finder's and Lightning's rule, taken against log(lr). The default
  ``method`` is ``"minimum"`` (fastai's ``SuggestionMethod.Minimum``), not fastai's default
  ``"valley"``: it is the one rule that passed both of our checks: on noise-free least squares it
  lands within 100x below 2/lambda_max (``"valley"`` lands about 400x below: a noise-free curve
  creeps down from the first step, so the longest decreasing run is most of the ramp); on minibatch
  curves single runs of ``"steepest"`` pick the noise of the first smoothed points (suggestions
  1e-6..1e-5, spread over 1-2 decades). ``result.suggest(m)`` gives every rule without rerunning.

  Compared with the other finders (defaults in parentheses): like fastai's ``Learner.lr_find``
  (``start_lr=1e-7, end_lr=10, num_it=100``, debiased EMA with 0.98, stop when ``smooth > 4 best``)
  and Lightning's ``Tuner.lr_find`` (``mode="exponential"``, ``early_stop_threshold=4.0``), with the
  grid of torch-lr-finder's ``range_test`` (``step_mode="exp"``; it hits both ``start_lr`` and
  ``end_lr``, fastai's never reaches ``end_lr`` and Lightning skips a grid point). torch-lr-finder
  smooths with a non-debiased EMA (``smooth_f=0.05``) and stops at ``diverge_th=5`` times the best;
  pass ``smoothing=0.95, diverge_threshold=5.0`` for similar settings.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar`` (differentiable in ``params``).
    params: initial parameters (a pytree); they are not modified.
    batches: a pytree of arrays whose leading axis indexes batches, cycled if shorter than
      ``num_steps``, or a Python list of batches of equal shapes (what a data loader gives), stacked
      here. A batch with a scalar leaf (``(X, y)`` of shapes ``[n, d]``, ``[n]`` passed as is: one
      example per batch) gets a warning; pass one full batch as ``(X[None], y[None])``.
    optimizer: a function ``value -> optax.GradientTransformation`` of the ramped value (called
      with a traced scalar at each step, as ``optax.inject_hyperparams`` does); default SGD with
      momentum 0.9 (``lr_jax.optimizers.sgd(lr, momentum=0.9)``, PyTorch's ``SGD``). Its state must
      not depend on the value. It is a static argument of the compiled program, compared by its
      code and captured values as in :func:`lr_jax.sweep` (so is ``loss_fn``): a fresh ``lambda``
      of the same code reuses the program; one capturing a new array compiles again.
    min_lr: first value of the ramp; must be > 0.
    max_lr: last value; must be > ``min_lr``.
    num_steps: number of steps (grid points); must be >= 10.
    mode: ``"exponential"`` or ``"linear"`` spacing.
    smoothing: EMA coefficient beta, in [0, 1) (0 = no smoothing).
    diverge_threshold: stop when the smoothed loss exceeds this times its minimum; must be > 1, or
      None or ``float("inf")`` (the same: no threshold) to stop only at non-finite losses. Assumes
      positive losses.
    num_repeats: runs with different batch orders, vmapped; must be >= 1.
    key: PRNG key for the batch orders. None keeps the given order for a single run (and uses
      ``jax.random.key(0)`` for repeats).
    method: the rule for ``suggestion``: ``"minimum"``, ``"steepest"``, ``"valley"``, ``"steep"``
      or ``"slide"``.
    val_batches: held-out batches (same form as ``batches``); the curve is then the validation loss.
    name: the name of the ramped hyperparameter (labels; the schedule hand-offs need ``"lr"``).
    mesh: a ``jax.sharding.Mesh`` to shard the repeats over; default all devices when there are
      several and ``num_repeats > 1`` (padded to a multiple of the device count with copies of
      repeat 0, dropped afterwards). Several processes work too (see **Across processes**).
    progress: show a progress bar on stderr (the scan then runs in about 20 chunks).

  Returns:
    An :class:`LRFindResult`; ``result.one_cycle(total_steps)`` and
    ``result.warmup_cosine(total_steps)`` build the schedule to train with.

  Raises:
    ValueError: ``min_lr <= 0``, ``min_lr >= max_lr``, ``num_steps < 10``, ``num_repeats < 1``,
      ``smoothing`` outside [0, 1), ``diverge_threshold <= 1`` or NaN, a ``key`` that is not a PRNG key,
      a ``loss_fn`` that does not return a scalar or fails on a batch of ``val_batches`` (its error
      as the cause), ``batches`` or ``val_batches`` leaves with
      different leading axes (or listed batches of different shapes), a ``mesh`` that is not a
      ``Mesh``, or a call under ``jax.jit``/``vmap`` (traced arguments, or a call while tracing:
      the result holds Python floats).

  Warns:
    RuntimeWarning: when no rate can be suggested (``suggestion`` is then NaN), saying why (too few
      points before the divergence, a flat curve, a rule pointing outside the ramp), or when some
      repeats have none (the median is over the others). With ``method="minimum"``, also when the
      loss was still falling at ``max_lr`` (no divergence, and the smoothed loss lowest at the last
      point kept): the suggestion is then the rule's (that rate / 10), set by ``max_lr``; raise it.

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
  a = _check_arguments("lr_find", locals(), grid=None)
  return _run_test(a, loss_fn, params)[0]


def lr_find_grid(
  loss_fn: Callable[[Any, Any], jax.Array],
  params: Any,
  batches: Any,
  *,
  optimizer: Callable[..., optax.GradientTransformation],
  grid: Mapping[str, Any],
  min_lr: float = 1e-7,
  max_lr: float = 10.0,
  num_steps: int = 100,
  mode: str = "exponential",
  smoothing: float = 0.98,
  diverge_threshold: float | None = 4.0,
  num_repeats: int = 1,
  key: jax.Array | None = None,
  method: str = "minimum",
  val_batches: Any = None,
  name: str = "lr",
  mesh: Mesh | None = None,
  progress: bool = False,
) -> LRFindGrid:
  """Range tests over a grid of a second hyperparameter: one ramp per value, all in one program.

  ``grid={"weight_decay": [0.0, 1e-4, 1e-3]}`` runs the test of :func:`lr_find` once per value, row
  g calling ``optimizer(lr, weight_decay=values[g])`` (the keyword is the grid's key), with the same
  ramp and the same batch orders in every row (so rows differ only by the value). The
  ``G x num_repeats`` runs are lanes of one ``vmap``ped scan (sharded over devices like the
  repeats of :func:`lr_find`): a 2-D grid of ramps, as Smith (2018) does by hand to pick the weight
  decay whose range test reaches the lowest loss, and the rate for it. Every other argument is
  :func:`lr_find`'s, per row.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``.
    params: initial parameters (a pytree).
    batches: batches, as in :func:`lr_find`.
    optimizer: ``(ramped value, **{key: value}) -> optax.GradientTransformation``.
    grid: one ``{keyword: values}`` pair, ``values`` a non-empty 1-D sequence of finite numbers.
    min_lr: first value of the ramp.
    max_lr: last value of the ramp.
    num_steps: steps per ramp.
    mode: ``"exponential"`` or ``"linear"``.
    smoothing: EMA coefficient.
    diverge_threshold: stop rule, per lane.
    num_repeats: batch orders per row.
    key: PRNG key for the batch orders.
    method: the suggestion rule of each row.
    val_batches: held-out batches (the curve is then the validation loss).
    name: the ramped hyperparameter's name.
    mesh: a ``Mesh`` to shard the lanes over.
    progress: show a progress bar.

  Returns:
    An :class:`LRFindGrid`: ``rows[g]`` is the :class:`LRFindResult` of ``values[g]``,
    ``best()`` the row with the lowest smoothed loss, ``plot()`` a heat map.

  Raises:
    ValueError: as :func:`lr_find`, and a ``grid`` that is not one ``{str: 1-D numbers}`` pair, or an
      ``optimizer`` that is missing or does not take the grid's keyword.

  References:
    L. N. Smith, `A disciplined approach to neural network hyper-parameters: Part 1
    <https://arxiv.org/abs/1803.09820>`_, 2018, section 4.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import lr_find_grid
    >>> loss = lambda w, b: 0.5 * jnp.sum((w - b) ** 2)
    >>> res = lr_find_grid(loss, jnp.ones(3), jnp.zeros((1, 3)), min_lr=1e-3, max_lr=100.0,
    ...                    optimizer=lambda lr, momentum: optax.sgd(lr, momentum=momentum),
    ...                    grid={"momentum": [0.0, 0.9]})
    >>> print(res.smoothed_losses.shape, bool(res.suggestions[1] < res.suggestions[0]))  # momentum lowers it
    (2, 100) True
  """
  a = _check_arguments("lr_find_grid", locals(), grid=grid)
  rows = _run_test(a, loss_fn, params)
  return LRFindGrid(a.grid_name, np.asarray(a.grid_values), tuple(rows))


# --------------------------------------------------------------------------------------------------
# The steps of a test: check arguments, plan, run, collect.


class _Args(NamedTuple):
  fn: str
  batches: Any
  num_batches: int
  val_batches: Any
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
  name: str
  grid_name: str | None
  grid_values: Any  # [G] float64 array as given (G = 1, unused, without a grid)
  mesh: Mesh | None
  progress: bool


def _check_arguments(fn: str, kw: dict, grid) -> _Args:
  named = {k: kw[k] for k in ("params", "batches", "val_batches", "min_lr", "max_lr", "num_steps")}
  named.update({k: kw[k] for k in ("smoothing", "diverge_threshold", "num_repeats", "key")})
  for nm, v in named.items():
    if is_traced(v):
      raise ValueError(
        f"{fn}: must be called outside jax.jit/vmap (it runs its own compiled program and returns "
        f"Python floats), got a traced `{nm}`."
      )
  if is_traced(jnp.zeros(())):  # inside a jit trace, even with concrete arguments
    raise ValueError(
      f"{fn}: must be called outside jax.jit (it runs its own compiled program and returns Python "
      "floats), got a call while tracing a jitted function."
    )
  min_lr = number(kw["min_lr"], fn=fn, name="min_lr")
  max_lr = number(kw["max_lr"], fn=fn, name="max_lr")
  num_steps = number(kw["num_steps"], fn=fn, name="num_steps", integer=True)
  num_repeats = number(kw["num_repeats"], fn=fn, name="num_repeats", integer=True)
  smoothing = number(kw["smoothing"], fn=fn, name="smoothing")
  check(min_lr > 0, fn=fn, must="`min_lr` must be > 0", min_lr=min_lr)
  check(max_lr > min_lr, fn=fn, must="`max_lr` must be > `min_lr`", min_lr=min_lr, max_lr=max_lr)
  check(num_steps >= 10, fn=fn, must="`num_steps` must be >= 10", num_steps=num_steps)
  check(
    num_steps < 2**31, fn=fn, must="`num_steps` must fit an int32 step counter (< 2**31)", num_steps=num_steps
  )
  check(num_repeats >= 1, fn=fn, must="`num_repeats` must be >= 1", num_repeats=num_repeats)
  check((smoothing >= 0) & (smoothing < 1), fn=fn, must="`smoothing` must be in [0, 1)", smoothing=smoothing)
  diverge_threshold = kw["diverge_threshold"]
  if diverge_threshold is None or _is_plus_inf(diverge_threshold):  # both: stop only at non-finite losses
    diverge_threshold = float("inf")
  else:
    diverge_threshold = number(diverge_threshold, fn=fn, name="diverge_threshold")
    check(
      diverge_threshold > 1,
      fn=fn,
      must="`diverge_threshold` must be > 1",
      diverge_threshold=diverge_threshold,
    )
  mode = choice(kw["mode"], ("exponential", "linear"), fn=fn, name="mode")
  method = choice(kw["method"], SUGGESTION_METHODS, fn=fn, name="method")
  progress = flag(kw["progress"], fn=fn, name="progress")
  name = kw["name"]
  if not isinstance(name, str) or not name:
    raise ValueError(f"{fn}: `name` must be a non-empty string, got name={name!r}.")
  mesh = kw["mesh"]
  if mesh is not None and not isinstance(mesh, Mesh):
    raise ValueError(f"{fn}: `mesh` must be a jax.sharding.Mesh or None, got mesh={mesh!r}.")
  optimizer = kw["optimizer"]
  if optimizer is None and grid is None:
    optimizer = _default_optimizer
  elif isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
    example = (
      "lambda lr: optax.adam(lr)"
      if grid is None
      else "lambda lr, weight_decay: optax.adamw(lr, weight_decay=weight_decay)"
    )
    raise ValueError(
      f"{fn}: `optimizer` must be a function {name} -> GradientTransformation "
      f"(e.g. `{example}`), got optimizer={optimizer!r}."
    )
  grid_name, grid_values = None, np.zeros(1, np.float32)
  if grid is not None:
    if not isinstance(grid, Mapping) or len(grid) != 1 or not all(isinstance(k, str) for k in grid):
      raise ValueError(
        f"{fn}: `grid` must be one {{keyword: values}} pair (e.g. {{'weight_decay': [0.0, 1e-4]}}), got grid={grid!r}."
      )
    ((grid_name, values),) = grid.items()
    number(values, fn=fn, name=f"grid[{grid_name!r}]", allow_array=True)  # finite numbers, 1-D
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or values.size == 0:
      raise ValueError(
        f"{fn}: `grid[{grid_name!r}]` must be a non-empty 1-D sequence of numbers, got {grid[grid_name]!r}."
      )
    grid_values = values
    try:  # building a transformation is cheap and pure: a wrong signature fails here, not in the trace
      optimizer(min_lr, **{grid_name: float(values[0])})
    except TypeError as e:
      raise ValueError(
        f"{fn}: `optimizer` must accept the ramped value and the keyword {grid_name!r} "
        f"(e.g. `lambda {name}, {grid_name}: ...`), got optimizer={optimizer!r}: {e}"
      ) from None
  key = kw["key"]
  if key is not None and not _is_key(key):
    raise ValueError(f"{fn}: `key` must be a PRNG key (jax.random.key(seed)) or None, got key={key!r}.")
  batches, n = _loop.prepare_batches(kw["batches"], fn, stacklevel=5)
  loss_fn, params = kw["loss_fn"], kw["params"]
  loss_key = ("plain", _loop.SameCode(loss_fn)) if callable(loss_fn) else None  # the check is remembered
  loss_dtype = _loop.check_scalar_loss(loss_fn, params, batches, fn, key=loss_key)
  val_batches = kw["val_batches"]
  if val_batches is not None:
    try:
      val_batches, _ = _loop.prepare_batches(val_batches, fn, stacklevel=5)
    except ValueError as e:
      raise ValueError(str(e).replace("`batches`", "`val_batches`")) from None
    check_val = _loop.check_scalar_loss(
      loss_fn, params, val_batches, fn, what="val_batches", like=batches, key=loss_key
    )
    if check_val != loss_dtype:
      raise ValueError(
        f"{fn}: `loss_fn` must return the same dtype on `val_batches` as on `batches`, got {check_val} and {loss_dtype}."
      )
  return _Args(
    fn,
    batches,
    n,
    val_batches,
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
    name,
    grid_name,
    grid_values,
    mesh,
    progress,
  )


def _lanes(a: _Args):
  """Each lane's batch order ``[L, N]`` and grid value ``[L]``, lane ``g * R + r``; padded to the mesh."""
  g, r = len(a.grid_values), a.num_repeats
  orders = _orders(a.key, r, a.num_steps, a.num_batches)
  orders = np.tile(orders, (g, 1))  # host arrays: no eager device ops before the one program
  hs = np.repeat(np.asarray(a.grid_values, jnp.result_type(float)), r)
  mesh = a.mesh
  if mesh is None and g * r > 1 and len(jax.devices()) > 1:
    mesh = Mesh(np.array(jax.devices()), ("lanes",))
  if mesh is not None:
    pad = -(g * r) % mesh.devices.size
    if pad:  # copies of lane 0, dropped after the run
      orders = np.concatenate([orders, np.broadcast_to(orders[:1], (pad, a.num_steps))])
      hs = np.concatenate([hs, np.broadcast_to(hs[:1], (pad,))])
  return orders, hs, mesh


def _place_processes(orders, hs, params, shared, mesh: Mesh):
  """With several processes (``jax.distributed``): the lane arrays sharded over ``mesh`` and the shared
  ones replicated on it, each process filling its own devices from its (identical) host copy, as
  ``sweep`` places its runs. A host array given to the program as it is would be one process's own."""
  lanes = NamedSharding(mesh, P(tuple(mesh.axis_names)))
  return _put(orders, lanes), _put(hs, lanes), _place(params, mesh), _place(shared, mesh)


def _run_test(a: _Args, loss_fn, params) -> list[LRFindResult]:
  lrs = _ramp(a.min_lr, a.max_lr, num_steps=a.num_steps, mode=a.mode)
  orders, hs, mesh = _lanes(a)
  st = _Static(_loop.SameCode(loss_fn), _loop.SameCode(a.optimizer), a.loss_dtype, a.grid_name, mesh)
  shared = (a.batches, a.val_batches, lrs)
  if mesh is not None and jax.process_count() > 1:
    orders, hs, params, shared = _place_processes(orders, hs, params, shared, mesh)
  hyper = (a.smoothing, a.diverge_threshold)
  _, rows = _loop.run_chunked(
    a.num_steps,
    a.progress,
    a.fn,
    whole=lambda: _find_all(orders, hs, params, *shared, *hyper, st=st),
    init=lambda: _init_all(hs, params, shared[2], st=st),
    steps=lambda carry, t0, length: _steps_all(carry, orders, hs, *shared, t0, *hyper, st=st, length=length),
  )
  g, r = len(a.grid_values), a.num_repeats
  rows = _gathered(rows)  # lanes held by other processes (jax.distributed) come to every process
  curve, smoothed, flags, train = (np.asarray(x)[: g * r].reshape(g, r, a.num_steps) for x in rows)
  lrs = np.asarray(lrs)
  results = []
  for i in range(g):
    fixed = {} if a.grid_name is None else {a.grid_name: float(a.grid_values[i])}
    res, stats = _collect(lrs, curve[i], smoothed[i], flags[i], train[i], a, fixed)
    where = "" if not fixed else f"row {a.grid_name}={fixed[a.grid_name]:.3g}: "
    why, hint = (None if text is None else where + text for text in (stats.why, stats.hint))
    _warn(a.fn, stats._replace(why=why, hint=hint), 3)
    results.append(res)
  return results


def _collect(lrs, losses, smoothed, flags, train, a: _Args, fixed) -> tuple[LRFindResult, _Stats]:
  stops = tuple(int(np.argmax(f)) if f.any() else None for f in flags)
  hit = [s for s in stops if s is not None]
  stop = min(hit) if hit else None
  with np.errstate(invalid="ignore"):  # inf losses of a diverged step: NaN statistics, masked below
    mean_loss, mean_smooth, mean_train = losses.mean(axis=0), smoothed.mean(axis=0), train.mean(axis=0)
    std = smoothed.std(axis=0)
  if stop is not None:  # the mean curve stops where the first repeat stopped
    for arr in (mean_loss, mean_smooth, std, mean_train):
      arr[stop + 1 :] = np.nan
  skip = len(lrs) // 10
  stats = _suggest_all(lrs, mean_smooth, stop, smoothed, stops, a.method, skip, 5, a.name)
  curve = "training loss" if a.val_batches is None else "validation loss"
  res = LRFindResult(
    lrs,
    mean_loss,
    mean_smooth,
    stop,
    stats.suggestion,
    a.method,
    std,
    losses,
    smoothed,
    stops,
    stats.per_repeat,
    stats.band,
    mean_train,
    curve,
    a.name,
    fixed,
  )
  return res, stats
