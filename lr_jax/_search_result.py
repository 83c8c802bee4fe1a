"""The result of :func:`lr_jax.search`: :class:`SearchResult` (``lr_jax.SearchResult``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from lr_jax._sweep_result import TrainedRun, _take_lane

__all__ = ["Rung", "SearchResult"]


class Rung(NamedTuple):
  """One rung of successive halving: the ``trials`` trained up to ``steps`` steps, their ``scores``
  there, and the trials ``kept`` (promoted to the next rung, best first); ``bracket``: Hyperband's
  bracket (0 without ``brackets``)."""

  steps: int
  trials: np.ndarray
  scores: np.ndarray
  kept: np.ndarray
  bracket: int = 0


class SearchResult(NamedTuple):
  """Result of :func:`lr_jax.search`; trial i is ``configs[i]``.

  Fields:
    method: ``"random"``, ``"halving"`` or ``"pbt"``.
    configs: one dict of hyperparameter values per trial (sampling order). For PBT a trial is a
      member of the population, and its dict holds the hyperparameters in force at the end (its
      whole piecewise schedule is in ``hparam_history``).
    score: ``[trials]`` the last score of each trial: ``eval_fn``'s value when an ``eval_fn`` was
      given (key ``"eval"``), else the mean training loss over every training batch (key
      ``"train_loss"``); NaN for a diverged (pruned) trial.
    key: ``"eval"`` or ``"train_loss"``: what ``score`` is.
    mode: ``"min"`` or ``"max"``: the better direction of ``score``.
    steps: ``[trials]`` the steps each trial was trained (halving stops most trials early).
    valid: ``[trials]`` bool: ``score`` finite.
    losses: ``[trials, num_steps]`` training loss of each step, NaN after a trial stopped or diverged
      (for PBT, the curve of each population member, across its copies).
    num_steps: the steps of a trial that ran the whole budget.
    steps_trained: total training steps spent by all trials (the budget; a grid of c configurations
      spends ``c * num_steps``).
    rungs: halving's :class:`Rung` list (None for other methods).
    lineage: PBT's ``[rounds, members]`` int: at round r member j continued from member
      ``lineage[r, j]`` (itself unless it was replaced by a copy). None for other methods.
    hparam_history: PBT's ``{name: [rounds + 1, members]}``: the values in force during each interval.
    score_history: PBT's ``[rounds, members]`` scores that each exploit step ranked.
    history_steps: PBT's ``[rounds]`` the step of each exploit round.
    params, opt_state: the trained params and optimizer state of every trial that finished
      (``final_trials``), with a leading axis in that order; None with ``keep_params=False``.
    final_trials: ``[finished]`` the trial index of each row of ``params``.
    best_run: the :class:`lr_jax.sweep` ``TrainedRun`` of the best trial (kept with ``keep_params=False``).
    sampler, seed: how ``configs`` were drawn.
    seeds: ``[trials]`` the initialisation seed of each trial (with ``init_fn``), else None.
    trial_numbers: ``method="optuna"``: ``[trials]`` the Optuna trial number of each trial (its
      ``study.trials`` entry; several workers may share the study). None for other methods.

  Trials are ranked first by ``steps`` (more is better: in halving a trial stopped early never
  outranks one that reached the end), then by ``score`` in the direction ``mode``; :meth:`best`,
  :meth:`table` and :meth:`plot` use that ranking.
  """

  method: str
  configs: list
  score: np.ndarray
  key: str
  mode: str
  steps: np.ndarray
  valid: np.ndarray
  losses: np.ndarray
  num_steps: int
  steps_trained: int
  rungs: list | None = None
  lineage: np.ndarray | None = None
  hparam_history: dict | None = None
  score_history: np.ndarray | None = None
  history_steps: np.ndarray | None = None
  params: Any = None
  opt_state: Any = None
  final_trials: np.ndarray | None = None
  best_run: TrainedRun | None = None
  sampler: str = "random"
  seed: int = 0
  seeds: np.ndarray | None = None
  trial_numbers: np.ndarray | None = None

  def ranks(self) -> np.ndarray:
    """``[trials]`` rank of each trial (1 = best), 0 for an invalid one."""
    s = np.asarray(self.score, np.float64)
    ok = np.isfinite(s) & np.asarray(self.valid)
    key = np.where(ok, -s if self.mode == "max" else s, np.inf)
    order = np.lexsort((key, -np.asarray(self.steps)))
    order = [i for i in order if ok[i]]
    ranks = np.zeros(len(s), np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks

  def best_index(self) -> int:
    """The index (into ``configs``) of the best trial.

    Raises:
      ValueError: if no trial finished with a finite score.
    """
    r = self.ranks()
    if not np.any(r):
      raise ValueError("SearchResult.best: no trial finished with a finite score.")
    return int(np.argmax(r == 1))

  def table(self) -> list[dict]:
    """One dict per trial: its hyperparameters, the score (under ``key``), ``steps``, ``valid`` and
    ``rank`` (1 = best; None for an invalid trial).

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from lr_jax import search, spaces
      >>> res = search(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...              optimizer=lambda h: optax.sgd(h["lr"]), space={"lr": [0.1, 0.2, 1e4]},
      ...              num_steps=5)
      >>> for row in res.table(): print(row["lr"], f"{row['train_loss']:.4f}", row["valid"], row["rank"])
      0.1 0.2147 True 2
      0.2 0.0121 True 1
      10000.0 nan False None
    """
    ranks = self.ranks()
    rows = []
    for i, c in enumerate(self.configs):
      row = dict(c)
      row[self.key] = float(self.score[i])
      row["steps"] = int(self.steps[i])
      row["valid"] = bool(self.valid[i])
      row["rank"] = int(ranks[i]) if ranks[i] else None
      rows.append(row)
    return rows

  def best(self) -> dict:
    """The :meth:`table` row of the best trial (the most steps, then the best score).

    Raises:
      ValueError: if no trial finished with a finite score.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from lr_jax import search
      >>> res = search(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...              optimizer=lambda h: optax.sgd(h["lr"]), space={"lr": [0.1, 0.4, 2.0]}, num_steps=5)
      >>> print(res.best()["lr"])
      0.4
    """
    return self.table()[self.best_index()]

  def _run_of(self, i: int, fn: str) -> TrainedRun:
    if self.params is not None and self.final_trials is not None and i in set(self.final_trials.tolist()):
      row = int(np.flatnonzero(self.final_trials == i)[0])
      seed = 0 if self.seeds is None else int(self.seeds[i])
      return TrainedRun(i, seed, _take_lane(self.params, (row,)), _take_lane(self.opt_state, (row,)))
    if self.best_run is not None and self.best_run.index == i:
      return self.best_run
    raise ValueError(f"{fn}: no trained params are kept for trial {i} (search with keep_params=True).")

  def best_params(self):
    """The trained params of the best trial, as the pytree given (or ``init_fn`` returns)."""
    return self._run_of(self.best_index(), "SearchResult.best_params").params

  def best_opt_state(self):
    """The optimizer state of the best trial, to continue training with ``optimizer(hparams)``
    (``hparams`` from :meth:`best`)."""
    return self._run_of(self.best_index(), "SearchResult.best_opt_state").opt_state

  def plot(self, ax=None):
    """The figure of the method: see :func:`lr_jax.plot.search`."""
    from lr_jax import plot

    return plot.search(self, ax=ax)

  def __repr__(self) -> str:
    try:
      row = self.best()
      names = [k for k in self.configs[0]]
      best = ", ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]!r}" for k in names)
      best = f"best=({best}) by {self.key} ({self.mode}) {row[self.key]:.4g}"
    except ValueError:
      best = "best=None"
    return (
      f"SearchResult(method={self.method!r}, {len(self.configs)} trials, {int(np.sum(self.valid))} valid, "
      f"{best}, steps_trained={self.steps_trained})"
    )
