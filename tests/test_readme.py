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
