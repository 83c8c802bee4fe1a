"""The LR range test: ``lr_jax.lr_find`` against torch-lr-finder on the same model and batches.

Model and data: the digits MLP (64-32-10, tanh) of ``lr_jax.tasks.make("digits")``, its 21 shuffled
mini-batches of 64, the same initial weights; SGD with momentum 0.9; an exponential ramp from 1e-7
to 10 over 100 steps. Both run all 100 steps (torch-lr-finder's ``diverge_th`` is set to infinity:
its early stop would otherwise make it do less work than lr_jax, which runs its whole scan and masks
the diverged tail).

Contenders: ``lr_find`` (one repeat) and ``lr_find_x8`` (``num_repeats=8``, vmapped in the same
program); ``torch_lr_finder`` (``LRFinder.range_test`` over a ``DataLoader``, when the package is
installed: ``pip install --no-deps torch-lr-finder``); ``torch_loop``, a minimal PyTorch loop of the
same algorithm (ramp, SGD step, smoothing, divergence check) without torch-lr-finder's overheads.

The cost of repeats (issue 12: 8 repeats <= 3x one on CPU, <= 1.5x with spare parallelism) is
reported three ways: medians and minima of ``lr_find_x8 / lr_find``; the same ratio for
``train_x8 / train_x1``, a bare jitted ``lax.scan`` of SGD steps (one lane, and 8 lanes vmapped:
the compute floor, with no range-test logic and no host work); and, outside smoke mode, the ratio
in a child process whose CPU is split into one XLA host device per core
(``--xla_force_host_platform_device_count``), where ``lr_find`` shards the 8 repeats over them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # torch-lr-finder's progress bar
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import emit, first_call, fmt_ms, fmt_ratio, interleave, log, md_table, median

import lr_jax
from lr_jax import tasks

try:
  import torch
except ImportError:  # pragma: no cover
  torch = None

TORCH_THREADS = 1  # PyTorch's fastest setting for these small matmuls on a shared 2-core CPU
MODES = {
  "smoke": (10, 1, 0.0),
  "quick": (100, 5, 4.0),
  "full": (100, 15, 15.0),
}  # num_steps, repeats, budget s


def _torch_model(params):
  model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
  with torch.no_grad():
    for lin, layer in zip((model[0], model[2]), params):
      lin.weight.copy_(torch.from_numpy(np.array(layer["w"]).T.copy()))
      lin.bias.copy_(torch.from_numpy(np.array(layer["b"])))
  return model


def _torch_data(task):
  x = torch.from_numpy(np.array(task.batches[0]).reshape(-1, 64))
  y = torch.from_numpy(np.array(task.batches[1]).reshape(-1).astype(np.int64))
  return x, y


def _threads(fn):
  def run():
    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
      return fn()
    finally:
      torch.set_num_threads(threads)

  return run


def torch_lr_finder_fn(task, num_steps):
  try:
    from torch_lr_finder import LRFinder
  except ImportError:
    return None
  x, y = _torch_data(task)
  loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=False)

  def run():
    model = _torch_model(task.params)
    opt = torch.optim.SGD(model.parameters(), lr=1e-7, momentum=0.9)
    finder = LRFinder(model, opt, torch.nn.CrossEntropyLoss(), device="cpu")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
      finder.range_test(loader, end_lr=10.0, num_iter=num_steps, step_mode="exp", diverge_th=math.inf)
    return finder.history["lr"]

  return _threads(run)


def torch_loop_fn(task, num_steps):
  """The range test's algorithm in plain PyTorch (what torch-lr-finder does, minus its machinery)."""
  x, y = _torch_data(task)
  xs, ys = x.split(64), y.split(64)
  lrs = 1e-7 * (10.0 / 1e-7) ** (np.arange(num_steps) / (num_steps - 1))

  def run():
    model = _torch_model(task.params)
    opt = torch.optim.SGD(model.parameters(), lr=float(lrs[0]), momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    avg, best, losses = 0.0, math.inf, []
    for t in range(num_steps):
      for g in opt.param_groups:
        g["lr"] = float(lrs[t])
      opt.zero_grad()
      loss = loss_fn(model(xs[t % len(xs)]), ys[t % len(ys)])
      loss.backward()
      opt.step()
      avg = 0.98 * avg + 0.02 * loss.item()
      smooth = avg / (1 - 0.98 ** (t + 1))
      best = min(best, smooth)
      losses.append(smooth)
      if smooth > 4 * best * 1e30:  # never: the same amount of work as the other contenders
        break
    return losses

  return _threads(run)


def train_fn(task, num_steps, lanes):
  """The bare compute of ``lanes`` SGD runs of ``num_steps`` steps (vmapped when lanes > 1)."""
  tx = optax.sgd(0.01, momentum=0.9)
  n = len(jax.tree_util.tree_leaves(task.batches)[0])

  def one(order):
    def body(c, i):
      p, s = c
      b = jax.tree_util.tree_map(lambda x: x[i], task.batches)
      loss, g = jax.value_and_grad(task.loss_fn)(p, b)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), loss

    return jax.lax.scan(body, (task.params, tx.init(task.params)), order)[1]

  orders = jnp.asarray((np.arange(num_steps) % n)[None].repeat(lanes, 0))
  f = jax.jit(lambda o: jax.vmap(one)(o))
  return lambda: f(orders).block_until_ready()


