"""``reduce_on_plateau``: state, tracing (jit, scan, vmap), composition, NaN handling and validation.

Parity with PyTorch's ReduceLROnPlateau is in ``tests/parity/test_torch_plateau.py``.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lr_jax import optimizers
from lr_jax.optimizers import ReduceOnPlateauState, reduce_on_plateau
from tests.helpers import plateau_scan_scales as scan_scales

NAN, INF = float("nan"), float("inf")
VALUES = [1.0, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
KW = {"factor": 0.5, "patience": 1, "cooldown": 1, "min_scale": 0.1}
PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}


def _grads(i):
  return jax.tree.map(lambda p: jnp.full_like(p, 0.5 + i), PARAMS)


def eager_scales(values, **kw):
  """Python loop over an un-jitted update (concrete hyperparameters: the eager path)."""
  tx = reduce_on_plateau(**kw)
  state = tx.init(PARAMS)
  out = []
  for i, v in enumerate(values):
    updates, state = tx.update(_grads(i), state, value=v)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g, s=state.scale: g * s, _grads(i)))
    out.append(float(state.scale))
  return np.array(out)


def f32(*xs):
  return [np.float32(x) for x in xs]


# ---------------------------------------------------------------------------------------------- state


def test_state_fields_dtypes_and_init():
  tx = reduce_on_plateau()
  state = tx.init(PARAMS)
  assert isinstance(state, ReduceOnPlateauState)
  assert state._fields[0] == "count"
  for name in ("scale", "best", "num_bad", "cooldown_counter", "acc_sum", "acc_count"):
    assert name in state._fields
  chex.assert_shape(list(state), ())
  assert state.scale.dtype == jnp.float32 and state.best.dtype == jnp.float32
  assert state.count.dtype == jnp.int32 and state.num_bad.dtype == jnp.int32
  assert float(state.scale) == 1.0 and float(state.best) == INF
  assert float(reduce_on_plateau(mode="max").init(PARAMS).best) == -INF


@pytest.mark.parametrize("value", [0.5, np.float64(0.5), jnp.float32(0.5), jnp.bfloat16(0.5), 1])
def test_update_keeps_state_dtypes(value):
  """Identical dtypes in init and update, whatever the value's dtype (lax.scan / lax.cond need it)."""
  tx = reduce_on_plateau(accumulation_steps=2)
  state = tx.init(PARAMS)
  _, new = tx.update(_grads(0), state, value=value)
  chex.assert_trees_all_equal_dtypes(state, new)
  chex.assert_trees_all_equal_shapes(state, new)


def test_count_saturates():
  tx = reduce_on_plateau()
  state = tx.init(PARAMS)._replace(count=jnp.asarray(2**31 - 1, jnp.int32))
  _, state = jax.jit(tx.update)(_grads(0), state, value=1.0)
  assert int(state.count) == 2**31 - 1


def test_count_counts_calls_and_accumulator_resets():
  tx = reduce_on_plateau(accumulation_steps=3)
  state = tx.init(PARAMS)
  for i, v in enumerate([1.0, 2.0, 3.0, 4.0]):
    _, state = tx.update(_grads(i), state, value=v)
  assert int(state.count) == 4
  assert int(state.acc_count) == 1 and float(state.acc_sum) == 4.0
  assert float(state.best) == 2.0  # the mean of the first three


def test_updates_keep_their_dtype():
  tx = reduce_on_plateau(factor=0.5, patience=0)
  params = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
  state = tx.init(params)
  for v in (1.0, 2.0):
    updates, state = tx.update(params, state, value=v)
  assert updates["a"].dtype == jnp.bfloat16 and updates["b"].dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(updates["a"], np.float32), 0.5)


