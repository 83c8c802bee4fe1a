"""Generic tests of the learning-rate-free optimizers (prodigy, dadapt_*, dog, ldog) and the averager.

Without the reference packages (their parity is in tests/parity/): vmap over every numeric
hyperparameter equals a Python loop, invalid values raise eagerly and give NaN lanes when traced,
composition with ``optax.chain`` (clipping first) and schedules, strict dtype promotion, no retracing,
and the step-size fields of the states.
"""

import contextlib
import functools
import importlib.util
import io
import json
import math
import re
import types
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S

# name -> (constructor, {hyperparameter: (value, other value, invalid value)}, step-size field)
CASES = {
  "prodigy": (
    O.prodigy,
    {
      "learning_rate": (1.0, 0.5, -1.0),
      "b1": (0.9, 0.5, 1.0),
      "b2": (0.999, 0.99, -0.1),
      "b3": (0.99, 0.9, 1.5),
      "eps": (1e-8, 1e-4, 0.0),
      "weight_decay": (0.0, 0.1, -0.1),
      "d0": (1e-6, 1e-3, 0.0),
      "d_coef": (1.0, 2.0, -1.0),
      "growth_rate": (math.inf, 1.05, 0.0),
    },
    "d",
  ),
  "dadapt_adam": (
    O.dadapt_adam,
    {
      "learning_rate": (1.0, 0.5, -1.0),
      "b1": (0.9, 0.5, -0.5),
      "b2": (0.999, 0.99, 1.0),
      "eps": (1e-8, 1e-4, -1.0),
      "weight_decay": (0.0, 0.1, -0.1),
      "d0": (1e-6, 1e-3, -1e-6),
      "growth_rate": (math.inf, 1.05, -1.0),
    },
    "d",
  ),
  "dadapt_sgd": (
    O.dadapt_sgd,
    {
      "learning_rate": (1.0, 0.5, -1.0),
      "momentum": (0.0, 0.9, 1.0),
      "weight_decay": (0.0, 0.1, -0.1),
      "d0": (1e-6, 1e-3, 0.0),
      "growth_rate": (math.inf, 1.05, 0.0),
    },
    "d",
  ),
  "dadapt_adagrad": (
    O.dadapt_adagrad,
    {
      "learning_rate": (1.0, 0.5, -1.0),
      "momentum": (0.0, 0.9, -0.1),
      "weight_decay": (0.0, 0.1, -0.1),
      "eps": (1e-6, 1e-3, 0.0),
      "d0": (1e-6, 1e-3, 0.0),
      "growth_rate": (math.inf, 1.05, 0.0),
    },
    "d",
  ),
  "dog": (
    O.dog,
    {
      "learning_rate": (1.0, 0.5, -1.0),
      "reps_rel": (1e-6, 1e-3, 0.0),
      "eps": (1e-8, 1e-4, -1.0),
      "weight_decay": (0.0, 0.1, -0.1),
      "init_eta": (1e-3, 1e-2, 0.0),
    },
    "eta",
  ),
  "ldog": (
    O.ldog,
    {
      "learning_rate": (1.0, 0.5, -1.0),
      "reps_rel": (1e-6, 1e-3, 0.0),
      "eps": (1e-8, 1e-4, -1.0),
      "weight_decay": (0.0, 0.1, -0.1),
      "init_eta": (1e-3, 1e-2, 0.0),
    },
    "eta",
  ),
}
K = 8  # updates per run
PARAMS = {"b": jnp.array([0.5, -1.0, 2.0]), "w": jnp.array([[1.0, -0.5], [0.25, 2.0]])}


def _grad(p):
  return jax.tree.map(lambda x: 1.5 * x - jnp.sin(x) + 0.1, p)


def _run_scan(tx, params=PARAMS, k=K):
  def body(carry, _):
    p, s = carry
    u, s = tx.update(_grad(p), s, p)
    return (optax.apply_updates(p, u), s), None

  (p, s), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=k)
  return p, s


def _step_size(state, field):
  return jnp.stack(jax.tree.leaves(getattr(state, field)))


def _lanes(hps, pick):
  """Lane 0: every hyperparameter at its first value; lane i: hyperparameter i at ``pick(values)``."""
  base = {k: v[0] for k, v in hps.items()}
  lanes = [base] + [{**base, k: pick(v)} for k, v in hps.items()]
  return {k: jnp.asarray([lane[k] for lane in lanes], jnp.float32) for k in hps}


# XLA:CPU without its expensive LLVM passes: these programs run 8 updates, their compilation is the cost
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
FLAT = {"x": jnp.concatenate([PARAMS["b"], PARAMS["w"].ravel()])}


