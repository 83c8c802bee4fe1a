"""Contract tests of lr_jax.optimizers: Optax twins, composition, tracing, dtypes, bad input.

PyTorch parity lives in tests/parity/test_torch_optimizers.py.
"""

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S

SHAPES = {"w": (3, 4), "b": (4,), "s": ()}
K = 20
I32_MAX = np.iinfo(np.int32).max


def _data(seed=0, k=K, dtype=np.float32):
  rng = np.random.default_rng(seed)
  params = {n: jnp.asarray(rng.normal(size=s), dtype) for n, s in SHAPES.items()}
  grads = {n: jnp.asarray(rng.normal(size=(k, *s)), dtype) for n, s in SHAPES.items()}
  return params, grads


PARAMS, GRADS = _data()


def _at(tree, k):
  """Entry ``k`` along the leading axis of every leaf."""
  return jax.tree.map(lambda x: x[k], tree)


def _f32(tree):
  return jax.tree.map(lambda x: x.astype(jnp.float32), tree)


def _scan(tx, params, grads):
  def body(carry, g):
    p, s = carry
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  (p, s), _ = jax.lax.scan(body, (params, tx.init(params)), grads)
  return p, s


def _run_jit(tx, params=PARAMS, grads=GRADS):
  """Parameters after ``len(grads)`` updates, as one jitted scan."""
  return jax.jit(lambda p, g: _scan(tx, p, g)[0])(params, grads)


def _run(tx, params=PARAMS, grads=GRADS):
  """Parameters after ``len(grads)`` eager updates (cheaper than a compile for these tiny trees)."""
  state = tx.init(params)
  for k in range(len(jax.tree.leaves(grads)[0])):
    g = _at(grads, k)
    u, state = tx.update(g, state, params)
    params = optax.apply_updates(params, u)
  return params


def _close(a, b, rtol=1e-5, atol=1e-6):
  chex.assert_trees_all_equal_structs(a, b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)


# name -> (factory, kwargs with every feature on, static kwargs, grid of 3 values per numeric hyperparameter)
OPTIMIZERS = {
  "sgd": (
    O.sgd,
    dict(learning_rate=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    dict(),
    dict(
      learning_rate=[0.05, 0.1, 0.02],
      momentum=[0.9, 0.0, 0.5],
      dampening=[0.1, 0.0, 0.5],
      weight_decay=[0.01, 0.0, 0.1],
    ),
  ),
  "sgd_nesterov": (
    O.sgd,
    dict(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    dict(nesterov=True),
    dict(learning_rate=[0.05, 0.1, 0.02], momentum=[0.9, 0.3, 0.5], weight_decay=[0.01, 0.0, 0.1]),
  ),
  "adagrad": (
    O.adagrad,
    dict(learning_rate=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-6),
    dict(),
    dict(
      learning_rate=[0.1, 0.05, 0.2],
      lr_decay=[0.05, 0.0, 0.5],
      weight_decay=[0.01, 0.0, 0.1],
      initial_accumulator_value=[0.1, 0.0, 1.0],
      eps=[1e-6, 1e-10, 1e-2],
    ),
  ),
  "rmsprop": (
    O.rmsprop,
    dict(learning_rate=0.01, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.9, centered=True),
    dict(centered=True),
    dict(
      learning_rate=[0.01, 0.02, 0.005],
      alpha=[0.9, 0.99, 0.5],
      eps=[1e-6, 1e-8, 1e-3],
      weight_decay=[0.01, 0.0, 0.1],
      momentum=[0.9, 0.0, 0.5],
    ),
  ),
  "adam": (
    O.adam,
    dict(learning_rate=0.01, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.05, amsgrad=True),
    dict(amsgrad=True),
    dict(
      learning_rate=[0.01, 0.02, 0.005],
      b1=[0.8, 0.9, 0.0],
      b2=[0.99, 0.999, 0.5],
      eps=[1e-6, 1e-8, 1e-3],
      weight_decay=[0.05, 0.0, 0.5],
    ),
  ),
  "adamw": (
    O.adamw,
    dict(learning_rate=0.01, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1),
    dict(),
    dict(
      learning_rate=[0.01, 0.02, 0.005],
      b1=[0.8, 0.9, 0.0],
      b2=[0.99, 0.999, 0.5],
      eps=[1e-6, 1e-8, 1e-3],
      weight_decay=[0.1, 0.0, 0.5],
    ),
  ),
}
NAMES = list(OPTIMIZERS)


# ------------------------------------------------------------------------------------------------
# Optax twins, where the algorithms coincide
# ------------------------------------------------------------------------------------------------

TWINS = {
  "adam": (lambda: O.adam(0.01), lambda: optax.adam(0.01)),
  "adam_hyper": (
    lambda: O.adam(0.02, b1=0.5, b2=0.9, eps=1e-3),
    lambda: optax.adam(0.02, b1=0.5, b2=0.9, eps=1e-3),
  ),
  "adamw": (lambda: O.adamw(0.01, weight_decay=0.1), lambda: optax.adamw(0.01, weight_decay=0.1)),
  "amsgrad_corrected": (
    lambda: O.adam(0.01, amsgrad=True, amsgrad_max="corrected"),
    lambda: optax.amsgrad(0.01),
  ),
  "adagrad_optax_form": (
    lambda: O.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True),
    lambda: optax.adagrad(0.1),
  ),
  "rmsprop_optax_form": (
    lambda: O.rmsprop(0.01, alpha=0.9, eps_in_sqrt=True),
    lambda: optax.rmsprop(0.01, decay=0.9),
  ),
  "rmsprop_centered_momentum_constant_lr": (
    lambda: O.rmsprop(0.01, alpha=0.9, eps=1e-3, centered=True, momentum=0.9, eps_in_sqrt=True),
    lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-3, centered=True, momentum=0.9),
  ),
  "sgd": (lambda: O.sgd(0.05), lambda: optax.sgd(0.05)),
  "sgd_nesterov": (
    lambda: O.sgd(0.05, momentum=0.9, nesterov=True),
    lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
  ),
}