def test_strict_dtype_promotion():
  with jax.numpy_dtype_promotion("strict"):
    eager = eager_scales(VALUES, **KW)
    tx = reduce_on_plateau(**KW)
    params = {"a": jnp.ones(3, jnp.bfloat16)}
    updates, _ = tx.update(params, tx.init(params), value=jnp.float32(1.0))
    assert updates["a"].dtype == jnp.bfloat16
    jitted = scan_scales(jnp.asarray(VALUES, jnp.float32), *f32(0.5, 1, 1e-4, 1, 0.1))
  np.testing.assert_array_equal(jitted, eager)


def test_value_must_be_scalar():
  tx = reduce_on_plateau()
  with pytest.raises(ValueError, match=r"reduce_on_plateau: `value` must be a scalar.*\(3,\)"):
    tx.update(_grads(0), tx.init(PARAMS), value=jnp.ones(3))


@pytest.mark.parametrize("bad", ["x", 1 + 2j])
def test_plateau_step_value_must_be_real(bad):
  """A string used to raise JAX's TypeError, a complex value dropped its imaginary part silently."""
  state = reduce_on_plateau().init(PARAMS)
  with pytest.raises(ValueError, match=r"plateau_step: `value` must be a real number, got value="):
    optimizers.plateau_step(state, bad)


def test_update_without_value_only_applies_the_scale_in_force():
  tx = reduce_on_plateau(factor=0.5, patience=0)
  state = tx.init(PARAMS)
  _, state = tx.update(_grads(0), state, value=1.0)
  _, state = tx.update(_grads(1), state, value=2.0)  # a bad evaluation: the scale halves
  before = state
  updates, state = tx.update(_grads(2), state)
  chex.assert_trees_all_close(updates, jax.tree.map(lambda g: 0.5 * g, _grads(2)))
  assert int(state.count) == 3
  for name in ("scale", "best", "num_bad", "cooldown_counter", "acc_sum", "acc_count"):
    assert float(getattr(state, name)) == float(getattr(before, name)), name


# ----------------------------------------------------------------------------- tracing: jit, scan, vmap


def test_the_default_sequence_reduces():
  scales = eager_scales(VALUES, **KW)
  assert scales[-1] < scales[0] == 1.0  # the comparisons below are not vacuous


def test_jit_equals_eager():
  eager = eager_scales(VALUES, **KW)
  tx = reduce_on_plateau(**KW)
  update = jax.jit(tx.update)
  state = tx.init(PARAMS)
  out = []
  for i, v in enumerate(VALUES):
    updates, state = update(_grads(i), state, value=v)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g, s=state.scale: g * s, _grads(i)))
    out.append(float(state.scale))
  np.testing.assert_array_equal(out, eager)


def test_jitted_update_does_not_retrace():
  tx = reduce_on_plateau(**KW)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def update(g, s, v):
    return tx.update(g, s, value=v)

  state = tx.init(PARAMS)
  for i, v in enumerate(VALUES[:4]):
    _, state = update(_grads(i), state, jnp.float32(v))


def test_scan_equals_eager():
  for kw, values in [
    (KW, VALUES),
    (
      {"factor": 0.3, "patience": 0, "mode": "max", "threshold_mode": "abs", "threshold": 0.05},
      [0.1, 0.2, 0.22, 0.3, 0.3],
    ),
    (
      {"factor": 0.5, "patience": 0, "accumulation_steps": 3},
      [3.0, 1.0, 2.0, 2.0, 2.0, 2.0, 5.0, 0.0, 1.0, 9.0],
    ),
  ]:
    eager = eager_scales(values, **kw)
    hyper = {k: np.float32(v) for k, v in kw.items() if k not in ("mode", "threshold_mode")}
    modes = {k: v for k, v in kw.items() if k in ("mode", "threshold_mode")}
    np.testing.assert_array_equal(scan_scales(jnp.asarray(values, jnp.float32), **hyper, **modes), eager)


