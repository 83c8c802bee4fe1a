"""Sharding: optimizer updates of parameters sharded over 8 (faked CPU) devices.

One subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` runs every check and
prints a JSON report:

* the updated parameters and every moment of the state keep the parameters' sharding;
* the compiled HLO of a jitted training step has no ``all-gather`` (nor ``all-to-all``): the update
  is computed shard-locally (``skip_nonfinite`` needs one scalar ``all-reduce`` for its finiteness
  test, which is allowed);
* 1 device and 8 devices give the same numbers within ``DEVICES_RTOL``. The updates are element-wise,
  but XLA:CPU compiles the loop over a shard (8 rows) and over the whole array (64 rows) differently
  (vector body vs scalar remainder), which moves some elements by 1-2 ulp: observed bitwise for SGD
  and RMSprop, at most 2.4e-7 absolute on parameters of size ~3 (8e-8 of the largest) for Adagrad/Adam after 3
  updates, so the bound is ``DEVICES_RTOL`` times the largest magnitude of each array;
* ``sweep`` over 8 devices gives the numbers of the same sweep on 1 device (``mesh`` of one device):
  bitwise, or within ``SWEEP_RTOL`` if XLA batches the per-device lanes differently.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SWEEP_RTOL = 1e-6  # a vmapped batch of 1 vs 4 lanes may be vectorized differently by XLA (observed: bitwise)
DEVICES_RTOL = 1e-6  # of each array's largest magnitude: a few float32 ulp, see the module docstring


def _child():
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from jax.sharding import Mesh, NamedSharding
  from jax.sharding import PartitionSpec as P

  import lr_jax
  from lr_jax import optimizers as O
  from lr_jax import schedules as S

  devices = jax.devices()
  assert len(devices) == 8, devices
  mesh = Mesh(np.array(devices).reshape(4, 2), ("a", "b"))
  specs = {  # rows over all 8 devices; a vector over all 8; a matrix over both axes of the mesh
    "w": NamedSharding(mesh, P(("a", "b"), None)),
    "b": NamedSharding(mesh, P(("a", "b"))),
    "k": NamedSharding(mesh, P("a", "b")),
  }
  rng = np.random.RandomState(0)
  host = {
    "w": rng.randn(64, 24).astype(np.float32),
    "b": rng.randn(32).astype(np.float32),
    "k": rng.randn(16, 8).astype(np.float32),
  }
  host_g = [{k: rng.randn(*v.shape).astype(np.float32) for k, v in host.items()} for _ in range(3)]
  sharded = {k: jax.device_put(v, specs[k]) for k, v in host.items()}
  single = {k: jax.device_put(v, devices[0]) for k, v in host.items()}

  cases = {
    "sgd": O.sgd(S.one_cycle(0.1, 10), momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adagrad": O.adagrad(0.1, lr_decay=0.01, weight_decay=1e-3),
    "rmsprop": O.rmsprop(0.01, momentum=0.5, centered=True, weight_decay=1e-3),
    "adam": O.adam(S.cosine_annealing(0.01, 10), amsgrad=True, weight_decay=1e-3),
    "adamw": O.adamw(S.warmup(S.constant(0.01), 3), weight_decay=0.1),
    "adam_plateau": optax.chain(O.adam(0.01), O.reduce_on_plateau(patience=0)),
    "skip_adam": O.skip_nonfinite(O.adam(0.01)),
  }
  report = {}
  for name, tx in cases.items():
    extra = {"value": jnp.float32(1.0)} if "plateau" in name else {}

    @jax.jit
    def step(p, s, g):
      u, s = tx.update(g, s, p, **extra)  # noqa: B023 - used within this iteration only
      return optax.apply_updates(p, u), s

    def run(params, place):
      s = jax.jit(tx.init)(params)  # noqa: B023 - used within this iteration only
      p = params
      for g in host_g:
        p, s = step(p, s, place(g))
      return p, s

    p8, s8 = run(sharded, lambda g: {k: jax.device_put(v, specs[k]) for k, v in g.items()})
    p1, _ = run(single, lambda g: {k: jax.device_put(v, devices[0]) for k, v in g.items()})
    s0 = jax.jit(tx.init)(sharded)
    hlo = (
      step.lower(sharded, s0, {k: jax.device_put(v, specs[k]) for k, v in host_g[0].items()})
      .compile()
      .as_text()
    )
    keeps = {k: p8[k].sharding.is_equivalent_to(specs[k], p8[k].ndim) for k in host}
    # every state leaf shaped like a parameter is sharded like it
    moments = []
    for leaf in jax.tree.leaves(s8):
      for k, v in host.items():
        if leaf.shape == v.shape and leaf.ndim > 0:
          moments.append(leaf.sharding.is_equivalent_to(specs[k], leaf.ndim))
    report[name] = {
      "keeps": keeps,
      "moments": moments,
      "all_gather": hlo.count("all-gather"),
      "all_to_all": hlo.count("all-to-all"),
      "bitwise_1_vs_8": all(np.asarray(p8[k]).tobytes() == np.asarray(p1[k]).tobytes() for k in host),
      "max_diff": max(float(np.max(np.abs(np.asarray(p8[k]) - np.asarray(p1[k])))) for k in host),
      "max_rel": max(
        float(np.max(np.abs(np.asarray(p8[k]) - np.asarray(p1[k]))) / np.max(np.abs(np.asarray(p1[k]))))
        for k in host
      ),
    }

  # sweep: 8 devices (the default with several devices) vs a mesh of one device
  loss = lambda w, b: jnp.mean((w - b) ** 2)
  kw = {
    "optimizer": lambda h: O.adam(S.one_cycle(h["lr"], 20, pct_start=h["pct"])),
    "grid": {"lr": [0.01, 0.1, 1.0, 10.0], "pct": [0.1, 0.3, 1.5]},
    "num_steps": 20,
  }
  batches = jnp.asarray(rng.randn(3, 5).astype(np.float32))
  r8 = lr_jax.sweep(loss, jnp.ones(5), batches, **kw)
  r1 = lr_jax.sweep(loss, jnp.ones(5), batches, mesh=Mesh(np.array(devices[:1]), ("c",)), **kw)
  report["sweep"] = {
    "num_devices": [r8.num_devices, r1.num_devices],
    "valid_equal": r8.valid.tolist() == r1.valid.tolist(),
    "valid": r8.valid.tolist(),
    "bitwise": np.asarray(r8.losses).tobytes() == np.asarray(r1.losses).tobytes(),
    "max_rel": float(np.nanmax(np.abs(r8.losses - r1.losses) / np.maximum(np.abs(r1.losses), 1e-30))),
    "nan_same": bool(np.array_equal(np.isnan(r8.losses), np.isnan(r1.losses))),
  }
  print(json.dumps(report))


@pytest.fixture(scope="module")
def report():
  env = dict(
    os.environ,
    XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip(),
    JAX_PLATFORMS="cpu",
    PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
  )
  code = "from tests.test_sharding import _child; _child()"
  out = subprocess.run(
    [sys.executable, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0, out.stderr[-4000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


OPTIMIZERS = ["sgd", "adagrad", "rmsprop", "adam", "adamw", "adam_plateau", "skip_adam"]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_updates_keep_the_sharding_without_gathering(report, name):
  r = report[name]
  assert all(r["keeps"].values()), r
  assert r["moments"] and all(r["moments"]), r
  assert r["all_gather"] == 0 and r["all_to_all"] == 0, r


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_one_and_eight_devices_give_the_same_numbers(report, name):
  r = report[name]
  assert r["bitwise_1_vs_8"] or r["max_rel"] <= DEVICES_RTOL, r


def test_sweep_on_eight_devices_matches_one_device(report):
  r = report["sweep"]
  assert r["num_devices"] == [8, 1], r
  assert r["valid_equal"] and r["nan_same"], r
  assert r["valid"] == [True, True, False] * 4, r  # the pct_start=1.5 lanes are NaN, the others trained
  assert r["bitwise"] or r["max_rel"] <= SWEEP_RTOL, r
