"""Shared benchmark helpers: interleaved timing, environment record, JSON lines.

Timing rules (STYLE.md "Benchmarks"): compile and warm up outside the timed region, report compile
time separately, block on the result inside the timed region, and, because these machines are shared
and noisy, run the contenders of one case round-robin (a different order each round) and report
medians (and minima) of every sample.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax

RECORDS: list[dict] = []  # every JSON line emitted in this process (run.py collects them)


def env_info() -> dict:
  """The device and the versions a result was measured with."""
  import numpy as np
  import optax

  dev = jax.devices()[0]
  info = {
    "backend": jax.default_backend(),
    "device": f"{dev.platform}:{getattr(dev, 'device_kind', '?')}",
    "device_count": jax.device_count(),
    "cpu_count": os.cpu_count(),
    "python": platform.python_version(),
    "machine": platform.machine(),
    "jax_version": jax.__version__,
    "jaxlib_version": getattr(__import__("jaxlib"), "__version__", "?"),
    "optax_version": optax.__version__,
    "numpy_version": np.__version__,
  }
  try:
    import torch

    info["torch_version"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
  except ImportError:
    info["torch_version"] = None
  try:
    info["load_avg_1m"] = os.getloadavg()[0]
  except OSError:
    pass
  return info


_BASE = None


def torch_device(torch) -> str | None:
  """Where PyTorch runs beside JAX: ``"cpu"`` when JAX is on the CPU, ``"cuda"`` when JAX is on a GPU
  and this torch has CUDA, else ``None`` (no PyTorch contender: a CPU-only torch is not compared
  with a GPU)."""
  if torch is None:
    return None
  if jax.default_backend() == "cpu":
    return "cpu"
  return "cuda" if torch.cuda.is_available() else None


def emit(record: dict) -> dict:
  """Prints one JSON line (name, backend, jax_version, compile_s, run_s, ...) and keeps it."""
  global _BASE
  if _BASE is None:
    _BASE = {"backend": jax.default_backend(), "jax_version": jax.__version__}
  rec = {**_BASE, **record}
  RECORDS.append(rec)
  print(json.dumps(rec, default=float), flush=True)
  return rec


def interleave(
  fns: dict[str, Callable[[], None]],
  repeats: int,
  warmup: int = 2,
  budget_s: float = 0.0,
  max_repeats: int = 101,
) -> dict[str, list[float]]:
  """Seconds per call of each ``fn`` (each must block until its result is ready), round-robin.

  Round r runs the contenders in order rotated by r, so no contender always follows the same one.
  ``warmup`` untimed rounds come first (the first calls after a compile are often slow). At least
  ``repeats`` rounds run, more (up to ``max_repeats``) while the total stays within ``budget_s``:
  on a shared machine, other processes preempt a short call now and then, and only many samples
  keep the median clear of it.
  """
  names = list(fns)
  t0 = time.perf_counter()
  for _ in range(warmup):
    for n in names:
      fns[n]()
  per_round = (time.perf_counter() - t0) / max(warmup, 1)
  if budget_s > 0 and per_round > 0:
    repeats = max(repeats, min(max_repeats, int(budget_s / per_round)))
  out = {n: [] for n in names}
  for r in range(repeats):
    k = r % len(names)
    for n in names[k:] + names[:k]:
      t0 = time.perf_counter()
      fns[n]()
      out[n].append(time.perf_counter() - t0)
  return out


def first_call(fn: Callable[[], None]) -> float:
  """Seconds of the first call (trace + compile + one run)."""
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def median(xs) -> float:
  return float(statistics.median(xs)) if xs else float("nan")


def fmt_ms(s: float) -> str:
  if math.isnan(s):
    return "n/a"
  ms = s * 1e3
  return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_ratio(x: float) -> str:
  return "n/a" if math.isnan(x) else f"{x:.2f}"


def md_table(header: list[str], rows: list[list]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def log(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)
