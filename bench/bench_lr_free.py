"""One step of the learning-rate-free and schedule-free optimizers, against lr_jax's Adam and the references.

Float32 parameters, 1M and 10M, as one leaf. Contenders, interleaved round-robin in one process:

* ``lr_jax_adam``: ``optimizers.update_step(optimizers.adam(1e-3))``, the yardstick (target: <= 1.2x);
* ``lr_jax_<name>``: ``optimizers.update_step(optimizers.<name>(...))`` (jit of update + apply_updates,
  params and state donated);
* ``optax_<name>``: ``optax.contrib``'s version in the same donated jit, where Optax has one;
* ``torch_<name>_1t`` / ``torch_<name>``: the reference package's ``step()`` with
  ``torch.set_num_threads(1)`` and with PyTorch's default thread count (its default ``foreach=True``).

Prints one JSON line per contender and case (``bench/_common.emit``) and a Markdown table on stderr.
Usage: ``python bench/bench_lr_free.py [--quick] [--sizes 1000000 10000000]``. Other methods are added
by appending to ``CASES``.
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
from _common import emit, first_call, fmt_ms, fmt_ratio, interleave, log, md_table, median

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


def _torch(make, n, threads):
  p = torch.nn.Parameter(torch.ones(n))
  p.grad = torch.full((n,), 0.01)
  opt = make([p])
  default = torch.get_num_threads()

  def step():
    torch.set_num_threads(threads or default)
    try:
      opt.step()
    finally:
      torch.set_num_threads(default)

  return step


def bench(names, sizes, repeats, budget):
  rows = []
  for n in sizes:
    for name in names:
      make_lr, make_optax, make_torch = CASES[name]
      fns = {"lr_jax_adam": _lr_jax(O.adam(1e-3), n), f"lr_jax_{name}": _lr_jax(make_lr(), n)}
      if make_optax is not None:
        with jax.numpy_dtype_promotion("standard"):
          fns[f"optax_{name}"] = _optax(make_optax(), n)
      if torch is not None and make_torch is not None:
        try:
          fns[f"torch_{name}_1t"] = _torch(make_torch, n, 1)
          fns[f"torch_{name}"] = _torch(make_torch, n, 0)
        except ImportError as e:  # the reference package is the parity extra
          log(f"  {name}: no reference ({e})")
      compile_s = {k: first_call(f) for k, f in fns.items()}
      samples = interleave(fns, repeats, budget_s=budget, max_repeats=51)
      med = {k: median(v) for k, v in samples.items()}
      for k, v in samples.items():
        emit(
          {
            "name": f"lr_free/{name}/{n}",
            "optimizer": name,
            "params": n,
            "contender": k,
            "run_s": med[k],
            "min_s": float(np.min(v)),
            "compile_s": max(compile_s[k] - med[k], 0.0) if not k.startswith("torch") else None,
            "torch_threads": (1 if k.endswith("_1t") else torch.get_num_threads())
            if k.startswith("torch")
            else None,
          }
        )
      ours = med[f"lr_jax_{name}"]
      rows.append(
        [
          name,
          f"{n:,}",
          fmt_ms(ours),
          fmt_ratio(ours / med["lr_jax_adam"]),
          fmt_ms(med.get(f"optax_{name}", float("nan"))),
          fmt_ms(med.get(f"torch_{name}_1t", float("nan"))),
          fmt_ms(med.get(f"torch_{name}", float("nan"))),
        ]
      )
  header = [
    "optimizer",
    "params",
    "lr_jax ms",
    "/ lr_jax adam",
    "optax.contrib ms",
    "torch 1 thread ms",
    "torch ms",
  ]
  log(md_table(header, rows))
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="10k parameters, few repeats (a smoke run)")
  parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
  parser.add_argument("--only", nargs="*", default=list(CASES), choices=list(CASES))
  args = parser.parse_args(argv)
  sizes, repeats, budget = ([10_000], 3, 0.0) if args.quick else (args.sizes, 11, 4.0)
  bench(args.only, sizes, repeats, budget)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
