"""Parity of issue 15's schedule options with their peers (timm, Keras, Optax, HF transformers, PyTorch).

Peers that are installed are called (Optax, HF transformers, PyTorch). timm (its wheel pulls another
torch) and Keras (heavy) are not installed: their formulas are written out below in float64 Python from
their sources, independently of lr_jax's closed forms:

* timm 1.0 ``timm/scheduler/cosine_lr.py`` ``CosineLRScheduler._get_lr`` (huggingface/pytorch-image-models
  at commit 16664ea3), and ``timm/scheduler/scheduler.py`` ``Scheduler._add_noise`` (commit 12d9a6d4).
* Keras ``CosineDecayRestarts.__call__`` (tensorflow/python/keras/optimizer_v2/learning_rate_schedule.py).
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import schedules as S
from tests.helpers import close

torch = pytest.importorskip("torch")
warnings.filterwarnings("ignore", message=".*lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`.*")

N = 400
STEPS = np.arange(N)
CALL = jax.jit(lambda s, t: s(t))


def timm_cosine(t, base, t_initial, lr_min=0.0, cycle_mul=1.0, cycle_decay=1.0, cycle_limit=1, warmup_t=0,
                warmup_lr_init=0.0, warmup_prefix=False, k_decay=1.0):  # fmt: skip
  """timm's ``CosineLRScheduler._get_lr(t)`` for one param group (float64, as timm computes it)."""
  if t < warmup_t:
    return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
  if warmup_prefix:
    t = t - warmup_t
  if cycle_mul != 1:
    i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
    t_i = cycle_mul**i * t_initial
    t_curr = t - (1 - cycle_mul**i) / (1 - cycle_mul) * t_initial
  else:
    i = t // t_initial
    t_i = t_initial
    t_curr = t - (t_initial * i)
  lr_max = base * cycle_decay**i
  if i < cycle_limit:
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr**k_decay / t_i**k_decay))
  return lr_min


def keras_restarts(step, init, first_decay_steps, alpha=0.0, t_mul=2.0, m_mul=1.0):
  """Keras ``CosineDecayRestarts(init, first_decay_steps, t_mul, m_mul, alpha)(step)`` in float64."""
  frac = step / first_decay_steps
  if t_mul == 1.0:
    i = math.floor(frac)
    frac -= i
  else:
    i = math.floor(math.log(1.0 - frac * (1.0 - t_mul)) / math.log(t_mul))
    sum_r = (1.0 - t_mul**i) / (1.0 - t_mul)
    frac = (frac - sum_r) / t_mul**i
  cosine = 0.5 * m_mul**i * (1.0 + math.cos(math.pi * frac))
  return init * ((1 - alpha) * cosine + alpha)


def starts(period, mult, limit):
  out, s, length = [], 0.0, float(period)
  while s < limit:
    out.append(s)
    s, length = s + length, length * mult
  return np.array(out)


def away_from(points, steps, gap=1e-3):
  return np.min(np.abs(steps[:, None] - points[None, :]), axis=1) > gap


TIMM_CASES = [
  {"t_initial": 20, "cycle_decay": 0.5, "cycle_limit": 4},
  {"t_initial": 13, "cycle_mul": 2.0, "cycle_decay": 0.7, "cycle_limit": 3, "lr_min": 0.01},
  {"t_initial": 10, "cycle_mul": 1.5, "cycle_decay": 0.8, "cycle_limit": 100, "lr_min": 0.05},
  {"t_initial": 30, "k_decay": 2.0, "cycle_limit": 100, "warmup_t": 5, "warmup_lr_init": 0.01},
  {
    "t_initial": 30,
    "k_decay": 0.5,
    "cycle_decay": 0.9,
    "cycle_limit": 100,
    "warmup_t": 7,
    "warmup_prefix": True,
  },
  {
    "t_initial": 25,
    "cycle_mul": 2.0,
    "cycle_limit": 2,
    "warmup_t": 4,
    "warmup_lr_init": 0.1,
    "warmup_prefix": True,
  },
  {"t_initial": 50, "cycle_limit": 1, "warmup_t": 5},  # timm's defaults: a single cycle, then lr_min
]


