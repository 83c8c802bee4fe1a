"""Exact resume: train k steps, checkpoint to disk, restore in a fresh process, continue.

The parameters (and every leaf of the optimizer state) after the resumed run equal an uninterrupted
run bit for bit, for every optimizer, with a schedule as the learning rate (saved as ``to_config``
JSON and rebuilt with ``from_config``), with ``reduce_on_plateau`` in the chain and with
``skip_nonfinite`` skipping NaN gradients on both sides of the checkpoint. One subprocess handles
every case (a fresh interpreter costs ~3 s of imports).

The checkpoint format is the recipe of the README's "Resuming training" section: ``numpy.savez`` of
``jax.tree.leaves(state)``, restored with the tree structure of a fresh ``tx.init(params)``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers, schedules
from tests.helpers import SCHEDULE_CASES, build

ROOT = Path(__file__).resolve().parents[1]
TOTAL = 16  # steps of the whole run
K = 7  # checkpoint after this many steps
NAN_STEPS = (3, 11)  # the "skip" cases get a NaN gradient here (one before, one after the checkpoint)


def _cases():
  """name -> JSON-able recipe; the schedules are built here (parent) and rebuilt from JSON (child)."""
  s = schedules
  return {
    "sgd": dict(
      optimizer="sgd",
      kwargs=dict(momentum=0.9, nesterov=True, weight_decay=1e-3),
      schedule=s.one_cycle(0.05, total_steps=10),  # shorter than the run: the rate holds after it
    ),
    "sgd_dampening": dict(
      optimizer="sgd", kwargs=dict(momentum=0.8, dampening=0.3), schedule=s.step_decay(0.05, 4, 0.5)
    ),
    "adagrad": dict(
      optimizer="adagrad",
      kwargs=dict(lr_decay=0.01, weight_decay=1e-3, initial_accumulator_value=0.1),
      schedule=s.cosine_annealing(0.1, 20, 0.01),
    ),
    "rmsprop": dict(
      optimizer="rmsprop",
      kwargs=dict(alpha=0.9, momentum=0.5, centered=True, weight_decay=1e-3),
      schedule=s.warmup(s.cosine_annealing(0.01, 20), 5),
    ),
    "adam": dict(
      optimizer="adam",
      kwargs=dict(amsgrad=True, weight_decay=1e-3),
      schedule=s.join([s.linear(0.001, 0.01, 4), s.exponential_decay(0.01, 0.9)], [4]),
    ),
    "adamw": dict(
      optimizer="adamw", kwargs=dict(weight_decay=0.1), schedule=s.warmup_stable_decay(0.01, 15, 3, 5)
    ),
    "adam_plateau": dict(
      optimizer="adam",
      kwargs=dict(),
      schedule=s.cyclic(0.001, 0.01, 3, mode="triangular2"),
      plateau=dict(factor=0.5, patience=0, threshold=0.2, cooldown=1),
    ),
    "sgd_plateau_skip": dict(
      optimizer="sgd",
      kwargs=dict(momentum=0.9),
      schedule=s.multiply(s.constant(0.05), s.inverse_sqrt(1.0, 3)),
      plateau=dict(factor=0.5, patience=1, threshold=0.2, accumulation_steps=2),
      skip=True,
    ),
  }


def _build(recipe, schedule):
  tx = getattr(optimizers, recipe["optimizer"])(schedule, **recipe["kwargs"])
  if recipe.get("plateau") is not None:
    tx = optax.chain(tx, optimizers.reduce_on_plateau(**recipe["plateau"]))
  if recipe.get("skip"):
    tx = optimizers.skip_nonfinite(tx)
  return tx


def _data():
  rng = np.random.RandomState(0)
  x = rng.randn(TOTAL, 8, 4).astype(np.float32)
  w_true = rng.randn(4, 3).astype(np.float32)
  y = (x @ w_true + 0.1 * rng.randn(TOTAL, 8, 3)).astype(np.float32)
  params = {"w": jnp.zeros((4, 3), jnp.float32), "b": jnp.full((3,), 0.5, jnp.float32)}
  return params, x, y


def _loss(params, x, y):
  return jnp.mean(jnp.square(x @ params["w"] + params["b"][None, :] - y))


def _step_fn(tx, recipe):
  """One jitted training step, identical in both processes."""
  uses_value = recipe.get("plateau") is not None

  @jax.jit
  def step(params, state, x, y, bad):
    loss, grads = jax.value_and_grad(_loss)(params, x, y)
    grads = jax.tree.map(lambda g: jnp.where(bad, jnp.nan, g), grads)
    extra = {"value": loss} if uses_value else {}
    updates, state = tx.update(grads, state, params, **extra)
    return optax.apply_updates(params, updates), state

  return step


def _run(step, params, state, x, y, recipe, start, stop):
  for t in range(start, stop):
    bad = bool(recipe.get("skip")) and t in NAN_STEPS
    params, state = step(params, state, x[t], y[t], jnp.asarray(bad))
  return params, state


def save(path, tree):
  """The checkpoint: ``numpy.savez`` of the pytree's leaves, in ``jax.tree.leaves`` order."""
  np.savez(path, *[np.asarray(leaf) for leaf in jax.tree.leaves(tree)])


