"""The ``lr-jax`` command line (also ``python -m lr_jax``): ``demo``, ``plot``, ``find``, ``sweep``.

Kept short on purpose: the work is done by ``lr_jax.schedules``, ``lr_jax.lr_find``,
``lr_jax.sweep``, ``lr_jax.plot`` and ``lr_jax.tasks``. Bad input exits with code 2 and a one-line
message on stderr (never a traceback); a missing optional dependency exits with code 1.

Examples::

    lr-jax demo --out lr_jax_demo
    lr-jax plot one_cycle peak_value=0.1 total_steps=1000 --out oc.png
    lr-jax plot cosine_annealing init_value=1 total_steps=100 + step_decay init_value=1 step_size=30 --table
    lr-jax find --task digits --optimizer adam --out finder.png
    lr-jax find --task digits --optimizer adam --repeats 4 --val --grid weight_decay=0,1e-4,1e-3
    lr-jax sweep --task digits --schedule one_cycle total_steps=300 --peak 1e-3:1:8 --steps 300 --out sweep
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import lr_jax
from lr_jax import optimizers, schedules, tasks

_RATE_KEYS = ("peak_value", "init_value", "max_value", "value")


class _Parser(argparse.ArgumentParser):
  """argparse, but a usage error is one line on stderr (exit code 2)."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
  """Runs ``lr-jax`` with ``argv`` (default ``sys.argv[1:]``) and returns the exit code.

  Examples:
    >>> main(["plot", "step_decay", "init_value=1", "step_size=2", "--steps", "4", "--table"])
    step  step_decay(init_value=1, step_size=2)
       0  1
       1  1
       2  0.1
       3  0.1
       4  0.01
    0
  """
  parser = _parser()
  try:
    args, extra = parser.parse_known_args(argv)
    if extra and (getattr(args, "command", None) != "plot" or any(t.startswith("-") for t in extra)):
      parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:  # `plot A k=v --table + B k=v`: schedule groups after an option
      args.spec += extra
  except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
    return e.code if isinstance(e.code, int) else 2
  try:
    return args.run(args)
  except (ValueError, OSError) as e:
    print(f"lr-jax {args.command}: error: {_one_line(e)}", file=sys.stderr)
    return 2
  except ImportError as e:
    print(f"lr-jax {args.command}: error: {_one_line(e)}", file=sys.stderr)
    return 1


def _parser() -> argparse.ArgumentParser:
  parser = _Parser(
    prog="lr-jax", description="lr_jax: learning-rate schedules, LR range test and sweeps for JAX."
  )
  parser.add_argument("--version", action="version", version=f"lr-jax {lr_jax.__version__}")
  sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

  p = sub.add_parser("demo", help="tour of lr_jax on built-in data (what `make demo` runs)")
  p.add_argument("--out", default="lr_jax_demo", help="directory for the figures and summary.md")
  p.add_argument(
    "--steps", type=int, default=300, help=f"training steps of each sweep run (at least {_DEMO_MIN_STEPS})"
  )
  p.set_defaults(run=_cmd_demo)

  p = sub.add_parser("plot", help="draw schedules by name: NAME key=value ... [+ NAME key=value ...]")
  p.add_argument("spec", nargs="+", metavar="NAME|key=value|+", help="schedule groups separated by '+'")
  p.add_argument("--steps", type=int, help="plot steps 0..N (default: the largest total_steps, else 1000)")
  p.add_argument("--out", default="schedule.png", help="PNG file to write (default schedule.png)")
  p.add_argument("--table", action="store_true", help="print the rates as text instead of drawing")
  p.set_defaults(run=_cmd_plot)

  p = sub.add_parser("find", help="LR range test on a built-in task")
  _task_options(p, default_steps=100)
  p.add_argument("--min-lr", type=float, default=1e-5)
  p.add_argument("--max-lr", type=float, default=10.0)
  p.add_argument(
    "--repeats", type=int, default=1, help="repeats with different batch orders (suggestion: their median)"
  )
  p.add_argument(
    "--val", action="store_true", help="the curve is the loss on the task's held-out data after each step"
  )
  p.add_argument(
    "--grid",
    metavar="KEY=V1,V2,...",
    help="one ramp per value of an optimizer keyword (e.g. weight_decay=0,1e-4,1e-3): lr_find_grid",
  )
  p.add_argument("--out", help="PNG file for the finder curve (a heat map with --grid)")
  p.set_defaults(run=_cmd_find)

  p = sub.add_parser("sweep", help="train a grid of peak rates of one schedule in one program")
  _task_options(p, default_steps=200)
  p.add_argument("--schedule", nargs="+", required=True, metavar=("NAME", "KEY=VALUE"))
  p.add_argument("--peak", required=True, help="rates LO:HI:N (N log-spaced values)")
  p.add_argument("--out", help="directory for sweep.png and sweep.md")
  p.set_defaults(run=_cmd_sweep)

  from lr_jax import _search_cli

  _search_cli.add_parser(sub, _task_options)
  return parser


