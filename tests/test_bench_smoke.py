"""A smoke run of every benchmark (``bench/run.py --smoke``): it runs end to end and writes its JSON.

Timings are never asserted; this checks the scripts, their JSON records and the markdown report.
"""

import hashlib
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
TITLES = (
  "### Optimizer step",
  "### Schedules",
  "### Eager scalar call",
  "### Sweep",
  "### LR range test",
  "### Search",
)


def _run_module():
  sys.path.insert(0, str(BENCH))
  try:
    import run
  finally:
    sys.path.remove(str(BENCH))
  return run


def _tracked_digests() -> dict[str, str]:
  """sha256 of the README's benchmark section and of the committed reports (what a run could rewrite)."""
  readme = (ROOT / "README.md").read_text()
  section = readme[readme.find("<!-- bench:start -->") : readme.find("<!-- bench:end -->")]
  files = sorted((BENCH / "results").glob("latest*.md"))
  out = {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
  return {**out, "README.md (benchmark section)": hashlib.sha256(section.encode()).hexdigest()}


@pytest.fixture
def stub_benches(monkeypatch):
  """Every benchmark replaced by a stub that returns one markdown line at once (for run.py's own logic)."""
  run = _run_module()
  for name in run.BENCHES:
    stub = types.ModuleType(f"bench_{name}")
    stub.run = lambda mode, name=name: ([], f"### Stub {name}\n")
    monkeypatch.setitem(sys.modules, f"bench_{name}", stub)
  return run


def test_an_ordinary_complete_run_edits_no_tracked_file(stub_benches):
  # the default --out is bench/results: only this run's own (git-ignored) JSON and report appear there
  results = BENCH / "results"
  before, listed = _tracked_digests(), set(results.iterdir())
  try:
    assert stub_benches.main(["--quick"]) == 0
    new = set(results.iterdir()) - listed
    assert _tracked_digests() == before
    assert len(new) == 2 and {p.suffix for p in new} == {".json", ".md"}
    assert all(p.name.endswith(("-quick-cpu.json", "-quick-cpu.md")) for p in new)
  finally:
    for p in set(results.iterdir()) - listed:
      p.unlink()


def test_update_readme_writes_the_committed_report_and_the_readme(stub_benches, tmp_path, monkeypatch):
  readme = tmp_path / "README.md"
  readme.write_text("# T\n<!-- bench:start -->\nold\n<!-- bench:end -->\nafter\n")
  monkeypatch.setattr(stub_benches, "RESULTS", tmp_path / "results")
  monkeypatch.setattr(stub_benches, "README", readme)
  (tmp_path / "results").mkdir()
  assert stub_benches.main(["--quick", "--update-readme", "--out", str(tmp_path / "out")]) == 0
  latest = (tmp_path / "results" / "latest.md").read_text()
  assert latest.startswith("## Benchmarks") and "### Stub eager" in latest
  assert "#### Stub eager" in readme.read_text() and "old" not in readme.read_text()
  assert readme.read_text().endswith("<!-- bench:end -->\nafter\n")


def test_run_smoke_writes_json_and_report(tmp_path, capsys):
  run = _run_module()
  before = _tracked_digests()
  assert run.main(["--smoke", "--out", str(tmp_path)]) == 0
  report = capsys.readouterr().out
  # an ordinary run edits nothing in the repository: README.md and bench/results/latest.md are untouched
  assert _tracked_digests() == before
  for title in TITLES:
    assert title in report
  (path,) = tmp_path.glob("*-smoke-*.json")
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, path.with_suffix(".md").name])
  written = path.with_suffix(".md").read_text()
  assert written.startswith("## Benchmarks") and report.endswith(
    written
  )  # stdout: JSON lines, then the report
  data = json.loads(path.read_text())
  assert data["env"]["jax_version"] and data["env"]["device"]
  records = data["records"]
  assert {r["name"].split("/")[0] for r in records} >= {
    "optimizer",
    "schedule",
    "eager",
    "sweep",
    "finder",
    "search",
  }
  for r in records:
    assert {"name", "backend", "jax_version"} <= set(r)
    if r["contender"] not in ("summary", "memory", "profile"):
      assert r["run_s"] > 0 and len(r["samples_s"]) >= 1 and "compile_s" in r
  # every lr_jax schedule is benchmarked
  from lr_jax import schedules

  names = {r["schedule"] for r in records if r["name"].startswith("schedule/")}
  assert names == set(schedules.__all__) - {"Schedule", "from_config"}
  # the eager benchmark covers every registered schedule, each with a measured median call
  from lr_jax.schedules._base import REGISTRY

  eager = [r for r in records if r["name"].startswith("eager/") and r["contender"] == "summary"]
  assert {r["schedule"] for r in eager} >= set(REGISTRY)
  assert all(r["lr_jax_s"] > 0 and r["lr_jax_first_s"] > 0 for r in eager)
  assert any(r["optax_s"] for r in eager) and any(r["torch_step_s"] for r in eager)
  sweep = [r for r in records if r["name"].startswith("sweep/") and r["contender"] == "summary"]
  assert sweep[0]["strategy"] in ("vmap", "chunked", "map")
  # the search bench: every method against the grid (PBT and random over 2 seeds), and Optuna's three loops
  search = {r["method"]: r for r in records if r["name"].startswith("search/")}
  optuna = (
    {"optuna_bridge", "optuna_user", "optuna_user_warm"} if importlib.util.find_spec("optuna") else set()
  )
  assert set(search) == {"grid", "halving", "pbt", "random", *optuna}
  assert len(search["pbt"]["best_eval_by_seed"]) == 2 and search["grid"]["steps_vs_grid"] == 1
  assert search["pbt"]["best_eval"] == np.median(search["pbt"]["best_eval_by_seed"])
  assert not (tmp_path / "latest.md").exists()  # smoke runs never replace the committed report
  # the report rebuilt from the saved JSON has the same tables
  assert run.main(["--from-json", str(path)]) == 0
  rebuilt = capsys.readouterr().out
  for title in TITLES:
    assert title in rebuilt
  assert rebuilt.split("### Optimizer step", 1)[1] == report.split("### Optimizer step", 1)[1]


