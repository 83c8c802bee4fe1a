"""Runs the lr_jax benchmarks, prints a markdown report and writes every sample as JSON.

Usage (from the repository root)::

    python bench/run.py            # the full set (a few minutes on a 2-core CPU)
    python bench/run.py --quick    # the goal sizes only (under 5 minutes on a 2-core CPU)
    python bench/run.py --smoke    # tiny sizes, seconds: checks that everything runs (the tests use it)
    python bench/run.py --only optimizers,schedules,eager
    python bench/run.py --update-readme   # also replace the committed report and the README's copy

An ordinary run edits no tracked file: it writes ``<out>/<utc time>-<mode>-<backend>.json`` (device,
versions, every JSON line with its samples) and ``<out>/<same stem>.md`` (the report), ``<out>``
being ``bench/results`` unless ``--out`` says otherwise (both names are git-ignored there). Only
``--update-readme``, on a complete quick or full run, also writes ``bench/results/latest.md`` (or
``latest-<backend>.md`` off CPU), the report the README shows, and on CPU copies it into the README's
Performance section. The same script runs on a GPU when JAX sees one.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # torch-lr-finder's progress bar
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _common

BENCHES = ("optimizers", "schedules", "eager", "sweep", "finder", "lr_free", "search")
RESULTS = HERE / "results"
README = HERE.parent / "README.md"


def _ok(flag: bool) -> str:
  return "**met**" if flag else "**not met**"


def goals(summaries: dict[str, list[dict]], env: dict) -> str:
  """The issue's goals, checked against this run's medians."""
  lines = []
  opt = [r for r in summaries.get("optimizers", []) if r["params"] >= 10_000_000]
  if opt:
    one = [r for r in opt if r["leaves"] == 1]
    ones = {(r["optimizer"], r["params"]): r for r in one}
    many = [(r, ones.get((r["optimizer"], r["params"]))) for r in opt if r["leaves"] != 1]
    fr = [r["frac_roofline"] for r in one]
    sp = [r["speedup_vs_optax_donated"] for r in one]
    tf = [r["vs_torch_fused"] for r in one if r["vs_torch_fused"] is not None]
    lr = [r["lr_jax_s"] / o["lr_jax_s"] for r, o in many if o is not None]
    lines.append(
      f"- Optimizer step at >= 10M parameters (1 leaf, {len(one)} cases): fraction of the roofline "
      f"{min(fr):.2f}-{max(fr):.2f} (goal >= 0.85: {_ok(min(fr) >= 0.85)}); speed over Optax donated "
      f"{min(sp):.2f}-{max(sp):.2f}x (goal >= 1.3x: {_ok(min(sp) >= 1.3)})"
      + (
        f"; time over torch fused {min(tf):.2f}-{max(tf):.2f}x (goal <= 1.15x: {_ok(max(tf) <= 1.15)})"
        if tf
        else ""
      )
      + (
        f"; 200 leaves over 1 leaf {min(lr):.2f}-{max(lr):.2f}x (goal <= 1.2x: {_ok(max(lr) <= 1.2)})."
        if lr
        else "."
      )
    )
  sch = summaries.get("schedules", [])
  if sch:
    ro = [(r["schedule"], r["ratio_vs_optax"]) for r in sch if r["ratio_vs_optax"] is not None]
    st = [(r["schedule"], r["speedup_vs_torch"]) for r in sch if r["speedup_vs_torch"] is not None]
    bad_o = [f"{n} {x:.2f}" for n, x in ro if x > 1.2]
    bad_t = [f"{n} {x:.0f}x" for n, x in st if x < 200]
    lines.append(
      f"- Schedules, lr_jax over Optax (closure form, {len(ro)} with an Optax equivalent): goal <= 1.2 "
      f"{_ok(not bad_o)}"
      + (f" (over: {', '.join(bad_o)})" if bad_o else "")
      + f"; faster than PyTorch's loop: {min(x for _, x in st):.0f}-{max(x for _, x in st):.0f}x, goal >= 200x "
      f"{_ok(not bad_t)}" + (f" (under: {', '.join(bad_t)})" if bad_t else "") + "."
    )
  sw = summaries.get("sweep", [])
  if sw:
    s = sw[0]
    gpu = env["backend"] != "cpu"
    lines.append(
      f"- Sweep: chose `{s['strategy']}`; {s['speedup_vs_loop_of_scans']:.2f}x the loop of scans' speed "
      + (
        f"(goal on GPU >= 10x: {_ok(s['speedup_vs_loop_of_scans'] >= 10)})"
        if gpu
        else f"(goal: never slower, >= 1.0: {_ok(s['speedup_vs_loop_of_scans'] >= 1.0)})"
      )
      + (
        f"; {s['speedup_vs_torch']:.1f}x PyTorch's (goal >= 2.5x: {_ok(s['speedup_vs_torch'] >= 2.5)})"
        if s.get("speedup_vs_torch")
        else ""
      )
      + "."
    )
  if summaries.get("eager"):
    lines.append(importlib.import_module("bench_eager").goal(summaries["eager"]))
  fi = summaries.get("finder", [])
  if fi:
    f = fi[0]
    vs = f.get("speedup_vs_torch_lr_finder")
    lines.append(
      "- lr_find: "
      + (
        f"{vs:.1f}x faster than torch-lr-finder (goal >= 5x: {_ok(vs >= 5)}); "
        if vs
        else "torch-lr-finder not installed; "
      )
      + f"8 repeats cost {f['repeats8_over_1']:.2f}x one (goal <= 3x: {_ok(f['repeats8_over_1'] <= 3)})."
    )
  lf = summaries.get("lr_free", [])
  if lf:
    line = importlib.import_module("bench_lr_free").goal(lf)
    if line:
      lines.append(line)
  se = summaries.get("search", [])
  if se:
    line = importlib.import_module("bench_search").goal(se)
    if line:
      lines.append(line)
  return "### Goals (issues 6, 10, 13 and 14), from this run\n\n" + "\n".join(lines) + "\n" if lines else ""


def report_from_json(path) -> str:
  """The markdown report of a saved run (e.g. one fetched back from a GPU machine)."""
  data = json.loads(Path(path).read_text())
  recs, env, mode = data["records"], data["env"], data["mode"]
  pick = lambda prefix, contender: [
    r for r in recs if r["name"].startswith(prefix) and r["contender"] == contender
  ]
  summaries, sections = {}, []
  for name in data["benchmarks"]:
    module = importlib.import_module(f"bench_{name}")
    if name == "optimizers":
      rows = pick("optimizer/", "summary")
      for r in rows:  # older files: the compile time is on the contender's record only
        if "lr_jax_compile_s" not in r:
          r["lr_jax_compile_s"] = next(x["compile_s"] for x in pick(r["name"], "lr_jax"))
      profile = [r["text"] for r in recs if r["name"] == "optimizer/xla_profile"]
      md = module.markdown(rows) + ("\n" + profile[0] + "\n" if profile else "")
    elif name == "schedules":
      rows = pick("schedule/", "summary")
      torch_steps = next((r["torch_steps"] for r in pick("schedule/", "torch")), float("nan"))
      md = module.markdown(rows, rows[0]["steps"], torch_steps)
    elif name == "eager":
      rows = pick("eager/", "summary")
      md = module.markdown(rows)
    elif name == "sweep":
      rows = pick("sweep/", "summary") + pick("sweep/", "memory")
      md = module.markdown(rows[0], rows[1:])
      streamed = pick("sweep_data/", "summary")
      if streamed and hasattr(module, "markdown_data"):  # the streamed-data table (newer runs)
        md += "\n" + module.markdown_data(streamed[0], pick("sweep_data/", "memory_data"))
    elif name == "lr_free":
      rows = pick("lr_free/", "summary")
      md = module.markdown(rows)
    elif name == "search":
      rows = pick("search/", "summary")
      md = module.markdown(rows)
    else:
      rows = pick("finder/", "summary")
      md = module.markdown(rows[0])
    summaries[name] = rows
    sections.append(md)
  head = (
    f"Device `{env['device']}` ({env['cpu_count']} CPUs, load average {env.get('load_avg_1m', float('nan')):.1f} at start), "
    f"jax {env['jax_version']}, optax {env['optax_version']}, torch {env['torch_version']}, python {env['python']}; "
    f"mode `{mode}`; `python bench/run.py{' --' + mode if mode != 'full' else ''}` took {sum(data['seconds'].values()):.0f} s."
  )
  goal_md = goals(summaries, env) if mode != "smoke" else "(smoke sizes: goals not evaluated)\n"
  return "\n".join(["## Benchmarks", "", head, "", goal_md, *sections])


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description="Runs the lr_jax benchmarks.")
  g = ap.add_mutually_exclusive_group()
  g.add_argument("--quick", action="store_true", help="goal sizes only (< 5 minutes on a 2-core CPU)")
  g.add_argument("--smoke", action="store_true", help="tiny sizes: checks that everything runs")
  ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(BENCHES)}")
  ap.add_argument(
    "--out",
    default=str(RESULTS),
    help="directory for this run's JSON and markdown report (default bench/results)",
  )
  ap.add_argument(
    "--update-readme",
    action="store_true",
    help="also write bench/results/latest.md and copy the report into README.md (complete quick/full runs only)",
  )
  ap.add_argument(
    "--from-json", default=None, help="rebuild the report of a saved run (prints it; writes nothing)"
  )
  args = ap.parse_args(argv)
  if args.from_json is not None:
    print(report_from_json(args.from_json))
    return 0
  mode = "smoke" if args.smoke else ("quick" if args.quick else "full")
  names = BENCHES if args.only is None else tuple(n.strip() for n in args.only.split(","))
  unknown = [n for n in names if n not in BENCHES]
  if unknown:
    ap.error(f"--only: unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
  if args.update_readme and (mode == "smoke" or args.only is not None):
    ap.error("--update-readme: only a complete --quick or full run replaces the committed report")

  env = _common.env_info()
  started = datetime.datetime.now(datetime.UTC)
  sections, summaries, timings = [], {}, {}
  for name in names:
    t0 = time.perf_counter()
    module = importlib.import_module(f"bench_{name}")
    rows, md = module.run(mode)
    summaries[name] = rows
    sections.append(md)
    timings[name] = time.perf_counter() - t0
    _common.log(f"run.py: {name} took {timings[name]:.1f} s")

  env_line = (
    f"Device `{env['device']}` ({env['cpu_count']} CPUs, load average {env.get('load_avg_1m', float('nan')):.1f} at start), "
    f"jax {env['jax_version']}, optax {env['optax_version']}, torch {env['torch_version']}, "
    f"python {env['python']}; mode `{mode}`; {started:%Y-%m-%d %H:%M} UTC; "
    f"`python bench/run.py{' --' + mode if mode != 'full' else ''}` took {sum(timings.values()):.0f} s."
  )
  goal_md = goals(summaries, env) if mode != "smoke" else "(smoke sizes: goals not evaluated)\n"
  report = "\n".join(["## Benchmarks", "", env_line, "", goal_md, *sections])
  print(report)

  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  stem = f"{started:%Y%m%dT%H%M%SZ}-{mode}-{env['backend']}"
  with open(out / f"{stem}.json", "w") as f:
    json.dump(
      {"env": env, "mode": mode, "benchmarks": list(names), "seconds": timings, "records": _common.RECORDS},
      f,
      default=float,
      indent=1,
    )
  (out / f"{stem}.md").write_text(report + "\n")
  _common.log(f"run.py: wrote {out / stem}.json and .md")
  if args.update_readme:
    md_name = "latest.md" if env["backend"] == "cpu" else f"latest-{env['backend']}.md"
    (RESULTS / md_name).write_text(report)
    _common.log(f"run.py: wrote {RESULTS / md_name}")
    if md_name == "latest.md":
      update_readme(report, README)
  return 0


def update_readme(report: str, readme: Path = README) -> None:
  """Copies the report into the README's Performance section (between the bench markers)."""
  text = readme.read_text()
  demoted = re.sub(r"^(#+) ", r"#\1 ", report, flags=re.MULTILINE)  # one heading level down inside the README
  new = re.sub(
    r"<!-- bench:start -->\n.*?<!-- bench:end -->",
    lambda m: "<!-- bench:start -->\n" + demoted.strip() + "\n<!-- bench:end -->",
    text,
    flags=re.DOTALL,
  )
  if new != text:
    readme.write_text(new)
    print(f"run.py: updated the Performance section of {readme}", file=sys.stderr)


if __name__ == "__main__":
  raise SystemExit(main())
