"""``optimizers.update_step``: the jitted, donating ``update + apply_updates``.

Reference: the same optimizer run op by op (eager ``update`` then ``optax.apply_updates``, no jit).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S


def _params():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  return {
    "w": jax.random.normal(k1, (7, 5), jnp.float32),
    "b": jax.random.normal(k2, (5,), jnp.float32),
    "nested": [jax.random.normal(k3, (3,), jnp.float32), jnp.asarray(0.5, jnp.float32)],
  }


def _grads(t):
  return jax.tree.map(lambda p: jnp.cos(p * (t + 1.0)) + 0.1 * t, _params())


OPTIMIZERS = {
  "sgd": lambda: O.sgd(0.1),
  "sgd_momentum_nesterov_wd": lambda: O.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
  "adagrad": lambda: O.adagrad(0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1),
  "rmsprop": lambda: O.rmsprop(0.01, momentum=0.9, centered=True, weight_decay=0.01),
  "adam": lambda: O.adam(1e-2),
  "adam_amsgrad_wd": lambda: O.adam(1e-2, weight_decay=0.01, amsgrad=True),
  "adamw_scheduled": lambda: O.adamw(S.cosine_annealing(1e-2, 10), weight_decay=0.1),
  "optax_adam": lambda: optax.adam(1e-2),
  "optax_sgd_momentum": lambda: optax.sgd(0.1, momentum=0.9),
  "optax_clip_then_adamw": lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2)),
  "optax_inject_hyperparams": lambda: optax.inject_hyperparams(optax.rmsprop)(learning_rate=1e-2),
}

_STEPS = {}  # one compiled step per optimizer, shared by the tests (jit compiles cost ~0.1 s each)


def _case(name):
  if name not in _STEPS:
    tx = OPTIMIZERS[name]()
    _STEPS[name] = (tx, O.update_step(tx))
  return _STEPS[name]


def _reference(tx, params, state, num_steps):
  """Eager (op-by-op, unfused) update + apply_updates."""
  with jax.disable_jit():
    for t in range(num_steps):
      updates, state = tx.update(_grads(t), state, params)
      params = optax.apply_updates(params, updates)
  return params, state


def _copy(tree):
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_same_numbers_as_unfused_update_and_apply(name):
  tx, step = _case(name)
  params = _params()
  state = tx.init(params)
  ref_params, ref_state = _reference(tx, _copy(params), _copy(state), 4)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # "Some donated buffers were not usable" must not happen
    for t in range(4):
      params, state = step(params, state, _grads(t))
  # Same operations, different schedule of roundings: XLA fuses the elementwise ops (and may
  # reassociate the global norm's sum), so the numbers agree to float32 rounding, not bitwise.
  chex_opts = {"rtol": 2e-6, "atol": 1e-7}
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **chex_opts)
  assert jax.tree.structure(state) == jax.tree.structure(ref_state)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(ref_state)):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **chex_opts)
  assert step.jitted._cache_size() == 1  # no retrace across steps (the schedule's count is traced)


@pytest.mark.parametrize("name", ["adam", "optax_adam"])
def test_bitwise_equal_to_jit_without_donation(name):
  tx, step = _case(name)

  @jax.jit
  def plain(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  params = _params()
  state = tx.init(params)
  want_p, want_s = plain(params, state, _grads(0))
  got_p, got_s = step(_copy(params), _copy(state), _grads(0))
  for a, b in zip(jax.tree.leaves((got_p, got_s)), jax.tree.leaves((want_p, want_s))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", ["adam", "rmsprop", "optax_inject_hyperparams"])
def test_inputs_are_donated(name):
  tx, step = _case(name)
  params = _params()
  state = tx.init(params)
  grads = _grads(0)
  new_params, new_state = step(params, state, grads)
  jax.block_until_ready((new_params, new_state))
  assert all(x.is_deleted() for x in jax.tree.leaves(params))
  assert all(x.is_deleted() for x in jax.tree.leaves(state))
  assert not any(x.is_deleted() for x in jax.tree.leaves(grads))
  assert not any(x.is_deleted() for x in jax.tree.leaves((new_params, new_state)))
  with pytest.raises(RuntimeError, match="deleted"):
    np.asarray(jax.tree.leaves(params)[0])


def test_donate_false_keeps_inputs():
  tx = O.adam(1e-2)
  step = O.update_step(tx, donate=False)
  params = _params()
  state = tx.init(params)
  new_params, _ = step(params, state, _grads(0))
  assert not any(x.is_deleted() for x in jax.tree.leaves((params, state)))
  assert not np.allclose(np.asarray(new_params["w"]), np.asarray(params["w"]))


def test_extra_args_reach_update():
  """``value=`` reaches a reduce_on_plateau in the chain: the scale drops after `patience` bad losses."""
  tx = optax.chain(O.sgd(1.0), O.reduce_on_plateau(factor=0.5, patience=1))
  step = O.update_step(tx)
  params = _params()
  state = tx.init(params)
  ref_params, ref_state = _copy(params), _copy(state)
  for t in range(4):
    params, state = step(params, state, _grads(t), value=jnp.asarray(1.0))
    with jax.disable_jit():
      u, ref_state = tx.update(_grads(t), ref_state, ref_params, value=jnp.asarray(1.0))
      ref_params = optax.apply_updates(ref_params, u)
  np.testing.assert_allclose(np.asarray(params["w"]), np.asarray(ref_params["w"]), rtol=2e-6, atol=1e-7)
  assert float(state[1].scale) == float(ref_state[1].scale) < 1.0


def test_strict_dtype_promotion():
  tx = O.adamw(S.cosine_annealing(1e-2, 10))
  step = O.update_step(tx)
  params = _params()
  state = tx.init(params)
  with jax.numpy_dtype_promotion("strict"):
    params, state = step(params, state, _grads(0))
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_bfloat16_params_keep_their_dtype():
  tx = O.adam(1e-2)
  step = O.update_step(tx)
  params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), _params())
  state = tx.init(params)
  grads = jax.tree.map(lambda x: x.astype(jnp.bfloat16), _grads(0))
  new_params, _ = step(params, state, grads)
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(new_params))


def test_bad_input_raises_value_error():
  with pytest.raises(ValueError, match=r"update_step: `optimizer` must be .*got optimizer='adam'"):
    O.update_step("adam")
  with pytest.raises(ValueError, match=r"update_step: `donate` must be True or False, got donate='yes'"):
    O.update_step(optax.sgd(0.1), donate="yes")


def test_aliased_leaves_are_copied_before_donation():
  """optax's inject_hyperparams(rmsprop).init returns `initial_scale` itself as a scalar param's `nu`."""
  tx, step = _case("optax_inject_hyperparams")
  params = _params()
  state = tx.init(params)
  leaves = jax.tree.leaves(state)
  assert any(a is b for i, a in enumerate(leaves) for b in leaves[:i])  # the premise of this test
  ref_params, ref_state = _reference(tx, _copy(params), _copy(state), 1)
  with jax.disable_jit():
    updates, ref_state = tx.update(ref_params, ref_state, ref_params)
    ref_params = optax.apply_updates(ref_params, updates)
  params, state = step(params, state, _grads(0))
  params, state = step(params, state, params)  # grads aliasing the donated params
  for a, b in zip(jax.tree.leaves((params, state)), jax.tree.leaves((ref_params, ref_state)), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)  # as above: fusion
