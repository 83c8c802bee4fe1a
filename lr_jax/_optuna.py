"""The Optuna bridge of :func:`lr_jax.search` (``method="optuna"``): a batch of Optuna trials trained in
one vmapped program.

Optuna (an optional dependency, the ``search`` extra) is imported on first use. The study keeps its
sampler (TPE, CMA-ES, ...), its pruner and its storage; lr_jax only replaces the objective's training
loop: ``study.ask()`` n times, train the n configurations as the lanes of one compiled program (the
program of :func:`lr_jax.sweep`), ``trial.report`` every ``eval_every`` steps, mask the lanes that the
pruner stops (told ``PRUNED`` at once), and ``study.tell`` the rest.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lr_jax import _sweep
from lr_jax._sweep_result import TrainedRun, _take_lane
from lr_jax._validation import number

__all__ = ["import_optuna", "search_optuna", "to_optuna_distributions"]

FN = "search"


def import_optuna():
  """``optuna``, or an ``ImportError`` that names the extra to install."""
  try:
    import optuna
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
      "search: method='optuna' needs Optuna, which is not installed: pip install 'lr-jax[search]' "
      "(or pip install optuna)."
    ) from e
  return optuna


# --------------------------------------------------------------------------------------------------
# Search space -> Optuna distributions, and a trial's params -> the lanes' hyperparameter columns.


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _dimension_to_optuna(dim, dists):
  """An ``lr_jax.spaces`` dimension as an Optuna distribution (None for a fixed value)."""
  from lr_jax import spaces

  if isinstance(dim, spaces.Fixed):
    return None
  if isinstance(dim, spaces.LogUniform):
    return dists.FloatDistribution(dim.low, dim.high, log=True)
  if isinstance(dim, spaces.Uniform):
    return dists.FloatDistribution(dim.low, dim.high)
  if isinstance(dim, spaces.Integer):
    return dists.IntDistribution(dim.low, dim.high, log=dim.log)
  return dists.CategoricalDistribution(list(dim.choices))


def to_optuna_distributions(space: Mapping) -> tuple[dict, dict]:
  """Splits ``space`` into Optuna distributions (asked) and fixed values (the same in every lane).

  A value may be an Optuna distribution (``FloatDistribution``, ``IntDistribution``,
  ``CategoricalDistribution``: used as it is, with its ``step`` and any choices), a dimension of
  ``lr_jax.spaces`` (``log_uniform(a, b)`` becomes ``FloatDistribution(a, b, log=True)``,
  ``uniform`` a ``FloatDistribution``, ``integer`` an ``IntDistribution``, ``categorical`` a
  ``CategoricalDistribution``), a list (categorical choices, as in :func:`lr_jax.search`), or a number
  (fixed).

  Returns:
    ``(distributions, fixed)``: ``{name: BaseDistribution}`` and ``{name: number}``.

  Examples:
    >>> from lr_jax import spaces
    >>> asked, fixed = to_optuna_distributions({"lr": spaces.log_uniform(1e-4, 1e-1), "b1": 0.9})
    >>> print(asked["lr"], fixed)
    FloatDistribution(high=0.1, log=True, low=0.0001, step=None) {'b1': 0.9}
  """
  from lr_jax import spaces

  optuna = import_optuna()
  dists = optuna.distributions
  if not isinstance(space, Mapping) or not space:
    raise ValueError(f"{FN}: `space` must be a non-empty dict {{name: dimension}}, got space={space!r}.")
  asked, fixed = {}, {}
  for name, dim in space.items():
    if not isinstance(name, str):
      raise ValueError(f"{FN}: `space` names must be strings, got {name!r}.")  # noqa: TRY004 - the contract
    if isinstance(dim, dists.BaseDistribution):
      asked[name] = dists._convert_old_distribution_to_new_distribution(dim)
      continue
    if isinstance(dim, (list, tuple, np.ndarray)):
      dim = spaces.categorical(dim)
    d = _dimension_to_optuna(spaces.as_dimension(dim, name, FN), dists)
    if d is None:
      fixed[name] = number(
        dim if not isinstance(dim, spaces.Fixed) else dim.value, fn=FN, name=f"space[{name!r}]"
      )
    else:
      asked[name] = d
  if not asked:
    raise ValueError(f"{FN}: method='optuna' needs at least one dimension to sample, got only fixed {fixed}.")
  return asked, fixed


def _column_kind(dist) -> str:
  """How a distribution's values reach the lanes: ``"int"``, ``"float"`` or ``"index"``.

  A categorical of numbers passes its values (int32 if all are integers); any other categorical
  (strings, None, mixed) passes the index of the choice (int32), since a lane cannot trace a string.
  """
  optuna = import_optuna()
  dists = optuna.distributions
  if isinstance(dist, dists.IntDistribution):
    return "int"
  if isinstance(dist, dists.FloatDistribution):
    return "float"
  choices = dist.choices
  if all(_is_int(c) for c in choices):
    return "int"
  if all(isinstance(c, numbers.Real) and not isinstance(c, bool) and math.isfinite(c) for c in choices):
    return "float"
  return "index"


def _lane_value(dist, kind: str, value):
  return dist.choices.index(value) if kind == "index" else value


# --------------------------------------------------------------------------------------------------
# The loop.


def _check(
  study, eval_fn, eval_mode, num_samples, batch_size, max_trials, eval_every, num_steps, batches, optuna
):
  if not isinstance(study, optuna.study.Study):
    raise ValueError(  # noqa: TRY004 - the contract: a named ValueError
      f"{FN}: `study` must be an optuna.Study (optuna.create_study(...)), got study={study!r}."
    )
  if len(study.directions) != 1:
    raise ValueError(
      f"{FN}: method='optuna' optimizes one value, got a study with {len(study.directions)} directions."
    )
  want = "max" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
  have = eval_mode if eval_fn is not None else "min"
  if want != have:
    what = f"eval_mode={eval_mode!r}" if eval_fn is not None else "no eval_fn (the train loss, minimized)"
    raise ValueError(
      f"{FN}: the study's direction ({study.direction.name}) must match what is optimized, got {what}."
    )
  if num_samples is None:
    raise ValueError(f"{FN}: method='optuna' needs `num_samples` (the trials to ask), got num_samples=None.")
  num_samples = _sweep._positive_int(num_samples, "num_samples", fn=FN)
  batch_size = _sweep._positive_int(batch_size, "batch_size", fn=FN)
  num_steps = _sweep._positive_int(num_steps, "num_steps", fn=FN)
  if max_trials is not None:
    max_trials = _sweep._positive_int(max_trials, "max_trials", fn=FN)
  if eval_every is not None:
    eval_every = _sweep._positive_int(eval_every, "eval_every", fn=FN)
    if eval_every > num_steps:
      raise ValueError(
        f"{FN}: `eval_every` must be <= num_steps, got eval_every={eval_every} with num_steps={num_steps}."
      )
  if _sweep._loop.is_stream(batches):
    raise ValueError(
      f"{FN}: method='optuna' trains every batch of trials on the same data, so `batches` must be stacked "
      f"arrays or a list of batches, got an iterable {type(batches).__name__}."
    )
  return num_samples, batch_size, max_trials, eval_every, num_steps


def _n_trials(study, optuna) -> int:
  """Trials of the study that count toward ``max_trials``: every state but FAIL (a RUNNING one of
  another worker will finish)."""
  states = tuple(s for s in optuna.trial.TrialState if s != optuna.trial.TrialState.FAIL)
  return len(study.get_trials(deepcopy=False, states=states))


@dataclasses.dataclass
class _Log:
  """Per-trial records, in the order the trials were asked."""

  numbers: list = dataclasses.field(default_factory=list)
  states: list = dataclasses.field(default_factory=list)
  score: list = dataclasses.field(default_factory=list)
  steps: list = dataclasses.field(default_factory=list)
  configs: list = dataclasses.field(default_factory=list)
  losses: list = dataclasses.field(default_factory=list)
  curves: list = dataclasses.field(default_factory=list)
  seeds: list = dataclasses.field(default_factory=list)
  kept: list = dataclasses.field(default_factory=list)  # (trial index, params, opt_state) of COMPLETE trials
  best: tuple = (None, None)  # (value, TrainedRun)


def _prefixed(e: ValueError) -> ValueError:
  return ValueError(f"{FN}: {str(e).removeprefix('sweep: ')}")


def search_optuna(
  loss_fn: Callable[[Any, Any], jax.Array],
  params: Any,
  batches: Any,
  *,
  optimizer: Callable[[dict], Any],
  space: Mapping,
  num_steps: int,
  num_samples: int | None,
  study=None,
  batch_size: int = 16,
  eval_every: int | None = None,
  max_trials: int | None = None,
  seed: int = 0,
  eval_fn: Callable[..., jax.Array] | None = None,
  eval_mode: str | None = None,
  eval_batches: Any = None,
  init_fn: Callable[[jax.Array], Any] | None = None,
  seeds: Any = None,
  keep_params: bool = True,
  max_parallel: int | None = None,
  mesh=None,
  progress: bool = False,
  **other,
):
  """``lr_jax.search(..., method="optuna", study=...)``: Optuna trials, ``batch_size`` per program.

  For each batch of ``n = min(batch_size, trials left)`` trials (Optuna's ask-and-tell interface)::

      trials = [study.ask(distributions) for _ in range(n)]       # the study's sampler (TPE, CMA-ES...)
      lanes  = init(trials' params)                                 # one vmapped program
      for t in eval_every, 2 * eval_every, ... (< num_steps):
        lanes = train(lanes, eval_every steps);  v = score(lanes)   # eval_fn, or the train loss
        for each running trial i: trial.report(v[i], t)
          if trial.should_prune(): study.tell(trial, state=PRUNED); mask lane i
          (a non-finite v[i]: study.tell(trial, state=FAIL))
      lanes = train(lanes, to num_steps)
      for each running trial i: study.tell(trial, score(lane i))    # NaN -> FAIL, as Optuna does

  so the study keeps its sampler, pruner and storage (in memory, an RDB such as SQLite/PostgreSQL, or
  a ``JournalStorage``), and several processes, on one machine or several, can run this on one
  study at once (each asks its own trials; Optuna's storage makes every ask and tell atomic).
  Every batch runs the same compiled programs (a short last batch is padded), and a batch stops
  early once all its trials are pruned; a pruned lane is masked, not removed, so it costs the same
  compute until its batch ends.

  Args:
    space: ``{name: dimension}``: :mod:`lr_jax.spaces` dimensions, Optuna distributions (used as
      they are, e.g. with a ``step``), lists (categorical) or numbers (fixed). A categorical of
      numbers reaches ``optimizer`` as its value; any other categorical (strings, say) as the index
      of the choice (an int32). ``configs`` holds the values Optuna suggested.
    num_samples: trials this call asks (as ``study.optimize(n_trials=)``: per process).
    study: an ``optuna.Study`` whose direction matches ``eval_mode`` (minimize without
      ``eval_fn``); by default an in-memory study with Optuna's defaults (TPE, median pruner).
    batch_size: trials trained together in one program (default 16).
    eval_every: report to the pruner every this many steps (default: only the final value).
    max_trials: stop asking once the study holds this many trials (any state but FAIL), counted
      before each ask, across all processes sharing the storage (as ``MaxTrialsCallback``: two
      processes asking at the same instant may both take the last one).
    seed: unused by this method (the study's sampler has its own seed).
    seeds: must be None: with ``init_fn``, trial number ``k`` initialises from ``jax.random.key(k)``.
    other arguments: as :func:`lr_jax.search`.

  Returns:
    A :class:`lr_jax.SearchResult` with ``method="optuna"``: the trials this call asked, in order;
    ``trial_numbers`` their Optuna numbers; ``score`` the value told (a pruned trial: its last
    reported value, with ``steps`` the steps it trained); ``score_history`` / ``history_steps`` the
    reported values ``[reports, trials]``.

  Raises:
    ImportError: Optuna is missing (``pip install 'lr-jax[search]'``).
    ValueError: a study whose direction differs from ``eval_mode``, a malformed space, options of
      another method, an iterable ``batches``, and every argument error of :func:`lr_jax.sweep`.

  On an exception (a broken pruner, a keyboard interrupt) the running trials of the batch are told
  ``FAIL`` before it propagates, so no trial is left ``RUNNING`` in the storage.

  References:
    Akiba et al., "Optuna: a next-generation hyperparameter optimization framework", KDD 2019.

  Examples:
    >>> import jax.numpy as jnp, optax, optuna
    >>> from lr_jax import search, spaces
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    >>> res = search(lambda w, b: jnp.sum((w - b) ** 2), jnp.ones(2), jnp.zeros((1, 2)),
    ...              optimizer=lambda h: optax.sgd(h["lr"]), space={"lr": spaces.log_uniform(1e-3, 0.5)},
    ...              num_steps=10, num_samples=8, method="optuna", study=study, batch_size=4)
    >>> print(len(study.trials), res.trial_numbers.tolist(), study.best_trial.number == res.best_index())
    8 [0, 1, 2, 3, 4, 5, 6, 7] True
  """
  optuna = import_optuna()
  if other:
    raise ValueError(
      f"{FN}: {sorted(other)} are not options of method='optuna' (its own: study, batch_size, eval_every, "
      f"max_trials)."
    )
  if seeds is not None:
    raise ValueError(
      f"{FN}: method='optuna' seeds trial k's init_fn with jax.random.key(k) (its trial number), so `seeds` "
      f"must be None, got seeds={seeds!r}."
    )
  if study is None:
    study = optuna.create_study(direction="maximize" if eval_mode == "max" else "minimize")
  num_samples, batch_size, max_trials, eval_every, num_steps = _check(
    study, eval_fn, eval_mode, num_samples, batch_size, max_trials, eval_every, num_steps, batches, optuna
  )
  asked, fixed = to_optuna_distributions(space)
  kinds = {k: _column_kind(d) for k, d in asked.items()}
  fdtype = jax.dtypes.canonicalize_dtype(np.float64)
  dtypes = {k: (np.int32 if kinds[k] in ("int", "index") else fdtype) for k in asked}
  for k, v in fixed.items():
    dtypes[k] = _sweep._column(k, [v], fn=FN).dtype
  # One plan (checks, strategy, placement) for a batch; every batch reuses it with new columns.
  every = num_steps if eval_every is None else eval_every
  proto = [{k: (1 if dtypes[k] == np.int32 else 0.5) for k in dtypes}] * batch_size
  try:
    args = _sweep._check_arguments(
      loss_fn, params, batches, optimizer, proto, num_steps, init_fn, None, eval_fn, eval_mode, eval_batches,
      every if eval_fn is not None else None, False, None, max_parallel, mesh, False,
    )  # fmt: skip
  except ValueError as e:
    raise _prefixed(e) from None
  plan = _sweep._plan(args, loss_fn, optimizer, eval_fn, init_fn, mesh)
  spec = plan.spec
  runs = len(plan.seeds)  # batch_size, padded to a multiple of the devices
  parts = _sweep._parts(num_steps, every, every)
  sharding = None if spec.mesh is None else NamedSharding(spec.mesh, P(tuple(spec.mesh.axis_names)))

  def put(x):
    return x if sharding is None else _sweep._put(x, sharding)

  log = _Log()
  bar = _sweep._loop.Progress(num_samples, "search", progress)
  done = 0
  while done < num_samples:
    want = min(batch_size, num_samples - done)
    got = _batch(study, optuna, asked, fixed, kinds, dtypes, want, max_trials, init_fn, plan, parts, runs,
                 put, eval_fn, keep_params, log)  # fmt: skip
    done += got
    bar.update(got)
    if got < want:
      break  # max_trials reached
  if not log.numbers:
    raise ValueError(
      f"{FN}: the study already holds max_trials={max_trials} trials, so none was asked (got "
      f"{_n_trials(study, optuna)} trials in study {study.study_name!r})."
    )
  return _result(
    log, asked, fixed, eval_fn, eval_mode, num_steps, parts, eval_every, keep_params, init_fn, seed
  )


def _batch(study, optuna, asked, fixed, kinds, dtypes, want, max_trials, init_fn, plan, parts, runs, put,
           eval_fn, keep_params, log: _Log) -> int:  # fmt: skip
  """Asks, trains, reports and tells one batch of at most ``want`` trials; returns how many."""
  spec = plan.spec
  TS = optuna.trial.TrialState
  trials, running, told = [], [], []
  try:
    for _ in range(want):
      if max_trials is not None and _n_trials(study, optuna) >= max_trials:
        break
      trials.append(study.ask(asked))
      running.append(True)
      told.append(None)
    n = len(trials)
    if not n:
      return 0
    cfgs = [{**{k: _lane_value(asked[k], kinds[k], t.params[k]) for k in asked}, **fixed} for t in trials]
    hp = {k: put(np.asarray([c[k] for c in cfgs] + [cfgs[-1][k]] * (runs - n), dtypes[k])) for k in dtypes}
    seeds = plan.seeds
    if init_fn is not None:
      numbers = [t.number for t in trials]
      seeds = put(np.asarray(numbers + [numbers[-1]] * (runs - n), np.uint32))
    carry = _sweep._run_init(hp, seeds, plan.params, spec=spec)
    curve = np.full((n, len(parts)), np.nan)
    steps = np.zeros(n, np.int64)
    last = np.full(n, np.nan)
    losses = []
    for j, (t0, length) in enumerate(parts):
      t = jnp.asarray(t0, jnp.int32)
      carry, rows, ev = _sweep._run_steps(
        carry, hp, plan.batches, plan.eval_batches, t, spec=spec, length=length
      )
      losses.append(rows)
      steps[np.asarray(running)] += length
      if j + 1 == len(parts):
        break  # the last value is the final one, told below
      if ev is not None:
        vals = _sweep._fetch(ev)[:n, -1]
      else:  # no eval_fn: the mean training loss of the period
        vals = np.nanmean(np.where(np.isfinite(r := _sweep._fetch(rows)[:n]), r, np.nan), axis=1)
      for i, trial in enumerate(trials):
        if not running[i]:
          continue
        curve[i, j] = vals[i]
        if not math.isfinite(vals[i]):
          study.tell(trial, state=TS.FAIL)
          running[i], told[i] = False, TS.FAIL
          continue
        last[i] = vals[i]
        trial.report(float(vals[i]), t0 + length)
        if trial.should_prune():
          study.tell(trial, state=TS.PRUNED)
          running[i], told[i] = False, TS.PRUNED
      if not any(running):
        break  # every trial pruned: the batch stops here
      train, frozen, state, alive = carry
      carry = (train, frozen, state, jnp.logical_and(alive, put(np.asarray(running + [False] * (runs - n)))))
    complete = []
    if any(running):
      final = _sweep._run_final(carry, plan.batches, plan.eval_batches, spec=spec)
      fin = _sweep._fetch(final["eval"] if eval_fn is not None else final["train_loss"])[:n]
    for i, trial in enumerate(trials):
      if running[i]:
        v = float(fin[i])
        curve[i, -1] = v
        if math.isfinite(v):
          study.tell(trial, v)
          last[i] = v
          complete.append(i)
          told[i] = TS.COMPLETE
        else:
          study.tell(trial, state=TS.FAIL)
          told[i] = TS.FAIL
        running[i] = False
  except BaseException:
    for i, trial in enumerate(trials):
      if running[i]:
        study.tell(trial, state=TS.FAIL, skip_if_finished=True)
    raise
  rows = _sweep._fetch(jnp.concatenate(losses, axis=1))[:n]
  train, frozen, opt_state, _ = carry
  better = (lambda a, b: a > b) if study.direction.name == "MAXIMIZE" else (lambda a, b: a < b)
  for i, trial in enumerate(trials):
    k = len(log.numbers)
    state = told[i]
    log.numbers.append(trial.number)
    log.states.append(state.name)
    log.score.append(last[i] if state != TS.FAIL else np.nan)
    log.steps.append(steps[i])
    log.configs.append(
      {k2: (_cast(trial.params[k2]) if k2 in asked else fixed[k2]) for k2 in (*asked, *fixed)}
    )
    row = np.full(parts[-1][0] + parts[-1][1], np.nan, np.float32)
    row[: steps[i]] = rows[i, : steps[i]]
    log.losses.append(row)
    log.curves.append(curve[i])
    log.seeds.append(trial.number if init_fn is not None else 0)
    if i in complete and (keep_params or log.best[0] is None or better(last[i], log.best[0])):
      lane = (i,)
      run = TrainedRun(k, log.seeds[-1], spec.split.merge(_take_lane(train, lane), _take_lane(frozen, lane)),
                       _take_lane(opt_state, lane))  # fmt: skip
      if keep_params:
        log.kept.append(run)
      if log.best[0] is None or better(last[i], log.best[0]):
        log.best = (last[i], run)
  return n


def _cast(v):
  return v.item() if isinstance(v, np.generic) else v


def _result(
  log: _Log, asked, fixed, eval_fn, eval_mode, num_steps, parts, eval_every, keep_params, init_fn, seed
):
  from lr_jax._search_result import SearchResult

  score = np.asarray(log.score, np.float64)
  key, mode = ("eval", eval_mode) if eval_fn is not None else ("train_loss", "min")
  extra = {}
  if eval_every is not None:
    extra = {
      "score_history": np.asarray(log.curves).T,
      "history_steps": np.asarray([a + b for a, b in parts]),
    }
  if keep_params and log.kept:
    stack = lambda *xs: jnp.stack(xs) if _sweep._loop._is_array(xs[0]) else xs[0]
    extra["params"] = jax.tree_util.tree_map(stack, *[r.params for r in log.kept])
    extra["opt_state"] = jax.tree_util.tree_map(stack, *[r.opt_state for r in log.kept])
    extra["final_trials"] = np.asarray([r.index for r in log.kept])
  return SearchResult(
    method="optuna", configs=log.configs, score=score, key=key, mode=mode, steps=np.asarray(log.steps),
    valid=np.isfinite(score), losses=np.asarray(log.losses), num_steps=num_steps,
    steps_trained=int(np.sum(log.steps)), best_run=log.best[1], sampler="optuna", seed=seed,
    seeds=np.asarray(log.seeds) if init_fn is not None else None, trial_numbers=np.asarray(log.numbers),
    **extra,
  )  # fmt: skip