def _task_options(p, default_steps: int):
  p.add_argument("--task", choices=tasks.TASKS, default="digits")
  p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="sgd means momentum 0.9")
  p.add_argument("--steps", type=int, default=default_steps)
  p.add_argument("--seed", type=int, default=0)


# --------------------------------------------------------------------------------------------------
# Subcommands (each a few lines; helpers below).


def _cmd_plot(args) -> int:
  configs = [_config(group) for group in _groups(args.spec)]
  scheds = dict(zip(_labels(configs), (schedules.from_config(c) for c in configs)))  # one per group
  steps = _positive("--steps", args.steps if args.steps is not None else _default_steps(configs))
  if args.table:
    print(_rate_table(scheds, steps))
    return 0
  _check_file(args.out)
  ax = _plot().schedules(scheds, steps + 1)
  _save(ax, args.out)
  return 0


def _cmd_find(args) -> int:
  _check_file(args.out)
  _positive("--repeats", args.repeats)
  grid = None if args.grid is None else _find_grid(args.grid, args.optimizer)
  task = tasks.make(args.task, seed=args.seed)
  result = _find(task, args, grid)
  if grid is None:
    print(_find_report(result))
  else:
    print(_grid_report(result))
  if args.out:
    _save(_plot().lr_find(result) if grid is None else _plot().lr_find_grid(result), args.out)
  return 0


def _cmd_sweep(args) -> int:
  out = _out_dir(args.out) if args.out else None
  name, config, key = _sweep_schedule(args.schedule)
  peaks = _peaks(args.peak)
  task = tasks.make(args.task, seed=args.seed)
  result = _run_sweep(task, args, name, config, key, peaks)
  text = _sweep_report(result, task)
  print(text)
  if out:
    _save(_plot().sweep(result, metric=_metric(task)), os.path.join(out, "sweep.png"))
    _write(os.path.join(out, "sweep.md"), f"# lr-jax sweep\n\n{text}\n\n![sweep](sweep.png)\n")
  return 0


def _cmd_demo(args) -> int:
  steps = _at_least("--steps", args.steps, _DEMO_MIN_STEPS)
  out = _out_dir(args.out)
  start = time.perf_counter()
  part1 = _demo_linreg(steps)
  digits = tasks.make("digits")
  part2, finder = _demo_find(digits, steps)
  part3, result, peaks = _demo_sweep(digits, steps)
  _demo_figures(out, finder, result, peaks, steps, _metric(digits))
  _write(os.path.join(out, "summary.md"), _summary(part1, part2, part3, time.perf_counter() - start))
  print(f"\nwrote {os.path.join(out, 'summary.md')} and 3 figures in {time.perf_counter() - start:.1f} s")
  return 0


# --------------------------------------------------------------------------------------------------
# Parsing and checking input.


def _one_line(e: BaseException) -> str:
  return " ".join(str(e).split()) or type(e).__name__


def _groups(tokens: list[str]) -> list[list[str]]:
  """``NAME k=v + NAME k=v`` -> ``[[NAME, k=v], [NAME, k=v]]``."""
  groups, current = [], []
  for tok in [*tokens, "+"]:
    if tok != "+":
      current.append(tok)
      continue
    if not current:
      raise ValueError("empty schedule group: write NAME key=value ... [+ NAME key=value ...]")
    groups.append(current)
    current = []
  return groups


