"""One optimizer step on float32 parameters: lr_jax's ``update_step`` against Optax and PyTorch.

Cases: adam, adamw, rmsprop, adagrad, sgd with momentum; 1M / 10M / 50M parameters, as one leaf and
as 200 equal leaves. Contenders, interleaved round-robin in one process:

* ``roofline``: the best in-place read-modify-write stream measured in the same case
  (``torch`` ``x.add_(y, alpha=a)`` and a donated ``jax.jit(x + a * y)``, 12 bytes per element);
  the roofline time of an optimizer is its minimal traffic (read p, g and each moment, write p and
  each moment once: Adam 28 bytes per parameter, the others 20) divided by that bandwidth.
* ``lr_jax``: ``optimizers.update_step(tx)`` (jit of update + apply_updates, params and state donated).
* ``optax_donated``: Optax's optimizer in the same donated jit; ``optax_jit``: the same without
  donation (fresh output buffers each step, the way most code calls it).
* ``torch_foreach`` / ``torch_fused``: ``torch.optim.X(..., foreach=True)`` / ``fused=True``
  (RMSprop has no fused kernel).

Per case it also records the compiled program of ``update_step`` (XLA's ``bytes accessed`` per
parameter and the number of parameter-sized fusions), which is what limits it on CPU.
"""

from __future__ import annotations

import argparse
import gc
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


def _torch_sync():
  if torch is not None and torch.cuda.is_available():
    torch.cuda.synchronize()


LR = 1e-3

# name -> (lr_jax, optax, torch class and kwargs, minimal bytes per float32 parameter)
OPTIMIZERS = {
  "adam": (lambda: O.adam(LR), lambda: optax.adam(LR), ("Adam", {}), 28),
  "adamw": (
    lambda: O.adamw(LR, weight_decay=1e-2),
    lambda: optax.adamw(LR, weight_decay=1e-2),
    ("AdamW", {"weight_decay": 1e-2}),
    28,
  ),
  "rmsprop": (lambda: O.rmsprop(LR), lambda: optax.rmsprop(LR, decay=0.99, eps=1e-8), ("RMSprop", {}), 20),
  "adagrad": (
    lambda: O.adagrad(LR),
    lambda: optax.adagrad(LR, initial_accumulator_value=0.0, eps=1e-10),
    ("Adagrad", {}),
    20,
  ),
  "sgd_momentum": (
    lambda: O.sgd(LR, momentum=0.9),
    lambda: optax.sgd(LR, momentum=0.9),
    ("SGD", {"momentum": 0.9}),
    20,
  ),
}

MODES = {
  # (sizes, leaf counts, optimizers, min repeats, time budget per case in s)
  "smoke": ([10_000], [1, 8], ["adam"], 2, 0.0),
  "quick": ([10_000_000], [1, 200], list(OPTIMIZERS), 7, 3.0),
  "full": ([1_000_000, 10_000_000, 50_000_000], [1, 200], list(OPTIMIZERS), 11, 6.0),
}


def _split(n: int, leaves: int) -> list[int]:
  base = n // leaves
  return [base + (1 if i < n - base * leaves else 0) for i in range(leaves)]


def _jax_tree(sizes, value):
  return {f"l{i:03d}": jnp.full((s,), value, jnp.float32) for i, s in enumerate(sizes)}


def _plain_step(tx):
  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  return step


class _Carry:
  """A donated step function with its (params, state) carried from call to call."""

  def __init__(self, step, params, state, grads):
    self.step, self.params, self.state, self.grads = step, params, state, grads

  def __call__(self):
    self.params, self.state = self.step(self.params, self.state, self.grads)
    jax.block_until_ready(self.params)


def _xla_profile(step, params, state, grads, n):
  """Bytes accessed per parameter and parameter-sized fusions of the compiled step (XLA's view)."""
  compiled = step.lower(params, state, grads).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  entry = compiled.as_text().split("\nENTRY", 1)[-1]
  big = sum(1 for line in entry.splitlines() if " fusion(" in line and "[" in line and _is_big(line, n))
  return float(cost.get("bytes accessed", float("nan"))) / n, big


