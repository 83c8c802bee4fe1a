"""schedule_free_sgd / adamw / radam: tracing, validation, state, eval params, composition.

Parity with the ``schedulefree`` reference package is in tests/parity/test_schedulefree.py.
"""

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from lr_jax import optimizers as O
from lr_jax import schedules as S
from lr_jax.optimizers._schedule_free import _radam_rho
from tests.helpers import close

K = 12
PARAMS = {"b": jnp.asarray([0.5, -1.0, 2.0]), "w": jnp.asarray([[1.0, -0.5], [0.25, 3.0]])}
GRADS = jax.tree.map(
  lambda p: jnp.asarray(np.random.default_rng(p.size).normal(size=(K, *p.shape)), jnp.float32), PARAMS
)

BUILD = {"sgd": O.schedule_free_sgd, "adamw": O.schedule_free_adamw, "radam": O.schedule_free_radam}
B1 = {"sgd": "momentum", "adamw": "b1", "radam": "b1"}
# three lanes per hyperparameter; lane 0 has Python zeros (the static paths), lanes 1-2 the traced ones
GRID = {
  "sgd": {
    "learning_rate": [0.1, 0.05, 0.2],
    "momentum": [0.9, 0.5, 0.8],
    "weight_decay": [0.0, 0.1, 0.01],
    "warmup_steps": [0, 3, 20],
    "r": [0.0, 1.0, 2.5],
    "weight_lr_power": [2.0, 0.0, 1.0],
  },
  "adamw": {
    "learning_rate": [0.01, 0.05, 0.2],
    "b1": [0.9, 0.5, 0.8],
    "b2": [0.999, 0.9, 0.99],
    "eps": [1e-8, 1e-3, 0.1],
    "weight_decay": [0.0, 0.1, 0.01],
    "warmup_steps": [0, 3, 20],
    "r": [0.0, 1.0, 2.5],
    "weight_lr_power": [2.0, 0.0, 1.0],
  },
  "radam": {
    "learning_rate": [0.01, 0.05, 0.2],
    "b1": [0.9, 0.5, 0.8],
    "b2": [0.999, 0.9, 0.5],
    "eps": [1e-8, 1e-3, 0.1],
    "weight_decay": [0.0, 0.1, 0.01],
    "r": [0.0, 1.0, 2.5],
    "weight_lr_power": [2.0, 0.0, 1.0],
  },
}
KINDS = tuple(BUILD)


def _at(tree, k):
  return jax.tree.map(lambda x: x[k], tree)


def _scan(tx, params=PARAMS, grads=GRADS):
  def body(carry, g):
    p, s = carry
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), s.next_lr

  (p, s), lrs = lax.scan(body, (params, tx.init(params)), grads)
  return p, s, lrs


def _run(tx, params=PARAMS, grads=GRADS):
  """Eager Python loop."""
  s = tx.init(params)
  for k in range(len(jax.tree.leaves(grads)[0])):
    u, s = tx.update(_at(grads, k), s, params)
    params = optax.apply_updates(params, u)
  return params, s


def _hp(grid, int_warmup=True):
  return {
    k: jnp.asarray(v, jnp.int32 if k == "warmup_steps" and int_warmup else jnp.float32)
    for k, v in grid.items()
  }


def _bad_lanes(kind):
  """Lane 0 valid; lane i + 1 with the i-th bad value of BAD for this optimizer."""
  bad = [(p, v) for f, p, v in BAD if f == f"schedule_free_{kind}" and p != "learning_rate"]
  good = {p: v[1] for p, v in GRID[kind].items()}
  return bad, {p: [good[p]] + [v if q == p else good[p] for q, v in bad] for p in good}


@functools.cache
def _batched():
  """One compiled program for all vmapped runs: {kind: (params, eval params) of GRID, params of bad lanes}."""

  def run(kind, hp):
    p, s, _ = _scan(BUILD[kind](**hp))
    return p, O.schedule_free_eval_params(p, s)

  @jax.jit
  def all_runs(grids, bads):
    return {
      k: (jax.vmap(lambda h, k=k: run(k, h))(grids[k]), jax.vmap(lambda h, k=k: run(k, h)[0])(bads[k]))
      for k in KINDS
    }

  with jax.numpy_dtype_promotion("strict"):
    return all_runs(
      {k: _hp(GRID[k]) for k in KINDS}, {k: _hp(_bad_lanes(k)[1], int_warmup=False) for k in KINDS}
    )


@pytest.mark.parametrize("kind", KINDS)
def test_vmap_over_every_hyperparameter_equals_a_python_loop(kind):
  batched = _batched()[kind][0]
  for lane in range(3):
    with jax.numpy_dtype_promotion("strict"):
      p, s = _run(BUILD[kind](**{k: v[lane] for k, v in GRID[kind].items()}))
    close(_at(batched[0], lane)["w"], p["w"], rtol=2e-6, atol=1e-7)
    close(_at(batched[1], lane)["b"], O.schedule_free_eval_params(p, s)["b"], rtol=2e-6, atol=1e-7)