def _value(text: str):
  """``0.1`` -> float, ``[30, 80]`` -> list, ``true`` -> True, ``{"name": ...}`` -> dict, else the string."""
  for parse in (json.loads, ast.literal_eval):
    try:
      return parse(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
      pass
  return text


def _config(group: list[str], required: bool = True) -> dict:
  """``[NAME, k=v, ...]`` -> ``{"name": NAME, k: v, ...}`` (the schedule itself validates the values)."""
  name, *pairs = group
  if "=" in name:
    raise ValueError(f"expected a schedule name before {name!r}; known: {', '.join(_schedule_names())}")
  if name not in _schedule_names():
    raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(_schedule_names())}")
  config = {"name": name}
  for pair in pairs:
    key, sep, text = pair.partition("=")
    if not sep or not key.isidentifier() or not text:
      raise ValueError(f"malformed argument {pair!r} for {name}: expected key=value")
    if key in config:
      raise ValueError(f"{name}: {key!r} given twice")
    config[key] = _value(text)
  params = inspect.signature(getattr(schedules, name)).parameters
  unknown = [k for k in config if k != "name" and k not in params]
  if unknown:
    raise ValueError(f"{name} has no parameter {unknown[0]!r}; it takes {', '.join(params)}")
  if required:
    _check_required(config)
  return config


def _check_required(config: dict):
  """A missing required argument (also of a nested schedule) is a ValueError naming it."""
  name = config.get("name")
  if name not in _schedule_names():
    return  # a nested config with an unknown name: from_config names the problem
  params = inspect.signature(getattr(schedules, name)).parameters
  for k, p in params.items():
    if (
      p.default is inspect.Parameter.empty
      and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
      and k not in config
    ):
      raise ValueError(
        f"{name}: missing required argument {k!r}: write {k}=VALUE (it takes {', '.join(params)})"
      )
  for v in config.values():
    for item in v if isinstance(v, list) else [v]:
      if isinstance(item, dict) and "name" in item:
        _check_required(item)


def _schedule_names() -> list[str]:
  return sorted(n for n in schedules.__all__ if n not in ("Schedule", "from_config"))


def _describe(value) -> str:
  """A config as it was typed: ``warmup(schedule=cosine_annealing(init_value=1, ...), warmup_steps=10)``."""
  if isinstance(value, dict) and "name" in value:
    return (
      f"{value['name']}(" + ", ".join(f"{k}={_describe(v)}" for k, v in value.items() if k != "name") + ")"
    )
  if isinstance(value, list):
    return "[" + ", ".join(_describe(v) for v in value) + "]"
  return str(value)


def _labels(configs: list[dict]) -> list[str]:
  """One label per schedule group, all different: the full config, then ``[2]``, ``[3]`` for repeats."""
  labels, seen = [], {}
  for config in configs:
    label = _describe(config)
    seen[label] = seen.get(label, 0) + 1
    labels.append(label if seen[label] == 1 else f"{label} [{seen[label]}]")
  return labels


def _positive(flag: str, value: int) -> int:
  return _at_least(flag, value, 1)


def _at_least(flag: str, value: int, low: int) -> int:
  if value < low:
    raise ValueError(f"{flag} must be >= {low}, got {flag}={value}")
  return value


def _default_steps(configs: list[dict]) -> int:
  """The largest ``total_steps``, else three cycles of the longest ``cyclic`` schedule, else 1000."""
  totals = [c["total_steps"] for c in configs if isinstance(c.get("total_steps"), (int, float))]
  cycles = []
  for c in configs:
    up, down = c.get("step_size_up", 2000), c.get("step_size_down")
    if c["name"] == "cyclic" and isinstance(up, (int, float)) and isinstance(down, (int, float, type(None))):
      cycles.append(3 * (up + (up if down is None else down)))
  return int(max(totals or cycles or [1000]))


def _peaks(text: str) -> np.ndarray:
  try:
    lo, hi, n = text.split(":")
    lo, hi, n = float(lo), float(hi), int(n)
  except ValueError:
    raise ValueError(f"--peak must be LO:HI:N (e.g. 1e-3:1:8), got --peak={text!r}") from None
  if not (0 < lo <= hi and np.isfinite(hi) and n >= 1):
    raise ValueError(f"--peak needs 0 < LO <= HI and N >= 1, got --peak={text!r}")
  return np.geomspace(lo, hi, n)