@pytest.mark.parametrize("case", list(TWINS))
def test_equals_optax_where_the_algorithms_coincide(case):
  ours, theirs = TWINS[case]
  with jax.numpy_dtype_promotion("standard"):  # Optax's aliases are not strict-promotion clean
    expected = _run(theirs())
  _close(_run(ours()), expected)


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_alias_is_scale_by_then_scale_by_learning_rate(name):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  kw = {k: v for k, v in kwargs.items() if k != "learning_rate"}
  building_block = getattr(O, f"scale_by_{name}")(**kw)
  lr = S.cosine_annealing(kwargs["learning_rate"], total_steps=K)
  _close(_run(fn(lr, **kw)), _run(optax.chain(building_block, optax.scale_by_learning_rate(lr))), rtol=1e-6)


def test_adamw_is_adam_with_decoupled_weight_decay():
  kw = dict(b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1)
  tx = optax.chain(O.scale_by_adam(**kw, decoupled_weight_decay=True), optax.scale_by_learning_rate(0.01))
  _close(_run(O.adamw(0.01, **kw)), _run(tx), rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# Composition, jit, vmap, inject_hyperparams
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_chain_with_clipping_and_masking(name):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  mask = {"w": True, "b": False, "s": True}
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.masked(fn(**kwargs), mask))
  params = _run(tx)
  # The masked-out leaf receives the clipped gradients unchanged; the others follow fn alone on
  # the clipped gradients of the whole tree.
  clipped = jax.vmap(lambda g: optax.clip_by_global_norm(1.0).update(g, optax.EmptyState())[0])(GRADS)
  alone = _run(fn(**kwargs), params=PARAMS, grads=clipped)
  _close({k: params[k] for k in ("w", "s")}, {k: alone[k] for k in ("w", "s")})
  _close(params["b"], PARAMS["b"] + jnp.sum(clipped["b"], axis=0), rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_optax_wrappers_apply_if_finite_and_multisteps(name):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  grads = jax.tree.map(lambda g: g[:4], GRADS)
  # apply_if_finite runs the update inside lax.cond: state dtypes must match between init and update.
  bad = {**grads, "s": grads["s"].at[1].set(jnp.nan)}
  skipped = _run_jit(optax.apply_if_finite(fn(**kwargs), max_consecutive_errors=3), grads=bad)
  expected = _run(fn(**kwargs), grads=jax.tree.map(lambda g: g[jnp.asarray([0, 2, 3])], grads))
  _close(skipped, expected, rtol=1e-6)
  # MultiSteps(every_k_schedule=2): one update per two gradients, on their mean.
  mean = jax.tree.map(lambda g: g.reshape(2, 2, *g.shape[1:]).mean(axis=1), grads)
  multi = _run_jit(optax.MultiSteps(fn(**kwargs), every_k_schedule=2), grads=grads)
  _close(multi, _run(fn(**kwargs), grads=mean), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_jit_equals_eager(name):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  grads = jax.tree.map(lambda g: g[:5], GRADS)
  _close(_run_jit(fn(**kwargs), grads=grads), _run(fn(**kwargs), grads=grads), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_hyperparameters_equals_loop(name):
  fn, _, static, grid = OPTIMIZERS[name]
  grads = jax.tree.map(lambda g: g[:8], GRADS)
  with jax.numpy_dtype_promotion("strict"):
    batched = jax.jit(jax.vmap(lambda hp: _scan(fn(**hp, **static), PARAMS, grads)[0]))(
      {k: jnp.asarray(v, jnp.float32) for k, v in grid.items()}
    )
  for lane in range(3):
    hp = {k: v[lane] for k, v in grid.items()}  # Python floats: the static (no-buffer) paths for zeros
    expected = _run(fn(**hp, **static), grads=grads)
    _close(_at(batched, lane), expected, rtol=1e-6)


def test_vmap_over_a_batch_of_schedules():
  batch = jax.vmap(lambda v: S.cosine_annealing(v, total_steps=K))(jnp.asarray([0.01, 0.02]))
  out = jax.jit(jax.vmap(lambda s: _scan(O.adam(s), PARAMS, GRADS)[0]))(batch)
  for lane, v in enumerate((0.01, 0.02)):
    _close(_at(out, lane), _run(O.adam(S.cosine_annealing(v, total_steps=K))), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams(name):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  _close(_run(optax.inject_hyperparams(fn)(**kwargs)), _run(fn(**kwargs)), rtol=1e-6)
  lr = S.cosine_annealing(kwargs["learning_rate"], total_steps=K)
  sched = {**kwargs, "learning_rate": lr}
  _close(_run(optax.inject_hyperparams(fn)(**sched)), _run(fn(**sched)), rtol=1e-6)


def test_inject_hyperparams_eager_and_state_override():
  tx = optax.inject_hyperparams(O.adam)(learning_rate=0.01, b1=0.9)
  state = tx.init(PARAMS)
  g = _at(GRADS, 0)
  state.hyperparams["learning_rate"] = jnp.asarray(0.0)
  u, state = tx.update(g, state, PARAMS)
  assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in jax.tree.leaves(u))
  state.hyperparams["learning_rate"] = jnp.asarray(0.01)
  u, _ = tx.update(g, state, PARAMS)
  assert all(float(jnp.min(jnp.abs(x))) > 0.0 for x in jax.tree.leaves(u))
  # A bad value written into the state fails loudly eagerly...
  state.hyperparams["b1"] = jnp.asarray(1.5)
  with pytest.raises(ValueError, match=re.escape("adam: `b1` must be in [0, 1)")):
    tx.update(g, state, PARAMS)
  # ...and gives NaN under jit.
  u, _ = jax.jit(tx.update)(g, state, PARAMS)
  assert all(bool(jnp.all(jnp.isnan(x))) for x in jax.tree.leaves(u))


def test_jitted_update_does_not_retrace():
  tx = O.adam(0.01, weight_decay=0.1)
  g = _at(GRADS, 0)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, state):
    u, state = tx.update(g, state, params)
    return optax.apply_updates(params, u), state

  params, state = step(PARAMS, tx.init(PARAMS))
  step(params, state)


@pytest.mark.parametrize("name", NAMES)
def test_strict_dtype_promotion(name):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  lr = S.cosine_annealing(kwargs["learning_rate"], total_steps=K)
  grads = jax.tree.map(lambda g: g[:5], GRADS)
  for learning_rate in (kwargs["learning_rate"], lr, jnp.float32(kwargs["learning_rate"])):
    expected = _run(fn(**{**kwargs, "learning_rate": learning_rate}), grads=grads)
    with jax.numpy_dtype_promotion("strict"):
      _close(_run(fn(**{**kwargs, "learning_rate": learning_rate}), grads=grads), expected, rtol=1e-6)


def test_learning_rate_forms_agree():
  a = _run(O.adam(0.01))
  for lr in (np.float32(0.01), jnp.float32(0.01), np.asarray(0.01), S.cosine_annealing(0.01, 10**9, 0.01)):
    _close(_run(O.adam(lr)), a, rtol=1e-6)
  _close(_run(O.adam(lambda step: 0.01)), a, rtol=1e-6)  # a plain (Optax-style) schedule


# ------------------------------------------------------------------------------------------------
# State: shapes, saturating count, dtypes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_state_is_namedtuple_with_int32_count_and_moments_mirroring_params(name):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  state = fn(**kwargs).init(PARAMS)[0]
  assert isinstance(state, tuple) and state._fields[0] == "count"
  assert state.count.dtype == jnp.int32 and state.count.shape == ()
  for field in state._fields[1:]:
    moment = getattr(state, field)
    if moment is not None:
      chex.assert_trees_all_equal_shapes(moment, PARAMS)
      assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(moment))


@pytest.mark.parametrize("name", NAMES)
def test_update_rejects_a_tree_that_does_not_match_the_state(name):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  tx = fn(**kwargs)
  state = tx.init(PARAMS)
  wrong = {**PARAMS, "w": jnp.zeros((4, 3))}
  with pytest.raises(AssertionError):
    tx.update(wrong, state, wrong)


def test_weight_decay_requires_params():
  tx = O.adam(0.01, weight_decay=0.1)
  g = _at(GRADS, 0)
  with pytest.raises(ValueError, match=re.escape("adam: `params` must be passed")):
    tx.update(g, tx.init(PARAMS))
  tx = O.adam(0.01)  # no weight decay: params are optional, as in Optax
  tx.update(g, tx.init(PARAMS))


def _numpy_first_update(name, kwargs, g, p, t):
  """The first update from fresh moments at update number ``t``, written independently in float64."""
  g = np.asarray(g, np.float64)
  p = np.asarray(p, np.float64)
  lr = kwargs["learning_rate"]
  if name.startswith("sgd"):
    x = g + kwargs["weight_decay"] * p
    m, d = kwargs["momentum"], kwargs.get("dampening", 0.0)
    buf = (1 - d) * x  # the saturated count is not the first update: buf = m * 0 + (1 - d) * x
    return -lr * (x + m * buf if kwargs.get("nesterov") else buf)
  if name == "adagrad":
    x = g + kwargs["weight_decay"] * p
    acc = kwargs["initial_accumulator_value"] + x * x
    return -lr / (1 + (t - 1) * kwargs["lr_decay"]) * x / (np.sqrt(acc) + kwargs["eps"])
  if name == "rmsprop":
    x = g + kwargs["weight_decay"] * p
    a = kwargs["alpha"]
    v, gm = (1 - a) * x * x, (1 - a) * x
    return -lr * x / (np.sqrt(v - gm * gm) + kwargs["eps"])
  b1, b2, eps, wd = kwargs["b1"], kwargs["b2"], kwargs["eps"], kwargs["weight_decay"]
  x = g + (wd * p if name == "adam" else 0)
  m, v = (1 - b1) * x, (1 - b2) * x * x
  u = m / (1 - b1**t) / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
  return -lr * (u + (wd * p if name == "adamw" else 0))


@pytest.mark.parametrize("name", NAMES)
def test_count_saturates_at_int32_max(name):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  tx = fn(**kwargs)
  state = optax.tree.set(tx.init(PARAMS), count=jnp.asarray(I32_MAX, jnp.int32))
  g = _at(GRADS, 0)
  u, state = tx.update(g, state, PARAMS)
  assert all(int(c) == I32_MAX for _, c in optax.tree.get_all_with_path(state, "count"))
  # Update number 2**31 - 1 (saturated): bias corrections are 1, lr_decay's divisor huge but finite.
  for k in PARAMS:
    expected = _numpy_first_update(name, kwargs, g[k], PARAMS[k], float(I32_MAX))
    np.testing.assert_allclose(np.asarray(u[k]), expected, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("moment_dtype", [None, "params"])
def test_bfloat16_params_get_bfloat16_updates(name, moment_dtype):
  fn, kwargs, _, _ = OPTIMIZERS[name]
  params16, grads16 = _data(dtype=jnp.bfloat16, k=5)
  moment_dt = jnp.float32 if moment_dtype is None else jnp.bfloat16
  for lr in (kwargs["learning_rate"], S.cosine_annealing(kwargs["learning_rate"], total_steps=5)):
    tx = fn(**{**kwargs, "learning_rate": lr}, moment_dtype=moment_dtype)
    p, state = params16, tx.init(params16)
    for k in range(5):
      u, state = tx.update(_at(grads16, k), state, p)
      assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))
      p = optax.apply_updates(p, u)
    moments = [x for x in jax.tree.leaves(state[0]) if x.ndim or x.dtype != jnp.int32]
    assert moments and all(x.dtype == moment_dt for x in moments)
    # Same trajectory as float32 within bf16 resolution (8 bits of mantissa).
    expected = _run(fn(**{**kwargs, "learning_rate": lr}), params=_f32(params16), grads=_f32(grads16))
    _close(_f32(p), expected, rtol=3e-2, atol=3e-2)