BAD = [
  ("schedule_free_sgd", "momentum", 1.0),
  ("schedule_free_sgd", "momentum", 0.0),
  ("schedule_free_sgd", "learning_rate", -0.1),
  ("schedule_free_sgd", "weight_decay", -1.0),
  ("schedule_free_sgd", "warmup_steps", 2.5),
  ("schedule_free_sgd", "warmup_steps", -1),
  ("schedule_free_sgd", "r", -0.5),
  ("schedule_free_sgd", "weight_lr_power", -2.0),
  ("schedule_free_adamw", "b1", 1.5),
  ("schedule_free_adamw", "b2", 1.0),
  ("schedule_free_adamw", "eps", -1e-8),
  ("schedule_free_radam", "b1", 0.0),
  ("schedule_free_radam", "b2", -0.1),
]


@pytest.mark.parametrize(("fn", "param", "bad"), BAD)
def test_a_bad_concrete_value_raises_naming_function_parameter_and_value(fn, param, bad):
  with pytest.raises(ValueError, match=re.escape(f"{fn}: `{param}`") + ".*" + re.escape(f"{param}={bad!r}")):
    getattr(O, fn)(**{param: bad})


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_traced_value_gives_a_nan_lane(kind):
  out = _batched()[kind][1]
  nan = np.asarray(jnp.all(jnp.isnan(out["w"]), axis=(1, 2)))
  assert nan.tolist() == [False] + [True] * len(_bad_lanes(kind)[0])


def test_update_needs_params():
  tx = O.schedule_free_adamw()
  with pytest.raises(ValueError, match=r"schedule_free_adamw: `params` must be passed to update\(\)"):
    tx.update(PARAMS, tx.init(PARAMS))


@pytest.mark.parametrize("kind", KINDS)
def test_state_mirrors_params_and_keeps_its_dtypes(kind):
  tx = BUILD[kind]()
  s0 = tx.init(PARAMS)
  _, s1 = tx.update(_at(GRADS, 0), s0, PARAMS)
  assert isinstance(s1, O.ScheduleFreeState) and s1.count.dtype == jnp.int32 and int(s1.count) == 1
  chex.assert_trees_all_equal_shapes_and_dtypes(s0, s1)  # lax.cond (apply_if_finite) needs this
  chex.assert_trees_all_equal_shapes(s0.z, PARAMS)
  assert (s0.nu is None) == (kind == "sgd")
  with pytest.raises(AssertionError):
    tx.update({"b": jnp.zeros(3), "w": jnp.zeros(3)}, s0, PARAMS)


def test_bfloat16_params_keep_a_float32_z_and_get_bfloat16_updates():
  params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), PARAMS)
  tx = O.schedule_free_adamw(0.01)
  s = tx.init(params)
  u, s = jax.jit(tx.update)(jax.tree.map(lambda g: g.astype(jnp.bfloat16), _at(GRADS, 0)), s, params)
  assert {x.dtype for x in jax.tree.leaves(u)} == {jnp.dtype(jnp.bfloat16)}
  assert {x.dtype for x in jax.tree.leaves(s.z)} == {jnp.dtype(jnp.float32)}
  assert O.schedule_free_eval_params(params, s)["w"].dtype == jnp.bfloat16


def test_next_lr_is_the_warmed_up_step_size_of_the_next_update():
  tx = O.schedule_free_sgd(0.1, warmup_steps=4)
  assert float(tx.init(PARAMS).next_lr) == pytest.approx(0.025)
  _, s, lrs = _scan(tx)
  close(lrs[:5], [0.05, 0.075, 0.1, 0.1, 0.1], rtol=1e-6)
  close(s.lr_max, 0.1)
  close(s.weight_sum, 0.01 * (K - 3) + (0.025**2 + 0.05**2 + 0.075**2), rtol=1e-5)
  # a schedule is the base rate, multiplied by the warm-up
  _, _, lrs = _scan(O.schedule_free_sgd(S.step_decay(0.1, step_size=6, gamma=0.5), warmup_steps=4))
  close(np.asarray(lrs)[[0, 6, 7, 8]], [0.05, 0.05, 0.05, 0.05], rtol=1e-6)
  close(lrs[3:5], [0.1, 0.1], rtol=1e-6)


