"""``lr-jax search``: :func:`lr_jax.search` on a built-in task, from the command line.

Registered in ``lr_jax.cli`` (``add_parser``); errors are ``ValueError``s, which ``lr-jax`` prints as
one line (exit code 2).

A ``--space`` option is ``NAME=SPEC``: ``log:LO:HI`` (log-uniform), ``uniform:LO:HI``,
``int:LO:HI`` (whole numbers), ``a,b,c`` (categorical) or one number (fixed). ``lr`` is the learning
rate (required); ``wd`` is short for ``weight_decay``; any other name must be a numeric keyword of
the optimizer (``momentum``, ``b1``, ``b2``, ``eps``, ...).
"""

from __future__ import annotations

import inspect
import json
import math
import os

import numpy as np

from lr_jax import optimizers, spaces, tasks

__all__ = ["add_parser", "parse_space", "run"]

METHODS = ("random", "halving", "pbt")
ALIASES = {"wd": "weight_decay", "learning_rate": "lr"}
_KINDS = {"log": spaces.log_uniform, "uniform": spaces.uniform, "int": spaces.integer}


def add_parser(sub, task_options) -> None:
  """Adds the ``search`` subcommand to ``sub`` (argparse subparsers); ``task_options(p, steps)``
  adds the shared ``--task --optimizer --steps --seed``."""
  p = sub.add_parser("search", help="random search, successive halving or PBT on a built-in task")
  task_options(p, default_steps=200)
  p.add_argument("--method", choices=METHODS, default="random")
  p.add_argument(
    "--space",
    action="append",
    required=True,
    metavar="NAME=SPEC",
    help="a dimension: lr=log:1e-4:1, momentum=uniform:0.8:0.99, wd=0,1e-4 (choices), b1=0.9 (fixed); "
    "repeat for each hyperparameter",
  )
  p.add_argument("--samples", type=int, default=16, help="trials (PBT: population size); default 16")
  p.add_argument("--sampler", choices=spaces.SAMPLERS, default="random")
  p.add_argument("--eta", type=int, help="halving: keep the best 1/eta at each rung (default 3)")
  p.add_argument("--min-steps", type=int, help="halving: steps of the first rung")
  p.add_argument("--interval", type=int, help="PBT: steps between exploit/explore rounds")
  p.add_argument("--out", help="directory for search.json and search.png")
  p.set_defaults(run=run)


def _number(text: str, what: str):
  try:
    v = float(text)
  except ValueError:
    raise ValueError(f"--space {what}: {text!r} is not a number") from None
  if not math.isfinite(v):
    raise ValueError(f"--space {what}: {text!r} is not a finite number")
  return int(v) if v.is_integer() and "." not in text and "e" not in text.lower() else v


def parse_space(items: list[str], optimizer) -> dict:
  """``{name: dimension}`` from ``--space NAME=SPEC`` options, names checked against ``optimizer``.

  Examples:
    >>> space = parse_space(["lr=log:1e-4:1", "wd=0,1e-4", "momentum=0.9"], optimizers.sgd)
    >>> print(space)
    {'lr': LogUniform(low=0.0001, high=1.0), 'weight_decay': [0, 0.0001], 'momentum': 0.9}
  """
  names = [p.name for p in inspect.signature(optimizer).parameters.values()][1:]  # after learning_rate
  space = {}
  for item in items:
    name, sep, spec = item.partition("=")
    name = ALIASES.get(name.strip(), name.strip())
    if not sep or not name or not spec:
      raise ValueError(f"--space must be NAME=SPEC (e.g. lr=log:1e-4:1), got {item!r}")
    if name != "lr" and name not in names:
      raise ValueError(
        f"--space {item!r}: {name!r} is not a hyperparameter of the optimizer (lr, {', '.join(names)})"
      )
    if name in space:
      raise ValueError(f"--space {item!r}: {name!r} is given twice")
    kind, colon, rest = spec.partition(":")
    if colon:
      if kind not in _KINDS:
        raise ValueError(f"--space {item!r}: unknown kind {kind!r} (log:LO:HI, uniform:LO:HI, int:LO:HI)")
      bounds = rest.split(":")
      if len(bounds) != 2:
        raise ValueError(f"--space {item!r}: {kind} needs two bounds, {kind}:LO:HI")
      lo, hi = (_number(b, repr(item)) for b in bounds)
      space[name] = _KINDS[kind](lo, hi)
    elif "," in spec:
      space[name] = [_number(v, repr(item)) for v in spec.split(",")]
    else:
      space[name] = _number(spec, repr(item))
  if "lr" not in space:
    raise ValueError(f"--space must give the learning rate, e.g. --space lr=log:1e-4:1, got {items}")
  return space


def _optimizer_fn(name: str):
  """``--optimizer``: ``sgd`` is SGD with momentum 0.9 unless the space sets ``momentum``."""
  return optimizers.adam if name == "adam" else optimizers.sgd