def load(path, like):
  """Restores a tree saved by :func:`save` into the structure of ``like`` (e.g. a fresh ``init``)."""
  leaves, treedef = jax.tree.flatten(like)
  with np.load(path) as f:
    loaded = [f[f"arr_{i}"] for i in range(len(f.files))]
  assert len(loaded) == len(leaves), f"{path}: {len(loaded)} leaves saved, {len(leaves)} expected"
  for a, b in zip(loaded, leaves):  # a checkpoint of another optimizer must not load silently
    assert a.shape == np.shape(b) and a.dtype == np.asarray(b).dtype, (a.shape, a.dtype, np.shape(b), b.dtype)
  return jax.tree.unflatten(treedef, [jnp.asarray(a) for a in loaded])


def _resume_child(directory):
  """Runs in a fresh interpreter: rebuild every case from JSON, restore, continue, save the end."""
  directory = Path(directory)
  meta = json.loads((directory / "cases.json").read_text())
  params0, x, y = _data()
  for name, recipe in meta.items():
    schedule = schedules.from_config(recipe["schedule"])
    tx = _build(recipe, schedule)
    fresh = tx.init(params0)
    params = load(directory / f"{name}_params.npz", params0)
    state = load(directory / f"{name}_state.npz", fresh)
    params, state = _run(_step_fn(tx, recipe), params, state, x, y, recipe, K, TOTAL)
    save(directory / f"{name}_params_end.npz", params)
    save(directory / f"{name}_state_end.npz", state)


@jax.jit
def _rates(schedule, steps):
  return schedule(steps)


