"""Parity with ``torch.optim.lr_scheduler``: CyclicLR, OneCycleLR (rate and momentum), SequentialLR
(warm-up and join) and ChainedScheduler (multiply).

The lr at step t is ``get_last_lr()`` after t calls of ``.step()``. Hyperparameters are drawn by
hypothesis and rounded to float32 first, so both sides see the same values.
"""

import warnings

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lr_jax import schedules as S
from tests.helpers import f32

torch = pytest.importorskip("torch")
sched = torch.optim.lr_scheduler

MAXN = 320
STEPS = np.arange(MAXN)
EVAL = jax.jit(lambda s, t: s(t))  # shared compiles: one per tree structure (mode, phases, ...)


# Largest gaps seen over all examples, reported by test_zz_report_gaps (and in the README section).
GAPS: dict[str, list[float]] = {}


def torch_run(make, n, lr=1.0, momentum=0.0):
  """``make(optimizer)`` -> scheduler; returns (lrs, momenta) for steps 0 .. n-1."""
  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # SequentialLR / ChainedScheduler deprecation chatter
    s = make(opt)
    lrs, moms = [s.get_last_lr()[0]], [opt.param_groups[0]["momentum"]]
    for _ in range(n - 1):
      opt.step()
      s.step()
      lrs.append(s.get_last_lr()[0])
      moms.append(opt.param_groups[0]["momentum"])
  return np.array(lrs, np.float64), np.array(moms, np.float64)


@pytest.fixture(scope="module", autouse=True)
def report_gaps():
  """Prints the largest gaps seen by this module's tests (``pytest -s``); each test asserted its tolerance."""
  yield
  for name, (abs_gap, rel_gap) in sorted(GAPS.items()):
    print(f"\n{name:48s} max abs {abs_gap:.1e}  max rel {rel_gap:.1e}", end="")


def close(name, got, want, rtol=1e-5, atol=0.0):
  """assert_allclose, recording the max abs gap and the max rel gap (where |want| > 1e-6 * max|want|)."""
  got = np.asarray(got, np.float64)[: len(want)]
  diff = np.abs(got - want)
  big = np.abs(want) > 1e-6 * np.abs(want).max()
  gaps = GAPS.setdefault(name, [0.0, 0.0])
  gaps[0] = max(gaps[0], float(diff.max()))
  gaps[1] = max(gaps[1], float(np.max(diff[big] / np.abs(want[big]))))
  np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@given(
  st.floats(1e-4, 1.0).map(f32),
  st.floats(1e-3, 10.0).map(f32),
  st.integers(1, 60),
  st.integers(1, 60),
  st.sampled_from(["triangular", "triangular2", "exp_range"]),
  st.floats(0.9, 1.0).map(f32),
)
def test_cyclic_lr(base, peak, up, down, mode, gamma):
  base, peak = min(base, peak), max(base, peak)  # cyclic requires base_value <= max_value
  want, _ = torch_run(
    lambda o: sched.CyclicLR(
      o, base, peak, step_size_up=up, step_size_down=down, mode=mode, gamma=gamma, cycle_momentum=False
    ),
    MAXN,
  )
  got = EVAL(S.cyclic(base, peak, up, down, mode=mode, gamma=gamma), STEPS)
  close(f"cyclic ({mode})", got, want, atol=1e-7 * max(base, peak))


one_cycle_hyper = st.fixed_dictionaries(
  dict(
    peak=st.floats(1e-3, 10.0).map(f32),
    n=st.integers(10, MAXN),
    pct=st.floats(0.05, 0.95).map(f32),
    anneal=st.sampled_from(["cos", "linear"]),
    div=st.floats(1.5, 100.0).map(f32),
    final_div=st.floats(1.5, 1e4).map(f32),
    three=st.booleans(),
    base_m=st.floats(0.5, 0.9).map(f32),
    max_m=st.floats(0.9, 0.99).map(f32),
  )
).filter(lambda h: h["pct"] * h["n"] >= 2)  # PyTorch divides 0 by 0 when pct*N == 1


