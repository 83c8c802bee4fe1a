"""The tutorial (examples/README.md): its printed numbers are the scripts' output, its figures exist.

The numbers themselves are checked against independent references in ``test_examples.py``; here
every output line quoted in the tutorial must be a line the script prints when run with the
command the tutorial gives, and the house-price gradients are checked once more by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.test_examples import README, run_example

ROOT = Path(__file__).resolve().parents[1]
TEXT = README.read_text()


def quoted_runs() -> list[tuple[str, list[str], list[str]]]:
  """``(script, args, quoted output lines)`` for every fenced block starting with ``$ python examples/``."""
  runs = []
  for block in re.findall(r"```text\n(.*?)```", TEXT, flags=re.DOTALL):
    first, *rest = block.rstrip("\n").split("\n")
    m = re.match(r"^\$ python examples/(\S+\.py)(.*)$", first)
    if m:
      runs.append((m.group(1), m.group(2).split(), [line.rstrip() for line in rest if line.strip()]))
  return runs


def test_every_section_quotes_its_script():
  scripts = {r[0] for r in quoted_runs()}
  assert len(scripts) == 12 and len(quoted_runs()) == 12
  for title in (
    "Fixed",
    "Step decay",
    "Exponential decay",
    "1/t decay",
    "Adagrad",
    "RMSprop",
    "Adam",
    "Cyclic",
    "finder",
    "Warm-up",
    "StepLR",
    "ReduceLROnPlateau",
    "Cosine",
    "One-cycle",
  ):
    assert re.search(rf"^#+ .*{re.escape(title)}", TEXT, flags=re.MULTILINE | re.IGNORECASE), title


@pytest.mark.parametrize("script, args, lines", quoted_runs(), ids=[r[0] for r in quoted_runs()])
def test_quoted_output_is_what_the_script_prints(script, args, lines):
  printed = {line.rstrip() for line in run_example(script, *args).splitlines()}
  missing = [line for line in lines if line not in printed]
  assert not missing, f"{script} no longer prints: {missing}"


def test_figures_exist_and_are_pngs():
  figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", TEXT)
  assert len(figures) == 12
  for rel in figures:
    data = (README.parent / rel).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, rel


def test_house_price_gradients_by_hand():
  sizes, prices = [1000, 1500, 2000, 2500], [250, 350, 450, 550]
  # J = (1/2n) sum (m s + b - p)^2 at m = b = 0: dJ/dm = -(1/n) sum p s, dJ/db = -(1/n) sum p.
  dm = -sum(p * s for p, s in zip(prices, sizes)) / 4
  db = -sum(prices) / 4
  assert (dm, db) == (-762500, -400)
  assert "dJ/dm = -762500" in TEXT and "dJ/db = -400" in TEXT
  # With rate 0.01 the first step is m = 7625, b = 4, and the error grows ~33749x per step.
  hess = np.array([[np.mean(np.square(sizes)), np.mean(sizes)], [np.mean(sizes), 1.0]])
  assert abs(1 - 0.01 * np.linalg.eigvalsh(hess)[-1]) > 1


def test_numbers_in_the_prose():
  sizes, prices = np.array([1000.0, 1500, 2000, 2500]), np.array([250.0, 350, 450, 550])
  hess = np.array([[np.mean(sizes**2), np.mean(sizes)], [np.mean(sizes), 1.0]])
  lam_min, lam_max = np.linalg.eigvalsh(hess)
  assert round(0.01 / (2 / lam_max)) == 16875  # "Rate 0.01 is 16,875 times too large"
  assert round(1 / (5e-7 * lam_min), -6) == 2.2e7  # "a factor e every 2·10⁷ steps"
  assert round(762500 / 400, -2) == 1900  # "gradients differ by a factor of 1900"
  assert np.mean(sizes * prices) / np.mean(sizes**2) == pytest.approx(0.2259, abs=1e-4)  # m, b = 0 fit
  # Section 3: "the least-squares line of these 100 points has m = 3.0077, b = 1.9949, MSE 0.009589".
  from lr_jax import tasks

  x, y = (a.astype(np.float64) for a in tasks.linreg_data())
  m, b = np.polyfit(x, y, 1)
  assert (round(m, 4), round(b, 4), round(np.mean((m * x + b - y) ** 2), 6)) == (3.0077, 1.9949, 0.009589)
  assert "m = 3.0077, b = 1.9949, MSE 0.009589" in TEXT
  # Section 7: SGDR restarts with T0 = 10, mult 2 at 10, 30, 70, 150.
  assert np.cumsum([10, 20, 40, 80]).tolist() == [10, 30, 70, 150]
  # Section 5's "within a factor of 3" is asserted on the run itself in test_examples.test_lr_finder.
  assert "0.391 x the threshold" in TEXT