def test_inside_a_training_scan_with_optax_chain():
  """Constructed with concrete hyperparameters outside, used in a jitted scan of full training steps."""
  tx = optax.chain(optax.sgd(0.1), reduce_on_plateau(**KW))

  @jax.jit
  def train(params, losses):
    def step(carry, loss):
      params, state = carry
      updates, state = tx.update(params, state, params, value=loss)  # gradient of |p|^2 / 2
      return (optax.apply_updates(params, updates), state), state[1].scale

    return jax.lax.scan(step, (params, tx.init(params)), losses)

  (params, _), scales = train(PARAMS, jnp.asarray(VALUES))
  np.testing.assert_array_equal(scales, eager_scales(VALUES, **KW))
  expected = np.prod(1 - 0.1 * np.asarray(scales, np.float64))
  np.testing.assert_allclose(np.asarray(params["w"]), expected, rtol=1e-5)  # float32 products over 18 steps


HYPER_GRID = {
  "factor": [0.5, 0.2, 0.9],
  "patience": [0, 1, 3],
  "threshold": [0.0, 0.1, 0.3],
  "cooldown": [0, 1, 4],
  "min_scale": [0.0, 0.3, 0.6],
  "accumulation_steps": [1, 2, 3],
}


@pytest.mark.parametrize("name", HYPER_GRID)
def test_vmap_over_each_hyperparameter_equals_loop(name):
  values = [
    1.0,
    0.95,
    0.9,
    0.9,
    0.9,
    0.85,
    0.6,
    0.6,
    0.6,
    0.6,
    0.6,
    0.6,
    0.5,
    0.5,
    0.5,
    0.5,
    0.5,
    0.5,
    0.5,
    0.5,
  ]
  base = {
    "factor": 0.5,
    "patience": 1,
    "threshold": 0.05,
    "cooldown": 1,
    "min_scale": 0.0,
    "accumulation_steps": 1,
  }
  grid = HYPER_GRID[name]
  batched = jax.vmap(
    lambda x: scan_scales(jnp.asarray(values), **{**{k: np.float32(v) for k, v in base.items()}, name: x})
  )(jnp.asarray(grid, jnp.float32))
  loop = np.stack([eager_scales(values, **{**base, name: g}) for g in grid])
  np.testing.assert_array_equal(np.asarray(batched), loop)
  assert len({tuple(row) for row in loop}) > 1, "the grid should change the outcome"


def test_vmap_over_factor_and_patience_together():
  values = jnp.asarray(VALUES)
  factors, patiences = np.meshgrid([0.5, 0.1], [0, 2])
  batched = jax.vmap(
    lambda f, p: scan_scales(values, f, p, np.float32(1e-4), np.float32(1), np.float32(0.1))
  )(jnp.asarray(factors.ravel(), jnp.float32), jnp.asarray(patiences.ravel(), jnp.float32))
  for row, f, p in zip(np.asarray(batched), factors.ravel(), patiences.ravel()):
    np.testing.assert_array_equal(row, eager_scales(VALUES, **{**KW, "factor": f, "patience": int(p)}))


def test_vmap_over_values_batch():
  """A batch of runs with different loss sequences (one state per lane)."""
  tx = reduce_on_plateau(**KW)
  seqs = jnp.stack([jnp.asarray(VALUES), jnp.asarray(VALUES[::-1])])

  def run(vals):
    def body(s, v):
      return tx.update({"w": jnp.zeros(())}, s, value=v)[1], None

    return jax.lax.scan(body, tx.init(None), vals)[0].scale

  out = jax.jit(jax.vmap(run))(seqs)
  np.testing.assert_array_equal(out, [eager_scales(VALUES, **KW)[-1], eager_scales(VALUES[::-1], **KW)[-1]])


def test_grad_through_chain_is_finite():
  tx = optax.chain(optax.sgd(0.1), reduce_on_plateau(**KW))

  def loss_after(w):
    params = {"w": w}
    state = tx.init(params)
    for v in VALUES[:6]:
      updates, state = tx.update(params, state, params, value=v)
      params = optax.apply_updates(params, updates)
    return jnp.sum(params["w"] ** 2)

  g = jax.grad(loss_after)(jnp.ones(3))
  assert np.all(np.isfinite(np.asarray(g)))