def test_run_rejects_unknown_benchmark():
  run = _run_module()
  with pytest.raises(SystemExit):
    run.main(["--smoke", "--only", "nope"])


@pytest.mark.parametrize("argv", [["--smoke"], ["--quick", "--only", "eager"]])
def test_update_readme_needs_a_complete_run(argv, tmp_path):
  run = _run_module()
  before = _tracked_digests()
  with pytest.raises(SystemExit):
    run.main([*argv, "--update-readme", "--out", str(tmp_path)])
  assert _tracked_digests() == before and not list(tmp_path.iterdir())


def test_update_readme_replaces_only_the_marked_section(tmp_path):
  run = _run_module()
  readme = tmp_path / "README.md"
  readme.write_text("# T\n\nintro\n<!-- bench:start -->\nold\n<!-- bench:end -->\n\n## After\n")
  run.update_readme("## Benchmarks\n\nnew line\n\n### Eager scalar call\n", readme)
  want = "# T\n\nintro\n<!-- bench:start -->\n### Benchmarks\n\nnew line\n\n#### Eager scalar call\n<!-- bench:end -->\n\n## After\n"
  assert readme.read_text() == want


def test_results_of_an_ordinary_run_are_git_ignored():
  probe = ["bench/results/20260101T000000Z-quick-cpu.md", "bench/results/20260101T000000Z-quick-cpu.json"]
  tracked = ["bench/results/latest.md", "bench/results/latest-gpu.md"]
  try:
    res = subprocess.run(
      ["git", "check-ignore", *probe, *tracked], check=False, cwd=ROOT, capture_output=True, text=True
    )
  except FileNotFoundError:
    pytest.skip("git is not installed")
  if res.returncode == 128:
    pytest.skip("not a git checkout")
  assert res.stdout.split() == probe