def fusion_report(opt_name: str, n: int = 1_000_000) -> str:
  """What XLA compiles ``update_step`` to: each parameter-sized fusion, its parameter-sized reads and writes."""
  import re

  tx = OPTIMIZERS[opt_name][0]()
  p = {"w": jnp.ones((n,), jnp.float32)}
  g = {"w": jnp.full((n,), 0.01, jnp.float32)}
  text = O.update_step(tx).jitted.lower(p, tx.init(p), g).compile().as_text()
  entry = text.split("\nENTRY", 1)[-1].split("\n}", 1)[0]
  shapes, parts = {}, []
  for line in entry.splitlines():
    # The shape is one array (CPU: one output per loop fusion) or a tuple (GPU: multi-output fusions).
    m = re.match(r"\s*(?:ROOT )?%(\S+) = (\([^=]*?\)|\S+?)(?:\{[^}]*\})? (\w[\w-]*)\((.*?)\)", line)
    if not m:
      continue
    name, shape, op, args = m.groups()
    shapes[name] = shape
    if op == "fusion" and f"[{n}]" in shape:
      reads = [
        a.strip().lstrip("%") for a in args.split(",") if f"[{n}]" in shapes.get(a.strip().lstrip("%"), "")
      ]
      writes = shape.count(f"[{n}]")
      parts.append(f"{len(reads)} reads + {writes} write{'s' if writes > 1 else ''}")
  total = sum(int(x.split()[0]) + int(x.split()[3]) for x in parts)
  return (
    f"`update_step({opt_name})` compiles to {len(parts)} parameter-sized fusions ({'; '.join(parts)}): "
    f"{4 * total} bytes per float32 parameter, against {OPTIMIZERS[opt_name][3]} for a single pass."
  )


def _is_big(line: str, n: int) -> bool:
  out = line.split(" = ", 1)[-1].split(" fusion(", 1)[0]
  return f"[{n}]" in out


def _torch_case(cls_name, kwargs, sizes, fused, device):
  cls = getattr(torch.optim, cls_name)
  params = [torch.nn.Parameter(torch.ones(s, device=device)) for s in sizes]
  for p in params:
    p.grad = torch.full((p.numel(),), 0.01, device=device)
  try:
    opt = cls(params, lr=LR, **kwargs, **({"fused": True} if fused else {"foreach": True}))
    opt.step()
  except (RuntimeError, TypeError, ValueError) as e:
    log(f"  torch {cls_name} fused={fused}: {e}")
    return None

  def step():
    opt.step()
    _torch_sync()

  return step


def _roofline_fns(n, device):
  fns = {}
  if device is not None:
    x, y = torch.ones(n, device=device), torch.full((n,), 1e-3, device=device)

    def torch_rmw():
      x.add_(y, alpha=-0.5)
      _torch_sync()

    fns["roofline_torch"] = torch_rmw
  axpy = jax.jit(lambda x, y: x - 0.5 * y, donate_argnums=0)
  box = [jnp.ones(n), jnp.full((n,), 1e-3)]

  def jax_rmw():
    box[0] = axpy(box[0], box[1])
    box[0].block_until_ready()

  fns["roofline_jax"] = jax_rmw
  return fns


def bench_case(opt_name, n, leaves, repeats, budget=0.0):
  make_lr, make_optax, (torch_cls, torch_kw), ideal_bytes = OPTIMIZERS[opt_name]
  sizes = _split(n, leaves)
  grads = _jax_tree(sizes, 0.01)
  fns, compile_s = {}, {}

  tx = make_lr()
  step = O.update_step(tx)
  p0 = _jax_tree(sizes, 1.0)
  fns["lr_jax"] = _Carry(step, p0, tx.init(p0), grads)
  otx = make_optax()
  p1 = _jax_tree(sizes, 1.0)
  fns["optax_donated"] = _Carry(jax.jit(_plain_step(otx), donate_argnums=(0, 1)), p1, otx.init(p1), grads)
  p2 = _jax_tree(sizes, 1.0)
  fns["optax_jit"] = _Carry(jax.jit(_plain_step(otx)), p2, otx.init(p2), grads)
  device = torch_device(torch)
  if device is not None:
    for label, fused in (("torch_foreach", False), ("torch_fused", True)):
      f = _torch_case(torch_cls, torch_kw, sizes, fused, device)
      if f is not None:
        fns[label] = f
  fns.update(_roofline_fns(n, device))

  for name, f in fns.items():
    compile_s[name] = first_call(f)
  samples = interleave(fns, repeats, budget_s=budget, max_repeats=51)
  med = {k: median(v) for k, v in samples.items()}
  compile_s = {k: max(v - med[k], 0.0) for k, v in compile_s.items()}
  bw = {k: 12.0 * n / med[k] for k in ("roofline_torch", "roofline_jax") if k in med}
  roof_bw = max(bw.values())
  roof_s = ideal_bytes * n / roof_bw
  xla_bytes, xla_fusions = (float("nan"), -1)
  if leaves == 1:
    xla_bytes, xla_fusions = _xla_profile(step.jitted, fns["lr_jax"].params, fns["lr_jax"].state, grads, n)
  base = {"name": f"optimizer/{opt_name}/{n}/{leaves}", "optimizer": opt_name, "params": n, "leaves": leaves}
  for k, v in samples.items():
    rec = dict(
      base,
      contender=k,
      run_s=med[k],
      min_s=float(np.min(v)),
      samples_s=v,
      compile_s=compile_s[k] if k.startswith(("lr_jax", "optax")) else None,
    )
    if k.startswith("roofline"):
      rec["gb_per_s"] = bw[k] / 1e9
    emit(rec)
  summary = dict(
    base,
    contender="summary",
    roofline_s=roof_s,
    roofline_gb_per_s=roof_bw / 1e9,
    ideal_bytes_per_param=ideal_bytes,
    xla_bytes_per_param=xla_bytes,
    xla_param_sized_fusions=xla_fusions,
    **{f"{k}_s": med[k] for k in med},
    frac_roofline=roof_s / med["lr_jax"],
    lr_jax_compile_s=compile_s["lr_jax"],
    speedup_vs_optax_donated=med["optax_donated"] / med["lr_jax"],
    vs_torch_fused=med["lr_jax"] / med["torch_fused"] if "torch_fused" in med else None,
  )
  emit(summary)
  del fns
  gc.collect()
  return summary


