"""The result of :func:`lr_jax.sweep`: :class:`SweepResult` (``lr_jax.SweepResult``), its ranking over
configurations averaged over seeds, and the trained params and optimizer states it keeps."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from lr_jax import _loop

__all__ = ["SeedRuns", "SweepResult", "TrainedRun"]

EVAL_MODES = ("min", "max")

_STATS = ("mean", "std", "min", "max")


class SeedRuns(NamedTuple):
  """The raw numbers of every (configuration, seed) run of a :func:`sweep`, before averaging over seeds.

  Fields:
    seeds: the seeds, in order (``(0,)`` without ``seeds=``).
    losses: ``[configs, seeds, num_steps]``.
    train_loss: ``[configs, seeds]``.
    eval: ``[configs, seeds]`` or None.
    eval_curve: ``[configs, seeds, evaluations]`` or None.
    valid: ``[configs, seeds]`` bool.
  """

  seeds: tuple
  losses: np.ndarray
  train_loss: np.ndarray
  eval: np.ndarray | None
  eval_curve: np.ndarray | None
  valid: np.ndarray


class TrainedRun(NamedTuple):
  """One trained run kept by a sweep: its configuration index, seed, parameters and optimizer state."""

  index: int
  seed: int
  params: Any
  opt_state: Any


def _take_lane(tree, idx: tuple):
  """Leaf ``[idx]`` of every array leaf (non-array leaves, e.g. an Equinox module's functions, kept)."""
  return jax.tree_util.tree_map(lambda x: x[idx] if _loop._is_array(x) else x, tree)


class SweepResult(NamedTuple):
  """Result of :func:`sweep`; configuration i is ``configs[i]`` (grid order).

  Every number below is the mean over the seeds of configuration i (``seeds=``); :attr:`by_seed`
  holds each seed's own.

  Fields:
    losses: ``[configs, num_steps]``; ``losses[i, t]`` is configuration i's training loss at step t,
      on the parameters before update t (as a plain Optax loop records it). NaN from the first
      non-finite loss on.
    train_loss: ``[configs]`` the mean loss of the trained parameters over every batch of stacked
      ``batches`` (the whole training set as given, not one minibatch); for streamed ``batches`` (an
      iterable), over the batches of the last chunk (a stream cannot be replayed). NaN for invalid
      or diverged configurations.
    eval: ``[configs]`` the evaluation of the trained params (``eval_fn(params)``, or its mean over
      ``eval_batches``), or None without ``eval_fn``.
    eval_mode: ``"min"`` or ``"max"``: the better direction of ``eval`` (None without ``eval_fn``).
    configs: one dict of hyperparameter values per configuration.
    valid: ``[configs]`` bool: every loss and eval finite, for every seed.
    strategy: how configurations were batched: ``"vmap"`` (all at once), ``"chunked"`` (``vmap``
      over ``chunk_size`` at a time, ``lax.map`` over the chunks) or ``"map"`` (one at a time,
      ``lax.map``), per device.
    chunk_size: runs vmapped together on one device.
    num_devices: devices the runs were sharded over.
    eval_curve: ``[configs, evaluations]``: the evaluation after every ``eval_every`` steps (after
      steps ``eval_steps``), or None without ``eval_every``.
    eval_steps: ``[evaluations]`` the number of steps trained at each column of ``eval_curve``.
    by_seed: a :class:`SeedRuns`, the numbers of every seed.
    params: the trained params of every run, as the pytree given (or ``init_fn`` returns) with leading
      axes ``[configs]`` on every array leaf (``[configs, seeds]`` with ``seeds=``); None with
      ``keep_params=False``.
    opt_state: the optimizer state of every run, with the same leading axes; None with
      ``keep_params=False``.
    best_run: the :class:`TrainedRun` of the best configuration by the default ranking (its best
      seed), kept even with ``keep_params=False``; None when no configuration is valid.
    seeds: the seeds of ``seeds=`` (a tuple), or None when it was not given.

  Configurations are ranked by ``eval`` in the direction ``eval_mode`` when an ``eval_fn`` was
  given, else by ``train_loss`` (lower is better), averaged over seeds: :meth:`score`,
  :meth:`best`, :meth:`table` and :meth:`plot` all use that one ranking.
  """

  losses: np.ndarray
  train_loss: np.ndarray
  eval: np.ndarray | None
  eval_mode: str | None
  configs: list
  valid: np.ndarray
  strategy: str
  chunk_size: int
  num_devices: int
  eval_curve: np.ndarray | None = None
  eval_steps: np.ndarray | None = None
  by_seed: SeedRuns | None = None
  params: Any = None
  opt_state: Any = None
  best_run: TrainedRun | None = None
  seeds: tuple | None = None

  def _key_mode(self, key, mode, fn):
    if key is None:
      key = "eval" if self.eval is not None else "train_loss"
    if key not in ("eval", "train_loss") or (key == "eval" and self.eval is None):
      raise ValueError(f"{fn}: `key` must be 'train_loss' or (with an eval_fn) 'eval', got key={key!r}.")
    if mode is None:
      mode = (self.eval_mode or "min") if key == "eval" else "min"
    if mode not in EVAL_MODES:
      raise ValueError(f"{fn}: `mode` must be 'min' or 'max', got mode={mode!r}.")
    return key, mode

  def _seed_index(self, seed, fn) -> int | None:
    if seed is None:
      return None
    seeds = (0,) if self.by_seed is None else self.by_seed.seeds  # a result built by hand: one run each
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) not in seeds:
      raise ValueError(f"{fn}: `seed` must be one of the sweep's seeds {list(seeds)}, got seed={seed!r}.")
    return None if self.by_seed is None else seeds.index(int(seed))

  def score(
    self, key: str | None = None, mode: str | None = None, *, seed: int | None = None, stat: str = "mean"
  ) -> tuple[np.ndarray, str, str]:
    """The quantity configurations are ranked by: ``(values [configs], key, mode)``.

    Over the S seeds of configuration i (values ``v_i1..v_iS``): ``mean`` = ``sum_j v_ij / S``,
    ``std`` = ``sqrt(sum_j (v_ij - mean)^2 / S)``, ``min``, ``max``; NaN unless every seed is valid.

    Args:
      key: ``"eval"`` or ``"train_loss"``; default ``"eval"`` when an ``eval_fn`` was given, else
        ``"train_loss"``.
      mode: ``"min"`` or ``"max"``; default ``eval_mode`` for ``"eval"`` and ``"min"`` for ``"train_loss"``.
      seed: one seed's values instead of the aggregate (NaN where that seed is invalid).
      stat: ``"mean"`` (what is ranked by), ``"std"``, ``"min"`` or ``"max"`` over seeds.

    Returns:
      ``values`` (float64, NaN for invalid configurations), the key's name and the direction.

    Raises:
      ValueError: an unknown ``key``, ``mode``, ``stat`` or ``seed``, or ``key="eval"`` without an ``eval_fn``.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from lr_jax import sweep
      >>> res = sweep(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...             optimizer=lambda h: optax.sgd(h["lr"]), grid={"lr": [0.1, 0.2]}, num_steps=5,
      ...             eval_fn=lambda w: -jnp.sum(w**2), eval_mode="max")
      >>> values, key, mode = res.score()
      >>> print(key, mode, *(f"{v:.4f}" for v in values))
      eval max -0.2147 -0.0121
    """
    fn = "SweepResult.score"
    key, mode = self._key_mode(key, mode, fn)
    if stat not in _STATS:
      raise ValueError(f"{fn}: `stat` must be one of {_STATS}, got stat={stat!r}.")
    j = self._seed_index(seed, fn)
    if self.by_seed is None:  # a result built by hand: no seed axis
      values = np.asarray(self.eval if key == "eval" else self.train_loss, dtype=np.float64)
      return np.where(np.asarray(self.valid), values, np.nan), key, mode
    raw = np.asarray(self.by_seed.eval if key == "eval" else self.by_seed.train_loss, np.float64)
    raw = np.where(self.by_seed.valid, raw, np.nan)
    if j is not None:
      return raw[:, j], key, mode
    with np.errstate(invalid="ignore"):
      values = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}[stat](raw, axis=1)
    return np.where(np.all(self.by_seed.valid, axis=1), values, np.nan), key, mode

  def _ranks(self, key=None, mode=None, seed=None) -> np.ndarray:
    values, _, mode = self.score(key, mode, seed=seed)
    ok = np.isfinite(values)
    order = np.argsort(np.where(ok, -values if mode == "max" else values, np.inf), kind="stable")
    ranks = np.zeros(len(values), np.int64)
    ranks[order] = np.arange(1, len(values) + 1)
    return np.where(ok, ranks, 0)

  def table(self, *, seed: int | None = None) -> list[dict]:
    """One dict per configuration (grid order): its hyperparameters, ``train_loss``, ``eval`` (if any),
    ``valid`` and ``rank`` (1 = best by :meth:`score`; None for an invalid configuration). Every value
    is a plain Python scalar (a NumPy or JAX scalar in the grid shows as the number it holds).

    The numbers are means over seeds; with several seeds each also has ``_std``, ``_min`` and
    ``_max`` (e.g. ``eval_std``). With ``seed=``, the numbers of that seed alone.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from lr_jax import sweep
      >>> res = sweep(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...             optimizer=lambda h: optax.sgd(h["lr"]), grid={"lr": [0.1, 0.2, 1e4]}, num_steps=5)
      >>> for row in res.table(): print(row["lr"], f"{row['train_loss']:.4f}", row["valid"], row["rank"])
      0.1 0.2147 True 2
      0.2 0.0121 True 1
      10000.0 nan False None
    """
    fn = "SweepResult.table"
    j = self._seed_index(seed, fn)
    ranks = self._ranks(seed=seed)
    many = j is None and self.by_seed is not None and len(self.by_seed.seeds) > 1
    keys = ["train_loss"] + (["eval"] if self.eval is not None else [])
    cols = {}
    for k in keys:
      cols[k] = self.score(k, seed=seed)[0] if j is not None else self._raw_mean(k)
      if many:
        for s in ("std", "min", "max"):
          cols[f"{k}_{s}"] = self.score(k, stat=s)[0]
    valid = self.valid if j is None else self.by_seed.valid[:, j]
    rows = []
    for i, c in enumerate(self.configs):
      row = {k: _loop.plain_number(v) for k, v in c.items()}
      row.update({name: float(v[i]) for name, v in cols.items()})
      row["valid"] = bool(valid[i])
      row["rank"] = int(ranks[i]) if ranks[i] else None
      rows.append(row)
    return rows

  def _raw_mean(self, key):
    return np.asarray(self.eval if key == "eval" else self.train_loss, np.float64)

  def best_index(self, key: str | None = None, mode: str | None = None, *, seed: int | None = None) -> int:
    """The index (into ``configs``) of the best valid configuration, by :meth:`score`.

    Raises:
      ValueError: if no configuration is valid, or ``key`` / ``mode`` / ``seed`` is unknown.
    """
    ranks = self._ranks(key, mode, seed)
    if not np.any(ranks):
      raise ValueError("SweepResult.best: no configuration finished with finite losses.")
    return int(np.argmax(ranks == 1))

  def best(self, key: str | None = None, mode: str | None = None, *, seed: int | None = None) -> dict:
    """The :meth:`table` row of the best valid configuration, by :meth:`score` (mean over seeds).

    Args:
      key: ``"eval"`` or ``"train_loss"``; default ``"eval"`` when an ``eval_fn`` was given, else
        ``"train_loss"``.
      mode: ``"min"`` or ``"max"``; default the sweep's ``eval_mode`` for ``"eval"`` and ``"min"``
        for ``"train_loss"``.
      seed: rank by that seed alone.

    Raises:
      ValueError: if no configuration is valid, or ``key`` / ``mode`` / ``seed`` is unknown.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from lr_jax import sweep
      >>> res = sweep(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...             optimizer=lambda h: optax.sgd(h["lr"]), grid={"lr": [0.1, 0.4, 2.0]}, num_steps=5)
      >>> print(res.best()["lr"])
      0.4
    """
    return self.table(seed=seed)[self.best_index(key, mode, seed=seed)]

  def _best_lane(self, key, mode, seed, fn) -> tuple[int, int]:
    """(configuration, seed index) of the winner: the best configuration, then its best seed."""
    i = self.best_index(key, mode, seed=seed)
    j = self._seed_index(seed, fn)
    if j is None:
      key, mode = self._key_mode(key, mode, fn)
      raw = np.asarray(self.by_seed.eval if key == "eval" else self.by_seed.train_loss, np.float64)[i]
      j = int(np.nanargmax(raw) if mode == "max" else np.nanargmin(raw))
    return i, j

  def _run_of(self, key, mode, seed, fn) -> TrainedRun:
    i, j = self._best_lane(key, mode, seed, fn)
    if self.params is not None:
      idx = (i, j) if self._has_seed_axis() else (i,)
      return TrainedRun(
        i, self.by_seed.seeds[j], _take_lane(self.params, idx), _take_lane(self.opt_state, idx)
      )
    run = self.best_run
    if run is None or (run.index, run.seed) != (i, self.by_seed.seeds[j]):
      raise ValueError(
        f"{fn}: with keep_params=False only the default winner's params are kept (configuration "
        f"{None if run is None else run.index}, seed {None if run is None else run.seed}); this ranking picks "
        f"configuration {i}, seed {self.by_seed.seeds[j]}. Sweep with keep_params=True."
      )
    return run

  def _has_seed_axis(self) -> bool:
    return self.seeds is not None

  def best_params(self, key: str | None = None, mode: str | None = None, *, seed: int | None = None):
    """The trained params of the best configuration (by :meth:`best`), of its best seed (or ``seed``).

    The pytree as given to :func:`sweep` (or returned by its ``init_fn``), ready to train further.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from lr_jax import sweep
      >>> res = sweep(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
      ...             optimizer=lambda h: optax.sgd(h["lr"]), grid={"lr": [0.1, 0.4]}, num_steps=5)
      >>> print(res.best_params())  # 1 * (1 - 2 * 0.4)**5
      [0.00032 0.00032]
    """
    return self._run_of(key, mode, seed, "SweepResult.best_params").params

  def best_opt_state(self, key: str | None = None, mode: str | None = None, *, seed: int | None = None):
    """The optimizer state of the run :meth:`best_params` returns, to continue training from it with
    ``optimizer(hparams)`` of the winner (``hparams`` from :meth:`best`)."""
    return self._run_of(key, mode, seed, "SweepResult.best_opt_state").opt_state

  def plot(self, ax=None):
    """Loss curves, and the ranking score against each swept axis; see :func:`lr_jax.plot.sweep`."""
    from lr_jax import plot

    return plot.sweep(self, ax=ax)

  def __repr__(self) -> str:
    c, n = np.shape(self.losses)
    try:
      row = self.best()
      _, key, mode = self.score()
      best = ", ".join(f"{k}={row[k]!r}" for k in self.configs[0])
      best = f"best=({best}) by {key} ({mode}) {row[key]:.4g}"
    except ValueError:
      best = "best=None"
    seeds = (
      f" x {len(self.by_seed.seeds)} seeds"
      if self.by_seed is not None and len(self.by_seed.seeds) > 1
      else ""
    )
    return (
      f"SweepResult({c} configurations{seeds} x {n} steps, {int(np.sum(self.valid))} valid, {best}, "
      f"strategy={self.strategy!r}, chunk_size={self.chunk_size}, num_devices={self.num_devices})"
    )
