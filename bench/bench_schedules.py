"""Whole trajectories of every lr_jax schedule: against Optax's equivalent and PyTorch's ``.step()`` loop.

Each schedule is evaluated on ``jnp.arange(N)`` (N = 1M steps; fewer with ``--mode smoke``) in one
jitted call, the schedule passed as an argument (it is a pytree). Optax's equivalent, where it has
one, is ``jax.jit(jax.vmap(optax_schedule))`` on the same steps (``vmap`` because some Optax
schedules reject a vector of steps). PyTorch's scheduler has no vectorised form: its loop
``scheduler.step(); scheduler.get_last_lr()`` runs for fewer steps (``TORCH_STEPS``) and the time
is scaled linearly to N (its cost per step is constant).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import emit, first_call, fmt_ms, fmt_ratio, interleave, log, md_table, median

from lr_jax import schedules as S

try:
  import torch
except ImportError:  # pragma: no cover
  torch = None

MODES = {
  "smoke": (10_000, 200, 3, 0.0),
  "quick": (1_000_000, 10_000, 7, 1.0),
  "full": (1_000_000, 50_000, 15, 3.0),
}  # N, TORCH_STEPS, repeats, s


def cases(T: int) -> dict:
  """name -> (lr_jax schedule, optax schedule or None, torch factory ``opt -> scheduler`` or None, torch twin name)."""
  W = T // 10
  E = max(T // 1000, 1)  # steps per epoch for per_epoch
  lam = lambda f: lambda o: torch.optim.lr_scheduler.LambdaLR(o, f)
  tsch = lambda: torch.optim.lr_scheduler
  cos = S.cosine_annealing(1.0, T, 0.01)
  return {
    "constant": (
      S.constant(0.5),
      optax.constant_schedule(0.5),
      lambda o: tsch().ConstantLR(o, factor=1.0, total_iters=0),
      "ConstantLR",
    ),
    "step_decay": (
      S.step_decay(1.0, T // 10, 0.5),
      optax.exponential_decay(1.0, T // 10, 0.5, staircase=True),
      lambda o: tsch().StepLR(o, T // 10, 0.5),
      "StepLR",
    ),
    "multistep_decay": (
      S.multistep_decay(1.0, [T // 3, 2 * T // 3], 0.1),
      optax.piecewise_constant_schedule(1.0, {T // 3: 0.1, 2 * T // 3: 0.1}),
      lambda o: tsch().MultiStepLR(o, [T // 3, 2 * T // 3], 0.1),
      "MultiStepLR",
    ),
    "exponential_decay": (
      S.exponential_decay(1.0, 0.999999),
      optax.exponential_decay(1.0, 1, 0.999999),
      lambda o: tsch().ExponentialLR(o, 0.999999),
      "ExponentialLR",
    ),
    "inverse_time_decay": (
      S.inverse_time_decay(1.0, 0.5, 1000),
      None,
      lam(lambda t: 1.0 / (1.0 + 0.5 * t / 1000)),
      "LambdaLR",
    ),
    "polynomial_decay": (
      S.polynomial_decay(1.0, T, 0.0, 2.0),
      optax.polynomial_schedule(1.0, 0.0, 2.0, T),
      lambda o: tsch().PolynomialLR(o, T, 2.0),
      "PolynomialLR",
    ),
    "linear": (
      S.linear(1.0, 0.1, T),
      optax.linear_schedule(1.0, 0.1, T),
      lambda o: tsch().LinearLR(o, 1.0, 0.1, T),
      "LinearLR",
    ),
    "cosine_annealing": (
      cos,
      optax.cosine_decay_schedule(1.0, T, alpha=0.01),
      lambda o: tsch().CosineAnnealingLR(o, T, 0.01),
      "CosineAnnealingLR",
    ),
    "cosine_warm_restarts": (
      S.cosine_warm_restarts(1.0, T // 20, 2, 0.01),
      None,
      lambda o: tsch().CosineAnnealingWarmRestarts(o, T // 20, 2, 0.01),
      "CosineAnnealingWarmRestarts",
    ),
    "cyclic": (
      S.cyclic(0.1, 1.0, T // 50, mode="triangular2"),
      None,
      lambda o: tsch().CyclicLR(o, 0.1, 1.0, T // 50, mode="triangular2", cycle_momentum=False),
      "CyclicLR",
    ),
    "cosine_warm_restarts+decay": (
      S.cosine_warm_restarts(1.0, T // 20, 2, 0.01, decay=0.8, cycle_limit=4, k_decay=1.5, warmup_steps=W),
      None,
      lam(lambda t: _timm_cosine(t, T // 20, W)),
      "LambdaLR (timm CosineLRScheduler formula)",
    ),
    "cosine_annealing+exponent": (
      S.cosine_annealing(1.0, T, 0.01, exponent=2.0),
      optax.cosine_decay_schedule(1.0, T, alpha=0.01, exponent=2.0),
      lam(lambda t: 0.01 + 0.99 * ((1 + math.cos(math.pi * min(t, T) / T)) / 2) ** 2),
      "LambdaLR",
    ),
    "cosine_with_min_lr": (
      S.cosine_with_min_lr(1.0, T, W, min_lr=0.01),
      optax.warmup_cosine_decay_schedule(0.0, 1.0, W, T, end_value=0.01),
      lam(lambda t: t / W if t < W else 0.01 + 0.99 * (1 + math.cos(math.pi * (t - W) / (T - W))) / 2),
      "LambdaLR (HF get_cosine_with_min_lr_schedule_with_warmup)",
    ),
    "cosine_with_restarts": (
      S.cosine_with_restarts(1.0, T, W, 4),
      None,
      lam(lambda t: t / W if t < W else 0.5 * (1 + math.cos(math.pi * ((4 * (t - W) / (T - W)) % 1.0)))),
      "LambdaLR (HF hard restarts)",
    ),
    "cooldown": (
      S.cooldown(S.constant(1.0), T - 2 * W, 2 * W, shape="linear"),
      optax.join_schedules(
        [optax.constant_schedule(1.0), optax.linear_schedule(1.0, 0.0, 2 * W)], [T - 2 * W]
      ),
      lam(lambda t: 1.0 if t < T - 2 * W else max(0.0, 1 - (t - T + 2 * W) / (2 * W))),
      "LambdaLR",
    ),
    "noisy": (
      S.noisy(cos, seed=42),
      None,
      lam(lambda t: _timm_noise(t) * (0.01 + 0.99 * (1 + math.cos(math.pi * min(t, T) / T)) / 2)),
      "LambdaLR (timm noise: torch.Generator per step)",
    ),
    "cyclic+scale_fn": (
      S.cyclic(0.1, 1.0, T // 50, scale_fn=S.exponential_decay(2.0, 0.5)),
      None,
      lambda o: tsch().CyclicLR(
        o, 0.1, 1.0, T // 50, scale_fn=lambda x: 0.5 ** (x - 1), cycle_momentum=False
      ),
      "CyclicLR(scale_fn)",
    ),
    "cyclic_momentum": (
      S.cyclic_momentum(0.85, 0.95, T // 50),
      None,
      lambda o: tsch().CyclicLR(o, 0.1, 1.0, T // 50, base_momentum=0.85, max_momentum=0.95),
      "CyclicLR(cycle_momentum=True)",
    ),
    "swalr": (
      S.swalr(cos, T // 2, 0.05, W),
      None,
      _swalr_factory(T, W),
      "CosineAnnealingLR + SWALR",
    ),
    "one_cycle": (
      S.one_cycle(1.0, T),
      optax.cosine_onecycle_schedule(T, 1.0),
      lambda o: tsch().OneCycleLR(o, 1.0, total_steps=T + 1),
      "OneCycleLR",
    ),
    "one_cycle_momentum": (
      S.one_cycle_momentum(T),
      None,
      lambda o: tsch().OneCycleLR(o, 1.0, total_steps=T + 1),
      "OneCycleLR",
    ),
    "warmup": (
      S.warmup(cos, W),
      optax.join_schedules(
        [optax.linear_schedule(0.0, 1.0, W), optax.cosine_decay_schedule(1.0, T, 0.01)], [W]
      ),
      lambda o: tsch().SequentialLR(
        o, [tsch().LinearLR(o, 1e-8, 1.0, W), tsch().CosineAnnealingLR(o, T, 0.01)], [W]
      ),
      "LinearLR+SequentialLR",
    ),
    "inverse_sqrt": (
      S.inverse_sqrt(1.0, W),
      None,
      lam(lambda t: (t + 1) / W if t < W else (W / max(t, 1)) ** 0.5),
      "LambdaLR",
    ),
    "warmup_stable_decay": (
      S.warmup_stable_decay(1.0, T, W, 2 * W),
      None,
      lam(lambda t: min(t / W, 1.0, max((T - t) / (2 * W), 0.0))),
      "LambdaLR",
    ),
    "join": (
      S.join([S.linear(0.0, 1.0, W), cos], [W]),
      optax.join_schedules(
        [optax.linear_schedule(0.0, 1.0, W), optax.cosine_decay_schedule(1.0, T, 0.01)], [W]
      ),
      lambda o: tsch().SequentialLR(
        o, [tsch().LinearLR(o, 1e-8, 1.0, W), tsch().CosineAnnealingLR(o, T, 0.01)], [W]
      ),
      "SequentialLR",
    ),
    "multiply": (
      S.multiply(S.exponential_decay(1.0, 0.999999), S.step_decay(1.0, T // 10, 0.5)),
      None,
      lambda o: tsch().ChainedScheduler([tsch().ExponentialLR(o, 0.999999), tsch().StepLR(o, T // 10, 0.5)]),
      "ChainedScheduler",
    ),
    "constant_lr": (
      S.constant_lr(1.0, 0.5, W),
      optax.piecewise_constant_schedule(0.5, {W: 2.0}),
      lambda o: tsch().ConstantLR(o, factor=0.5, total_iters=W),
      "ConstantLR",
    ),
    "linear_lr": (
      S.linear_lr(1.0, 0.1, 1.0, W),
      optax.linear_schedule(0.1, 1.0, W),
      lambda o: tsch().LinearLR(o, 0.1, 1.0, W),
      "LinearLR",
    ),
    "add": (
      S.add(cos, S.constant(0.1)),
      None,
      lam(lambda t: 0.01 + 0.99 * (1 + math.cos(math.pi * min(t, T) / T)) / 2 + 0.1),
      "LambdaLR",
    ),
    "per_epoch": (
      S.per_epoch(S.step_decay(1.0, 10, 0.5), E),
      optax.exponential_decay(1.0, 10 * E, 0.5, staircase=True),
      lam(lambda t: 0.5 ** ((t // E) // 10)),
      "LambdaLR",
    ),
    "piecewise_constant": (
      S.piecewise_constant([T // 3, 2 * T // 3], [1.0, 0.5, 0.1]),
      optax.piecewise_constant_schedule(1.0, {T // 3: 0.5, 2 * T // 3: 0.2}),
      lam(lambda t: 1.0 if t < T // 3 else (0.5 if t < 2 * T // 3 else 0.1)),
      "LambdaLR",
    ),
    # issue 15 options (Optax, Keras, HF)
    "exponential_decay+begin+floor": (
      S.exponential_decay(1.0, 0.99999, 1, transition_begin=W, end_value=0.2),
      optax.exponential_decay(1.0, 1, 0.99999, W, False, 0.2),
      lam(lambda t: max(0.99999 ** max(t - W, 0), 0.2)),
      "LambdaLR",
    ),
    "exponential_decay+growth+ceiling": (
      S.exponential_decay(1e-3, 1.00001, 1, end_value=1.0),
      optax.exponential_decay(1e-3, 1, 1.00001, end_value=1.0),
      lam(lambda t: min(1e-3 * 1.00001**t, 1.0)),
      "LambdaLR",
    ),
    "exponential_decay+staircase+begin": (
      S.exponential_decay(1.0, 0.5, T // 10, True, transition_begin=W),
      optax.exponential_decay(1.0, T // 10, 0.5, W, True),
      lam(lambda t: 0.5 ** (max(t - W, 0) // (T // 10))),
      "LambdaLR",
    ),
    "polynomial_decay+cycle": (
      S.polynomial_decay(1.0, T // 10, 0.01, 2.0, cycle=True),
      None,
      lam(lambda t: 0.01 + 0.99 * (1 - t / ((T // 10) * max(math.ceil(t / (T // 10)), 1))) ** 2),
      "LambdaLR (Keras PolynomialDecay(cycle=True))",
    ),
    "piecewise_interpolate": (
      S.piecewise_interpolate(1.0, {T // 4: 0.5, T // 2: 0.1, 3 * T // 4: 0.5}, interpolate_type="cosine"),
      optax.piecewise_interpolate_schedule("cosine", 1.0, {T // 4: 0.5, T // 2: 0.1, 3 * T // 4: 0.5}),
      lam(lambda t: 1.0),  # the loop's cost, not its value, is what is timed
      "LambdaLR",
    ),
    "one_cycle+pct_final": (
      S.one_cycle(1.0, T, 0.25, "linear", three_phase=True, pct_final=0.85),
      optax.linear_onecycle_schedule(T, 1.0, 0.25, 0.85),
      lambda o: tsch().OneCycleLR(
        o, 1.0, total_steps=T + 1, pct_start=0.25, anneal_strategy="linear", three_phase=True
      ),
      "OneCycleLR (three_phase)",
    ),
    "warmup_stable_decay+types": (
      S.warmup_stable_decay(1.0, T, W, 2 * W, decay="1-sqrt", warmup="cosine", min_lr_ratio=0.1),
      None,
      _hf_wsd(T, W),
      "HF get_wsd_schedule",
    ),
  }


def _hf_wsd(T: int, W: int):
  """HF transformers' ``get_wsd_schedule`` (a ``LambdaLR``) when transformers is installed."""
  try:
    from transformers.optimization import get_wsd_schedule
  except ImportError:  # pragma: no cover
    return None
  return lambda o: get_wsd_schedule(
    o, W, 2 * W, T, warmup_type="cosine", decay_type="1-sqrt", min_lr_ratio=0.1
  )


