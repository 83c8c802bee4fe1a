"""One process of the two-process test (``tests/test_distributed.py``), or the one-process reference.

``python tests/_distributed_worker.py OUT.npz PORT PROCESS_ID NUM_PROCESSES`` joins a
``jax.distributed`` job whose coordinator (process 0) listens on ``localhost:PORT``, runs
:func:`run_all` (two tiny sweeps, two tiny range tests and three tiny searches; every process runs
the same calls on the same data, as ``jax.distributed`` requires) and writes every number it got to
``OUT.npz``.
When ``jax.distributed.initialize`` itself fails it writes the reason to ``OUT.npz.init_failed``
and exits with code 3, so the test can tell "this platform cannot start it" from a failure. With
``NUM_PROCESSES`` 1 it is the one-process reference (no ``jax.distributed``; PORT is ignored).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

INIT_FAILED = 3


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(6, 8, 4)).astype(np.float32)
  y = (x @ np.array([1.0, -1.0, 0.5, 2.0], np.float32) + 0.3 * rng.normal(size=(6, 8))).astype(np.float32)
  return x, y, (x[:2] + 0.1, y[:2])


def _leaves(prefix: str, tree, out: dict):
  """Every array leaf, as NumPy (keys as their key data); each must be whole on this process."""
  import jax
  import jax.numpy as jnp

  for i, leaf in enumerate(jax.tree_util.tree_leaves(tree)):
    if not isinstance(leaf, jax.Array):
      continue
    assert leaf.is_fully_addressable, f"{prefix}[{i}] spans other processes: {leaf.sharding}"
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      leaf = jax.random.key_data(leaf)
    out[f"{prefix}/{i}"] = np.asarray(leaf)


def run_all() -> dict[str, np.ndarray]:
  """The sweeps, range tests and searches of the test, every result flattened to ``{name: array}``."""
  import jax
  import jax.numpy as jnp
  import optax

  from lr_jax import lr_find, lr_find_grid, search, spaces, sweep

  x, y, val = _data()

  def loss(p, b):
    return 0.5 * jnp.mean((b[0] @ p["w"] + p["b"] - b[1]) ** 2)

  def init(key):
    return {"w": 0.3 * jax.random.normal(key, (4,)), "b": jnp.zeros(())}

  out: dict[str, np.ndarray] = {}
  # 1. Stacked batches, per-seed init, held-out eval with a curve, every run's params kept.
  # 3 rates (100 diverges) x 3 seeds = 9 runs: padded to 10 over two devices (the padding is dropped).
  a = sweep(loss, None, (x, y), optimizer=lambda h: optax.sgd(h["lr"], momentum=0.9),
            grid={"lr": [0.01, 0.1, 100.0]}, num_steps=12, init_fn=init, seeds=3,
            eval_fn=loss, eval_mode="min", eval_batches=val, eval_every=5)  # fmt: skip
  out.update({"a/losses": a.by_seed.losses, "a/train_loss": a.by_seed.train_loss, "a/eval": a.by_seed.eval,
              "a/curve": a.by_seed.eval_curve, "a/valid": a.by_seed.valid, "a/best": np.array(a.best()["lr"])})  # fmt: skip
  for name, tree in (("params", a.params), ("opt_state", a.opt_state), ("best_params", a.best_params()),
                     ("best_opt_state", a.best_opt_state()), ("seed1_params", a.best_params(seed=1))):  # fmt: skip
    _leaves(f"a/{name}", tree, out)

  # 2. Streamed batches (a generator), shared params with frozen leaves (a counter and a PRNG key),
  # eval_fn(params), only the winner kept.
  def stream():
    for t in range(10):
      yield (x[t % 6], y[t % 6])

  p0 = {"w": jnp.zeros(4), "b": jnp.zeros(()), "count": jnp.int32(7), "key": jax.random.key(3)}
  b = sweep(loss, p0, stream(), optimizer=lambda h: optax.adam(h["lr"]), grid={"lr": [0.003, 0.03, 0.3]},
            num_steps=10, chunk_steps=5, eval_fn=lambda p: loss(p, val), eval_mode="min", keep_params=False)  # fmt: skip
  out.update({"b/losses": b.losses, "b/train_loss": b.train_loss, "b/eval": b.eval})
  _leaves("b/best_params", b.best_params(), out)
  _leaves("b/best_opt_state", b.best_opt_state(), out)

  # 3. Range tests: 3 repeats (padded to 4) on a validation curve, chunked (progress); 2 rows x 3 repeats.
  # An "rbg" key: its batch orders compile in a fraction of threefry's time (the default key's).
  kw = {"min_lr": 1e-4, "max_lr": 10.0, "num_steps": 20, "key": jax.random.key(0, impl="rbg")}
  w0 = {"w": jnp.asarray([0.3, -0.2, 0.1, 0.4]), "b": jnp.zeros(())}
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    f = lr_find(loss, w0, (x, y), num_repeats=3, val_batches=val, progress=True, **kw)
    g = lr_find_grid(loss, w0, (x, y), num_repeats=3,
                     optimizer=lambda lr, wd: optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr)),
                     grid={"wd": [0.0, 0.5]}, **kw)  # fmt: skip
  out.update({"f/losses": f.repeat_losses, "f/smoothed": f.repeat_smoothed_losses, "f/train": f.train_losses,
              "f/per_repeat": f.suggestion_per_repeat, "f/suggestion": np.array(f.suggestion),
              "g/smoothed": np.stack([r.repeat_smoothed_losses for r in g.rows]), "g/suggestions": g.suggestions})  # fmt: skip
  # 4. lr_jax.search: random, successive halving and PBT on the functions of the sweeps above. 7 trials
  # (padded to 8 over two devices); lr above ~10 diverges (pruned lanes; PBT replaces them). PBT's interval
  # and halving's first rung are 4 steps, so both reuse one 7-lane program; halving's second rung keeps 2.
  space = {"lr": spaces.log_uniform(1e-3, 1e4), "m": spaces.uniform(0.0, 0.9)}
  common = {"optimizer": lambda h: optax.sgd(h["lr"], momentum=h["m"]), "space": space, "num_samples": 7,
            "num_steps": 12, "seed": 1, "init_fn": init, "eval_fn": loss, "eval_mode": "min", "eval_batches": val}  # fmt: skip
  for method, kw in (("random", {}), ("halving", {"eta": 3, "min_steps": 4}), ("pbt", {"interval": 4})):
    r = search(loss, None, (x, y), method=method, **common, **kw)
    s = f"s/{method}"
    out.update({f"{s}/score": r.score, f"{s}/losses": r.losses, f"{s}/steps": r.steps,
                f"{s}/configs": np.array([[c["lr"], c["m"]] for c in r.configs]), f"{s}/best": np.array(r.best_index())})  # fmt: skip
    for name, tree in (("params", r.params), ("opt_state", r.opt_state), ("best_params", r.best_params())):
      _leaves(f"{s}/{name}", tree, out)
    for i, rung in enumerate(r.rungs or []):
      out.update({f"{s}/rung{i}/trials": rung.trials, f"{s}/rung{i}/kept": rung.kept, f"{s}/rung{i}/scores": rung.scores})  # fmt: skip
    if r.lineage is not None:
      out.update({f"{s}/lineage": r.lineage, f"{s}/scores": r.score_history,
                  **{f"{s}/history/{k}": v for k, v in r.hparam_history.items()}})  # fmt: skip
  out["devices"] = np.array([a.num_devices, jax.process_count(), jax.device_count()])
  return out


def main(argv: list[str]) -> int:
  path, port, rank, count = argv[0], argv[1], int(argv[2]), int(argv[3])
  import jax

  if count == 1:  # the one-process reference
    out = run_all()
    np.savez(path, **out)
    return 0
  start = time.perf_counter()
  try:
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=count, process_id=rank,
                               initialization_timeout=60)  # fmt: skip
    jax.devices()  # the global device list: fails here if the processes cannot see each other
  except Exception as e:  # noqa: BLE001 - any reason the runtime cannot start on this platform
    with open(path + ".init_failed", "w", encoding="utf-8") as fh:
      fh.write(f"{type(e).__name__}: {e}")
    return INIT_FAILED
  init_s = time.perf_counter() - start
  out = run_all()
  out["init_s"] = np.array(init_s)
  np.savez(path, **out)
  jax.distributed.shutdown()
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
