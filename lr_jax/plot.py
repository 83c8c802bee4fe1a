"""Matplotlib figures for schedules, ``lr_find`` and ``sweep`` results.

matplotlib (the ``plot`` extra) is imported inside each function, so ``import lr_jax`` never needs
it. Every function draws on ``ax`` (or a new figure with a constrained layout, so ``savefig`` keeps
the axis labels), returns the Axes and never calls ``plt.show()``. Legends sit outside the axes, so
they never cover a curve.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["lr_find", "lr_find_grid", "schedules", "search", "sweep"]

_LABEL_WIDTH = 44  # legend labels are wrapped at this many characters
_MAX_LEGEND = 10  # more curves than this are coloured by a colorbar instead of a legend
_SUGGESTION_RULES = {
  "minimum": "lr at the minimum / 10",
  "steepest": "steepest descent of the smoothed loss",
  "valley": "fastai's valley rule",
  "steep": "fastai's steepest forward difference",
  "slide": "fastai's interval slide",
}


def _pyplot():
  try:
    import matplotlib.pyplot as plt
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("lr_jax.plot needs matplotlib: pip install 'lr-jax[plot]'") from e
  return plt


def _new_ax(ax, figsize=(6, 4)):
  if ax is not None:
    return ax
  _, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
  return ax


def _legend_outside(ax, handles=None, labels=None, x: float = 1.02, figure_legend: bool = False, **kw):
  """A legend to the right of ``ax`` (``x`` in axes coordinates), off the curves; with
  ``figure_legend`` (a figure of one Axes made here), in the figure's right margin."""
  if handles is None:
    handles, labels = ax.get_legend_handles_labels()
  if figure_legend:
    return ax.figure.legend(handles, labels, loc="outside right upper", fontsize="small", **kw)
  return ax.legend(
    handles, labels, loc="upper left", bbox_to_anchor=(x, 1.0), borderaxespad=0.0, fontsize="small", **kw
  )


def _wrap(label: str) -> str:
  return textwrap.fill(label, _LABEL_WIDTH, subsequent_indent="  ", break_long_words=False)


def _describe(value) -> str:
  """``{"name": "warmup", "schedule": {...}, ...}`` -> ``warmup(schedule=cosine_annealing(...), ...)``."""
  if isinstance(value, Mapping) and "name" in value:
    args = ", ".join(f"{k}={_describe(v)}" for k, v in value.items() if k != "name")
    return f"{value['name']}({args})"
  if isinstance(value, (list, tuple)):
    return "[" + ", ".join(_describe(v) for v in value) + "]"
  if isinstance(value, float):
    return f"{value:g}"
  return str(value)


def _schedule_label(s) -> str:
  to_config = getattr(s, "to_config", None)
  if callable(to_config):
    try:
      return _describe(to_config())
    except (TypeError, ValueError):  # a wrapped callable that cannot be written as a config
      pass
  return getattr(s, "name", "") or type(s).__name__


def _unique(labels: list[str]) -> list[str]:
  """Appends ``[2]``, ``[3]`` ... to repeated labels, so every curve has its own legend entry."""
  seen: dict[str, int] = {}
  out = []
  for label in labels:
    seen[label] = seen.get(label, 0) + 1
    out.append(label if seen[label] == 1 else f"{label} [{seen[label]}]")
  return out


def _is_momentum(s) -> bool:
  return "momentum" in str(getattr(s, "name", ""))