def test_bfloat16_under_jit():
  params16, grads16 = _data(dtype=jnp.bfloat16, k=5)
  p, state = jax.jit(lambda p, g: _scan(O.adamw(S.cosine_annealing(0.01, 5), weight_decay=0.1), p, g))(
    params16, grads16
  )
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(p))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state[0].mu))


def test_explicit_moment_dtype_is_kept_by_update():
  tx = O.adam(0.01, moment_dtype=jnp.bfloat16)
  state = tx.init(PARAMS)
  u, state = tx.update(_at(GRADS, 0), state, PARAMS)
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves((state[0].mu, state[0].nu)))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(u))  # updates keep the params' dtype


# ------------------------------------------------------------------------------------------------
# Bad input: ValueError eagerly, NaN lanes when traced
# ------------------------------------------------------------------------------------------------

BAD = [
  # (function, base kwargs, param, bad value, good value)
  (O.sgd, dict(learning_rate=0.1), "learning_rate", -0.1, 0.1),
  (O.sgd, dict(learning_rate=0.1), "momentum", -0.5, 0.5),
  (O.sgd, dict(learning_rate=0.1, momentum=0.9), "dampening", 1.5, 0.5),
  (O.sgd, dict(learning_rate=0.1, momentum=0.9), "dampening", -0.1, 0.5),
  (O.sgd, dict(learning_rate=0.1), "weight_decay", -1.0, 0.1),
  (O.scale_by_sgd, dict(), "momentum", -1.0, 0.9),
  (O.adagrad, dict(), "learning_rate", -1.0, 0.1),
  (O.adagrad, dict(), "lr_decay", -0.1, 0.1),
  (O.adagrad, dict(), "weight_decay", -1.0, 0.1),
  (O.adagrad, dict(), "initial_accumulator_value", -1.0, 0.1),
  (O.adagrad, dict(), "eps", -1e-10, 1e-10),
  (O.scale_by_adagrad, dict(), "lr_decay", -1.0, 0.1),
  (O.rmsprop, dict(), "learning_rate", -1.0, 0.1),
  (O.rmsprop, dict(), "alpha", 1.0, 0.9),
  (O.rmsprop, dict(), "alpha", -0.1, 0.9),
  (O.rmsprop, dict(), "eps", -1.0, 1e-8),
  (O.rmsprop, dict(), "momentum", -1.0, 0.9),
  (O.rmsprop, dict(), "weight_decay", -1.0, 0.1),
  (O.scale_by_rmsprop, dict(), "alpha", 2.0, 0.9),
  (O.adam, dict(), "learning_rate", -1e-3, 1e-3),
  (O.adam, dict(), "b1", 1.0, 0.9),
  (O.adam, dict(), "b1", -0.1, 0.9),
  (O.adam, dict(), "b2", 1.5, 0.999),
  (O.adam, dict(), "eps", -1e-8, 1e-8),
  (O.adam, dict(), "weight_decay", -0.1, 0.1),
  (O.adamw, dict(), "b2", 1.0, 0.999),
  (O.adamw, dict(), "weight_decay", -0.01, 0.01),
  (O.scale_by_adam, dict(), "b1", 1.5, 0.9),
]
BAD_IDS = [f"{f.__name__}-{p}={v}" for f, _, p, v, _ in BAD]


