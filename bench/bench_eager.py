"""Eager scalar calls: ``schedule(5)`` outside ``jit``, as a user logging or plotting the rate calls it.

For every schedule in ``lr_jax.schedules`` (the registry, built as in ``bench_schedules.cases``, plus
the staircase form of ``exponential_decay``), the first call (which may trace and compile) is timed
apart, then the median of repeated calls ``jax.block_until_ready(s(5))``. Side by side: the Optax twin's
eager call ``optax_schedule(5)`` where one exists, and PyTorch's cost of one scheduler step,
``scheduler.step(); scheduler.get_last_lr()`` (what a PyTorch user pays to read the next rate).
Contenders are interleaved round-robin, as in every benchmark here.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import numpy as np
import optax
from _common import emit, first_call, fmt_ms, fmt_ratio, interleave, log, md_table, median
from bench_schedules import cases

from lr_jax import schedules as S
from lr_jax.schedules._base import REGISTRY

try:
  import torch
except ImportError:  # pragma: no cover
  torch = None

MODES = {"smoke": (5, 0.0), "quick": (41, 0.5), "full": (101, 1.5)}  # repeats, budget s per schedule
T = 10_000  # the schedules' horizon; PyTorch's scheduler steps stay far below it
STEP = 5
GOAL_S = 1e-3  # issue 10 item 13: every eager scalar call under 1 ms after the first


def eager_cases() -> dict:
  """name -> (lr_jax schedule, optax schedule or None, torch factory or None, torch twin name)."""
  out = cases(T)
  missing = set(REGISTRY) - set(out)
  if missing:
    raise RuntimeError(f"bench_eager: no benchmark case for the registered schedules {sorted(missing)}")
  out["exponential_decay (staircase)"] = (
    S.exponential_decay(1.0, 0.5, decay_steps=T // 10, staircase=True),
    optax.exponential_decay(1.0, T // 10, 0.5, staircase=True),
    lambda o: torch.optim.lr_scheduler.StepLR(o, T // 10, 0.5),
    "StepLR",
  )
  return out


def _torch_stepper(factory):
  """One ``step(); get_last_lr()`` per call, on one long-lived scheduler."""
  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=1.0, momentum=0.9)
  sched = factory(opt)

  def call():
    sched.step()
    sched.get_last_lr()

  return call


def run(mode: str = "quick") -> tuple[list[dict], str]:
  repeats, budget = MODES[mode]
  warnings.filterwarnings("ignore", message=".*lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`.*")
  warnings.filterwarnings("ignore", category=UserWarning, module="torch.optim.lr_scheduler")
  rows = []
  for name, (sched, osched, tfactory, twin) in eager_cases().items():
    log(f"eager: {name}")
    fns = {"lr_jax": lambda s=sched: jax.block_until_ready(s(STEP))}
    if osched is not None:
      fns["optax"] = lambda s=osched: jax.block_until_ready(s(STEP))
    if torch is not None and tfactory is not None:
      fns["torch"] = _torch_stepper(tfactory)
    first = {k: first_call(f) for k, f in fns.items()}
    samples = interleave(fns, repeats, warmup=1, budget_s=budget, max_repeats=1001)
    med = {k: median(v) for k, v in samples.items()}
    base = {"name": f"eager/{name}", "schedule": name, "step": STEP}
    for k, v in samples.items():
      emit(
        dict(
          base, contender=k, run_s=med[k], min_s=float(np.min(v)), samples_s=v, compile_s=first[k] - med[k]
        )
      )
    summary = dict(
      base,
      contender="summary",
      twin=twin,
      lr_jax_first_s=first["lr_jax"],
      lr_jax_s=med["lr_jax"],
      optax_s=med.get("optax"),
      torch_step_s=med.get("torch"),
      ratio_vs_optax=med["lr_jax"] / med["optax"] if "optax" in med else None,
      ratio_vs_torch_step=med["lr_jax"] / med["torch"] if "torch" in med else None,
    )
    emit(summary)
    rows.append(summary)
  return rows, markdown(rows)


def markdown(rows) -> str:
  nan = float("nan")
  header = [
    "schedule",
    "lr_jax first call ms",
    "lr_jax ms",
    "Optax ms",
    "lr_jax / Optax",
    "PyTorch twin",
    "PyTorch step ms",
    "lr_jax / PyTorch step",
  ]
  body = [
    [
      r["schedule"],
      fmt_ms(r["lr_jax_first_s"]),
      fmt_ms(r["lr_jax_s"]),
      fmt_ms(r["optax_s"] or nan),
      fmt_ratio(r["ratio_vs_optax"] or nan),
      r["twin"],
      fmt_ms(r["torch_step_s"] or nan),
      fmt_ratio(r["ratio_vs_torch_step"] or nan),
    ]
    for r in rows
  ]
  note = (
    f"Median ms of one eager call `jax.block_until_ready(s({STEP}))` after the first (whose time, tracing and "
    "compiling included, is the first column), for every registered schedule. Optax: its nearest "
    f"equivalent called the same way. PyTorch step: one `scheduler.step(); scheduler.get_last_lr()`, the "
    "price of reading the next rate there. Ratios above 1 mean lr_jax is slower."
  )
  return "### Eager scalar call\n\n" + md_table(header, body) + "\n\n" + note + "\n"


def goal(rows) -> str:
  """One line for run.py's goals: the slowest eager call against the 1 ms goal."""
  worst = max(rows, key=lambda r: r["lr_jax_s"])
  ok = worst["lr_jax_s"] < GOAL_S
  return (
    f"- Eager scalar call `s({STEP})` after the first ({len(rows)} schedules): slowest {fmt_ms(worst['lr_jax_s'])} ms "
    f"({worst['schedule']}) (goal < 1 ms, issue 10: {'**met**' if ok else '**not met**'})."
  )


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  _, md = run(ap.parse_args(argv).mode)
  print(md)


if __name__ == "__main__":
  main()