def schedules(schedules_or_dict: Any, steps, ax=None, ylabel: str | None = None):
  """Plots value against step for one schedule, a list of them, or a dict ``label -> schedule``.

  Every schedule gets its own curve and legend entry (repeated labels get ``[2]``, ``[3]``, ...;
  without a dict the label is the schedule's configuration, nested schedules included). The y-label
  is ``"learning rate"``, or ``"momentum"`` when every schedule is a momentum schedule (its ``name``
  contains ``"momentum"``); a mix draws the momentum schedules against a second y-axis on the right.

  Args:
    schedules_or_dict: a schedule (any ``step -> value`` callable), a sequence of them, or a dict
      mapping legend labels to schedules.
    steps: an int N (steps 0 .. N-1) or an array of steps.
    ax: the Axes to draw on; a new figure when None.
    ylabel: the y-axis label; default as above.

  Returns:
    The matplotlib Axes.

  Examples:
    >>> from lr_jax import plot, schedules as S
    >>> ax = plot.schedules({"cosine": S.cosine_annealing(1.0, 100)}, 120)
    >>> print(ax.get_xlabel(), ax.get_ylabel(), len(ax.get_lines()))
    step learning rate 1
    >>> print(plot.schedules(S.one_cycle_momentum(total_steps=100), 100).get_ylabel())
    momentum
  """
  if isinstance(schedules_or_dict, Mapping):
    items = [(str(k), s) for k, s in schedules_or_dict.items()]
    named = True
  else:
    scheds = [schedules_or_dict] if callable(schedules_or_dict) else list(schedules_or_dict)
    items = list(zip(_unique([_schedule_label(s) for s in scheds]), scheds))
    named = len(items) > 1
  if not items:
    raise ValueError(f"plot.schedules: no schedule to plot, got schedules_or_dict={schedules_or_dict!r}.")
  momentum = [_is_momentum(s) for _, s in items]
  mixed = any(momentum) and not all(momentum) and ylabel is None
  own = ax is None
  ax = _new_ax(ax, figsize=(8.5, 4) if named else (6, 4))
  right = ax.twinx() if mixed else None
  t = np.arange(steps) if np.ndim(steps) == 0 else np.asarray(steps)
  for i, ((label, s), is_m) in enumerate(zip(items, momentum)):
    target = right if (mixed and is_m) else ax
    target.plot(
      t,
      np.asarray(s(t)),
      color=f"C{i % 10}",
      label=_wrap(label + (" (right axis)" if target is right else "")),
    )
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel or ("momentum" if all(momentum) else "learning rate"))
  if right is not None:
    right.set_ylabel("momentum")
  if named:
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
      more = right.get_legend_handles_labels()
      handles, labels = handles + more[0], labels + more[1]
    _legend_outside(ax, handles, labels, x=1.2 if right is not None else 1.02, figure_legend=own)
  return ax


