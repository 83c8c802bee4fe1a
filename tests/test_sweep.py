"""sweep: every configuration equals an independent plain-Optax training run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import schedules, sweep
from lr_jax._sweep import SweepResult, _choose_chunk, expand_grid

_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(4, 8, 3)).astype(np.float32)  # 4 batches of 8 examples
Y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * _RNG.normal(size=(4, 8))).astype(np.float32)
BATCHES = {"x": X, "y": Y}
X_TEST = _RNG.normal(size=(16, 3)).astype(np.float32)
Y_TEST = (X_TEST @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)
PARAMS = {"w": jnp.zeros(3), "b": jnp.zeros(())}
NUM_STEPS = 20


def loss_fn(p, batch):
  return jnp.mean((batch["x"] @ p["w"] + p["b"] - batch["y"]) ** 2)


def eval_fn(p):
  return jnp.mean((X_TEST @ p["w"] + p["b"] - Y_TEST) ** 2)


def init_fn(key):
  return {"w": jax.random.normal(key, (3,)), "b": jnp.zeros(())}


def adam_cosine(h):
  return optax.adam(schedules.cosine_annealing(h["lr"], h["steps"]))


def sgd_cosine(h):
  return optax.sgd(schedules.cosine_annealing(h["lr"], h["steps"]))


def sgd_momentum(h):
  return optax.sgd(h["lr"], momentum=0.9)


def plain_optax_run(tx, params, num_steps=NUM_STEPS):
  """An ordinary, eager Optax training loop: the reference for one configuration."""
  state = tx.init(params)
  losses = []
  for t in range(num_steps):
    batch = {k: v[t % 4] for k, v in BATCHES.items()}
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    losses.append(float(loss))
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  final = float(loss_fn(params, {k: v[num_steps % 4] for k, v in BATCHES.items()}))
  return np.array(losses), final, float(eval_fn(params))


GRID = {"lr": [0.01, 0.1], "steps": [15, 30]}


@pytest.fixture(scope="module")
def reference():
  out = []
  for cfg in expand_grid(GRID):
    tx = optax.adam(optax.cosine_decay_schedule(cfg["lr"], cfg["steps"]))  # Optax's own schedule
    out.append(plain_optax_run(tx, PARAMS))
  return out


@pytest.fixture(scope="module")
def vmapped():
  return sweep(
    loss_fn, PARAMS, BATCHES, optimizer=adam_cosine, grid=GRID, num_steps=NUM_STEPS, eval_fn=eval_fn
  )


@pytest.mark.parametrize("max_parallel, strategy", [(None, "vmap"), (1, "map"), (3, "chunked")])
def test_each_configuration_equals_a_plain_optax_run(max_parallel, strategy, reference, vmapped):
  res = (
    vmapped
    if max_parallel is None
    else sweep(
      loss_fn,
      PARAMS,
      BATCHES,
      optimizer=adam_cosine,
      grid=GRID,
      num_steps=NUM_STEPS,
      eval_fn=eval_fn,
      max_parallel=max_parallel,
    )
  )
  assert res.strategy == strategy and res.num_devices == 1
  assert res.losses.shape == (4, NUM_STEPS)
  assert res.configs == [
    {"lr": 0.01, "steps": 15},
    {"lr": 0.01, "steps": 30},
    {"lr": 0.1, "steps": 15},
    {"lr": 0.1, "steps": 30},
  ]
  assert res.valid.all()
  for i, (losses, final, ev) in enumerate(reference):
    # float32: compiled+vmapped vs eager rounding, lr_jax vs Optax cosine formula (measured max rel 4.6e-7)
    np.testing.assert_allclose(res.losses[i], losses, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(res.final_loss[i], final, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(res.eval[i], ev, rtol=2e-6, atol=1e-7)


def test_table_and_best(vmapped):
  rows = vmapped.table()
  assert [{k: r[k] for k in ("lr", "steps")} for r in rows] == vmapped.configs
  assert all(set(r) == {"lr", "steps", "final_loss", "eval", "valid"} for r in rows)
  best = vmapped.best()
  assert best["eval"] == min(r["eval"] for r in rows)
  assert isinstance(vmapped, SweepResult)


def test_invalid_and_diverging_configurations_come_back_nan():
  grid = [{"lr": 0.05, "steps": 20}, {"lr": 0.05, "steps": 0}, {"lr": 50.0, "steps": 1000}]
  res = sweep(loss_fn, PARAMS, BATCHES, optimizer=sgd_cosine, grid=grid, num_steps=NUM_STEPS)
  assert res.valid.tolist() == [True, False, False]
  losses, final, _ = plain_optax_run(optax.sgd(optax.cosine_decay_schedule(0.05, 20)), PARAMS)
  np.testing.assert_allclose(res.losses[0], losses, rtol=2e-6, atol=1e-7)
  np.testing.assert_allclose(res.final_loss[0], final, rtol=2e-6, atol=1e-7)
  # invalid schedule (total_steps=0, traced): NaN rates -> NaN from the first update on
  assert np.isfinite(res.losses[1, 0]) and np.all(np.isnan(res.losses[1, 1:])) and np.isnan(res.final_loss[1])
  # lr 50 blows up: finite at first, then NaN from the first non-finite loss on (never inf)
  diverged = res.losses[2]
  first = int(np.argmax(~np.isfinite(diverged)))
  assert 0 < first and np.all(np.isfinite(diverged[:first])) and np.all(np.isnan(diverged[first:]))
  assert not np.any(np.isinf(res.losses))
  assert res.best()["steps"] == 20


def test_seeds_axis_initialises_each_configuration_from_its_key():
  res = sweep(
    loss_fn,
    init_fn,
    BATCHES,
    optimizer=sgd_momentum,
    grid={"lr": [0.02], "seeds": [0, 3]},
    num_steps=NUM_STEPS,
    eval_fn=eval_fn,
  )
  assert res.configs == [{"lr": 0.02, "seeds": 0}, {"lr": 0.02, "seeds": 3}]
  for i, seed in enumerate((0, 3)):
    losses, final, ev = plain_optax_run(optax.sgd(0.02, momentum=0.9), init_fn(jax.random.key(seed)))
    np.testing.assert_allclose(res.losses[i], losses, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(res.eval[i], ev, rtol=2e-6, atol=1e-7)
  assert not np.allclose(res.losses[0], res.losses[1])


def test_progress_bar_gives_the_same_numbers(capsys, vmapped):
  res = sweep(
    loss_fn,
    PARAMS,
    BATCHES,
    optimizer=adam_cosine,
    grid=GRID,
    num_steps=NUM_STEPS,
    eval_fn=eval_fn,
    progress=True,
  )
  np.testing.assert_allclose(res.losses, vmapped.losses, rtol=1e-6)
  np.testing.assert_allclose(res.final_loss, vmapped.final_loss, rtol=1e-6)
  np.testing.assert_allclose(res.eval, vmapped.eval, rtol=1e-6)
  assert f"{NUM_STEPS}/{NUM_STEPS}" in capsys.readouterr().err


def test_new_grid_values_reuse_the_compiled_program(vmapped):
  import sys

  from lr_jax import sweep as _  # noqa: F401  (the function; the module is sys.modules["lr_jax._sweep"])

  run_all = sys.modules["lr_jax._sweep"]._run_all
  n = run_all._cache_size()
  res = sweep(
    loss_fn,
    PARAMS,
    BATCHES,
    optimizer=adam_cosine,
    grid={"lr": [0.02, 0.03], "steps": [10, 40]},
    num_steps=NUM_STEPS,
    eval_fn=eval_fn,
  )
  assert run_all._cache_size() == n  # hyperparameters are traced arguments: no recompilation
  assert not np.allclose(res.losses, vmapped.losses)


def test_strict_dtype_promotion_with_seeds_and_progress():
  with jax.numpy_dtype_promotion("strict"):
    res = sweep(
      loss_fn,
      init_fn,
      BATCHES,
      optimizer=sgd_momentum,
      grid={"lr": [0.02, 0.05], "seeds": [1]},
      num_steps=4,
      eval_fn=eval_fn,
      progress=True,
    )
  assert res.valid.all() and res.losses.shape == (2, 4)


def test_strategy_rule():
  assert _choose_chunk("cpu", 32, None, 1e3) == 32  # small problem: vmap everything
  assert _choose_chunk("cpu", 32, None, 1e8) == 1  # large problem on CPU: one at a time
  assert _choose_chunk("gpu", 32, None, 1e8) == 32  # accelerators: vmap
  assert _choose_chunk("cpu", 32, 8, 0.0) == 8 and _choose_chunk("gpu", 4, 8, 0.0) == 4
  big = {"x": np.ones((1, 64, 512), np.float32)}
  res = sweep(
    lambda p, b: jnp.mean(jnp.tanh(b["x"] @ p) ** 2),
    jnp.ones((512, 512)) / 512,
    big,
    optimizer=lambda h: optax.sgd(h["lr"]),
    grid={"lr": [0.1, 0.2]},
    num_steps=2,
  )
  assert res.strategy == "map" and res.chunk_size == 1 and res.valid.all()


def test_grid_expansion():
  assert expand_grid({"a": [1, 2], "b": np.array([0.5])}) == [{"a": 1, "b": 0.5}, {"a": 2, "b": 0.5}]
  assert expand_grid([{"a": 1, "b": 2}, {"b": 3, "a": 4}]) == [{"a": 1, "b": 2}, {"a": 4, "b": 3}]


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(grid={}), "`grid`"),
    (dict(grid={"lr": []}), "`grid` axis 'lr'"),
    (dict(grid={"lr": ["fast"]}), "`grid` values .*lr='fast'"),
    (dict(grid=[{"lr": 0.1}, {"rate": 0.1}]), "`grid`"),
    (dict(grid={"lr": [0.1], "seeds": [0]}), "seeds"),
    (dict(num_steps=0), "num_steps"),
    (dict(max_parallel=0), "max_parallel"),
    (dict(optimizer=optax.sgd(0.1)), "optimizer"),
    (dict(eval_fn=lambda p: p["w"]), "eval_fn"),
    (dict(batches={"x": X, "y": Y[:2]}), "`batches` .*leading axes \\[2, 4\\]"),
    (dict(loss_fn=lambda p, b: b["x"] @ p["w"]), "`loss_fn` must return a real scalar"),
  ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
  args = dict(
    loss_fn=loss_fn, params=PARAMS, batches=BATCHES, optimizer=sgd_momentum, grid={"lr": [0.1]}, num_steps=3
  )
  args.update(kwargs)
  with pytest.raises(ValueError, match=f"sweep: .*{match}"):
    sweep(args.pop("loss_fn"), args.pop("params"), args.pop("batches"), **args)
