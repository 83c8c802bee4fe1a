"""A 32-rate Adam sweep of a small MLP on scikit-learn digits (300 full-batch steps each).

Contenders (same model, data, initial parameters and optimizer, ``lr_jax.optimizers._adam``):

* ``sweep``: ``lr_jax.sweep`` (it picks vmap / chunked vmap / lax.map itself; the chosen strategy is
  recorded), and ``sweep_vmap`` with ``max_parallel=None`` forced to a full vmap for comparison;
* ``loop_of_scans``: a Python loop over the 32 rates of one jitted ``lax.scan`` training run;
* ``per_step``: a Python loop over rates and steps of one jitted (donating) training step;
* ``torch``: the same MLP in PyTorch (``nn.Linear``/``tanh``, ``torch.optim.Adam``), looped.

Peak memory of the sweep as ``max_parallel`` varies is measured in fresh subprocesses (the process'
peak RSS, and the device's ``peak_bytes_in_use`` where JAX reports it), minus a baseline process
that loads the same data without sweeping.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import emit, fmt_ratio, interleave, md_table, median
from jax import lax

import lr_jax
from lr_jax import optimizers as O
from lr_jax import tasks

torch = None  # imported in run(): the memory subprocesses do not load it

# PyTorch's fastest setting for these small matmuls on a shared 2-core CPU (2 threads: 5-50x slower).
TORCH_THREADS = 1

# configs, steps, repeats, max_parallel values for the memory table
MODES = {
  "smoke": (4, 5, 1, []),
  "quick": (32, 300, 1, [1, 32]),
  "full": (32, 300, 3, [1, 4, 8, 16, 32]),
}


def problem(num_configs: int):
  d = tasks.digits_data()
  batches = (jnp.asarray(d["x_train"])[None], jnp.asarray(d["y_train"])[None])  # one full batch
  params = tasks.mlp_init(jax.random.key(0))
  lrs = np.logspace(-4, -1, num_configs).astype(np.float32)
  return d, batches, params, lrs


def _optimizer(h):
  return O.adam(h["lr"])


def _train_scan(params, batch, lr, num_steps):
  tx = O.adam(lr)

  def body(carry, _):
    p, s = carry
    loss, g = jax.value_and_grad(tasks.mlp_loss)(p, batch)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), loss

  (p, _), losses = lax.scan(body, (params, tx.init(params)), None, length=num_steps)
  return losses, tasks.mlp_loss(p, batch)


def _torch_runner(d, lrs, num_steps, params):
  x = torch.from_numpy(np.asarray(d["x_train"]))
  y = torch.from_numpy(np.asarray(d["y_train"]).astype(np.int64))
  w = [
    (torch.from_numpy(np.asarray(layer["w"]).T.copy()), torch.from_numpy(np.array(layer["b"])))
    for layer in params
  ]

  def run():
    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
      return _run()
    finally:
      torch.set_num_threads(threads)

  def _run():
    finals = []
    for lr in lrs:
      model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
      with torch.no_grad():
        for lin, (wt, b) in zip((model[0], model[2]), w):
          lin.weight.copy_(wt)
          lin.bias.copy_(b)
      opt = torch.optim.Adam(model.parameters(), lr=float(lr))
      loss_fn = torch.nn.CrossEntropyLoss()
      for _ in range(num_steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
      with torch.no_grad():
        finals.append(float(loss_fn(model(x), y)))
    return finals

  return run


def run(mode: str = "quick") -> tuple[list[dict], str]:
  global torch
  try:
    import torch
  except ImportError:  # pragma: no cover
    torch = None
  num_configs, num_steps, repeats, mem_values = MODES[mode]
  d, batches, params, lrs = problem(num_configs)
  batch = jax.tree.map(lambda b: b[0], batches)
  results = {}

  def sweep_fn(max_parallel=None):
    def f():
      res = lr_jax.sweep(
        tasks.mlp_loss,
        params,
        batches,
        optimizer=_optimizer,
        grid={"lr": lrs.tolist()},
        num_steps=num_steps,
        max_parallel=max_parallel,
      )
      results[max_parallel] = res

    return f

  train = jax.jit(_train_scan, static_argnums=3)

  def loop_of_scans():
    out = [train(params, batch, lr, num_steps)[1] for lr in lrs]
    jax.block_until_ready(out)

  def _step(p, s, lr):
    tx = O.adam(lr)
    loss, g = jax.value_and_grad(tasks.mlp_loss)(p, batch)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s, loss

  step = jax.jit(_step, donate_argnums=(0, 1))

  def per_step():
    finals = []
    for lr in lrs:
      lr = jnp.float32(lr)
      p = jax.tree.map(jnp.copy, params)
      s = O.adam(lr).init(p)
      for _ in range(num_steps):
        p, s, _ = step(p, s, lr)
      finals.append(tasks.mlp_loss(p, batch))
    jax.block_until_ready(finals)

  fns = {
    "sweep": sweep_fn(None),
    "sweep_vmap": sweep_fn(num_configs),
    "loop_of_scans": loop_of_scans,
    "per_step": per_step,
  }
  if torch is not None:
    fns["torch"] = _torch_runner(d, lrs, num_steps, params)
    _torch_runner(d, lrs[:1], 3, params)()  # warm up torch's first-call costs

  # Compile time of each JAX contender: its first call (trace + compile + one run) minus a steady run.
  compile_s = {}
  for k in ("sweep", "sweep_vmap", "loop_of_scans", "per_step"):
    t0 = time.perf_counter()
    fns[k]()
    compile_s[k] = time.perf_counter() - t0
  samples = interleave(fns, repeats, warmup=0)
  med = {k: median(v) for k, v in samples.items()}
  compile_s = {k: max(v - med[k], 0.0) for k, v in compile_s.items()}
  chosen = results[None]
  base = {"name": "sweep/digits_mlp", "configs": num_configs, "steps": num_steps}
  for k, v in samples.items():
    emit(
      dict(base, contender=k, run_s=med[k], min_s=float(np.min(v)), samples_s=v, compile_s=compile_s.get(k))
    )
  summary = dict(
    base,
    contender="summary",
    strategy=chosen.strategy,
    torch_threads=TORCH_THREADS,
    chunk_size=chosen.chunk_size,
    **{f"{k}_s": med[k] for k in med},
    **{f"{k}_compile_s": v for k, v in compile_s.items()},
    speedup_vs_loop_of_scans=med["loop_of_scans"] / med["sweep"],
    speedup_vs_torch=med["torch"] / med["sweep"] if "torch" in med else None,
    best_lr=float(chosen.best()["lr"]),
  )
  emit(summary)
  mem_rows = [memory(v, mode) for v in ([0] + mem_values)] if mem_values else []
  base_mem = mem_rows[0] if mem_rows else None
  for r in mem_rows[1:]:
    r["rss_delta_mb"] = r["peak_rss_mb"] - base_mem["peak_rss_mb"]
    emit(dict(base, contender="memory", **r))
  data_rows, data_md = run_data(mode)
  return [summary] + mem_rows[1:] + data_rows, markdown(summary, mem_rows[1:]) + "\n" + data_md


def memory(max_parallel: int, mode: str) -> dict:
  """Peak memory of one sweep in a fresh process (``max_parallel=0``: the baseline, no sweep)."""
  out = subprocess.run(
    [sys.executable, __file__, "--child-mem", str(max_parallel), "--mode", mode],
    capture_output=True,
    text=True,
    check=True,
    env=dict(os.environ),
  )
  return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> float:
  """This process' peak resident memory. /proc's VmHWM starts afresh at exec; ru_maxrss does not on
  Linux (a child started from a big parent reports the parent's peak)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_mem(max_parallel: int, mode: str) -> None:
  num_configs, num_steps, _, _ = MODES[mode]
  _, batches, params, lrs = problem(num_configs)
  t0 = time.perf_counter()
  strategy = None
  if max_parallel > 0:
    res = lr_jax.sweep(
      tasks.mlp_loss,
      params,
      batches,
      optimizer=_optimizer,
      grid={"lr": lrs.tolist()},
      num_steps=num_steps,
      max_parallel=max_parallel,
    )
    strategy = res.strategy
  wall = time.perf_counter() - t0
  stats = jax.devices()[0].memory_stats() or {}
  print(
    json.dumps(
      {
        "max_parallel": max_parallel,
        "strategy": strategy,
        "wall_s": wall,
        "peak_rss_mb": _peak_rss_mb(),
        "device_peak_mb": stats.get("peak_bytes_in_use", float("nan")) / 2**20,
      }
    )
  )


# --------------------------------------------------------------------------------------------------
# Issue 12: streamed batches vs stacked, the cost of keeping params, peak memory with 10x data.

# configs, steps, repeats; memory: batches in the short stream (the long one has 10x), batch size
DATA_MODES = {
  "smoke": (4, 6, 1, 0, 0),
  "quick": (32, 300, 3, 300, 256),
  "full": (32, 300, 15, 300, 256),
}


def _minibatches(batch_size: int = 64):
  """digits' 1347 training images cut into 21 NumPy mini-batches of 64 (stacked: [21, 64, 64])."""
  d = tasks.digits_data()
  n = len(d["x_train"]) // batch_size * batch_size
  x = d["x_train"][:n].reshape(-1, batch_size, 64)
  y = d["y_train"][:n].reshape(-1, batch_size)
  return x, y


def _cycle(x, y, num_steps):
  """A generator of NumPy (x, y) batches, as a data loader yields them (step t: batch t % n)."""
  for t in range(num_steps):
    yield x[t % len(x)], y[t % len(y)]


def run_data(mode: str = "quick") -> tuple[list[dict], str]:
  num_configs, num_steps, repeats, mem_batches, mem_bs = DATA_MODES[mode]
  x, y = _minibatches()
  params = tasks.mlp_init(jax.random.key(0))
  lrs = np.logspace(-4, -1, num_configs).astype(np.float32).tolist()
  kw = {"optimizer": _optimizer, "grid": {"lr": lrs}, "num_steps": num_steps}
  out = {}

  def stacked(keep=True):
    def f():
      out["stacked", keep] = lr_jax.sweep(tasks.mlp_loss, params, (x, y), keep_params=keep, **kw)
      jax.block_until_ready(out["stacked", keep].best_run.params)

    return f

  def streamed():
    out["streamed"] = lr_jax.sweep(tasks.mlp_loss, params, _cycle(x, y, num_steps), **kw)
    jax.block_until_ready(out["streamed"].best_run.params)

  fns = {"stacked": stacked(True), "stacked_no_params": stacked(False), "streamed": streamed}
  compile_s = {}
  for k, f in fns.items():
    t0 = time.perf_counter()
    f()
    compile_s[k] = time.perf_counter() - t0
  samples = interleave(fns, repeats, warmup=1)
  med = {k: median(v) for k, v in samples.items()}
  same = bool(np.allclose(out["streamed"].losses, out["stacked", True].losses, rtol=1e-5, atol=1e-6))
  base = {"name": "sweep_data/digits_mlp", "configs": num_configs, "steps": num_steps, "batch": x.shape[1]}
  summary = dict(
    base,
    contender="summary",
    **{f"{k}_s": v for k, v in med.items()},
    **{f"{k}_min_s": float(np.min(v)) for k, v in samples.items()},
    streamed_throughput_vs_stacked=med["stacked"] / med["streamed"],
    keep_params_cost=med["stacked"] / med["stacked_no_params"] - 1.0,
    # minima: on a shared, preempted machine the fastest sample is the least disturbed one
    streamed_throughput_vs_stacked_min=float(np.min(samples["stacked"]) / np.min(samples["streamed"])),
    keep_params_cost_min=float(np.min(samples["stacked"]) / np.min(samples["stacked_no_params"]) - 1.0),
    streamed_equals_stacked=same,
    chunk_steps=_sweep_mod().STREAM_CHUNK_STEPS,
  )
  emit(summary)
  rows = [summary]
  mem = []
  if mem_batches:
    baseline = _data_memory("baseline", 0, mem_bs, num_configs)
    for kind in ("streamed", "stacked"):
      for n in (mem_batches, 10 * mem_batches):
        r = _data_memory(kind, n, mem_bs, num_configs)
        r["rss_delta_mb"] = r["peak_rss_mb"] - baseline["peak_rss_mb"]
        emit(dict(base, contender="memory_data", **r))
        mem.append(r)
    rows += mem
  return rows, markdown_data(summary, mem)


def _sweep_mod():
  return sys.modules["lr_jax._sweep"]


def _data_memory(kind: str, num_batches: int, batch_size: int, num_configs: int) -> dict:
  out = subprocess.run(
    [sys.executable, __file__, "--child-data", kind, str(num_batches), str(batch_size), str(num_configs)],
    capture_output=True,
    text=True,
    check=True,
    env=dict(os.environ),
  )
  return json.loads(out.stdout.strip().splitlines()[-1])


def _synthetic(num_batches: int, batch_size: int):
  """``num_batches`` fresh random batches, made one at a time (the dataset never exists whole)."""
  rng = np.random.default_rng(0)
  for _ in range(num_batches):
    yield rng.random((batch_size, 64), np.float32), rng.integers(0, 10, batch_size).astype(np.int32)


def _child_data(kind: str, num_batches: int, batch_size: int, num_configs: int) -> None:
  """One epoch over ``num_batches`` batches (one step each) in a fresh process; prints peak memory."""
  params = tasks.mlp_init(jax.random.key(0))
  lrs = np.logspace(-4, -1, num_configs).astype(np.float32).tolist()
  t0 = time.perf_counter()
  if kind != "baseline":
    data = _synthetic(num_batches, batch_size)
    if kind == "stacked":
      xs, ys = zip(*data)
      data = (np.stack(xs), np.stack(ys))
      del xs, ys
    res = lr_jax.sweep(
      tasks.mlp_loss, params, data, optimizer=_optimizer, grid={"lr": lrs}, num_steps=num_batches
    )
    jax.block_until_ready(res.best_run.params)
  wall = time.perf_counter() - t0
  stats = jax.devices()[0].memory_stats() or {}
  print(
    json.dumps(
      {
        "kind": kind,
        "num_batches": num_batches,
        "data_mb": num_batches * batch_size * (64 * 4 + 4) / 2**20,
        "wall_s": wall,
        "peak_rss_mb": _peak_rss_mb(),
        "device_peak_mb": stats.get("peak_bytes_in_use", float("nan")) / 2**20,
      }
    )
  )


def markdown_data(s: dict, mem: list[dict]) -> str:
  out = (
    f"### Sweep on streamed data: {s['configs']} Adam rates x {s['steps']} steps, mini-batches of "
    f"{s['batch']}, digits MLP\n\n"
    + md_table(
      ["contender", "run s (median)", "vs stacked"],
      [
        ["stacked batches, keep_params=True (default)", f"{s['stacked_s']:.3f}", fmt_ratio(1.0)],
        [
          "stacked batches, keep_params=False",
          f"{s['stacked_no_params_s']:.3f}",
          fmt_ratio(s["stacked_s"] / s["stacked_no_params_s"]),
        ],
        [
          f"generator of NumPy batches (chunks of {s['chunk_steps']} steps)",
          f"{s['streamed_s']:.3f}",
          fmt_ratio(s["streamed_throughput_vs_stacked"]),
        ],
      ],
    )
    + f"\n\nStreaming throughput: {s['streamed_throughput_vs_stacked']:.2f}x the stacked path by medians, "
    f"{s['streamed_throughput_vs_stacked_min']:.2f}x by minima (goal >= 0.9x); keeping every configuration's "
    f"params costs {100 * s['keep_params_cost']:+.1f}% by medians, {100 * s['keep_params_cost_min']:+.1f}% by "
    f"minima (goal < 10%); same losses: {s['streamed_equals_stacked']}.\n"
  )
  if mem:
    out += "\nPeak memory, one epoch (one step per batch) in a fresh process, over a baseline process:\n\n"
    out += md_table(
      ["batches", "kind", "data MB", "peak RSS MB (over baseline)", "wall s (incl. compile)"],
      [[r["num_batches"], r["kind"], f"{r['data_mb']:.0f}", f"{r['rss_delta_mb']:.1f}", f"{r['wall_s']:.1f}"]
       for r in mem],
    )  # fmt: skip
    out += "\n"
  return out


def markdown(s: dict, mem_rows: list[dict]) -> str:
  nan = float("nan")
  header = ["contender", "run s", "compile s", "sweep speedup"]
  names = [
    ("sweep", f"lr_jax.sweep (chose `{s['strategy']}`, chunk {s['chunk_size']})"),
    ("sweep_vmap", f"lr_jax.sweep, max_parallel={s['configs']} (vmap)"),
    ("loop_of_scans", f"loop of {s['configs']} jitted scans"),
    ("per_step", "per-step jitted loop"),
    ("torch", f"PyTorch loop ({s['torch_threads']} thread)"),
  ]
  body = [
    [
      label,
      f"{s.get(k + '_s', nan):.2f}",
      "n/a" if s.get(k + "_compile_s") is None else f"{s[k + '_compile_s']:.2f}",
      fmt_ratio(s.get(k + "_s", nan) / s["sweep_s"]),
    ]
    for k, label in names
    if k + "_s" in s
  ]
  out = (
    f"### Sweep: {s['configs']} Adam rates x {s['steps']} full-batch steps, digits MLP 64-32-10\n\n"
    + md_table(header, body)
    + "\n\n\"sweep speedup\": the contender's time over `lr_jax.sweep`'s (above 1: the sweep is faster). Medians.\n"
  )
  if mem_rows:
    mh = [
      "max_parallel",
      "strategy",
      "peak RSS MB (over baseline)",
      "device peak MB",
      "wall s (incl. compile)",
    ]
    mb = [
      [
        r["max_parallel"],
        r["strategy"],
        f"{r['rss_delta_mb']:.1f}",
        "n/a" if r["device_peak_mb"] != r["device_peak_mb"] else f"{r['device_peak_mb']:.0f}",
        f"{r['wall_s']:.1f}",
      ]
      for r in mem_rows
    ]
    out += "\nPeak memory of one sweep in a fresh process:\n\n" + md_table(mh, mb) + "\n"
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  ap.add_argument("--child-mem", type=int, default=None, help=argparse.SUPPRESS)
  ap.add_argument("--child-data", nargs=4, default=None, help=argparse.SUPPRESS)
  ap.add_argument("--data-only", action="store_true", help="only the streamed-data benchmark (issue 12)")
  args = ap.parse_args(argv)
  if args.child_mem is not None:
    _child_mem(args.child_mem, args.mode)
    return
  if args.child_data is not None:
    kind, n, bs, c = args.child_data
    _child_data(kind, int(n), int(bs), int(c))
    return
  if args.data_only:
    print(run_data(args.mode)[1])
    return
  _, md = run(args.mode)
  print(md)


if __name__ == "__main__":
  main()
