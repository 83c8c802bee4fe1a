"""Hyperparameter search in one compiled program: random search, successive halving, PBT.

:func:`search` samples configurations from a space (:mod:`lr_jax.spaces`) and trains them as the
lanes of a :class:`lr_jax._population.Population`: stopping a trial is dropping its lane (a gather),
copying one is a gather too, because every hyperparameter of every lr_jax schedule and optimizer is
a traced value. ``method="optuna"`` is dispatched to ``lr_jax._optuna`` (Optuna's samplers and
pruners driving batches of lanes).
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from lr_jax import _loop, spaces
from lr_jax import _population as _pp
from lr_jax import _sweep as _sw
from lr_jax._search_result import Rung, SearchResult
from lr_jax._sweep_result import TrainedRun
from lr_jax._validation import flag

__all__ = ["SearchResult", "search"]

METHODS = ("random", "halving", "pbt", "optuna")
_OPTIONS = {
  "halving": ("eta", "min_steps", "brackets"),
  "pbt": ("interval", "quantile", "resample_prob", "perturb"),
}


# --------------------------------------------------------------------------------------------------
# Arguments.


def _space(space, fn: str) -> dict:
  """Dimensions of ``space``; a list value is a categorical choice."""
  if isinstance(space, dict):
    space = {
      k: spaces.categorical(v) if isinstance(v, (list, tuple, np.ndarray)) and not isinstance(v, str) else v
      for k, v in space.items()
    }
  return spaces.check_space(space, fn)


def _finite(dims: dict) -> bool:
  return all(isinstance(d, (spaces.Categorical, spaces.Fixed)) for d in dims.values())


def _configs(dims: dict, num_samples, sampler, seed, fn) -> dict[str, np.ndarray]:
  if num_samples is None:
    if not _finite(dims):
      raise ValueError(
        f"{fn}: `num_samples` is required for a space with continuous or integer dimensions, got "
        f"num_samples=None with space {dims!r}."
      )
    axes = [d.choices if isinstance(d, spaces.Categorical) else (d.value,) for d in dims.values()]
    rows = list(itertools.product(*axes))
    return {k: np.asarray([r[j] for r in rows]) for j, k in enumerate(dims)}
  if isinstance(num_samples, bool) or not isinstance(num_samples, (numbers.Integral, np.integer)):
    raise ValueError(f"{fn}: `num_samples` must be an integer >= 1, got num_samples={num_samples!r}.")  # noqa: TRY004 - the contract: a named ValueError
  if num_samples < 1:
    raise ValueError(f"{fn}: `num_samples` must be an integer >= 1, got num_samples={num_samples!r}.")
  if sampler not in spaces.SAMPLERS:
    raise ValueError(f"{fn}: `sampler` must be one of {spaces.SAMPLERS}, got sampler={sampler!r}.")
  return spaces.sample(dims, int(num_samples), seed=seed, sampler=sampler)


def _int_in(v, name, lo, hi, fn) -> int:
  if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)) or not lo <= v <= hi:
    raise ValueError(f"{fn}: `{name}` must be an integer in [{lo}, {hi}], got {name}={v!r}.")
  return int(v)


def _real_in(v, name, lo, hi, fn, lo_open=False) -> float:
  ok = not isinstance(v, bool) and isinstance(v, (numbers.Real, np.integer, np.floating)) and math.isfinite(v)
  if not ok or not ((lo < v) if lo_open else (lo <= v)) or not v <= hi:
    lo_s = "(" if lo_open else "["
    raise ValueError(f"{fn}: `{name}` must be a number in {lo_s}{lo}, {hi}], got {name}={v!r}.")
  return float(v)


def _cast_row(v, dim=None):
  """A lane's value as a plain Python number: a categorical's own choice, a float32 by its shortest
  repr (``0.9``, not ``0.8999999761581421``)."""
  if isinstance(dim, spaces.Categorical):
    choices = np.asarray(dim.choices, np.float64)
    return dim.choices[int(np.argmin(np.abs(choices - float(v))))]
  if isinstance(v, np.floating) and v.dtype == np.float32:
    return float(str(v))
  return v.item() if isinstance(v, np.generic) else v


# --------------------------------------------------------------------------------------------------
# Bookkeeping shared by the methods.


class _Book:
  """Per-trial numbers on the host; ``lanes[j]`` is the trial in lane j."""

  def __init__(self, pop: _pp.Population, num_steps: int, progress: bool):
    n = pop.size
    self.pop = pop
    self.lanes = np.arange(n)
    self.score = np.full(n, np.nan)
    self.steps = np.zeros(n, np.int64)
    self.losses = np.full((n, num_steps), np.nan, np.float32)
    self.bar = _loop.Progress(num_steps, "search", progress)

  def advance(self, k: int) -> np.ndarray:
    t = self.pop.step
    out = self.pop.advance(k)
    self.losses[self.lanes, t : t + k] = out.losses
    self.score[self.lanes] = out.score
    self.steps[self.lanes] += k
    self.bar.update(k)
    return out.score


def _order(score: np.ndarray, mode: str) -> np.ndarray:
  """Lane indices best first; NaN (diverged) last; ties keep lane order."""
  key = np.where(np.isfinite(score), -score if mode == "max" else score, np.inf)
  return np.argsort(key, kind="stable")


def _result(method, parts, configs, key, mode, num_steps, keep_params, sampler, seed, seeds, **extra):
  """The :class:`SearchResult` of one population (``parts = [(book, pop, 0)]``) or of several (Hyperband's
  brackets, trial indices offset by ``offset``)."""
  score = np.concatenate([b.score for b, _, _ in parts])
  steps = np.concatenate([b.steps for b, _, _ in parts])
  losses = np.concatenate([b.losses for b, _, _ in parts])
  lanes = [b.lanes + off for b, _, off in parts]
  res = SearchResult(
    method=method, configs=configs, score=score, key=key, mode=mode, steps=steps, valid=np.isfinite(score),
    losses=losses, num_steps=num_steps, steps_trained=int(sum(p.steps_trained for _, p, _ in parts)),
    sampler=sampler, seed=seed, seeds=seeds, **extra,
  )  # fmt: skip
  gathered = _sw._gathered  # with several processes: whole on every process (a collective, called alike)
  if np.any(res.valid):
    i = res.best_index()
    for (_, pop, _), ls in zip(parts, lanes):
      if i in ls:
        lane = int(np.flatnonzero(ls == i)[0])
        run = TrainedRun(i, int(seeds[i]) if seeds is not None else 0, gathered(pop.params(lane)),
                         gathered(pop.opt_state(lane)))  # fmt: skip
        res = res._replace(best_run=run)
  if keep_params:
    cat = lambda *xs: jnp.concatenate(xs) if _loop._is_array(xs[0]) else xs[0]
    params = [gathered(p.params()) for _, p, _ in parts]
    states = [gathered(p.opt_state()) for _, p, _ in parts]
    res = res._replace(
      params=params[0] if len(parts) == 1 else jax.tree_util.tree_map(cat, *params),
      opt_state=states[0] if len(parts) == 1 else jax.tree_util.tree_map(cat, *states),
      final_trials=np.concatenate(lanes),
    )
  return res


# --------------------------------------------------------------------------------------------------
# Methods.


def _random(book: _Book, num_steps: int, progress: bool):
  if progress:
    for _, length in _sw._parts(num_steps, max(1, math.ceil(num_steps / 20)), None):
      book.advance(length)
  else:
    book.advance(num_steps)
  return {}


def halving_rungs(n: int, num_steps: int, eta: int, min_steps: int) -> list[tuple[int, int]]:
  """``[(lanes, steps trained at the end of the rung)]`` of synchronous successive halving: rung k
  trains ``n_k = max(1, n_{k-1} // eta)`` lanes up to ``min(num_steps, min_steps * eta**k)`` steps."""
  rungs, lanes, k = [], n, 0
  while True:
    steps = min(num_steps, min_steps * eta**k)
    if lanes == 1:
      steps = num_steps
    rungs.append((lanes, steps))
    if steps >= num_steps:
      return rungs
    lanes, k = max(1, lanes // eta), k + 1


def _default_min_steps(num_steps: int, n: int, eta: int) -> int:
  """``num_steps // eta**floor(log_eta n)``: as many rungs as halvings of ``n`` lanes down to 1."""
  k, m = 0, n
  while m >= eta:
    m, k = m // eta, k + 1
  return max(1, num_steps // eta**k)


def hyperband_sizes(n: int, eta: int, brackets: int) -> list[int]:
  """Trials per Hyperband bracket (Li et al. 2018): bracket b starts ``ceil(n * B / ((B - b) * eta**b))``
  trials at ``eta**b`` times the first bracket's first rung, so each bracket costs about the same."""
  return [max(1, math.ceil(n * brackets / ((brackets - b) * eta**b))) for b in range(brackets)]


def _halving(
  book: _Book, num_steps: int, eta: int, min_steps: int, mode: str, bracket: int = 0, offset: int = 0
):
  pop = book.pop
  plan = halving_rungs(pop.size, num_steps, eta, min_steps)
  rungs, done = [], 0
  for r, (lanes, steps) in enumerate(plan):
    score = book.advance(steps - done)
    done = steps
    order = _order(score, mode)
    keep = plan[r + 1][0] if r + 1 < len(plan) else len(order)
    kept = order[:keep]
    rungs.append(Rung(steps, book.lanes + offset, score.copy(), book.lanes[kept] + offset, bracket))
    if r + 1 < len(plan):
      pop.select(kept)
      book.lanes = book.lanes[kept]
  return {"rungs": rungs}


def _pbt(book: _Book, dims, num_steps, interval, quantile, resample_prob, factors, mode, seed):
  pop = book.pop
  rng = np.random.default_rng([seed, 0x5EED])
  n = pop.size
  n_q = max(1, int(quantile * n))
  names = list(dims)
  history = {k: [pop.hparams[k].copy()] for k in names}
  lineage, scores, at = [], [], []
  free = [k for k in names if not isinstance(dims[k], spaces.Fixed)]
  done = 0
  while done < num_steps:
    k = min(interval, num_steps - done)
    score = book.advance(k)
    done += k
    if done >= num_steps:
      break
    order = _order(score, mode)
    finite = order[np.isfinite(score[order])]
    dead = order[~np.isfinite(score[order])]
    worst = list(dead) + list(finite[::-1])  # every diverged lane first, then the worst finite ones
    bottom = np.asarray(worst[: max(n_q, len(dead))], np.int64)
    top = np.asarray([i for i in finite[:n_q] if i not in set(bottom.tolist())], np.int64)
    parent = np.arange(n)
    if top.size:
      src = rng.choice(top, size=bottom.size)
      hp = pop.hparams
      new = {}
      for name in free:
        d = dims[name]
        values = d.perturb(hp[name][src], rng, factors)
        fresh = d.from_unit(rng.random(bottom.size))
        new[name] = np.where(rng.random(bottom.size) < resample_prob, fresh, values)
      pop.copy(bottom, src, new)
      parent[bottom] = src
      book.score[bottom] = book.score[src]
      book.steps[bottom] = book.steps[src]
    lineage.append(parent)
    scores.append(score.copy())
    at.append(done)
    for name in names:
      history[name].append(pop.hparams[name].copy())
  return {
    "lineage": np.asarray(lineage, np.int64).reshape(-1, n),
    "hparam_history": {k: np.stack(v) for k, v in history.items()},
    "score_history": np.asarray(scores).reshape(-1, n),
    "history_steps": np.asarray(at, np.int64),
  }


# --------------------------------------------------------------------------------------------------
# Public entry point.


def search(
  loss_fn: Callable[[Any, Any], jax.Array],
  params: Any,
  batches: Any,
  *,
  optimizer: Callable[[dict], optax.GradientTransformation],
  space: dict,
  num_steps: int,
  method: str = "random",
  num_samples: int | None = None,
  sampler: str = "random",
  seed: int = 0,
  eval_fn: Callable[..., jax.Array] | None = None,
  eval_mode: str | None = None,
  eval_batches: Any = None,
  init_fn: Callable[[jax.Array], Any] | None = None,
  seeds: Sequence[int] | None = None,
  eta: int | None = None,
  min_steps: int | None = None,
  brackets: int | None = None,
  interval: int | None = None,
  quantile: float | None = None,
  resample_prob: float | None = None,
  perturb: tuple[float, float] | None = None,
  keep_params: bool = True,
  max_parallel: int | None = None,
  mesh: Mesh | None = None,
  progress: bool = False,
  chunk_steps: int | None = None,
  **options,
) -> SearchResult:
  """Samples hyperparameter configurations and trains them together, stopping or copying trials.

  ``num_samples`` configurations are drawn from ``space`` (:func:`lr_jax.spaces.sample`, seeded;
  with ``num_samples=None`` a space of lists and fixed values is enumerated as a grid) and trained as
  the lanes of one compiled program, as :func:`lr_jax.sweep` trains a grid (vmapped or
  ``lax.map``-ped over lanes, sharded over ``mesh``). Each trial i is the plain Optax loop of
  ``sweep`` with ``optimizer(h_i)``; its *score* is ``eval_fn`` on held-out data when given (better
  in the direction ``eval_mode``), else the mean training loss over all training batches.

  * ``method="random"``: every trial trains ``num_steps`` steps.
  * ``method="halving"``: synchronous successive halving (Jamieson & Talwalkar 2016; Li et al.
    2017). Rung k trains the surviving lanes up to ``min_steps * eta**k`` steps (the last rung to
    ``num_steps``), scores them, and keeps the best ``n_k // eta`` (at least 1), which continue from
    their params and optimizer state (no restart). Defaults: ``eta=3``, ``min_steps = num_steps //
    eta**floor(log_eta(num_samples))``. One program per rung (lane count). ``brackets=B`` runs
    Hyperband's B brackets of it (Li et al. 2018; see ``brackets`` below).
  * ``method="pbt"``: population-based training (Jaderberg et al. 2017). Every ``interval`` steps
    (default ``num_steps // 10``) the members are ranked by score; each of the worst ``quantile``
    (default 0.25) copies the params, optimizer state and hyperparameters of a random member of the
    best ``quantile`` (bit for bit) and *explores*: each hyperparameter is, with probability
    ``resample_prob`` (default 0.25), drawn again from its dimension, else multiplied by a factor
    drawn from ``perturb`` (default ``(0.8, 1.25)``; integers move to a different whole number,
    categorical values to a neighbouring choice), clipped to the dimension's bounds. The schedule
    of a member is thus piecewise; ``lineage`` and ``hparam_history`` record it.
  * ``method="optuna"``: Optuna's samplers and pruners (``study=``), in ``lr_jax._optuna``.

  A trial whose loss or score becomes non-finite is pruned: it ranks last, halving drops it, PBT
  replaces it and never copies from it. The same arguments and ``seed`` give the same result.

  Across processes (``jax.distributed``), as ``sweep``: every process calls ``search`` with the same
  arguments and data; the lanes are sharded over every process's devices, each rung's or interval's
  scores are gathered onto every process, which all make the same choices from them (the same
  seeded generator), and the result (params and optimizer states included) comes back whole on every
  process, equal to the one-process run (the choices exactly, the numbers to float32 rounding).

  Args:
    loss_fn, params, batches, optimizer, init_fn, eval_fn, eval_mode, eval_batches, keep_params,
      max_parallel, mesh, progress, chunk_steps: as in :func:`lr_jax.sweep`. ``batches`` may be
      stacked, a list, or any iterable of batches (a generator, a data loader), read ``chunk_steps``
      batches at a time as the trials advance: every trial trains on the t-th batch read at its
      step t, whether it continues (halving), is copied (PBT) or not. Without ``eval_fn`` a trial
      on an iterable is scored on the last chunk it trained on (its mean loss after the chunk).
      ``brackets`` starts each bracket from step 0 again, so it needs stacked batches, a list or a
      re-iterable source (read again from its start), not an iterator; ``method="optuna"`` needs
      stacked batches or a list.
    space: ``{name: dimension}`` with :mod:`lr_jax.spaces` dimensions, Optuna distributions, lists
      (categorical) or numbers (fixed).
    num_steps: steps of a trial that runs to the end, >= 1.
    method: ``"random"``, ``"halving"``, ``"pbt"`` or ``"optuna"``.
    num_samples: trials (PBT: population size); None enumerates a finite space.
    sampler: ``"random"`` or ``"halton"`` (scrambled low-discrepancy points).
    seed: seeds the sampler and PBT's choices (an integer >= 0).
    seeds: with ``init_fn``, the seed of each trial's initialisation (default ``0..num_samples-1``).
    eta, min_steps: halving's reduction factor (integer >= 2) and first rung's steps.
    brackets: halving only: run Hyperband's ``brackets`` brackets of successive halving (Li et al.
      2018): bracket b starts :func:`hyperband_sizes` trials (``num_samples`` in bracket 0) at
      ``min_steps * eta**b`` steps, so later brackets stop fewer trials, more safely; trials are
      drawn in one design and numbered bracket after bracket (``Rung.bracket``). Default 1.
    interval, quantile, resample_prob, perturb: PBT's options, above.
    **options: passed to the Optuna bridge (e.g. ``study=``) with ``method="optuna"``.

  Returns:
    A :class:`lr_jax.SearchResult`.

  Raises:
    ValueError: a malformed space, an unknown ``method`` or ``sampler``, an option of another method,
      out-of-range options, and every argument error of :func:`lr_jax.sweep`.

  References:
    Bergstra & Bengio, "Random search for hyper-parameter optimization", JMLR 2012; Jamieson &
    Talwalkar, "Non-stochastic best arm identification and hyperparameter optimization", AISTATS
    2016; Li et al., "Hyperband: a novel bandit-based approach to hyperparameter optimization",
    JMLR 2018; Jaderberg et al., "Population based training of neural networks", 2017.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import search, spaces
    >>> loss = lambda w, b: jnp.sum((w - b) ** 2)
    >>> res = search(loss, jnp.ones(2), jnp.zeros((1, 2)), optimizer=lambda h: optax.sgd(h["lr"]),
    ...              space={"lr": spaces.log_uniform(1e-3, 0.4)}, num_samples=9, num_steps=27,
    ...              method="halving", seed=0)
    >>> print([(r.steps, len(r.trials)) for r in res.rungs], res.steps_trained)
    [(3, 9), (9, 3), (27, 1)] 63
    >>> print(f"{res.best()['lr']:.3f} {res.best()['train_loss']:.2e}")  # 2 (1 - 2 lr)**54
    0.237 1.66e-15
  """
  fn = "search"
  if method not in METHODS:
    raise ValueError(f"{fn}: `method` must be one of {METHODS}, got method={method!r}.")
  seed = spaces.check_seed(seed, fn)
  named = {"eta": eta, "min_steps": min_steps, "brackets": brackets, "interval": interval, "quantile": quantile,
           "resample_prob": resample_prob, "perturb": perturb}  # fmt: skip
  given = {k: v for k, v in named.items() if v is not None}
  if method == "optuna":
    from lr_jax import _optuna

    return _optuna.search_optuna(
      loss_fn, params, batches, optimizer=optimizer, space=space, num_steps=num_steps, num_samples=num_samples,
      seed=seed, eval_fn=eval_fn, eval_mode=eval_mode, eval_batches=eval_batches, init_fn=init_fn,
      seeds=seeds, keep_params=keep_params, max_parallel=max_parallel, mesh=mesh, progress=progress,
      **given, **options,
    )  # fmt: skip
  if options:
    raise ValueError(f"{fn}: unknown keyword arguments {sorted(options)} for method={method!r}.")
  wrong = [k for k in given if k not in _OPTIONS.get(method, ())]
  if wrong:
    raise ValueError(f"{fn}: {wrong} are options of another method, not of method={method!r}.")
  num_steps = _sw._positive_int(num_steps, "num_steps", fn)
  keep_params = flag(keep_params, fn=fn, name="keep_params")
  progress = flag(progress, fn=fn, name="progress")
  dims = _space(space, fn)
  if method == "halving":
    eta = 3 if eta is None else _int_in(eta, "eta", 2, 2**20, fn)
    brackets = 1 if brackets is None else _int_in(brackets, "brackets", 1, 64, fn)
    if min_steps is not None:
      min_steps = _int_in(min_steps, "min_steps", 1, num_steps, fn)
  elif method == "pbt":
    interval = (
      max(1, num_steps // 10) if interval is None else _int_in(interval, "interval", 1, num_steps, fn)
    )
    quantile = 0.25 if quantile is None else _real_in(quantile, "quantile", 0.0, 0.5, fn, lo_open=True)
    resample_prob = 0.25 if resample_prob is None else _real_in(resample_prob, "resample_prob", 0.0, 1.0, fn)
    if perturb is None:
      perturb = (0.8, 1.25)
    if isinstance(perturb, (str, bytes)) or not isinstance(perturb, Sequence) or len(perturb) == 0:
      raise ValueError(f"{fn}: `perturb` must be a sequence of positive factors, got perturb={perturb!r}.")
    perturb = tuple(_real_in(f, "perturb", 0.0, math.inf, fn, lo_open=True) for f in perturb)
  sizes = None
  if method == "halving" and brackets > 1:
    if _loop.is_stream(batches) and iter(batches) is batches:
      raise ValueError(
        f"{fn}: Hyperband's brackets each start from step 0, so `batches` must be stacked, a list or a "
        f"re-iterable source, got an iterator {type(batches).__name__} with brackets={brackets}."
      )
    if num_samples is None:
      raise ValueError(f"{fn}: `brackets` (Hyperband) draws its trials: give `num_samples`, got None.")
    sizes = hyperband_sizes(int(num_samples), eta, brackets)
    cols = _configs(dims, sum(sizes), sampler, seed, fn)
  else:
    cols = _configs(dims, num_samples, sampler, seed, fn)
  n = len(next(iter(cols.values())))
  if method == "pbt" and n < 2:
    raise ValueError(f"{fn}: PBT needs a population of at least 2, got num_samples={num_samples!r}.")
  out_seeds = _pp._lane_seeds(seeds, n, init_fn, fn) if init_fn is not None or seeds is not None else None
  key, mode = ("eval", eval_mode) if eval_fn is not None else ("train_loss", "min")
  configs = [{k: _cast_row(cols[k][i], dims[k]) for k in dims} for i in range(n)]

  def begin(lo, hi):
    pop = _pp.start(
      loss_fn, params, batches, optimizer=optimizer, hparams={k: v[lo:hi] for k, v in cols.items()},
      seeds=None if out_seeds is None else out_seeds[lo:hi], init_fn=init_fn, eval_fn=eval_fn,
      eval_mode=eval_mode, eval_batches=eval_batches, max_parallel=max_parallel, mesh=mesh,
      chunk_steps=chunk_steps, fn=fn,
    )  # fmt: skip
    return _Book(pop, num_steps, progress), pop

  if method == "halving":
    parts, rungs, offset = [], [], 0
    for b, size in enumerate(sizes or [n]):
      book, pop = begin(offset, offset + size)
      first = min_steps if min_steps is not None else _default_min_steps(num_steps, (sizes or [n])[0], eta)
      first = min(num_steps, first * eta**b)
      rungs += _halving(book, num_steps, eta, first, mode, bracket=b, offset=offset)["rungs"]
      parts.append((book, pop, offset))
      offset += size
    return _result(method, parts, configs, key, mode, num_steps, keep_params, sampler, seed, out_seeds,
                   rungs=rungs)  # fmt: skip
  book, pop = begin(0, n)
  if method == "random":
    extra = _random(book, num_steps, progress)
  else:
    extra = _pbt(book, dims, num_steps, interval, quantile, resample_prob, perturb, mode, seed)
    final = pop.hparams
    configs = [{k: _cast_row(final[k][i], dims[k]) for k in dims} for i in range(n)]
  return _result(
    method, [(book, pop, 0)], configs, key, mode, num_steps, keep_params, sampler, seed, out_seeds, **extra
  )
