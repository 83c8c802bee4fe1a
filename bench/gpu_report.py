"""The README's GPU section, written from a committed ``bench/gpu.sh`` run (its JSON lines).

``bench/gpu.sh`` writes one file per part (``finder.txt``, ``hypergrad.txt``, ``lr_free.txt``,
``data.txt``, ``sweep.txt``, ``optimizers.txt``, ``info.txt``); the JSON lines in them
(``bench/_common.emit``) are read here and summarised against the open issues' device goals. A test
(``tests/test_readme.py``) checks that the README's section between ``<!-- gpu:start -->`` and
``<!-- gpu:end -->`` is what this prints for the committed folder.

Usage: ``python bench/gpu_report.py [FOLDER] [--update-readme]`` (FOLDER defaults to
``bench/results/h200-2026-12-04``; ``--update-readme`` also writes the section into the README).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "results" / "h200-2026-12-04"


def _records(path: Path) -> list[dict]:
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _one(records: list[dict], **match) -> dict:
  got = [r for r in records if all(r.get(k) == v for k, v in match.items())]
  if len(got) != 1:
    raise ValueError(f"gpu_report: expected one record with {match}, found {len(got)}")
  return got[0]


def _ok(flag: bool) -> str:
  return "met" if flag else "not met"


def report(folder: Path = DEFAULT) -> str:
  """The Markdown section: device line, then one bullet per goal, numbers from the folder's files."""
  folder = Path(folder)
  info = (folder / "info.txt").read_text().splitlines()
  gpu = info[1].split(",")[0].strip()
  versions = info[2].split(" [")[0].split()
  lines = [
    (
      f"Two runs of `bash bench/gpu.sh` on one {gpu} ({info[3].strip()} CPU cores), python {versions[0]}, "
      f"jax {versions[2]}, optax {versions[4]}, torch {versions[6]}, the second (`data.txt`, "
      f"`optimizers-2.txt`) after the streaming change below; the files are in "
      f"`bench/results/{folder.name}/` (JSON lines with every sample). Medians of interleaved rounds:"
    ),
    "",
  ]
  f = _one(_records(folder / "finder.txt"), contender="summary")
  lines.append(
    f"- LR range test (issue 12): 8 repeats cost {f['repeats8_over_1']:.2f}x one repeat "
    f"(minima {f['repeats8_over_1_min']:.2f}x; goal <= 1.5x on a device with spare parallelism: "
    f"{_ok(f['repeats8_over_1'] <= 1.5)}); one repeat {1e3 * f['lr_find_s']:.2f} ms, "
    f"{f['speedup_vs_torch_lr_finder']:.1f}x faster than torch-lr-finder (which ran on the machine's CPU: "
    "bench_finder does not move PyTorch to CUDA)."
  )
  cost = [r for r in _records(folder / "hypergrad.txt") if r.get("name") == "hypergrad_cost"]
  fw = ", ".join(f"{r['task']} {r['forward_ratio']:.2f}x" for r in cost)
  rv = ", ".join(f"{r['task']} {r['reverse_ratio']:.2f}x" for r in cost)
  lines.append(
    f"- Forward-mode hypergradient of 3 hyperparameters (issue 16), over one training run: {fw} "
    f"(goal <= 4x: {_ok(all(r['forward_ratio'] <= 4 for r in cost))}); reverse mode {rv}."
  )
  lf = [r for r in _records(folder / "lr_free.txt") if r.get("contender") == "summary"]
  worst = max(lf, key=lambda r: r["vs_adam"])
  slower = [r for r in lf if r["speedup_vs_torch"] is not None and r["speedup_vs_torch"] < 1]
  lines.append(
    f"- Learning-rate-free steps at 1M and 10M parameters (issue 13, {len(lf)} cases): "
    f"{min(r['vs_adam'] for r in lf):.2f}-{worst['vs_adam']:.2f}x lr_jax's Adam (goal <= 1.2x: "
    f"{_ok(worst['vs_adam'] <= 1.2)}); "
    f"{min(r['speedup_vs_torch'] for r in lf):.2f}-{max(r['speedup_vs_torch'] for r in lf):.2f}x the speed "
    "of the reference packages' `step()` on the same GPU"
    + (
      "; slower in "
      + ", ".join(
        f"{r['optimizer']} {r['params'] // 1_000_000}M ({r['speedup_vs_torch']:.2f}x)" for r in slower
      )
      if slower
      else ""
    )
    + "."
  )
  before = _one(_records(folder / "data-before.txt"), contender="summary")
  after = _one(_records(folder / "data.txt"), contender="summary")
  lines.append(
    f"- Sweep on streamed NumPy batches (issue 12): {after['streamed_throughput_vs_stacked']:.2f}x the "
    f"stacked path (minima {after['streamed_throughput_vs_stacked_min']:.2f}x; goal >= 0.9x: "
    f"{_ok(after['streamed_throughput_vs_stacked'] >= 0.9)}), up from "
    f"{before['streamed_throughput_vs_stacked']:.2f}x before one chunk was kept queued; keeping every "
    f"configuration's params {100 * after['keep_params_cost']:+.1f}% (goal < 10%: "
    f"{_ok(after['keep_params_cost'] < 0.1)})."
  )
  s = _one(_records(folder / "sweep.txt"), name="sweep/digits_mlp", contender="summary")
  lines.append(
    f"- Sweep of {s['configs']} Adam rates x {s['steps']} steps: `lr_jax.sweep` ({s['strategy']}) "
    f"{1e3 * s['sweep_s']:.0f} ms, {s['speedup_vs_loop_of_scans']:.1f}x faster than a loop of jitted "
    f"scans and {s['speedup_vs_torch']:.0f}x faster than a PyTorch loop on the machine's CPU (1 thread; "
    "bench_sweep does not move PyTorch to CUDA)."
  )
  opt = [r for r in _records(folder / "optimizers.txt") if r.get("contender") == "summary"]
  one = [r for r in opt if r["leaves"] == 1]
  many = {r["optimizer"]: r for r in opt if r["leaves"] != 1}
  ratio = [many[r["optimizer"]]["lr_jax_s"] / r["lr_jax_s"] for r in one if r["optimizer"] in many]
  fused = [
    many[r["optimizer"]]["torch_fused_s"] / r["torch_fused_s"]
    for r in one
    if r["optimizer"] in many and r.get("torch_fused_s") and many[r["optimizer"]].get("torch_fused_s")
  ]
  tf = [r["vs_torch_fused"] for r in one if r.get("vs_torch_fused") is not None]
  ox = [many[r["optimizer"]]["optax_donated_s"] / r["optax_donated_s"] for r in one if r["optimizer"] in many]
  profile = _one(_records(folder / "optimizers-2.txt"), contender="profile")["text"]
  counts = sorted({int(x.split(" parameter-sized")[0]) for x in profile.split("compiles to ")[1:]})
  lines.append(
    f"- Optimizer step, 10M parameters, one leaf: {min(r['frac_roofline'] for r in one):.2f}-"
    f"{max(r['frac_roofline'] for r in one):.2f} of the measured memory roofline, "
    f"{min(r['speedup_vs_optax_donated'] for r in one):.2f}-{max(r['speedup_vs_optax_donated'] for r in one):.2f}x "
    f"Optax's speed with donation, {min(tf):.2f}-{max(tf):.2f}x torch fused's time; XLA compiles each "
    f"one-leaf step to {'/'.join(map(str, counts))} parameter-sized fusion{'s' if counts != [1] else ''} "
    f"(a second run, `optimizers-2.txt`). 200 leaves cost {min(ratio):.0f}-{max(ratio):.0f}x one leaf "
    f"(Optax {min(ox):.0f}-{max(ox):.0f}x), torch's fused kernels {min(fused):.1f}-{max(fused):.1f}x: the open gap on a GPU."
  )
  return "\n".join(lines) + "\n"


README = HERE.parent / "README.md"
START, END = "<!-- gpu:start -->\n", "<!-- gpu:end -->"


def readme_section(text: str) -> str:
  """The README's text between the GPU markers."""
  return text.split(START, 1)[1].split(END, 1)[0]


def main(argv=None):
  args = sys.argv[1:] if argv is None else argv
  folders = [a for a in args if not a.startswith("--")]
  out = report(Path(folders[0]) if folders else DEFAULT)
  print(out, end="")
  if "--update-readme" in args:
    text = README.read_text()
    README.write_text(text.replace(START + readme_section(text) + END, START + out + END))


if __name__ == "__main__":
  main()