def _find_grid(text: str, optimizer: str) -> dict:
  """``--grid KEY=V1,V2,...`` -> ``{KEY: [V1, V2, ...]}``; KEY is a numeric keyword of the optimizer."""
  key, sep, values = text.partition("=")
  key = key.strip()
  params = inspect.signature(_OPTIMIZERS[optimizer]).parameters
  names = [k for k, p in params.items() if k != "learning_rate" and p.kind == p.POSITIONAL_OR_KEYWORD]
  if not sep or not key or not values:
    raise ValueError(f"--grid must be KEY=V1,V2,... (e.g. weight_decay=0,1e-4,1e-3), got --grid={text!r}")
  if key not in names or key in ("nesterov", "amsgrad"):
    numeric = [k for k in names if k not in ("nesterov", "amsgrad")]
    raise ValueError(f"--grid: {optimizer} has no numeric keyword {key!r}; it takes {', '.join(numeric)}")
  try:
    parsed = [float(v) for v in values.split(",")]
  except ValueError:
    raise ValueError(f"--grid values must be numbers separated by commas, got --grid={text!r}") from None
  if not all(np.isfinite(parsed)):
    raise ValueError(f"--grid values must be finite numbers, got --grid={text!r}")
  return {key: parsed}


def _sweep_schedule(tokens: list[str]):
  """``--schedule NAME k=v ...`` -> (name, config without the rate, the key ``--peak`` sets)."""
  config = _config(tokens, required=False)  # --peak supplies the rate
  name = config["name"]
  params = inspect.signature(getattr(schedules, name)).parameters
  key = next((k for k in _RATE_KEYS if k in params), None)
  if key is None:
    raise ValueError(f"--peak cannot set a rate of {name!r}: it has none of {', '.join(_RATE_KEYS)}")
  if key in config:
    raise ValueError(f"--peak sets {name}'s {key}; remove {key}={config[key]} from --schedule")
  _check_required({**config, key: 1.0})
  return name, config, key


def _check_file(path: str | None):
  """Fails early (before any training) if ``path`` cannot be written."""
  if path is None:
    return
  parent = os.path.dirname(os.path.abspath(path))
  if os.path.isdir(path):
    raise ValueError(f"cannot write --out {path!r}: it is a directory")
  if not os.path.isdir(parent):
    raise ValueError(f"cannot write --out {path!r}: directory {parent!r} does not exist")
  if not os.access(parent, os.W_OK):
    raise ValueError(f"cannot write --out {path!r}: directory {parent!r} is not writable")


def _out_dir(path: str) -> str:
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ValueError(f"cannot create --out directory {path!r}: {e.strerror or e}") from None
  if not os.access(path, os.W_OK):
    raise ValueError(f"cannot write --out directory {path!r}: not writable")
  return path


def _write(path: str, text: str):
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


# --------------------------------------------------------------------------------------------------
# Work (thin wrappers around the library).


def _plot():
  import matplotlib

  if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
  from lr_jax import plot

  return plot


def _save(ax, path: str):
  import matplotlib.pyplot as plt

  fig = np.ravel(ax)[0].figure
  if fig.get_layout_engine() is None:  # keeps the axis labels inside the PNG
    fig.set_layout_engine("constrained")
  try:
    fig.savefig(path, dpi=100)
  except OSError as e:  # a path _check_file could not foresee (e.g. under /proc)
    raise ValueError(f"cannot write {path!r}: {e.strerror or e}") from None
  finally:
    plt.close(fig)
  print(f"wrote {path}")


def _rate_table(scheds: dict, steps: int) -> str:
  ts = np.unique(np.linspace(0, steps, min(steps, 10) + 1).round().astype(int))
  names = list(scheds)
  lines = ["step  " + "  ".join(names)]
  for t in ts:
    rates = [float(s(t)) for s in scheds.values()]
    lines.append(f"{t:>4d}  " + "  ".join(f"{r:<{len(n)}.6g}" for r, n in zip(rates, names)).rstrip())
  return "\n".join(lines)