def test_eval_and_train_params_are_inverse_and_found_inside_wrappers():
  tx = optax.chain(O.clip_grad_norm(1.0), O.schedule_free_sgd(0.1))
  p, s = _run(tx)
  x = O.schedule_free_eval_params(p, s)
  y = O.schedule_free_train_params(x, s)
  close(y["w"], p["w"], rtol=1e-6, atol=1e-7)
  sf = s[1]
  close(x["b"], (p["b"] - (1 - 0.9) * sf.z["b"]) / 0.9, rtol=1e-5)  # Optax's form of the same x
  multi = optax.MultiSteps(O.schedule_free_sgd(0.1), every_k_schedule=2)
  ms = multi.init(PARAMS)
  assert O.schedule_free_eval_params(PARAMS, ms)["w"].shape == (2, 2)
  with pytest.raises(ValueError, match="schedule_free_eval_params: `opt_state` must hold exactly one"):
    O.schedule_free_eval_params(PARAMS, O.adam().init(PARAMS))


def test_masked_weight_decay_equals_no_decay_on_the_masked_leaves():
  mask = {"b": False, "w": True}
  masked, _ = _run(O.schedule_free_adamw(0.05, weight_decay=0.5, mask=mask))
  decayed, _ = _run(O.schedule_free_adamw(0.05, weight_decay=0.5))
  plain, _ = _run(O.schedule_free_adamw(0.05))
  close(masked["b"], plain["b"], rtol=1e-6)
  close(masked["w"], decayed["w"], rtol=1e-6)
  assert not np.allclose(plain["w"], decayed["w"], rtol=1e-3)


def test_chained_after_clipping_jits_once_and_skips_nonfinite_updates():
  tx = optax.apply_if_finite(optax.chain(O.clip_grad_norm(1.0), O.schedule_free_radam(0.01)), 3)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, state, g):
    u, state = tx.update(g, state, params)
    return optax.apply_updates(params, u), state

  p, s = PARAMS, tx.init(PARAMS)
  for k in range(3):
    g = _at(GRADS, k)
    p, s = step(p, s, jax.tree.map(lambda x: x * jnp.nan, g) if k == 1 else g)
  assert int(s.notfinite_count) == 0 and int(s.total_notfinite) == 1
  assert np.isfinite(np.asarray(p["w"])).all()


def test_radam_rectification_term_is_float32_accurate():
  """rho_t in float32 against float64: the cancellation-free form, and the textbook one for contrast."""
  t = np.arange(1, 3001, dtype=np.float64)
  for b2 in (0.5, 0.9, 0.99, 0.999, 0.9999):
    exact = 2 / (1 - b2) - 1 - 2 * t * b2**t / (1 - b2**t)
    ours = np.asarray(_radam_rho(jnp.asarray(t, jnp.float32), jnp.float32(1 - b2)), np.float64)
    np.testing.assert_allclose(ours, exact, rtol=2e-6)
    if b2 == 0.999:
      t32, b32 = np.float32(t), np.float32(b2)
      naive = 2 / (1 - b32) - 1 - 2 * t32 * b32**t32 / (1 - b32**t32)
      assert np.max(np.abs(naive - exact) / exact) > 1e-4  # what the textbook form loses in float32
  close(_radam_rho(jnp.float32(5.0), jnp.float32(1.0)), 1.0)  # b2 = 0: never rectified


def test_inject_hyperparams_equals_the_plain_optimizer():
  grads = jax.tree.map(lambda g: g[:3], GRADS)
  tx = optax.inject_hyperparams(O.schedule_free_adamw)(learning_rate=0.01, warmup_steps=4, b1=0.9)
  p, s = _run(tx, grads=grads)
  q, t = _run(O.schedule_free_adamw(0.01, warmup_steps=4), grads=grads)
  close(p["w"], q["w"], rtol=1e-6)
  close(O.schedule_free_eval_params(p, s)["w"], O.schedule_free_eval_params(q, t)["w"], rtol=1e-6)
  assert float(s.inner_state.next_lr) == float(t.next_lr) == pytest.approx(0.01)


def test_z_is_a_copy_so_params_and_state_can_both_be_donated():
  params = jax.tree.map(jnp.copy, PARAMS)
  tx = O.schedule_free_sgd(0.1)
  state = tx.init(params)
  assert all(z is not p for z, p in zip(jax.tree.leaves(state.z), jax.tree.leaves(params), strict=True))

  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  params, state = jax.jit(step, donate_argnums=(0, 1))(params, state, _at(GRADS, 0))
  assert int(state.count) == 1


def test_current_lr_reads_the_schedule_free_step_size_through_a_chain():
  """``current_lr`` equals schedulefree's ``scheduled_lr`` of the next update: lr * (k+1)/warmup in warm-up."""
  tx = optax.chain(O.reduce_on_plateau(factor=0.5), O.schedule_free_adamw(0.01, warmup_steps=4))
  params = jnp.ones(3)
  state = tx.init(params)
  for k in range(6):
    _, state = tx.update(jnp.full(3, 0.1), state, params)
    want = 0.01 * min(1.0, (k + 2) / 4)  # the rate the (k+2)-th update will use (closed form of the warm-up)
    np.testing.assert_allclose(float(O.current_lr(state)), want, rtol=1e-6)