def lr_find(result, ax=None):
  """Plots an :class:`~lr_jax.LRFindResult`: the raw and the smoothed loss against lr (log x), the
  repeats' +-1 std band, the minimum of the smoothed loss, the divergence point and the suggestion
  (its legend entry names the rule, e.g. ``"lr at the minimum / 10"``).

  The y-limits span the raw losses from the start to the smoothed minimum (the useful range), so
  the noise is visible; losses past the minimum that rise above it (the divergence) are clipped,
  and the legend says how many.

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
  own = ax is None
  ax = _new_ax(ax, figsize=(8, 4))
  lrs = np.asarray(result.lrs)
  end = len(lrs) if result.diverged_at is None else result.diverged_at + 1
  x = lrs[:end]
  raw = np.asarray(result.losses, np.float64)[:end]
  smooth = np.asarray(result.smoothed_losses, np.float64)[:end]
  lo, hi, clipped = _loss_limits(raw, smooth)
  raw_label = "loss" if not clipped else f"loss ({clipped} points above the axes)"
  ax.plot(x, raw, color="C0", alpha=0.35, lw=1, label=raw_label)
  ax.plot(x, smooth, color="C0", lw=2, label="smoothed loss")
  std = np.asarray(result.losses_std)[:end]
  if np.any(std > 0):
    ax.fill_between(x, smooth - std, smooth + std, color="C0", alpha=0.15, label="+-1 std over repeats")
  if np.any(np.isfinite(smooth)):
    i = int(np.nanargmin(smooth))
    ax.plot(x[i], smooth[i], "o", color="C2", label=f"smoothed minimum at lr {x[i]:.2e}")
  if result.diverged_at is not None:
    ax.axvline(
      lrs[result.diverged_at], color="C3", ls=":", label=f"stopped at lr {lrs[result.diverged_at]:.2e}"
    )
  if np.isfinite(result.suggestion):
    rule = _SUGGESTION_RULES.get(result.method, result.method)
    per = np.asarray(getattr(result, "suggestion_per_repeat", ()), np.float64)
    if len(per) > 1:  # repeats: the median, the quartile band and each repeat's suggestion
      q25, q75 = result.suggestion_band
      ax.axvspan(
        q25, q75, color="C1", alpha=0.15, label=f"quartiles of the repeats' suggestions\n{q25:.2e}..{q75:.2e}"
      )
      ax.plot(
        per,
        np.zeros_like(per),
        "|",
        color="C1",
        ms=12,
        transform=ax.get_xaxis_transform(),
        label="each repeat's suggestion",
      )
    what = f", median of {len(per)} repeats" if len(per) > 1 else ""
    ax.axvline(
      result.suggestion, color="C1", ls="--", label=f"suggestion {result.suggestion:.2e}{what}\n({rule})"
    )
  if np.isfinite(lo) and np.isfinite(hi):
    if lo > 0 and hi / lo > 30:
      ax.set_yscale("log")
      ax.set_ylim(lo / 1.2, hi * 1.2)
    else:
      pad = 0.05 * max(hi - lo, abs(hi) * 1e-3 + 1e-12)
      ax.set_ylim(lo - pad, hi + pad)
  ax.set_xscale("log")
  name = getattr(result, "name", "lr")
  ax.set_xlabel("learning rate" if name == "lr" else name)
  ax.set_ylabel(getattr(result, "curve", "training loss"))
  _legend_outside(ax, figure_legend=own)
  return ax


def lr_find_grid(result, ax=None):
  """Heat map of an :class:`~lr_jax.LRFindGrid`: the smoothed loss over (ramped rate, grid value).

  One row per grid value, the ramp along x (log), the color the smoothed loss from its lowest value
  to 1.1x the starting loss (higher losses, the divergence, saturate; log-scaled when that spans
  more than 30x; white after a row stopped), each row's suggestion marked with a white dot, and the row that reaches the lowest loss (``result.best()``) with a star at its minimum.

  Args:
    result: what :func:`lr_jax.lr_find_grid` returned.
    ax: the Axes to draw on; a new figure when None.

  Returns:
    The matplotlib Axes.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import lr_find_grid, plot
    >>> res = lr_find_grid(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
    ...                    optimizer=lambda lr, momentum: optax.sgd(lr, momentum=momentum),
    ...                    grid={"momentum": [0.0, 0.5, 0.9]}, min_lr=1e-4)
    >>> ax = plot.lr_find_grid(res)
    >>> print(ax.get_xscale(), ax.get_ylabel())
    log momentum
  """
  plt = _pyplot()
  from matplotlib import colors

  own = ax is None
  ax = _new_ax(ax, figsize=(7, 4))
  lrs = np.asarray(result.lrs, np.float64)
  values = np.asarray(result.values, np.float64)
  z = np.asarray(result.smoothed_losses, np.float64)
  finite = z[np.isfinite(z)]
  norm = None
  if finite.size:  # colors from the lowest loss to the starting level; the divergence saturates
    start = z[:, 0][np.isfinite(z[:, 0])]
    lo, hi = float(finite.min()), float(max(start.max() * 1.1 if start.size else finite.max(), finite.min()))
    if lo > 0 and hi / lo > 30:
      norm = colors.LogNorm(lo, hi, clip=True)
    else:
      norm = colors.Normalize(lo, hi if hi > lo else lo + 1e-12, clip=True)
  # cell edges: geometric midpoints along the ramp, rows as equal bands (values may be uneven)
  lx = np.log(lrs)
  x_edges = np.exp(
    np.concatenate([[lx[0] - (lx[1] - lx[0]) / 2], (lx[1:] + lx[:-1]) / 2, [lx[-1] + (lx[-1] - lx[-2]) / 2]])
  )
  rows = np.arange(len(values) + 1) - 0.5
  mesh = ax.pcolormesh(x_edges, rows, np.ma.masked_invalid(z), norm=norm, cmap="viridis", shading="flat")
  cbar = plt.colorbar(mesh, ax=ax, extend="max")
  cbar.set_label(f"smoothed {result.rows[0].curve}")
  sugg = np.asarray(result.suggestions, np.float64)
  ok = np.isfinite(sugg)
  ax.plot(sugg[ok], np.arange(len(values))[ok], "o", mfc="white", mec="black", label="suggestion")
  best = result.best()
  g = int(np.flatnonzero(values == best[result.name])[0])
  i = int(np.nanargmin(z[g])) if np.isfinite(z[g]).any() else None
  if i is not None:
    ax.plot(
      lrs[i], g, "*", color="C3", ms=14, mec="white", label=f"lowest loss: {result.name}={values[g]:.3g}"
    )
  ax.set_xscale("log")
  ax.set_yticks(np.arange(len(values)))
  ax.set_yticklabels([f"{v:.3g}" for v in values])
  name = result.rows[0].name
  ax.set_xlabel("learning rate" if name == "lr" else name)
  ax.set_ylabel(result.name)
  _legend_outside(ax, figure_legend=own, x=1.3)
  return ax


def _loss_limits(raw, smooth):
  """(low, high, clipped): from the lowest loss to the highest raw loss up to the smoothed minimum;
  ``clipped`` counts the raw losses past that point that lie above ``high``."""
  ok = np.isfinite(smooth)
  if not ok.any():
    return np.nan, np.nan, 0
  stop = int(np.nanargmin(smooth)) + 1
  useful = np.concatenate([raw[:stop], smooth[:stop]])
  useful = useful[np.isfinite(useful)]
  everything = np.concatenate([raw, smooth])
  everything = everything[np.isfinite(everything)]
  lo, hi = float(everything.min()), float(useful.max())
  clipped = int(np.sum(raw > hi))  # NaN compares False
  return lo, hi, clipped


# --------------------------------------------------------------------------------------------------
# Sweeps.


def _is_categorical(values) -> bool:
  """Integer hyperparameters (indices, counts, codes such as a schedule number) are categories."""
  return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)


def _fmt(name, v, categories) -> str:
  names = (categories or {}).get(name)
  if names is not None and isinstance(v, (int, np.integer)) and 0 <= v < len(names):
    return str(names[v])
  return f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)


def _cfg_label(cfg: dict, names, categories) -> str:
  return ", ".join(f"{k}={_fmt(k, cfg[k], categories)}" for k in names)


class _Group:
  """One configuration of the grid over its seeds (``sweep(..., seeds=)``): mean curve, band, score."""

  def __init__(self, cfg, i, result, score, key):
    self.cfg = cfg
    runs = getattr(result, "by_seed", None)
    if runs is None:  # a result built by hand: one seed
      losses = np.asarray(result.losses, np.float64)[i][None]
      ok = np.asarray([bool(np.asarray(result.valid)[i]) and np.isfinite(score[i])])
      raw = np.asarray([score[i]])
    else:
      losses = np.asarray(runs.losses, np.float64)[i]
      raw = np.asarray(runs.eval if key == "eval" else runs.train_loss, np.float64)[i]
      ok = np.asarray(runs.valid)[i] & np.isfinite(raw)
    self.seeds = len(ok)
    self.ok = int(ok.sum())
    self.curve = losses[ok].mean(0) if self.ok else None
    self.band = (losses[ok].min(0), losses[ok].max(0)) if self.ok > 1 else None
    self.score = float(raw[ok].mean()) if self.ok else np.nan
    self.score_range = (float(raw[ok].min()), float(raw[ok].max())) if self.ok > 1 else None


def _groups(result, names, score, key) -> list[_Group]:
  """One group per configuration (grid order); its seeds are averaged."""
  return [_Group({k: cfg[k] for k in names}, i, result, score, key) for i, cfg in enumerate(result.configs)]


def _best_of(groups, mode):
  valid = [g for g in groups if g.ok]
  if not valid:
    return None
  pick = max if mode == "max" else min
  return pick(valid, key=lambda g: g.score)


def sweep(result, ax=None, metric: str | None = None, categories: Mapping[str, Sequence[str]] | None = None):
  """Plots a :class:`~lr_jax.SweepResult`.

  With ``sweep(..., seeds=n)`` each configuration is drawn over its seeds (``result.by_seed``): the
  curves show the mean training loss with a min-max band, the score its mean with min-max error bars.
  The score is what :meth:`SweepResult.score` ranks by (``eval`` in the sweep's ``eval_mode``, else
  the train loss), so the figure and :meth:`SweepResult.best` agree.

  With ``ax`` given, draws the loss curves on it and returns it. With ``ax=None``, makes a figure
  with the curves and, for each swept hyperparameter, the score against that hyperparameter (one
  line per combination of the others, or the best over them when there are more than 10), and
  returns the array of Axes. Integer hyperparameters are categorical axes (their values, or the
  names in ``categories``, as ticks); positive float axes spanning over a decade are log-scaled.
  Up to 10 curves get a legend; more are coloured by the first hyperparameter with a colorbar
  (the best configuration for each of its values when there are other hyperparameters).
  Invalid configurations are left out of the lines and marked with a red x.

  Args:
    result: what :func:`lr_jax.sweep` returned.
    ax: one Axes for the curves, or None.
    metric: the name of ``eval`` for the y-label (e.g. ``"test accuracy"``); default ``"eval"``.
    categories: ``{hyperparameter: names}`` naming the integer codes of a hyperparameter.

  Returns:
    The Axes (``ax`` given), or a 1-D NumPy array of Axes (curves first).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import sweep, plot
    >>> res = sweep(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
    ...             optimizer=lambda h: optax.sgd(h["lr"]), grid={"lr": [0.01, 0.1]}, num_steps=5)
    >>> axes = plot.sweep(res)
    >>> print(len(axes), axes[1].get_ylabel())
    2 train loss (lower is better)
  """
  names = list(result.configs[0]) if result.configs else []
  values, key, mode = result.score()
  score = np.asarray(values, np.float64)
  groups = _groups(result, names, score, key)
  what = (metric or "eval") if key == "eval" else "train loss"
  score_label = f"{what} ({'higher' if mode == 'max' else 'lower'} is better)"
  if ax is None:
    plt = _pyplot()
    n = 1 + len(names)
    _, axes = plt.subplots(1, n, figsize=(6.5 * n, 4.2), squeeze=False, layout="constrained")
    axes = axes[0]
  else:
    axes = np.array([ax])
  _sweep_curves(axes[0], result, groups, names, mode, categories)
  if ax is not None:
    return ax
  for a, name in zip(axes[1:], names):
    _sweep_score(a, groups, names, name, mode, categories)
    a.set_ylabel(score_label)
  return axes


def _sweep_curves(ax, result, groups, names, mode, categories):
  steps = np.arange(np.shape(result.losses)[1])
  seeds = max(g.seeds for g in groups) if groups else 1
  shown = [g for g in groups if g.ok]
  colour_by = None
  if len(shown) > _MAX_LEGEND and names:
    colour_by = names[0]
    if len(names) > 1:  # one curve per value of colour_by: the best over the other hyperparameters
      shown = [
        _best_of([g for g in groups if g.cfg[colour_by] == v], mode) for v in _distinct(groups, colour_by)
      ]
      shown = [g for g in shown if g is not None]
      ax.set_title(f"best configuration for each {colour_by}", fontsize="medium")
  cmap = norm = None
  if colour_by is not None:
    import matplotlib as mpl

    vs = np.array([float(g.cfg[colour_by]) for g in shown])
    log = (
      np.all(vs > 0) and vs.max() / vs.min() > 10 and not _is_categorical([g.cfg[colour_by] for g in shown])
    )
    norm = mpl.colors.LogNorm(vs.min(), vs.max()) if log else mpl.colors.Normalize(vs.min(), vs.max())
    cmap = mpl.colormaps["viridis"]
  for i, g in enumerate(shown):
    colour = cmap(norm(float(g.cfg[colour_by]))) if cmap is not None else f"C{i % 10}"
    label = _cfg_label(g.cfg, names, categories) or "loss"
    if g.ok < g.seeds:
      label += f" ({g.ok} of {g.seeds} seeds finite)"
    ax.plot(steps, g.curve, lw=1, color=colour, label=_wrap(label))
    if g.band is not None:
      ax.fill_between(steps, *g.band, color=colour, alpha=0.2, lw=0)
  ax.set_xlabel("step")
  ax.set_ylabel("training loss (mean over seeds)" if seeds > 1 else "training loss")
  finite = np.asarray(result.losses)[np.isfinite(result.losses)]
  ax.set_yscale("log" if finite.size and np.all(finite > 0) else "linear")
  if colour_by is not None:
    import matplotlib as mpl

    bar = ax.figure.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    bar.set_label(colour_by)
  elif shown:
    title = f"mean of {seeds} seeds, band: min-max" if seeds > 1 else None
    _legend_outside(ax, title=title, title_fontsize="small")


def _distinct(groups, name) -> list:
  return sorted({g.cfg[name] for g in groups})


def _sweep_score(ax, groups, names, name, mode, categories):
  xs = _distinct(groups, name)
  categorical = _is_categorical(xs)
  pos = {v: (i if categorical else float(v)) for i, v in enumerate(xs)}
  others = [k for k in names if k != name]
  combos = sorted({tuple(g.cfg[k] for k in others) for g in groups})
  if len(combos) <= _MAX_LEGEND:
    lines = [
      (
        _cfg_label(dict(zip(others, c)), others, categories),
        [g for g in groups if tuple(g.cfg[k] for k in others) == c],
      )
      for c in combos
    ]
  else:  # too many lines to tell apart: the best over the other hyperparameters at each value
    best = [_best_of([g for g in groups if g.cfg[name] == v], mode) for v in xs]
    lines = [(f"best over {', '.join(others)}", [g for g in best if g is not None])]
  for i, (label, members) in enumerate(lines):
    members = sorted((g for g in members if g.ok), key=lambda g: pos[g.cfg[name]])
    if not members:
      continue
    x = [pos[g.cfg[name]] for g in members]
    y = [g.score for g in members]
    err = None
    if any(g.score_range is not None for g in members):
      err = np.array([[g.score - (g.score_range or (g.score,) * 2)[0] for g in members],
                      [(g.score_range or (g.score,) * 2)[1] - g.score for g in members]])  # fmt: skip
    ax.errorbar(
      x, y, yerr=err, fmt="o-", ms=4, lw=1, capsize=2, color=f"C{i % 10}", label=_wrap(label) or None
    )
  bad = [g for g in groups if not g.ok]
  if bad:
    good = [g.score for g in groups if g.ok]
    top = (max(good) if mode == "min" else min(good)) if good else 0.0  # the worst end of the axis
    ax.scatter(
      [pos[g.cfg[name]] for g in bad], [top] * len(bad), marker="x", color="C3", label="invalid / diverged"
    )
  if categorical:
    ax.set_xticks(range(len(xs)), [_fmt(name, v, categories) for v in xs])
  elif xs and np.all(np.asarray(xs, float) > 0) and max(xs) / min(xs) > 10:
    ax.set_xscale("log")
  ax.set_xlabel(name)
  if any(label for label, _ in lines) or bad:
    _legend_outside(ax)


# --------------------------------------------------------------------------------------------------
# lr_jax.search


def _score_label(result, metric) -> str:
  what = (metric or "eval") if result.key == "eval" else "train loss"
  return f"{what} ({'higher' if result.mode == 'max' else 'lower'} is better)"


def _log_if_wide(ax, values, axis="y"):
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  if v.size and np.all(v > 0) and v.max() / v.min() > 30:
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _search_hparam_names(result) -> list[str]:
  names = list(result.configs[0]) if result.configs else []
  return [k for k in names if len({c[k] for c in result.configs}) > 1] or names[:1]


def _search_vs_hparams(axes, result, score, reached=None, metric=None, levels_label="rungs reached"):
  """Score against each hyperparameter: one dot per trial, the best a star, invalid a red x; with
  ``reached`` (halving; integers 1..L), dots coloured by it (e.g. the number of rungs each trial reached)."""
  import matplotlib as mpl

  best = result.best_index() if np.any(result.ranks()) else None
  ok = np.isfinite(score)
  worst = (np.nanmax(score) if result.mode == "min" else np.nanmin(score)) if np.any(ok) else 0.0
  cmap = norm = None
  if reached is not None:
    levels = int(reached.max())
    cmap = mpl.colormaps["viridis"].resampled(levels)
    norm = mpl.colors.BoundaryNorm(np.arange(0.5, levels + 1.5), levels)
  for ax, name in zip(axes, _search_hparam_names(result)):
    x = np.asarray([float(c[name]) for c in result.configs])
    if reached is None:
      ax.scatter(x[ok], score[ok], s=18, color="C0", label="trial")
    else:
      ax.scatter(x[ok], score[ok], s=18, c=reached[ok], cmap=cmap, norm=norm)
    if not np.all(ok):
      ax.scatter(x[~ok], np.full((~ok).sum(), worst), marker="x", color="C3", label="diverged (pruned)")
    if best is not None:
      ax.scatter(
        [x[best]], [score[best]], marker="*", s=160, color="C1", edgecolor="k", zorder=3, label="best"
      )
    _log_if_wide(ax, x, "x")
    _log_if_wide(ax, score[ok])
    ax.set_xlabel(name)
    ax.set_ylabel(_score_label(result, metric))
  if reached is not None:
    bar = axes[-1].figure.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes))
    bar.set_ticks(range(1, int(reached.max()) + 1))
    bar.set_label(levels_label)
  if len(axes):
    axes[0].legend(fontsize="small", loc="best")


def _search_rungs(ax, result, metric):
  """Halving: each trial's score at every rung it reached; survivors continue, the winner bold."""
  by_trial: dict[int, list] = {}
  for r in result.rungs:
    for t, s in zip(r.trials, r.scores):
      by_trial.setdefault(int(t), []).append((r.steps, float(s)))
  best = result.best_index() if np.any(result.ranks()) else None
  finite = [s for r in result.rungs for s in r.scores if np.isfinite(s)]
  worst = (max(finite) if result.mode == "min" else min(finite)) if finite else 0.0
  for t, pts in by_trial.items():
    x, y = zip(*pts)
    if t == best:
      ax.plot(x, y, "o-", ms=4, lw=2.5, color="C1", zorder=4, label="winner")
    elif len(pts) > 1:
      ax.plot(x, y, "o-", ms=3, lw=1, color="C0", alpha=0.8, zorder=3)
    else:
      ax.plot(x, y, "o", ms=3, color="0.6", zorder=2)
    if not np.isfinite(y[-1]):
      ax.scatter([x[-1]], [worst], marker="x", color="C3", zorder=3)
  ax.plot([], [], "o-", ms=3, lw=1, color="C0", label="promoted")
  ax.plot([], [], "o", ms=3, color="0.6", label="stopped")
  if any(not np.isfinite(s) for r in result.rungs for s in r.scores):
    ax.scatter([], [], marker="x", color="C3", label="diverged (pruned)")
  steps = [r.steps for r in result.rungs]
  brackets = 1 + max(getattr(r, "bracket", 0) for r in result.rungs)
  if max(steps) / max(1, min(steps)) > 8:
    ax.set_xscale("log")
  if brackets > 1:  # Hyperband: rungs of several brackets share step counts
    ax.set_xticks(sorted(set(steps)), [str(x) for x in sorted(set(steps))])
  else:
    ax.set_xticks(
      steps, [f"{r.steps}\n{len(r.trials)} trial{'s' if len(r.trials) > 1 else ''}" for r in result.rungs]
    )
  ax.minorticks_off()
  for r in result.rungs:
    ax.axvline(r.steps, color="0.9", lw=0.8, zorder=0)
  _log_if_wide(ax, finite)
  ax.set_xlabel("steps trained at the rung" + (", trials in it" if brackets == 1 else ""))
  ax.set_ylabel(_score_label(result, metric))
  what = f"Hyperband, {brackets} brackets" if brackets > 1 else "successive halving"
  ax.set_title(f"{what}: {result.steps_trained} steps spent", fontsize="medium")
  ax.legend(fontsize="small", loc="best")


