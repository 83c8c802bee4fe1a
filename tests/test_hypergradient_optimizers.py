"""Online hypergradient descent (``optimizers.hypergradient_sgd`` / ``hypergradient_adam``).

Parity with the paper's update rules written independently as a plain NumPy loop (float64, on one
flat vector, the gradients of a logistic regression derived by hand): the params and the adapted
rate (``current_lr``) after every update, for both rules (additive, multiplicative) and both
optimizers, with momentum / Nesterov / dampening / weight decay. Then the package's contract: vmap
over every numeric hyperparameter equals a loop, invalid values raise eagerly and give NaN lanes when
traced, ``current_lr`` through ``optax.chain`` and ``optax.inject_hyperparams``, complex leaves as
pairs of reals, a saturating counter, and a checkpoint round trip that resumes bit for bit.

The authors' PyTorch code (gbaydin/hypergradient-descent) is not on PyPI (``hypergrad`` there is
another package), so there is no parity test against it; its differences are in the docstrings.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
K = 12  # updates per parity run

# logistic regression: 16 points, 4 features, 4 batches of 4 (cycled)
_rng = np.random.default_rng(0)
X = _rng.normal(size=(16, 4))
Y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 * _rng.normal(size=16) > 0).astype(np.float64)
P0 = np.array([0.2, -0.1, 0.3, 0.05, 0.1])  # w (4) then b (the flat NumPy vector)


def _np_grad(p, t):
  """The gradient of the mean binary cross-entropy on batch ``t % 4``, by hand."""
  xb, yb = X[4 * (t % 4) : 4 * (t % 4) + 4], Y[4 * (t % 4) : 4 * (t % 4) + 4]
  r = 1 / (1 + np.exp(-(xb @ p[:4] + p[4]))) - yb
  return np.concatenate([xb.T @ r / 4, [r.mean()]])


def _np_adapt(alpha, g, d_prev, beta, variant):
  """The paper's rules, with h_t = -g_t . d_{t-1}: additive alpha - beta h, multiplicative normalised."""
  h = -g @ d_prev
  if variant == "additive":
    return alpha - beta * h
  n = np.linalg.norm(g) * np.linalg.norm(d_prev)
  return alpha * (1 - beta * h / n) if n > 0 else alpha


def np_sgd_hd(lr, beta, variant, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, k=K):
  """SGD-HD / SGDN-HD: the rate moves first, then the PyTorch-style (momentum) step with it."""
  p, alpha, d_prev, buf = P0.copy(), lr, np.zeros_like(P0), None
  ps, rates = [], []
  for t in range(k):
    g = _np_grad(p, t) + weight_decay * p
    alpha = _np_adapt(alpha, g, d_prev, beta, variant)
    d = g
    if momentum:
      buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
      d = g + momentum * buf if nesterov else buf
    p = p - alpha * d
    d_prev = d
    ps.append(p)
    rates.append(alpha)
  return np.array(ps), np.array(rates)


def np_adam_hd(lr, beta, variant, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, k=K):
  """Adam-HD (the paper's algorithm): u_t = -alpha_t m_hat / (sqrt(v_hat) + eps)."""
  p, alpha, d_prev = P0.copy(), lr, np.zeros_like(P0)
  m, v = np.zeros_like(P0), np.zeros_like(P0)
  ps, rates = [], []
  for t in range(1, k + 1):
    g = _np_grad(p, t - 1) + weight_decay * p
    alpha = _np_adapt(alpha, g, d_prev, beta, variant)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    d = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    p = p - alpha * d
    d_prev = d
    ps.append(p)
    rates.append(alpha)
  return np.array(ps), np.array(rates)


