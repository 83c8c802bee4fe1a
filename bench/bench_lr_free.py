"""One step of the learning-rate-free and schedule-free optimizers, against lr_jax's Adam and the references.

Float32 parameters, 1M and 10M, as one leaf. Contenders, interleaved round-robin in one process:

* ``lr_jax_adam``: ``optimizers.update_step(optimizers.adam(1e-3))``, the yardstick (target: <= 1.2x);
* ``lr_jax_<name>``: ``optimizers.update_step(optimizers.<name>(...))`` (jit of update + apply_updates,
  params and state donated);
* ``optax_<name>``: ``optax.contrib``'s version in the same donated jit, where Optax has one;
* ``torch_<name>_1t`` / ``torch_<name>``: the reference package's ``step()`` with
  ``torch.set_num_threads(1)`` and with PyTorch's default thread count (its default ``foreach=True``).

Prints one JSON line per contender and case (``bench/_common.emit``), plus a summary line per case,
and a Markdown table on stderr; ``bench/run.py`` runs it as ``lr_free`` (``run(mode)``, ``markdown``,
``goal``). Usage: ``python bench/bench_lr_free.py [--mode smoke|quick|full] [--sizes 1000000 10000000]
[--only dadapt_adam ...]``. Other methods are added by appending to ``CASES``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import emit, first_call, fmt_ms, fmt_ratio, interleave, log, md_table, median, torch_device

from lr_jax import optimizers as O

try:
  import torch
except ImportError:  # pragma: no cover - torch is the parity extra
  torch = None


def _schedulefree(cls_name, **kw):
  def make(params):
    import schedulefree

    opt = getattr(schedulefree, cls_name)(params, **kw)
    opt.train()
    return opt

  return make


# name -> (lr_jax optimizer, optax optimizer or None, torch reference factory params -> optimizer, or None)
CASES = {
  "schedule_free_sgd": (
    lambda: O.schedule_free_sgd(1.0),
    lambda: optax.contrib.schedule_free_sgd(1.0),
    _schedulefree("SGDScheduleFree", lr=1.0),
  ),
  "schedule_free_adamw": (
    lambda: O.schedule_free_adamw(0.0025, weight_decay=0.01),
    lambda: optax.contrib.schedule_free_adamw(0.0025, weight_decay=0.01),
    _schedulefree("AdamWScheduleFree", lr=0.0025, weight_decay=0.01),
  ),
  "schedule_free_radam": (
    lambda: O.schedule_free_radam(0.0025),
    None,
    _schedulefree("RAdamScheduleFree", lr=0.0025),
  ),
}


def _reference(module, cls_name, **kw):
  """A factory params -> the reference package's optimizer (prodigyopt, dadaptation, dog)."""

  def make(params):
    import importlib

    return getattr(importlib.import_module(module), cls_name)(params, **kw)

  return make


CASES.update(
  {
    "prodigy": (lambda: O.prodigy(), lambda: optax.contrib.prodigy(1.0), _reference("prodigyopt", "Prodigy")),
    "dadapt_adam": (
      lambda: O.dadapt_adam(),
      lambda: optax.contrib.dadapt_adamw(1.0),
      _reference("dadaptation", "DAdaptAdam"),
    ),
    "dadapt_sgd": (lambda: O.dadapt_sgd(), None, _reference("dadaptation", "DAdaptSGD")),
    "dadapt_adagrad": (lambda: O.dadapt_adagrad(), None, _reference("dadaptation", "DAdaptAdaGrad")),
    "dog": (lambda: O.dog(), lambda: optax.contrib.dog(), _reference("dog", "DoG")),
    "ldog": (lambda: O.ldog(), None, _reference("dog", "LDoG")),
  }
)


class _Carry:
  """A donated step function with its (params, state) carried from call to call."""

  def __init__(self, step, params, state, grads):
    self.step, self.params, self.state, self.grads = step, params, state, grads

  def __call__(self):
    self.params, self.state = self.step(self.params, self.state, self.grads)
    jax.block_until_ready(self.params)


def _lr_jax(tx, n):
  p = {"w": jnp.ones((n,), jnp.float32)}
  return _Carry(O.update_step(tx), p, tx.init(p), {"w": jnp.full((n,), 0.01, jnp.float32)})


