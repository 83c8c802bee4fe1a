"""Matplotlib figures for schedules, ``lr_find`` and ``sweep`` results.

matplotlib (the ``plot`` extra) is imported inside each function, so ``import lr_jax`` never needs
it. Every function draws on ``ax`` (or a new figure), returns the Axes and never calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["lr_find", "schedules", "sweep"]


def _pyplot():
  try:
    import matplotlib.pyplot as plt
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("lr_jax.plot needs matplotlib: pip install 'lr-jax[plot]'") from e
  return plt


def _new_ax(ax):
  if ax is not None:
    return ax
  _, ax = _pyplot().subplots(figsize=(6, 4))
  return ax


def schedules(schedules_or_dict: Any, steps, ax=None):
  """Plots learning rate against step for one schedule, a list of them, or a dict ``name -> schedule``.

  Args:
    schedules_or_dict: a schedule (any ``step -> rate`` callable), a sequence of them, or a dict
      mapping legend labels to schedules.
    steps: an int N (steps 0 .. N-1) or an array of steps.
    ax: the Axes to draw on; a new figure when None.

  Returns:
    The matplotlib Axes.

  Examples:
    >>> from lr_jax import plot, schedules as S
    >>> ax = plot.schedules({"cosine": S.cosine_annealing(1.0, 100)}, 120)
    >>> print(ax.get_xlabel(), len(ax.get_lines()))
    step 1
  """
  ax = _new_ax(ax)
  if isinstance(schedules_or_dict, dict):
    items = list(schedules_or_dict.items())
  elif callable(schedules_or_dict):
    items = [(None, schedules_or_dict)]
  else:
    items = [(None, s) for s in schedules_or_dict]
  t = np.arange(steps) if np.ndim(steps) == 0 else np.asarray(steps)
  for label, s in items:
    label = label if label is not None else getattr(s, "name", "") or type(s).__name__
    ax.plot(t, np.asarray(s(t)), label=label)
  ax.set_xlabel("step")
  ax.set_ylabel("learning rate")
  if len(items) > 1 or items[0][0] is not None:
    ax.legend()
  return ax


def lr_find(result, ax=None):
  """Plots an :class:`~lr_jax._finder.LRFindResult`: smoothed loss against lr (log x), the raw loss
  faintly, the repeats' +-1 std band, the divergence point and the suggestion.

  Args:
    result: what :func:`lr_jax.lr_find` returned.
    ax: the Axes to draw on; a new figure when None.

  Returns:
    The matplotlib Axes.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import lr_find, plot
    >>> res = lr_find(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)), optimizer=optax.sgd)
    >>> print(plot.lr_find(res).get_xscale())
    log
  """
  ax = _new_ax(ax)
  lrs = np.asarray(result.lrs)
  end = len(lrs) if result.diverged_at is None else result.diverged_at + 1
  x = lrs[:end]
  smooth = np.asarray(result.smoothed_losses)[:end]
  ax.plot(x, np.asarray(result.losses)[:end], color="C0", alpha=0.3, lw=1, label="loss")
  ax.plot(x, smooth, color="C0", label="smoothed loss")
  std = np.asarray(result.losses_std)[:end]
  if np.any(std > 0):
    ax.fill_between(x, smooth - std, smooth + std, color="C0", alpha=0.15, label="+-1 std over repeats")
  if result.diverged_at is not None:
    ax.axvline(lrs[result.diverged_at], color="C3", ls=":", label=f"stopped at {lrs[result.diverged_at]:.2e}")
  if np.isfinite(result.suggestion):
    ax.axvline(result.suggestion, color="C1", ls="--", label=f"{result.method}: {result.suggestion:.2e}")
  finite = smooth[np.isfinite(smooth)]
  if finite.size:  # the divergence tail would squash the curve: clip the view at 2x the first loss
    lo, hi = finite.min(), max(finite[0], finite.min()) * 2
    pad = 0.05 * max(hi - lo, abs(lo) * 1e-3 + 1e-12)
    ax.set_ylim(lo - pad, hi + pad)
  ax.set_xscale("log")
  ax.set_xlabel("learning rate")
  ax.set_ylabel("loss")
  ax.legend()
  return ax


def sweep(result, ax=None):
  """Plots a :class:`~lr_jax.SweepResult`.

  With ``ax`` given, draws the loss curves of every configuration on it and returns it. With
  ``ax=None``, makes a figure with the curves and, for each swept hyperparameter, the final loss
  against that hyperparameter (log x when its values are positive and span over a decade), and
  returns the array of Axes. Invalid configurations are left out.

  Args:
    result: what :func:`lr_jax.sweep` returned.
    ax: one Axes for the curves, or None.

  Returns:
    The Axes (``ax`` given), or a 1-D NumPy array of Axes (curves first).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import sweep, plot
    >>> res = sweep(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
    ...             optimizer=lambda h: optax.sgd(h["lr"]), grid={"lr": [0.01, 0.1]}, num_steps=5)
    >>> print(len(plot.sweep(res)))
    2
  """
  names = list(result.configs[0]) if result.configs else []
  if ax is None:
    plt = _pyplot()
    _, axes = plt.subplots(1, 1 + len(names), figsize=(5 * (1 + len(names)), 4), squeeze=False)
    axes = axes[0]
  else:
    axes = np.array([ax])
  curves = axes[0]
  steps = np.arange(result.losses.shape[1])
  for i, cfg in enumerate(result.configs):
    if result.valid[i]:
      label = ", ".join(f"{k}={v:.3g}" for k, v in cfg.items())
      curves.plot(steps, result.losses[i], lw=1, label=label if len(result.configs) <= 10 else None)
  curves.set_xlabel("step")
  curves.set_ylabel("training loss")
  curves.set_yscale("log" if np.all(result.losses[np.isfinite(result.losses)] > 0) else "linear")
  if len(result.configs) <= 10 and np.any(result.valid):
    curves.legend(fontsize="small")
  if ax is not None:
    return ax
  score = result.eval if result.eval is not None else result.final_loss
  ylabel = "eval" if result.eval is not None else "final loss"
  for a, name in zip(axes[1:], names):
    x = np.array([c[name] for c in result.configs], dtype=float)
    ok = np.asarray(result.valid)
    a.scatter(x[ok], score[ok], s=12)
    if np.any(~ok):
      a.scatter(
        x[~ok],
        np.full((~ok).sum(), np.nanmax(score[ok]) if ok.any() else 0),
        marker="x",
        color="C3",
        label="invalid / diverged",
      )
      a.legend(fontsize="small")
    if np.all(x > 0) and x.max() / x.min() > 10:
      a.set_xscale("log")
    a.set_xlabel(name)
    a.set_ylabel(ylabel)
  return axes