def _clipped_by_hand(make, params):
  """``K`` updates of ``make()`` on gradients clipped to norm 0.5 by hand (what the chain must equal)."""
  inner = make()

  def body(carry, _):
    q, state = carry
    g = _grad(q)
    norm = optax.tree.norm(g)
    g = jax.tree.map(lambda x: x * jnp.minimum(1.0, 0.5 / (norm + 1e-6)), g)
    u, state = inner.update(g, state, q)
    return (optax.apply_updates(q, u), state), None

  return jax.lax.scan(body, (params, inner.init(params)), None, length=K)[0][0]


@functools.cache
def _outputs(name):
  """Everything the per-optimizer tests below compare, from ONE compiled program per optimizer (a
  compilation costs far more than these 8-update runs; one program instead of seven keeps this file
  fast). Traced under strict dtype promotion, so every part of it is also a promotion check:

  * ``vmap`` / ``loop``: ``K`` updates for each lane of ``_lanes(hps, v[1])`` (lane i changes
    hyperparameter i), vmapped, and the same lanes one after another (``lax.map``: a loop, no
    batching); params and the step size.
  * ``bad``: the params of ``_lanes(hps, v[2])`` (invalid values), vmapped in the same run as
    ``vmap`` (its lanes 1 + n ... 2n; lane 0 is the defaults in both).
  * ``size`` / ``flat_size``: the step-size field after ``K`` updates at the defaults (Python
    hyperparameters: the static path), on ``PARAMS`` and on its two leaves concatenated.
  * ``chain`` / ``by_hand``: ``optax.chain(clip_grad_norm(0.5), make())`` and clipping by hand.
  """
  make, hps, field = CASES[name]

  def lane(values):
    p, s = _run_scan(make(**values))
    return p, _step_size(s, field)

  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def program(grid, bad):
    both = jax.tree.map(lambda g, b: jnp.concatenate([g, b[1:]]), grid, bad)
    p_both, d_both = jax.vmap(lane)(both)
    n = len(hps) + 1
    _, state = _run_scan(make())
    _, flat_state = _run_scan(make(), FLAT)
    return {
      "vmap": jax.tree.map(lambda x: x[:n], (p_both, d_both)),
      "loop": jax.lax.map(lane, grid),
      "bad": jax.tree.map(lambda x: jnp.concatenate([x[:1], x[n:]]), p_both),
      "size": getattr(state, field),
      "flat_size": getattr(flat_state, field),
      "chain": _run_scan(optax.chain(O.clip_grad_norm(0.5), make()))[0],
      "by_hand": _clipped_by_hand(make, PARAMS),
    }

  with jax.numpy_dtype_promotion("strict"):
    return jax.device_get(program(_lanes(hps, lambda v: v[1]), _lanes(hps, lambda v: v[2])))


