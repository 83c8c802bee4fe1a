"""One sweep in one process vs two ``jax.distributed`` processes on this machine (issue 14).

The sweep is ``bench_sweep``'s: 32 Adam rates x 300 full-batch steps (``--mode quick``: 100) of
the digits MLP (64-32-10, 1347 images), ``keep_params=True``. Contenders, each in fresh processes,
run round-robin (the order rotates every round; the machine is shared, so take ratios, not
absolute times):

* ``1proc``: one process, one CPU device (32 runs vmapped);
* ``1proc_2dev``: one process with two CPU devices (``--xla_force_host_platform_device_count=2``;
  16 runs per device, sharded with ``shard_map`` inside one process);
* ``2proc``: two processes (``jax.distributed.initialize``, coordinator on localhost), one CPU device
  each, 16 runs per process; results gathered on both.

Each process times, after a compile-and-warm-up call: ``init_s`` (``jax.distributed.initialize``,
including waiting for the other process to connect), ``first_s`` (first sweep: trace, compile,
run), ``run_s`` (median of the timed sweeps, every process starting together after a barrier, the
result gathered on every process), ``cpu_s`` (the CPU seconds of one such sweep in this process,
all its threads: the work, which a loaded machine inflates less than wall time), ``train_s`` (the
compiled program alone, from placement to its last output ready) and ``collect_s`` (turning the
outputs into a ``SweepResult``: with two processes this is where the runs' numbers, params and
optimizer states are gathered). It prints JSON lines (``bench/_common.emit``): one per contender
and round, then a summary with the throughput ratios (``configs * steps / run_s``) and the
per-process overhead of the runtime.

Usage: ``python bench/bench_distributed.py [--mode smoke|quick|full]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import emit, env_info, median

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]

# configs, steps, timed calls per process, rounds of the three contenders
MODES = {"smoke": (4, 5, 1, 1), "quick": (32, 100, 3, 3), "full": (32, 300, 5, 3)}


# --------------------------------------------------------------------------------------------------
# A worker process.


def child(configs: int, steps: int, calls: int, port: str, rank: int, count: int) -> None:
  import jax

  start = time.perf_counter()
  init_s = 0.0
  if count > 1:
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=count, process_id=rank)
    jax.devices()
    init_s = time.perf_counter() - start
  import jax.numpy as jnp
  import numpy as np

  import lr_jax
  from lr_jax import _sweep, tasks
  from lr_jax import optimizers as O

  def barrier(name):
    if count > 1:
      from jax.experimental import multihost_utils

      multihost_utils.sync_global_devices(name)

  d = tasks.digits_data()
  batches = (jnp.asarray(d["x_train"])[None], jnp.asarray(d["y_train"])[None])  # one full batch
  params = tasks.mlp_init(jax.random.key(0))
  grid = {"lr": [float(v) for v in np.logspace(-4, -1, configs).astype(np.float32)]}
  kw = {"optimizer": lambda h: O.adam(h["lr"]), "grid": grid, "num_steps": steps}

  def run():
    res = lr_jax.sweep(tasks.mlp_loss, params, batches, **kw)
    jax.block_until_ready(res.params)
    return res

  barrier("first")
  t0 = time.perf_counter()
  res = run()
  first_s = time.perf_counter() - t0
  times, cpu = [], []
  for i in range(calls):
    barrier(f"run{i}")
    t0, c0 = time.perf_counter(), time.process_time()
    res = run()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  # The same call in its steps: the compiled program, then collecting (gathering) its outputs.
  train, collect = [], []
  for i in range(calls):
    barrier(f"parts{i}")
    t0 = time.perf_counter()
    args = _sweep._check_arguments(tasks.mlp_loss, params, batches, kw["optimizer"], grid, steps, None, None,
                                   None, None, None, None, True, None, None, None, False)  # fmt: skip
    plan = _sweep._plan(args, tasks.mlp_loss, kw["optimizer"], None, None, None)
    out = jax.block_until_ready(_sweep._run(plan, args))
    t1 = time.perf_counter()
    got = _sweep._collect(plan, args, *out)
    jax.block_until_ready(got.params)
    train.append(t1 - t0)
    collect.append(time.perf_counter() - t1)
  rec = {
    "rank": rank, "processes": count, "devices": jax.device_count(), "local_devices": jax.local_device_count(),
    "num_devices": res.num_devices, "strategy": res.strategy, "init_s": init_s, "first_s": first_s,
    "run_s": float(np.median(times)), "cpu_s": float(np.median(cpu)), "train_s": float(np.median(train)), "collect_s": float(np.median(collect)),
    "best_lr": res.best()["lr"], "train_loss_sum": float(np.nansum(res.train_loss)),
  }  # fmt: skip
  print("RESULT " + json.dumps(rec), flush=True)
  if count > 1:
    barrier("done")
    jax.distributed.shutdown()


# --------------------------------------------------------------------------------------------------
# The launcher.


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch(name: str, configs: int, steps: int, calls: int) -> list[dict]:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  count = 2 if name == "2proc" else 1
  if name == "1proc_2dev":
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
  port = str(_free_port())
  cmd = [sys.executable, str(HERE), "--child", str(configs), str(steps), str(calls), port]
  procs = [
    subprocess.Popen([*cmd, str(r), str(count)], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for r in range(count)
  ]
  out = []
  for p in procs:
    stdout, _ = p.communicate(timeout=900)
    if p.returncode != 0:
      raise RuntimeError(f"{name}: a process exited with {p.returncode}")
    out += [json.loads(line[7:]) for line in stdout.splitlines() if line.startswith("RESULT ")]
  return out


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  ap.add_argument("--child", nargs=6, default=None, help=argparse.SUPPRESS)
  args = ap.parse_args(argv)
  if args.child:
    c, s, k, port, rank, count = args.child
    child(int(c), int(s), int(k), port, int(rank), int(count))
    return {}
  configs, steps, calls, rounds = MODES[args.mode]
  names = ["1proc", "1proc_2dev", "2proc"]
  seen: dict[str, list[list[dict]]] = {n: [] for n in names}
  for r in range(rounds):
    for name in names[r % 3 :] + names[: r % 3]:
      recs = launch(name, configs, steps, calls)
      seen[name].append(recs)
      for rec in recs:
        emit(
          {"name": "distributed", "contender": name, "round": r, "configs": configs, "steps": steps, **rec}
        )

  def med(name, key, rank=None):
    return median([x[key] for recs in seen[name] for x in recs if rank is None or x["rank"] == rank])

  work = configs * steps
  summary = {
    "name": "distributed_summary",
    "mode": args.mode,
    "configs": configs,
    "steps": steps,
    **{f"{n}_run_s": med(n, "run_s", 0) for n in names},
    **{f"{n}_configs_steps_per_s": work / med(n, "run_s", 0) for n in names},
    "throughput_2proc_over_1proc": med("1proc", "run_s", 0) / med("2proc", "run_s", 0),
    # CPU seconds of one sweep, summed over the processes: the work, less sensitive to a loaded machine
    **{f"{n}_cpu_s": sum(med(n, "cpu_s", r) for r in range(2 if n == "2proc" else 1)) for n in names},
    "throughput_1proc_2dev_over_1proc": med("1proc", "run_s", 0) / med("1proc_2dev", "run_s", 0),
    "init_s_2proc": med("2proc", "init_s"),
    "collect_s_1proc": med("1proc", "collect_s"),
    "collect_s_2proc": med("2proc", "collect_s"),
    "gather_overhead_s": med("2proc", "collect_s") - med("1proc", "collect_s"),
    "train_s_1proc": med("1proc", "train_s"),
    "train_s_2proc": med("2proc", "train_s"),
    "first_s_1proc": med("1proc", "first_s"),
    "first_s_2proc": med("2proc", "first_s"),
    "same_best": len({x["best_lr"] for n in names for recs in seen[n] for x in recs}) == 1,
    "env": env_info(),
  }
  emit(summary)
  return summary


if __name__ == "__main__":
  main()
