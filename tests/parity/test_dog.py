"""Parity of ``dog`` / ``ldog`` / ``polynomial_decay_average`` with the reference ``dog-optimizer`` 1.0.3.

The harness of ``test_prodigy.py`` (200 updates, a random convex non-quadratic problem with two
leaves). DoG: one ``eta`` for the whole tree; LDoG: one per leaf (a PyTorch parameter per leaf).
Every combination of ``init_eta`` (None / given) x DoG/LDoG, each with two settings of
``reps_rel``, ``weight_decay``, ``learning_rate``, ``eps``; ``eta`` after every update compared.
float64 within 1e-10 relative; float32 within 3x the reference's own float32 drift (+1e-6 params,
+2e-6 eta). The averaged iterates of ``PolynomialDecayAverager(gamma)`` are compared the same way.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from tests.parity.test_prodigy import (
  NAMES,
  PROBLEM,
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
dog_pkg = pytest.importorskip("dog")

LANES = [
  {"lr": 1.0, "reps_rel": 1e-6, "weight_decay": 0.0, "eps": 1e-8, "init_eta": 1e-3},
  {"lr": 0.5, "reps_rel": 1e-4, "weight_decay": 0.01, "eps": 1e-6, "init_eta": 1e-2},
  {"lr": 1.0, "reps_rel": 1e-3, "weight_decay": 0.1, "eps": 1e-8, "init_eta": 1e-4},
]
SETS = [
  ({"layerwise": lw, "with_init_eta": ie}, [LANES[i % 3], LANES[(i + 1) % 3]])
  for i, (lw, ie) in enumerate((lw, ie) for lw in (False, True) for ie in (False, True))
]


def _eta_of(s):
  return jnp.stack(jax.tree.leaves(s.eta)) if isinstance(s.eta, dict) else s.eta


def _build(h, layerwise, with_init_eta):
  make = O.ldog if layerwise else O.dog
  tx = make(
    h["lr"],
    reps_rel=h["reps_rel"],
    eps=h["eps"],
    weight_decay=h["weight_decay"],
    init_eta=h["init_eta"] if with_init_eta else None,
  )
  return tx, _eta_of


def _torch_dog(h, layerwise, with_init_eta):
  cls = dog_pkg.LDoG if layerwise else dog_pkg.DoG
  return lambda ps: cls(
    ps,
    lr=h["lr"],
    reps_rel=h["reps_rel"],
    eps=h["eps"],
    weight_decay=h["weight_decay"],
    init_eta=h["init_eta"] if with_init_eta else None,
  )


def _eta(opt):
  return [float(e) for e in opt.param_groups[0]["eta"]]


def _eta_ref(layerwise):
  return (lambda opt: _eta(opt)) if layerwise else (lambda opt: _eta(opt)[0])


def _references(sets, dtype):
  return [
    [run_torch(_torch_dog(h, **flags), dtype, _eta_ref(flags["layerwise"])) for h in lanes]
    for flags, lanes in sets
  ]


@functools.cache
def _ref64():
  return _references(SETS, torch.float64)


def test_float64_every_option_combination():
  with jax.enable_x64(True):
    ours = run_sets(_build, SETS, jnp.float64)
  for (flags, _), mine_set, ref_set in zip(SETS, ours, _ref64(), strict=True):
    for mine, ref in zip(mine_set, ref_set, strict=True):
      check_float64(f"{'ldog' if flags['layerwise'] else 'dog'} float64", mine, ref)


def test_float32_within_the_references_own_drift():
  sets = rounded_to_float32([SETS[0], SETS[3]])
  ours = run_sets(_build, sets, jnp.float32)
  ref64, ref32 = (_references(sets, dt) for dt in (torch.float64, torch.float32))
  for mine_set, r64_set, r32_set in zip(ours, ref64, ref32, strict=True):
    for mine, r64, r32 in zip(mine_set, r64_set, r32_set, strict=True):
      check_float32("dog/ldog float32 (error / drift)", mine, r64, r32)


def test_polynomial_decay_average_equals_the_averager():
  """optax.chain(dog(), polynomial_decay_average(gamma)) == DoG + PolynomialDecayAverager.step()."""
  gamma = 8.0
  holder = {}

  def make(ps):
    model = torch.nn.Module()  # the run's tensors as buffers: state_dict() holds the very tensors
    for i, p in enumerate(ps):
      model.register_buffer(f"p{i}", p)
    model.device = "cpu"  # the averager matches devices through this attribute
    holder["avg"] = dog_pkg.PolynomialDecayAverager(model, gamma=gamma)
    return dog_pkg.DoG(ps)

  ref = run_torch(make, torch.float64, lambda opt: _eta(opt)[0], after_step=lambda k: holder["avg"].step())
  av = holder["avg"].averaged_model.state_dict()
  ref_avg = [av[f"p{i}"].numpy() for i in range(len(NAMES))]
  with jax.enable_x64(True):
    tx = optax.chain(O.dog(), O.polynomial_decay_average(gamma))
    p, ds, state = jax.jit(lambda *t: scan(tx, lambda s: s[0].eta, *t))(*jax_problem(jnp.float64))
    mine = ([np.asarray(v) for v in jax.tree.leaves(p)], np.asarray(ds))
    avg = [np.asarray(v) for v in jax.tree.leaves(state[1].average)]
  check_float64("dog + averager float64", mine, ref)
  assert rel(avg, ref_avg) < 1e-10
  assert rel(avg, mine[0]) > 1e-3  # the average is not the last iterate


def test_optax_contrib_dog_equals_the_reference():
  """optax.contrib.dog(init_step=("heuristic", reps_rel)) == dog.DoG (no difference to document);
  it has no LDoG and no averager."""
  with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
    tx = optax.contrib.dog(init_step=("heuristic", 1e-6))
    p, _, _ = jax.jit(lambda *t: scan(tx, lambda s: s[1].max_dist, *t))(*jax_problem(jnp.float64))
    theirs = [np.asarray(v) for v in jax.tree.leaves(p)]
  ref = run_torch(lambda ps: dog_pkg.DoG(ps), torch.float64, lambda opt: _eta(opt)[0])
  assert rel(theirs, ref[0]) < 1e-10
  assert NAMES == sorted(PROBLEM[0])