def _one_update(tx):
  g = _at(GRADS, 0)
  return tx.update(g, tx.init(PARAMS), PARAMS)[0]


# Every numeric hyperparameter of each function, valid (traced together: one compile per function).
TRACED_DEFAULTS = {
  "sgd": dict(learning_rate=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1),
  "scale_by_sgd": dict(momentum=0.9, dampening=0.5, weight_decay=0.1),
  "adagrad": dict(
    learning_rate=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.1, eps=1e-10
  ),
  "scale_by_adagrad": dict(lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.1, eps=1e-10),
  "rmsprop": dict(learning_rate=0.1, alpha=0.9, eps=1e-8, weight_decay=0.1, momentum=0.9),
  "scale_by_rmsprop": dict(alpha=0.9, eps=1e-8, weight_decay=0.1, momentum=0.9),
  "adam": dict(learning_rate=0.1, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1),
  "adamw": dict(learning_rate=0.1, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1),
  "scale_by_adam": dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1),
}


@functools.cache
def _traced_update(fn):
  return jax.jit(jax.vmap(lambda hp: _one_update(fn(**hp))))


@pytest.mark.parametrize("fn,base,param,bad,good", BAD, ids=BAD_IDS)
def test_bad_concrete_value_raises_naming_function_param_value(fn, base, param, bad, good):
  with pytest.raises(ValueError, match=re.escape(f"{fn.__name__}: `{param}` must")) as info:
    fn(**{**base, param: bad})
  assert f"{param}={bad!r}" in str(info.value)
  _one_update(fn(**{**base, param: good}))  # the good value is accepted