# name -> (lr_jax optimizer kwargs, reference loop, its kwargs)
PARITY = {
  "sgd_additive": (O.hypergradient_sgd, {"learning_rate": 0.5, "hypergrad_lr": 2.0}, np_sgd_hd),
  "sgd_multiplicative": (
    O.hypergradient_sgd,
    {"learning_rate": 0.5, "hypergrad_lr": 0.3, "variant": "multiplicative"},
    np_sgd_hd,
  ),
  "sgd_momentum_dampening_decay": (
    O.hypergradient_sgd,
    {"learning_rate": 0.2, "hypergrad_lr": 1.0, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.05},
    np_sgd_hd,
  ),
  "sgd_nesterov_multiplicative": (
    O.hypergradient_sgd,
    {
      "learning_rate": 0.2,
      "hypergrad_lr": 0.2,
      "momentum": 0.8,
      "nesterov": True,
      "variant": "multiplicative",
    },
    np_sgd_hd,
  ),
  "adam_additive": (O.hypergradient_adam, {"learning_rate": 0.05, "hypergrad_lr": 0.02}, np_adam_hd),
  "adam_multiplicative": (
    O.hypergradient_adam,
    {"learning_rate": 0.05, "hypergrad_lr": 0.3, "variant": "multiplicative"},
    np_adam_hd,
  ),
  "adam_betas_eps_decay": (
    O.hypergradient_adam,
    {"learning_rate": 0.05, "hypergrad_lr": 0.02, "b1": 0.8, "b2": 0.99, "eps": 1e-3, "weight_decay": 0.05},
    np_adam_hd,
  ),
  "adam_decay_multiplicative": (
    O.hypergradient_adam,
    {"learning_rate": 0.05, "hypergrad_lr": 0.2, "weight_decay": 0.05, "variant": "multiplicative"},
    np_adam_hd,
  ),
}


def _loss(params, t):
  """The same logistic regression in JAX (softplus form, differentiated by jax.grad)."""
  i = 4 * (t % 4)
  xb = jax.lax.dynamic_slice_in_dim(jnp.asarray(X), i, 4)
  yb = jax.lax.dynamic_slice_in_dim(jnp.asarray(Y), i, 4)
  z = xb @ params["w"] + params["b"]
  return jnp.mean(jax.nn.softplus(z) - yb * z)


def _flat(params):
  return jnp.concatenate([params["w"], params["b"][None]])


def _trajectory(tx, params, k=K):
  def body(carry, t):
    p, s = carry
    u, s = tx.update(jax.grad(_loss)(p, t), s, p)
    p = optax.apply_updates(p, u)
    return (p, s), (_flat(p), O.current_lr(s))

  return jax.lax.scan(body, (params, tx.init(params)), jnp.arange(k))[1]


@functools.cache
def _parity_runs():
  """Every PARITY case in one float64 program (one compilation)."""
  with jax.enable_x64(True):
    params = {"w": jnp.asarray(P0[:4]), "b": jnp.asarray(P0[4])}

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def run(params):
      return {name: _trajectory(make(**kw), params) for name, (make, kw, _) in PARITY.items()}

    return jax.device_get(run(params))