def _timm_cosine(t, period, warmup, decay=0.8, limit=4, k=1.5):
  """timm's CosineLRScheduler._get_lr (t_initial=period, cycle_mul=2, lr_min=0.01), as a LambdaLR factor."""
  if t < warmup:
    return t / warmup
  i = math.floor(math.log2(1 + t / period))
  t_i, t_cur = 2**i * period, t - (2**i - 1) * period
  if i >= limit:
    return 0.01
  return 0.01 + 0.5 * (decay**i - 0.01) * (1 + math.cos(math.pi * t_cur**k / t_i**k))


def _timm_noise(t, seed=42, pct=0.67):
  """timm's Scheduler._add_noise factor: a torch.Generator seeded per step, redrawn until |z| < pct."""
  g = torch.Generator()
  g.manual_seed(seed + t)
  while True:
    z = torch.randn(1, generator=g).item()
    if abs(z) < pct:
      return 1 + z


def _swalr_factory(T, W):
  """PyTorch's SWA recipe as one scheduler: CosineAnnealingLR, then SWALR from T // 2 on."""

  class _Swa:
    def __init__(self, opt):
      self.opt, self.t = opt, 0
      self.cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T, 0.01)
      self.swa = torch.optim.swa_utils.SWALR(opt, swa_lr=0.05, anneal_epochs=W)

    def step(self):
      (self.swa if self.t >= T // 2 else self.cos).step()
      self.t += 1

    def get_last_lr(self):
      return [self.opt.param_groups[0]["lr"]]

  return _Swa


@jax.jit
def _lr_jax_eval(schedule, steps):
  return schedule(steps)


def _torch_loop(factory, steps: int):
  def run():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0, momentum=0.9)
    sched = factory(opt)
    out = []
    for _ in range(steps):
      sched.step()
      out.append(sched.get_last_lr()[0])
    return out

  return run


