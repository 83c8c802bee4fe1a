"""sweep: every configuration equals an independent plain-Optax training run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import schedules, sweep
from lr_jax._sweep import SweepResult, _choose_chunk, _column, expand_grid

_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(4, 8, 3)).astype(np.float32)  # 4 batches of 8 examples
Y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * _RNG.normal(size=(4, 8))).astype(np.float32)
BATCHES = {"x": X, "y": Y}
X_TEST = _RNG.normal(size=(16, 3)).astype(np.float32)
Y_TEST = (X_TEST @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)
PARAMS = {"w": jnp.zeros(3), "b": jnp.zeros(())}
NUM_STEPS = 20
BATCH0 = {"x": X[0], "y": Y[0]}


def loss_fn(p, batch):
  return jnp.mean((batch["x"] @ p["w"] + p["b"] - batch["y"]) ** 2)


def eval_fn(p):
  return jnp.mean((X_TEST @ p["w"] + p["b"] - Y_TEST) ** 2)


def init_fn(key):
  return {"w": jax.random.normal(key, (3,)), "b": jnp.zeros(())}


def adam_cosine(h):
  return optax.adam(schedules.cosine_annealing(h["lr"], h["steps"]))


def sgd_cosine(h):
  return optax.sgd(schedules.cosine_annealing(h["lr"], h["steps"]))


def sgd_momentum(h):
  return optax.sgd(h["lr"], momentum=0.9)


def plain_optax_run(tx, params, num_steps=NUM_STEPS):
  """An ordinary, eager Optax training loop: the reference for one configuration."""
  state = tx.init(params)
  losses = []
  for t in range(num_steps):
    batch = {k: v[t % 4] for k, v in BATCHES.items()}
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    losses.append(float(loss))
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  # the trained parameters' loss over the whole training set (every batch), as a float64 NumPy mean
  final = np.mean([float(loss_fn(params, {k: v[j] for k, v in BATCHES.items()})) for j in range(4)])
  return np.array(losses), final, float(eval_fn(params))


GRID = {"lr": [0.01, 0.1], "steps": [15, 30]}


@pytest.fixture(scope="module")
def reference():
  out = []
  for cfg in expand_grid(GRID):
    tx = optax.adam(optax.cosine_decay_schedule(cfg["lr"], cfg["steps"]))  # Optax's own schedule
    out.append(plain_optax_run(tx, PARAMS))
  return out


@pytest.fixture(scope="module")
def vmapped():
  return sweep(
    loss_fn,
    PARAMS,
    BATCHES,
    optimizer=adam_cosine,
    grid=GRID,
    num_steps=NUM_STEPS,
    eval_fn=eval_fn,
    eval_mode="min",
  )


@pytest.mark.parametrize("max_parallel, strategy", [(None, "vmap"), (1, "map"), (3, "chunked")])
def test_each_configuration_equals_a_plain_optax_run(max_parallel, strategy, reference, vmapped):
  res = (
    vmapped
    if max_parallel is None
    else sweep(
      loss_fn,
      PARAMS,
      BATCHES,
      optimizer=adam_cosine,
      grid=GRID,
      num_steps=NUM_STEPS,
      eval_fn=eval_fn,
      eval_mode="min",
      max_parallel=max_parallel,
    )
  )
  assert res.strategy == strategy and res.num_devices == 1
  assert res.losses.shape == (4, NUM_STEPS)
  assert res.configs == [
    {"lr": 0.01, "steps": 15},
    {"lr": 0.01, "steps": 30},
    {"lr": 0.1, "steps": 15},
    {"lr": 0.1, "steps": 30},
  ]
  assert res.valid.all()
  for i, (losses, final, ev) in enumerate(reference):
    # float32: compiled+vmapped vs eager rounding, lr_jax vs Optax cosine formula (measured max rel 4.6e-7)
    np.testing.assert_allclose(res.losses[i], losses, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(res.train_loss[i], final, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(res.eval[i], ev, rtol=2e-6, atol=1e-7)


def test_table_and_best(vmapped):
  rows = vmapped.table()
  assert [{k: r[k] for k in ("lr", "steps")} for r in rows] == vmapped.configs
  assert all(set(r) == {"lr", "steps", "train_loss", "eval", "valid", "rank"} for r in rows)
  best = vmapped.best()
  assert best["eval"] == min(r["eval"] for r in rows)
  assert isinstance(vmapped, SweepResult)


def test_invalid_and_diverging_configurations_come_back_nan():
  grid = [{"lr": 0.05, "steps": 20}, {"lr": 0.05, "steps": 0}, {"lr": 50.0, "steps": 1000}]
  res = sweep(loss_fn, PARAMS, BATCHES, optimizer=sgd_cosine, grid=grid, num_steps=NUM_STEPS)
  assert res.valid.tolist() == [True, False, False]
  losses, final, _ = plain_optax_run(optax.sgd(optax.cosine_decay_schedule(0.05, 20)), PARAMS)
  np.testing.assert_allclose(res.losses[0], losses, rtol=2e-6, atol=1e-7)
  np.testing.assert_allclose(res.train_loss[0], final, rtol=2e-6, atol=1e-7)
  # invalid schedule (total_steps=0, traced): NaN rates -> NaN from the first update on
  assert np.isfinite(res.losses[1, 0]) and np.all(np.isnan(res.losses[1, 1:])) and np.isnan(res.train_loss[1])
  # lr 50 blows up: finite at first, then NaN from the first non-finite loss on (never inf)
  diverged = res.losses[2]
  first = int(np.argmax(~np.isfinite(diverged)))
  assert 0 < first and np.all(np.isfinite(diverged[:first])) and np.all(np.isnan(diverged[first:]))
  assert not np.any(np.isinf(res.losses))
  assert res.best()["steps"] == 20


def test_seeds_keyword_initialises_each_run_from_its_key_and_averages():
  res = sweep(
    loss_fn,
    None,
    BATCHES,
    init_fn=init_fn,
    seeds=[0, 3],
    optimizer=sgd_momentum,
    grid={"lr": [0.02, 0.05]},
    num_steps=NUM_STEPS,
    eval_fn=eval_fn,
    eval_mode="min",
  )
  assert res.configs == [{"lr": 0.02}, {"lr": 0.05}] and res.seeds == (0, 3) and res.by_seed.seeds == (0, 3)
  assert res.by_seed.losses.shape == (2, 2, NUM_STEPS) and res.by_seed.eval.shape == (2, 2)
  for i, lr in enumerate((0.02, 0.05)):
    runs = [plain_optax_run(optax.sgd(lr, momentum=0.9), init_fn(jax.random.key(seed))) for seed in (0, 3)]
    for j, (losses, final, ev) in enumerate(runs):
      np.testing.assert_allclose(res.by_seed.losses[i, j], losses, rtol=2e-6, atol=1e-7)
      np.testing.assert_allclose(res.by_seed.eval[i, j], ev, rtol=2e-6, atol=1e-7)
    evs = np.array([r[2] for r in runs])
    np.testing.assert_allclose(res.eval[i], evs.mean(), rtol=2e-6)  # aggregated: the mean over seeds
    np.testing.assert_allclose(res.score(stat="std")[0][i], evs.std(), rtol=1e-4)
    np.testing.assert_allclose(res.score(stat="min")[0][i], evs.min(), rtol=2e-6)
    np.testing.assert_allclose(res.score(seed=3)[0][i], evs[1], rtol=2e-6)
    row = res.table()[i]
    assert row["eval"] == res.eval[i] and row["eval_max"] == res.score(stat="max")[0][i]
  assert not np.allclose(res.by_seed.losses[0, 0], res.by_seed.losses[0, 1])
  # params keep a [configs, seeds] axis; best_params() is the winner's best seed
  assert res.params["w"].shape == (2, 2, 3) and res.opt_state[0].trace["w"].shape == (2, 2, 3)
  i = res.best_index()
  j = int(np.argmin(res.by_seed.eval[i]))
  np.testing.assert_array_equal(res.best_params()["w"], res.params["w"][i, j])
  np.testing.assert_allclose(eval_fn(res.best_params()), res.by_seed.eval[i, j], rtol=1e-6)
  np.testing.assert_array_equal(res.best_params(seed=0)["w"], res.params["w"][i, 0])


def test_best_aggregates_over_seeds_not_one_lucky_seed():
  # configuration 0 has one lucky seed (the lowest single number) but the higher mean
  def init(key):
    return {"w": jnp.zeros(()) + jax.random.uniform(key) * 0.0}

  res = sweep(
    lambda p, b: (p["w"] - b) ** 2,
    None,
    jnp.zeros((1,)),
    init_fn=init,
    seeds=2,
    optimizer=lambda h: optax.sgd(h["lr"]),
    grid={"lr": [0.1, 0.2]},
    num_steps=1,
    eval_fn=lambda p: p["w"] ** 2,
    eval_mode="min",
  )
  assert res.valid.all() and res.best()["lr"] == res.configs[res.best_index()]["lr"]
  fake = res._replace(by_seed=res.by_seed._replace(eval=np.array([[0.0, 10.0], [2.0, 3.0]])))
  assert fake.best_index() == 1 and fake.best_index(seed=0) == 0 and fake.best(seed=0)["eval"] == 0.0
  assert fake.table()[0]["eval_min"] == 0.0 and fake.table()[0]["eval_std"] == 5.0


def test_progress_bar_gives_the_same_numbers(capsys, vmapped):
  res = sweep(
    loss_fn,
    PARAMS,
    BATCHES,
    optimizer=adam_cosine,
    grid=GRID,
    num_steps=NUM_STEPS,
    eval_fn=eval_fn,
    eval_mode="min",
    progress=True,
  )
  np.testing.assert_allclose(res.losses, vmapped.losses, rtol=1e-6)
  np.testing.assert_allclose(res.train_loss, vmapped.train_loss, rtol=1e-6)
  np.testing.assert_allclose(res.eval, vmapped.eval, rtol=1e-6)
  assert f"{NUM_STEPS}/{NUM_STEPS}" in capsys.readouterr().err


def test_new_grid_values_reuse_the_compiled_program(vmapped):
  import sys

  from lr_jax import sweep as _  # noqa: F401  (the function; the module is sys.modules["lr_jax._sweep"])

  run_all = sys.modules["lr_jax._sweep"]._run_all
  n = run_all._cache_size()
  res = sweep(
    loss_fn,
    PARAMS,
    BATCHES,
    optimizer=adam_cosine,
    grid={"lr": [0.02, 0.03], "steps": [10, 40]},
    num_steps=NUM_STEPS,
    eval_fn=eval_fn,
    eval_mode="min",
  )
  assert run_all._cache_size() == n  # hyperparameters are traced arguments: no recompilation
  assert not np.allclose(res.losses, vmapped.losses)


def test_strict_dtype_promotion_with_seeds_and_progress():
  with jax.numpy_dtype_promotion("strict"):
    res = sweep(
      loss_fn,
      None,
      BATCHES,
      init_fn=init_fn,
      seeds=[1],
      optimizer=sgd_momentum,
      grid={"lr": [0.02, 0.05]},
      num_steps=4,
      eval_fn=eval_fn,
      eval_mode="min",
      progress=True,
    )
  assert res.valid.all() and res.losses.shape == (2, 4)


def test_strategy_rule():
  assert _choose_chunk("cpu", 32, None, 1e3) == 32  # small problem: vmap everything
  assert _choose_chunk("cpu", 32, None, 1e8) == 1  # large problem on CPU: one at a time
  assert _choose_chunk("gpu", 32, None, 1e8) == 32  # accelerators: vmap
  assert _choose_chunk("cpu", 32, 8, 0.0) == 8 and _choose_chunk("gpu", 4, 8, 0.0) == 4
  big = {"x": np.ones((1, 64, 512), np.float32)}
  res = sweep(
    lambda p, b: jnp.mean(jnp.tanh(b["x"] @ p) ** 2),
    jnp.ones((512, 512)) / 512,
    big,
    optimizer=lambda h: optax.sgd(h["lr"]),
    grid={"lr": [0.1, 0.2]},
    num_steps=2,
  )
  # the rule on this backend (an H200 run of the suite: "vmap", as the GPU line above says)
  want = ("map", 1) if jax.default_backend() == "cpu" else ("vmap", 2)
  assert (res.strategy, res.chunk_size) == want and res.valid.all()


def test_grid_expansion():
  assert expand_grid({"a": [1, 2], "b": np.array([0.5])}) == [{"a": 1, "b": 0.5}, {"a": 2, "b": 0.5}]
  assert expand_grid([{"a": 1, "b": 2}, {"b": 3, "a": 4}]) == [{"a": 1, "b": 2}, {"a": 4, "b": 3}]


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"grid": {}}, "`grid`"),
    ({"grid": {"lr": []}}, "`grid` axis 'lr'"),
    ({"grid": {"lr": ["fast"]}}, "`grid\\['lr'\\]` must be a number, got grid\\['lr'\\]='fast'"),
    ({"grid": [{"lr": 0.1}, {"rate": 0.1}]}, "`grid`"),
    ({"grid": {"lr": [0.1], "seeds": [0]}}, "seeds"),
    ({"num_steps": 0}, "num_steps"),
    ({"max_parallel": 0}, "max_parallel"),
    ({"optimizer": optax.sgd(0.1)}, "optimizer"),
    ({"eval_fn": lambda p: p["w"], "eval_mode": "min"}, "`eval_fn` must return a real scalar"),
    # complex: it was ranked by its real part (NumPy dropped the imaginary part with a ComplexWarning)
    ({"eval_fn": lambda p: p["b"] + 1j, "eval_mode": "min"}, "`eval_fn` must return a real scalar .*complex64"),
    # a 0-d array axis was a TypeError ('float' object is not iterable)
    ({"grid": {"lr": np.array(0.1)}}, "`grid` axis 'lr' must be a non-empty sequence of numbers, got 0.1"),
    # a key the grid lacks was a KeyError from inside the vmapped trace
    (
      {"optimizer": lambda h: optax.sgd(h["learning_rate"])},
      "`optimizer\\(hparams\\)` reads the key 'learning_rate', which the grid does not have; .*\\['lr'\\]",
    ),
    # not a transformation: was "AttributeError: BatchTracer has no attribute init"
    ({"optimizer": lambda h: h["lr"]}, "must return an optax.GradientTransformation .*dtype float32 and shape \\(\\)"),
    (
      {"eval_fn": eval_fn},
      "`eval_mode` must be 'min' or 'max' when eval_fn is given, got eval_mode=None\\.",
    ),
    (
      {"eval_fn": eval_fn, "eval_mode": "maximize"},
      "`eval_mode` must be 'min' or 'max' .*eval_mode='maximize'",
    ),
    ({"eval_mode": "max"}, "`eval_mode` .*needs an eval_fn, got eval_mode='max' with eval_fn=None"),
    ({"grid": {"lr": [0.1, float("nan")]}}, "`grid\\['lr'\\]` must be finite"),
    ({"grid": {"lr": [True]}}, "`grid\\['lr'\\]` must be a number"),
    ({"batches": [BATCH0, {"x": X[1, :5], "y": Y[1, :5]}]}, "same shapes, got leaf shapes .* for batch 1"),
    ({"batches": {"x": X, "y": Y[:2]}}, "`batches` .*leading axes \\[2, 4\\]"),
    ({"loss_fn": lambda p, b: b["x"] @ p["w"]}, "`loss_fn` must return a real scalar"),
  ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
  args = {
    "loss_fn": loss_fn,
    "params": PARAMS,
    "batches": BATCHES,
    "optimizer": sgd_momentum,
    "grid": {"lr": [0.1]},
    "num_steps": 3,
  }
  args.update(kwargs)
  with pytest.raises(ValueError, match=f"sweep: .*{match}"):
    sweep(args.pop("loss_fn"), args.pop("params"), args.pop("batches"), **args)


# ---------------------------------------------------------------------------------------- ranking


def neg_eval_fn(p):
  """An accuracy-like score: higher is better (the negated test MSE)."""
  return -eval_fn(p)


def test_eval_mode_max_ranks_by_the_highest_eval(vmapped):
  res = sweep(
    loss_fn,
    PARAMS,
    BATCHES,
    optimizer=adam_cosine,
    grid=GRID,
    num_steps=NUM_STEPS,
    eval_fn=neg_eval_fn,
    eval_mode="max",
  )
  assert res.eval_mode == "max" and vmapped.eval_mode == "min"
  np.testing.assert_allclose(res.eval, -vmapped.eval, rtol=1e-6)
  # the best by a higher-is-better score is the best by the test MSE, not the worst (issue 10, item 7)
  want = int(np.argmin(vmapped.eval))
  assert np.argmax(res.eval) == want and np.argmin(res.eval) != want
  assert res.best() == {**res.table()[want]} and res.best()["rank"] == 1
  assert {k: res.best()[k] for k in GRID} == vmapped.configs[want] == {k: vmapped.best()[k] for k in GRID}
  values, key, mode = res.score()
  assert (key, mode) == ("eval", "max") and np.array_equal(values, res.eval)
  assert [r["rank"] for r in res.table()] == list(4 - np.argsort(np.argsort(res.eval)))
  # explicit overrides still work: mode="min" on the accuracy picks the worst
  assert res.best(mode="min")["rank"] == 4
  assert res.best("train_loss")["train_loss"] == min(r["train_loss"] for r in res.table())
  assert res.score("train_loss")[1:] == ("train_loss", "min")


def test_without_eval_fn_rank_by_train_loss_over_the_whole_training_set():
  res = sweep(loss_fn, PARAMS, BATCHES, optimizer=sgd_momentum, grid={"lr": [0.001, 0.01, 0.05]}, num_steps=7)
  assert res.eval is None and res.eval_mode is None
  values, key, mode = res.score()
  assert (key, mode) == ("train_loss", "min") and res.best()["train_loss"] == np.nanmin(values)
  for i, lr in enumerate((0.001, 0.01, 0.05)):
    _, final, _ = plain_optax_run(optax.sgd(lr, momentum=0.9), PARAMS, num_steps=7)
    np.testing.assert_allclose(res.train_loss[i], final, rtol=2e-6)  # mean over all 4 batches


def test_invalid_configurations_have_no_rank_and_score_nan():
  res = sweep(
    loss_fn, PARAMS, BATCHES, optimizer=sgd_cosine, grid={"lr": [0.05, 1e4], "steps": [20]}, num_steps=5
  )
  assert res.valid.tolist() == [True, False]
  assert [r["rank"] for r in res.table()] == [1, None] and np.isnan(res.score()[0][1])
  with pytest.raises(ValueError, match="SweepResult.score: `key` must be 'train_loss' or"):
    res.score("eval")
  with pytest.raises(ValueError, match="SweepResult.score: `mode` must be 'min' or 'max', got mode='up'"):
    res.best(mode="up")


def test_repr_is_short_and_names_the_best():
  res = sweep(
    loss_fn,
    PARAMS,
    BATCHES,
    optimizer=sgd_momentum,
    grid={"lr": list(np.geomspace(1e-3, 0.1, 40))},
    num_steps=200,
    eval_fn=eval_fn,
    eval_mode="min",
  )
  text = repr(res)
  assert len(text) < 300, text
  best = res.best()
  assert text.startswith("SweepResult(40 configurations x 200 steps, 40 valid, best=(lr=")
  assert f"by eval (min) {best['eval']:.4g}" in text and repr(best["lr"]) in text


# ------------------------------------------------------------------------------- grid values, batches


def _mod7_rate(h):
  """Rate (T mod 7 + 1) / 100: exact integer arithmetic on the lane's T, so a wrapped T shows."""
  return optax.sgd((h["T"] % 7 + 1) * 0.01)