# ------------------------------------------------------------------------------------------ composition


def test_chain_with_adam_scales_adams_updates():
  adam = optax.adam(1e-3)
  tx = optax.chain(optax.adam(1e-3), reduce_on_plateau(factor=0.5, patience=0))
  assert isinstance(tx, optax.GradientTransformationExtraArgs)
  params = PARAMS
  state, adam_state = tx.init(params), adam.init(params)
  expected_scales = eager_scales(VALUES, factor=0.5, patience=0)
  update = jax.jit(tx.update)
  for i, v in enumerate(VALUES):
    updates, state = update(_grads(i), state, params, value=jnp.float32(v))
    adam_updates, adam_state = adam.update(_grads(i), adam_state, params)
    assert float(state[1].scale) == expected_scales[i]
    chex.assert_trees_all_close(
      updates, jax.tree.map(lambda u, s=expected_scales[i]: u * s, adam_updates), rtol=1e-6
    )
    params = optax.apply_updates(params, updates)
  assert expected_scales[-1] < 1


def test_chain_with_lr_jax_adam():
  tx = optax.chain(optimizers.adam(1e-3), reduce_on_plateau(factor=0.5, patience=0))
  plain = optimizers.adam(1e-3)
  state, plain_state = tx.init(PARAMS), plain.init(PARAMS)
  scales = eager_scales(VALUES[:6], factor=0.5, patience=0)
  for i, v in enumerate(VALUES[:6]):
    updates, state = tx.update(_grads(i), state, PARAMS, value=v)
    plain_updates, plain_state = plain.update(_grads(i), plain_state, PARAMS)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda u, s=scales[i]: u * s, plain_updates), rtol=1e-6)


def test_value_reaches_it_through_nested_chains_and_other_extra_args():
  inner = optax.chain(optax.clip_by_global_norm(1.0), reduce_on_plateau(factor=0.5, patience=0))
  tx = optax.chain(optax.scale(2.0), inner, optax.sgd(1.0))
  state = tx.init(PARAMS)
  for i, v in enumerate([1.0, 2.0, 3.0]):
    _, state = tx.update(_grads(i), state, PARAMS, value=v, unrelated=123)
  assert float(state[1][1].scale) == 0.25


def test_with_inject_hyperparams_learning_rate():
  """The plateau multiplier composes with a scheduled/injected learning rate."""
  tx = optax.chain(
    optax.inject_hyperparams(optax.sgd)(learning_rate=0.1), reduce_on_plateau(factor=0.5, patience=0)
  )
  state = tx.init(PARAMS)
  for i, v in enumerate([1.0, 2.0, 3.0]):
    updates, state = tx.update(_grads(i), state, PARAMS, value=v)
  chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -0.1 * 0.25 * g, _grads(2)))


# --------------------------------------------------------------------------------------- NaN and inf


@given(
  values=st.lists(
    st.one_of(st.floats(-1e6, 1e6, width=32), st.sampled_from([NAN, INF, -INF])), min_size=1, max_size=30
  ),
  factor=st.floats(0.05, 0.95),
  patience=st.integers(0, 3),
  min_scale=st.sampled_from([0.0, 0.01, 0.3]),
  mode=st.sampled_from(["min", "max"]),
  threshold_mode=st.sampled_from(["rel", "abs"]),
)
def test_scale_stays_finite_monotone_and_bounded(values, factor, patience, min_scale, mode, threshold_mode):
  padded = np.full(30, NAN, np.float32)
  padded[: len(values)] = values
  scales = np.asarray(
    scan_scales(padded, *f32(factor, patience, 1e-4, 0, min_scale), mode=mode, threshold_mode=threshold_mode)
  )
  assert np.all(np.isfinite(scales))
  assert np.all(np.diff(scales) <= 0)
  assert np.all(scales <= 1.0) and np.all(scales >= min(min_scale, 1.0) * (1 - 1e-6))


