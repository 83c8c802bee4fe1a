"""lr_find / lr_find_grid with their lanes (repeats, grid rows) sharded over 8 (faked CPU) devices.

A subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` runs the same range tests
as this (one-device) process: 8 repeats (one lane per device), 5 repeats (padded to 8), a 3 x 2
grid with a validation set and a progress bar (the chunked path, padded to 8), and 8 repeats on a
mesh of 4 devices. It records how many devices held the lanes' output and the curves; they must
equal the one-device numbers (the same float32 program per lane; only the vmap width differs).
"""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_jax import lr_find, lr_find_grid

_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(6, 16, 4)).astype(np.float32)
Y = (X @ np.array([1.0, -1.0, 0.5, 2.0]) + 0.3 * _RNG.normal(size=(6, 16))).astype(np.float32)
VAL = (X[:2] + 0.1, Y[:2])


def loss_fn(w, batch):
  x, y = batch
  return 0.5 * jnp.mean((x @ w - y) ** 2)


def wd_sgd(lr, weight_decay):
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr, momentum=0.9))


def run(mesh=None):
  kw = {"min_lr": 1e-5, "max_lr": 10.0, "num_steps": 30, "key": jax.random.key(0), "mesh": mesh}
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    r8 = lr_find(loss_fn, jnp.zeros(4), (X, Y), num_repeats=8, **kw)
    r5 = lr_find(loss_fn, jnp.zeros(4), (X, Y), num_repeats=5, **kw)
    g = lr_find_grid(
      loss_fn,
      jnp.zeros(4),
      (X, Y),
      optimizer=wd_sgd,
      grid={"weight_decay": [0.0, 0.1, 1.0]},
      num_repeats=2,
      val_batches=VAL,
      progress=True,
      **kw,
    )
  return {
    "r8": r8.repeat_smoothed_losses,
    "r8_s": r8.suggestion_per_repeat,
    "r5": r5.repeat_smoothed_losses,
    "g": np.stack([row.repeat_smoothed_losses for row in g.rows]),
    "g_train": np.stack([row.train_losses for row in g.rows]),
  }


_CHILD = textwrap.dedent(
  """
  import os, sys
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  os.environ["JAX_PLATFORMS"] = "cpu"
  import jax, numpy as np
  from jax.sharding import Mesh
  assert len(jax.devices()) == 8, jax.devices()
  from lr_jax import _finder
  seen = []
  original = _finder._find_all
  def spy(*args, **kwargs):
    out = original(*args, **kwargs)
    seen.append(len(out[0].sharding.device_set))
    return out
  _finder._find_all = spy
  from tests.test_sharding_finder import run
  got = run()
  got4 = run(mesh=Mesh(np.array(jax.devices()[:4]), ("lanes",)))
  np.savez(sys.argv[1], devices=np.array(seen), **got, **{k + "_4": v for k, v in got4.items()})
  """
)


def test_sharded_range_tests_equal_one_device(tmp_path):
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
  # the one-program runs (r8, r5; the grid uses the chunked path) put their lanes on 8, then 4 devices
  assert got["devices"].tolist() == [8, 8, 4, 4]
  ref = run()  # this process: one CPU device
  for k in ("r8", "r8_s", "r5", "g", "g_train"):
    for suffix in ("", "_4"):
      np.testing.assert_allclose(
        got[k + suffix], ref[k], rtol=1e-6, atol=0, equal_nan=True, err_msg=k + suffix
      )
