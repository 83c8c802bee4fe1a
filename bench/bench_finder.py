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

import jax
import numpy as np
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

  fns = {"lr_find": finder(1), "lr_find_x8": finder(8)}
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
    f"{s['repeats8_over_1']:.2f}x one repeat.\n"
  )


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  _, md = run(ap.parse_args(argv).mode)
  print(md)


if __name__ == "__main__":
  main()
