"""sweep on data as users have it: iterables of batches streamed in chunks, held-out sets, eval curves."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import sweep

_RNG = np.random.default_rng(2)
X = _RNG.normal(size=(4, 8, 3)).astype(np.float32)  # 4 batches of 8 examples
Y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * _RNG.normal(size=(4, 8))).astype(np.float32)
X_TEST = _RNG.normal(size=(3, 8, 3)).astype(np.float32)  # 3 held-out batches
Y_TEST = (X_TEST @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)
PARAMS = {"w": jnp.zeros(3), "b": jnp.zeros(())}
GRID = {"lr": [0.01, 0.05]}
STEPS = 20


def loss_fn(p, b):
  x, y = b
  return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


def opt(h):
  return optax.sgd(h["lr"], momentum=0.9)


def stream(n=STEPS):
  """A generator of NumPy (x, y) batches, as a data loader yields them."""
  for t in range(n):
    yield X[t % 4], Y[t % 4]


class Loader:
  """A re-iterable loader (like a PyTorch DataLoader): each iter() is one epoch of 4 batches."""

  def __iter__(self):
    return iter([(X[j], Y[j]) for j in range(4)])


def reference(lr, steps=STEPS, every=None):
  """A plain eager Optax loop; the eval curve is the mean held-out loss after every `every` steps."""
  tx = opt({"lr": lr})
  p, s = PARAMS, tx.init(PARAMS)
  losses, curve = [], []
  held_out = lambda p: np.mean([float(loss_fn(p, (X_TEST[j], Y_TEST[j]))) for j in range(3)])
  for t in range(steps):
    loss, g = jax.value_and_grad(loss_fn)(p, (X[t % 4], Y[t % 4]))
    u, s = tx.update(g, s, p)
    p = optax.apply_updates(p, u)
    losses.append(float(loss))
    if every and (t + 1) % every == 0:
      curve.append(held_out(p))
  return np.array(losses), p, np.array(curve), held_out(p)


@pytest.fixture(scope="module")
def stacked():
  return sweep(loss_fn, PARAMS, (X, Y), optimizer=opt, grid=GRID, num_steps=STEPS)


@pytest.mark.parametrize("chunk_steps", [None, 6, 1])
def test_a_generator_is_streamed_in_chunks_and_equals_the_stacked_run(stacked, chunk_steps):
  res = sweep(loss_fn, PARAMS, stream(), optimizer=opt, grid=GRID, num_steps=STEPS, chunk_steps=chunk_steps)
  np.testing.assert_allclose(res.losses, stacked.losses, rtol=1e-6, atol=1e-7)
  for k in ("w", "b"):
    np.testing.assert_allclose(res.params[k], stacked.params[k], rtol=1e-6, atol=1e-7)
  # train_loss of a stream: the trained params over the batches of the last chunk (20 = 3*6 + 2 -> steps 18, 19)
  last = {None: range(STEPS), 6: range(18, 20), 1: range(19, 20)}[chunk_steps]
  for i, lr in enumerate(GRID["lr"]):
    _, p, _, _ = reference(lr)
    want = np.mean([float(loss_fn(p, (X[t % 4], Y[t % 4]))) for t in last])
    np.testing.assert_allclose(res.train_loss[i], want, rtol=2e-6)


def test_a_reiterable_loader_is_restarted_each_epoch_and_an_iterator_is_not(stacked):
  res = sweep(loss_fn, PARAMS, Loader(), optimizer=opt, grid=GRID, num_steps=STEPS, chunk_steps=7)
  np.testing.assert_allclose(res.losses, stacked.losses, rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match="sweep: the iterable `batches` ran out after 5 batches"):
    sweep(loss_fn, PARAMS, stream(5), optimizer=opt, grid=GRID, num_steps=STEPS, chunk_steps=4)


def test_an_endless_stream_is_never_read_whole():
  pulled = itertools.count()

  def endless():
    while True:
      t = next(pulled)
      yield X[t % 4], Y[t % 4]

  res = sweep(loss_fn, PARAMS, endless(), optimizer=opt, grid=GRID, num_steps=STEPS, chunk_steps=8)
  assert res.valid.all() and next(pulled) == STEPS  # exactly one batch per step was read


def test_batches_of_another_shape_in_a_stream_raise():
  def ragged():
    yield X[0], Y[0]
    yield X[1, :5], Y[1, :5]

  with pytest.raises(
    ValueError, match="sweep: every batch of an iterable `batches` must have .* for batch 1"
  ):
    sweep(loss_fn, PARAMS, ragged(), optimizer=opt, grid=GRID, num_steps=2)


def held_out_loss(p, b):
  return loss_fn(p, b)


@pytest.mark.parametrize(
  "batches, kw",
  [
    ((X, Y), {}),
    ((X, Y), {"progress": True}),
    ("stream", {"chunk_steps": 4}),  # rounded up to 6, a multiple of eval_every
  ],
)
def test_eval_curve_on_held_out_batches(batches, kw):
  every = 3
  res = sweep(
    loss_fn,
    PARAMS,
    stream() if batches == "stream" else batches,
    optimizer=opt,
    grid=GRID,
    num_steps=STEPS,
    eval_fn=held_out_loss,
    eval_mode="min",
    eval_batches=(X_TEST, Y_TEST),
    eval_every=every,
    **kw,
  )
  assert res.eval_curve.shape == (2, STEPS // every) and res.eval_steps.tolist() == [3, 6, 9, 12, 15, 18]
  assert res.by_seed.eval_curve.shape == (2, 1, STEPS // every)
  for i, lr in enumerate(GRID["lr"]):
    losses, _, curve, final = reference(lr, every=every)
    np.testing.assert_allclose(res.losses[i], losses, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(res.eval_curve[i], curve, rtol=2e-6)
    np.testing.assert_allclose(res.eval[i], final, rtol=2e-6)  # after all 20 steps


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"eval_batches": (X_TEST, Y_TEST)}, "`eval_batches` and `eval_every` need an eval_fn"),
    ({"eval_every": 2}, "`eval_batches` and `eval_every` need an eval_fn"),
    (
      {"eval_fn": held_out_loss, "eval_mode": "min", "eval_batches": (X_TEST, Y_TEST), "eval_every": 0},
      "`eval_every` must be >= 1",
    ),
    (
      {
        "eval_fn": held_out_loss,
        "eval_mode": "min",
        "eval_batches": (X_TEST, Y_TEST),
        "eval_every": STEPS + 1,
      },
      "`eval_every` must be <= num_steps",
    ),
    ({"chunk_steps": 0}, "`chunk_steps` must be >= 1 .*got chunk_steps=0"),
  ],
)
def test_bad_data_arguments_raise(kwargs, match):
  with pytest.raises(ValueError, match=f"sweep: {match}"):
    sweep(loss_fn, PARAMS, (X, Y), optimizer=opt, grid=GRID, num_steps=STEPS, **kwargs)


# ------------------------------------------------------------------------------- 8 devices


def init(key):
  return {"w": 0.1 * jax.random.normal(key, (3,)), "b": jnp.zeros(())}


def sharded_run():
  """Streamed, 3 seeds x 2 configurations (6 runs, padded to 8), eval curve on held-out batches."""
  return sweep(
    loss_fn,
    None,
    stream(),
    init_fn=init,
    seeds=3,
    optimizer=opt,
    grid=GRID,
    num_steps=STEPS,
    eval_fn=held_out_loss,
    eval_mode="min",
    eval_batches=(X_TEST, Y_TEST),
    eval_every=5,
    chunk_steps=7,
  )


_CHILD = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ["JAX_PLATFORMS"] = "cpu"
import jax, numpy as np
assert len(jax.devices()) == 8
from tests.test_sweep_data import sharded_run
r = sharded_run()
np.savez(sys.argv[1], losses=r.by_seed.losses, curve=r.by_seed.eval_curve, w=np.asarray(r.params["w"]),
         best_w=np.asarray(r.best_params()["w"]), dev=r.num_devices)
"""