def test_all_nan_reduces_like_constant_loss():
  nan_scales = eager_scales([NAN] * 8, factor=0.5, patience=1)
  np.testing.assert_array_equal(nan_scales, eager_scales([1.0] * 9, factor=0.5, patience=1)[1:])
  assert np.all(np.isfinite(nan_scales))


def test_best_ignores_non_finite_values():
  tx = reduce_on_plateau()
  state = tx.init(PARAMS)
  for i, v in enumerate([2.0, -INF, NAN, INF, 1.5]):
    _, state = tx.update(_grads(i), state, value=v)
  assert float(state.best) == 1.5


# --------------------------------------------------------------------------------------------- validation


BAD = [
  ("factor", 0.0),
  ("factor", 1.0),
  ("factor", -0.5),
  ("factor", 1.5),
  ("patience", -1),
  ("patience", 1.5),
  ("threshold", -1e-4),
  ("cooldown", -2),
  ("cooldown", 0.5),
  ("min_scale", -0.1),
  ("accumulation_steps", 0),
  ("accumulation_steps", -3),
  ("accumulation_steps", 2.5),
  ("factor", NAN),
  ("threshold", INF),
  ("patience", "3"),
  ("min_scale", None),
  ("factor", [0.1, 0.2]),
  ("cooldown", True),
]


@pytest.mark.parametrize("name,value", BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_bad_concrete_input_raises_naming_function_param_value(name, value):
  with pytest.raises(ValueError, match=rf"^reduce_on_plateau: `{name}` must") as err:
    reduce_on_plateau(**{name: value})
  assert f"{name}=" in str(err.value) or "shape" in str(err.value)


@pytest.mark.parametrize(
  "name,value",
  [
    ("mode", "auto"),
    ("mode", "MIN"),
    ("threshold_mode", "relative"),
    ("mode", None),
    ("threshold_mode", ["rel"]),
  ],
)
def test_unknown_modes_raise(name, value):
  with pytest.raises(ValueError, match=rf"reduce_on_plateau: `{name}` must be one of .*{name}="):
    reduce_on_plateau(**{name: value})


def test_error_message_shows_the_value():
  with pytest.raises(ValueError, match=r"`factor` must be in \(0, 1\), got factor=1.5\."):
    reduce_on_plateau(factor=1.5)
  with pytest.raises(ValueError, match=r"got accumulation_steps=0\."):
    reduce_on_plateau(accumulation_steps=0)


TRACED_BAD = {
  "factor": ([0.5, 0.0, 1.0, 1.5], [False, True, True, True]),
  "patience": ([1, -1, 1.5, 0], [False, True, True, False]),
  "threshold": ([0.1, -0.1], [False, True]),
  "cooldown": ([1, -1, 0.5], [False, True, True]),
  "min_scale": ([0.1, -0.1], [False, True]),
  "accumulation_steps": ([1, 0, 2, 2.5], [False, True, False, True]),
}


@pytest.mark.parametrize("name", TRACED_BAD)
def test_traced_invalid_gives_nan_lanes(name):
  lanes, bad = TRACED_BAD[name]
  base = {
    k: np.float32(v)
    for k, v in {
      "factor": 0.5,
      "patience": 1,
      "threshold": 1e-4,
      "cooldown": 0,
      "min_scale": 0.0,
      "accumulation_steps": 1,
    }.items()
  }
  out = jax.vmap(lambda x: scan_scales(jnp.asarray(VALUES[:6]), **{**base, name: x}))(
    jnp.asarray(lanes, jnp.float32)
  )
  out = np.asarray(out)
  np.testing.assert_array_equal(np.isnan(out).all(axis=1), bad)
  assert not np.isnan(out[~np.asarray(bad)]).any()


def test_traced_invalid_poisons_the_updates_and_the_initial_scale():
  @jax.jit
  def run(factor):
    tx = reduce_on_plateau(factor=factor)
    state = tx.init(PARAMS)
    updates, state = tx.update(_grads(0), state, value=1.0)
    return tx.init(PARAMS).scale, updates

  init_scale, updates = run(jnp.float32(2.0))
  assert np.isnan(float(init_scale))
  assert all(np.isnan(np.asarray(u)).all() for u in jax.tree.leaves(updates))
  init_scale, updates = run(jnp.float32(0.5))
  assert float(init_scale) == 1.0


# ------------------------------------------------------------------- plateau_step and current_lr


def _wrapped_states():
  """One optimizer per wrapper, each with a reduce_on_plateau inside; (name, tx)."""
  O = optimizers
  plateau = lambda: O.reduce_on_plateau(factor=0.5, patience=0)
  base = lambda: optax.chain(O.sgd(0.1), plateau())
  return {
    "chain": base(),
    "inject_hyperparams": optax.chain(optax.inject_hyperparams(O.sgd)(learning_rate=0.1), plateau()),
    "multi_steps": optax.MultiSteps(base(), every_k_schedule=2),
    "skip_nonfinite": O.skip_nonfinite(base()),
    "apply_if_finite": optax.apply_if_finite(base(), 3),
    "masked": optax.chain(optax.masked(O.sgd(0.1), {"w": True, "b": True}), plateau()),
  }


@pytest.mark.parametrize("name", list(_wrapped_states()))
def test_plateau_step_and_current_lr_through_wrappers(name):
  tx = _wrapped_states()[name]
  state = tx.init(PARAMS)
  assert float(optimizers.current_lr(state)) == pytest.approx(0.1)
  step = jax.jit(optimizers.plateau_step)
  state = step(state, 1.0)  # first value: an improvement
  state = step(state, 2.0)  # bad, patience 0: halve
  assert float(optimizers.current_lr(state)) == pytest.approx(0.05)
  updates, state = tx.update(_grads(0), state, PARAMS)
  if name != "multi_steps":  # MultiSteps holds the first micro-batch back
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -0.05 * g, _grads(0)), rtol=1e-6)
  state = step(state, 3.0)
  assert float(optimizers.current_lr(state)) == pytest.approx(0.025)


