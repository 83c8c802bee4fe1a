"""sweep on the models JAX users train: Flax NNX, Flax linen (TrainState), Equinox, and a dict.

Each reference is that framework's own training loop (``nnx.Optimizer``, ``TrainState.apply_gradients``,
``eqx.filter_value_and_grad`` + ``eqx.apply_updates``), run eagerly per configuration.
"""

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state

from lr_jax import sweep

_RNG = np.random.default_rng(1)
X = _RNG.normal(size=(3, 16, 4)).astype(np.float32)  # 3 batches of 16 examples, 4 features
Y = np.sin(X.sum(-1, keepdims=True)).astype(np.float32)
BATCHES = (X, Y)
X_TEST = _RNG.normal(size=(2, 16, 4)).astype(np.float32)
EVAL_BATCHES = (X_TEST, np.sin(X_TEST.sum(-1, keepdims=True)).astype(np.float32))
STEPS = 12
GRID = {"lr": [0.01, 0.05]}
RTOL, ATOL = 2e-5, 1e-6  # float32: vmapped + compiled vs eager rounding of small MLPs


def adam(h):
  return optax.adam(h["lr"])


def batch(t, data=BATCHES):
  return data[0][t % len(data[0])], data[1][t % len(data[1])]


def mse(pred, y):
  return jnp.mean((pred - y) ** 2)


# ---------------------------------------------------------------------------------------- Equinox


def eqx_model(key):
  return eqx.nn.MLP(4, 1, 8, 2, activation=jax.nn.tanh, key=key)


def eqx_loss(model, b):
  return mse(jax.vmap(model)(b[0]), b[1])


def eqx_reference(model, lr, steps=STEPS):
  tx = optax.adam(lr)
  state = tx.init(eqx.filter(model, eqx.is_inexact_array))
  losses = []
  for t in range(steps):
    loss, grads = eqx.filter_value_and_grad(eqx_loss)(model, batch(t))
    updates, state = tx.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
    model = eqx.apply_updates(model, updates)
    losses.append(float(loss))
  return np.array(losses), model, state


def test_equinox_module_as_params_trains_its_arrays_and_keeps_its_functions():
  model = eqx_model(jax.random.key(0))
  assert callable(model)  # a callable params is the model, never taken for an init function
  res = sweep(eqx_loss, model, BATCHES, optimizer=adam, grid=GRID, num_steps=STEPS)
  assert res.valid.all()
  for i, lr in enumerate(GRID["lr"]):
    losses, trained, _ = eqx_reference(model, lr)
    np.testing.assert_allclose(res.losses[i], losses, rtol=RTOL, atol=ATOL)
  best = res.best_params()
  assert isinstance(best, eqx.nn.MLP) and best.activation is jax.nn.tanh
  i = res.best_index()
  _, trained, _ = eqx_reference(model, GRID["lr"][i])
  for a, b in zip(
    jax.tree.leaves(eqx.filter(best, eqx.is_array)), jax.tree.leaves(eqx.filter(trained, eqx.is_array))
  ):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
  # result.params is the module with a leading configuration axis on every array
  assert isinstance(res.params, eqx.nn.MLP) and res.params.layers[0].weight.shape == (2, 8, 4)


