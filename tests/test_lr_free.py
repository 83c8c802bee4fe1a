"""Generic tests of the learning-rate-free optimizers (prodigy, dadapt_*, dog, ldog) and the averager.

Without the reference packages (their parity is in tests/parity/): vmap over every numeric
hyperparameter equals a Python loop, invalid values raise eagerly and give NaN lanes when traced,
composition with ``optax.chain`` (clipping first) and schedules, strict dtype promotion, no retracing,
and the step-size fields of the states.
"""

import math

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


def _run(tx, params=PARAMS, k=K):
  """``k`` updates, jitted (one compile beats eager dispatch of every operation)."""
  return jax.jit(_run_scan, static_argnums=(0, 2))(tx, params, k)


def _step_size(state, field):
  return jnp.stack(jax.tree.leaves(getattr(state, field)))


def _lanes(hps, pick):
  """Lane 0: every hyperparameter at its first value; lane i: hyperparameter i at ``pick(values)``."""
  base = {k: v[0] for k, v in hps.items()}
  lanes = [base] + [{**base, k: pick(v)} for k, v in hps.items()]
  return {k: jnp.asarray([lane[k] for lane in lanes], jnp.float32) for k in hps}


@pytest.mark.parametrize("name", CASES)
def test_vmap_over_each_hyperparameter_equals_a_loop(name):
  """One vmapped run over 1 + n lanes (each lane changes one hyperparameter) == the lanes one by one.

  Within float32 rounding: vmap batches the reductions over the tree (another summation order),
  and the estimated step sizes amplify it a little (measured 3e-6 relative)."""
  make, hps, field = CASES[name]

  @jax.jit
  def run(values):
    p, s = _run_scan(make(**values))
    return p, _step_size(s, field)

  grid = _lanes(hps, lambda v: v[1])
  p_vmap, d_vmap = jax.vmap(run)(grid)
  for i, k in enumerate(["(defaults)", *hps]):
    p_loop, d_loop = run({key: grid[key][i] for key in hps})
    chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], p_vmap), p_loop, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(d_vmap[i], d_loop, rtol=2e-5, err_msg=k)
    moved = float(jnp.max(jnp.abs(p_vmap["w"][i] - p_vmap["w"][0])))
    inert = ("eps", "growth_rate", "reps_rel", "init_eta") + (
      ("weight_decay",) if name == "dadapt_adagrad" else ()
    )
    assert i == 0 or moved > 0 or k in inert, (name, k)  # the lane did differ


@pytest.mark.parametrize("name", CASES)
def test_invalid_values_raise_eagerly_and_give_nan_lanes_when_traced(name):
  make, hps, _ = CASES[name]
  for k, (_, _, bad) in hps.items():
    with pytest.raises(ValueError, match=rf"{name}: `{k}` must .*{k}="):
      make(**{k: bad})
  out = jax.jit(jax.vmap(lambda v: _run_scan(make(**v), k=2)[0]))(_lanes(hps, lambda v: v[2]))
  w = np.asarray(out["w"]).reshape(len(hps) + 1, -1)
  # with init_eta given, DoG ignores reps_rel (the reference sets it to 0): that lane stays valid
  ignored = [k == "reps_rel" and "init_eta" in hps for k in hps]
  assert np.all(np.isfinite(w[0])), name
  for k, bad_lane, skip in zip(hps, w[1:], ignored, strict=True):
    assert np.all(np.isfinite(bad_lane) if skip else np.isnan(bad_lane)), (name, k)