_OPTIMIZERS = {"sgd": optimizers.sgd, "adam": optimizers.adam}


def _optimizer(name: str):
  """``--optimizer``: ``sgd`` is SGD with momentum 0.9 (a ``--grid`` over ``momentum`` overrides it)."""
  if name == "adam":
    return optimizers.adam
  return lambda lr, **kw: optimizers.sgd(lr, **{"momentum": 0.9, **kw})


def _held_out(task_name: str, seed: int):
  """The held-out data of ``tasks.make(task_name, seed=seed)`` (what its ``eval_fn`` scores) as one
  batch for the training loss: linreg's 100 test points, digits' 450 test images."""
  if task_name == "linreg":
    x, y = tasks.linreg_data(seed=1042 + seed)
  else:
    d = tasks.digits_data(seed=seed)
    x, y = d["x_test"], d["y_test"]
  return (jnp.asarray(x)[None], jnp.asarray(y)[None])


def _find(task, args, grid=None):
  import lr_jax

  kw = {
    "optimizer": _optimizer(args.optimizer),
    "min_lr": args.min_lr,
    "max_lr": args.max_lr,
    "num_steps": args.steps,
    "num_repeats": args.repeats,
    "key": jax.random.key(args.seed),
    "val_batches": _held_out(task.name, args.seed) if getattr(args, "val", False) else None,
    "progress": True,
  }
  if grid is None:
    return lr_jax.lr_find(task.loss_fn, task.params, task.batches, **kw)
  return lr_jax.lr_find_grid(task.loss_fn, task.params, task.batches, grid=grid, **kw)


def _grid_report(grid) -> str:
  """One line per value of the grid: its suggestion, the lowest smoothed loss and where it diverged."""
  lines = [f"{grid.name:>14}  {'suggested lr':>12}  {'min smoothed loss':>17}  diverged at lr"]
  for value, row in zip(grid.values, grid.rows):
    finite = row.smoothed_losses[np.isfinite(row.smoothed_losses)]
    low = f"{finite.min():.4f}" if finite.size else "nan"
    where = "-" if row.diverged_at is None else f"{row.lrs[row.diverged_at]:.3e}"
    lines.append(f"{value:>14.4g}  {row.suggestion:>12.3e}  {low:>17}  {where}")
  try:
    best = grid.best()
    lines.append(
      f"lowest smoothed {grid.rows[0].curve}: {grid.name}={best[grid.name]:.4g}, "
      f"suggested learning rate: {best['suggestion']:.3e}"
    )
  except ValueError as e:
    lines.append(_one_line(e))
  return "\n".join(lines)


def _find_report(result) -> str:
  lines = [f"{'learning rate':>14}  {'smoothed loss':>13}"]
  stop = len(result.lrs) if result.diverged_at is None else result.diverged_at + 1
  for i in np.unique(np.linspace(0, stop - 1, 8).round().astype(int)):
    lines.append(f"{result.lrs[i]:>14.3e}  {result.smoothed_losses[i]:>13.4f}")
  where = (
    "did not diverge"
    if result.diverged_at is None
    else f"diverged at lr {result.lrs[result.diverged_at]:.3e}"
  )
  repeats = len(result.repeat_diverged_at)
  if repeats > 1:
    q25, q75 = result.suggestion_band
    where += f"; {repeats} repeats, quartiles of their suggestions {q25:.3e}..{q75:.3e}"
  if result.curve != "training loss":
    lines[0] = f"{'learning rate':>14}  smoothed {result.curve}"
  lines.append(f"{where}; suggested learning rate: {result.suggestion:.3e}")
  return "\n".join(lines)


def _run_sweep(task, args, name, config, key, peaks):
  import lr_jax

  for p in (peaks[0], peaks[-1]):  # a rejected value fails here, eagerly, with the schedule's message
    schedules.from_config({**config, key: float(p)})
  make = _optimizer(args.optimizer)
  return lr_jax.sweep(
    task.loss_fn,
    task.params,
    task.batches,
    optimizer=lambda h: make(schedules.from_config({**config, key: h["peak"]})),
    grid={"peak": [float(p) for p in peaks]},
    num_steps=_positive("--steps", args.steps),
    eval_fn=task.eval_fn,
    eval_mode=_eval_mode(task),
    progress=True,
  )