def test_equinox_init_fn_per_seed():
  res = sweep(
    eqx_loss, None, BATCHES, init_fn=eqx_model, seeds=[0, 5], optimizer=adam, grid=GRID, num_steps=4
  )
  for j, seed in enumerate((0, 5)):
    losses, _, _ = eqx_reference(eqx_model(jax.random.key(seed)), GRID["lr"][1], steps=4)
    np.testing.assert_allclose(res.by_seed.losses[1, j], losses, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------- Flax NNX


class NNXMLP(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.l1 = nnx.Linear(4, 8, rngs=rngs)
    self.l2 = nnx.Linear(8, 1, rngs=rngs)
    self.rngs = rngs  # an RNG stream: a PRNG key and a uint32 count, carried untouched

  def __call__(self, x):
    return self.l2(jnp.tanh(self.l1(x)))


def nnx_loss(model, b):
  return mse(model(b[0]), b[1])


def nnx_reference(model, lr, steps=STEPS):
  model = nnx.clone(model)
  opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
  losses = []
  for t in range(steps):
    loss, grads = nnx.value_and_grad(nnx_loss)(model, batch(t))
    opt.update(model, grads)
    losses.append(float(loss))
  return np.array(losses), model


def test_flax_nnx_module_and_state_as_params():
  model = NNXMLP(nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  by_module = sweep(nnx_loss, model, BATCHES, optimizer=adam, grid=GRID, num_steps=STEPS)
  by_state = sweep(
    lambda s, b: nnx_loss(nnx.merge(graphdef, s), b),
    state,
    BATCHES,
    optimizer=adam,
    grid=GRID,
    num_steps=STEPS,
  )
  for i, lr in enumerate(GRID["lr"]):
    losses, trained = nnx_reference(model, lr)
    np.testing.assert_allclose(by_module.losses[i], losses, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(by_state.losses[i], losses, rtol=RTOL, atol=ATOL)
  best = by_module.best_params()
  assert isinstance(best, NNXMLP)
  _, trained = nnx_reference(model, GRID["lr"][by_module.best_index()])
  np.testing.assert_allclose(best.l1.kernel[...], trained.l1.kernel[...], rtol=RTOL, atol=ATOL)
  assert best.rngs.default.count[...] == model.rngs.default.count[...]  # not trained, not touched
  best_state = by_state.best_params()
  np.testing.assert_allclose(best_state["l1"]["kernel"][...], trained.l1.kernel[...], rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------- Flax linen TrainState


class LinenMLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(1)(jnp.tanh(nn.Dense(8)(x)))


LINEN = LinenMLP()
LINEN_PARAMS = LINEN.init(jax.random.key(0), X[0])["params"]


def linen_loss(params, b):
  return mse(LINEN.apply({"params": params}, b[0]), b[1])


def linen_reference(lr, steps):
  state = train_state.TrainState.create(apply_fn=LINEN.apply, params=LINEN_PARAMS, tx=optax.adam(lr))
  losses = []
  for t in range(steps):
    loss, grads = jax.value_and_grad(linen_loss)(state.params, batch(t))
    state = state.apply_gradients(grads=grads)
    losses.append(float(loss))
  return np.array(losses), state


def test_flax_linen_params_and_training_continues_from_the_winner():
  res = sweep(linen_loss, LINEN_PARAMS, BATCHES, optimizer=adam, grid=GRID, num_steps=STEPS)
  for i, lr in enumerate(GRID["lr"]):
    np.testing.assert_allclose(res.losses[i], linen_reference(lr, STEPS)[0], rtol=RTOL, atol=ATOL)
  # the winner's params and Adam state continue as if never stopped: STEPS + 6 steps of one TrainState
  lr = res.best()["lr"]
  state = train_state.TrainState(
    step=STEPS,
    apply_fn=LINEN.apply,
    params=res.best_params(),
    tx=optax.adam(lr),
    opt_state=res.best_opt_state(),
  )
  for t in range(STEPS, STEPS + 6):
    grads = jax.grad(linen_loss)(state.params, batch(t))
    state = state.apply_gradients(grads=grads)
  _, ref = linen_reference(lr, STEPS + 6)
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------- leaves


def test_non_float_leaves_are_carried_not_trained():
  params = {"w": jnp.ones(3), "n": jnp.arange(3), "scale": 2.0, "act": jnp.tanh}

  def loss(p, b):
    return jnp.sum((p["act"](p["scale"] * p["w"]) - b) ** 2) + 0.0 * jnp.sum(p["n"])

  res = sweep(loss, params, jnp.zeros((1, 3)), optimizer=lambda h: optax.sgd(h["lr"]), grid=GRID, num_steps=3)
  best = res.best_params()
  assert best["act"] is jnp.tanh and best["scale"] == 2.0 and best["n"].tolist() == [0, 1, 2]
  assert not np.allclose(best["w"], 1.0) and res.params["n"].shape == (2, 3)


@pytest.mark.parametrize(
  "params, kwargs, match",
  [
    (jnp.tanh, {}, "`params` must hold at least one floating-point array .*pass init_fn="),
    ({"n": jnp.arange(3)}, {}, "`params` must hold at least one floating-point array"),
    (jnp.ones(3), {"init_fn": lambda k: jnp.ones(3)}, "`params` must be None when `init_fn`"),
    (None, {}, "`params` .* or `init_fn` .* is required"),
    (jnp.ones(3), {"seeds": 2}, "`seeds` needs `init_fn`"),
    (None, {"init_fn": lambda k: jnp.ones(3), "seeds": 0}, "`seeds` must be >= 1"),
    (None, {"init_fn": lambda k: jnp.ones(3), "seeds": [1, 1]}, "`seeds` must be distinct"),
    (None, {"init_fn": 3}, "`init_fn` must be a function"),
  ],
)
def test_bad_model_arguments_raise_value_error(params, kwargs, match):
  with pytest.raises(ValueError, match=f"sweep: {match}"):
    sweep(
      lambda p, b: jnp.sum(p), params, jnp.zeros((1, 3)), optimizer=adam, grid=GRID, num_steps=1, **kwargs
    )


# ------------------------------------------------------------------------------------- examples


@pytest.mark.parametrize("script", ["own_model_equinox.py", "own_model_nnx.py", "own_model_linen.py"])
def test_own_model_examples_run_and_continue_from_the_winner(script):
  import contextlib
  import io
  import re
  import runpy
  from pathlib import Path

  ns = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / script))
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    assert ns["main"](["--steps", "8"]) == 0
  text = out.getvalue()
  rows = re.findall(
    r"^lr (\S+): held-out accuracy (\S+) \(seeds (\S+)-(\S+)\); curve (.*)$", text, re.MULTILINE
  )
  assert len(rows) == 4 and all(len(r[4].split()) == 4 for r in rows)  # eval_every = 8 // 4: 4 evaluations
  lr, acc, _, best_seed, _ = max(rows, key=lambda r: float(r[1]))
  assert f"best: lr {lr}, held-out accuracy {acc} (mean of 2 seeds)" in text
  start, end = map(float, re.search(r"held-out accuracy (\S+) -> (\S+)$", text, re.MULTILINE).groups())
  assert start == float(best_seed)  # best_params() is the winner's better seed, exactly as the sweep left it
  assert 0.1 < end <= 1.0