def _optax(tx, n):
  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  p = {"w": jnp.ones((n,), jnp.float32)}
  state = jax.tree.map(jnp.copy, tx.init(p))  # no leaf shares a buffer (donation)
  return _Carry(jax.jit(step, donate_argnums=(0, 1)), p, state, {"w": jnp.full((n,), 0.01, jnp.float32)})


def _torch(make, n, threads, device="cpu"):
  p = torch.nn.Parameter(torch.ones(n, device=device))
  p.grad = torch.full((n,), 0.01, device=device)
  opt = make([p])
  default = torch.get_num_threads()
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def step():
    torch.set_num_threads(threads or default)
    try:
      opt.step()
      sync()
    finally:
      torch.set_num_threads(default)

  return step


# mode -> (sizes, repeats, budget_s per case, optax contenders?, warm-up rounds, methods (None: all))
MODES = {
  "smoke": ([1_000], 1, 0.0, False, 0, ("dadapt_adam",)),
  "quick": ([1_000_000, 10_000_000], 7, 2.0, True, 2, None),
  "full": ([1_000_000, 10_000_000], 11, 4.0, True, 2, None),
}
GOAL_VS_ADAM = 1.2


def bench(names, sizes, repeats, budget, with_optax=True, warmup=2):
  """Measures every case; returns one summary dict per (method, size)."""
  rows = []
  for n in sizes:
    adam = _lr_jax(O.adam(1e-3), n)  # one yardstick per size, interleaved with every case
    adam_compile_s = first_call(adam)
    for name in names:
      make_lr, make_optax, make_torch = CASES[name]
      fns = {"lr_jax_adam": adam, f"lr_jax_{name}": _lr_jax(make_lr(), n)}
      if with_optax and make_optax is not None:
        with jax.numpy_dtype_promotion("standard"):
          fns[f"optax_{name}"] = _optax(make_optax(), n)
      device = torch_device(torch)
      if device is not None and make_torch is not None:
        try:
          if device == "cpu":  # one host thread changes nothing for CUDA kernels
            fns[f"torch_{name}_1t"] = _torch(make_torch, n, 1)
          fns[f"torch_{name}"] = _torch(make_torch, n, 0, device)
        except ImportError as e:  # the reference package is the parity extra
          log(f"  {name}: no reference ({e})")
      compile_s = {k: first_call(f) for k, f in fns.items() if k != "lr_jax_adam"}
      compile_s["lr_jax_adam"] = adam_compile_s
      samples = interleave(fns, repeats, warmup=warmup, budget_s=budget, max_repeats=51)
      med = {k: median(v) for k, v in samples.items()}
      threads = torch.get_num_threads() if torch is not None else None
      base = {"name": f"lr_free/{name}/{n}", "optimizer": name, "params": n}
      for k, v in samples.items():
        emit(
          dict(
            base,
            contender=k,
            run_s=med[k],
            min_s=float(np.min(v)),
            samples_s=v,
            compile_s=max(compile_s[k] - med[k], 0.0) if not k.startswith("torch") else None,
            torch_threads=(1 if k.endswith("_1t") else threads) if k.startswith("torch") else None,
          )
        )
      ours = med[f"lr_jax_{name}"]
      t1, td = med.get(f"torch_{name}_1t"), med.get(f"torch_{name}")
      summary = dict(
        base,
        contender="summary",
        lr_jax_s=ours,
        adam_s=med["lr_jax_adam"],
        vs_adam=ours / med["lr_jax_adam"],
        vs_adam_min=min(samples[f"lr_jax_{name}"]) / min(samples["lr_jax_adam"]),
        optax_s=med.get(f"optax_{name}"),
        torch_1t_s=t1,
        torch_s=td,
        speedup_vs_torch_1t=t1 / ours if t1 else None,
        speedup_vs_torch=td / ours if td else None,
        torch_threads=threads,
        compile_s=max(compile_s[f"lr_jax_{name}"] - ours, 0.0),
      )
      emit(summary)
      rows.append(summary)
  return rows