def test_plateau_step_under_vmap_and_in_scan():
  tx = optax.chain(optimizers.sgd(0.1), reduce_on_plateau(factor=0.5, patience=0))
  states = jax.vmap(lambda _: tx.init(PARAMS))(jnp.arange(3))
  values = jnp.array([[1.0, 1.0, 1.0], [1.0, 0.5, 0.25], [1.0, 2.0, 0.1]])  # per lane, per epoch

  def run(state, vs):
    return jax.lax.scan(lambda s, v: (optimizers.plateau_step(s, v), None), state, vs)[0]

  out = jax.jit(jax.vmap(run))(states, values)
  np.testing.assert_allclose(np.asarray(out[1].scale), [0.25, 1.0, 0.5])
  np.testing.assert_allclose(np.asarray(jax.vmap(optimizers.current_lr)(out)), [0.025, 0.1, 0.05], rtol=1e-6)


def test_plateau_step_leaves_count_and_accumulator_alone():
  tx = reduce_on_plateau(accumulation_steps=3)
  _, state = tx.update(_grads(0), tx.init(PARAMS), value=5.0)
  after = optimizers.plateau_step(state, 1.0)
  assert int(after.count) == 1 and float(after.acc_sum) == 5.0 and int(after.acc_count) == 1
  assert float(after.best) == 1.0