def _eval_mode(task) -> str:
  """An accuracy is better higher, an error lower."""
  return "max" if "accuracy" in task.metric else "min"


def _metric(task) -> str:
  return task.metric.replace("_", " ")


def _best_line(result, task, describe) -> str:
  if not np.any(result.valid):
    return "no configuration finished with finite losses"
  row = result.best()  # by eval in the sweep's eval_mode: what the figures rank by too
  better = "highest" if result.eval_mode == "max" else "lowest"
  return (
    f"best: {describe(row)} ({better} {_metric(task)}: {row['eval']:.4f}, sweep strategy {result.strategy})"
  )


def _sweep_report(result, task) -> str:
  lines = [f"{'peak':>10}  {'train loss':>10}  {_metric(task)}"]
  for cfg, loss, metric in zip(result.configs, result.train_loss, result.eval):
    lines.append(f"{cfg['peak']:>10.3g}  {loss:>10.4f}  {metric:.4f}")
  note = "train loss: mean loss of the trained parameters over every training batch"
  return "\n".join([*lines, note, _best_line(result, task, lambda c: f"peak {c['peak']:.3g}")])


def _pivot(title: str, values, rows: list[str], cols: list[str]) -> str:
  values = np.asarray(values).reshape(len(rows), len(cols))
  width = max(len(r) for r in rows)
  lines = [f"{title:<{width}}  " + "  ".join(f"{c:>8}" for c in cols)]
  for r, row in zip(rows, values):
    lines.append(f"{r:<{width}}  " + "  ".join(f"{v:>8.4f}" for v in row))
  return "\n".join(lines)


def _sweep_figure(result, peaks, names, metric, path):
  """Left: the training curve of each schedule's best peak rate; right: the score against the rate.
  Both rank by ``result.score()``, as the text's "best:" line does (``result.best()``)."""
  _plot()
  import matplotlib.pyplot as plt

  _, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
  values, key, mode = result.score()
  scores = np.asarray(values, np.float64).reshape(len(names), len(peaks))
  losses = np.asarray(result.losses).reshape(len(names), len(peaks), -1)
  window = min(10, losses.shape[-1])
  best_row = result.best()
  for i, (name, curves, row) in enumerate(zip(names, losses, scores)):
    if not np.any(np.isfinite(row)):
      continue
    best = int(np.nanargmax(row) if mode == "max" else np.nanargmin(row))
    overall = names[best_row["schedule"]] == name and np.isclose(peaks[best], best_row["peak"])
    mean = np.convolve(curves[best], np.ones(window) / window, mode="valid")
    label = f"{name}, peak {peaks[best]:.2g}" + (" (best overall)" if overall else "")
    left.semilogy(np.arange(window - 1, window - 1 + len(mean)), mean, color=f"C{i}", lw=2.5 if overall else 1.2,
                  label=label)  # fmt: skip
    right.semilogx(peaks, row, "o-", color=f"C{i}", label=name)
    right.plot(peaks[best], row[best], "*", ms=14 if overall else 9, color=f"C{i}", mec="k")
  what = metric if key == "eval" else "train loss"
  better = "higher" if mode == "max" else "lower"
  left.set(xlabel="step", ylabel=f"training loss ({window}-step mean)",
           title=f"each schedule at its best peak rate (by {what})")  # fmt: skip
  right.set(xlabel="peak learning rate", ylabel=f"{what} ({better} is better)",
            title=f"{what} against the peak rate (star: best of each schedule)")  # fmt: skip
  for a in (left, right):
    a.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
  _save(left, path)


# --------------------------------------------------------------------------------------------------
# The demo.


def _section(title: str, body: str) -> str:
  text = f"## {title}\n\n```\n{body}\n```\n"
  print(f"\n{title}\n{body}")
  return text


def _demo_find(task, steps: int):
  args = argparse.Namespace(
    optimizer="adam", min_lr=1e-5, max_lr=10.0, steps=min(100, steps), repeats=1, seed=0
  )
  finder = _find(task, args)
  return _section("2. LR range test: Adam on the digits MLP", _find_report(finder)), finder