_SHARDED_CHILD = """
import os, sys, json, time
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=" + sys.argv[1]
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, sys.argv[3])
import jax
import lr_jax
from lr_jax import tasks
task = tasks.make("digits")
num_steps = int(sys.argv[2])
def f(r):
  return lambda: lr_jax.lr_find(task.loss_fn, task.params, task.batches, num_steps=num_steps, num_repeats=r,
                                key=jax.random.key(0) if r > 1 else None)
fns = {"x1": f(1), "x8": f(8)}
for g in fns.values():
  g(); g()
out = {k: [] for k in fns}
for _ in range(int(sys.argv[4])):
  for k, g in fns.items():
    t0 = time.perf_counter(); g(); out[k].append(time.perf_counter() - t0)
print(json.dumps({"devices": len(jax.devices()), **out}))
"""


def sharded_ratio(num_steps: int, rounds: int) -> dict:
  """Runs lr_find x1 / x8 in a child with one XLA host device per core; medians and minima."""
  devices = max(2, os.cpu_count() or 2)
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  root = str(Path(__file__).resolve().parents[1])
  proc = subprocess.run(
    [sys.executable, "-c", _SHARDED_CHILD, str(devices), str(num_steps), root, str(rounds)],
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  if proc.returncode != 0:
    log(f"finder: the sharded child failed: {proc.stderr[-500:]}")
    return {}
  got = json.loads(proc.stdout.strip().splitlines()[-1])
  return {
    "sharded_devices": got["devices"],
    "sharded_x1_s": median(got["x1"]),
    "sharded_x8_s": median(got["x8"]),
    "repeats8_sharded_over_1": median(got["x8"]) / median(got["x1"]),
    "repeats8_sharded_over_1_min": min(got["x8"]) / min(got["x1"]),
  }


def run(mode: str = "quick") -> tuple[list[dict], str]:
  num_steps, repeats, budget = MODES[mode]
  task = tasks.make("digits")
  results = {}

  def finder(num_repeats):
    def f():
      res = lr_jax.lr_find(
        task.loss_fn,
        task.params,
        task.batches,
        num_steps=num_steps,
        num_repeats=num_repeats,
        key=jax.random.key(0) if num_repeats > 1 else None,
      )
      results[num_repeats] = res

    return f

  fns = {
    "lr_find": finder(1),
    "lr_find_x8": finder(8),
    "train_x1": train_fn(task, num_steps, 1),
    "train_x8": train_fn(task, num_steps, 8),
  }
  if torch is not None:
    f = torch_lr_finder_fn(task, num_steps)
    if f is not None:
      fns["torch_lr_finder"] = f
    else:
      log(
        "finder: torch-lr-finder is not installed (pip install --no-deps torch-lr-finder); only the plain torch loop runs"
      )
    fns["torch_loop"] = torch_loop_fn(task, num_steps)
  compile_s = {k: first_call(f) for k, f in fns.items()}
  samples = interleave(fns, repeats, budget_s=budget, max_repeats=51)
  med = {k: median(v) for k, v in samples.items()}
  base = {"name": "finder/digits_mlp", "steps": num_steps}
  for k, v in samples.items():
    emit(
      dict(
        base,
        contender=k,
        run_s=med[k],
        min_s=float(np.min(v)),
        samples_s=v,
        compile_s=max(compile_s[k] - med[k], 0.0) if k.startswith("lr_find") else None,
      )
    )
  summary = dict(
    base,
    contender="summary",
    **{f"{k}_s": v for k, v in med.items()},
    **{f"{k}_compile_s": max(compile_s[k] - med[k], 0.0) for k in ("lr_find", "lr_find_x8")},
    speedup_vs_torch_lr_finder=med["torch_lr_finder"] / med["lr_find"] if "torch_lr_finder" in med else None,
    speedup_vs_torch_loop=med["torch_loop"] / med["lr_find"] if "torch_loop" in med else None,
    repeats8_over_1=med["lr_find_x8"] / med["lr_find"],
    repeats8_over_1_min=min(samples["lr_find_x8"]) / min(samples["lr_find"]),
    train8_over_1=med["train_x8"] / med["train_x1"],
    train8_over_1_min=min(samples["train_x8"]) / min(samples["train_x1"]),
    **(sharded_ratio(num_steps, max(repeats, 10)) if mode != "smoke" else {}),
    torch_threads=TORCH_THREADS,
    suggestion_1=float(results[1].suggestion),
    suggestion_8=float(results[8].suggestion),
  )
  emit(summary)
  return [summary], markdown(summary)


def markdown(s: dict) -> str:
  nan = float("nan")
  rows = [
    ("lr_find", "lr_jax.lr_find"),
    ("lr_find_x8", "lr_jax.lr_find, num_repeats=8"),
    ("torch_lr_finder", "torch-lr-finder `range_test`"),
    ("torch_loop", "plain PyTorch loop, same algorithm"),
    ("train_x1", "bare jitted SGD scan, 1 lane (compute floor)"),
    ("train_x8", "bare jitted SGD scan, 8 lanes vmapped"),
  ]
  body = [
    [
      label,
      fmt_ms(s[k + "_s"]),
      fmt_ms(s.get(k + "_compile_s", nan)),
      fmt_ratio(s[k + "_s"] / s["lr_find_s"]),
    ]
    for k, label in rows
    if k + "_s" in s
  ]
  return (
    f"### LR range test: {s['steps']} steps, digits MLP, batches of 64\n\n"
    + md_table(["contender", "run ms", "compile ms", "/ lr_find"], body)
    + f"\n\nMedians. PyTorch with {s['torch_threads']} thread (its fastest here). 8 repeats cost "
    f"{s['repeats8_over_1']:.2f}x one repeat (minima: {s['repeats8_over_1_min']:.2f}x); the bare "
    f"training scan's 8 lanes cost {s['train8_over_1']:.2f}x one (minima: {s['train8_over_1_min']:.2f}x), "
    "the compute floor of any vmapped range test."
    + (
      f" Sharded over {s['sharded_devices']} host devices (one per core): 8 repeats cost "
      f"{s['repeats8_sharded_over_1']:.2f}x one (minima: {s['repeats8_sharded_over_1_min']:.2f}x)."
      if "sharded_devices" in s
      else ""
    )
    + "\n"
  )


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  _, md = run(ap.parse_args(argv).mode)
  print(md)


if __name__ == "__main__":
  main()