@pytest.mark.parametrize("name", CASES)
def test_vmap_over_each_hyperparameter_equals_a_loop(name):
  """One vmapped run over 1 + n lanes (each lane changes one hyperparameter) == the lanes one by one.

  Within float32 rounding: vmap batches the reductions over the tree (another summation order),
  and the estimated step sizes amplify it a little (measured 3e-6 relative)."""
  _, hps, _ = CASES[name]
  out = _outputs(name)
  (p_vmap, d_vmap), (p_loop, d_loop) = out["vmap"], out["loop"]
  chex.assert_trees_all_close(p_vmap, p_loop, rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(d_vmap, d_loop, rtol=2e-5)
  inert = ("eps", "growth_rate", "reps_rel", "init_eta") + (
    ("weight_decay",) if name == "dadapt_adagrad" else ()
  )
  for i, k in enumerate(hps, start=1):
    moved = float(np.max(np.abs(p_vmap["w"][i] - p_vmap["w"][0])))
    assert moved > 0 or k in inert, (name, k)  # the lane did differ


@pytest.mark.parametrize("name", CASES)
def test_invalid_values_raise_eagerly_and_give_nan_lanes_when_traced(name):
  make, hps, _ = CASES[name]
  for k, (_, _, bad) in hps.items():
    with pytest.raises(ValueError, match=rf"{name}: `{k}` must .*{k}="):
      make(**{k: bad})
  w = np.asarray(_outputs(name)["bad"]["w"]).reshape(len(hps) + 1, -1)
  # with init_eta given, DoG ignores reps_rel (the reference sets it to 0): that lane stays valid
  ignored = [k == "reps_rel" and "init_eta" in hps for k in hps]
  assert np.all(np.isfinite(w[0])), name
  for k, bad_lane, skip in zip(hps, w[1:], ignored, strict=True):
    assert np.all(np.isfinite(bad_lane) if skip else np.isnan(bad_lane)), (name, k)


@pytest.mark.parametrize("name", CASES)
def test_state_exposes_the_step_size_and_reduces_over_the_whole_tree(name):
  out = _outputs(name)
  size = out["size"]
  if name == "ldog":  # one step size per leaf
    assert jax.tree.structure(size) == jax.tree.structure(PARAMS)
    assert len({float(x) for x in jax.tree.leaves(size)}) == 2
  else:
    assert size.shape == () and size.dtype == np.float32 and float(size) > 0
    # the same run on the two leaves concatenated into one gives the same step size (global d / eta)
    np.testing.assert_allclose(float(out["flat_size"]), float(size), rtol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_chain_with_clipping_first_and_strict_promotion(name):
  """``optax.chain(clip_grad_norm(0.5), make())`` == clipping by hand, traced under strict promotion."""
  out = _outputs(name)
  chex.assert_trees_all_close(out["chain"], out["by_hand"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_update_step_donates_compiles_once_and_update_needs_params(name):
  """``update_step`` over three updates: one compilation (the state's dtypes and structure are
  stable), params and state donated (no state leaf shares a buffer with the params or another leaf:
  donation would fail); ``update`` without ``params`` is a named error."""
  make, _, _ = CASES[name]
  tx = optax.chain(make(), O.polynomial_decay_average()) if name == "dog" else make()
  step = O.update_step(tx)
  params = jax.tree.map(jnp.copy, PARAMS)
  state = tx.init(params)
  buffers = [x.unsafe_buffer_pointer() for x in jax.tree.leaves((params, state))]
  assert len(set(buffers)) == len(buffers)  # else XLA copies (and logs an error) at every step
  for _ in range(3):
    params, state = step(params, state, _grad(params))
  assert step.jitted._cache_size() == 1
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))
  if name not in ("dadapt_adam",):  # uses params only for weight decay
    with pytest.raises(ValueError, match=rf"{name}: `params` must be passed"):
      make().update(_grad(PARAMS), make().init(PARAMS))


@pytest.mark.parametrize("name", CASES)
def test_complex_params_raise_instead_of_a_silent_wrong_number(name):
  """The global inner products and norms are not defined for complex params as torch.view_as_real
  would give; before this check, prodigy/dadapt dropped the imaginary direction and dog gave NaN."""
  make, _, _ = CASES[name]
  params = {"w": jnp.ones((3,), jnp.complex64), "b": jnp.zeros((2,))}
  with pytest.raises(ValueError, match=rf"{name}: complex params are not supported.*dtype=complex64"):
    make().init(params)


@pytest.mark.parametrize(
  ("make", "dtype", "fixed"),
  [
    (O.prodigy, jnp.bfloat16, dict(d0=1e-3)),
    (O.dog, jnp.float16, dict(reps_rel=1e-2)),
    (O.ldog, jnp.bfloat16, dict(init_eta=1e-2)),
  ],
  ids=["prodigy-bfloat16", "dog-float16", "ldog-bfloat16"],
)
def test_sixteen_bit_params_at_the_default_initial_step_warn_that_they_cannot_move(make, dtype, fixed):
  """At the default d0 / reps_rel the first steps round away in 16 bits, the params never move and the
  step size never grows (silently: training stops at the start). It warns; the fix it names trains."""
  params = {"w": jnp.linspace(-1.5, 1.5, 16).astype(dtype)}

  def moved(tx):  # 10 steps towards 0 (gradient = params) in one scan; how far the params went
    def body(c, _):
      p, s = c
      u, s = tx.update(p, s, p)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=10))(params)
    return float(jnp.max(jnp.abs(p["w"].astype(jnp.float32) - params["w"].astype(jnp.float32))))

  name = make.__name__
  with pytest.warns(RuntimeWarning, match=rf"^{name}: {jnp.dtype(dtype).name} params with (d0|reps_rel)=1e-06"):
    assert moved(make()) == 0.0  # what the warning says: not one param moved
  import warnings

  with warnings.catch_warnings():
    warnings.simplefilter("error")  # the named fix, and float32 params, do not warn
    assert moved(make(**fixed)) > 0.05
    make().init({"w": params["w"].astype(jnp.float32)})


def _history(tx, field, k):
  """``k`` updates in one compiled scan: the params and ``state[field]`` after every update, and the
  final state."""

  def body(carry, _):
    p, s = carry
    u, s = tx.update(_grad(p), s, p)
    p = optax.apply_updates(p, u)
    return (p, s), (p, field(s))

  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def run(params):
    (_, s), (ps, fs) = jax.lax.scan(body, (params, tx.init(params)), None, length=k)
    return ps, fs, s

  return jax.device_get(run(PARAMS))  # NumPy: slicing the results compiles nothing