def _ancestry(result) -> np.ndarray:
  """``[intervals]`` the member holding the best trial's weights during each interval of PBT."""
  rounds = result.lineage.shape[0]
  anc = np.zeros(rounds + 1, np.int64)
  anc[rounds] = result.best_index()
  for r in range(rounds - 1, -1, -1):
    anc[r] = result.lineage[r, anc[r + 1]]
  return anc


def _search_trajectories(axes, result):
  """PBT: each member's hyperparameters over the run (a step function), and in orange the schedule
  the winner's weights were trained with (its ancestry: the member holding them in each interval)."""
  edges = np.concatenate([[0], result.history_steps, [result.num_steps]])
  anc = _ancestry(result) if np.any(result.ranks()) else None
  n = result.lineage.shape[1]
  for ax, name in zip(axes, _search_hparam_names(result)):
    h = np.asarray(result.hparam_history[name], np.float64)
    for j in range(n):
      ax.step(
        edges, np.concatenate([h[:, j], h[-1:, j]]), where="post", lw=0.8, color=f"C{j % 10}", alpha=0.45
      )
    if anc is not None:
      y = h[np.arange(len(anc)), anc]
      ax.step(edges, np.concatenate([y, y[-1:]]), where="post", lw=2.5, color="C1", zorder=3,
              label="the winner's schedule (through its copies)")  # fmt: skip
      if ax is axes[0]:
        ax.legend(fontsize="small", loc="best")
    _log_if_wide(ax, h)
    ax.set_xlabel("step")
    ax.set_ylabel(name)
    ax.set_title(f"{name} of each member over the run", fontsize="medium")