@pytest.mark.parametrize("fn,base,param,bad,good", BAD, ids=BAD_IDS)
def test_bad_traced_value_gives_nan_lane(fn, base, param, bad, good):
  lanes = {
    k: jnp.asarray([v, bad if k == param else v], jnp.float32)
    for k, v in TRACED_DEFAULTS[fn.__name__].items()
  }
  assert param in lanes
  out = _traced_update(fn)(lanes)
  for x in jax.tree.leaves(out):
    assert bool(jnp.all(jnp.isfinite(x[0]))) and bool(jnp.all(jnp.isnan(x[1])))


_traced_nesterov = jax.jit(jax.vmap(lambda hp: _one_update(O.sgd(0.1, nesterov=True, **hp))))


@pytest.mark.parametrize(
  "kwargs,values",
  [
    (dict(momentum=0.0, nesterov=True), dict(momentum=0.0, dampening=0.0)),
    (dict(momentum=0.9, dampening=0.1, nesterov=True), dict(momentum=0.9, dampening=0.1)),
  ],
  ids=["no-momentum", "dampening"],
)
def test_nesterov_requires_momentum_and_no_dampening(kwargs, values):
  for fn, base in ((O.sgd, dict(learning_rate=0.1)), (O.scale_by_sgd, dict())):
    with pytest.raises(ValueError, match=re.escape(f"{fn.__name__}: nesterov=True requires")) as info:
      fn(**base, **kwargs)
    assert all(f"{k}={v!r}" in str(info.value) for k, v in values.items())
  # traced: lane 0 valid (momentum 0.9, dampening 0), lane 1 the bad combination
  lanes = {k: jnp.asarray([0.9 if k == "momentum" else 0.0, v], jnp.float32) for k, v in values.items()}
  out = _traced_nesterov(lanes)
  for x in jax.tree.leaves(out):
    assert bool(jnp.all(jnp.isfinite(x[0]))) and bool(jnp.all(jnp.isnan(x[1])))