def test_prodigy_with_a_cosine_multiplier_ends_still():
  """learning_rate = cosine(1, T): the multiplier of d, as prodigyopt recommends; the last updates
  (multiplier 0) do not move the params, and d stops changing."""
  ps, ds, s8 = _history(O.prodigy(S.cosine_annealing(1.0, 6)), lambda s: s.d, 8)
  chex.assert_trees_all_equal(*(jax.tree.map(lambda x, i=i: x[i], ps) for i in (5, 7)))  # after 6 == after 8
  assert float(np.max(np.abs(ps["w"][5] - ps["w"][4]))) > 0  # update 6 did move
  assert float(ds[5]) == float(ds[7]) and int(s8.count) == 8 and int(s8.k) == 6


def test_polynomial_decay_average_closed_form():
  """gamma = 0 is the running mean of the iterates; avg_1 is the first iterate."""
  iterates, averages, _ = _history(
    optax.chain(O.dog(), O.polynomial_decay_average(0.0)), lambda s: s[1].average, 5
  )
  for t in range(5):
    mean = jax.tree.map(lambda x, t=t: np.mean(x[: t + 1], axis=0), iterates)
    chex.assert_trees_all_close(jax.tree.map(lambda x, t=t: x[t], averages), mean, rtol=1e-6)
  with pytest.raises(ValueError, match=r"polynomial_decay_average: `gamma` must be >= 0, got gamma=-1"):
    O.polynomial_decay_average(-1.0)


def test_slice_p_validation_and_memory():
  with pytest.raises(ValueError, match=r"prodigy: `slice_p` must be a whole number >= 1.*slice_p=0"):
    O.prodigy(slice_p=0)
  state = O.prodigy(slice_p=3).init(PARAMS)
  assert state.s["w"].shape == (2,) and state.p0["b"].shape == (1,)


def test_static_arguments_under_inject_hyperparams_name_the_fix():
  """inject_hyperparams turns every numeric default into an array; the error says what to pass."""
  with pytest.raises(ValueError, match=r"prodigy: `slice_p`.*static_args=\('slice_p',\)"):
    optax.inject_hyperparams(O.prodigy)(1.0).init(PARAMS)
  with pytest.raises(ValueError, match=r"clip_grad_norm: `norm_type`.*static_args=\('norm_type',\)"):
    optax.inject_hyperparams(O.clip_grad_norm)(1.0).init(PARAMS)
  for tx in (
    optax.inject_hyperparams(O.prodigy, static_args=("slice_p",))(1.0),
    optax.inject_hyperparams(O.clip_grad_norm, static_args=("norm_type",))(1.0),
  ):
    updates, _ = jax.jit(tx.update)(_grad(PARAMS), tx.init(PARAMS), PARAMS)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


# ------------------------------------------------------------------- the tutorial (examples/lr_free.py)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "examples" / "lr_free.json"  # what `python examples/lr_free.py --steps 400 --json` wrote
QUOTED = r"```text\n(python examples/lr_free.py.*?)\n(.*?)```"