def _search_lineage(ax, result, metric):
  """PBT: member j's line over each interval, coloured by its score; a copy is an arrow from the
  source member to the member it replaced; the winner's ancestry is bold."""
  import matplotlib as mpl

  lineage, scores = result.lineage, np.asarray(result.score_history, np.float64)
  rounds, n = lineage.shape
  edges = np.concatenate([[0], result.history_steps, [result.num_steps]])
  finite = scores[np.isfinite(scores)]
  log = finite.size and np.all(finite > 0) and finite.max() / finite.min() > 30
  norm = mpl.colors.LogNorm(finite.min(), finite.max()) if log else mpl.colors.Normalize(
    *(finite.min(), finite.max()) if finite.size else (0, 1))  # fmt: skip
  cmap = mpl.colormaps["viridis_r" if result.mode == "min" else "viridis"]
  for r in range(rounds):
    for j in range(n):
      s = scores[r, j]
      ax.plot(
        edges[r : r + 2], [j, j], lw=3, color=cmap(norm(s)) if np.isfinite(s) else "C3", solid_capstyle="butt"
      )
      p = lineage[r, j]
      if p != j:
        ax.annotate("", (edges[r + 1], j), (edges[r + 1], p),
                    arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 0.8, "shrinkA": 2, "shrinkB": 2})  # fmt: skip
  final = np.asarray(result.score, np.float64)
  for j in range(n):
    s = final[j]
    ax.plot(edges[-2:], [j, j], lw=3, color=cmap(norm(s)) if np.isfinite(s) else "C3", solid_capstyle="butt")
  if np.any(result.ranks()):  # the winner's weights, back through its copies
    anc = _ancestry(result)
    xs = np.repeat(edges, 2)[1:-1]
    ys = np.repeat(anc, 2)
    ax.plot(xs, ys, color="C1", lw=1.8, zorder=4, label="the winner's ancestry")
  if np.any(np.isnan(scores)) or not np.all(np.isfinite(final)):
    ax.plot([], [], color="C3", lw=3, label="diverged (replaced)")
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0.0, -0.13), ncols=2)
  bar = ax.figure.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
  bar.set_label(_score_label(result, metric) + " at the exploit step")
  ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
  ax.set_xlabel("step")
  ax.set_ylabel("population member")
  ax.set_title("PBT lineage: arrows copy a member's weights onto another", fontsize="medium")