def _demo_linreg(steps: int) -> str:
  rules = {
    "fixed 0.5": schedules.constant(0.5),
    "step decay (x0.5 every 100)": schedules.step_decay(0.5, step_size=100, gamma=0.5),
    "exponential decay (x0.99 per step)": schedules.exponential_decay(0.5, gamma=0.99),
    "1/t decay (rate 0.01)": schedules.inverse_time_decay(0.5, decay_rate=0.01),
  }
  task = tasks.make("linreg")
  lines = [f"{'schedule':<36}{'slope m':>9}{'intercept b':>13}   (true: 3, 2)"]
  for name, lr in rules.items():
    params, _ = tasks.fit(task.loss_fn, task.params, task.batches, optimizers.sgd(lr), steps)
    lines.append(f"{name:<36}{float(params['m']):>9.4f}{float(params['b']):>13.4f}")
  return _section(f"1. y = 3x + 2 + noise, SGD on batches of 10, {steps} steps", "\n".join(lines))


_DEMO_SCHEDULES = ("constant", "step_decay", "cosine_annealing", "warmup_cosine", "one_cycle")
_DEMO_MIN_STEPS = 10  # the LR range test needs 10 steps; step_decay and warm-up need a few


def _demo_schedules(peak, steps: int) -> list:
  return [
    schedules.constant(peak),
    schedules.step_decay(peak, step_size=steps // 3, gamma=0.2),
    schedules.cosine_annealing(peak, total_steps=steps),
    schedules.warmup(
      schedules.cosine_annealing(peak, total_steps=steps - steps // 10), warmup_steps=steps // 10
    ),
    schedules.one_cycle(peak, total_steps=steps),
  ]


def _demo_sweep(task, steps: int):
  import lr_jax

  peaks = np.geomspace(3e-4, 3e-1, 8)

  def optimizer(h):
    def lr(t):
      return jax.lax.switch(
        h["schedule"],
        [lambda t, s=s: jnp.asarray(s(t), jnp.float32) for s in _demo_schedules(h["peak"], steps)],
        t,
      )

    return optimizers.adam(lr)

  grid = {"schedule": list(range(len(_DEMO_SCHEDULES))), "peak": [float(p) for p in peaks]}
  result = lr_jax.sweep(
    task.loss_fn,
    task.params,
    task.batches,
    optimizer=optimizer,
    grid=grid,
    num_steps=steps,
    eval_fn=task.eval_fn,
    eval_mode=_eval_mode(task),
    progress=True,
  )
  cols = [f"{p:.2g}" for p in peaks]
  body = "\n\n".join(
    [
      _pivot("train loss", result.train_loss, list(_DEMO_SCHEDULES), cols),
      _pivot(_metric(task), result.eval, list(_DEMO_SCHEDULES), cols),
      _best_line(result, task, lambda c: f"{_DEMO_SCHEDULES[c['schedule']]}, peak {c['peak']:.2g}"),
    ]
  )
  title = (
    f"3. Sweep: {len(_DEMO_SCHEDULES)} schedules x {len(peaks)} peak rates, Adam, digits MLP, {steps} steps"
  )
  return _section(title, body), result, peaks


def _demo_figures(out: str, finder, result, peaks, steps: int, metric: str):
  plot = _plot()
  gallery = dict(zip(_DEMO_SCHEDULES, _demo_schedules(1.0, steps)))
  ax = plot.schedules(gallery, steps)
  ax.set_title("the demo's schedules (peak 1)")
  _save(ax, os.path.join(out, "schedules.png"))
  _save(plot.lr_find(finder), os.path.join(out, "lr_find.png"))
  _sweep_figure(result, peaks, list(_DEMO_SCHEDULES), metric, os.path.join(out, "sweep.png"))


def _summary(part1: str, part2: str, part3: str, seconds: float) -> str:
  return (
    "# lr_jax demo\n\n"
    f"Everything below ran on built-in data in {seconds:.0f} s (`lr-jax demo`).\n\n"
    f"{part1}\n{part2}\n![LR range test](lr_find.png)\n\n{part3}\n![sweep](sweep.png)\n\n"
    "## Schedules of the sweep\n\n![schedules](schedules.png)\n"
  )