@pytest.mark.parametrize("kw", TIMM_CASES)
def test_cosine_warm_restarts_matches_timm_cosine_lr_scheduler(kw):
  base = 0.8
  want = np.array([timm_cosine(t, base, **kw) for t in STEPS])
  s = S.cosine_warm_restarts(
    base,
    period=kw["t_initial"],
    period_mult=kw.get("cycle_mul", 1.0),
    end_value=kw.get("lr_min", 0.0),
    decay=kw.get("cycle_decay", 1.0),
    cycle_limit=kw.get("cycle_limit", 1),
    k_decay=kw.get("k_decay", 1.0),
    warmup_steps=kw.get("warmup_t", 0),
    warmup_init=kw.get("warmup_lr_init", 0.0),
    warmup_prefix=kw.get("warmup_prefix", False),
  )
  got = np.asarray(CALL(s, STEPS), np.float64)
  keep = np.ones(N, bool)
  if kw.get("cycle_mul", 1.0) != 1.0:  # timm's float log may land a restart step on either side
    offset = kw.get("warmup_t", 0) if kw.get("warmup_prefix") else 0
    keep = away_from(starts(kw["t_initial"], kw["cycle_mul"], N) + offset, STEPS.astype(float), 0.5)
  close(got[keep], want[keep], rtol=2e-5, atol=2e-6)
  assert keep.mean() > 0.9


@pytest.mark.parametrize(
  "first,t_mul,m_mul,alpha",
  [(10, 1.0, 0.5, 0.0), (10, 2.0, 0.8, 0.0), (7, 1.5, 0.9, 0.0), (12, 2.0, 0.7, 0.1)],
)
def test_cosine_warm_restarts_matches_keras_cosine_decay_restarts(first, t_mul, m_mul, alpha):
  init = 0.5
  want = np.array([keras_restarts(t, init, first, alpha, t_mul, m_mul) for t in STEPS])
  # Keras decays the amplitude above alpha * init: that is a restarts schedule plus a constant.
  s = S.cosine_warm_restarts(init * (1 - alpha), first, t_mul, decay=m_mul) + init * alpha
  got = np.asarray(CALL(s, STEPS), np.float64)
  keep = away_from(starts(first, t_mul, N), STEPS.astype(float), 0.5) if t_mul != 1 else np.ones(N, bool)
  close(got[keep], want[keep], rtol=2e-5, atol=2e-6)


def test_restart_defaults_still_match_torch_cosine_annealing_warm_restarts():
  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=0.3)
  sch = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=7, T_mult=2, eta_min=0.01)
  want = []
  for _ in range(200):
    want.append(opt.param_groups[0]["lr"])
    opt.step()
    sch.step()
  close(S.cosine_warm_restarts(0.3, 7, 2, 0.01)(np.arange(200)), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("exponent", [0.5, 1.0, 2.0, 3.7])
def test_cosine_annealing_exponent_matches_optax(exponent):
  want = jax.vmap(optax.cosine_decay_schedule(2.0, 90, alpha=0.05, exponent=exponent))(STEPS)
  close(CALL(S.cosine_annealing(2.0, 90, 0.1, exponent=exponent), STEPS), want, rtol=1e-5, atol=1e-6)
  warm = optax.warmup_cosine_decay_schedule(0.0, 2.0, 10, 100, end_value=0.1, exponent=exponent)
  ours = S.warmup(S.cosine_annealing(2.0, 90, 0.1, exponent=exponent), 10)
  close(CALL(ours, STEPS), jax.vmap(warm)(STEPS), rtol=2e-6, atol=1e-6)


def _lambda_lrs(make, base, n):
  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=base)
  sch = make(opt)
  out = []
  for _ in range(n):
    out.append(opt.param_groups[0]["lr"])
    opt.step()
    sch.step()
  return np.array(out)