def markdown(rows) -> str:
  nan = float("nan")
  opt = lambda x: nan if x is None else x
  body = [
    [
      r["optimizer"],
      f"{r['params']:,}",
      fmt_ms(r["lr_jax_s"]),
      fmt_ms(r["adam_s"]),
      fmt_ratio(r["vs_adam"]),
      fmt_ms(opt(r["optax_s"])),
      fmt_ms(opt(r["torch_1t_s"])),
      fmt_ms(opt(r["torch_s"])),
      fmt_ratio(opt(r["speedup_vs_torch_1t"])),
      fmt_ratio(opt(r["speedup_vs_torch"])),
    ]
    for r in rows
  ]
  header = [
    "optimizer",
    "params",
    "lr_jax ms",
    "lr_jax adam ms",
    "/ adam",
    "optax.contrib ms",
    "torch 1 thread ms",
    "torch ms",
    "torch 1t / lr_jax",
    "torch / lr_jax",
  ]
  threads = next((r["torch_threads"] for r in rows if r.get("torch_threads")), "?")
  return (
    "### Learning-rate-free optimizers: one step, float32, one leaf\n\n"
    + md_table(header, body)
    + "\n\nMedians of interleaved rounds, in one process: lr_jax's ``update_step`` (jit of update + "
    "apply_updates, params and state donated) against lr_jax's Adam in the same rounds, Optax's "
    "``optax.contrib`` version in the same donated jit, and the reference package's ``step()`` with "
    f"PyTorch at 1 thread and at its default ({threads} threads). On a CPU these steps are "
    "memory-bound and XLA:CPU fuses one output array per loop, so a step costs at least its number "
    "of whole-array reads and writes: Adam 10 (g, m, v, p read; m, v, p written), D-Adapt Adam 17, "
    "D-Adapt AdaGrad 16, Prodigy 17, D-Adapt SGD 10 (weight decay adds reads of p), Schedule-Free "
    "AdamW 13 (12 without weight decay), Schedule-Free SGD 7, DoG 6 (after its first step); the "
    "global sums of the D-Adapt methods, Prodigy and DoG cost more than their count, as XLA:CPU's "
    "reduction kernels stream memory more slowly than its elementwise loops. The modules' comments "
    "list the passes. The machine is shared: compare ratios within a row.\n"
  )


def goal(rows) -> str:
  """One line for run.py's goals: step time against lr_jax's Adam and the references."""
  big = [r for r in rows if r["params"] >= 1_000_000]
  if not big:
    return ""
  over = [
    f"{r['optimizer']} {r['params'] // 1_000_000}M {r['vs_adam']:.2f}x"
    for r in big
    if r["vs_adam"] > GOAL_VS_ADAM
  ]
  slower = [
    f"{r['optimizer']} {r['params'] // 1_000_000}M ({k})"
    for r in big
    for k, s in (("1 thread", r["speedup_vs_torch_1t"]), ("default threads", r["speedup_vs_torch"]))
    if s is not None and s < 1
  ]
  ratios = [r["vs_adam"] for r in big]
  return (
    f"- Learning-rate-free step at 1M and 10M parameters ({len(big)} cases, issue 13): "
    f"{min(ratios):.2f}-{max(ratios):.2f}x lr_jax's Adam (goal <= {GOAL_VS_ADAM}x: {_ok(not over)}"
    + (f"; over: {', '.join(over)}" if over else "")
    + f"); faster than the reference PyTorch at 1 thread and default threads: {_ok(not slower)}"
    + (f" (slower: {', '.join(slower)})" if slower else "")
    + "."
  )


def _ok(flag: bool) -> str:
  return "**met**" if flag else "**not met**"


def run(mode: str = "quick") -> tuple[list[dict], str]:
  sizes, repeats, budget, with_optax, warmup, names = MODES[mode]
  rows = bench(list(names or CASES), sizes, repeats, budget, with_optax, warmup)
  return rows, markdown(rows)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mode", choices=list(MODES), default="full")
  parser.add_argument("--quick", action="store_true", help="the same as --mode quick")
  parser.add_argument("--sizes", type=int, nargs="*", default=None, help="override the mode's sizes")
  parser.add_argument("--only", nargs="*", default=None, choices=list(CASES))
  args = parser.parse_args(argv)
  mode = "quick" if args.quick else args.mode
  sizes, repeats, budget, with_optax, warmup, names = MODES[mode]
  rows = bench(args.only or list(names or CASES), args.sizes or sizes, repeats, budget, with_optax, warmup)
  log(markdown(rows))
  log(goal(rows))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
