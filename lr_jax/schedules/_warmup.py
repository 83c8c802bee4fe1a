"""Warm-up schedules: ``warmup`` (around any schedule), ``inverse_sqrt`` and ``warmup_stable_decay``."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lr_jax._validation import Rule, ge, gt, is_traced, number, poison
from lr_jax.schedules._base import (
  ArrayLike,
  Schedule,
  as_float,
  as_step,
  child,
  hyper,
  register,
  schedule_class,
  static_field,
)

__all__ = ["inverse_sqrt", "warmup", "warmup_stable_decay"]

_WARMUP_MODES = ("linear", "exponential")
_DECAYS = ("linear", "cosine", "1-sqrt")


def _safe_div(num, den):
  """``num / den`` where ``den > 0``, else 0 (with finite gradients on both sides)."""
  pos = den > 0
  return jnp.where(pos, num / jnp.where(pos, den, 1), 0)


@schedule_class
class Warmup(Schedule):
  """See :func:`warmup`."""

  schedule: Schedule = child()
  warmup_steps: ArrayLike = hyper(rules=(ge(0),))
  init_value: ArrayLike = hyper(0.0)
  mode: str = static_field("linear", options=_WARMUP_MODES)
  name = "warmup"
  rules = (
    Rule(
      ("init_value",),
      gt(0).test,
      '`init_value` must be > 0 with mode="exponential"',
      when=lambda v: v["mode"] == "exponential",
    ),
  )

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    w, init = as_float(self.warmup_steps, dt), as_float(self.init_value, dt)
    t = as_step(step, dt)
    after = as_float(self.schedule(jnp.maximum(t - w, 0)), dt)
    target = as_float(self.schedule(jnp.zeros((), dt)), dt)  # the inner schedule's rate at its step 0
    done = _safe_div(t, w)
    if self.mode == "linear":
      ramp = init * _safe_div(w - t, w) + target * done  # exact at both ends
    else:
      ramp = init * jnp.power(target / init, done)
    rate = jnp.where(t < w, ramp, after)
    return poison(rate, self.valid())


@register("warmup")
def warmup(
  schedule: Schedule | Callable[[ArrayLike], ArrayLike],
  warmup_steps: ArrayLike,
  init_value: ArrayLike = 0.0,
  mode: str = "linear",
) -> Warmup:
  """Prepends a warm-up from ``init_value`` to ``schedule``'s first rate, then runs ``schedule``.

  With W = ``warmup_steps``, s = ``schedule`` and s0 = s(0)::

      lr(t) = init + (s0 - init) * t / W          t < W, mode="linear"
            = init * (s0 / init) ** (t / W)       t < W, mode="exponential" (geometric)
            = s(t - W)                            t >= W

  The inner schedule restarts from its own step 0 after the warm-up, exactly like
  ``torch.optim.lr_scheduler.SequentialLR([LinearLR(start_factor=init/base, total_iters=W), X],
  milestones=[W])``, where ``base`` is the optimizer's lr (= s0). PyTorch's ``LinearLR`` cannot
  start at 0 (``start_factor > 0``); this can. Optax's ``warmup_*`` schedules fix the schedule that
  follows; this wraps any schedule. ``W = 0`` means no warm-up.

  HF transformers' warm-up schedules (``transformers/optimization.py``, optimizer lr ``lr``, N training
  steps) are compositions (tested against transformers in ``tests/parity/test_peer_schedules_b.py``):
  ``get_constant_schedule_with_warmup(W)`` is ``warmup(constant(lr), W)``,
  ``get_linear_schedule_with_warmup(W, N)`` is ``warmup(linear(lr, 0.0, N - W), W)``, and
  ``get_polynomial_decay_schedule_with_warmup(W, N, lr_end, power)`` is
  ``warmup(polynomial_decay(lr, N - W, lr_end, power), W)``; ``get_inverse_sqrt_schedule`` is
  :func:`inverse_sqrt` and ``get_wsd_schedule`` is :func:`warmup_stable_decay`.

  Args:
    schedule: an lr_jax schedule (serializable) or any ``step -> rate`` callable (an Optax
      schedule, a function; these cannot be serialized by ``to_config``).
    warmup_steps: length of the warm-up; must be >= 0.
    init_value: rate at step 0; must be > 0 with ``mode="exponential"``.
    mode: ``"linear"`` or ``"exponential"`` (requires s0 >= 0 as well; s0 < 0 gives NaN).

  Returns:
    A ``Warmup`` schedule (a pytree holding ``schedule`` as a child).

  Raises:
    ValueError: if a concrete hyperparameter is out of range, ``mode`` is unknown or ``schedule`` is
      not callable. Traced invalid values give NaN rates.

  References:
    Goyal et al., `Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour
    <https://arxiv.org/abs/1706.02677>`_, 2017 (gradual warm-up).

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.warmup(schedules.cosine_annealing(1.0, total_steps=10), warmup_steps=4)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 1, 2, 4, 9, 14)))
    0.00 0.25 0.50 1.00 0.50 0.00
  """
  return Warmup.build(
    "warmup", schedule=schedule, warmup_steps=warmup_steps, init_value=init_value, mode=mode
  )


@schedule_class
class InverseSqrt(Schedule):
  """See :func:`inverse_sqrt`."""

  peak_value: ArrayLike = hyper()
  warmup_steps: ArrayLike = hyper(rules=(ge(0),))
  name = "inverse_sqrt"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    peak, w = as_float(self.peak_value, dt), as_float(self.warmup_steps, dt)
    t = as_step(step, dt)
    pos = w > 0
    ramp = jnp.where(pos, t / jnp.where(pos, w, 1), jnp.inf)
    decay = jnp.sqrt(jnp.maximum(w, 1) / jnp.maximum(t, 1))
    rate = peak * jnp.minimum(ramp, decay)
    return poison(rate, self.valid())


@register("inverse_sqrt")
def inverse_sqrt(peak_value: ArrayLike, warmup_steps: ArrayLike) -> InverseSqrt:
  """Linear warm-up to ``peak_value``, then decay with the inverse square root of the step.

  With W = ``warmup_steps``::

      lr(t) = peak * min(t / W, sqrt(max(W, 1) / max(t, 1)))

  i.e. ``peak * t / W`` for t < W and ``peak * sqrt(W / t)`` for t >= W when W >= 1: the
  "Noam" / Transformer schedule, equal to HF transformers ``get_inverse_sqrt_schedule(
  num_warmup_steps=W)`` (its default ``timescale = W``) times ``peak_value``. With W = 0 there is no
  warm-up and the decay's timescale is 1 step: ``peak / sqrt(max(t, 1))`` (HF instead switches to
  ``timescale=10_000``); a fractional 0 < W < 1 ramps to ``peak`` at W and holds it until step 1.
  Optax and PyTorch have no such schedule.

  Args:
    peak_value: rate at the end of the warm-up.
    warmup_steps: length of the warm-up and the decay's timescale; must be >= 0.

  Returns:
    An ``InverseSqrt`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if a concrete hyperparameter is out of range. Traced invalid values give NaN rates.

  References:
    Vaswani et al., `Attention Is All You Need <https://arxiv.org/abs/1706.03762>`_, NeurIPS 2017, §5.3.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.inverse_sqrt(1.0, warmup_steps=4)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 2, 4, 16, 64)))
    0.00 0.50 1.00 0.50 0.25
  """
  return InverseSqrt.build("inverse_sqrt", peak_value=peak_value, warmup_steps=warmup_steps)


@schedule_class
class WarmupStableDecay(Schedule):
  """See :func:`warmup_stable_decay`."""

  peak_value: ArrayLike = hyper()
  total_steps: ArrayLike = hyper()
  warmup_steps: ArrayLike = hyper(rules=(ge(0),))
  decay_steps: ArrayLike = hyper(rules=(gt(0),))
  end_value: ArrayLike = hyper(0.0)
  decay: str = static_field("linear", options=_DECAYS)
  warmup: str = static_field("linear", options=_DECAYS)
  init_value: ArrayLike = hyper(0.0)
  name = "warmup_stable_decay"
  rules = (
    Rule(
      ("warmup_steps", "decay_steps", "total_steps"),
      lambda w, d, n: w + d <= n,
      "`warmup_steps + decay_steps` must be <= `total_steps`",
    ),
  )

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    peak, total, w, d, end, init = (
      as_float(x, dt)
      for x in (
        self.peak_value,
        self.total_steps,
        self.warmup_steps,
        self.decay_steps,
        self.end_value,
        self.init_value,
      )
    )
    t = as_step(step, dt)
    done, ahead = _safe_div(t, w), _safe_div(w - t, w)  # warm-up progress and 1 - it, each exact at its end
    if self.warmup == "linear":
      ramp = init * ahead + peak * done  # init = 0: peak * t / W
    elif self.warmup == "cosine":  # h = (1 - cos(pi * done)) / 2 = sin^2(pi/2 * done); 1 - h likewise
      h, keep = jnp.square(jnp.sin(0.5 * jnp.pi * done)), jnp.square(jnp.sin(0.5 * jnp.pi * ahead))
      ramp = init * keep + peak * h
    else:  # 1-sqrt (HF): h = 1 - sqrt(1 - done)
      keep = jnp.sqrt(jnp.clip(ahead, 0, 1))
      ramp = init * keep + peak * (1 - keep)
    start = total - d
    q = jnp.clip(_safe_div(t - start, d), 0, 1)  # decay progress: 0 when it starts, 1 at total_steps
    r = jnp.clip(_safe_div(total - t, d), 0, 1)  # 1 - q, exact near the end
    if self.decay == "linear":
      f, g = r, q
    elif self.decay == "cosine":  # f = (1 + cos(pi * q)) / 2 = sin^2(pi/2 * r), g = 1 - f = sin^2(pi/2 * q)
      f, g = jnp.square(jnp.sin(0.5 * jnp.pi * r)), jnp.square(jnp.sin(0.5 * jnp.pi * q))
    else:  # 1-sqrt: f = 1 - sqrt(q)
      g = jnp.sqrt(q)
      f = 1 - g
    decayed = peak * f + end * g  # exact at both ends of the decay
    rate = jnp.where(t < w, ramp, jnp.where(t < start, peak, decayed))
    return poison(rate, self.valid())


@register("warmup_stable_decay")
def warmup_stable_decay(
  peak_value: ArrayLike,
  total_steps: ArrayLike,
  warmup_steps: ArrayLike,
  decay_steps: ArrayLike,
  end_value: ArrayLike = 0.0,
  decay: str = "linear",
  warmup: str = "linear",
  init_value: ArrayLike = 0.0,
  *,
  min_lr_ratio: ArrayLike | None = None,
) -> WarmupStableDecay:
  """Warmup-stable-decay (WSD, "trapezoidal"): warm up, hold ``peak_value``, decay at the end.

  With N = ``total_steps``, W = ``warmup_steps``, D = ``decay_steps``, p = t / W and
  q = (t - (N - D)) / D::

      lr(t) = init + (peak - init) * h(p)        t < W
            = peak                               W <= t < N - D
            = end + (peak - end) * f(q)          N - D <= t < N
            = end                                t >= N
      h(p)  = p                   f(q) = 1 - q                  "linear"
            = (1 - cos(pi p)) / 2        = (1 + cos(pi q)) / 2  "cosine"
            = 1 - sqrt(1 - p)            = 1 - sqrt(q)          "1-sqrt"

  with ``warmup`` choosing h and ``decay`` choosing f. This is HF transformers
  ``get_wsd_schedule(optimizer, num_warmup_steps=W, num_decay_steps=D, num_training_steps=N,
  warmup_type=warmup, decay_type=decay, min_lr_ratio=r)`` (``num_cycles=0.5``) with the optimizer's
  lr ``peak_value`` and ``init_value = end_value = r * peak_value``, which ``min_lr_ratio=r`` sets
  (HF's warm-up starts at the minimum rate; here it may start anywhere, 0 by default). HF's
  ``num_stable_steps=S`` (instead of N) is ``total_steps = W + S + D``. HF's ``num_cycles`` (a
  cosine decay that comes back up when != 0.5) is not ported. The 1-sqrt cooldown is the one
  Hägele et al. found best.

  Args:
    peak_value: rate of the stable phase.
    total_steps: N, the length of the whole schedule (warm-up, stable and decay).
    warmup_steps: W, length of the warm-up; must be >= 0.
    decay_steps: D, length of the final decay; must be > 0, and W + D <= N.
    end_value: rate at and after N.
    decay: ``"linear"``, ``"cosine"`` or ``"1-sqrt"`` (HF's ``decay_type``).
    warmup: ``"linear"``, ``"cosine"`` or ``"1-sqrt"`` (HF's ``warmup_type``).
    init_value: rate at step 0, where the warm-up starts.
    min_lr_ratio: HF's minimum rate as a ratio of the peak: sets ``init_value`` and ``end_value`` to
      ``min_lr_ratio * peak_value`` (then they must be left at their defaults). Keyword only.

  Returns:
    A ``WarmupStableDecay`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if a concrete hyperparameter is out of range or a shape name is unknown. Traced
      invalid values give NaN rates.

  References:
    Hägele et al., `Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations
    <https://arxiv.org/abs/2405.18392>`_, NeurIPS 2024; HF transformers, ``get_wsd_schedule``
    (``transformers/optimization.py``).

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.warmup_stable_decay(1.0, total_steps=10, warmup_steps=2, decay_steps=4)
    >>> print(*(f"{lr(t):.2f}" for t in (0, 1, 2, 6, 7, 9, 10, 20)))
    0.00 0.50 1.00 1.00 0.75 0.25 0.00 0.00
    >>> hf = schedules.warmup_stable_decay(
    ...   1.0, 10, 2, 4, decay="1-sqrt", warmup="cosine", min_lr_ratio=0.1
    ... )
    >>> print(*(f"{hf(t):.2f}" for t in (0, 1, 2, 6, 7, 9, 10)))
    0.10 0.55 1.00 1.00 0.55 0.22 0.10
  """
  fn = "warmup_stable_decay"
  if min_lr_ratio is not None:
    for k, v in (("init_value", init_value), ("end_value", end_value)):
      if isinstance(v, bool) or is_traced(v) or not isinstance(v, (int, float)) or v != 0:
        raise ValueError(
          f"{fn}: `min_lr_ratio` sets `init_value` and `end_value`; leave them at 0, got {k}={v!r} "
          f"with min_lr_ratio={min_lr_ratio!r}."
        )
    ratio = number(min_lr_ratio, fn=fn, name="min_lr_ratio")
    init_value = end_value = ratio * (jnp.asarray(peak_value) if is_traced(ratio) else peak_value)
  return WarmupStableDecay.build(
    fn,
    peak_value=peak_value,
    total_steps=total_steps,
    warmup_steps=warmup_steps,
    decay_steps=decay_steps,
    end_value=end_value,
    decay=decay,
    warmup=warmup,
    init_value=init_value,
  )
