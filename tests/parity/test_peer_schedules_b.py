"""Parity of schedule options with their peers (issue 15, part B): Optax, Keras, Hugging Face.

* Optax (installed): ``exponential_decay(transition_begin, end_value)``, ``piecewise_interpolate_schedule``
  and its 1cycles (``pct_final``), called directly; also under ``jit``/``vmap`` over the new
  hyperparameters.
* Keras ``PolynomialDecay(cycle=True)``: Keras 3 is not installed (heavy); its formula is written
  here independently from ``keras/src/optimizers/schedules/learning_rate_schedule.py``
  (keras-team/keras commit 2534b64, ``PolynomialDecay.__call__``).
* Hugging Face transformers (installed with the pinned torch): ``get_wsd_schedule``,
  ``get_polynomial_decay_schedule_with_warmup``, ``get_linear_schedule_with_warmup``,
  ``get_constant_schedule_with_warmup``, ``get_inverse_sqrt_schedule``, each a ``LambdaLR`` on a torch
  optimizer, read with ``get_last_lr()`` before each ``step()``.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import schedules as S

T = np.arange(0, 260, dtype=np.int32)
EVAL = jax.jit(lambda s, t: s(t))  # schedules are arguments: one compile per structure


def optax_rates(fn, steps=T):
  return np.asarray(jax.jit(jax.vmap(fn))(jnp.asarray(steps)))  # eager vmap dispatches op by op: slower


def close(got, want, rtol=2e-6, atol=2e-7):
  np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------- Optax


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay_every_option_matches_optax(staircase):
  cases = [  # (gamma, decay_steps, transition_begin, end_value): floors, ceilings, growth, begins
    (0.9, 7, 0, None),
    (0.9, 7, 13, None),
    (0.9, 7, 13, 0.2),
    (0.5, 3, 0, 0.01),
    (1.1, 3, 5, 3.0),
    (2.0, 10, 20, 1e6),  # grows past float32 range without the ceiling
    (1.0, 4, 0, 0.5),  # gamma == 1: Optax's ceiling
    (0.97, 2.5, 40, -0.1),  # a floor below zero never binds
  ]
  for gamma, ds, begin, end in cases:
    s = S.exponential_decay(0.8, gamma, ds, staircase, transition_begin=begin, end_value=end)
    o = optax.exponential_decay(0.8, ds, gamma, begin, staircase, end)
    close(EVAL(s, T), o(jnp.asarray(T)))  # elementwise in Optax: no vmap (nor its compile) needed


def test_exponential_decay_options_trace_under_jit_and_vmap():
  gammas = jnp.array([0.9, 1.2, 0.5])
  begins = jnp.array([0, 7, 30])
  ends = jnp.array([0.3, 2.0, 0.05])
  f = jax.jit(jax.vmap(lambda g, b, e: S.exponential_decay(0.8, g, 4, transition_begin=b, end_value=e)(T)))
  got = f(gammas, begins, ends)
  for i in range(3):
    want = optax.exponential_decay(0.8, 4, float(gammas[i]), int(begins[i]), False, float(ends[i]))(T)
    close(got[i], want)
  # a bad lane (growth toward a ceiling from init <= 0, a fractional begin) is NaN, the others finite
  bad = jax.jit(jax.vmap(lambda i, b: S.exponential_decay(i, 1.2, 4, transition_begin=b, end_value=2.0)(T)))
  out = np.asarray(bad(jnp.array([0.8, -0.8, 0.8]), jnp.array([3.0, 3.0, 2.5])))
  assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1:]))


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_piecewise_interpolate_matches_optax(kind):
  for init, table in [(0.7, {}), (0.5, {0: 2.0, 10: 0.5, 11: 3.0, 50: 0.0})]:
    s = S.piecewise_interpolate(init, table, interpolate_type=kind)
    close(EVAL(s, T), optax_rates(optax.piecewise_interpolate_schedule(kind, init, table)), atol=1e-6)
  # jit/vmap over boundaries and scales (one structure: three pieces)
  bounds = jnp.array([[10, 40, 90], [5, 6, 200]])
  scales = jnp.array([[2.0, 0.1, 0.5], [0.5, 4.0, 0.0]])
  got = jax.jit(jax.vmap(lambda b, c: S.piecewise_interpolate(1.0, b, c, kind)(T)))(bounds, scales)
  for i in range(2):
    table = dict(zip(np.asarray(bounds[i]).tolist(), np.asarray(scales[i]).tolist()))
    close(got[i], optax_rates(optax.piecewise_interpolate_schedule(kind, 1.0, table)), atol=1e-6)


def test_optax_onecycles_are_piecewise_interpolate():
  # Optax builds linear_onecycle_schedule (pct_final) and cosine_onecycle_schedule from
  # piecewise_interpolate_schedule: the same boundaries and scales here give Optax's numbers.
  n, peak, ps, pf, div, fdiv = 200, 0.9, 0.25, 0.7, 20.0, 100.0
  lin = S.piecewise_interpolate(peak / div, {int(ps * n): div, int(pf * n): 1 / div, n: 1 / fdiv})
  close(EVAL(lin, T), optax_rates(optax.linear_onecycle_schedule(n, peak, ps, pf, div, fdiv)), atol=1e-6)
  cos = S.piecewise_interpolate(
    peak / div, {int(ps * n): div, n: 1 / (div * fdiv)}, interpolate_type="cosine"
  )
  close(EVAL(cos, T), optax_rates(optax.cosine_onecycle_schedule(n, peak, ps, div, fdiv)), atol=1e-6)


@pytest.mark.parametrize("anneal,kind", [("linear", "linear"), ("cos", "cosine")])
def test_one_cycle_pct_final_is_optax_piecewise_interpolate_in_torch_steps(anneal, kind):
  # one_cycle(three_phase=True, pct_final=pf) interpolates initial -> peak -> initial -> floor with
  # phase ends p*N - 1, pf*N - 2, N - 1 (PyTorch's convention; pf = 2p is OneCycleLR's three-phase
  # cycle). With whole phase ends that is Optax's piecewise_interpolate_schedule on those boundaries.
  n, peak, ps, pf, div, fdiv = 200, 0.9, 0.25, 0.7, 20.0, 100.0
  s = S.one_cycle(peak, n, ps, anneal, div, fdiv, three_phase=True, pct_final=pf)
  ends = [round(ps * n) - 1, round(pf * n) - 2, n - 1]
  o = optax.piecewise_interpolate_schedule(
    kind, peak / div, {ends[0]: div, ends[1]: 1 / div, ends[2]: 1 / fdiv}
  )
  close(EVAL(s, T), optax_rates(o), atol=1e-6)
  # vmap over pct_final, against the same reference per lane
  pfs = jnp.array([0.6, 0.8])
  got = jax.jit(jax.vmap(lambda f: S.one_cycle(peak, n, ps, anneal, div, fdiv, True, f)(T)))(pfs)
  for i, f in enumerate([0.6, 0.8]):
    e1 = round(f * n) - 2
    o = optax.piecewise_interpolate_schedule(kind, peak / div, {ends[0]: div, e1: 1 / div, n - 1: 1 / fdiv})
    close(got[i], optax_rates(o), atol=1e-6)
  # the default (pct_final=None) is PyTorch's 2 * pct_start, bit for bit
  a = S.one_cycle(peak, n, ps, anneal, div, fdiv, three_phase=True)
  b = S.one_cycle(peak, n, ps, anneal, div, fdiv, three_phase=True, pct_final=2 * ps)
  np.testing.assert_array_equal(a(T), b(T))


# ------------------------------------------------------------------------------------------- Keras


def keras_polynomial(step, decay_steps, init, end, power, cycle):
  """Keras 3 ``PolynomialDecay.__call__`` (learning_rate_schedule.py), transcribed in float64."""
  step, decay = float(step), float(decay_steps)
  if cycle:
    multiplier = 1.0 if step == 0 else math.ceil(step / decay_steps)
    decay = decay * multiplier
  else:
    step = min(step, decay)
  p = step / decay
  return (init - end) * (1 - p) ** power + end


@pytest.mark.parametrize("cycle", [False, True])
def test_polynomial_decay_cycle_matches_keras_formula(cycle):
  for total, end, power in [(37, 0.05, 2.0), (7.5, 0.1, 0.5)]:
    s = S.polynomial_decay(1.0, total, end, power, cycle=cycle)
    want = [keras_polynomial(t, total, 1.0, end, power, cycle) for t in T]
    close(EVAL(s, T), want, atol=1e-6)
  close(EVAL(s, T.astype(np.float32)), want, atol=1e-6)  # float steps take the float remainder
  # vmap over total_steps with cycle=True
  got = jax.jit(jax.vmap(lambda n: S.polynomial_decay(1.0, n, 0.0, 2.0, cycle=cycle)(T)))(jnp.array([10, 33]))
  for i, n in enumerate([10, 33]):
    close(got[i], [keras_polynomial(t, n, 1.0, 0.0, 2.0, cycle) for t in T], atol=1e-6)


def test_polynomial_cycle_restarts_at_exact_integer_multiples_past_float32():
  s = S.polynomial_decay(1.0, 1000, cycle=True)
  k = 2**24 // 1000 + 7  # steps beyond 2**24 are not exact in float32; the multiple still is
  at, after = s(np.int32(k * 1000)), s(np.int32(k * 1000 + 1))
  assert float(at) == 0.0 and float(after) > 0.0


# ------------------------------------------------------------------------------------ Hugging Face


def hf_rates(factory, lr, n, **kw):
  torch = pytest.importorskip("torch")
  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=lr)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    sched = factory(opt, **kw)
    out = []
    for _ in range(n):
      out.append(sched.get_last_lr()[0])
      opt.step()
      sched.step()
  return np.array(out)


@pytest.fixture(scope="module")
def hf():
  return pytest.importorskip("transformers.optimization")


@pytest.mark.parametrize("warmup,decay", [("linear", "cosine"), ("cosine", "1-sqrt"), ("1-sqrt", "linear")])
def test_warmup_stable_decay_matches_hf_get_wsd_schedule(hf, warmup, decay):
  # every warm-up and every decay type once (the 9 pairs share all code paths); HF's min_lr_ratio
  for ratio in (0.0, 0.1):
    want = hf_rates(
      hf.get_wsd_schedule,
      0.5,
      80,
      num_warmup_steps=7,
      num_decay_steps=13,
      num_training_steps=60,
      warmup_type=warmup,
      decay_type=decay,
      min_lr_ratio=ratio,
    )
    s = S.warmup_stable_decay(0.5, 60, 7, 13, decay=decay, warmup=warmup, min_lr_ratio=ratio)
    close(EVAL(s, np.arange(80)), want)
  # HF's num_stable_steps: total_steps = W + S + D (then the minimum rate, as HF)
  want = hf_rates(hf.get_wsd_schedule, 0.5, 60, num_warmup_steps=5, num_decay_steps=10, num_stable_steps=20,
                  warmup_type=warmup, decay_type=decay, min_lr_ratio=0.2)  # fmt: skip
  s = S.warmup_stable_decay(0.5, 5 + 20 + 10, 5, 10, decay=decay, warmup=warmup, min_lr_ratio=0.2)
  close(EVAL(s, np.arange(60)), want)


def test_warmup_stable_decay_min_lr_ratio_traces_and_vmaps(hf):
  ratios = jnp.array([0.0, 0.1, 0.3])

  def rates(r):
    return S.warmup_stable_decay(0.5, 60, 7, 13, decay="1-sqrt", warmup="cosine", min_lr_ratio=r)(
      jnp.arange(80)
    )

  got = jax.jit(jax.vmap(rates))(ratios)
  hf_kw = {"num_warmup_steps": 7, "num_decay_steps": 13, "num_training_steps": 60, "warmup_type": "cosine"}
  for i, r in enumerate([0.0, 0.1, 0.3]):
    close(got[i], hf_rates(hf.get_wsd_schedule, 0.5, 80, decay_type="1-sqrt", min_lr_ratio=r, **hf_kw))


def test_hf_warmup_schedules_are_lr_jax_compositions(hf):
  lr, w, n = 0.3, 10, 100
  t = np.arange(130)
  cases = [
    (hf.get_linear_schedule_with_warmup, {"num_warmup_steps": w, "num_training_steps": n},
     S.warmup(S.linear(lr, 0.0, n - w), w)),
    (hf.get_constant_schedule_with_warmup, {"num_warmup_steps": w}, S.warmup(S.constant(lr), w)),
    (hf.get_inverse_sqrt_schedule, {"num_warmup_steps": w}, S.inverse_sqrt(lr, w)),
    (hf.get_polynomial_decay_schedule_with_warmup,
     {"num_warmup_steps": w, "num_training_steps": n, "lr_end": 1e-3, "power": 2.0},
     S.warmup(S.polynomial_decay(lr, n - w, 1e-3, 2.0), w)),
    (hf.get_polynomial_decay_schedule_with_warmup, {"num_warmup_steps": w, "num_training_steps": n},
     S.warmup(S.polynomial_decay(lr, n - w, 1e-7), w)),
  ]  # fmt: skip
  for factory, kw, s in cases:
    close(EVAL(s, t), hf_rates(factory, lr, len(t), **kw))