def _one_step(grid):
  return sweep(
    lambda w, b: 0.5 * jnp.sum(w**2),
    jnp.ones(()),
    jnp.zeros((1,)),
    optimizer=_mod7_rate,
    grid=grid,
    num_steps=1,
  )


def test_large_integer_grid_values_are_never_wrapped():
  # 2**32 + 10 was wrapped to 10 (int32) and both lanes ran with T = 10, marked valid (issue 10, item 4).
  with pytest.raises(ValueError, match="sweep: `grid` axis 'T' holds an integer past int32 .*T=4294967306"):
    _one_step({"T": [10, 2**32 + 10]})
  res = _one_step({"T": [10, 2**32]})  # float32 holds 2**32 exactly: the lane sees 4294967296.0
  assert res.configs == [{"T": 10}, {"T": 2**32}]
  rates = np.array([10 % 7 + 1, 2**32 % 7 + 1]) * 0.01  # 0.04, 0.05 (a wrap to 0 would give 0.01)
  np.testing.assert_allclose(res.train_loss, 0.5 * (1 - rates) ** 2, rtol=1e-6)
  assert _column("T", [10, 2**31 - 1]).dtype == np.int32 and _column("T", [1, 2**40]).dtype == np.float32


def test_large_integer_grid_values_with_x64_are_int64():
  with jax.enable_x64(True):
    res = _one_step({"T": [10, 2**32 + 10, np.int64(2**40 + 3)]})
    assert _column("T", [10, 2**32 + 10]).dtype == np.int64
  rates = np.array([10 % 7 + 1, (2**32 + 10) % 7 + 1, (2**40 + 3) % 7 + 1]) * 0.01
  np.testing.assert_allclose(res.train_loss, 0.5 * (1 - rates) ** 2, rtol=1e-12)
  assert res.valid.all()


