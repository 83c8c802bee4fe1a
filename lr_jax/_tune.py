"""Tuning hyperparameters by gradient: Adam on their coordinates, with the hypergradients of
``_hypergrad.py``, for several starting points and seeds in one compiled program."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from lr_jax import _loop, spaces
from lr_jax import _sweep as _sw
from lr_jax._hypergrad import (
  _check_data,
  _check_optimizer,
  _Data,
  _fixed_value,
  _float_dtype,
  _hparams,
  _mode,
  _objective,
  _segment,
  _Spec,
  _value_and_grad,
)
from lr_jax._hypergrad_result import TuneResult
from lr_jax._validation import check, flag, is_traced, number

__all__ = ["TuneResult", "tune"]


# --------------------------------------------------------------------------------------------------
# tune: Adam on the hyperparameters' coordinates, several starts and seeds in one program.


def _best_init(u, h, lane_params, num_starts, num_seeds):
  """Per start: the best seed-averaged value so far, its coordinates, hyperparameters, step, each
  seed's value and trained leaves (initially: +inf at the starting point)."""
  train = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x[None], (num_starts, *x.shape)), lane_params[0])
  return {
    "value": jnp.full((num_starts,), jnp.inf, _float_dtype()),
    "u": u,
    "h": h,
    "step": jnp.zeros((num_starts,), jnp.int32),
    "by_seed": jnp.full((num_starts, num_seeds), jnp.nan, _float_dtype()),
    "train": train,
  }


def _over_lanes(f, xs, spec: _Spec):
  if spec.chunk >= spec.lanes:
    return jax.vmap(f)(xs)
  return lax.map(f, xs, batch_size=spec.chunk if spec.chunk > 1 else None)


def _lanes_run(u, ctx, fixed, lane_params, batches, eval_batches, spec: _Spec, grad: bool):
  """Every (start, seed) lane: ``(values [S, R], grads {name: [S, R]} or None, trained leaves [S, R, ...],
  hyperparameters {name: [S]})``."""
  num_starts = next(iter(u.values())).shape[0]
  num_seeds = jax.tree_util.tree_leaves(lane_params)[0].shape[0]
  uu = {k: jnp.repeat(v, num_seeds) for k, v in u.items()}
  pp = jax.tree_util.tree_map(lambda x: jnp.tile(x, (num_starts,) + (1,) * (x.ndim - 1)), lane_params)

  def lane(x):
    uk, (train, frozen) = x
    f = functools.partial(
      _objective, ctx=ctx, fixed=fixed, train=train, frozen=frozen, batches=batches,
      eval_batches=eval_batches, spec=spec,
    )  # fmt: skip
    if grad:
      value, grads, (_, train) = _value_and_grad(f, uk, spec.mode)
    else:
      value, (_, train) = f(uk)
      grads = None
    return value, grads, train

  values, grads, train = _over_lanes(lane, (uu, pp), spec)
  shape = (num_starts, num_seeds)
  values = jnp.where(jnp.isfinite(values), values, jnp.nan).reshape(shape)  # diverged: NaN, as in sweep
  grads = None if grads is None else {k: g.reshape(shape) for k, g in grads.items()}
  train = jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), train)
  h = jax.vmap(lambda uk: _hparams(uk, ctx, {}, spec))(u)
  return values, grads, train, h


def _track(best, step, values, train, u, h):
  """Keeps, per start, the best point so far (by the seed-averaged value)."""
  mean = jnp.mean(values, axis=1)
  better = jnp.isfinite(mean) & (mean < best["value"])

  def pick(new, old):
    return jnp.where(better.reshape(better.shape + (1,) * (new.ndim - 1)), new, old)

  return {
    "value": jnp.where(better, mean, best["value"]),
    "u": jax.tree_util.tree_map(pick, u, best["u"]),
    "h": jax.tree_util.tree_map(pick, h, best["h"]),
    "step": jnp.where(better, step, best["step"]),
    "by_seed": pick(values, best["by_seed"]),
    "train": jax.tree_util.tree_map(pick, train, best["train"]),
  }


