"""Every ```python block of README.md that is written as a doctest (>>>) runs and prints what it says."""

import doctest
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
  text = README.read_text()
  return [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if ">>>" in b]


def test_readme_has_doctest_blocks():
  assert len(_blocks()) >= 2


def test_readme_doctests_pass():
  parser = doctest.DocTestParser()
  runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
  globs = {}
  for i, block in enumerate(_blocks()):
    test = parser.get_doctest(block, globs, f"README block {i}", str(README), 0)
    runner.run(test, clear_globs=False)
    globs = test.globs  # DocTest copies its globals: carry them to the next block
  result = runner.summarize(verbose=False)
  assert result.failed == 0, f"{result.failed} README doctest lines failed (see output above)"


def test_readme_console_blocks_print_what_they_show(capsys):
  from lr_jax.cli import main

  text = README.read_text()
  blocks = re.findall(r"```console\n(.*?)```", text, flags=re.S)
  assert blocks
  for block in blocks:
    lines = block.rstrip("\n").split("\n")
    assert lines[0].startswith("$ lr-jax ")
    argv = lines[0][len("$ lr-jax ") :].split()
    assert main(argv) == 0
    out = capsys.readouterr().out.rstrip("\n").split("\n")
    assert [o.rstrip() for o in out] == [x.rstrip() for x in lines[1:]]


def test_readme_performance_section_is_the_latest_benchmark_report():
  text = README.read_text()
  block = re.search(r"<!-- bench:start -->\n(.*?)<!-- bench:end -->", text, flags=re.S)
  assert block, "README lacks the benchmark markers"
  latest = (README.parent / "bench" / "results" / "latest.md").read_text()
  # The report's headings are demoted one level inside the README's Performance section.
  demoted = re.sub(r"^(#+) ", r"#\1 ", latest, flags=re.M)
  assert block.group(1).strip() == demoted.strip()


def test_readme_gpu_section_is_the_committed_gpu_run():
  import importlib.util

  spec = importlib.util.spec_from_file_location("gpu_report", README.parent / "bench" / "gpu_report.py")
  gpu_report = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(gpu_report)
  got = gpu_report.report()
  assert gpu_report.readme_section(README.read_text()) == got
  assert "goal <= 1.5x on a device with spare parallelism: met" in got  # the numbers read as stated


def _porting_rows():
  text = README.read_text()
  table = text[text.index("| PyTorch |", text.index("### Porting from PyTorch")) :]
  table = table[: table.index("\n\n")]
  return [line for line in table.splitlines()[2:] if line.startswith("|")]


def test_every_porting_row_names_an_existing_parity_test():
  """Each row of "Porting from PyTorch" names a test in tests/parity/ that compares against torch."""
  rows = _porting_rows()
  assert len(rows) >= 10
  parity = README.parent / "tests" / "parity"
  for row in rows:
    refs = re.findall(r"`(test_\w+\.py)::(test_\w+)", row)
    assert refs, f"porting row without a parity test: {row}"
    for fname, test in refs:
      source = (parity / fname).read_text()
      assert re.search(rf"^def {test}\(", source, flags=re.M), f"{fname}::{test} does not exist"
      assert "torch" in source



def test_readme_hypergradient_cost_and_tuning_tables_are_the_committed_bench_run():
  """The tables under "Tuning by gradient" are what ``bench/bench_hypergrad.py``'s own ``report`` makes
  of the records in bench/hypergrad.json, which its ``--json`` wrote; each goal column is recomputed
  from the record's numbers (forward <= 4x one run; segmented reverse mode's temporaries at 10N <= 4x
  those at N; tune within 1% of the grid's best for <= 1/4 of its compute)."""
  import importlib.util
  import json

  path = README.parent / "bench" / "bench_hypergrad.py"
  spec = importlib.util.spec_from_file_location("_bench_hypergrad", path)
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  doc = json.loads((README.parent / "bench" / "hypergrad.json").read_text())
  assert doc["command"] == "python bench/bench_hypergrad.py --mode quick --json bench/hypergrad.json"
  records = doc["records"]
  assert bench.report(records) == doc["tables"]
  for r in records:
    if r["name"] == "hypergrad_cost":
      assert r["target_met"] == (r["forward_s"] / r["train_s"] <= 4.0)
    elif r["name"] == "hypergrad_memory" and "bound" in r:
      assert r["target_met"] == (r["temp_bytes_10x"] <= 4 * r["temp_bytes_1x"])
    elif r["name"] == "hypergrad_tune":
      (grid,) = [g for g in records if g["name"] == "hypergrad_tune_grid" and g["task"] == r["task"]]
      gap = max(0.0, r["best_eval"] - grid["best_eval"]) / abs(grid["best_eval"])
      assert r["target_met"] == (gap <= 0.01 and r["units"] / 32 <= 0.25)
  section = README.read_text().split("## Tuning by gradient", 1)[1].split("\n## ", 1)[0]
  assert f"`{doc['command']}`" in section
  assert doc["tables"] in section

def test_readme_hypergradient_table_is_the_committed_bench_report():
  """The hypergradient table in "Learning-rate-free and schedule-free optimizers" quotes the lines that
  ``bench/bench_hypergradient_online.py --steps 400 --json`` wrote to bench/hypergradient_online.json,
  and those lines are what the bench's own ``report`` makes of the committed numbers."""
  import importlib.util
  import json

  path = README.parent / "bench" / "bench_hypergradient_online.py"
  spec = importlib.util.spec_from_file_location("_bench_hypergradient_online", path)
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  doc = json.loads((README.parent / "bench" / "hypergradient_online.json").read_text())
  assert doc["command"] == "python bench/bench_hypergradient_online.py --steps 400" and doc["steps"] == 400
  assert bench.report(doc["tasks"], doc["steps"]) == doc["lines"]
  for summary in doc["tasks"].values():  # the plain rows are the tuning sweep's, a decade each side
    for row in (r for r in summary["rows"] if r["rule"] is None):
      sweep = summary["tuning"][row["family"]]
      best = sweep["rates"].index(summary["tuned"][row["family"]])
      assert min(sweep["eval"]) == sweep["eval"][best] == row["eval"][1]
      assert row["eval"] == [sweep["eval"][best - 3], sweep["eval"][best], sweep["eval"][best + 3]]
  text = README.read_text()
  sub = text.split("### Learning-rate-free and schedule-free optimizers", 1)[1].split("\n### ", 1)[0]
  quoted = r"```text\n(python bench/bench_hypergradient_online\.py[^\n]*)\n(.*?)```"
  block = re.search(quoted, sub, flags=re.DOTALL)
  assert block is not None
  assert block.group(1) == doc["command"]
  assert block.group(2).rstrip("\n").split("\n") == bench.readme_lines(doc["lines"])