@pytest.mark.parametrize("name", CASES)
def test_state_exposes_the_step_size_and_reduces_over_the_whole_tree(name):
  make, _, field = CASES[name]
  _, state = _run(make())
  size = getattr(state, field)
  if name == "ldog":  # one step size per leaf
    assert jax.tree.structure(size) == jax.tree.structure(PARAMS)
    assert len({float(x) for x in jax.tree.leaves(size)}) == 2
  else:
    assert size.shape == () and size.dtype == jnp.float32 and float(size) > 0
  # the same run on the two leaves concatenated into one gives the same step size (global d / eta)
  flat = {"x": jnp.concatenate([PARAMS["b"], PARAMS["w"].ravel()])}
  if name != "ldog":
    _, flat_state = _run(make(), flat)
    np.testing.assert_allclose(float(getattr(flat_state, field)), float(size), rtol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_chain_with_clipping_first_and_strict_promotion(name):
  make, _, _ = CASES[name]
  tx = optax.chain(O.clip_grad_norm(0.5), make())
  inner = make()

  def by_hand(params):  # the same as clipping the gradients by hand
    def body(carry, _):
      q, state = carry
      g = _grad(q)
      norm = optax.tree.norm(g)
      g = jax.tree.map(lambda x: x * jnp.minimum(1.0, 0.5 / (norm + 1e-6)), g)
      u, state = inner.update(g, state, q)
      return (optax.apply_updates(q, u), state), None

    return jax.lax.scan(body, (params, inner.init(params)), None, length=K)[0][0]

  with jax.numpy_dtype_promotion("strict"):
    p, _ = _run(tx)
    q = jax.jit(by_hand)(PARAMS)
  chex.assert_trees_all_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_jitted_update_does_not_retrace_and_needs_params(name):
  make, _, _ = CASES[name]
  tx = make()
  traces = []

  def traced_update(g, s, p):
    traces.append(1)
    return tx.update(g, s, p)

  update = jax.jit(traced_update)
  state = tx.init(PARAMS)
  for _ in range(3):
    _, state = update(_grad(PARAMS), state, PARAMS)
  assert len(traces) == 1  # the state's dtypes and structure are stable
  if name not in ("dadapt_adam",):  # uses params only for weight decay
    with pytest.raises(ValueError, match=rf"{name}: `params` must be passed"):
      tx.update(_grad(PARAMS), tx.init(PARAMS))


@pytest.mark.parametrize("name", CASES)
def test_complex_params_raise_instead_of_a_silent_wrong_number(name):
  """The global inner products and norms are not defined for complex params as torch.view_as_real
  would give; before this check, prodigy/dadapt dropped the imaginary direction and dog gave NaN."""
  make, _, _ = CASES[name]
  params = {"w": jnp.ones((3,), jnp.complex64), "b": jnp.zeros((2,))}
  with pytest.raises(ValueError, match=rf"{name}: complex params are not supported.*dtype=complex64"):
    make().init(params)


@pytest.mark.parametrize("name", CASES)
def test_update_step_donates_params_and_state(name):
  """No state leaf shares a buffer with the params or another leaf (donation would fail)."""
  make, _, _ = CASES[name]
  tx = optax.chain(make(), O.polynomial_decay_average()) if name == "dog" else make()
  step = O.update_step(tx)
  params = jax.tree.map(jnp.copy, PARAMS)
  state = tx.init(params)
  buffers = [x.unsafe_buffer_pointer() for x in jax.tree.leaves((params, state))]
  assert len(set(buffers)) == len(buffers)  # else XLA copies (and logs an error) at every step
  for _ in range(2):
    params, state = step(params, state, _grad(params))
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))


def test_prodigy_with_a_cosine_multiplier_ends_still():
  """learning_rate = cosine(1, T): the multiplier of d, as prodigyopt recommends; the last updates
  (multiplier 0) do not move the params, and d stops changing."""
  tx = O.prodigy(S.cosine_annealing(1.0, 6))
  p6, s6 = _run(tx, k=6)
  p8, s8 = _run(tx, k=8)
  chex.assert_trees_all_equal(p6, p8)
  assert float(s6.d) == float(s8.d) and int(s8.count) == 8 and int(s8.k) == 6


def test_polynomial_decay_average_closed_form():
  """gamma = 0 is the running mean of the iterates; avg_1 is the first iterate."""
  tx = optax.chain(O.dog(), O.polynomial_decay_average(0.0))
  params, iterates = PARAMS, []
  state = tx.init(params)
  for _ in range(5):
    u, state = tx.update(_grad(params), state, params)
    params = optax.apply_updates(params, u)
    iterates.append(params)
  mean = jax.tree.map(lambda *xs: sum(xs) / len(xs), *iterates)
  chex.assert_trees_all_close(state[1].average, mean, rtol=1e-6)
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
