"""lr_find: the LR range test against closed forms (least squares) and plain NumPy loops."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import _finder as finder
from lr_jax import _loop, lr_find

# Least squares with a known spectrum: plain (full-batch) gradient descent on
# 0.5 * mean((X w - y)^2) diverges exactly above lr = 2 / lambda_max(X^T X / n).
_RNG = np.random.default_rng(0)
X = (_RNG.normal(size=(64, 5)) * np.array([3.0, 1.0, 1.0, 0.5, 0.2])).astype(np.float32)
Y = (X @ _RNG.normal(size=5) + 0.1 * _RNG.normal(size=64)).astype(np.float32)
LAMBDA_MAX = np.linalg.eigvalsh(X.astype(np.float64).T @ X.astype(np.float64) / 64).max()
THRESHOLD = 2.0 / LAMBDA_MAX
FULL_BATCH = (X[None], Y[None])


def ls_loss(w, b):
  x, y = b
  return 0.5 * jnp.mean((x @ w - y) ** 2)


def plain_sgd(lr):
  return optax.sgd(lr)


def sgd_momentum(lr):
  return optax.sgd(lr, momentum=0.9)


@pytest.fixture(scope="module")
def ls_result():
  return lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, optimizer=plain_sgd)


def test_least_squares_suggestion_below_and_near_the_divergence_threshold(ls_result):
  res = ls_result
  assert res.method == "minimum" and res.suggestion == res.suggest("minimum")
  assert THRESHOLD / 100 < res.suggestion < THRESHOLD
  assert THRESHOLD / 100 < res.suggest("steepest") < THRESHOLD
  assert res.suggest("valley") < THRESHOLD  # valley lands far below on a noise-free curve (see docstring)


def test_least_squares_stops_at_divergence(ls_result):
  res = ls_result
  k = res.diverged_at
  assert k is not None
  # GD is stable below 2/lambda_max: it cannot blow up before the ramp passes the threshold.
  assert res.lrs[k] > THRESHOLD
  assert np.all(np.isfinite(res.losses[:k])) and np.all(np.isfinite(res.smoothed_losses[: k + 1]))
  assert np.all(np.isnan(res.losses[k + 1 :])) and np.all(np.isnan(res.smoothed_losses[k + 1 :]))
  # the rule that stopped it, recomputed from the recorded smoothed curve
  s = res.smoothed_losses
  assert s[k] > 4.0 * s[: k + 1].min()
  assert np.all(s[:k] <= 4.0 * np.minimum.accumulate(s[:k]))


@pytest.mark.filterwarnings("ignore:.*still falling at max_lr:RuntimeWarning")  # said by tests/test_finder.py's still-falling tests
def test_losses_match_a_float64_numpy_loop():
  """Recorded losses, EMA smoothing and the ramp against an independent float64 loop."""
  n, lo, hi = 40, 1e-3, 1.0
  res = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, optimizer=plain_sgd, min_lr=lo, max_lr=hi, num_steps=n)
  lrs = np.geomspace(lo, hi, n)
  x, y = X.astype(np.float64), Y.astype(np.float64)
  w, losses = np.zeros(5), []
  for t in range(n):
    r = x @ w - y
    losses.append(0.5 * np.mean(r**2))
    w = w - lrs[t] * (x.T @ r / 64)
  losses = np.array(losses)
  avg, smooth = 0.0, []
  for t, loss in enumerate(losses):
    avg = 0.98 * avg + 0.02 * loss
    smooth.append(avg / (1 - 0.98 ** (t + 1)))
  assert res.diverged_at is None
  np.testing.assert_allclose(res.lrs, lrs, rtol=2e-6)  # float32 exp/log of the ramp
  assert res.lrs[0] == np.float32(lo) and res.lrs[-1] == np.float32(hi)
  # float32 training vs float64 numpy: 40 steps of rounding
  np.testing.assert_allclose(res.losses, losses, rtol=2e-6)  # measured max rel 2.4e-7
  np.testing.assert_allclose(res.smoothed_losses, smooth, rtol=2e-6)


def test_linear_ramp_and_batches_cycle():
  with pytest.warns(RuntimeWarning, match="'minimum' rule gives"):  # see test_the_suggestion_lies_in_...
    res = lr_find(
      ls_loss,
      jnp.zeros(5),
      FULL_BATCH,
      optimizer=plain_sgd,
      min_lr=0.01,
      max_lr=0.2,
      num_steps=10,
      mode="linear",
    )
  np.testing.assert_allclose(res.lrs, np.linspace(0.01, 0.2, 10), rtol=1e-6)
  assert np.all(np.diff(res.lrs) > 0)


def test_nan_losses_stop_the_run_and_are_handled():
  def nan_loss(w, b):
    loss = ls_loss(w, b)
    return loss + jnp.where(loss > 1.5 * L0, jnp.nan, 0.0)  # NaN before the smoothed loss reaches 4x

  L0 = 0.5 * np.mean(Y.astype(np.float64) ** 2)  # loss at w = 0
  res = lr_find(nan_loss, jnp.zeros(5), FULL_BATCH, optimizer=plain_sgd)
  k = res.diverged_at
  assert k is not None and np.isnan(res.losses[k])
  assert np.all(np.isfinite(res.losses[:k])) and np.all(np.isnan(res.losses[k:]))
  assert res.lrs[k] > THRESHOLD
  assert np.isfinite(res.suggestion) and res.suggestion < THRESHOLD


def test_default_optimizer_is_sgd_momentum_0_9():
  kw = {"min_lr": 1e-4, "max_lr": 1.0, "num_steps": 20}
  a = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, **kw)
  b = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, optimizer=sgd_momentum, **kw)
  np.testing.assert_allclose(a.losses, b.losses, rtol=1e-6)


def test_progress_bar_gives_the_same_numbers(capsys):
  kw = {"optimizer": plain_sgd, "min_lr": 1e-3, "max_lr": 10.0, "num_steps": 30}
  a = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, **kw)
  b = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, progress=True, **kw)
  np.testing.assert_allclose(a.smoothed_losses, b.smoothed_losses, rtol=1e-6)
  assert a.diverged_at == b.diverged_at
  assert "30/30" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:.*still falling at max_lr:RuntimeWarning")  # said by tests/test_finder.py's still-falling tests
def test_new_hyperparameters_reuse_the_compiled_program():
  kw = {"optimizer": plain_sgd, "num_steps": 20}
  a = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, min_lr=1e-4, max_lr=1.0, **kw)
  n = finder._find_all._cache_size()
  b = lr_find(
    ls_loss, jnp.zeros(5), FULL_BATCH, min_lr=1e-3, max_lr=3.0, smoothing=0.9, diverge_threshold=3.0, **kw
  )
  assert finder._find_all._cache_size() == n  # min_lr, max_lr, smoothing, diverge_threshold are traced
  assert b.lrs[0] == np.float32(1e-3) and not np.allclose(
    a.smoothed_losses, b.smoothed_losses, equal_nan=True
  )



@pytest.mark.filterwarnings("ignore:.*still falling at max_lr:RuntimeWarning")
def test_fresh_lambdas_of_the_same_code_reuse_the_compiled_program():
  """``loss_fn`` and ``optimizer`` are compared by code and captured values (as in ``sweep``): a loop
  building the same lambdas again compiles once; a lambda capturing another value compiles again."""

  def run(momentum, scale=1.0):
    loss = lambda p, b: scale * ls_loss(p, b)
    return lr_find(loss, jnp.zeros(5), FULL_BATCH, optimizer=lambda lr: optax.sgd(lr, momentum=momentum), num_steps=20)

  run(0.5)
  n = finder._find_all._cache_size()
  a, b = run(0.5), run(0.5)
  assert finder._find_all._cache_size() == n
  np.testing.assert_array_equal(a.smoothed_losses, b.smoothed_losses)
  c = run(0.9)  # another captured momentum: another program, other numbers
  assert finder._find_all._cache_size() == n + 1
  assert not np.allclose(a.smoothed_losses, c.smoothed_losses, equal_nan=True)
  run(0.5, scale=2.0)  # another captured value in loss_fn
  assert finder._find_all._cache_size() == n + 2

def test_strict_dtype_promotion():
  with jax.numpy_dtype_promotion("strict"):
    res = lr_find(
      ls_loss,
      jnp.zeros(5),
      FULL_BATCH,
      optimizer=plain_sgd,
      num_steps=20,
      num_repeats=2,
      key=jax.random.key(0),
      progress=True,
    )
  assert np.isfinite(res.suggestion) and res.repeat_losses.shape == (2, 20)


def test_progress_bar_draws():
  out = io.StringIO()
  bar = _loop.Progress(10, "x", True, stream=out)
  bar.update(4)
  bar.update(6)
  text = out.getvalue()
  assert "0/10" in text and "4/10" in text and "10/10" in text and text.endswith("\n")


def test_repeats_reduce_the_spread_of_the_suggestion():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(512, 4)).astype(np.float32)
  y = (x @ rng.normal(size=4) + rng.normal(size=512)).astype(np.float32)
  batches = (x.reshape(16, 32, 4), y.reshape(16, 32))  # 16 minibatches of 32: noisy curves
  singles, means = [], []
  for seed in range(6):
    res = lr_find(ls_loss, jnp.zeros(4), batches, num_repeats=8, key=jax.random.key(seed))
    assert res.repeat_losses.shape == (8, 100) and len(res.repeat_diverged_at) == 8
    singles.append(res.repeat_suggestions())
    means.append(res.suggestion)
  singles, means = np.log10(np.concatenate(singles)), np.log10(means)
  assert np.all(np.isfinite(singles)) and np.all(np.isfinite(means))
  assert means.std() < 0.5 * singles.std()
  # repeats see different batch orders: their curves differ
  assert np.nanmax(np.abs(res.repeat_losses[0] - res.repeat_losses[1])) > 0
  assert np.all(res.losses_std[: res.diverged_at] >= 0)


def test_suggestion_rules_on_hand_made_curves():
  lrs = np.logspace(-3, 0, 7)
  losses = np.array([5.0, 5.0, 4.8, 3.0, 1.0, 0.8, 0.9])
  # central differences of the losses: [0, -.1, -1, -1.9, -1.1, -.05, .1] / h -> index 3
  assert finder.steepest(lrs, losses) == lrs[3]
  assert finder.minimum(lrs, losses) == pytest.approx(lrs[5] / 10)
  # longest strictly decreasing subsequence: length L = 5 ending at 5; start = 5 - 5; 0 + int(5/3) + int(5/6) = 1
  assert finder.valley(lrs, losses) == lrs[1]
  ramp = np.logspace(-3, 0, 13)
  v_losses = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0.5, 3, 2, 9.0])  # L = 10 ending at 9: -1 + 3 + 1 = 3
  assert finder.valley(ramp, v_losses) == ramp[3]
  # never decreasing: L = 1, end = 0, fastai's index -1 (the last rate) is clamped to 0
  assert finder.valley(ramp, np.arange(13.0)) == ramp[0]


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"min_lr": 1.0, "max_lr": 1.0}, "max_lr"),
    ({"min_lr": 0.0}, "min_lr"),
    ({"min_lr": -1e-3}, "min_lr"),
    ({"num_steps": 9}, "num_steps"),
    ({"num_steps": 12.5}, "num_steps"),
    ({"num_repeats": 0}, "num_repeats"),
    ({"smoothing": 1.0}, "smoothing"),
    ({"diverge_threshold": 1.0}, "diverge_threshold"),
    ({"diverge_threshold": float("nan")}, "diverge_threshold"),
    ({"diverge_threshold": -float("inf")}, "diverge_threshold"),
    ({"mode": "log"}, "mode"),
    ({"method": "fast"}, "method"),
    ({"optimizer": optax.sgd(0.1)}, "optimizer"),
    ({"key": 3}, "key"),
    ({"key": jax.random.split(jax.random.key(0), 2)}, "key"),
  ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
  with pytest.raises(ValueError, match=f"lr_find: .*{match}"):
    lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, **kwargs)


@pytest.mark.filterwarnings("ignore:.*still falling at max_lr:RuntimeWarning")  # said by tests/test_finder.py's still-falling tests
def test_bad_loss_and_batches_raise_value_error():
  with pytest.raises(ValueError, match="lr_find: `loss_fn` must return a real scalar"):
    lr_find(lambda w, b: (b[0] @ w - b[1]) ** 2, jnp.zeros(5), FULL_BATCH)
  with pytest.raises(ValueError, match="lr_find: `batches` .*leading axes \\[1, 2\\]"):
    lr_find(ls_loss, jnp.zeros(5), (X[None], np.stack([Y, Y])))
  with pytest.raises(ValueError, match="lr_find: `batches`"):
    lr_find(ls_loss, jnp.zeros(5), (np.float32(1.0), Y[None]))
  with pytest.raises(ValueError, match="method"):
    lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, optimizer=plain_sgd, num_steps=10).suggest("fast")


def test_traced_call_raises_value_error():
  with pytest.raises(ValueError, match="outside jax.jit"):
    jax.jit(lambda lo: lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, min_lr=lo).suggestion)(1e-5)


# ------------------------------------------------------------------ bad data, suggestions in range


MINIBATCHES = (X.reshape(8, 8, 5), Y.reshape(8, 8))  # 8 minibatches of 8 examples


def test_nan_in_a_batch_gives_no_suggestion_and_says_why():
  # One NaN in batch 3 stopped the run at step 3 and suggested 1.45e-08, below min_lr (issue 10, item 6).
  x = MINIBATCHES[0].copy()
  x[3, 0, 0] = np.nan
  with pytest.warns(RuntimeWarning, match="lr_find: no suggestion .*stopped at step 3 .*non-finite loss"):
    res = lr_find(ls_loss, jnp.zeros(5), (x, MINIBATCHES[1]))
  assert res.diverged_at == 3 and np.isnan(res.suggestion)
  for method in finder.SUGGESTION_METHODS:
    with pytest.warns(RuntimeWarning, match="LRFindResult.suggest: no suggestion"):
      assert np.isnan(res.suggest(method))


def test_the_suggestion_lies_in_the_tested_range():
  # the smoothed minimum sits within 10x of min_lr: "minimum" (lr / 10) would fall below min_lr
  kw = {"optimizer": plain_sgd, "min_lr": 0.01, "max_lr": 0.2, "num_steps": 10, "mode": "linear"}
  with pytest.warns(RuntimeWarning, match=r"'minimum' rule gives 0.00944, outside .*\[0.01, 0.2\]"):
    res = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, **kw)
  assert np.isnan(res.suggestion)
  assert 0.01 <= res.suggest("steepest") <= 0.2 and 0.01 <= res.suggest("valley") <= 0.2


@pytest.mark.parametrize("min_lr", [1e-7, 1e-4, 1e-2, 0.05])
def test_suggestion_is_in_range_or_nan_for_every_rule(min_lr):
  import warnings

  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    res = lr_find(ls_loss, jnp.zeros(5), MINIBATCHES, min_lr=min_lr, max_lr=10.0, num_steps=40)
    for method in finder.SUGGESTION_METHODS:
      s = res.suggest(method)
      assert np.isnan(s) or min_lr * (1 - 1e-6) <= s <= 10.0, (method, s)


def frozen_loss(w, b):
  """A loss that forgot its params (0 * w): the same value at every step, a zero gradient."""
  return 0.5 * jnp.mean(b[1] ** 2) + 0.0 * jnp.sum(w)


def test_a_flat_curve_gives_no_suggestion_and_says_why():
  # Every rule used to pick a point of the EMA's float32 rounding noise (1 +- 4e-7): "minimum" 6.7e-6,
  # "slide" 0.24 on one such curve, with no warning. The closed form: the curve is 0.5 * mean(y^2).
  with pytest.warns(RuntimeWarning, match=r"lr_find: no suggestion \(NaN\): the smoothed loss is flat over"):
    res = lr_find(frozen_loss, jnp.zeros(5), FULL_BATCH, optimizer=plain_sgd, num_steps=20)
  np.testing.assert_allclose(res.smoothed_losses, 0.5 * np.mean(Y.astype(np.float64) ** 2), rtol=1e-6)
  assert res.diverged_at is None and np.isnan(res.suggestion)
  for method in finder.SUGGESTION_METHODS:
    with pytest.warns(RuntimeWarning, match="flat"):
      assert np.isnan(res.suggest(method))
  with pytest.raises(ValueError, match="needs a finite suggestion"):
    res.one_cycle(100)


def test_too_few_points_before_divergence_give_nan():
  # lr from 1 (already past 2/lambda_max ~ 0.2): the run blows up in a few steps
  with pytest.warns(RuntimeWarning, match="lr_find: no suggestion .*stopped at step .*a rule needs 2"):
    res = lr_find(
      ls_loss, jnp.zeros(5), FULL_BATCH, optimizer=plain_sgd, min_lr=1.0, max_lr=100.0, num_steps=20
    )
  assert res.diverged_at is not None and res.diverged_at < 10 and np.isnan(res.suggestion)


@pytest.mark.filterwarnings("ignore:lr_find. no suggestion:RuntimeWarning")
def test_unstacked_data_warns():
  # (X, y) of shapes [n, d], [n] passed as is: each "batch" is one example (issue 10, item 6)
  with pytest.warns(
    UserWarning, match=r"lr_find: each batch holds a single example .*\(X\[None\], y\[None\]\)"
  ):
    lr_find(ls_loss_one, jnp.zeros(5), (X, Y), num_steps=20)


def ls_loss_one(w, b):
  x, y = b
  return 0.5 * jnp.mean((x @ w - y) ** 2)


def test_a_list_of_batches_is_stacked():
  listed = [(MINIBATCHES[0][j], MINIBATCHES[1][j]) for j in range(8)]  # what a data loader yields
  kw = {"optimizer": plain_sgd, "num_steps": 30, "min_lr": 1e-4, "max_lr": 1.0}
  a = lr_find(ls_loss, jnp.zeros(5), listed, **kw)
  b = lr_find(ls_loss, jnp.zeros(5), MINIBATCHES, **kw)
  np.testing.assert_array_equal(a.losses, b.losses)
  assert a.suggestion == b.suggestion
  ragged = [*listed[:7], (X[:3], Y[:3])]  # a last, smaller batch
  with pytest.raises(
    ValueError, match=r"lr_find: the batches of a list `batches` .*same shapes, got .*batch 7"
  ):
    lr_find(ls_loss, jnp.zeros(5), ragged, **kw)


W0 = np.zeros(5, np.float32)


def test_called_under_jit_raises_a_named_value_error():
  with pytest.raises(ValueError, match="lr_find: must be called outside jax.jit.*traced `params`"):
    jax.jit(lambda w: lr_find(ls_loss, w, FULL_BATCH).suggestion)(jnp.zeros(5))
  with pytest.raises(ValueError, match="lr_find: must be called outside jax.jit.*while tracing"):
    jax.jit(lambda: lr_find(ls_loss, W0, FULL_BATCH).suggestion)()  # every argument concrete
  with pytest.raises(ValueError, match="lr_find: must be called outside jax.jit/vmap.*traced `max_lr`"):
    jax.vmap(lambda hi: lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, max_lr=hi).suggestion)(jnp.ones(2))


def test_repr_is_short(ls_result):
  text = repr(ls_result)
  assert len(text) < 200, text
  assert text == (
    f"LRFindResult(100 steps from 1e-07 to 10, 1 repeat, diverged_at={ls_result.diverged_at}, "
    f"suggestion={ls_result.suggestion:.3g} (minimum))"
  )


# ------------------------------------------------------------------ issue 12: the range test, grown up


@pytest.fixture(scope="module")
def repeats_result():
  return lr_find(ls_loss, jnp.zeros(5), MINIBATCHES, num_repeats=8, key=jax.random.key(3))


def test_repeats_suggest_the_median_of_their_suggestions_with_a_quartile_band(repeats_result):
  res = repeats_result
  per = res.suggestion_per_repeat
  assert per.shape == (8,) and np.all(np.isfinite(per))
  np.testing.assert_array_equal(per, res.repeat_suggestions())
  assert res.suggestion == pytest.approx(float(np.median(per)), rel=1e-12)
  q25, q75 = np.percentile(per, [25, 75])
  assert res.suggestion_band == pytest.approx((q25, q75), rel=1e-12)
  assert q25 <= res.suggestion <= q75 and q25 < q75  # batch orders move single runs' answers
  assert res.suggest() == res.suggestion
  assert res.suggest("steepest") == pytest.approx(float(np.median(res.repeat_suggestions("steepest"))))
  text = repr(res)
  assert f"suggestion={res.suggestion:.3g} (median of 8 by minimum, quartiles {q25:.3g}..{q75:.3g})" in text
  assert len(text) < 200, text


def test_one_run_has_a_band_of_width_zero(ls_result):
  assert ls_result.suggestion_band == (ls_result.suggestion, ls_result.suggestion)
  assert ls_result.suggestion_per_repeat.tolist() == [ls_result.suggestion]


def test_repeats_without_a_suggestion_are_left_out_of_the_median_with_a_warning(repeats_result):
  res = repeats_result
  rows = res.repeat_smoothed_losses.copy()
  rows[2, 3:] = np.nan  # repeat 2 stopped at step 3: no suggestion
  stops = (*res.repeat_diverged_at[:2], 3, *res.repeat_diverged_at[3:])
  crafted = res._replace(repeat_smoothed_losses=rows, repeat_diverged_at=stops)
  with pytest.warns(RuntimeWarning, match=r"LRFindResult.suggest: .*1 of 8 repeats gave no suggestion"):
    s = crafted.suggest()
  others = np.delete(res.suggestion_per_repeat, 2)
  assert s == pytest.approx(float(np.median(others)), rel=1e-12)


# held-out data: the validation-loss mode (torch-lr-finder's val_loader)
_VRNG = np.random.default_rng(7)
XV = (_VRNG.normal(size=(32, 5)) * np.array([3.0, 1.0, 1.0, 0.5, 0.2])).astype(np.float32)
YV = (XV @ _VRNG.normal(size=5) + 0.1 * _VRNG.normal(size=32)).astype(np.float32)
VAL = (XV.reshape(2, 16, 5), YV.reshape(2, 16))  # 2 held-out batches


@pytest.mark.filterwarnings("ignore:lr_find. no suggestion:RuntimeWarning")
def test_validation_mode_records_the_held_out_loss_after_each_update():
  n, lo, hi = 30, 1e-3, 1.0
  res = lr_find(
    ls_loss,
    jnp.zeros(5),
    MINIBATCHES,
    val_batches=VAL,
    optimizer=plain_sgd,
    min_lr=lo,
    max_lr=hi,
    num_steps=n,
  )
  lrs = np.geomspace(lo, hi, n)
  xs, ys = MINIBATCHES[0].astype(np.float64), MINIBATCHES[1].astype(np.float64)
  xv, yv = XV.astype(np.float64), YV.astype(np.float64)
  w, train, val = np.zeros(5), [], []
  for t in range(n):
    x, y = xs[t % 8], ys[t % 8]
    r = x @ w - y
    train.append(0.5 * np.mean(r**2))
    w = w - lrs[t] * (x.T @ r / 8)
    # mean over the 2 held-out batches of each batch's mean loss, on the updated parameters
    val.append(
      np.mean(
        [0.5 * np.mean((xv[16 * k : 16 * k + 16] @ w - yv[16 * k : 16 * k + 16]) ** 2) for k in range(2)]
      )
    )
  avg, smooth = 0.0, []
  for t, v in enumerate(val):
    avg = 0.98 * avg + 0.02 * v
    smooth.append(avg / (1 - 0.98 ** (t + 1)))
  assert res.curve == "validation loss" and "validation loss" in repr(res)
  np.testing.assert_allclose(res.losses, val, rtol=1e-5)
  np.testing.assert_allclose(res.smoothed_losses, smooth, rtol=1e-5)
  np.testing.assert_allclose(res.train_losses, train, rtol=1e-5)
  # without val_batches the curve is the training loss
  plain = lr_find(ls_loss, jnp.zeros(5), MINIBATCHES, optimizer=plain_sgd, min_lr=lo, max_lr=hi, num_steps=n)
  np.testing.assert_allclose(plain.losses, train, rtol=1e-5)
  np.testing.assert_array_equal(plain.train_losses, plain.losses)


@pytest.mark.filterwarnings("ignore:lr_find. no suggestion:RuntimeWarning")
def test_validation_mode_stops_on_the_validation_loss():
  res = lr_find(ls_loss, jnp.zeros(5), MINIBATCHES, val_batches=VAL, optimizer=plain_sgd, num_steps=60)
  k = res.diverged_at
  assert k is not None and res.smoothed_losses[k] > 4.0 * np.nanmin(res.smoothed_losses[:k])
  with pytest.raises(ValueError, match=r"lr_find: `val_batches` leaves must share their leading axis"):
    lr_find(ls_loss, jnp.zeros(5), MINIBATCHES, val_batches=(XV[None], np.stack([YV, YV])))


# hand-off to training: the schedule a user starts from


def test_one_cycle_hand_off_matches_torch_one_cycle_lr_at_the_suggestion(ls_result):
  torch = pytest.importorskip("torch")
  total = 200
  sched = ls_result.one_cycle(total)
  opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
  ref_sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=ls_result.suggestion, total_steps=total)
  ref = []
  for _ in range(total):
    ref.append(ref_sched.get_last_lr()[0])
    opt.step()
    ref_sched.step()
  got = np.asarray(sched(jnp.arange(total)))
  np.testing.assert_allclose(got, ref, rtol=2e-5)
  fastai_like = ls_result.one_cycle(total, pct_start=0.25, final_div_factor=4e3)
  assert float(fastai_like(total - 1)) == pytest.approx(ls_result.suggestion / 1e5, rel=1e-4)


def test_warmup_cosine_hand_off(ls_result):
  s, total, w = ls_result.suggestion, 100, 10
  sched = ls_result.warmup_cosine(total, warmup_steps=w, end_value=s / 100)
  for t in (0, 5, 10, 40, 99, 100, 150):
    if t < w:
      want = s * t / w
    else:
      want = s / 100 + (s - s / 100) * (1 + np.cos(np.pi * min(t - w, total - w) / (total - w))) / 2
    assert float(sched(t)) == pytest.approx(want, rel=1e-5, abs=1e-12), t
  assert float(ls_result.warmup_cosine(1000)(50)) == pytest.approx(s, rel=1e-6)  # 5% warm-up by default


def test_hand_offs_refuse_a_nan_suggestion_or_another_hyperparameter(ls_result):
  with pytest.raises(
    ValueError, match=r"LRFindResult.one_cycle: needs a finite suggestion, got suggestion=nan"
  ):
    ls_result._replace(suggestion=float("nan")).one_cycle(100)
  with pytest.raises(ValueError, match=r"LRFindResult.warmup_cosine: needs a learning-rate range test"):
    ls_result._replace(name="momentum").warmup_cosine(100)
  with pytest.raises(
    ValueError, match=r"LRFindResult.warmup_cosine: `warmup_steps` must be in \[0, total_steps\)"
  ):
    ls_result.warmup_cosine(100, warmup_steps=100)


# other hyperparameters: a ramp of any float, and a grid of ramps


@pytest.mark.filterwarnings("ignore:lr_find. no suggestion:RuntimeWarning")
def test_a_ramp_of_momentum_trains_with_the_ramped_momentum():
  n = 20
  res = lr_find(
    ls_loss,
    jnp.zeros(5),
    FULL_BATCH,
    optimizer=lambda m: optax.sgd(0.05, momentum=m),
    min_lr=0.5,
    max_lr=0.99,
    mode="linear",
    num_steps=n,
    name="momentum",
    diverge_threshold=None,
  )
  ms = np.linspace(0.5, 0.99, n)
  x, y = X.astype(np.float64), Y.astype(np.float64)
  w, buf, losses = np.zeros(5), np.zeros(5), []
  for t in range(n):
    r = x @ w - y
    losses.append(0.5 * np.mean(r**2))
    buf = x.T @ r / 64 + ms[t] * buf  # optax.sgd's trace: g + momentum * trace
    w = w - 0.05 * buf
  np.testing.assert_allclose(res.losses, losses, rtol=1e-5)
  assert repr(res).startswith("LRFindResult(20 steps of momentum from 0.5 to 0.99,")


def wd_sgd(lr, weight_decay):
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr))


@pytest.mark.filterwarnings("ignore:lr_find_grid. no suggestion:RuntimeWarning")
def test_grid_rows_equal_separate_range_tests():
  from lr_jax import lr_find_grid

  wds = [0.0, 3.0]
  kw = {"min_lr": 1e-4, "max_lr": 10.0, "num_steps": 40, "num_repeats": 2, "key": jax.random.key(1)}
  grid = lr_find_grid(ls_loss, jnp.zeros(5), MINIBATCHES, optimizer=wd_sgd, grid={"weight_decay": wds}, **kw)
  assert grid.smoothed_losses.shape == (2, 40) and grid.values.tolist() == wds
  for wd, row in zip(wds, grid.rows):
    alone = lr_find(ls_loss, jnp.zeros(5), MINIBATCHES, optimizer=lambda lr, wd=wd: wd_sgd(lr, wd), **kw)
    np.testing.assert_allclose(row.repeat_smoothed_losses, alone.repeat_smoothed_losses, rtol=1e-5)
    assert row.repeat_diverged_at == alone.repeat_diverged_at and row.fixed == {"weight_decay": wd}
    assert row.suggestion == pytest.approx(alone.suggestion, rel=1e-5)
  mins = [np.nanmin(r.smoothed_losses) for r in grid.rows]
  best = grid.best()
  assert best["weight_decay"] == wds[int(np.argmin(mins))] and best["min_loss"] == pytest.approx(min(mins))
  assert repr(grid).startswith("LRFindGrid(2 values of weight_decay x 40 steps of lr from 0.0001 to 10;")
  # a progress bar (chunked scan) with a validation set gives the numbers of the one-program run
  a = lr_find_grid(
    ls_loss,
    jnp.zeros(5),
    MINIBATCHES,
    optimizer=wd_sgd,
    grid={"weight_decay": wds[:2]},
    val_batches=VAL,
    **kw,
  )
  b = lr_find_grid(
    ls_loss,
    jnp.zeros(5),
    MINIBATCHES,
    optimizer=wd_sgd,
    grid={"weight_decay": wds[:2]},
    val_batches=VAL,
    progress=True,
    **kw,
  )
  np.testing.assert_allclose(a.smoothed_losses, b.smoothed_losses, rtol=1e-6)


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"grid": {"weight_decay": []}}, r"grid\['weight_decay'\]"),
    ({"grid": {"a": [1.0], "b": [2.0]}}, "`grid` must be one"),
    ({"grid": [0.1]}, "`grid` must be one"),
    ({"grid": {"wd": [float("nan")]}}, r"grid\['wd'\]"),
    ({"grid": {"wd": [0.1]}, "optimizer": None}, "`optimizer` must be a function"),
    ({"grid": {"wd": [0.1]}, "mesh": "cpu"}, "`mesh` must be a jax.sharding.Mesh"),
    (
      {"grid": {"wd": [0.1]}, "optimizer": plain_sgd},
      "`optimizer` must accept the ramped value and the keyword 'wd'",
    ),
  ],
)
def test_bad_grid_arguments_raise_value_error_naming_them(kwargs, match):
  from lr_jax import lr_find_grid

  kwargs = {"optimizer": wd_sgd, **kwargs}
  with pytest.raises(ValueError, match=f"lr_find_grid: .*{match}"):
    lr_find_grid(ls_loss, jnp.zeros(5), FULL_BATCH, **kwargs)


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"skip_start": -1}, r"LRFindResult.suggest: `skip_start` must be >= 0, got skip_start=-1"),
    ({"skip_end": -2}, r"LRFindResult.suggest: `skip_end` must be >= 0, got skip_end=-2"),
    ({"skip_start": 1.5}, r"LRFindResult.suggest: `skip_start` must be a whole number"),
    ({"skip_end": "5"}, r"LRFindResult.suggest: `skip_end` must be a number"),
  ],
)
def test_suggest_rejects_bad_skips_by_name(ls_result, kwargs, match):
  with pytest.raises(ValueError, match=match):
    ls_result.suggest(**kwargs)


def test_grid_best_ignores_a_minus_inf_loss(ls_result):
  from lr_jax import LRFindGrid

  bad = ls_result._replace(smoothed_losses=np.where(np.arange(len(ls_result.lrs)) == 3, -np.inf, 5.0))
  good = ls_result._replace(smoothed_losses=np.full(len(ls_result.lrs), 1.0))
  best = LRFindGrid("weight_decay", np.array([0.0, 1.0]), (bad, good)).best()
  assert best["weight_decay"] == 1.0 and best["min_loss"] == 1.0


def test_grid_best_raises_when_no_row_has_a_finite_loss(ls_result):
  from lr_jax import LRFindGrid

  nan = ls_result._replace(smoothed_losses=np.full(len(ls_result.lrs), np.nan))
  with pytest.raises(ValueError, match="LRFindGrid.best: no row has a finite smoothed loss"):
    LRFindGrid("weight_decay", np.array([0.0, 1.0]), (nan, nan)).best()


# ------------------------------------------------------------------ 0.2 audit: named errors, inf, hints


def test_one_cycle_hand_off_names_a_keyword_it_sets_or_does_not_know(ls_result):
  # peak_value was passed on next to the suggestion: a plain TypeError "got multiple values"
  with pytest.raises(
    ValueError, match=r"LRFindResult.one_cycle: `peak_value` is the suggestion .*got peak_value=2.0"
  ):
    ls_result.one_cycle(100, peak_value=2.0)
  with pytest.raises(ValueError, match=r"LRFindResult.one_cycle: unknown keyword 'warmup' .*got warmup=5"):
    ls_result.one_cycle(100, warmup=5)
  sched = ls_result.one_cycle(100, pct_final=0.7, three_phase=True)  # every other keyword still passes
  assert float(sched(29)) == pytest.approx(ls_result.suggestion, rel=1e-6)


def test_wrong_shaped_val_batches_are_a_named_value_error_with_the_loss_error_as_cause():
  # 4 features where the params have 5: loss_fn raised its own TypeError (dot_general) from lr_find
  val = (XV[:, :4].reshape(2, 16, 4), YV.reshape(2, 16))
  with pytest.raises(
    ValueError,
    match=r"lr_find: `loss_fn\(params, batch\)` fails on a batch of `val_batches` \(leaves "
    r"\['float32\[16, 4\]', 'float32\[16\]'\], where a batch of `batches` has \['float32\[8, 5\]'",
  ) as err:
    lr_find(ls_loss, jnp.zeros(5), MINIBATCHES, val_batches=val)
  assert isinstance(err.value.__cause__, TypeError)


def test_an_infinite_diverge_threshold_means_no_threshold_as_none():
  kw = {"optimizer": plain_sgd, "num_steps": 20, "min_lr": 1e-2, "max_lr": 100.0}
  none = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, diverge_threshold=None, **kw)
  for inf in (float("inf"), np.float32(np.inf)):
    res = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, diverge_threshold=inf, **kw)
    assert res.diverged_at is None
    np.testing.assert_array_equal(res.smoothed_losses, none.smoothed_losses)
  # a finite threshold would have stopped this run: the smoothed loss passes 4x its running minimum
  s = res.smoothed_losses
  assert np.all(np.isfinite(s)) and np.any(s > 4.0 * np.minimum.accumulate(s))


def test_a_loss_still_falling_at_max_lr_warns_and_keeps_the_minimum_rule():
  # max_lr = 0.05 < 2 / lambda_max: gradient descent on least squares lowers the loss at every step, so
  # the smoothed curve is lowest at its last point and the rule gives lrs[n - 5 - 1] / 10, set by max_lr.
  n, lo, hi = 20, 1e-4, 0.05
  assert hi < THRESHOLD
  with pytest.warns(RuntimeWarning, match=r"lr_find: the loss was still falling at max_lr: .*raise max_lr"):
    res = lr_find(ls_loss, jnp.zeros(5), FULL_BATCH, optimizer=plain_sgd, min_lr=lo, max_lr=hi, num_steps=n)
  assert res.diverged_at is None
  assert res.suggestion == pytest.approx(np.geomspace(lo, hi, n)[n - 6] / 10, rel=1e-5)
  with pytest.warns(RuntimeWarning, match="LRFindResult.suggest: the loss was still falling at max_lr"):
    res.suggest("minimum")


def test_still_falling_is_only_said_of_a_curve_that_never_turned_up(ls_result):
  import warnings

  lrs = np.geomspace(1e-4, 1.0, 20)
  falling = np.linspace(2.0, 1.0, 20)
  rate = lrs[14] / 10
  assert "still falling" in finder._still_falling(lrs, falling, None, rate, 2, 5)
  assert finder._still_falling(lrs, falling, 17, rate, 2, 5) is None  # it diverged
  up_at_the_end = falling.copy()
  up_at_the_end[-1] = 3.0  # rises in the dropped points: the loss turned up before max_lr
  assert finder._still_falling(lrs, up_at_the_end, None, rate, 2, 5) is None
  dip = falling.copy()
  dip[10] = 0.5  # the lowest point lies inside the kept curve
  assert finder._still_falling(lrs, dip, None, lrs[10] / 10, 2, 5) is None
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a run that diverged gives no hint
    ls_result.suggest("minimum")


def test_a_loss_that_fails_on_a_batch_is_a_named_error_with_its_own_error_as_cause():
  """Data of the wrong shape for the params: a ValueError naming lr_find, `batches` and the leaves of a
  batch (the user's own shape error is its cause), not a dot_general TypeError from inside loss_fn."""
  lsq = lambda p, b: jnp.mean((b[0] @ p - b[1]) ** 2)
  bad = (jnp.ones((4, 8, 5)), jnp.ones((4, 8)))  # 5 features for 3 params
  with pytest.raises(ValueError, match=r"^lr_find: `loss_fn\(params, batch\)` fails on a batch of `batches` "
                     r"\(leaves \['float32\[8, 5\]', 'float32\[8\]'\]") as info:
    lr_find(lsq, jnp.zeros(3), bad, num_steps=20)
  assert isinstance(info.value.__cause__, TypeError)
