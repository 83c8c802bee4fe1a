"""The tutorial (examples/README.md): its printed numbers are the scripts' output, its figures exist.

The numbers themselves are checked against independent references in ``test_examples.py``; here
every output line quoted in the tutorial must be a line the script prints when run with the
command the tutorial gives, and the numbers in the tutorial's prose (gradients, eigenvalues, the
least-squares line, restart steps, ratios) are compared with the scripts' output and with float64
NumPy computations written here, independently of lr_jax.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lr_jax import tasks
from tests.test_examples import PRICES, README, SIZES, after, output, run_example, steps_of

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
  tracked = sorted(p.name for p in (README.parent / "figures").glob("*.png"))
  assert sorted(set(f.split("/")[1] for f in figures)) == tracked  # every figure shown, none stale
  for rel in figures:
    data = (README.parent / rel).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, rel


def prose(pattern: str) -> float:
  """The number captured by ``pattern`` in the tutorial's text (thousands separators dropped)."""
  m = re.search(pattern, TEXT)
  assert m, f"the tutorial no longer says {pattern!r}"
  return float(m.group(1).replace(",", ""))


def house_hessian_eigenvalues() -> np.ndarray:
  """Eigenvalues of the Hessian of J = (1/2n) sum (m s + b - p)^2: [[mean s^2, mean s], [mean s, 1]]."""
  return np.linalg.eigvalsh(np.array([[np.mean(SIZES**2), np.mean(SIZES)], [np.mean(SIZES), 1.0]]))


def test_house_price_numbers():
  """Section 2's prose and printed numbers against a float64 NumPy computation written here."""
  out = output("02_fixed_rate.py")
  r = -PRICES  # residuals at m = b = 0
  dm, db = np.mean(r * SIZES), np.mean(r)  # dJ/dm, dJ/db of the halved MSE
  assert after(out, "dJ/dm =") == [dm] and after(out, "dJ/db =") == [db]
  assert prose(r"∂J/∂m = −\([^)]*\)/4 = −([\d,.]+)") == -dm
  assert prose(r"∂J/∂b = −\([^)]*\)/4 = −([\d,.]+)") == -db
  assert after(out, "J(0, 0) =") == [np.mean(r**2) / 2]
  # the first step, m = -0.01 dm, b = -0.01 db: in the prose and in the output
  assert prose(r"first step gives m = [^=]*= (\d+) and b") == -0.01 * dm
  assert prose(r"first step gives m = [^=]*= \d+ and b = (\d+)") == -0.01 * db
  assert after(out, "raw sizes, rate 0.01, after step 1:") == [-0.01 * dm, -0.01 * db]
  lam_min, lam_max = house_hessian_eigenvalues()
  lo, hi = after(out, "Hessian eigenvalues:")  # "lambda_min = x, lambda_max = y"
  np.testing.assert_allclose([lo, hi], [lam_min, lam_max], rtol=1e-6)
  assert prose(r"largest\s+eigenvalue is ([\d,.]+)") == round(lam_max, 1)
  assert prose(r"2/λ_max = ([\d.]+)·10⁻⁷") == round(2 / lam_max * 1e7, 1)
  assert prose(r"Rate 0\.01 is ([\d,]+)\s+times too large") == round(0.01 / (2 / lam_max))
  growth = abs(1 - 0.01 * lam_max)
  assert prose(r"multiplies the error by about ([\d,]+)") == round(growth)
  assert after(out, "per-step error growth |1 - 0.01*lambda_max| =") == [round(growth)]
  assert prose(r"the other eigenvalue is only ([\d.]+)") == round(lam_min, 4)
  steps_per_e = 1 / (5e-7 * lam_min)
  assert prose(r"a factor e\s+every (\d)·10⁷ steps") * 1e7 == float(f"{steps_per_e:.0e}")
  # float32 overflows at the step the prose names: J of a float64 gradient-descent loop exceeds float32's max
  m = b = 0.0
  js = []
  for _ in range(6):
    res = m * SIZES + b - PRICES
    js.append(np.mean(res**2) / 2)
    m, b = m - 0.01 * np.mean(res * SIZES), b - 0.01 * np.mean(res)
  first_inf = next(i for i, j in enumerate(js, 1) if j > np.finfo(np.float32).max)
  assert prose(r"float32 overflows after (\d+) steps") == first_inf
  printed = after(out, "raw sizes, rate 0.01, J before steps 1-6:")
  assert [np.isinf(j) for j in printed] == [i >= first_inf for i in range(1, 7)]
  np.testing.assert_allclose(printed[: first_inf - 1], js[: first_inf - 1], rtol=5e-3)
  # "converted back, the fit is exactly price = 0.2 · size + 50": the least-squares line of the 4 houses
  slope, intercept = np.polyfit(SIZES, PRICES, 1)
  assert (prose(r"exactly price = ([\d.]+) · size"), prose(r"exactly price = [\d.]+ · size \+ (\d+)")) == (
    pytest.approx(slope),
    pytest.approx(intercept),
  )
  np.testing.assert_allclose(after(out, "fix 1: back in sq ft:"), [slope, intercept], rtol=1e-4)
  # section 4: "gradients differ by a factor of 1900" (two significant digits of dJ/dm / dJ/db)
  assert prose(r"differ by a factor of\s+(\d+)") == float(f"{dm / db:.2g}")


