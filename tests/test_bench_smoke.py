"""A smoke run of every benchmark (``bench/run.py --smoke``): it runs end to end and writes its JSON.

Timings are never asserted; this checks the scripts, their JSON records and the markdown report.
"""

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_run_smoke_writes_json_and_report(tmp_path, capsys):
  sys.path.insert(0, str(BENCH))
  try:
    import run
  finally:
    sys.path.remove(str(BENCH))
  assert run.main(["--smoke", "--out", str(tmp_path)]) == 0
  report = capsys.readouterr().out
  for title in ("### Optimizer step", "### Schedules", "### Sweep", "### LR range test"):
    assert title in report
  (path,) = tmp_path.glob("*-smoke-*.json")
  data = json.loads(path.read_text())
  assert data["env"]["jax_version"] and data["env"]["device"]
  records = data["records"]
  assert {r["name"].split("/")[0] for r in records} == {"optimizer", "schedule", "sweep", "finder"}
  for r in records:
    assert {"name", "backend", "jax_version"} <= set(r)
    if r["contender"] not in ("summary", "memory", "profile"):
      assert r["run_s"] > 0 and len(r["samples_s"]) >= 1 and "compile_s" in r
  # every lr_jax schedule is benchmarked
  from lr_jax import schedules

  names = {r["schedule"] for r in records if r["name"].startswith("schedule/")}
  assert names == set(schedules.__all__) - {"Schedule", "from_config"}
  sweep = [r for r in records if r["name"].startswith("sweep/") and r["contender"] == "summary"]
  assert sweep[0]["strategy"] in ("vmap", "chunked", "map")
  assert not (tmp_path / "latest.md").exists()  # smoke runs never replace the committed report
  # the report rebuilt from the saved JSON has the same tables
  assert run.main(["--from-json", str(path)]) == 0
  rebuilt = capsys.readouterr().out
  for title in ("### Optimizer step", "### Schedules", "### Sweep", "### LR range test"):
    assert title in rebuilt
  assert rebuilt.split("### Optimizer step", 1)[1] == report.split("### Optimizer step", 1)[1]


def test_run_rejects_unknown_benchmark():
  sys.path.insert(0, str(BENCH))
  try:
    import run
  finally:
    sys.path.remove(str(BENCH))
  with pytest.raises(SystemExit):
    run.main(["--smoke", "--only", "nope"])