def test_a_list_of_batches_is_stacked():
  listed = [{"x": X[j], "y": Y[j]} for j in range(4)]  # what a data loader yields
  kw = {"optimizer": sgd_momentum, "grid": {"lr": [0.01, 0.05]}, "num_steps": 9}
  a = sweep(loss_fn, PARAMS, listed, **kw)
  b = sweep(loss_fn, PARAMS, BATCHES, **kw)
  np.testing.assert_array_equal(a.losses, b.losses)
  np.testing.assert_array_equal(a.train_loss, b.train_loss)


def test_one_example_per_batch_warns():
  with pytest.warns(UserWarning, match="sweep: each batch holds a single example"):
    sweep(
      lambda w, b: (b[0] @ w - b[1]) ** 2,
      jnp.zeros(3),
      (X[0], Y[0]),
      optimizer=sgd_momentum,
      grid={"lr": [0.01]},
      num_steps=2,
    )


# ------------------------------------------------------------------------- compile cache, kept results


def _sweep_with_fresh_lambdas(scale=1.0, data=None):
  """Every call makes new function objects with the same code (as a notebook cell run again)."""
  return sweep(
    lambda p, b: loss_fn(p, b) * scale,
    PARAMS,
    BATCHES if data is None else data,
    optimizer=lambda h: optax.sgd(h["lr"], momentum=0.9),
    grid={"lr": [0.01, 0.02]},
    num_steps=5,
    eval_fn=lambda p: eval_fn(p),
    eval_mode="min",
  )