@pytest.mark.parametrize(
  "call,fragment",
  [
    (lambda: O.adam("0.1"), "adam: `learning_rate` must be a number, got learning_rate='0.1'."),
    (lambda: O.sgd(None), "sgd: `learning_rate` must be a number, got learning_rate=None."),
    (lambda: O.rmsprop(float("nan")), "rmsprop: `learning_rate` must be finite"),
    (lambda: O.adagrad(0.1, eps="1e-10"), "adagrad: `eps` must be a number, got eps='1e-10'."),
    (lambda: O.adam(0.1, b1=[0.9, 0.99]), "adam: `b1` must be a scalar"),
    (lambda: O.adam(0.1, amsgrad="yes"), "adam: `amsgrad` must be True or False, got amsgrad='yes'."),
    (lambda: O.rmsprop(0.1, centered=1), "rmsprop: `centered` must be True or False, got centered=1."),
    (lambda: O.sgd(0.1, nesterov=None), "sgd: `nesterov` must be True or False, got nesterov=None."),
    (
      lambda: O.adam(0.1, amsgrad_max="max"),
      "adam: `amsgrad_max` must be one of 'raw', 'corrected', got amsgrad_max='max'.",
    ),
    (
      lambda: O.adamw(0.1, moment_dtype="int32"),
      "adamw: `moment_dtype` must be None, 'params' or a floating dtype",
    ),
    (
      lambda: O.adagrad(0.1, moment_dtype="nope"),
      "adagrad: `moment_dtype` must be None, 'params' or a floating dtype",
    ),
  ],
)
def test_bad_types_and_options_raise(call, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    call()


# ------------------------------------------------------------------------------------------------
# Params only where a decay can be non-zero (issue 10, item 2)
# ------------------------------------------------------------------------------------------------

ALIASES = {"sgd": O.sgd, "adagrad": O.adagrad, "rmsprop": O.rmsprop, "adam": O.adam, "adamw": O.adamw}


@pytest.mark.parametrize("name", list(ALIASES))
def test_inject_hyperparams_without_params_when_weight_decay_is_zero(name):
  kwargs = dict(learning_rate=0.1, weight_decay=0.0) if name == "adamw" else dict(learning_rate=0.1)
  tx = optax.inject_hyperparams(ALIASES[name])(**kwargs)
  state = tx.init(PARAMS)
  g = _at(GRADS, 0)
  # the default weight_decay=0.0 is an array in the state: eagerly concrete, under jit traced
  eager, _ = tx.update(g, state)
  jitted, _ = jax.jit(tx.update)(g, state)
  expected, _ = ALIASES[name](**kwargs).update(g, ALIASES[name](**kwargs).init(PARAMS), PARAMS)
  _close(eager, expected, rtol=1e-6)
  _close(jitted, expected, rtol=1e-6)


@pytest.mark.parametrize("name", list(ALIASES))
@pytest.mark.parametrize(
  "hyperparam_dtype,param_dtype,grad_dtype",
  [
    (jnp.bfloat16, jnp.float32, jnp.bfloat16),
    (jnp.bfloat16, jnp.float32, jnp.float32),
    (jnp.float32, jnp.bfloat16, jnp.bfloat16),
    (jnp.float32, jnp.float32, jnp.bfloat16),
    (jnp.float32, jnp.bfloat16, jnp.float32),
  ],
)
def test_optax_inject_test_hyperparam_dtypes(name, hyperparam_dtype, param_dtype, grad_dtype):
  """Optax's ``_inject_test.test_hyperparam_dtypes``, on our optimizers: ``update`` without params."""
  kwargs = dict(learning_rate=0.1, weight_decay=0.0) if name == "adamw" else dict(learning_rate=0.1)
  tx = optax.inject_hyperparams(ALIASES[name], hyperparam_dtype=hyperparam_dtype)(**kwargs)
  params = [jnp.ones((1, 2), param_dtype), jnp.ones(2, param_dtype), jnp.ones((1, 1, 1), param_dtype)]
  grads = jax.tree.map(lambda x: x.astype(grad_dtype), params)
  state = jax.jit(tx.init)(params)
  assert state.hyperparams["learning_rate"].dtype == hyperparam_dtype
  u, state = jax.jit(tx.update)(grads, state)
  assert state.hyperparams["learning_rate"].dtype == hyperparam_dtype
  if hyperparam_dtype == jnp.float32:  # in bfloat16, b2=0.999 rounds to 1.0: an invalid (NaN) lane
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))


