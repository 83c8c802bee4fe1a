"""The results of :func:`lr_jax.hypergradient` and :func:`lr_jax.tune`: :class:`HypergradResult` and
:class:`TuneResult` (``lr_jax.HypergradResult``, ``lr_jax.TuneResult``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["HypergradResult", "TuneResult"]


class HypergradResult(NamedTuple):
  """Result of :func:`lr_jax.hypergradient`: the held-out loss after training, and its gradient.

  Fields:
    value: the objective after ``num_steps`` training steps (a scalar array): ``eval_fn(params)``,
      its mean over ``eval_batches``, or the mean loss over ``eval_batches`` / the training batches
      (see :func:`lr_jax.hypergradient`).
    grads: ``{name: scalar array}``, for each differentiated hyperparameter h: ``d value / d log h``
      where ``log_space[name]`` (the change of ``value`` per relative change of h: multiply by
      ``log(2)`` for "doubling h changes the loss by about this much"), else ``d value / d h``.
    hparams: every hyperparameter passed to ``make_optimizer``, as given (Python numbers).
    log_space: ``{name: bool}`` for each differentiated hyperparameter: whether its gradient is in
      log space.
    losses: ``[num_steps]`` the training loss at each step (on the parameters before that step's
      update, as a plain Optax loop records it).
    params: the trained parameters.
    mode: ``"forward"`` or ``"reverse"``.
    checkpoint_every: reverse mode: the steps per rematerialised segment (0: none); None in forward mode.
  """

  value: jax.Array
  grads: dict
  hparams: dict
  log_space: dict
  losses: jax.Array
  params: Any
  mode: str
  checkpoint_every: int | None

  def plain_grads(self) -> dict:
    """``{name: d value / d h}`` for every differentiated hyperparameter (a log-space gradient
    divided by h: ``d value / d h = (d value / d log h) / h``)."""
    return {k: g / self.hparams[k] if self.log_space[k] else g for k, g in self.grads.items()}

  def __repr__(self) -> str:
    gs = ", ".join(
      f"{'d/dlog ' if self.log_space[k] else 'd/d '}{k}={float(g):.4g}" for k, g in self.grads.items()
    )
    return f"HypergradResult(value={float(self.value):.6g}, {gs}, mode={self.mode!r})"


class TuneResult(NamedTuple):
  """Result of :func:`lr_jax.tune`: the outer loop's trajectory, the best point and its trained params.

  Start i is the i-th starting point (``init`` first, when given); outer step k is the point after
  k updates, k = 0 .. ``outer_steps`` (so every trajectory has ``outer_steps + 1`` points).

  Fields:
    hparams: ``{name: [outer_steps + 1, starts]}`` the tuned hyperparameters along each trajectory.
    values: ``[outer_steps + 1, starts]`` the objective (held-out loss, averaged over seeds) at each
      point; NaN where a run diverged.
    values_by_seed: ``[outer_steps + 1, starts, seeds]`` each seed's objective.
    grads: ``{name: [outer_steps, starts]}`` the seed-averaged gradient in the tuning coordinate of
      ``name`` (``scales``) at each point that was updated from.
    scales: ``{name: "log" | "logit"}``: ``"log"``: the coordinate is ``log h`` (``log_uniform``
      and ``integer(log=True)`` dimensions, clipped to the bounds); ``"logit"``: ``logit((h - low) /
      (high - low))`` (``uniform`` and ``integer`` dimensions: h stays strictly inside the bounds).
    fixed: ``{name: value}`` the hyperparameters held fixed (plain numbers in ``space``).
    best_hparams: every hyperparameter (tuned and fixed) at the best point of every trajectory.
    best_value: the objective there (seed-averaged).
    best_start, best_step: where the best point is (``values[best_step, best_start]``).
    best_seed: the seed whose run at the best point had the lowest objective.
    params: that run's trained parameters (the winner's).
    seeds: the seeds (``(0,)`` without ``seeds=``).
    mode: ``"forward"`` or ``"reverse"``.
    num_steps: training steps of every run.
    outer_steps: Adam steps on the hyperparameters.
    runs: training runs spent: ``starts * seeds * (outer_steps + 1)``, of which ``starts * seeds *
      outer_steps`` computed a hypergradient (a forward-mode or reverse-mode pass through training)
      and ``starts * seeds`` (the last points) trained only.
  """

  hparams: dict
  values: np.ndarray
  values_by_seed: np.ndarray
  grads: dict
  scales: dict
  fixed: dict
  best_hparams: dict
  best_value: float
  best_start: int
  best_step: int
  best_seed: int
  params: Any
  seeds: tuple
  mode: str
  num_steps: int
  outer_steps: int
  runs: int

  def best(self) -> dict:
    """The best point's hyperparameters (tuned and fixed) and its objective under ``"value"``."""
    return {**self.best_hparams, "value": self.best_value}

  def plot(self, ax=None):
    """The objective against the outer step, one line per start (the best point circled); returns
    the Axes. Needs matplotlib (the ``plot`` extra)."""
    import matplotlib.ticker

    from lr_jax import plot

    ax = plot._new_ax(ax)
    k = np.arange(self.values.shape[0])
    for i in range(self.values.shape[1]):
      ax.plot(k, self.values[:, i], marker=".", label=f"start {i}")
    ax.plot([self.best_step], [self.best_value], "o", mfc="none", mec="k", ms=10, label="best")
    if np.all(self.values[np.isfinite(self.values)] > 0):
      ax.set_yscale("log")
    ax.set_xlabel("outer step")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("held-out objective (mean over seeds)")
    ax.legend(fontsize="small")
    return ax

  def __repr__(self) -> str:
    k, s = np.shape(self.values)
    best = ", ".join(f"{n}={v:.4g}" for n, v in self.best_hparams.items())
    return (
      f"TuneResult({s} starts x {len(self.seeds)} seeds x {k - 1} outer steps, mode={self.mode!r}, "
      f"best=({best}) value={self.best_value:.6g} at step {self.best_step} of start {self.best_start})"
    )