def test_plateau_step_errors():
  with pytest.raises(ValueError, match=r"plateau_step: `opt_state` must hold a reduce_on_plateau state"):
    optimizers.plateau_step(optimizers.sgd(0.1).init(PARAMS), 1.0)
  tx = reduce_on_plateau()
  with pytest.raises(ValueError, match=r"plateau_step: `value` must be a scalar"):
    optimizers.plateau_step(tx.init(PARAMS), jnp.ones(2))


def test_eps_skips_small_reductions_and_is_validated():
  tx = reduce_on_plateau(factor=0.5, patience=0, eps=0.1)
  state = tx.init(PARAMS)
  scales = []
  for _ in range(6):
    state = optimizers.plateau_step(state, 1.0)
    scales.append(float(state.scale))
  assert scales == [1.0, 0.5, 0.25, 0.125, 0.125, 0.125]  # 0.125 -> 0.0625 is a cut of 0.0625 <= eps
  with pytest.raises(ValueError, match=r"reduce_on_plateau: `eps` must be >= 0, got eps=-1"):
    reduce_on_plateau(eps=-1.0)


def test_current_lr_follows_lr_jax_schedules_and_plain_callables():
  from lr_jax import schedules

  sched = schedules.cosine_annealing(0.1, 10)
  for lr in (sched, optax.cosine_decay_schedule(0.1, 10), lambda t: 0.1 / (1 + t)):
    tx = optimizers.adam(lr)
    state = tx.init(PARAMS)
    update = jax.jit(tx.update)
    for k in range(4):
      np.testing.assert_allclose(float(optimizers.current_lr(state)), float(lr(k)), rtol=1e-6)
      _, state = update(_grads(k), state, PARAMS)


def test_current_lr_per_group_under_multi_transform():
  tx = optax.chain(
    optax.multi_transform(
      {"fast": optimizers.sgd(0.1), "slow": optimizers.adam(0.01)}, {"w": "fast", "b": "slow"}
    ),
    reduce_on_plateau(factor=0.5, patience=0),
  )
  state = tx.init(PARAMS)
  state = optimizers.plateau_step(optimizers.plateau_step(state, 1.0), 1.0)
  lrs = optimizers.current_lr(state)
  assert set(lrs) == {"fast", "slow"}
  np.testing.assert_allclose([float(lrs["fast"]), float(lrs["slow"])], [0.05, 0.005], rtol=1e-6)


def test_current_lr_inject_hyperparams_numeric_and_schedule():
  tx = optax.inject_hyperparams(optimizers.sgd)(learning_rate=0.1)
  state = tx.init(PARAMS)
  state.hyperparams["learning_rate"] = jnp.asarray(0.02)  # changed by hand, as Optax documents
  assert float(optimizers.current_lr(state)) == pytest.approx(0.02)
  tx = optax.inject_hyperparams(optimizers.sgd)(learning_rate=optax.linear_schedule(0.1, 0.0, 10))
  with pytest.raises(ValueError, match=r"current_lr: .*static_args=\('learning_rate',\)"):
    optimizers.current_lr(tx.init(PARAMS))
  tx = optax.inject_hyperparams(optimizers.sgd, static_args=("learning_rate",))(
    learning_rate=optax.linear_schedule(0.1, 0.0, 10)
  )
  state = tx.init(PARAMS)
  _, state = tx.update(_grads(0), state, PARAMS)
  assert float(optimizers.current_lr(state)) == pytest.approx(0.09)


def test_current_lr_without_a_learning_rate_raises():
  with pytest.raises(ValueError, match="current_lr: found no learning rate"):
    optimizers.current_lr(optax.chain(optax.adam(1e-3), reduce_on_plateau()).init(PARAMS))


def test_learning_rate_state_keeps_float32_with_float32_params():
  from lr_jax import schedules

  state = optimizers.sgd(schedules.cosine_annealing(0.1, 10)).init(PARAMS)
  dtypes = {x.dtype for x in jax.tree.leaves(state[1])}
  assert dtypes <= {jnp.dtype(jnp.float32), jnp.dtype(jnp.int32)}