@pytest.mark.parametrize("name", list(ALIASES))
def test_nonzero_weight_decay_without_params_says_how_to_pass_them(name):
  g = _at(GRADS, 0)
  for tx in (
    ALIASES[name](0.1, weight_decay=0.1),
    optax.inject_hyperparams(ALIASES[name])(0.1, weight_decay=0.1),
  ):
    with pytest.raises(ValueError, match=re.escape(f"{name}: `params` must be passed")) as info:
      tx.update(g, tx.init(PARAMS))
    assert "opt.update(grads, state, params)" in str(info.value) and "weight_decay=0.1" in str(info.value)


_traced_no_params = {
  name: jax.jit(
    jax.vmap(lambda wd, f=f: f(0.1, weight_decay=wd).update(_at(GRADS, 0), f(0.1).init(PARAMS))[0])
  )
  for name, f in ALIASES.items()
}


@pytest.mark.parametrize("name", list(ALIASES))
def test_traced_weight_decay_without_params_is_nan_only_where_nonzero(name):
  f = ALIASES[name]
  tx = f(0.1, weight_decay=0.0)
  expected, _ = tx.update(_at(GRADS, 0), tx.init(PARAMS))
  tx = f(0.1, weight_decay=jnp.float32(0.0))
  out = _traced_no_params[name](jnp.asarray([0.0, 0.1], jnp.float32))
  _close(_at(out, 0), expected, rtol=1e-6)
  assert all(bool(jnp.all(jnp.isnan(x[1]))) for x in jax.tree.leaves(out))