def _bitwise_equal(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_resume_in_a_fresh_process_is_bit_exact(tmp_path):
  cases = _cases()
  params0, x, y = _data()
  meta, expected = {}, {}
  for name, recipe in cases.items():
    tx = _build(recipe, recipe["schedule"])
    step = _step_fn(tx, recipe)
    state0 = tx.init(params0)
    params_k, state_k = _run(step, params0, state0, x, y, recipe, 0, K)
    save(tmp_path / f"{name}_params.npz", params_k)
    save(tmp_path / f"{name}_state.npz", state_k)
    meta[name] = {
      **{k: v for k, v in recipe.items() if k != "schedule"},
      "schedule": recipe["schedule"].to_config(),
    }
    expected[name] = (step, params0, state0, recipe, state_k)
  (tmp_path / "cases.json").write_text(json.dumps(meta))

  env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  code = "import sys; from tests.test_resume import _resume_child; _resume_child(sys.argv[1])"
  child = subprocess.Popen(
    [sys.executable, "-c", code, str(tmp_path)],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
  )
  # The uninterrupted runs, computed while the child works.
  full = {}
  for name, (step, p0, s0, recipe, state_k) in expected.items():
    full[name] = _run(step, p0, s0, x, y, recipe, 0, TOTAL)
  out = child.communicate(timeout=300)[0].decode()
  assert child.returncode == 0, out

  for name, (params_full, state_full) in full.items():
    tx = _build(cases[name], cases[name]["schedule"])
    params_res = load(tmp_path / f"{name}_params_end.npz", params0)
    state_res = load(tmp_path / f"{name}_state_end.npz", tx.init(params0))
    for a, b in zip(jax.tree.leaves(params_full), jax.tree.leaves(params_res)):
      assert _bitwise_equal(a, b), (name, np.max(np.abs(np.asarray(a) - np.asarray(b))))
    for a, b in zip(jax.tree.leaves(state_full), jax.tree.leaves(state_res)):
      assert _bitwise_equal(a, b), (name, a, b)
    # the run did train, and the second half was not a no-op
    assert not _bitwise_equal(params_full["w"], load(tmp_path / f"{name}_params.npz", params0)["w"]), name

  # The cases exercise what they claim: a reduction after the checkpoint, skips on both sides.
  plateau_full = full["adam_plateau"][1][1]
  plateau_k = expected["adam_plateau"][4][1]
  assert float(plateau_full.scale) < float(plateau_k.scale) <= 1.0, (plateau_k, plateau_full)
  skip_full, skip_k = full["sgd_plateau_skip"][1], expected["sgd_plateau_skip"][4]
  assert int(skip_k.total_notfinite) == 1 and int(skip_full.total_notfinite) == 2
  assert np.all(np.isfinite(full["sgd_plateau_skip"][0]["w"]))


@pytest.mark.parametrize("name", sorted(SCHEDULE_CASES))
def test_schedule_config_json_round_trip_is_bit_exact(name):
  ctor, kwargs, _, _ = SCHEDULE_CASES[name]
  s = build(ctor, kwargs)
  if any(isinstance(getattr(x, "fn", None), type(lambda: 0)) for x in jax.tree.leaves(s, is_leaf=callable)):
    pytest.skip("wraps a plain function")  # never the case in the registry; guards future entries
  rebuilt = schedules.from_config(json.loads(json.dumps(s.to_config())))
  steps = np.concatenate([np.arange(-2, 300), [10**4, 10**6, 2**24 + 1, 2**31 - 1]]).astype(np.int32)
  assert type(rebuilt) is type(s)
  assert _bitwise_equal(_rates(s, steps), _rates(rebuilt, steps)), name
  assert rebuilt.to_config() == s.to_config()


def test_numpy_hyperparameters_round_trip_through_json():
  s = schedules.one_cycle(np.float32(0.1), np.int64(1000), pct_start=np.float64(0.25))
  rebuilt = schedules.from_config(json.loads(json.dumps(s.to_config())))
  steps = np.arange(0, 1001, dtype=np.int32)
  assert _bitwise_equal(_rates(s, steps), _rates(rebuilt, steps))


def test_checkpoint_of_another_optimizer_does_not_load(tmp_path):
  params0, _, _ = _data()
  save(tmp_path / "adam.npz", optimizers.adam(1e-3).init(params0))
  with pytest.raises(AssertionError):
    load(tmp_path / "adam.npz", optimizers.sgd(1e-3, momentum=0.9).init(params0))


def _msgpack_round_trip_case():
  recipe = _cases()["adam_plateau"]
  tx = _build(recipe, recipe["schedule"])
  params0, x, y = _data()
  step = _step_fn(tx, recipe)
  params, state = _run(step, params0, tx.init(params0), x, y, recipe, 0, K)
  return tx, step, recipe, params0, params, state, x, y


def test_flax_msgpack_round_trip_is_bit_exact():
  serialization = pytest.importorskip("flax.serialization")
  tx, step, recipe, params0, params, state, x, y = _msgpack_round_trip_case()
  blob = serialization.to_bytes({"params": params, "opt_state": state})
  restored = serialization.from_bytes({"params": params0, "opt_state": tx.init(params0)}, blob)
  a = _run(step, params, state, x, y, recipe, K, TOTAL)
  b = _run(step, restored["params"], restored["opt_state"], x, y, recipe, K, TOTAL)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert _bitwise_equal(u, v)


def test_orbax_round_trip_is_bit_exact(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  tx, step, recipe, params0, params, state, x, y = _msgpack_round_trip_case()
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / "ckpt", {"params": params, "opt_state": state})
    ckpt.wait_until_finished()
    restored = ckpt.restore(tmp_path / "ckpt", {"params": params0, "opt_state": tx.init(params0)})
  a = _run(step, params, state, x, y, recipe, K, TOTAL)
  b = _run(step, restored["params"], restored["opt_state"], x, y, recipe, K, TOTAL)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert _bitwise_equal(u, v)
