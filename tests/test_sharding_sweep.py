"""sweep with the configuration axis sharded over 8 (faked CPU) devices gives the 1-device numbers."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax

from lr_jax import schedules, sweep

_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(3, 8, 4)).astype(np.float32)
Y = (X @ np.array([1.0, -1.0, 0.5, 2.0]) + 0.1 * _RNG.normal(size=(3, 8))).astype(np.float32)
# 5 configurations (padded to 8 over 8 devices, to 8 over 4), one invalid (steps=0) and one diverging
GRID = [
  {"lr": 0.01, "steps": 10},
  {"lr": 0.05, "steps": 10},
  {"lr": 0.1, "steps": 0},
  {"lr": 0.2, "steps": 20},
  {"lr": 30.0, "steps": 20},
]


def loss_fn(w, batch):
  x, y = batch
  return jnp.mean((x @ w - y) ** 2)


def optimizer(h):
  return optax.sgd(schedules.cosine_annealing(h["lr"], h["steps"]), momentum=0.9)


def run(**kwargs):
  res = sweep(
    loss_fn,
    jnp.zeros(4),
    (X, Y),
    optimizer=optimizer,
    grid=GRID,
    num_steps=12,
    eval_fn=lambda w: jnp.sum(w**2),
    eval_mode="min",
    **kwargs,
  )
  return res


_CHILD = textwrap.dedent(
  """
  import os, sys
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  os.environ["JAX_PLATFORMS"] = "cpu"
  import jax, numpy as np
  from jax.sharding import Mesh
  jax.config.update("jax_numpy_rank_promotion", "raise")
  assert len(jax.devices()) == 8, jax.devices()
  from tests.test_sharding_sweep import run
  r8 = run()
  r4 = run(mesh=Mesh(np.array(jax.devices()[:4]), ("configs",)), max_parallel=1, progress=True)
  np.savez(sys.argv[1], losses8=r8.losses, final8=r8.train_loss, eval8=r8.eval, dev8=r8.num_devices,
           strategy8=r8.strategy, losses4=r4.losses, final4=r4.train_loss, dev4=r4.num_devices,
           strategy4=r4.strategy)
  """
)


def test_eight_device_sweep_equals_one_device(tmp_path):
  out = tmp_path / "sharded.npz"
  env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run(
    [sys.executable, "-c", _CHILD, str(out)],
    check=False,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    cwd=Path(__file__).resolve().parents[1],
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = np.load(out)
  ref = run()  # this process: one CPU device
  assert ref.num_devices == 1
  assert int(got["dev8"]) == 8 and int(got["dev4"]) == 4
  assert str(got["strategy8"]) == "vmap" and str(got["strategy4"]) == "map"
  assert ref.valid.tolist() == [True, True, False, True, False]
  for k in ("8", "4"):
    # the same float32 program per configuration; batching differs only in vmap width
    np.testing.assert_allclose(got["losses" + k], ref.losses, rtol=1e-6, atol=0, equal_nan=True)
    np.testing.assert_allclose(got["final" + k], ref.train_loss, rtol=1e-6, atol=0, equal_nan=True)
  np.testing.assert_allclose(got["eval8"], ref.eval, rtol=1e-6, equal_nan=True)