LSQ_PATTERNS = (r"m = ([\d.]+)", r"m = [\d.]+, b = ([\d.]+)", r"m = [\d.]+, b = [\d.]+, MSE ([\d.]+)")


def test_least_squares_line_and_annealing_claims():
  """Sections 3 and 5 quote the least-squares line of the 100 points; section 3 ranks the fits."""
  x, y = (a.astype(np.float64) for a in tasks.linreg_data())
  m, b = np.polyfit(x, y, 1)
  mse = np.mean((m * x + b - y) ** 2)
  said = [prose(rf"least-squares line of these 100 points has {pat}") for pat in LSQ_PATTERNS]
  assert said == [round(m, 4), round(b, 4), round(mse, 6)]
  # gradient descent at the LR finder's suggestion reaches that line (05_lr_finder's last line)
  got = after(output("05_lr_finder.py"), "gradient descent at the suggested rate, 500 steps:")
  np.testing.assert_allclose(got, [m, b, mse], rtol=5e-4)
  # "The constant rate ends furthest from it (MSE 0.009808); every decay ends closer."
  out = output("03_annealing.py")
  fits = {name: after(out, f"fit {name},")[-2] for name in ("fixed", "step", "exponential", "1/t")}
  assert prose(r"constant rate ends furthest from it \(MSE ([\d.]+)\)") == fits["fixed"]
  assert all(mse <= v < fits["fixed"] for k, v in fits.items() if k != "fixed"), fits
  # "Σ_t lr0 · γ^t = lr0 / (1 − γ) = 50" with lr0 = 0.5, γ = 0.99; the printed sum over 500 steps
  assert prose(r"lr0 / \(1 − γ\) = (\d+)") == pytest.approx(0.5 / (1 - 0.99))
  sums = {name: after(out, f"fit {name},")[-1] for name in fits}
  t = np.arange(steps_of("03_annealing.py"), dtype=np.float64)
  want = {
    "fixed": 0.5 * t.size,
    "step": np.sum(0.5 * 0.5 ** np.floor(t / 100)),
    "exponential": np.sum(0.5 * 0.99**t),
    "1/t": np.sum(0.5 / (1 + 0.01 * t)),
  }
  assert sums == pytest.approx(want, abs=1e-4)


def test_warm_restart_steps():
  """Section 7: "restarts at steps 10, 30, 70, 150", against the periods and the printed curve."""
  said = [int(v) for v in re.search(r"restarts at steps ([\d, ]+)\)", TEXT).group(1).split(",")]
  t0, mult = prose(r"restarts with T0 = (\d+)"), prose(r"restarts with T0 = \d+ and mult (\d+)")
  assert said == np.cumsum(t0 * mult ** np.arange(len(said))).tolist()
  out = output("07_cosine_annealing.py")
  steps = [int(v) for v in after(out, "rate at step")]
  rates = dict(zip(steps, after(out, "restarts(10, x2):"), strict=True))
  # the rate is back at its initial value exactly at the restarts (and at 0), nowhere else printed
  assert sorted(s for s, v in rates.items() if v == rates[0]) == [0, *[s for s in said if s in rates]]
  assert [s for s in said if s in rates] == said


def test_lr_finder_ratio_to_the_threshold():
  """Section 5: the suggestion as a fraction of 2/lambda_max, lambda_max of the MSE's Hessian."""
  x, _ = (a.astype(np.float64) for a in tasks.linreg_data())
  lam_max = np.linalg.eigvalsh(2 * np.array([[np.mean(x**2), np.mean(x)], [np.mean(x), 1.0]]))[-1]
  out = output("05_lr_finder.py")
  assert after(out, "Hessian of the MSE:")[0] == pytest.approx(lam_max, rel=1e-5)
  rate, ratio = after(out, "suggested rate:")
  assert ratio == round(rate / (2 / lam_max), 3)
  assert f"{ratio:.3f} x the threshold" in TEXT