def test_fresh_lambdas_with_the_same_code_reuse_the_compiled_program():
  import sys

  run_all = sys.modules["lr_jax._sweep"]._run_all
  a = _sweep_with_fresh_lambdas()
  n = run_all._cache_size()
  b = _sweep_with_fresh_lambdas()  # new lambdas, same code, same captured values: no compile
  assert run_all._cache_size() == n
  np.testing.assert_array_equal(a.losses, b.losses)
  c = _sweep_with_fresh_lambdas(scale=2.0)  # a different captured number: a new program, the right numbers
  assert run_all._cache_size() == n + 1
  np.testing.assert_allclose(c.losses[:, 0], 2 * a.losses[:, 0], rtol=1e-6)
  _sweep_with_fresh_lambdas(scale=2.0)
  assert run_all._cache_size() == n + 1


def test_keep_params_false_keeps_only_the_winner():
  kw = {
    "optimizer": sgd_momentum,
    "grid": {"lr": [0.001, 0.01, 0.05]},
    "num_steps": 7,
    "eval_fn": eval_fn,
    "eval_mode": "min",
  }
  full = sweep(loss_fn, PARAMS, BATCHES, **kw)
  lean = sweep(loss_fn, PARAMS, BATCHES, keep_params=False, **kw)
  assert lean.params is None and lean.opt_state is None and full.params["w"].shape == (3, 3)
  i = full.best_index()
  assert lean.best_run.index == i == full.best_run.index and lean.best_run.seed == 0
  np.testing.assert_array_equal(lean.best_params()["w"], full.params["w"][i])
  np.testing.assert_array_equal(lean.best_opt_state()[0].trace["w"], full.opt_state[0].trace["w"][i])
  # the winner's params are what a plain loop with its hyperparameters trains
  tx = optax.sgd(full.configs[i]["lr"], momentum=0.9)
  p, s = PARAMS, tx.init(PARAMS)
  for t in range(7):
    u, s = tx.update(jax.grad(loss_fn)(p, {k: v[t % 4] for k, v in BATCHES.items()}), s, p)
    p = optax.apply_updates(p, u)
  np.testing.assert_allclose(full.best_params()["w"], p["w"], rtol=2e-6)
  if full.best_index("train_loss") != i:
    with pytest.raises(ValueError, match="SweepResult.best_params: with keep_params=False only the default"):
      lean.best_params("train_loss")
  worst = int(np.argmax(full.eval))
  with pytest.raises(ValueError, match="keep_params=False"):
    lean.best_params(mode="max")  # the worst by eval: not kept
  np.testing.assert_array_equal(full.best_params(mode="max")["w"], full.params["w"][worst])