@functools.partial(jax.jit, static_argnames=("spec",))
def _tune_step(u, opt_state, best, step, ctx, fixed, lane_params, batches, eval_batches, outer_lr, bounds, *,
               spec: _Spec):  # fmt: skip
  """One outer step for every start: hypergradients (all lanes), Adam on the coordinates, projection."""
  values, grads, train, h = _lanes_run(u, ctx, fixed, lane_params, batches, eval_batches, spec, grad=True)
  best = _track(best, step, values, train, u, h)
  mean = jnp.mean(values, axis=1)
  g = {k: jnp.mean(v, axis=1) for k, v in grads.items()}
  ok = jnp.isfinite(mean)
  for v in g.values():
    # a finite gradient whose square overflows (a chaotic run: 1e20 and more) would make Adam's second
    # moment inf and every later step 0, freezing the start for good: it counts as not finite
    ok = ok & jnp.isfinite(v) & jnp.isfinite(v * v)
  tx = optax.adam(outer_lr)
  updates, new_state = jax.vmap(tx.update)({k: jnp.where(ok, v, 0) for k, v in g.items()}, opt_state)
  moved = {k: u[k] + updates[k] for k in u}
  back = {k: 0.5 * (u[k] + best["u"][k]) for k in u}  # a non-finite point: halfway back to the best so far
  u = {k: jnp.where(ok, moved[k], back[k]) for k in u}
  u = {k: jnp.clip(v, *bounds[k]) for k, v in u.items()}
  opt_state = jax.tree_util.tree_map(
    lambda n, o: jnp.where(ok.reshape(ok.shape + (1,) * (n.ndim - 1)), n, o), new_state, opt_state
  )
  return u, opt_state, best, (values, g, h)


@functools.partial(jax.jit, static_argnames=("spec",))
def _tune_final(u, best, step, ctx, fixed, lane_params, batches, eval_batches, *, spec: _Spec):
  values, _, train, h = _lanes_run(u, ctx, fixed, lane_params, batches, eval_batches, spec, grad=False)
  return _track(best, step, values, train, u, h), (values, h)


@jax.jit
def _adam_init(u):
  return jax.vmap(optax.adam(1.0).init)(u)  # the state does not depend on the rate


def _tune_dims(space, fn):
  dims = spaces.check_space(space, fn)
  tuned, fixed = {}, {}
  for k, d in dims.items():
    if isinstance(d, spaces.Fixed):
      fixed[k] = d.value
    elif isinstance(d, spaces.Categorical):
      raise ValueError(  # noqa: TRY004 - the contract: a named ValueError
        f"{fn}: `space[{k!r}]` is categorical, which has no gradient; fix it (a number) or search it with "
        f"lr_jax.search, got {d!r}."
      )
    else:
      tuned[k] = d
  if not tuned:
    raise ValueError(
      f"{fn}: `space` must have at least one dimension to tune (not only numbers), got {space!r}."
    )
  return tuned, fixed


def _scale(d) -> str:
  return "log" if isinstance(d, spaces.LogUniform) or (isinstance(d, spaces.Integer) and d.log) else "logit"


def _starts(tuned, init, num_starts, sampler, seed, fn) -> dict[str, np.ndarray]:
  """The starting points ``{name: [num_starts]}``: ``init`` first (when given), then sampled ones."""
  from lr_jax._finder import LRFindResult

  if (
    isinstance(num_starts, bool)
    or not isinstance(num_starts, (numbers.Integral, np.integer))
    or num_starts < 1
  ):
    raise ValueError(f"{fn}: `num_starts` must be an integer >= 1, got num_starts={num_starts!r}.")
  n = int(num_starts)
  given = {}
  if init is not None:
    if not isinstance(init, Mapping):
      raise ValueError(f"{fn}: `init` must be a dict {{name: value}} or None, got init={init!r}.")
    for k, v in init.items():
      if k not in tuned:
        raise ValueError(
          f"{fn}: `init` names must be tuned dimensions of space ({sorted(tuned)}), got {k!r}."
        )
      if isinstance(v, LRFindResult):
        v = v.suggest()
      v = float(number(v, fn=fn, name=f"init[{k!r}]"))
      d = tuned[k]
      if not d.low <= v <= d.high:
        raise ValueError(
          f"{fn}: `init[{k!r}]` must lie in the space's range [{d.low}, {d.high}], got {k}={v!r}."
        )
      given[k] = v
  sampled = spaces.sample(tuned, n, seed=seed, sampler=sampler)
  out = {k: np.asarray(sampled[k], np.float64) for k in tuned}
  for k, v in given.items():  # start 0 is init; a name init does not give keeps start 0's sample
    out[k][0] = v
  return out