def run(mode: str = "quick") -> tuple[list[dict], str]:
  sizes, leaf_counts, names, repeats, budget = MODES[mode]
  rows = []
  for n in sizes:
    for name in names:
      for leaves in leaf_counts:
        log(f"optimizers: {name} n={n} leaves={leaves}")
        rows.append(bench_case(name, n, leaves, repeats, budget))
  profile = "XLA's program (1M parameters, one leaf):\n\n" + "\n".join(
    "- " + fusion_report(name) for name in names
  )
  emit({"name": "optimizer/xla_profile", "contender": "profile", "text": profile})
  return rows, markdown(rows) + "\n" + profile + "\n"


def markdown(rows: list[dict]) -> str:
  one = {(r["optimizer"], r["params"]): r for r in rows if r["leaves"] == 1}
  header = [
    "optimizer",
    "params",
    "leaves",
    "roofline ms",
    "lr_jax ms",
    "of roofline",
    "optax donated ms",
    "x optax donated",
    "optax jit ms",
    "torch foreach ms",
    "torch fused ms",
    "lr_jax / torch fused",
    "200 leaves / 1 leaf",
    "XLA B/param",
    "lr_jax compile ms",
  ]
  body = []
  for r in rows:
    ref = one.get((r["optimizer"], r["params"]))
    leaf_ratio = r["lr_jax_s"] / ref["lr_jax_s"] if (ref is not None and r["leaves"] != 1) else float("nan")
    body.append(
      [
        r["optimizer"],
        f"{r['params'] / 1e6:g}M",
        r["leaves"],
        fmt_ms(r["roofline_s"]),
        fmt_ms(r["lr_jax_s"]),
        fmt_ratio(r["frac_roofline"]),
        fmt_ms(r["optax_donated_s"]),
        fmt_ratio(r["speedup_vs_optax_donated"]),
        fmt_ms(r["optax_jit_s"]),
        fmt_ms(r.get("torch_foreach_s", float("nan"))),
        fmt_ms(r.get("torch_fused_s", float("nan"))),
        fmt_ratio(r["vs_torch_fused"] if r["vs_torch_fused"] is not None else float("nan")),
        fmt_ratio(leaf_ratio),
        ""
        if r["xla_bytes_per_param"] != r["xla_bytes_per_param"]
        else f"{r['xla_bytes_per_param']:.0f} ({r['ideal_bytes_per_param']})",
        fmt_ms(r.get("lr_jax_compile_s", float("nan"))),
      ]
    )
  note = (
    "Median ms per step. Roofline: the optimizer's minimal traffic (Adam/AdamW 28 B per float32 parameter, the others 20) "
    "at the bandwidth of an in-place read-modify-write stream measured in the same case. "
    "XLA B/param: bytes accessed by the compiled `update_step` per parameter (minimum in parentheses)."
  )
  return "### Optimizer step\n\n" + md_table(header, body) + "\n\n" + note + "\n"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--mode", choices=list(MODES), default="quick")
  args = ap.parse_args(argv)
  _, md = run(args.mode)
  print(md)


if __name__ == "__main__":
  main()
