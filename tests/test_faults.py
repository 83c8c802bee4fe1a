"""Faults: NaN/inf gradients, non-finite monitored values, diverging LR range tests and sweeps.

* ``optimizers.skip_nonfinite`` (and the ``optax.apply_if_finite`` recipe) skip a non-finite gradient
  without touching any part of the optimizer state, and count it.
* ``reduce_on_plateau`` never takes a NaN/inf value as its best, and its scale stays finite.
* ``lr_find`` stops at the first non-finite loss and reports where.
* ``sweep`` gives NaN for a configuration that diverges and the exact numbers for the others.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import lr_find, optimizers, schedules, sweep

NAN, INF = float("nan"), float("inf")
PARAMS = {
  "w": jnp.linspace(-1.0, 1.0, 6, dtype=jnp.float32).reshape(2, 3),
  "b": jnp.full((3,), 0.5, jnp.float32),
}


def _optimizers():
  """Every lr_jax optimizer, with the options that add state (momentum, centered, amsgrad, schedules)."""
  O, S = optimizers, schedules
  return {
    "sgd": O.sgd(0.1),
    "sgd_momentum": O.sgd(S.cosine_annealing(0.1, 20), momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adagrad": O.adagrad(0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    "rmsprop": O.rmsprop(S.one_cycle(0.01, 20), momentum=0.5, centered=True),
    "adam": O.adam(S.warmup(S.constant(0.01), 3), amsgrad=True, weight_decay=1e-2),
    "adamw": O.adamw(0.01),
    "adam_plateau": optax.chain(O.adam(0.01), O.reduce_on_plateau(factor=0.5, patience=0)),
  }


OPTIMIZERS = _optimizers()
NAMES = sorted(OPTIMIZERS)
# gradient sequence: finite, NaN, finite, +inf in one leaf, -inf, finite, finite
BAD = (1, 3, 4)


def _grads(t):
  g = jax.tree.map(lambda p: jnp.cos(p * (t + 1.0)) + 0.1 * t, PARAMS)
  if t == 1:
    g["w"] = g["w"].at[0, 1].set(NAN)
  if t == 3:
    g["b"] = g["b"].at[2].set(INF)
  if t == 4:
    g = jax.tree.map(lambda x: jnp.full_like(x, -INF), g)
  return g


def _loss(t):
  return jnp.float32(1.0 / (t + 1))


def _extra(name, t):
  return {"value": _loss(t)} if "plateau" in name else {}


def _dtypes(tree):
  return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


@pytest.mark.parametrize("name", NAMES)
def test_state_keeps_structure_and_dtypes_from_init_to_update(name):
  """What ``lax.cond`` (in apply_if_finite / skip_nonfinite) and ``lax.scan`` need."""
  tx = OPTIMIZERS[name]
  s0 = tx.init(PARAMS)
  _, s1 = jax.jit(lambda g, s, p: tx.update(g, s, p, **_extra(name, 0)))(_grads(0), s0, PARAMS)
  assert jax.tree.structure(s0) == jax.tree.structure(s1)
  assert _dtypes(s0) == _dtypes(s1)


def _scan(tx, name, grads, values):
  """Trains ``tx`` over stacked ``grads`` in one ``lax.scan``; returns params, state and per-step outputs."""

  def body(carry, x):
    p, s = carry
    g, v = x
    u, s = tx.update(g, s, p, **({"value": v} if "plateau" in name else {}))
    counters = (s.notfinite_count, s.last_finite, s.total_notfinite) if hasattr(s, "total_notfinite") else ()
    return (optax.apply_updates(p, u), s), (u, counters)

  return jax.lax.scan(body, (PARAMS, tx.init(PARAMS)), (grads, values))


@functools.partial(jax.jit, static_argnames="name")
def _three_runs(name):
  inner = OPTIMIZERS[name]
  ts = list(range(7))
  stack = lambda trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)
  grads, values = stack([_grads(t) for t in ts]), jnp.stack([_loss(t) for t in ts])
  good = [t for t in ts if t not in BAD]
  ours = _scan(optimizers.skip_nonfinite(inner), name, grads, values)
  theirs = _scan(optax.apply_if_finite(inner, max_consecutive_errors=10**6), name, grads, values)
  clean = _scan(inner, name, stack([_grads(t) for t in good]), jnp.stack([_loss(t) for t in good]))
  return ours, theirs, clean


@pytest.mark.parametrize("name", NAMES)
def test_skip_nonfinite_equals_training_on_the_finite_gradients_only(name):
  """``skip_nonfinite``, and the ``optax.apply_if_finite`` recipe, skip the bad steps and nothing else."""
  ((p, s), (updates, counters)), ((pa, sa), (updates_a, _)), ((q, r), _) = _three_runs(name)
  for t in BAD:  # a skipped step moves nothing
    assert all(np.all(np.asarray(u[t]) == 0) for u in jax.tree.leaves(updates))
  # The inner state and the parameters are those of a run that never saw the bad gradients. Not
  # bitwise: the inner update runs inside lax.cond in one scan and alone in the other, and XLA may
  # fuse them differently (observed difference: 0).
  chex.assert_trees_all_close(s.inner_state, r, rtol=1e-6, atol=0)
  chex.assert_trees_all_close(p, q, rtol=1e-6, atol=0)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves((p, s)))
  totals = list(zip(*(np.asarray(c).tolist() for c in counters)))
  assert totals == [
    (0, True, 0),
    (1, False, 1),
    (0, True, 1),
    (1, False, 2),
    (2, False, 3),
    (0, True, 3),
    (0, True, 3),
  ]
  # optax.apply_if_finite(lr_jax optimizer, large max_consecutive_errors) is the same computation
  chex.assert_trees_all_close((pa, sa.inner_state, updates_a), (p, s.inner_state, updates), rtol=1e-6, atol=0)
  assert int(sa.total_notfinite) == len(BAD)


def test_max_consecutive_gives_up_like_optax():
  inner = optimizers.sgd(0.1, momentum=0.9)
  grads = [_grads(0), *[jax.tree.map(lambda x: jnp.full_like(x, NAN), _grads(0))] * 3, _grads(2)]
  for k in (0, 1, 2, 5):
    a = optax.apply_if_finite(inner, max_consecutive_errors=k)
    b = optimizers.skip_nonfinite(inner, max_consecutive=k)
    sa, sb = a.init(PARAMS), b.init(PARAMS)
    step_a, step_b = jax.jit(a.update), jax.jit(b.update)
    for g in grads:
      ua, sa = step_a(g, sa, PARAMS)
      ub, sb = step_b(g, sb, PARAMS)
      chex.assert_trees_all_equal(ua, ub)  # NaN == NaN here
    chex.assert_trees_all_equal(sa.inner_state, sb.inner_state)
    assert (int(sb.notfinite_count), int(sb.total_notfinite)) == (0, 3)


def test_skip_nonfinite_under_vmap_skips_per_lane_and_traced_max_consecutive():
  def run(scale, max_consecutive):
    tx = optimizers.skip_nonfinite(optimizers.adam(0.1), max_consecutive=max_consecutive)
    p = jnp.ones(3)
    s = tx.init(p)
    for t in range(3):
      g = jnp.full(3, jnp.log(scale) + t)  # log(-1) = NaN on the bad lane
      u, s = tx.update(g, s, p)
      p = optax.apply_updates(p, u)
    return p, s.total_notfinite

  p, total = jax.jit(jax.vmap(run))(jnp.array([1.0, -1.0, 2.0, 1.0]), jnp.array([5, 5, 5, -1]))
  assert total.tolist() == [0, 3, 0, 0]
  np.testing.assert_array_equal(p[1], np.ones(3))  # the bad lane never moved
  assert np.all(np.isfinite(p[:3])) and not np.any(p[0] == 1.0)
  assert np.all(np.isnan(p[3]))  # a traced invalid max_consecutive poisons its lane


def test_skip_nonfinite_rejects_bad_arguments():
  with pytest.raises(ValueError, match="skip_nonfinite: `optimizer`.*optimizer="):
    optimizers.skip_nonfinite(lambda g: g)
  for bad in (-1, 1.5, NAN, "3", [1]):
    with pytest.raises(ValueError, match="skip_nonfinite: `max_consecutive`"):
      optimizers.skip_nonfinite(optimizers.sgd(0.1), max_consecutive=bad)


def test_skip_nonfinite_hides_a_nan_step_from_reduce_on_plateau():
  tx = optimizers.skip_nonfinite(optax.chain(optimizers.sgd(0.1), optimizers.reduce_on_plateau(patience=0)))
  update = jax.jit(lambda g, s, v: tx.update(g, s, PARAMS, value=v)[1])
  s = update(_grads(0), tx.init(PARAMS), jnp.float32(1.0))
  before = s.inner_state[1]
  s = update(_grads(1), s, jnp.float32(5.0))  # NaN gradient: the value is not seen
  chex.assert_trees_all_equal(s.inner_state[1], before)


# ------------------------------------------------------------------------------- reduce_on_plateau


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_plateau_never_takes_a_nonfinite_value_as_best(mode, accumulation_steps):
  tx = optimizers.reduce_on_plateau(factor=0.5, patience=2, mode=mode, accumulation_steps=accumulation_steps)
  sign = 1.0 if mode == "min" else -1.0
  # every value repeated accumulation_steps times, so each evaluation sees one of them
  values = [1.0, NAN, -INF * sign, INF * sign, 0.5, NAN, 0.25]
  seq = [v for v in values for _ in range(accumulation_steps)]
  update = jax.jit(lambda s, v: tx.update({"w": jnp.ones(2)}, s, value=v)[1])
  s = tx.init({"w": jnp.ones(2)})
  bests, scales = [], []
  for i, v in enumerate(seq):
    s = update(s, jnp.float32(sign * v))
    bests.append(float(s.best))
    scales.append(float(s.scale))
    assert np.isfinite(float(s.scale))
    if (i + 1) % accumulation_steps == 0:  # the accumulator is emptied after each evaluation
      assert float(s.acc_sum) == 0.0 and int(s.acc_count) == 0
  bests = bests[accumulation_steps - 1 :: accumulation_steps]
  # best moves only on the finite improvements 1.0 -> 0.5 -> 0.25 (times sign)
  assert bests == [sign * b for b in (1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25)]
  assert 0.0 < min(scales) <= 1.0


def test_plateau_with_a_nan_value_inside_an_accumulation_window_recovers():
  tx = optimizers.reduce_on_plateau(patience=5, accumulation_steps=3)
  body = lambda s, v: (tx.update({}, s, value=v)[1], None)
  values = jnp.array([1.0, NAN, 1.0, 2.0, 2.0, 2.0, 0.5, 0.5, 0.5], jnp.float32)
  s = jax.jit(lambda: jax.lax.scan(body, tx.init({}), values)[0])()
  assert float(s.best) == 0.5 and float(s.acc_sum) == 0.0 and int(s.acc_count) == 0


# ------------------------------------------------------------------------------------------ lr_find


def _nan_loss(w, b):
  """0.5 |w - b|^2, NaN once some |w| > 2 (the log of a negative number)."""
  return 0.5 * jnp.sum((w - b) ** 2) + 0.0 * jnp.log(2.0 - jnp.max(jnp.abs(w)))


def test_lr_find_stops_and_reports_divergence_on_nan():
  res = lr_find(
    _nan_loss,
    jnp.ones(3),
    jnp.zeros((1, 3)),
    optimizer=optax.sgd,
    min_lr=1e-3,
    max_lr=100.0,
    num_steps=60,
    diverge_threshold=None,
  )
  # Independent float64 model: w_{t+1} = w_t (1 - lr_t); the loss at step t is NaN iff |w_t| > 2.
  w, expected = 1.0, None
  for t, lr in enumerate(np.asarray(res.lrs, np.float64)):
    if abs(w) > 2:
      expected = t
      break
    w *= 1 - lr
  assert expected is not None and res.diverged_at == expected
  d = res.diverged_at
  assert np.all(np.isfinite(res.losses[:d])) and np.all(np.isnan(res.losses[d:]))
  assert np.all(np.isnan(res.smoothed_losses[d + 1 :]))
  assert np.isfinite(res.suggestion) and res.suggestion < res.lrs[d]


def test_lr_find_reports_divergence_on_inf_and_on_threshold():
  loss = lambda w, b: jnp.sum(jnp.exp(jnp.abs(w - b) * 50.0))
  with pytest.warns(RuntimeWarning, match="no suggestion .*stopped at step 1 .*non-finite loss"):
    res = lr_find(
      loss,
      jnp.ones(2),
      jnp.zeros((1, 2)),
      optimizer=optax.sgd,
      min_lr=1e-6,
      max_lr=1.0,
      num_steps=40,
      diverge_threshold=None,
    )
  assert res.diverged_at is not None and not np.isfinite(res.repeat_losses[0, res.diverged_at])
  assert np.isnan(res.suggestion)  # one point before the divergence: nothing to suggest
  res = lr_find(
    lambda w, b: 0.5 * jnp.sum((w - b) ** 2),
    jnp.ones(2),
    jnp.zeros((1, 2)),
    optimizer=optax.sgd,
    min_lr=1e-3,
    max_lr=100.0,
    num_steps=60,
  )
  d = res.diverged_at
  assert d is not None and np.isfinite(res.losses[d]) and np.all(np.isnan(res.losses[d + 1 :]))


# -------------------------------------------------------------------------------------------- sweep


def test_sweep_returns_nan_for_diverging_configs_and_keeps_the_others():
  loss = lambda w, b: jnp.sum((w - b) ** 2)
  lrs = [0.01, 3.0, 0.05, 1e3]
  steps = 60
  res = sweep(
    loss,
    jnp.ones(2),
    jnp.zeros((1, 2)),
    optimizer=lambda h: optax.sgd(h["lr"]),
    grid={"lr": lrs},
    num_steps=steps,
  )
  assert res.valid.tolist() == [True, False, True, False]
  assert np.all(np.isnan(res.train_loss[[1, 3]]))
  for i in (0, 2):  # float64 closed form: 2 w_0^2 (1 - 2 lr)^(2 T)
    exact = 2.0 * (1 - 2 * lrs[i]) ** (2 * steps)
    np.testing.assert_allclose(res.train_loss[i], exact, rtol=2e-5)  # 60 float32 multiplications
    assert np.all(np.isfinite(res.losses[i]))
  # the diverging lanes are NaN from their first non-finite loss on, finite before
  for i in (1, 3):
    row = res.losses[i]
    first = int(np.argmax(~np.isfinite(row)))
    assert 0 < first and np.all(np.isfinite(row[:first])) and np.all(np.isnan(row[first:]))
  # and a diverging lane does not change the other lanes' numbers
  alone = sweep(
    loss,
    jnp.ones(2),
    jnp.zeros((1, 2)),
    optimizer=lambda h: optax.sgd(h["lr"]),
    grid={"lr": [0.01, 0.05]},
    num_steps=steps,
  )
  np.testing.assert_array_equal(alone.losses, res.losses[[0, 2]])


def test_sweep_nan_loss_lane_with_lr_jax_schedule_and_optimizer():
  res = sweep(
    _nan_loss,
    jnp.ones(3),
    jnp.zeros((1, 3)),
    optimizer=lambda h: optimizers.adam(schedules.cosine_annealing(h["lr"], 20)),
    grid={"lr": [0.01, 50.0]},
    num_steps=20,
  )
  assert (
    res.valid.tolist() == [True, False] and np.isnan(res.train_loss[1]) and np.isfinite(res.train_loss[0])
  )