def _coords(starts, tuned) -> tuple[dict, dict, dict]:
  """Coordinates ``u`` of the starting points, the context of each name and the clipping bounds."""
  dt = _float_dtype()
  u, ctx, bounds = {}, {}, {}
  for k, d in tuned.items():
    lo, hi, x = float(d.low), float(d.high), starts[k]
    if _scale(d) == "log":
      u[k] = np.log(x)
      ctx[k] = (jnp.ones((), dt), jnp.asarray(lo, dt), jnp.asarray(hi, dt))
      bounds[k] = (jnp.asarray(math.log(lo), dt), jnp.asarray(math.log(hi), dt))
    else:
      p = np.clip((x - lo) / (hi - lo), 1e-3, 1 - 1e-3)
      u[k] = np.log(p) - np.log1p(-p)
      ctx[k] = (jnp.zeros((), dt), jnp.asarray(lo, dt), jnp.asarray(hi, dt))
      bounds[k] = (jnp.asarray(-jnp.inf, dt), jnp.asarray(jnp.inf, dt))
    u[k] = jnp.asarray(u[k], dt)
  return u, ctx, bounds


def _lane_params(data: _Data, init_fn, seeds):
  """``(train, frozen)`` with a leading seed axis: ``init_fn`` at each seed, or the shared params."""
  if init_fn is None:
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], data.params)
  return _init_seeds(jnp.asarray(seeds, jnp.uint32), init_fn=_loop.SameCode(init_fn))


@functools.partial(jax.jit, static_argnames=("init_fn",))
def _init_seeds(seeds, *, init_fn):
  def arrays(seed):
    _, train, frozen = _loop.split_params(init_fn(jax.random.key(seed)))
    return train, frozen

  return jax.vmap(arrays)(seeds)


_FLOPS: dict = {}  # (loss_fn by code, params and batch shapes) -> XLA's FLOP estimate of one step


def _step_flops(loss_fn, data: _Data) -> float:
  """``sweep``'s FLOP estimate of a step (lowering only), kept per function and shapes: a tune called
  again (a notebook, a benchmark) does not lower it again."""
  spec_b = _loop.batch_spec(data.batches)
  leaves = jax.tree_util.tree_flatten((data.shape, spec_b))
  key = (_loop.SameCode(loss_fn), data.split, leaves[1], tuple((x.shape, str(x.dtype)) for x in leaves[0]))
  if key not in _FLOPS:
    if len(_FLOPS) > 64:
      _FLOPS.clear()
    _FLOPS[key] = _sw._step_flops(lambda pf, b: loss_fn(data.split.merge(*pf), b), data.shape, spec_b)
  return _FLOPS[key]


@functools.partial(jax.jit, static_argnames=("spec",))
def _hparams_of(u, ctx, *, spec: _Spec):
  """The tuned hyperparameters ``{name: [starts]}`` at coordinates ``u``."""
  return jax.vmap(lambda uk: _hparams(uk, ctx, {}, spec))(u)