# ------------------------------------------------------------------------------------------------
# Negative-rate schedules (issue 10, item 11) and the adamw docstring (item 20)
# ------------------------------------------------------------------------------------------------

NEGATIVE_SCHEDULES = {
  "cosine_at_0": (S.cosine_annealing(-0.1, 100), "-0.1 at step 0"),
  "linear_crossing_0": (S.linear(0.1, -0.1, 100), "at step 51"),
  "join_late": (S.join([S.constant(0.1), S.constant(-1.0)], [10**6]), "-1 at step 1000000"),
  "exponential_end": (S.cosine_annealing(0.1, 10**8, end_value=-1e-3), "at step"),
}


@pytest.mark.parametrize("name", list(ALIASES))
@pytest.mark.parametrize("case", list(NEGATIVE_SCHEDULES))
def test_a_schedule_with_negative_rates_raises_at_construction(name, case):
  sched, where = NEGATIVE_SCHEDULES[case]
  with pytest.raises(
    ValueError, match=re.escape(f"{name}: `learning_rate` must be >= 0 at every step")
  ) as info:
    ALIASES[name](sched)
  assert where in str(info.value)


def test_schedule_check_accepts_good_schedules_and_skips_traced_and_plain_callables():
  O.adam(S.warmup(S.cosine_annealing(0.1, 1000), 100))  # non-negative everywhere: accepted
  O.adam(S.cosine_annealing(0.0, 10))
  calls = []
  O.adam(lambda step: calls.append(step) or -0.1)  # a plain callable is never called at construction
  assert calls == []
  # traced hyperparameters are not evaluated (no error under jit; the values are the caller's)
  jax.jit(lambda v: O.adam(S.cosine_annealing(v, 100)).update(_at(GRADS, 0), O.adam(0.1).init(PARAMS))[0])(
    jnp.float32(-0.1)
  )
  with pytest.raises(ValueError, match=re.escape("adamw: `weight_decay` must be >= 0 at every step")):
    O.adamw(0.1, weight_decay=S.cosine_annealing(-0.1, 10))


def test_adamw_docstring_does_not_advise_optax_masked():
  doc = O.adamw.__doc__
  assert "wrap with ``optax.masked``" not in doc
  assert "mask=" in doc and "do not wrap the optimizer in\n  ``optax.masked``" in doc