def run(mode: str = "quick", only: str | None = None) -> tuple[list[dict], str]:
  """Runs every case (or those whose name contains one of the comma-separated ``only``)."""
  T, torch_steps, repeats, budget = MODES[mode]
  steps = jnp.arange(T, dtype=jnp.int32)
  rows = []
  warnings.filterwarnings("ignore", message=".*lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`.*")
  warnings.filterwarnings("ignore", category=UserWarning, module="torch.optim.lr_scheduler")
  for name, (sched, osched, tfactory, twin) in cases(T).items():
    if only and not any(k and k in name for k in only.split(",")):
      continue
    log(f"schedules: {name}")
    fns, compile_s = {}, {}
    dev_sched = jax.device_put(sched)  # hyperparameters as device arrays, as in a training state
    fns["lr_jax"] = lambda s=dev_sched: _lr_jax_eval(s, steps).block_until_ready()
    baked = jax.jit(lambda st, s=sched: s(st))
    fns["lr_jax_closure"] = lambda f=baked: f(steps).block_until_ready()
    if osched is not None:
      ofn = jax.jit(jax.vmap(osched))
      fns["optax"] = lambda f=ofn: f(steps).block_until_ready()
    if torch is not None and tfactory is not None:
      fns["torch"] = _torch_loop(tfactory, torch_steps)
    for k, f in fns.items():
      compile_s[k] = first_call(f)
    samples = interleave(fns, repeats, budget_s=budget)
    med = {k: median(v) for k, v in samples.items()}
    if "torch" in med:
      med["torch_scaled"] = med["torch"] * T / torch_steps
    # "schedule": the public function; "case": the row (an option of it after a "+")
    base = {"name": f"schedule/{name}", "schedule": name.split("+")[0], "case": name, "steps": T}
    for k, v in samples.items():
      emit(
        dict(
          base,
          contender=k,
          run_s=med[k],
          min_s=float(np.min(v)),
          samples_s=v,
          compile_s=max(compile_s[k] - med[k], 0.0) if k != "torch" else None,
          **({"torch_steps": torch_steps, "scaled_run_s": med["torch_scaled"]} if k == "torch" else {}),
        )
      )
    summary = dict(
      base,
      contender="summary",
      twin=twin,
      lr_jax_s=med["lr_jax"],
      lr_jax_closure_s=med["lr_jax_closure"],
      optax_s=med.get("optax"),
      torch_scaled_s=med.get("torch_scaled"),
      lr_jax_compile_s=max(compile_s["lr_jax"] - med["lr_jax"], 0.0),
      ratio_vs_optax=med["lr_jax_closure"] / med["optax"] if "optax" in med else None,
      ratio_argument_vs_optax=med["lr_jax"] / med["optax"] if "optax" in med else None,
      speedup_vs_torch=med["torch_scaled"] / med["lr_jax"] if "torch_scaled" in med else None,
    )
    emit(summary)
    rows.append(summary)
  return rows, markdown(rows, T, torch_steps)