def tune(
  loss_fn: Callable[[Any, Any], jax.Array],
  params: Any,
  batches: Any,
  make_optimizer: Callable[..., optax.GradientTransformation],
  space: Mapping[str, Any],
  num_steps: int | None = None,
  *,
  eval_fn: Callable[..., jax.Array] | None = None,
  eval_batches: Any = None,
  init: Mapping[str, Any] | None = None,
  num_starts: int = 4,
  init_fn: Callable[[jax.Array], Any] | None = None,
  seeds: int | Sequence[int] | None = None,
  outer_steps: int = 10,
  outer_lr: float = 0.1,
  mode: str = "forward",
  checkpoint_every: int | None = None,
  sampler: str = "halton",
  seed: int = 0,
  max_parallel: int | None = None,
  progress: bool = False,
) -> TuneResult:
  """Tunes hyperparameters by gradient descent on the held-out loss after training.

  A few outer steps of Adam on the hyperparameters' coordinates, from ``num_starts`` starting
  points at once, each averaged over ``seeds``. With ``h_i`` the hyperparameters of start i at outer
  step k and ``L_r(h)`` the objective of :func:`hypergradient` after ``num_steps`` steps from seed
  r's initial params::

      u_i = coordinates of h_i:  log h          (log_uniform, integer(log=True): clipped to [log low, log high])
                                 logit((h - low) / (high - low))   (uniform, integer: inside (low, high))
      g_i = mean_r d L_r(h(u_i)) / d u_i        (forward or reverse mode, as in hypergradient)
      u_i <- Adam(outer_lr) step on g_i         (one Adam state per start)

  All starts and seeds are the lanes of one compiled program (vmapped, or on CPU for large models one
  lane at a time with ``lax.map``, as :func:`lr_jax.sweep` decides; ``max_parallel`` bounds it); the
  hyperparameters are traced arguments, so the program is compiled once for all outer steps (plus
  one forward-only program for the last point). A start whose objective or gradient is not finite
  (a diverged run: too large a rate; a gradient whose square overflows counts as not finite, as it
  would stop Adam for good) does not take its Adam step but moves halfway back to its best point so
  far; one that diverges at its starting point stays there. The result keeps the whole
  trajectory (``outer_steps + 1`` points per start, the last one trained but not differentiated),
  the best point of all (lowest seed-averaged objective) and the trained params of its best seed.

  **Where it works, where it does not.** The gradient is exact for the horizon trained: tuning on a
  short ``num_steps`` optimises the loss after those steps, and another horizon wants another rate
  (a short fixed-length run wants larger steps; a greedy look-ahead inside a long run decays the
  rate too early: short-horizon bias, Wu et al. 2018): tune on the horizon you will train. With large
  rates the loss after training is a chaotic function of the rate (its gradient explodes with the
  horizon; Metz et al. 2019); Adam's normalised steps and the backtracking bound the damage, and
  several starts and seeds average the noise, but the landscape is only useful where training is
  stable. Step counts are relaxed to floats (see :func:`hypergradient` for which schedules are
  continuous in which count); ``integer`` dimensions come back as floats: round them yourself.
  Categorical dimensions have no gradient (use :func:`lr_jax.search`).

  Args:
    loss_fn, params, batches, num_steps, eval_fn, eval_batches: as in :func:`hypergradient`; with
      ``init_fn``, ``params`` must be None.
    make_optimizer: ``make_optimizer(**h) -> optax.GradientTransformation`` (every name of ``space``).
    space: ``{name: dimension}`` (:mod:`lr_jax.spaces`): ``log_uniform(low, high)`` and
      ``uniform(low, high)`` are tuned within their bounds, ``integer(low, high, log=False)`` as its
      float relaxation, a plain number is fixed; categorical dimensions are refused.
    init: ``{name: value}``, the first starting point (names it omits keep start 0's sampled value);
      a value may be an :class:`lr_jax.LRFindResult` (its ``suggest()``), to start from the range
      test's rate. Default: every start is sampled.
    num_starts: starting points: ``num_starts`` points sampled from ``space`` with ``sampler`` and
      ``seed``, the first replaced by ``init`` where given.
    init_fn: ``key -> params`` for the seeds (as in :func:`lr_jax.sweep`).
    seeds: with ``init_fn``, a count or a sequence of seeds; each start's gradient and objective are
      averaged over them.
    outer_steps: Adam steps on the hyperparameters (>= 1).
    outer_lr: Adam's rate in coordinate units (0.1: about 10% per step for a log coordinate).
    mode: ``"forward"`` (default; a few hyperparameters) or ``"reverse"`` (many, or long runs).
    checkpoint_every: reverse mode: steps per rematerialised segment (see :func:`hypergradient`).
    sampler, seed: how starting points are drawn (``"halton"`` or ``"random"``).
    max_parallel: at most this many lanes vmapped at once.
    progress: show a progress bar over outer steps on stderr.

  Returns:
    A :class:`TuneResult` (``hparams``, ``values`` per outer step and start, ``best_hparams``,
    ``best_value``, ``params`` of the winner, ...).

  Raises:
    ValueError: a malformed or categorical ``space``, ``init`` outside the space, bad counts
      (``num_starts``, ``outer_steps``, ``num_steps``), ``outer_lr`` not > 0, and everything
      :func:`hypergradient` refuses.

  References:
    Maclaurin et al., ICML 2015; Franceschi et al., ICML 2017 (see :func:`hypergradient`); Kingma &
    Ba, `Adam <https://arxiv.org/abs/1412.6980>`_, 2015; Wu et al., `Understanding Short-Horizon
    Bias in Stochastic Meta-Optimization <https://arxiv.org/abs/1803.02021>`_, ICLR 2018; Metz et al.,
    `Understanding and correcting pathologies in the training of learned optimizers
    <https://arxiv.org/abs/1810.10180>`_, ICML 2019.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers, spaces, tune
    >>> loss = lambda w, b: jnp.mean((w - b) ** 2)
    >>> res = tune(loss, jnp.zeros(()), jnp.ones((1, 4)), lambda lr: optimizers.sgd(lr),
    ...            {"lr": spaces.log_uniform(1e-3, 1.0)}, num_steps=4, init={"lr": 0.01},
    ...            num_starts=1, outer_steps=20, outer_lr=0.3)
    >>> print(res.values.shape)  # outer steps 0..20, one start
    (21, 1)
    >>> print(" ".join(f"{x:.3f}" for x in res.hparams["lr"][::4, 0]))  # every 4th point
    0.010 0.033 0.111 0.347 0.764 0.667
    >>> # 4 steps of SGD leave (1 - 2 lr)**8 of the loss: lr = 0.5 is exact
    >>> print(f"{res.values[0, 0]:.3f} -> {res.best_value:.0e} at lr={res.best_hparams['lr']:.2f}")
    0.851 -> 6e-10 at lr=0.54
  """
  fn = "tune"
  mode = _mode(mode, fn)
  tuned, fixed = _tune_dims(space, fn)
  outer_steps = _sw._positive_int(outer_steps, "outer_steps", fn)
  # any concrete real scalar (a NumPy or JAX one too, as every other hyperparameter): a named ValueError
  # for a bool, a string, an array, NaN/inf or a value <= 0
  if is_traced(outer_lr):
    raise ValueError(f"{fn}: `outer_lr` must be a concrete number (tune runs outside jax.jit), got a traced one.")
  outer_lr = float(number(outer_lr, fn=fn, name="outer_lr"))
  check(outer_lr > 0, fn=fn, must="`outer_lr` must be a finite number > 0", outer_lr=outer_lr)
  if sampler not in spaces.SAMPLERS:
    raise ValueError(f"{fn}: `sampler` must be one of {spaces.SAMPLERS}, got sampler={sampler!r}.")
  seed = spaces.check_seed(seed, fn)
  progress = flag(progress, fn=fn, name="progress")
  seeds_t = _sw._check_seeds(seeds, init_fn, fn)
  if max_parallel is not None:
    max_parallel = _sw._positive_int(max_parallel, "max_parallel", fn)
  starts = _starts(tuned, init, num_starts, sampler, seed, fn)
  data = _check_data(fn, loss_fn, params, batches, num_steps, eval_fn, eval_batches, init_fn)
  segment = _segment(checkpoint_every, mode, data.num_steps, fn)
  _check_optimizer(fn, make_optimizer, {**fixed, **{k: float(v[0]) for k, v in starts.items()}})
  names = tuple(tuned)
  s, r = int(num_starts), len(seeds_t)
  lanes = s * r
  flops = 0.0
  if lanes > 1 and max_parallel is None:  # vmap or one lane at a time: sweep's rule (XLA's FLOP estimate)
    flops = _step_flops(loss_fn, data)
  chunk = _sw._choose_chunk(_sw._platform(None), lanes, max_parallel, flops)
  spec = _Spec(
    _loop.SameCode(loss_fn), _loop.SameCode(make_optimizer), None if eval_fn is None else _loop.SameCode(eval_fn),
    data.split, data.num_steps, data.num_batches, data.eval_kind, mode, segment, names,
    tuple("log" if _scale(tuned[k]) == "log" else "logit" for k in names), chunk, lanes,
  )  # fmt: skip
  u, ctx, bounds = _coords(starts, tuned)
  fixed_t = {k: _fixed_value(k, v, fn) for k, v in fixed.items()}
  lane_params = _lane_params(data, init_fn, seeds_t)
  h0 = _hparams_of(u, ctx, spec=spec)
  best = _best_init(u, h0, lane_params, s, r)
  opt_state = _adam_init(u)
  lr = jnp.asarray(outer_lr, _float_dtype())
  bar = _loop.Progress(outer_steps + 1, "tune", progress)
  hist_v, hist_g, hist_h = [], [], []
  for k in range(outer_steps):
    u, opt_state, best, (values, g, h) = _tune_step(
      u, opt_state, best, jnp.int32(k), ctx, fixed_t, lane_params, data.batches, data.eval_batches, lr, bounds,
      spec=spec,
    )  # fmt: skip
    hist_v.append(values)
    hist_g.append(g)
    hist_h.append(h)
    if progress:
      jax.block_until_ready(values)
    bar.update(1)
  best, (values, h) = _tune_final(
    u, best, jnp.int32(outer_steps), ctx, fixed_t, lane_params, data.batches, data.eval_batches, spec=spec
  )
  hist_v.append(values)
  hist_h.append(h)
  bar.update(1)
  return _tune_result(
    best, hist_v, hist_g, hist_h, tuned, fixed, data, lane_params, seeds_t, mode, outer_steps
  )