def _script():
  """examples/lr_free.py as a module (its ``main`` does not run on import)."""
  spec = importlib.util.spec_from_file_location("lr_free_example", ROOT / "examples" / "lr_free.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _quoted(text: str) -> tuple[str, list[str]]:
  """The command and output lines of the first ``python examples/lr_free.py`` block of ``text``."""
  block = re.search(QUOTED, text, flags=re.DOTALL)
  assert block is not None
  return block.group(1), block.group(2).rstrip("\n").split("\n")


def test_the_committed_results_are_what_the_script_reports():
  """examples/lr_free.json holds the numbers of a full run and the lines it printed; the script's own
  ``report`` turns those numbers into exactly those lines (so the lines are not edited by hand, and a
  change of the report's format shows up here), and each table's best value is its row's minimum."""
  doc = json.loads(RESULTS.read_text())
  steps = int(doc["command"].split("--steps ")[1])
  assert doc["command"] == f"python examples/lr_free.py --steps {steps}" and steps == 400
  script = _script()
  assert script.report(doc["tasks"], steps) == doc["lines"]
  assert list(doc["tasks"]) == ["digits", "diabetes"]
  for summary in doc["tasks"].values():
    assert list(summary["methods"]) == list(script.methods(steps))
    for m in summary["methods"].values():
      assert len(m["calibration"]) == 16 and m["calibration"][6] == m["x_at_default"][0]  # lane 6: default


def test_the_readme_and_the_tutorial_quote_the_committed_results():
  """README.md's subsection quotes the tables, examples/README.md's section the whole output, both
  verbatim; every result in the section's prose (a number with 2+ decimals) is one the script printed."""
  doc = json.loads(RESULTS.read_text())
  lines = doc["lines"]
  readme = (ROOT / "README.md").read_text()
  sub = readme.split("### Learning-rate-free and schedule-free optimizers", 1)[1].split("\n## ", 1)[0]
  command, quoted = _quoted(sub.split("\n### ", 1)[0])
  assert command == doc["command"]
  assert quoted == lines[: lines.index(next(line for line in lines if line.startswith("(*"))) + 1]
  tutorial = (ROOT / "examples" / "README.md").read_text()
  section = tutorial.split("## When you would rather not pick a learning rate", 1)[1].split("\n## ", 1)[0]
  command, quoted = _quoted(section)
  assert command == doc["command"] and quoted == lines
  assert "figures/lr_free.png" in section and "figures/lr_free_diabetes.png" in section
  prose = re.sub(r"```.*?```", "", section, flags=re.DOTALL).replace("arXiv 2505.24005", "")
  printed = set(re.findall(r"\d+\.\d+(?:e-\d+)?", " ".join(lines)))
  numbers = re.findall(r"(?<![\w^.-])\d+\.\d{2,}(?![\w.])", prose)
  assert len(numbers) > 40 and not set(numbers) - printed, set(numbers) - printed


def test_the_script_runs_end_to_end(tmp_path, monkeypatch):
  """``main`` with ``--json``, 2 updates, on the diabetes task, one method and a stand-in for
  ``lr_find``: the wiring of a full run (which compiles 14 vmapped trainings and 4 range tests:
  minutes on 2 cores) in one compilation. The full run's numbers are checked above; its figures are
  the committed PNGs (drawing them here would double this test's time)."""
  script = _script()
  dog = script.methods(2)["dog + averaging"]
  monkeypatch.setattr(script, "methods", lambda steps: {"dog + averaging": dog})
  monkeypatch.setattr(script, "TASKS", {"diabetes": script.TASKS["diabetes"]})
  fake = types.SimpleNamespace(lr_find=lambda *a, **k: types.SimpleNamespace(suggestion=0.1))
  monkeypatch.setattr(script, "lr_jax", fake)
  out = tmp_path / "results.json"
  with contextlib.redirect_stdout(io.StringIO()) as printed:
    assert script.main(["--steps", "2", "--json", str(out)]) == 0
  doc = json.loads(out.read_text())
  lines = doc["lines"]
  assert printed.getvalue().rstrip("\n").split("\n") == lines
  assert lines[0].startswith("diabetes regression MLP (10-32-1), batches of 32, 2 updates")
  assert [line.split()[0] for line in lines].count("dog") == 2  # the table's row, the estimate's row
  m = doc["tasks"]["diabetes"]["methods"]["dog + averaging"]
  assert 0 < m["x_at_default"][0] < 2 and len(m["calibration"]) == 16 and len(m["estimates"]) == 2


def test_the_diabetes_task_validates_and_standardises():
  """``tasks.make_diabetes`` (the tutorial's second task): named errors; features and targets have
  mean 0 and variance 1 on the training split; the batches are the training patients, shuffled."""
  from lr_jax import tasks

  for bad in (0, 343):
    with pytest.raises(ValueError, match=rf"tasks.make_diabetes: `batch_size` must be in \[1, 342\].*={bad}"):
      tasks.make_diabetes(batch_size=bad)
  with pytest.raises(ValueError, match=r"tasks.make_diabetes: `seed` must be >= 0, got seed=-1"):
    tasks.make_diabetes(seed=-1)
  with pytest.raises(ValueError, match=r"diabetes_data: `test_size` must be in \[1, 440\], got test_size=0"):
    tasks.diabetes_data(test_size=0)
  d = tasks.diabetes_data()
  np.testing.assert_allclose(d["x_train"].mean(0), 0, atol=1e-6)
  np.testing.assert_allclose([d["x_train"].std(0).min(), d["y_train"].std()], 1, rtol=1e-5)
  xb, yb = tasks.make_diabetes(batch_size=100).batches
  assert xb.shape == (3, 100, 10) and yb.shape == (3, 100)
  rows = {tuple(r) for r in d["x_train"].round(5)}
  assert all(tuple(r) in rows for r in np.asarray(xb).reshape(-1, 10).round(5))