@pytest.mark.parametrize(
  "warm,total,cycles,kind",
  [(10, 200, 0.5, "min_lr"), (0, 150, 0.5, "rate"), (20, 300, 1.5, "rate"), (5, 120, 0.5, None)],
)
def test_cosine_with_min_lr_matches_hf(warm, total, cycles, kind):
  tf = pytest.importorskip("transformers")
  base = 0.4
  if kind is None:
    make = lambda o: tf.get_cosine_schedule_with_warmup(o, warm, total, num_cycles=cycles)
    ours = S.cosine_with_min_lr(base, total, warm, cycles)
  elif kind == "rate":
    make = lambda o: tf.get_cosine_with_min_lr_schedule_with_warmup(o, warm, total, cycles, min_lr_rate=0.1)
    ours = S.cosine_with_min_lr(base, total, warm, cycles, min_lr_rate=0.1)
  else:
    make = lambda o: tf.get_cosine_with_min_lr_schedule_with_warmup(o, warm, total, cycles, min_lr=0.02)
    ours = S.cosine_with_min_lr(base, total, warm, cycles, min_lr=0.02)
  want = _lambda_lrs(make, base, total + 1)  # up to N included; past N HF's cosine goes on
  close(CALL(ours, np.arange(total + 1)), want, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("warm,total,cycles", [(10, 200, 1), (0, 150, 3), (20, 300, 2.5), (7, 100, 4)])
def test_cosine_with_restarts_matches_hf_hard_restarts(warm, total, cycles):
  tf = pytest.importorskip("transformers")
  base = 0.4
  want = _lambda_lrs(
    lambda o: tf.get_cosine_with_hard_restarts_schedule_with_warmup(o, warm, total, num_cycles=cycles),
    base,
    total + 20,
  )
  got = np.asarray(CALL(S.cosine_with_restarts(base, total, warm, cycles), np.arange(total + 20)), np.float64)
  # a restart step within float rounding of a whole cycles * progress may fall on either side
  edges = warm + np.arange(0, math.ceil(cycles) + 1) * (total - warm) / cycles
  keep = away_from(edges[edges < total], np.arange(total + 20).astype(float), 0.5)
  close(got[keep], want[keep], rtol=2e-5, atol=1e-7)


def _cyclic_torch(n, **kw):
  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
  sch = torch.optim.lr_scheduler.CyclicLR(opt, **kw)
  lrs, moms = [], []
  for _ in range(n):
    lrs.append(opt.param_groups[0]["lr"])
    moms.append(opt.param_groups[0]["momentum"])
    opt.step()
    sch.step()
  return np.array(lrs), np.array(moms)


@pytest.mark.parametrize(
  "scale_mode,fn,ours",
  [
    ("cycle", lambda x: 0.5 ** (x - 1), S.exponential_decay(2.0, 0.5)),
    ("iterations", lambda x: 0.99**x, S.exponential_decay(1.0, 0.99)),
    ("cycle", lambda x: 1.0 / (1.0 + 0.5 * (x - 1)), S.inverse_time_decay(2.0, 1.0, 1.0)),  # 2 / (1 + x)
  ],
)
def test_cyclic_custom_scale_fn_and_momentum_match_torch(scale_mode, fn, ours):
  kw = {
    "base_lr": 0.05,
    "max_lr": 0.5,
    "step_size_up": 7,
    "step_size_down": 11,
    "base_momentum": 0.8,
    "max_momentum": 0.95,
  }
  lrs, moms = _cyclic_torch(150, scale_fn=fn, scale_mode=scale_mode, **kw)
  t = np.arange(150)
  lr = S.cyclic(0.05, 0.5, 7, 11, scale_fn=ours, scale_mode=scale_mode)
  mom = S.cyclic_momentum(0.8, 0.95, 7, 11, scale_fn=ours, scale_mode=scale_mode)
  close(CALL(lr, t), lrs, rtol=1e-5, atol=1e-7)
  close(CALL(mom, t), moms, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
  "mode,gamma", [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.995), ("exp_range", 1.01)]
)
def test_cyclic_momentum_and_growth_match_torch(mode, gamma):
  lrs, moms = _cyclic_torch(
    200,
    base_lr=0.05,
    max_lr=0.5,
    step_size_up=9,
    mode=mode,
    gamma=gamma,
    base_momentum=0.85,
    max_momentum=0.9,
  )
  t = np.arange(200)
  close(CALL(S.cyclic(0.05, 0.5, 9, mode=mode, gamma=gamma), t), lrs, rtol=1e-5, atol=1e-7)
  close(CALL(S.cyclic_momentum(0.85, 0.9, 9, mode=mode, gamma=gamma), t), moms, rtol=1e-5, atol=1e-7)