def _tune_result(best, hist_v, hist_g, hist_h, tuned, fixed, data, lane_params, seeds, mode, outer_steps):
  by_seed = np.stack([np.asarray(v) for v in hist_v])  # [K + 1, S, R]
  values = by_seed.mean(axis=2)
  hparams = {k: np.stack([np.asarray(h[k]) for h in hist_h]) for k in tuned}
  grads = {k: np.stack([np.asarray(g[k]) for g in hist_g]) for k in tuned}
  best_value = np.asarray(best["value"])
  if not np.any(np.isfinite(best_value)):
    raise ValueError(
      "tune: every run diverged (the objective was never finite): narrow the space to stable values, e.g. "
      "smaller rates."
    )
  i = int(np.argmin(np.where(np.isfinite(best_value), best_value, np.inf)))
  row = np.asarray(best["by_seed"])[i]
  j = int(np.argmin(np.where(np.isfinite(row), row, np.inf)))
  train = jax.tree_util.tree_map(lambda x: x[i, j], best["train"])
  frozen = jax.tree_util.tree_map(lambda x: x[j], lane_params[1])
  best_h = {k: _loop.plain_number(np.asarray(best["h"][k])[i]) for k in tuned}
  return TuneResult(
    hparams=hparams,
    values=values,
    values_by_seed=by_seed,
    grads=grads,
    scales={k: _scale(d) for k, d in tuned.items()},
    fixed=dict(fixed),
    best_hparams={**best_h, **fixed},
    best_value=float(best_value[i]),
    best_start=i,
    best_step=int(np.asarray(best["step"])[i]),
    best_seed=int(seeds[j]),
    params=data.split.merge(train, frozen),
    seeds=tuple(seeds),
    mode=mode,
    num_steps=data.num_steps,
    outer_steps=outer_steps,
    runs=int(values.shape[1] * len(seeds) * (outer_steps + 1)),
  )