@pytest.mark.parametrize("name", PARITY)
def test_matches_the_papers_rules_written_in_numpy_float64(name):
  """Params and adapted rate after each of 12 updates within 1e-10 of the NumPy loop; the first
  update uses the initial rate (no previous direction), and the rate did move afterwards."""
  _, kw, reference = PARITY[name]
  kw = dict(kw)
  ref_p, ref_rate = reference(
    kw.pop("learning_rate"), kw.pop("hypergrad_lr"), kw.pop("variant", "additive"), **kw
  )
  got_p, got_rate = _parity_runs()[name]
  assert got_p.dtype == np.float64 and got_rate.dtype == np.float64
  np.testing.assert_allclose(got_p, ref_p, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(got_rate, ref_rate, rtol=1e-10, atol=0)
  lr0 = PARITY[name][1]["learning_rate"]
  assert got_rate[0] == lr0  # h_1 = 0
  assert abs(got_rate[-1] / lr0 - 1) > 0.05, got_rate  # the case exercises the adaptation


def test_defaults_and_zero_hypergrad_lr_are_plain_sgd_and_adam():
  """``hypergrad_lr=0`` is the optimizer without hypergradient (equal to lr_jax's sgd / adam), for
  both rules; the default ``hypergrad_lr`` of each (None) is the documented number."""
  params = {"w": jnp.asarray(P0[:4], jnp.float32), "b": jnp.asarray(P0[4], jnp.float32)}
  pairs = [
    (O.hypergradient_sgd(0.3, 0.0, momentum=0.9), O.sgd(0.3, momentum=0.9)),
    (O.hypergradient_sgd(0.3, 0.0, variant="multiplicative"), O.sgd(0.3)),
    (O.hypergradient_adam(0.05, 0.0, weight_decay=0.1), O.adam(0.05, weight_decay=0.1)),
  ]

  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def run(params):
    return [(_trajectory(a, params, 6)[0], _trajectory(b, params, 6)[0]) for a, b in pairs]

  for ours, plain in run(params):
    np.testing.assert_allclose(ours, plain, rtol=1e-6, atol=1e-7)
  from lr_jax.optimizers import _hypergradient as H

  assert H._hypergrad_lr(None, "additive", "sgd", "f")[0] == 1e-6
  assert H._hypergrad_lr(None, "additive", "adam", "f")[0] == 1e-8
  assert H._hypergrad_lr(None, "multiplicative", "adam", "f")[0] == 0.02


# ------------------------------------------------------------------ traced hyperparameters, validation

# name -> (constructor, fixed kwargs, {hyperparameter: (value, other value, invalid value)})
CASES = {
  "hypergradient_sgd": (
    O.hypergradient_sgd,
    {"momentum": 0.5},
    {
      "learning_rate": (0.2, 0.1, -0.1),
      "hypergrad_lr": (0.2, 0.4, -1.0),  # valid for both rules ([0, 1) for the multiplicative)
      "momentum": (0.5, 0.9, -0.5),
      "dampening": (0.0, 0.3, 1.5),
      "weight_decay": (0.0, 0.1, -0.1),
    },
  ),
  "hypergradient_adam": (
    O.hypergradient_adam,
    {},
    {
      "learning_rate": (0.05, 0.02, -0.1),
      "hypergrad_lr": (0.01, 0.05, -1.0),
      "b1": (0.9, 0.5, 1.0),
      "b2": (0.999, 0.99, -0.1),
      "eps": (1e-8, 1e-3, -1.0),
      "weight_decay": (0.0, 0.1, -0.1),
    },
  ),
}
F32 = {"w": jnp.asarray(P0[:4], jnp.float32), "b": jnp.asarray(P0[4], jnp.float32)}


def _lanes(hps, pick):
  base = {k: v[0] for k, v in hps.items()}
  lanes = [base] + [{**base, k: pick(v)} for k, v in hps.items()]
  return {k: jnp.asarray([lane[k] for lane in lanes], jnp.float32) for k in hps}


@functools.cache
def _traced(name):
  """vmap over lanes (lane i changes hyperparameter i), the same lanes one by one (lax.map), and the
  invalid lanes, for both rules: one program, traced under strict dtype promotion."""
  make, fixed, hps = CASES[name]

  def lane(values, variant):
    p, rate = _trajectory(make(**{**fixed, **values}, variant=variant), F32, 8)
    return p[-1], rate[-1]

  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def program(grid, bad):
    out = {}
    for variant in ("additive", "multiplicative"):
      f = functools.partial(lane, variant=variant)
      out[variant] = {"vmap": jax.vmap(f)(grid), "loop": jax.lax.map(f, grid), "bad": jax.vmap(f)(bad)}
    return out

  with jax.numpy_dtype_promotion("strict"):
    return jax.device_get(program(_lanes(hps, lambda v: v[1]), _lanes(hps, lambda v: v[2])))


@pytest.mark.parametrize("variant", ["additive", "multiplicative"])
@pytest.mark.parametrize("name", CASES)
def test_vmap_over_each_hyperparameter_equals_a_loop_and_bad_lanes_are_nan(name, variant):
  _, _, hps = CASES[name]
  out = _traced(name)[variant]
  (p_vmap, r_vmap), (p_loop, r_loop) = out["vmap"], out["loop"]
  np.testing.assert_allclose(p_vmap, p_loop, rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(r_vmap, r_loop, rtol=2e-5)
  for i, k in enumerate(hps, start=1):
    assert np.max(np.abs(p_vmap[i] - p_vmap[0])) > 0, k  # the lane did differ
  p_bad, r_bad = out["bad"]
  assert np.all(np.isfinite(p_bad[0])) and np.isfinite(r_bad[0])
  for i, k in enumerate(hps, start=1):
    assert np.all(np.isnan(p_bad[i])) and np.isnan(r_bad[i]), k


@pytest.mark.parametrize("name", CASES)
def test_invalid_values_raise_eagerly_with_the_name_and_value(name):
  make, fixed, hps = CASES[name]
  for k, (_, _, bad) in hps.items():
    with pytest.raises(ValueError, match=rf"{name}: `{k}` must .*{k}="):
      make(**{"learning_rate": 0.1, **fixed, k: bad})
  with pytest.raises(ValueError, match=rf"{name}: `hypergrad_lr` must be in \[0, 1\), got hypergrad_lr=1.0"):
    make(0.1, 1.0, variant="multiplicative")
  with pytest.raises(ValueError, match=rf"{name}: `variant` must be one of 'additive', 'multiplicative'"):
    make(0.1, variant="mult")
  with pytest.raises(ValueError, match=rf"{name}: `learning_rate` must be a number .*not a schedule"):
    make(lambda t: 0.1)
  with pytest.raises(ValueError, match=rf"{name}: `learning_rate` must be finite"):
    make(float("nan"))
  with pytest.raises(ValueError, match=rf"{name}: `params` must be passed to update\(\)"):
    tx = make(0.1, weight_decay=0.1)
    tx.update(F32, tx.init(F32))
  if name == "hypergradient_sgd":
    with pytest.raises(ValueError, match=r"nesterov=True requires `momentum` > 0 and `dampening` == 0"):
      make(0.1, nesterov=True)


# ------------------------------------------------------------------------- current_lr, states, resume


@functools.cache
def _composed():
  """current_lr through optax.chain (clipping first, a plateau scale after) and inject_hyperparams."""
  plain = O.hypergradient_adam(0.05, 0.01)
  chained = optax.chain(O.clip_grad_norm(10.0), O.hypergradient_adam(0.05, 0.01), O.reduce_on_plateau())
  injected = optax.inject_hyperparams(O.hypergradient_adam)(learning_rate=0.05, hypergrad_lr=0.01)

  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def run(params):
    return [_trajectory(tx, params, 6) for tx in (plain, chained, injected)]

  return jax.device_get(run(F32))


def test_current_lr_finds_the_adapted_rate_inside_chain_and_inject_hyperparams():
  (p0, r0), (p1, r1), (p2, r2) = _composed()
  assert r0[0] == np.float32(0.05) and r0[-1] != r0[0]
  for p, r in ((p1, r1), (p2, r2)):  # gradients below the clip norm; plateau scale 1
    # atol: a parameter crossing 0 (7e-9 vs -7e-9 on a GPU, where XLA contracts other multiply-adds)
    np.testing.assert_allclose(p, p0, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(r, r0, rtol=1e-6)  # inject_hyperparams' learning_rate was only the start


def test_multiplicative_rate_from_zero_stays_zero_additive_one_moves():
  """The README's claim for the additive rule: a zero initial rate is raised by the hypergradient
  (from the second update on); the multiplicative rule scales the rate, so 0 stays 0."""
  g = {"w": jnp.ones(3), "b": jnp.asarray(1.0)}
  params = {"w": jnp.zeros(3), "b": jnp.asarray(0.0)}
  for variant, moved in (("additive", True), ("multiplicative", False)):
    tx = O.hypergradient_sgd(0.0, 0.1, variant=variant)
    s = tx.init(params)
    for _ in range(2):
      _, s = tx.update(g, s, params)
    assert (float(O.current_lr(s)) > 0) == moved, variant  # additive: 0 + 0.1 * <g, g> = 0.4
  assert float(O.current_lr(s)) == 0.0


@pytest.mark.parametrize("make", [O.hypergradient_sgd, O.hypergradient_adam], ids=["sgd", "adam"])
def test_complex_leaves_are_pairs_of_reals(make):
  """A complex leaf gives what its real and imaginary parts give as two real leaves (the global dot
  product and norms included), as PyTorch's ``view_as_real``."""
  z = jnp.array([0.5 - 1.0j, 2.0 + 0.25j], jnp.complex64)
  zc, zr = {"z": z}, {"re": z.real, "im": z.imag}
  grad_c = lambda p: {"z": 2 * p["z"] + jnp.array([0.1 + 0.3j, -0.2j], jnp.complex64)}
  grad_r = lambda p: {"re": 2 * p["re"] + jnp.array([0.1, 0.0]), "im": 2 * p["im"] + jnp.array([0.3, -0.2])}
  for variant in ("additive", "multiplicative"):
    tx = make(0.1, 0.2, variant=variant, **({"momentum": 0.5} if make is O.hypergradient_sgd else {}))
    pc, sc, pr, sr = zc, tx.init(zc), zr, tx.init(zr)
    for _ in range(4):
      u, sc = tx.update(grad_c(pc), sc, pc)
      pc = optax.apply_updates(pc, u)
      u, sr = tx.update(grad_r(pr), sr, pr)
      pr = optax.apply_updates(pr, u)
    np.testing.assert_allclose(pc["z"].real, pr["re"], rtol=1e-5)
    np.testing.assert_allclose(pc["z"].imag, pr["im"], rtol=1e-5)
    np.testing.assert_allclose(O.current_lr(sc), O.current_lr(sr), rtol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_state_shapes_saturating_counter_and_resume_bit_for_bit(name):
  """The state's moments mirror the params (chex), the rate is a float32 scalar, no two state leaves
  share a buffer (``update_step`` donates them); at count = 2**31 - 1 the counter stays and the
  updates are finite; a checkpoint (NumPy leaves, restored into a fresh ``init``'s structure)
  resumes bit for bit."""
  make, fixed, _ = CASES[name]
  tx = make(0.05, 0.01, **fixed, weight_decay=1e-3)
  state = tx.init(F32)
  moments = [state.direction, state.trace] if name == "hypergradient_sgd" else [state.mu, state.nu]
  for m in moments:
    chex.assert_trees_all_equal_shapes_and_dtypes(m, F32)
  assert state.learning_rate.shape == () and state.learning_rate.dtype == jnp.float32
  leaves = jax.tree.leaves((F32, state))
  assert len({x.unsafe_buffer_pointer() for x in leaves}) == len(leaves)

  @jax.jit
  def step(p, s, t):
    u, s = tx.update(jax.grad(_loss)(p, t), s, p)
    return optax.apply_updates(p, u), s

  p, s = F32, state
  for t in range(6):
    p, s = step(p, s, t)
    if t == 2:
      saved = [np.asarray(x) for x in jax.tree.leaves((p, s))]
  restored = jax.tree.unflatten(jax.tree.structure((F32, tx.init(F32))), saved)
  q, r = restored
  for t in range(3, 6):
    q, r = step(q, r, t)
  for a, b in zip(jax.tree.leaves((p, s)), jax.tree.leaves((q, r)), strict=True):
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()

  s_max = s._replace(count=jnp.asarray(2**31 - 1, jnp.int32))
  for t in range(2):
    p, s_max = step(p, s_max, t)
  assert int(s_max.count) == 2**31 - 1
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves((p, s_max)))
