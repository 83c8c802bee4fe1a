"""Parity of ``dadapt_adam`` / ``dadapt_sgd`` / ``dadapt_adagrad`` with the reference ``dadaptation`` 3.2.

The harness of ``test_prodigy.py``: 200 updates of the same noisy gradients of a random convex,
non-quadratic problem with two leaves (one ``d`` for the whole tree), from the same initial values.
Every combination of the boolean options (DAdaptAdam: ``decouple`` x ``use_bias_correction``), each
with two settings of the numeric ones; float64 within 1e-10 relative (params, and ``d`` after every
update); float32 within 3x the reference's own float32-vs-float64 gap (+1e-6).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_jax import optimizers as O
from tests.parity.test_prodigy import (
  check_float32,
  check_float64,
  jax_problem,
  rel,
  rounded_to_float32,
  run_sets,
  run_torch,
  scan,
)

torch = pytest.importorskip("torch")
dadaptation = pytest.importorskip("dadaptation")


def _d(opt):
  return opt.param_groups[0]["d"]


# name -> (build(h, **flags) -> (tx, d_of), reference class, h -> reference kwargs, option sets)
ADAM_LANES = [
  {"lr": 1.0, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "d0": 1e-6, "growth": math.inf},
  {"lr": 0.5, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.01, "d0": 1e-4, "growth": 1.05},
  {"lr": 1.0, "b1": 0.0, "b2": 0.9, "eps": 1e-8, "weight_decay": 0.1, "d0": 1e-6, "growth": math.inf},
]
SGD_LANES = [
  {"lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "d0": 1e-6, "growth": math.inf},
  {"lr": 0.5, "momentum": 0.9, "weight_decay": 0.01, "d0": 1e-4, "growth": 1.05},
  {"lr": 1.0, "momentum": 0.5, "weight_decay": 0.1, "d0": 1e-6, "growth": math.inf},
]
ADAGRAD_LANES = [
  {"lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "eps": 1e-6, "d0": 1e-6, "growth": math.inf},
  {"lr": 0.5, "momentum": 0.9, "weight_decay": 0.01, "eps": 1e-4, "d0": 1e-4, "growth": 1.05},
  {"lr": 1.0, "momentum": 0.5, "weight_decay": 0.1, "eps": 1e-6, "d0": 1e-6, "growth": math.inf},
]


def _build_adam(h, decouple, use_bias_correction):
  tx = O.dadapt_adam(
    h["lr"],
    b1=h["b1"],
    b2=h["b2"],
    eps=h["eps"],
    weight_decay=h["weight_decay"],
    decouple=decouple,
    use_bias_correction=use_bias_correction,
    d0=h["d0"],
    growth_rate=h["growth"],
  )
  return tx, lambda s: s.d


def _build_sgd(h):
  tx = O.dadapt_sgd(
    h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"], d0=h["d0"], growth_rate=h["growth"]
  )
  return tx, lambda s: s.d


def _build_adagrad(h):
  tx = O.dadapt_adagrad(
    h["lr"],
    momentum=h["momentum"],
    weight_decay=h["weight_decay"],
    eps=h["eps"],
    d0=h["d0"],
    growth_rate=h["growth"],
  )
  return tx, lambda s: s.d


def _torch_adam(h, flags):
  return lambda ps: dadaptation.DAdaptAdam(
    ps,
    lr=h["lr"],
    betas=(h["b1"], h["b2"]),
    eps=h["eps"],
    weight_decay=h["weight_decay"],
    d0=h["d0"],
    growth_rate=h["growth"],
    **flags,
  )


def _torch_sgd(h, flags):
  return lambda ps: dadaptation.DAdaptSGD(
    ps,
    lr=h["lr"],
    momentum=h["momentum"],
    weight_decay=h["weight_decay"],
    d0=h["d0"],
    growth_rate=h["growth"],
  )


def _torch_adagrad(h, flags):
  return lambda ps: dadaptation.DAdaptAdaGrad(
    ps,
    lr=h["lr"],
    momentum=h["momentum"],
    weight_decay=h["weight_decay"],
    eps=h["eps"],
    d0=h["d0"],
    growth_rate=h["growth"],
  )


ADAM_FLAGS = [{"decouple": dc, "use_bias_correction": bc} for dc in (False, True) for bc in (False, True)]
CASES = {
  "dadapt_adam": (
    _build_adam,
    _torch_adam,
    [(f, [ADAM_LANES[i % 3], ADAM_LANES[(i + 1) % 3]]) for i, f in enumerate(ADAM_FLAGS)],
  ),
  "dadapt_sgd": (_build_sgd, _torch_sgd, [({}, SGD_LANES)]),
  "dadapt_adagrad": (_build_adagrad, _torch_adagrad, [({}, ADAGRAD_LANES)]),
}


def _references(name, dtype, sets=None):
  _, make, all_sets = CASES[name]
  return [[run_torch(make(h, flags), dtype, _d) for h in lanes] for flags, lanes in sets or all_sets]


@functools.cache
def _ref64(name):
  return _references(name, torch.float64)


@pytest.mark.parametrize("name", CASES)
def test_float64_every_option_combination(name):
  build, _, sets = CASES[name]
  with jax.enable_x64(True):
    ours = run_sets(build, sets, jnp.float64)
  for (flags, lanes), mine_set, ref_set in zip(sets, ours, _ref64(name), strict=True):
    for h, mine, ref in zip(lanes, mine_set, ref_set, strict=True):
      check_float64(f"{name} float64", mine, ref)
      assert ref[1][-1] > 10 * h["d0"], (flags, h)  # d did adapt


@pytest.mark.parametrize("name", CASES)
def test_float32_within_the_references_own_drift(name):
  build, _, sets = CASES[name]
  sets = rounded_to_float32(sets[-1:])  # dadapt_adam: decouple and bias correction on
  ours = run_sets(build, sets, jnp.float32)
  ref64, ref32 = (_references(name, dt, sets) for dt in (torch.float64, torch.float32))
  for mine_set, r64_set, r32_set in zip(ours, ref64, ref32, strict=True):
    for mine, r64, r32 in zip(mine_set, r64_set, r32_set, strict=True):
      check_float32(f"{name} float32 (error / drift)", mine, r64, r32)


def test_dadapt_sgd_zero_first_gradient():
  """A zero first gradient: DAdaptSGD divides by its norm (ZeroDivisionError); lr_jax skips the
  update (|s| == 0: no move, k stays 0) and takes g0 from the first non-zero gradient."""
  with pytest.raises(ZeroDivisionError):
    run_torch(_torch_sgd(SGD_LANES[0], {}), torch.float64, _d, zero_grads=1)
  tx = O.dadapt_sgd()
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  u, state = tx.update({"w": jnp.zeros(3)}, state, params)
  assert float(jnp.max(jnp.abs(u["w"]))) == 0.0 and int(state.k) == 0
  u, state = tx.update({"w": jnp.full(3, 2.0)}, state, params)
  assert int(state.k) == 1 and float(state.g0_norm) == pytest.approx(np.sqrt(12.0))
  assert bool(jnp.all(jnp.isfinite(u["w"]))) and float(jnp.max(jnp.abs(u["w"]))) > 0


def test_optax_contrib_dadapt_adamw_is_bias_corrected_and_decoupled():
  """optax.contrib.dadapt_adamw == DAdaptAdam(use_bias_correction=True, decouple=True); the
  reference's defaults (both False) give a different run."""
  import optax

  with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
    tx = optax.contrib.dadapt_adamw(1.0, weight_decay=0.01)
    p, _, _ = jax.jit(lambda *t: scan(tx, lambda s: s.estim_lr, *t))(*jax_problem(jnp.float64))
    theirs = [np.asarray(v) for v in jax.tree.leaves(p)]
  h = dict(ADAM_LANES[0], weight_decay=0.01)
  ref_default = run_torch(_torch_adam(h, {}), torch.float64, _d)
  ref_optax_form = run_torch(
    _torch_adam(h, {"decouple": True, "use_bias_correction": True}), torch.float64, _d
  )
  assert rel(theirs, ref_optax_form[0]) < 1e-10
  assert rel(theirs, ref_default[0]) > 1e-2