def test_cyclic_growth_saturates_at_the_float_max_instead_of_inf():
  s = S.cyclic(0.1, 1.0, 10, mode="exp_range", gamma=1.5)
  t = np.array([5, 500, 505, 2000, 2**20 + 5, 2**31 - 1])
  out = np.asarray(s(t))
  big = np.finfo(np.float32).max
  assert np.all(np.isfinite(out))
  np.testing.assert_array_equal(out[[2, 4]], big)  # 1.5**505 overflows float32: held at its max
  np.testing.assert_array_equal(out[[1, 3]], np.float32(0.1))  # the bottom of a cycle is base_value
  close(out[0], 0.1 + 0.9 * 0.5 * 1.5**5)
  m = S.cyclic_momentum(0.8, 0.9, 10, mode="exp_range", gamma=1.5)(t)  # falls to -max, never -inf
  np.testing.assert_array_equal(np.asarray(m)[[1, 2, 3]], np.float32([0.9, -big, 0.9]))
  with pytest.raises(OverflowError):  # PyTorch's Python float overflows instead
    _cyclic_torch(1800, base_lr=0.1, max_lr=1.0, step_size_up=10, mode="exp_range", gamma=1.5)  # 1.5**1751


@pytest.mark.parametrize("strategy,anneal", [("cos", 10), ("linear", 5), ("cos", 1)])
def test_swalr_matches_torch_swa_recipe(strategy, anneal):
  from torch.optim.swa_utils import SWALR

  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=0.5)
  sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=60, eta_min=0.0)
  swa = SWALR(opt, swa_lr=0.05, anneal_epochs=anneal, anneal_strategy=strategy)
  swa_start, want = 30, []
  for epoch in range(60):
    want.append(opt.param_groups[0]["lr"])
    opt.step()
    if epoch >= swa_start:
      swa.step()
    else:
      sched.step()
  ours = S.swalr(S.cosine_annealing(0.5, 60), swa_start, 0.05, anneal, strategy)
  close(CALL(ours, np.arange(60)), want, rtol=1e-5, atol=1e-7)


def test_swa_running_average_recipe_equals_torch_averaged_model():
  from torch.optim.swa_utils import AveragedModel

  rng = np.random.default_rng(0)
  snaps = [
    {"w": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=2).astype(np.float32)}
    for _ in range(6)
  ]
  model = torch.nn.Linear(3, 2)
  avg = AveragedModel(model)
  swa = jax.tree.map(jnp.zeros_like, snaps[0])
  for n, snap in enumerate(snaps):
    with torch.no_grad():
      model.weight.copy_(torch.from_numpy(snap["w"].T.copy()))
      model.bias.copy_(torch.from_numpy(snap["b"]))
    avg.update_parameters(model)
    swa = jax.tree.map(lambda a, p, n=n: a + (p - a) / (n + 1), swa, snap)  # the README's recipe
  close(swa["w"], avg.module.weight.detach().numpy().T, rtol=1e-6, atol=1e-7)
  close(swa["b"], avg.module.bias.detach().numpy(), rtol=1e-6, atol=1e-7)
  close(swa["w"], np.mean([s["w"] for s in snaps], axis=0), rtol=1e-6, atol=1e-7)


def test_noise_law_matches_timm_add_noise():
  # timm's _add_noise (torch.Generator seeded noise_seed + t; redraw until |z| < pct): the same law
  # as noisy's truncated normal; compare distributions over many steps (another generator).
  pct, n = 0.67, 4000

  def timm_noise(t, seed=42):
    g = torch.Generator()
    g.manual_seed(seed + t)
    while True:
      z = torch.randn(1, generator=g).item()
      if abs(z) < pct:
        return z

  theirs = np.array([timm_noise(t) for t in range(n)])
  ours = np.asarray(S.noisy(S.constant(1.0), seed=42, noise_pct=pct)(np.arange(n)), np.float64) - 1
  assert np.abs(ours).max() < pct and np.abs(theirs).max() < pct
  # truncated N(0, 1) on (-0.67, 0.67): mean 0, std 0.3697; quantiles agree within sampling error
  for q in (0.1, 0.25, 0.5, 0.75, 0.9):
    assert abs(np.quantile(ours, q) - np.quantile(theirs, q)) < 0.04, q
  assert abs(ours.std() - 0.3697) < 0.015 and abs(theirs.std() - 0.3697) < 0.015


def test_cosine_with_min_lr_half_wave_is_optax_warmup_cosine_decay():
  want = jax.vmap(optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100, end_value=0.05))(STEPS)
  close(CALL(S.cosine_with_min_lr(1.0, 100, 10, min_lr=0.05), STEPS), want, rtol=2e-6, atol=1e-6)