def search(result, ax=None, metric: str | None = None):
  """Plots a :class:`~lr_jax.SearchResult`, by its method.

  * ``"random"`` (and ``"optuna"``): the score of every trial against each searched hyperparameter
    (one panel each; the best a star, diverged trials a red x at the worst end).
  * ``"halving"``: survivors by rung: each trial's score at every rung it reached (steps on the x
    axis, one line per trial, the winner in orange), with the count kept at each rung; then the score
    at the first rung against each hyperparameter, coloured by the rungs the trial reached.
  * ``"pbt"``: each hyperparameter's trajectory per member (a step function, the best member in
    orange), and the lineage: each member's score per interval, an arrow for every copy (exploit)
    and the winner's ancestry.

  Args:
    result: what :func:`lr_jax.search` returned.
    ax: one Axes (draws the first panel only), or None for the whole figure.
    metric: the name of ``eval`` for the y-label (e.g. ``"test accuracy"``); default ``"eval"``.

  Returns:
    The Axes (``ax`` given), or a 1-D NumPy array of Axes.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import search, spaces, plot
    >>> res = search(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
    ...              optimizer=lambda h: optax.sgd(h["lr"]), space={"lr": spaces.log_uniform(1e-3, 0.4)},
    ...              num_samples=8, num_steps=5)
    >>> axes = plot.search(res)
    >>> print(len(axes), axes[0].get_xlabel(), axes[0].get_xscale())
    1 lr log
  """
  names = _search_hparam_names(result)
  score = np.asarray(result.score, np.float64)
  if result.method == "halving" and result.rungs:
    panels = 1 + len(names)
  elif result.method == "pbt" and result.lineage is not None:
    panels = len(names) + 1
  else:
    panels = len(names)
  if ax is not None:
    axes = np.array([ax])
  else:
    plt = _pyplot()
    _, axes = plt.subplots(1, panels, figsize=(6.0 * panels, 4.4), squeeze=False, layout="constrained")
    axes = axes[0]
  if result.method == "halving" and result.rungs:
    _search_rungs(axes[0], result, metric)
    if ax is None:
      first = result.rungs[0]
      if any(getattr(r, "bracket", 0) for r in result.rungs):  # Hyperband: last score, by steps trained
        s0 = np.asarray(result.score, np.float64)
        steps = sorted(set(np.asarray(result.steps).tolist()))
        reached = np.asarray([steps.index(v) + 1 for v in result.steps], np.float64)
        _search_vs_hparams(axes[1:], result, s0, reached, metric, "steps trained (level)")
        for a in axes[1:]:
          a.set_ylabel(_score_label(result, metric) + " at the last rung reached")
        axes[-1].figure.axes[-1].set_yticks(range(1, len(steps) + 1), [str(v) for v in steps])
        axes[-1].figure.axes[-1].set_ylabel("steps trained")
        return axes
      s0 = np.full(len(result.configs), np.nan)
      s0[first.trials] = first.scores
      reached = np.zeros(len(result.configs))
      for k, r in enumerate(result.rungs):
        reached[r.trials] = k + 1
      _search_vs_hparams(axes[1:], result._replace(score=s0), s0, reached, metric)
      for a in axes[1:]:
        a.set_ylabel(_score_label(result, metric) + f" after {first.steps} steps")
  elif result.method == "pbt" and result.lineage is not None:
    if ax is None:
      _search_trajectories(axes[:-1], result)
      _search_lineage(axes[-1], result, metric)
    else:
      _search_trajectories(axes, result)
  else:
    _search_vs_hparams(axes, result, score, metric=metric)
    if len(axes):
      axes[0].set_title(f"{result.method} search: {len(result.configs)} trials", fontsize="medium")
  return axes[0] if ax is not None else axes
