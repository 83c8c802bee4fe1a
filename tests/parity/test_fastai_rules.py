"""fastai's four LR-finder suggestion rules (``valley``, ``slide``, ``minimum``, ``steep``) against fastai's code.

fastai is not installed here (it pulls in torch vision stacks and spaCy), so the reference below is
fastai 2.7's ``fastai/callback/schedule.py`` (``nbs/14_callback.schedule.ipynb``) transcribed
line for line into NumPy/Python, written separately from ``lr_jax._finder`` and kept close to the
original (negative indices, the ``lds`` list, ``max_start`` updated inside the inner loop). The
pipeline is fastai's ``Learner.lr_find``: the recorder holds the smoothed losses up to and including
the step that stopped the run; ``[num_it//10 : -5]`` is taken, then the curve is cut at its first NaN,
then each rule runs. Both are applied to the same curves: random walks (noisy, with plateaus and
ties), real ``lr_find`` curves (least squares with minibatch noise, runs that diverge) and repeats.

Documented difference, tested here too: fastai's ``valley`` returns ``lrs[-1]`` (the largest rate)
when its index is -1 (the longest descent is 2 points long, starting at index 0); lr_jax clamps to
index 0. fastai's ``slide`` raises ``IndexError`` on 15 points or fewer; lr_jax gives NaN.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_jax import _finder, lr_find

# ------------------------------------------------------------------ the reference (fastai 2.7, in NumPy)


def fastai_valley(lrs, losses, num_it):
  n = len(losses)
  max_start, max_end = 0, 0
  lds = [1] * n
  for i in range(1, n):
    for j in range(i):
      if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
        lds[i] = lds[j] + 1
      if lds[max_end] < lds[i]:
        max_end = i
        max_start = max_end - lds[max_end]
  sections = (max_end - max_start) / 3
  idx = max_start + int(sections) + int(sections / 2)
  return float(lrs[idx])


def fastai_slide(lrs, losses, num_it, lr_diff=15, thresh=0.005, adjust_value=1.0):
  loss_grad = np.gradient(np.asarray(losses))
  r_idx = -1
  l_idx = r_idx - lr_diff
  local_min_lr = lrs[l_idx]
  while (l_idx >= -len(losses)) and (abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh):
    local_min_lr = lrs[l_idx]
    r_idx -= 1
    l_idx -= 1
  return float(local_min_lr) * adjust_value


def fastai_minimum(lrs, losses, num_it):
  lr_min = lrs[losses.argmin()].item()
  return lr_min / 10


def fastai_steep(lrs, losses, num_it):
  grads = (losses[1:] - losses[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
  return lrs[grads.argmin()].item()


FASTAI = {"valley": fastai_valley, "slide": fastai_slide, "minimum": fastai_minimum, "steep": fastai_steep}


def fastai_lr_find_suggestion(recorded_lrs, recorded_losses, num_it, func):
  """``Learner.lr_find``'s post-processing of the recorder, then one rule."""
  lrs = np.asarray(recorded_lrs[num_it // 10 : -5], np.float64)
  losses = np.asarray(recorded_losses[num_it // 10 : -5], np.float64)
  nan_idxs = np.nonzero(np.isnan(losses))[0]
  if len(nan_idxs) > 0:
    drop_idx = nan_idxs.min()
    lrs, losses = lrs[:drop_idx], losses[:drop_idx]
  return func(lrs, losses, num_it)


def recorded(lrs, smoothed, stop):
  """What fastai's recorder holds: every point up to and including the step that stopped the run."""
  end = len(lrs) if stop is None else stop + 1
  return lrs[:end], smoothed[:end]


# ------------------------------------------------------------------ the rules on the same curves

RULES = sorted(FASTAI)


def _curves():
  """Random-walk curves: noisy descents, plateaus (ties) and rises, on exponential ramps."""
  rng = np.random.default_rng(0)
  out = []
  for k in range(40):
    n = int(rng.integers(20, 120))
    lrs = np.geomspace(1e-6, 10.0, n)
    steps = rng.normal(-0.01 * (k % 3), 0.02 + 0.05 * (k % 4), size=n)
    losses = 2.0 + np.cumsum(steps)
    if k % 5 == 0:
      losses = np.round(losses, 1)  # ties: strict "<" in valley matters
    out.append((lrs, losses))
  return out


@pytest.mark.parametrize("rule", RULES)
def test_rules_match_fastai_on_random_curves(rule):
  compared = 0
  for lrs, losses in _curves():
    ref = FASTAI[rule](lrs, losses, len(lrs))
    ours = getattr(_finder, rule)(lrs, losses)
    if rule == "valley" and ref == lrs[-1] != ours:  # fastai's index -1 (see the module docstring)
      assert ours == lrs[0]
      continue
    assert ours == pytest.approx(ref, rel=1e-12), (rule, len(lrs))
    compared += 1
  assert compared >= 35


def _ls_problem(seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(256, 4)).astype(np.float32)
  y = (x @ rng.normal(size=4) + 0.5 * rng.normal(size=256)).astype(np.float32)
  return (x.reshape(8, 32, 4), y.reshape(8, 32))


def ls_loss(w, b):
  x, y = b
  return 0.5 * jnp.mean((x @ w - y) ** 2)


@pytest.fixture(scope="module")
def real_curves():
  """lr_find curves: minibatch noise, divergence at different points, repeats with their own stops
  (one compiled program: the ramp's ends are traced)."""
  out = []
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    for seed, (lo, hi, n) in enumerate(
      [(1e-7, 10.0, 100), (1e-5, 100.0, 100), (1e-4, 1.0, 100), (1e-3, 30.0, 100)]
    ):
      res = lr_find(
        ls_loss,
        jnp.zeros(4),
        _ls_problem(seed),
        min_lr=lo,
        max_lr=hi,
        num_steps=n,
        num_repeats=3,
        key=jax.random.key(seed),
      )
      out.append(res)
  return out


@pytest.mark.parametrize("rule", RULES)
def test_suggest_follows_fastais_lr_find_pipeline(rule, real_curves):
  """Each repeat's suggestion is fastai's (trim [n//10:-5] of the recorded curve, cut at NaN, rule)."""
  compared = 0
  for res in real_curves:
    n = len(res.lrs)
    for smoothed, stop in zip(res.repeat_smoothed_losses, res.repeat_diverged_at):
      rec_lrs, rec_losses = recorded(np.asarray(res.lrs, np.float64), smoothed, stop)
      try:
        ref = fastai_lr_find_suggestion(rec_lrs, rec_losses, n, FASTAI[rule])
      except (IndexError, ValueError):  # fastai fails on too short a curve: lr_jax gives NaN
        ref = float("nan")
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        single = res._replace(
          smoothed_losses=smoothed,
          diverged_at=stop,
          repeat_smoothed_losses=smoothed[None],
          repeat_diverged_at=(stop,),
        )
        ours = single.suggest(rule)
      if not (res.lrs[0] <= ref <= res.lrs[-1]):  # outside the ramp (minimum / 10): NaN here
        assert np.isnan(ours), (rule, ref, ours)
        continue
      assert ours == pytest.approx(ref, rel=1e-12), (rule, stop, ref, ours)
      compared += 1
  assert compared >= 6
  assert any(s is not None for r in real_curves for s in r.repeat_diverged_at)  # cut curves were compared


def test_the_stop_step_is_in_the_recorded_curve_before_trimming():
  """fastai trims the last 5 of what it recorded, the diverging point included (not 5 before it)."""
  lrs = np.geomspace(1e-4, 1.0, 40)
  smoothed = np.concatenate([np.linspace(3.0, 1.0, 30), np.linspace(1.0, 5.0, 10)])
  stop = 33  # a NaN loss there: the recorder holds it, the trim drops it with 4 more
  smoothed[stop:] = np.nan
  for rule in RULES:
    ref = fastai_lr_find_suggestion(*recorded(lrs, smoothed, stop), 40, FASTAI[rule])
    ours, _ = _finder._suggest_one(lrs, smoothed, stop, rule, 4, 5)
    assert ours == pytest.approx(ref, rel=1e-12), rule


def test_documented_differences():
  lrs = np.geomspace(1e-3, 1.0, 20)
  # the longest strictly decreasing run has 2 points and starts at 0: fastai's index is -1
  losses = np.array([2.0, 1.0, *np.linspace(3.0, 5.0, 18)])
  assert fastai_valley(lrs, losses, 20) == lrs[-1]
  assert _finder.valley(lrs, losses) == lrs[0]
  # slide on 15 points: fastai indexes lrs[-16]
  with pytest.raises(IndexError):
    fastai_slide(lrs[:15], losses[:15], 15)
  assert np.isnan(_finder.slide(lrs[:15], losses[:15]))


def test_valley_is_fastais_default_and_minimum_is_the_default_here():
  import inspect

  assert inspect.signature(lr_find).parameters["method"].default == "minimum"
  for rule in ("valley", "slide", "minimum", "steep", "steepest"):
    assert rule in _finder.SUGGESTION_METHODS