def markdown(rows, T, torch_steps) -> str:
  nan = float("nan")
  header = [
    "schedule",
    "lr_jax ms (argument)",
    "compile ms",
    "lr_jax ms (closure)",
    "Optax ms (closure)",
    "closure: lr_jax / Optax",
    "PyTorch twin",
    "PyTorch ms (scaled)",
    "x faster than PyTorch",
  ]
  body = [
    [
      r.get("case", r["schedule"]),
      fmt_ms(r["lr_jax_s"]),
      fmt_ms(r["lr_jax_compile_s"]),
      fmt_ms(r["lr_jax_closure_s"]),
      fmt_ms(r["optax_s"] or nan),
      fmt_ratio(r["ratio_vs_optax"] or nan),
      r["twin"],
      fmt_ms(r["torch_scaled_s"] or nan),
      "n/a" if r["speedup_vs_torch"] is None else f"{r['speedup_vs_torch']:.0f}",
    ]
    for r in rows
  ]
  note = (
    f"Median ms for a {T:,}-step trajectory. PyTorch's `scheduler.step(); get_last_lr()` loop ran {torch_steps:,} steps, "
    f'scaled x{T / torch_steps:g}; "x faster" compares it with the argument form. Argument: the schedule is an argument of the '
    "jitted function (its hyperparameters are runtime values: new values reuse the compiled program, and can be vmapped). "
    "Closure: the schedule is closed over, so XLA folds its hyperparameters as constants, as with Optax's closures; "
    "the Optax ratio compares like with like. Optax: `jit(vmap(schedule))` of its nearest equivalent (none for some schedules)."
  )
  return "### Schedules\n\n" + md_table(header, body) + "\n\n" + note + "\n"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  ap.add_argument("--only", default=None, help="comma-separated substrings of the case names to run")
  args = ap.parse_args(argv)
  _, md = run(args.mode, args.only)
  print(md)


if __name__ == "__main__":
  main()