def test_streamed_seeded_sweep_on_eight_devices_equals_one_device(tmp_path):
  import os
  import subprocess
  import sys
  from pathlib import Path

  root = Path(__file__).resolve().parents[1]
  out = tmp_path / "sharded.npz"
  env = dict(os.environ, PYTHONPATH=str(root))
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run(
    [sys.executable, "-c", _CHILD, str(out)],
    check=False,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    cwd=root,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = np.load(out)
  ref = sharded_run()
  assert int(got["dev"]) == 8 and ref.num_devices == 1 and ref.params["w"].shape == (2, 3, 3)
  # float32: 1 run per device vs 6 vmapped changes the reduction order (measured max rel 1.4e-6)
  tol = {"rtol": 5e-6, "atol": 1e-7}
  np.testing.assert_allclose(got["losses"], ref.by_seed.losses, **tol)
  np.testing.assert_allclose(got["curve"], ref.by_seed.eval_curve, **tol)
  np.testing.assert_allclose(got["w"], ref.params["w"], **tol)
  np.testing.assert_allclose(got["best_w"], ref.best_params()["w"], **tol)


def test_a_stream_batch_of_another_dtype_is_a_named_error_not_a_silent_cast():
  # the stacked arrays took batch 0's dtypes: a float batch after an int one was truncated silently
  def mixed():
    yield X[0].astype(np.int32), Y[0]
    yield X[1], Y[1]

  with pytest.raises(
    ValueError,
    match=r"sweep: every batch of an iterable `batches` must have the dtypes of the first .*"
    r"\['int32', 'float32'\] for batch 0 and \['float32', 'float32'\] for batch 1 \(leaf 0: float32 where int32",
  ):
    sweep(loss_fn, PARAMS, mixed(), optimizer=opt, grid=GRID, num_steps=2)
