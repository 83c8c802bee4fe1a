"""``noisy``: timm's learning-rate noise as a pure function of the step (seeded, resumable)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.extend.random import threefry_2x32
from jax.scipy.special import ndtr, ndtri

from lr_jax._validation import NONDECREASING, WHOLE, Bound, ge, gt, poison
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

__all__ = ["noisy"]

_FOREVER = 2**31 - 1  # an end of the noise range at (or past) the last step: no end
# [0, 2**31), written with a strict upper end so that a traced float32 2**31 is rejected too
_SEED = Bound(lambda v: (v >= 0) & (v < 2.0**31), "must be in [0, 2**31 - 1]")


def _step_ints(step: ArrayLike) -> jax.Array:
  """The whole step (``floor(max(step, 0))``) as uint32, the counter of the hash."""
  s = jnp.asarray(step)
  if jnp.issubdtype(s.dtype, jnp.integer):
    return jnp.maximum(s, 0).astype(jnp.uint32)
  return jnp.clip(jnp.floor(s), 0, _FOREVER).astype(jnp.uint32)


def _uniform(seed: jax.Array, ints: jax.Array) -> jax.Array:
  """Uniform float32 in [0, 1), a pure function of (seed, each step): one Threefry-2x32 hash per step.

  Threefry hashes pairs of counters; each step is paired with 0, so its value does not depend on the
  other steps in the array (the same step gives the same draw in any batch).
  """
  flat = ints.ravel()
  keypair = jnp.stack([jnp.zeros((), jnp.uint32), seed])
  bits = threefry_2x32(keypair, jnp.concatenate([flat, jnp.zeros_like(flat)]))[: flat.size]
  one = jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32)  # [1, 2)
  return (one - 1).reshape(ints.shape)


@schedule_class
class Noisy(Schedule):
  """See :func:`noisy`."""

  schedule: Schedule = child()
  seed: ArrayLike = hyper(0, rules=(_SEED, WHOLE))
  noise_range: ArrayLike = hyper((0, _FOREVER), array=True, rules=(ge(0), NONDECREASING))
  noise_pct: ArrayLike = hyper(0.67, rules=(gt(0),))
  noise_std: ArrayLike = hyper(1.0, rules=(gt(0),))
  noise_type: str = static_field("normal", options=("normal", "uniform"))
  name = "noisy"

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    pct, std = as_float(self.noise_pct, dt), as_float(self.noise_std, dt)
    rng = as_float(self.noise_range, dt)
    t = as_step(step, dt)
    lr = as_float(self.schedule(step), dt)
    seed = jnp.asarray(self.seed)
    if not jnp.issubdtype(seed.dtype, jnp.integer):
      seed = jnp.round(seed)
    u = _uniform(jnp.clip(seed, 0, _FOREVER).astype(jnp.uint32), _step_ints(step))
    # The uniform draw has 23 bits whatever the compute dtype, so float32 and float64 schedules (x64)
    # get the same noise up to rounding.
    u = as_float(u, dt)
    if self.noise_type == "normal":  # timm: redraw z ~ N(0, 1) until |z| < pct (std scales z here)
      bound = pct / jnp.where(std > 0, std, 1)
      lo = ndtr(-bound)  # inverse CDF of the normal truncated to (-bound, bound)
      noise = std * jnp.clip(ndtri(lo + u * (1 - 2 * lo)), -bound, bound)
    else:  # uniform in [-pct, pct)
      noise = pct * (2 * u - 1)
    on = (t >= rng[0]) & ((t < rng[1]) | (rng[1] >= _FOREVER))
    rate = jnp.where(on, lr + lr * noise, lr)
    return poison(rate, self.valid())


@register("noisy")
def noisy(
  schedule: Schedule | Callable[[ArrayLike], ArrayLike],
  seed: ArrayLike = 0,
  noise_range: ArrayLike | None = None,
  noise_pct: ArrayLike = 0.67,
  noise_std: ArrayLike = 1.0,
  noise_type: str = "normal",
) -> Noisy:
  """Multiplies ``schedule``'s rate by ``1 + noise``, a random draw that depends only on (seed, step).

  With s = ``schedule``, p = ``noise_pct``, sigma = ``noise_std`` and [a, b) = ``noise_range``::

      lr(t)   = s(t) * (1 + n(t))       a <= t < b
              = s(t)                    otherwise
      n(t)    ~ sigma * z, z ~ N(0, 1) conditioned on |sigma * z| < p      noise_type="normal"
              ~ Uniform[-p, p)                                              noise_type="uniform"

  The draw for step t is a Threefry-2x32 hash (the counter-based generator behind ``jax.random``) of
  (seed, floor(t)), turned into the truncated normal by its inverse CDF: the same step always gives
  the same rate, so the schedule stays a pure function (resuming at any step is exact; ``jit``,
  ``vmap`` over seeds or steps work), at one hash per step. timm's ``Scheduler(noise_range_t, noise_type, noise_pct, noise_std,
  noise_seed)`` (timm 1.0, ``timm/scheduler/scheduler.py``) has the same law: it re-seeds a
  ``torch.Generator`` with ``noise_seed + t`` and redraws ``z`` until ``|z| < noise_pct`` (a normal
  truncated to (-p, p)), or draws ``2 (u - 1/2) p``. The numbers differ (another generator); the
  distribution is the same. timm stores ``noise_std`` but does not use it (sigma = 1, the default
  here). timm's scalar ``noise_range_t=a`` is ``noise_range=a`` (noise from a on); its ``None``
  (no noise) is not wrapping the schedule.

  Args:
    schedule: an lr_jax schedule (serializable) or any ``step -> rate`` callable.
    seed: whole number in [0, 2**31 - 1]; different seeds give independent noise.
    noise_range: ``(a, b)``: noise for a <= t < b; a single number a: from a on; ``None``: every step.
      An end b >= 2**31 - 1 means no end.
    noise_pct: p, the bound of the relative noise; must be > 0 (timm's default 0.67).
    noise_std: sigma, the scale of the normal before truncation; must be > 0.
    noise_type: ``"normal"`` (truncated normal) or ``"uniform"``.

  Returns:
    A ``Noisy`` schedule (a pytree holding ``schedule`` as a child).

  Raises:
    ValueError: if a concrete hyperparameter is out of range, ``noise_type`` is unknown or
      ``schedule`` is not callable. Traced invalid values give NaN rates.

  References:
    Neelakantan et al., `Adding Gradient Noise Improves Learning for Very Deep Networks
    <https://arxiv.org/abs/1511.06807>`_, 2015; timm's schedulers (Wightman, 2019).

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.noisy(schedules.constant(1.0), seed=0, noise_range=(2, 6), noise_type="uniform")
    >>> rates = [float(lr(t)) for t in range(8)]
    >>> print(*(f"{r:.2f}" for r in rates[:2] + rates[6:]), all(abs(r - 1) < 0.67 for r in rates))
    1.00 1.00 1.00 1.00 True
    >>> print(len(set(rates[2:6])))  # a different draw at each step in the range
    4
    >>> bool(lr(4) == rates[4])  # the same step, the same rate
    True
  """
  fn = "noisy"
  if noise_range is None:
    noise_range = (0, _FOREVER)
  elif not isinstance(noise_range, (list, tuple)) and jnp.ndim(noise_range) == 0:
    noise_range = (noise_range, _FOREVER)
  n = len(noise_range) if isinstance(noise_range, (list, tuple)) else jnp.shape(noise_range)
  if n not in (2, (2,)):
    raise ValueError(
      f"{fn}: `noise_range` must be (start, end), a start or None, got noise_range={noise_range!r}."
    )
  return Noisy.build(
    fn,
    schedule=schedule,
    seed=seed,
    noise_range=noise_range,
    noise_pct=noise_pct,
    noise_std=noise_std,
    noise_type=noise_type,
  )
