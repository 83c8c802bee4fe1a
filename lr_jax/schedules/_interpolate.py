"""``piecewise_interpolate``: Optax's ``piecewise_interpolate_schedule`` (linear or cosine pieces)."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from lr_jax._validation import NONDECREASING, Rule, ge, is_traced, poison
from lr_jax.schedules._base import (
  ArrayLike,
  Schedule,
  as_float,
  hyper,
  register,
  schedule_class,
  static_field,
)
from lr_jax.schedules._steps import _passed, _split_step

__all__ = ["piecewise_interpolate"]

_TYPES = ("linear", "cosine")


def _finite_levels(init, scales):
  """Every level ``|init| * prod(scales[:i])`` is finite in float32 (large scales may overflow)."""
  if is_traced((init, scales)):
    levels = jnp.abs(as_float(init, jnp.float32)) * jnp.cumprod(as_float(scales, jnp.float32))
    return jnp.all(jnp.isfinite(levels))
  levels = np.abs(np.float64(init)) * np.cumprod(np.asarray(scales, np.float64))
  return bool(np.all(levels <= np.finfo(np.float32).max))


@schedule_class
class PiecewiseInterpolate(Schedule):
  """See :func:`piecewise_interpolate`."""

  init_value: ArrayLike = hyper()
  boundaries: ArrayLike = hyper(rules=(ge(0), NONDECREASING), array=True)
  scales: ArrayLike = hyper(rules=(ge(0),), array=True)
  interpolate_type: str = static_field("linear", options=_TYPES)
  name = "piecewise_interpolate"
  rules = (
    Rule(
      ("init_value", "scales"),
      _finite_levels,
      "`init_value` * cumprod(`scales`) must stay finite in float32",
    ),
  )

  def _eval(self, step: ArrayLike) -> jax.Array:
    dt = self.dtype
    init, bounds, scales = (as_float(x, dt) for x in (self.init_value, self.boundaries, self.scales))
    n = bounds.shape[0]
    levels = jnp.cumprod(jnp.concatenate([jnp.reshape(init, (1,)), scales]))  # n + 1 levels
    hi, lo = _split_step(step, dt)
    if n == 0:
      return poison(levels[0] * jnp.ones_like(hi), self.valid())
    passed = _passed(step, bounds, dt, strict=False)  # t >= b_i: the step is in piece i + 1 or later
    # The current piece's start level, end level, start step and length, selected by a chain of
    # selects (sorted boundaries): piece 0 is [0, b_0), piece i is [b_{i-1}, b_i), the last holds.
    start, end = jnp.broadcast_to(levels[0], hi.shape), jnp.broadcast_to(levels[1], hi.shape)
    begin = jnp.zeros_like(hi)
    size = jnp.broadcast_to(jnp.maximum(bounds[0], 1), hi.shape)
    for i in range(n):
      last = i == n - 1
      start = jnp.where(passed[..., i], levels[i + 1], start)
      end = jnp.where(passed[..., i], levels[i + 1] if last else levels[i + 2], end)
      begin = jnp.where(passed[..., i], bounds[i], begin)
      if not last:
        size = jnp.where(passed[..., i], jnp.maximum(bounds[i + 1] - bounds[i], 1), size)
    pct = ((hi - begin) + lo) / size  # the step's offset in its piece (exact sign and size for int steps)
    if self.interpolate_type == "linear":
      rate = (end - start) * pct + start
    else:
      rate = end + (start - end) / 2 * (jnp.cos(jnp.pi * pct) + 1)
    return poison(rate, self.valid())


@register("piecewise_interpolate")
def piecewise_interpolate(
  init_value: ArrayLike,
  boundaries: ArrayLike | dict,
  scales: ArrayLike | None = None,
  interpolate_type: str = "linear",
) -> PiecewiseInterpolate:
  """Interpolates (linearly or by a half cosine) between levels set by multiplicative scales.

  With b_1 <= ... <= b_n = ``boundaries``, s_i = ``scales`` and b_0 = 0, the levels are
  ``v_0 = init`` and ``v_i = init * s_1 * ... * s_i``; between boundaries the rate moves from one
  level to the next::

      pct   = (t - b_{i-1}) / max(b_i - b_{i-1}, 1)        b_{i-1} <= t < b_i
      lr(t) = v_{i-1} + (v_i - v_{i-1}) * pct              interpolate_type="linear"
            = v_i + (v_{i-1} - v_i) * (1 + cos(pi * pct)) / 2   interpolate_type="cosine"
      lr(t) = v_n                                          t >= b_n

  Exactly ``optax.piecewise_interpolate_schedule(interpolate_type, init_value,
  boundaries_and_scales={b_i: s_i})`` for steps >= 0 (Optax gives 0 at negative steps; here they
  count as step 0), and the building block of Optax's ``linear_onecycle_schedule`` /
  ``cosine_onecycle_schedule``. The scales multiply: ``{4: 0.1, 8: 0.01}`` ends at ``init * 0.001``.
  Unlike Optax's dict, ``boundaries`` and ``scales`` are array leaves, so they can be traced and
  vmapped (a batch of the same length). Empty ``boundaries`` give a constant ``init_value``.

  Args:
    init_value: the rate at step 0.
    boundaries: non-decreasing steps >= 0 (a list or 1-D array), or Optax's dict ``{step: scale}``
      (then ``scales`` is omitted).
    scales: one factor >= 0 per boundary: the level at ``b_i`` is the previous level times ``s_i``.
    interpolate_type: ``"linear"`` or ``"cosine"`` (static).

  Returns:
    A ``PiecewiseInterpolate`` schedule (a pytree; call it with a step or an array of steps).

  Raises:
    ValueError: if the lengths differ, an argument is not 1-D, or a concrete value is out of range
      (a negative or unsorted boundary, a negative scale). Traced invalid values give NaN rates.

  References:
    Optax, `piecewise_interpolate_schedule
    <https://optax.readthedocs.io/en/latest/api/optimizer_schedules.html>`_.

  Examples:
    >>> from lr_jax import schedules
    >>> lr = schedules.piecewise_interpolate(1.0, {4: 0.1, 8: 0.01})
    >>> print(*(f"{lr(t):.4f}" for t in (0, 2, 4, 6, 8, 10)))
    1.0000 0.5500 0.1000 0.0505 0.0010 0.0010
    >>> cos = schedules.piecewise_interpolate(1.0, [4], [0.0], interpolate_type="cosine")
    >>> print(*(f"{cos(t):.4f}" for t in (0, 1, 2, 3, 4)))
    1.0000 0.8536 0.5000 0.1464 0.0000
  """
  fn = "piecewise_interpolate"
  if isinstance(boundaries, dict):
    if scales is not None:
      raise ValueError(f"{fn}: `scales` must be omitted when `boundaries` is a dict, got scales={scales!r}.")
    items = sorted(boundaries.items())
    boundaries, scales = [k for k, _ in items], [v for _, v in items]
  if scales is None:
    raise ValueError(f"{fn}: `scales` must be a sequence of numbers, got scales=None.")
  for name, v in (("boundaries", boundaries), ("scales", scales)):
    if isinstance(v, numbers.Number) or getattr(v, "ndim", 1) == 0:
      raise ValueError(f"{fn}: `{name}` must be a 1-D sequence of numbers, got {name}={v!r}.")
  s = PiecewiseInterpolate.build(
    fn, init_value=init_value, boundaries=boundaries, scales=scales, interpolate_type=interpolate_type
  )
  nb, ns = jnp.shape(s.boundaries)[0], jnp.shape(s.scales)[0]
  if nb != ns:
    raise ValueError(f"{fn}: `scales` must have one entry per boundary, got {ns} scales and {nb} boundaries.")
  return s
