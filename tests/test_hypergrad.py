"""lr_jax.hypergradient and lr_jax.tune.

The references are written here, independently of lr_jax/_hypergrad.py: a plain Optax loop
(``_reference``, a ``lax.fori_loop`` over ``tx.update``) gives the held-out loss, and central finite
differences of it (float64) give the gradient that both modes must match.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lr_jax
from lr_jax import optimizers, schedules, spaces

N_STEPS = 24


def _data(dtype):
  """A tanh MLP 4-4-1 on 4 batches of 8; the 4th input is always 0 (a blank pixel), so its weights'
  gradient is always 0 and so is Adam's second moment: sqrt's derivative at 0 must not give NaN."""
  rng = np.random.default_rng(0)
  w_true = rng.normal(size=(3,))
  x = rng.normal(size=(4, 8, 3))
  y = np.tanh(x @ w_true) + 0.1 * rng.normal(size=(4, 8))
  xt = rng.normal(size=(16, 3))
  yt = np.tanh(xt @ w_true)
  x, xt = np.concatenate([x, np.zeros((4, 8, 1))], -1), np.concatenate([xt, np.zeros((16, 1))], -1)
  params = {
    "w1": jnp.asarray(0.5 * rng.normal(size=(4, 4)), dtype),
    "b1": jnp.zeros((4,), dtype),
    "w2": jnp.asarray(0.5 * rng.normal(size=(4,)), dtype),
  }
  return (
    params,
    (jnp.asarray(x, dtype), jnp.asarray(y, dtype)),
    (jnp.asarray(xt, dtype), jnp.asarray(yt, dtype)),
  )


def _loss(p, batch):
  x, y = batch
  pred = jnp.tanh(x @ p["w1"] + p["b1"][None, :]) @ p["w2"]
  return jnp.mean((pred - y) ** 2)


def _one_cycle_adamw(peak_value, pct_start, final_div_factor, weight_decay, warmup_steps):
  # a linear warm-up (from 0 to one_cycle's first rate) before the cycle: warmup_steps is a step count,
  # differentiated through its float relaxation (the rates are continuous in it)
  lr = schedules.one_cycle(peak_value, N_STEPS, pct_start=pct_start, final_div_factor=final_div_factor)
  return optimizers.adamw(schedules.warmup(lr, warmup_steps), weight_decay=weight_decay)


def _reference(make, params, batches, held_out, num_steps):
  """The held-out loss after a plain Optax loop, as a jitted function of the hyperparameter dict."""
  n = batches[0].shape[0]

  @jax.jit
  def run(h):
    tx = make(**h)

    def body(t, c):
      p, s = c
      g = jax.grad(_loss)(p, (batches[0][t % n], batches[1][t % n]))
      u, s = tx.update(g, s, p)
      return optax.apply_updates(p, u), s

    p, _ = jax.lax.fori_loop(0, num_steps, body, (params, tx.init(params)))
    return _loss(p, held_out), p

  return run


def _central_log_fd(run, h, name, eps=1e-5):
  up, down = dict(h), dict(h)
  up[name] = float(h[name] * np.exp(eps))  # Python floats, as h holds: one compiled reference
  down[name] = float(h[name] * np.exp(-eps))
  return (float(run(up)[0]) - float(run(down)[0])) / (2 * eps)


def test_forward_reverse_and_finite_differences_agree_in_float64():
  with jax.enable_x64(True):
    params, batches, held_out = _data(jnp.float64)
    # warmup_steps between whole numbers: the rates are smooth in it there (kinks at whole numbers)
    h = {
      "peak_value": 0.05,
      "pct_start": 0.27,
      "final_div_factor": 30.0,
      "weight_decay": 0.2,
      "warmup_steps": 3.4,
    }
    eval_fn = lambda p: _loss(p, held_out)
    fwd = lr_jax.hypergradient(_loss, params, batches, _one_cycle_adamw, h, N_STEPS, eval_fn=eval_fn)
    # default segments: 24 steps -> 5 segments of 5, the last one padded (1 masked step)
    rev = lr_jax.hypergradient(
      _loss, params, batches, _one_cycle_adamw, h, N_STEPS, eval_fn=eval_fn, mode="reverse"
    )
    run = _reference(_one_cycle_adamw, params, batches, held_out, N_STEPS)
    value, p_ref = run(h)
    assert fwd.value.dtype == jnp.float64 and fwd.mode == "forward" and rev.mode == "reverse"
    assert rev.checkpoint_every == 5 and fwd.checkpoint_every is None
    for r in (fwd, rev):
      np.testing.assert_allclose(float(r.value), float(value), rtol=1e-12)
      np.testing.assert_allclose(r.params["w1"], p_ref["w1"], rtol=1e-10, atol=1e-12)
      assert r.log_space == {k: True for k in h} and r.losses.shape == (N_STEPS,)
    for name in h:
      fd = _central_log_fd(run, h, name)
      assert abs(fd) > 1e-6, name  # a gradient that is there to match
      np.testing.assert_allclose(float(fwd.grads[name]), fd, rtol=1e-6, err_msg=name)
      np.testing.assert_allclose(float(rev.grads[name]), float(fwd.grads[name]), rtol=1e-9, err_msg=name)
    plain = fwd.plain_grads()  # d value / d h = (d value / d log h) / h
    for name, v in h.items():
      np.testing.assert_allclose(float(plain[name]) * v, float(fwd.grads[name]), rtol=1e-12)


def _cos_momentum(lr, total_steps, momentum):
  return optimizers.sgd(schedules.cosine_annealing(lr, total_steps), momentum=momentum)


def test_checkpointing_segments_wrt_and_the_default_objective():
  # float32 (x64 off), a cheap program: reverse mode gives the same with segments (the last one padded)
  # and without, a subset of hyperparameters can be differentiated plainly, and total_steps (continuous
  # in cosine_annealing) through its float relaxation
  params, batches, held_out = _data(jnp.float32)
  held = (held_out[0].reshape(2, 8, 4), held_out[1].reshape(2, 8))
  h = {"lr": 0.2, "total_steps": 10.5, "momentum": 0.5}
  kw = {"eval_batches": held, "mode": "reverse", "wrt": ["lr", "total_steps"], "log_space": ["lr"]}
  runs = [lr_jax.hypergradient(_loss, params, batches, _cos_momentum, h, 10, checkpoint_every=k, **kw)
          for k in (None, 0)]  # fmt: skip
  assert [r.checkpoint_every for r in runs] == [4, 0]  # 10 steps: 3 segments of 4 (2 steps masked)
  assert runs[0].log_space == {"lr": True, "total_steps": False} and list(runs[0].grads) == [
    "lr",
    "total_steps",
  ]
  seg, full = runs
  np.testing.assert_allclose(float(seg.value), float(full.value), rtol=1e-6)
  for k in ("lr", "total_steps"):
    np.testing.assert_allclose(float(seg.grads[k]), float(full.grads[k]), rtol=2e-4, err_msg=k)
  # the objective without eval_fn: the mean loss over eval_batches
  want = np.mean([_loss(seg.params, (held[0][i], held[1][i])) for i in (0, 1)])
  np.testing.assert_allclose(float(seg.value), want, rtol=1e-6)
  assert seg.value.dtype == jnp.float32 and abs(float(seg.grads["total_steps"])) > 0


def test_default_objective_is_the_training_loss_over_one_pass():
  params, batches, _ = _data(jnp.float32)
  tr = lr_jax.hypergradient(_loss, params, batches, lambda lr: optax.sgd(lr), {"lr": 0.1})
  assert tr.losses.shape == (4,)  # num_steps: one pass over the 4 batches
  want = np.mean([_loss(tr.params, (batches[0][i], batches[1][i])) for i in range(4)])
  np.testing.assert_allclose(float(tr.value), want, rtol=1e-6)
  assert float(tr.grads["lr"]) < 0  # a larger small rate lowers the training loss


def _linreg_task():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(5, 16, 2)).astype(np.float32)
  y = (x @ np.array([2.0, -1.0], np.float32) + 0.05 * rng.normal(size=(5, 16))).astype(np.float32)
  xt = rng.normal(size=(32, 2)).astype(np.float32)
  yt = xt @ np.array([2.0, -1.0], np.float32)

  def loss(w, b):
    return jnp.mean((b[0] @ w - b[1]) ** 2)

  return loss, (jnp.asarray(x), jnp.asarray(y)), (lambda w: loss(w, (xt, yt)))


def _cosine_sgd(peak_value, pct):
  return optimizers.sgd(schedules.one_cycle(peak_value, 20, pct_start=pct), momentum=0.5)


def test_tune_lowers_the_held_out_loss_and_keeps_the_winners_params():
  loss, batches, eval_fn = _linreg_task()
  init_fn = lambda key: 0.1 * jax.random.normal(key, (2,))
  space = {"peak_value": spaces.log_uniform(1e-3, 1.0), "pct": spaces.uniform(0.1, 0.9)}
  # start 0 from a range test's suggestion (a hand-made curve: its minimum at 10**-1.5, so "minimum" says 10**-2.5)
  lrs = np.geomspace(1e-4, 1.0, 40)
  curve = (np.log10(lrs) + 1.5) ** 2
  finder = lr_jax.LRFindResult(
    lrs, curve, curve, None, np.nan, "minimum", 0 * curve, curve[None], curve[None], (None,)
  )
  res = lr_jax.tune(loss, None, batches, _cosine_sgd, space, 20, eval_fn=eval_fn, init={"peak_value": finder},
                    num_starts=3, init_fn=init_fn, seeds=2, outer_steps=8, outer_lr=0.3)  # fmt: skip
  assert res.values.shape == (9, 3) and res.values_by_seed.shape == (9, 3, 2)
  assert res.hparams["peak_value"].shape == (9, 3) and res.grads["pct"].shape == (8, 3)
  assert res.scales == {"peak_value": "log", "pct": "logit"} and res.seeds == (0, 1) and res.runs == 3 * 2 * 9
  np.testing.assert_allclose(res.hparams["peak_value"][0, 0], finder.suggest(), rtol=1e-5)  # init is start 0
  assert 0.001 < finder.suggest() < 0.005
  assert len(set(np.round(res.hparams["pct"][0], 6))) == 3  # init gave no pct: start 0 keeps its sampled one
  assert np.all((res.hparams["pct"] > 0.1) & (res.hparams["pct"] < 0.9))
  assert np.all((res.hparams["peak_value"] >= 1e-3 * (1 - 1e-6)) & (res.hparams["peak_value"] <= 1.0 + 1e-6))
  # start 0 (a rate 100x too small) improves a lot; every start ends no worse than it began
  assert res.values[-1, 0] < 0.2 * res.values[0, 0]
  assert res.best_value <= np.nanmin(res.values) + 1e-7
  assert res.best_value == pytest.approx(res.values[res.best_step, res.best_start], rel=1e-6)
  # the winner retrained by a plain loop from its seed gives the same held-out loss and params
  h = {k: res.best_hparams[k] for k in space}
  w0 = init_fn(jax.random.key(res.best_seed))
  tx = _cosine_sgd(**h)

  def body(t, c):
    w, s = c
    u, s = tx.update(jax.grad(loss)(w, (batches[0][t % 5], batches[1][t % 5])), s, w)
    return optax.apply_updates(w, u), s

  w, _ = jax.jit(lambda w0: jax.lax.fori_loop(0, 20, body, (w0, tx.init(w0))))(w0)
  np.testing.assert_allclose(np.asarray(res.params), np.asarray(w), rtol=2e-4, atol=1e-6)
  j = res.seeds.index(res.best_seed)
  np.testing.assert_allclose(
    float(eval_fn(w)), res.values_by_seed[res.best_step, res.best_start, j], rtol=1e-3
  )
  assert res.best()["value"] == res.best_value and set(res.best()) == {"peak_value", "pct", "value"}
  ax = res.plot()
  assert len(ax.lines) == 4 and ax.get_xlabel() == "outer step"  # 3 starts and the best point
  import matplotlib.pyplot as plt

  plt.close(ax.figure)


def test_tune_backs_off_from_diverged_starts_and_fixes_numbers():
  loss, batches, eval_fn = _linreg_task()
  make = lambda peak_value, pct: optimizers.sgd(schedules.one_cycle(peak_value, 20, pct_start=pct))
  # start 0 diverges at once (a rate of 50 on this problem); start 1 is sampled; pct is fixed
  res = lr_jax.tune(loss, jnp.zeros(2), batches, make, {"peak_value": spaces.log_uniform(1e-3, 50.0), "pct": 0.25},
                    20, eval_fn=eval_fn, init={"peak_value": 50.0}, num_starts=2, outer_steps=2, mode="reverse")  # fmt: skip
  assert np.all(np.isnan(res.values[:, 0]))
  np.testing.assert_allclose(res.hparams["peak_value"][:, 0], 50.0, rtol=1e-6)
  assert res.best_start == 1 and res.fixed == {"pct": 0.25} and res.best_hparams["pct"] == 0.25


def test_tune_backs_off_from_a_gradient_whose_square_overflows():
  # p = 10 * lr after 10 SGD steps on -p; the held-out loss (p - 1)^2 has a cliff past p = 1.5 whose
  # gradient (~3e25 at p = 2.2) is finite in float32 but its square is not: Adam's second moment
  # would turn inf and freeze the start there for good. It must back off halfway instead and find
  # the valley (p ~ 0.8: loss < 0.1) rather than keep the start's 0.49 as its best.
  batches = jnp.zeros((2, 1))
  res = lr_jax.tune(lambda p, b: -p, jnp.zeros(()), batches, lambda lr: optax.sgd(lr),
                    {"lr": spaces.log_uniform(1e-3, 10.0)}, 10,
                    eval_fn=lambda p: (p - 1) ** 2 + 1e25 * jax.nn.relu(p - 1.5) ** 2,
                    init={"lr": 0.03}, num_starts=1, outer_steps=3, outer_lr=jnp.float32(2.0))  # fmt: skip
  # (a JAX scalar outer_lr is a number like any other: it was refused as not a number)
  lr = res.hparams["lr"][:, 0]
  assert 10 * lr[1] > 1.5 and np.isfinite(res.values[1, 0]) and res.values[1, 0] > 1e20  # the cliff
  np.testing.assert_allclose(lr[2], np.sqrt(lr[0] * lr[1]), rtol=1e-5)  # halfway back (log coordinate)
  assert res.best_value < 0.1


@pytest.mark.parametrize(
  ("kwargs", "match"),
  [
    ({"mode": "x"}, r"hypergradient: `mode` must be 'forward' or 'reverse', got mode='x'"),
    ({"checkpoint_every": 3}, r"`checkpoint_every` applies to mode='reverse'"),
    (
      {"mode": "reverse", "checkpoint_every": -1},
      r"`checkpoint_every` must be >= 0, got checkpoint_every=-1",
    ),
    ({"log_space": True, "hparams": {"lr": 0.1, "wd": 0.0}}, r"must be > 0, got wd=0.0"),
    ({"log_space": "yes"}, r"`log_space` must be 'auto', True, False"),
    ({"wrt": ["nope"]}, r"`wrt` must name distinct keys of hparams"),
    ({"hparams": {}}, r"`hparams` must be a non-empty dict"),
    ({"hparams": {"lr": "fast"}}, r"hparams\['lr'\]"),
    ({"hparams": {"lr": 0.1, "momentum": 0.9}}, r"make_optimizer\(\*\*hparams\)` failed"),
    ({"make_optimizer": optax.sgd(0.1)}, r"`make_optimizer` must be a function"),
    ({"num_steps": 0}, r"`num_steps` must be >= 1"),
    ({"batches": iter([(np.ones(2), np.ones(2))])}, r"`batches` must be stacked arrays"),
    ({"eval_fn": lambda w: jnp.ones(2)}, r"`eval_fn` must return a real scalar"),
    (
      {
        "hparams": {"lr": -1.0},
        "make_optimizer": lambda lr: optimizers.sgd(schedules.constant(lr), weight_decay=lr),
      },
      r"sgd: `learning_rate` must be >= 0",
    ),
  ],
)
def test_hypergradient_validation(kwargs, match):
  loss, batches, eval_fn = _linreg_task()
  args = {"loss_fn": loss, "params": jnp.zeros(2), "batches": batches, "make_optimizer": lambda lr: optax.sgd(lr),
          "hparams": {"lr": 0.1}, "eval_fn": eval_fn}  # fmt: skip
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    lr_jax.hypergradient(**args)


@pytest.mark.parametrize(
  ("kwargs", "match"),
  [
    ({"space": {"lr": spaces.categorical([0.1, 0.2])}}, r"tune: `space\['lr'\]` is categorical"),
    ({"space": {"lr": 0.1}}, r"at least one dimension to tune"),
    ({"init": {"lr": 5.0}}, r"`init\['lr'\]` must lie in the space's range"),
    ({"init": {"b1": 0.9}}, r"`init` names must be tuned dimensions"),
    ({"outer_lr": 0.0}, r"`outer_lr` must be a finite number > 0"),
    ({"outer_lr": np.float32(-1.0)}, r"tune: `outer_lr` must be a finite number > 0, got outer_lr=-1.0"),
    ({"outer_lr": True}, r"tune: `outer_lr` must be a number, got outer_lr=True"),
    ({"outer_lr": float("inf")}, r"tune: `outer_lr` must be finite"),
    ({"outer_steps": 0}, r"`outer_steps` must be >= 1"),
    ({"num_starts": 0}, r"`num_starts` must be an integer >= 1"),
    ({"seeds": 2}, r"`seeds` needs `init_fn`"),
    ({"mode": "both"}, r"tune: `mode` must be 'forward' or 'reverse'"),
  ],
)
def test_tune_validation(kwargs, match):
  loss, batches, eval_fn = _linreg_task()
  args = {"loss_fn": loss, "params": jnp.zeros(2), "batches": batches, "make_optimizer": lambda lr: optax.sgd(lr),
          "space": {"lr": spaces.log_uniform(1e-3, 1.0)}, "eval_fn": eval_fn}  # fmt: skip
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    lr_jax.tune(**args)


# What hypergradient's docstring says of step counts, checked on the schedules alone (float64, steps 0..59
# at a fractional count): continuous -> derivative equals central differences and is not 0; piecewise
# constant -> derivative 0; whole numbers only -> NaN rates.
_COUNTS = {
  "cosine_annealing.total_steps": (lambda x: schedules.cosine_annealing(1.0, x), "continuous"),
  "warmup.warmup_steps": (lambda x: schedules.warmup(schedules.constant(1.0), x), "continuous"),
  "warmup_stable_decay.decay_steps": (lambda x: schedules.warmup_stable_decay(1.0, 60, 10, x), "continuous"),
  "cyclic.step_size_up": (lambda x: schedules.cyclic(0.1, 1.0, x, 10.0), "continuous"),
  "step_decay.step_size": (lambda x: schedules.step_decay(1.0, x, 0.5), "constant"),
  "one_cycle.total_steps": (lambda x: schedules.one_cycle(1.0, x + 30), "whole"),
}


@pytest.mark.parametrize("case", sorted(_COUNTS))
def test_step_counts_documented_as_relaxable_are(case):
  make, kind = _COUNTS[case]
  with jax.enable_x64(True):
    steps = jnp.arange(60, dtype=jnp.float64)
    rates = jax.jit(lambda x: make(x)(steps))
    x, eps = 13.37, 1e-6
    deriv = np.asarray(jax.jit(jax.jacfwd(lambda x: make(x)(steps)))(x))
    fd = (np.asarray(rates(x + eps)) - np.asarray(rates(x - eps))) / (2 * eps)
  if kind == "whole":
    assert np.all(np.isnan(fd))
  elif kind == "constant":
    assert np.all(deriv == 0) and np.all(fd == 0)
  else:
    assert np.any(deriv != 0)
    np.testing.assert_allclose(deriv, fd, rtol=1e-5, atol=1e-8)


def test_hypergradient_warns_when_the_objective_or_its_gradient_is_not_finite():
  # A NaN objective used to come back silently; it must come back with a RuntimeWarning saying where.
  loss, batches, eval_fn = _linreg_task()
  make = lambda lr: optax.sgd(lr)  # noqa: E731
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a finite run warns of nothing
    ok = lr_jax.hypergradient(loss, jnp.zeros(2), batches, make, {"lr": 0.01}, 8, eval_fn=eval_fn)
  assert np.isfinite(ok.value)
  # SGD on this least squares diverges above 2 / lambda_max (about 1): at lr = 1e3 the loss overflows;
  # the step where it first does, from a NumPy loop of the same SGD in float32
  x, y = (np.asarray(b) for b in batches)
  w, first = np.zeros(2, np.float32), None
  with np.errstate(over="ignore", invalid="ignore"):
    for t in range(8):
      r = x[t % 5] @ w - y[t % 5]
      if first is None and not np.isfinite(np.mean(r**2)):
        first = t
      w = w - np.float32(1e3) * (2 * x[t % 5].T @ r / len(r))
  assert first is not None
  with pytest.warns(RuntimeWarning, match=rf"hypergradient: not finite \(value=(nan|inf)\): training diverged: .* from step {first} of 8"):
    bad = lr_jax.hypergradient(loss, jnp.zeros(2), batches, make, {"lr": 1e3}, 8, eval_fn=eval_fn)
  assert not np.isfinite(bad.value)
  # training stays finite, the objective does not: the warning says so
  with pytest.warns(RuntimeWarning, match=r"the objective \(eval_fn\) is not finite"):
    lr_jax.hypergradient(loss, jnp.zeros(2), batches, make, {"lr": 0.01}, 8, eval_fn=lambda w: jnp.log(-jnp.sum(w**2)))


def test_a_loss_that_fails_on_an_eval_batch_names_eval_batches():
  lsq = lambda p, b: jnp.mean((b[0] @ p - b[1]) ** 2)
  good = (jnp.ones((2, 8, 3)), jnp.ones((2, 8)))
  bad = (jnp.ones((2, 8, 5)), jnp.ones((2, 8)))
  with pytest.raises(ValueError, match=r"^hypergradient: `loss_fn\(params, batch\)` fails on a batch of `eval_batches`") as info:
    lr_jax.hypergradient(lsq, jnp.zeros(3), good, lambda lr: optax.sgd(lr), {"lr": 0.1}, 3, eval_batches=bad)
  assert isinstance(info.value.__cause__, TypeError)


def test_the_abstract_checks_are_remembered_but_not_across_code_shapes_or_x64():
  """A second call with the same functions and shapes does not trace ``loss_fn``/``eval_fn`` again for
  the argument checks (only the compiled program runs); new code, new captured values, new shapes, a
  bad batch or the x64 switch are checked again, and a bad batch still raises by name."""
  traces = {"loss": 0, "eval": 0}

  def make_loss(scale):
    def loss(w, b):
      traces["loss"] += 1
      return scale * jnp.mean((b[0] @ w - b[1]) ** 2)

    return loss

  def eval_fn(w):
    traces["eval"] += 1
    return jnp.sum(w**2)

  batches = (jnp.ones((2, 8, 3)), jnp.ones((2, 8)))
  make = lambda lr: optimizers.sgd(lr)
  call = lambda loss, w=jnp.zeros(3), b=batches: lr_jax.hypergradient(loss, w, b, make, {"lr": 0.01}, 4, eval_fn=eval_fn)
  call(make_loss(1.0))  # checks + the program's trace
  first = dict(traces)
  call(make_loss(1.0))  # a fresh closure of the same code and value: the program and the checks reused
  assert traces == first
  call(make_loss(2.0))  # another captured value: checked again (and a new program)
  assert traces["loss"] > first["loss"]
  seen = dict(traces)
  call(make_loss(2.0), w=jnp.zeros(3, jnp.int32).astype(jnp.float32) + 1)  # same shapes, new values: reused
  assert traces == seen
  call(make_loss(2.0), b=(jnp.ones((2, 4, 3)), jnp.ones((2, 4))))  # new batch shapes: checked again
  assert traces["loss"] > seen["loss"]
  with pytest.raises(ValueError, match=r"^hypergradient: `loss_fn\(params, batch\)` fails on a batch of `batches`"):
    call(make_loss(2.0), b=(jnp.ones((2, 8, 5)), jnp.ones((2, 8))))
  with pytest.raises(ValueError, match=r"^hypergradient: `loss_fn\(params, batch\)` fails on a batch of `batches`"):
    call(make_loss(2.0), b=(jnp.ones((2, 8, 5)), jnp.ones((2, 8))))  # a failure is not remembered as a success
  seen = dict(traces)
  with jax.enable_x64(True):
    call(make_loss(2.0))  # float64 under x64: a new check (the output dtype may differ)
  assert traces["loss"] > seen["loss"]
  # the promotion rules are part of the check: a loss mixing int and float is checked again (and
  # refused by name) under jax.numpy_dtype_promotion("strict") after passing under "standard"
  mixed = lambda w, b: jnp.mean((b[0] @ w - b[1].astype(jnp.int32)) ** 2)
  call(mixed)
  with jax.numpy_dtype_promotion("strict"), pytest.raises(ValueError, match=r"^hypergradient: `loss_fn\(params, batch\)` fails on a batch of `batches`"):
    call(mixed)