@given(one_cycle_hyper)
def test_one_cycle_lr_and_momentum(h):
  want, want_m = torch_run(
    lambda o: sched.OneCycleLR(
      o,
      max_lr=h["peak"],
      total_steps=h["n"],
      pct_start=h["pct"],
      anneal_strategy=h["anneal"],
      div_factor=h["div"],
      final_div_factor=h["final_div"],
      three_phase=h["three"],
      base_momentum=h["base_m"],
      max_momentum=h["max_m"],
    ),
    h["n"],
    momentum=0.9,
  )
  got = EVAL(
    S.one_cycle(h["peak"], h["n"], h["pct"], h["anneal"], h["div"], h["final_div"], h["three"]), STEPS
  )
  close("one_cycle", got, want, atol=1e-7 * h["peak"])
  got_m = EVAL(
    S.one_cycle_momentum(h["n"], h["pct"], h["anneal"], h["base_m"], h["max_m"], h["three"]), STEPS
  )
  close("one_cycle_momentum", got_m, want_m, rtol=1e-6, atol=1e-7)
  # lr_jax holds the last value where PyTorch raises
  np.testing.assert_array_equal(np.asarray(got)[h["n"] - 1 :], np.asarray(got)[h["n"] - 1])


def test_one_cycle_phase_boundaries_exactly():
  # pct*N - 1 = 29 and 2*pct*N - 2 = 58 are whole steps: the peak and the trough land on them.
  for three in (False, True):
    want, want_m = torch_run(
      lambda o, three=three: sched.OneCycleLR(
        o, max_lr=1.0, total_steps=100, pct_start=0.3, three_phase=three
      ),
      100,
      momentum=0.9,
    )
    got = np.asarray(S.one_cycle(1.0, 100, 0.3, three_phase=three)(STEPS[:100]))
    got_m = np.asarray(S.one_cycle_momentum(100, 0.3, three_phase=three)(STEPS[:100]))
    close("one_cycle", got, want, atol=1e-9)
    close("one_cycle_momentum", got_m, want_m, rtol=1e-6)
    assert got[29] == pytest.approx(1.0, rel=1e-7) and got_m[29] == pytest.approx(0.85, rel=1e-7)
    if three:
      assert got[58] == pytest.approx(0.04, rel=1e-6) and got_m[58] == pytest.approx(0.95, rel=1e-7)
    assert got[99] == pytest.approx(0.04 / 1e4, rel=1e-5)


@given(
  st.floats(1e-3, 10.0).map(f32),
  st.integers(1, 150),
  st.floats(0.0, 0.9),
  st.integers(1, 150),
  st.floats(0.01, 1.0),
)
def test_warmup_cosine_vs_sequential_linear_cosine(base, total, end_frac, w, start_factor):
  end, init = f32(end_frac * base), f32(start_factor * base)
  want, _ = torch_run(
    lambda o: sched.SequentialLR(
      o,
      [
        sched.LinearLR(o, start_factor=init / base, end_factor=1.0, total_iters=w),
        sched.CosineAnnealingLR(o, T_max=total, eta_min=end),
      ],
      milestones=[w],
    ),
    w + total + 1,
    lr=base,
  )
  got = EVAL(S.warmup(S.cosine_annealing(base, total, end), w, init), STEPS)
  close("warmup(cosine_annealing)", got, want, atol=1e-7 * base)


@given(
  st.floats(1e-3, 10.0).map(f32),
  st.lists(st.tuples(st.integers(1, 80), st.floats(0.0, 0.9)), min_size=2, max_size=3),
  st.data(),
)
def test_join_vs_sequential(base, pieces, data):
  # CosineAnnealingLR climbs back up past T_max, so each piece ends before its T_max.
  lengths = [data.draw(st.integers(0, n)) for n, _ in pieces[:-1]]
  bounds = [int(b) for b in np.cumsum(lengths)]
  ends = [f32(e * base) for _, e in pieces]
  n = bounds[-1] + pieces[-1][0] + 1
  want, _ = torch_run(
    lambda o: sched.SequentialLR(
      o,
      [sched.CosineAnnealingLR(o, T_max=t, eta_min=e) for (t, _), e in zip(pieces, ends)],
      milestones=bounds,
    ),
    n,
    lr=base,
  )
  got = EVAL(S.join([S.cosine_annealing(base, t, e) for (t, _), e in zip(pieces, ends)], bounds), STEPS)
  close("join", got, want, atol=1e-7 * base)


@given(st.floats(1e-3, 10.0).map(f32), st.floats(0.9, 1.0).map(f32), st.integers(1, MAXN - 1))
def test_multiply_vs_chained_exponential_cosine(base, gamma, total):
  want, _ = torch_run(
    lambda o: sched.ChainedScheduler(
      [sched.ExponentialLR(o, gamma=gamma), sched.CosineAnnealingLR(o, T_max=total)]
    ),
    total + 1,
    lr=base,
  )
  got = EVAL(S.multiply(S.exponential_decay(base, gamma), S.cosine_annealing(1.0, total)), STEPS)
  # gamma**t in float32 (t <= 320): a few ulps relative.
  close("multiply(exponential_decay, cosine_annealing)", got, want, rtol=1e-5, atol=1e-7 * base)