def _make_optimizer(fn, name: str):
  base = {"momentum": 0.9} if name == "sgd" else {}

  def optimizer(h):
    return fn(h["lr"], **{**base, **{k: v for k, v in h.items() if k != "lr"}})

  return optimizer


def _check_int(flag: str, v, low: int = 1):
  if v is not None and v < low:
    raise ValueError(f"{flag} must be >= {low}, got {v}")
  return v


def _fmt(v) -> str:
  return f"{v:.4g}" if isinstance(v, float) else str(v)


def report(res, task, space: dict, grid_steps: int) -> str:
  """The ranked table (best first, at most 10 rows) and a summary line."""
  names = list(space)
  metric = task.metric.replace("_", " ")
  rows = sorted((r for r in res.table() if r["rank"]), key=lambda r: r["rank"])
  lines = ["rank  " + "  ".join(f"{n:>12}" for n in names) + f"  {metric:>14}  {'steps':>6}"]
  for r in rows[:10]:
    lines.append(
      f"{r['rank']:>4}  "
      + "  ".join(f"{_fmt(r[n]):>12}" for n in names)
      + f"  {r[res.key]:>14.4f}  {r['steps']:>6}"
    )
  invalid = len(res.configs) - len(rows)
  if invalid:
    lines.append(f"({invalid} trial(s) diverged)")
  if rows:
    best = rows[0]
    better = "highest" if res.mode == "max" else "lowest"
    lines.append(
      f"best: {', '.join(f'{n}={_fmt(best[n])}' for n in names)} ({better} {metric}: {best[res.key]:.4f}); "
      f"steps trained {res.steps_trained} (every trial to the end: {grid_steps})"
    )
  else:
    lines.append("no trial finished with a finite score")
  return "\n".join(lines)


def run(args) -> int:
  """Runs ``lr-jax search``; returns the exit code."""
  import lr_jax

  fn = _optimizer_fn(args.optimizer)
  space = parse_space(args.space, fn)
  for flag, v in (("--samples", args.samples), ("--steps", args.steps), ("--eta", args.eta),
                  ("--min-steps", args.min_steps), ("--interval", args.interval)):  # fmt: skip
    _check_int(flag, v, 2 if flag == "--eta" else 1)
  _check_int("--seed", args.seed, 0)
  given = {"eta": args.eta, "min_steps": args.min_steps, "interval": args.interval}
  wrong = [k for k, v in given.items() if v is not None and k not in _OPTIONS[args.method]]
  if wrong:
    raise ValueError(f"--{wrong[0].replace('_', '-')} is not an option of --method {args.method}")
  out = None
  if args.out:
    out = args.out
    try:
      os.makedirs(out, exist_ok=True)
    except OSError as e:
      raise ValueError(f"cannot create --out directory {out!r}: {e.strerror or e}") from None
  task = tasks.make(args.task, seed=args.seed)
  mode = "max" if "accuracy" in task.metric else "min"
  res = lr_jax.search(
    task.loss_fn, task.params, task.batches, optimizer=_make_optimizer(fn, args.optimizer), space=space,
    num_steps=args.steps, method=args.method, num_samples=args.samples, sampler=args.sampler, seed=args.seed,
    eval_fn=task.eval_fn, eval_mode=mode, keep_params=False, progress=True,
    **{k: v for k, v in given.items() if v is not None},
  )  # fmt: skip
  text = report(res, task, space, len(res.configs) * args.steps)
  print(f"lr-jax search: {args.method} on {args.task} ({args.optimizer}), {len(res.configs)} trials, "
        f"{args.steps} steps, seed {args.seed}")  # fmt: skip
  print(text)
  if out:
    path = os.path.join(out, "search.json")
    best = res.best() if np.any(res.valid) else None
    doc = {
      "method": args.method, "task": args.task, "optimizer": args.optimizer, "metric": task.metric,
      "mode": res.mode, "num_steps": args.steps, "seed": args.seed, "sampler": args.sampler,
      "space": args.space, "steps_trained": int(res.steps_trained), "best": best, "trials": res.table(),
    }  # fmt: skip
    with open(path, "w", encoding="utf-8") as f:
      json.dump(doc, f, indent=1, default=_json_default)
    print(f"wrote {path}")
    _figure(res, task, os.path.join(out, "search.png"))
  return 0


_OPTIONS = {"random": (), "halving": ("eta", "min_steps"), "pbt": ("interval",)}


def _json_default(v):
  if isinstance(v, np.generic):
    return v.item()
  raise TypeError(f"not JSON: {v!r}")


def _figure(res, task, path: str):
  import matplotlib

  if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from lr_jax import plot

  axes = plot.search(res, metric=task.metric.replace("_", " "))
  fig = np.ravel(axes)[0].figure
  if fig.get_layout_engine() is None:
    fig.set_layout_engine("constrained")
  try:
    fig.savefig(path, dpi=100)
  finally:
    plt.close(fig)
  print(f"wrote {path}")