def test_a_result_built_by_hand_takes_seed_0_and_names_a_bad_seed():
  from lr_jax import SweepResult

  res = SweepResult(
    np.zeros((2, 3)),
    np.array([1.0, 0.5]),
    None,
    None,
    [{"lr": 1}, {"lr": 2}],
    np.array([True, True]),
    "vmap",
    2,
    1,
  )
  assert res.best()["lr"] == 2 and res.best(seed=0) == res.best()
  with pytest.raises(
    ValueError, match=r"SweepResult.table: `seed` must be one of the sweep's seeds \[0\], got seed=1"
  ):
    res.table(seed=1)


def test_table_shows_numpy_and_jax_grid_values_as_python_scalars():
  # a grid of NumPy values (a list of np.int64, as np.arange(...) items give) printed as np.int64(10)
  configs = [{"steps": np.int64(10), "lr": np.float32(0.1)}, {"steps": np.int32(20), "lr": jnp.float32(0.3)}]
  res = SweepResult(
    np.zeros((2, 3)), np.array([1.0, 0.5]), None, None, configs, np.array([True, True]), "vmap", 2, 1
  )
  rows = res.table()
  assert [(type(r["steps"]), type(r["lr"])) for r in rows] == [(int, float)] * 2
  assert str(rows[0]).startswith("{'steps': 10, 'lr': 0.1, 'train_loss': 1.0,")
  assert np.float32(rows[0]["lr"]) == np.float32(0.1) and rows[1]["lr"] == 0.3  # the same float32 value
  assert "best=(steps=20, lr=0.3)" in repr(res)


def test_a_key_error_of_the_optimizers_own_is_not_blamed_on_the_grid():
  # the key is a grid axis: the KeyError comes from the user's own dict, not from `hparams`
  table = {"momentum": 0.9}
  with pytest.raises(KeyError, match="lr"):
    sweep(loss_fn, PARAMS, BATCHES, optimizer=lambda h: optax.sgd(h["lr"] * table["lr"]), grid={"lr": [0.1]},
          num_steps=3)  # fmt: skip
