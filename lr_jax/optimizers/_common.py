"""Private helpers shared by the optimizer modules: learning-rate validation and scaling, moment
dtypes, weight decay (values, schedules, masks), complex parameters and per-leaf mapping."""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from lr_jax._validation import all_ok, check, is_traced, number, poison, static_equal
from lr_jax.schedules._base import FunctionSchedule, Schedule, as_float


@jax.custom_jvp
def _sqrt(x):
  """``jnp.sqrt`` whose derivative at 0 is 0 instead of inf.

  An optimizer's second moment is exactly 0 for a parameter whose gradient has always been 0 (an
  input pixel that is always 0, a dead unit), and then so is its tangent; ``jnp.sqrt``'s derivative
  there gives ``0 * inf = NaN``, which would make every hypergradient through the optimizer NaN
  (``lr_jax.hypergradient``). 0 is the right derivative there (the moment stays 0 around that
  point, or has a kink like ``|g|``, of which 0 is a subgradient). The values are ``jnp.sqrt``'s.
  """
  return jnp.sqrt(x)


@_sqrt.defjvp
def _sqrt_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = jnp.sqrt(x)
  pos = x > 0
  return y, jnp.where(pos, t / (2 * jnp.where(pos, y, 1)), jnp.zeros_like(y))


def _static_zero(x) -> bool:
  """True only for a plain Python ``int``/``float`` equal to 0 (never for arrays or tracers).

  Decides *structure* (is a buffer kept, is the weight-decay term computed); arrays and tracers
  always get the general path, so the state's structure never depends on a traced value.
  """
  return static_equal(x, 0)


def _learning_rate(learning_rate, fn: str):
  """Validates a concrete learning rate (>= 0); a traced negative one becomes NaN.

  A schedule (anything that is not a number) is passed through untouched (``optax.scale_by_learning_rate``
  decides how to apply it) after :func:`_check_schedule_non_negative`.
  """
  is_number = isinstance(learning_rate, (numbers.Real, np.ndarray, np.generic, jax.Array, str, bytes))
  if not (is_number or learning_rate is None):
    if callable(learning_rate) and not isinstance(learning_rate, optax.GradientTransformation):
      _check_schedule_non_negative(learning_rate, fn=fn, name="learning_rate")
      return learning_rate
    raise ValueError(
      f"{fn}: `learning_rate` must be a number, an array or a schedule (a callable step -> rate), "
      f"got learning_rate={learning_rate!r}."
    )
  lr = number(learning_rate, fn=fn, name="learning_rate")
  ok = check(lr >= 0, fn=fn, must="`learning_rate` must be >= 0", learning_rate=lr)
  return poison(lr, ok)


def _scale_by_learning_rate(learning_rate) -> optax.GradientTransformation:
  """``optax.scale_by_learning_rate`` (same numerics), keeping each update's dtype (bf16 stays bf16).

  Its state, ``ScaleByLearningRateState(count, learning_rate)``, keeps the update count and the rate
  given at construction (the constant as an array, or the schedule as a pytree value), so that
  ``optimizers.current_lr(state)`` can give the rate of the next update without the closure. The
  updates are computed from the closure, exactly as Optax does.
  """
  from lr_jax.optimizers._state import ScaleByLearningRateState, real_dtype, stored_learning_rate  # no cycle

  scheduled = callable(learning_rate)

  def init_fn(params):
    stored = stored_learning_rate(learning_rate, real_dtype(params))
    return ScaleByLearningRateState(jnp.zeros([], jnp.int32), stored)

  def update_fn(updates, state, params=None):
    del params
    if scheduled:  # as optax.scale_by_schedule: the step size cast to each update's dtype first
      step_size = -learning_rate(state.count)
      scaled = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, updates)
    else:  # as optax.scale
      scaled = jax.tree.map(lambda g: (-1 * learning_rate) * g, updates)
    scaled = jax.tree.map(lambda s, u: s.astype(u.dtype), scaled, updates)
    # the stored rate is passed through (never rebuilt here): donated state buffers stay used
    return scaled, ScaleByLearningRateState(optax.safe_increment(state.count), state.learning_rate)

  return optax.GradientTransformation(init_fn, update_fn)


def _moment_dtype_option(moment_dtype, fn: str):
  """Checks the static ``moment_dtype`` option: None, "params" or a floating dtype."""
  if moment_dtype is None or (isinstance(moment_dtype, str) and moment_dtype == "params"):
    return moment_dtype
  try:
    dt = jnp.dtype(moment_dtype)
  except TypeError:
    dt = None
  if dt is None or not jnp.issubdtype(dt, jnp.floating):
    raise ValueError(
      f"{fn}: `moment_dtype` must be None, 'params' or a floating dtype, got moment_dtype={moment_dtype!r}."
    )
  return dt


def _moment_dtype(dtype, moment_dtype) -> jnp.dtype:
  """The dtype of a moment for a parameter of ``dtype``.

  None: at least float32 (bf16/f16 params get float32 moments, float64 keeps float64);
  "params": the parameter's own dtype; otherwise the given dtype.
  """
  if moment_dtype is None:
    return jnp.promote_types(dtype, jnp.float32)
  if isinstance(moment_dtype, str):
    return jnp.dtype(dtype)
  return jnp.dtype(moment_dtype)


def _zeros(params, moment_dtype, fill=0.0):
  """A moment tree mirroring ``params`` (filled with ``fill``) in the moment dtype.

  A complex parameter gets a complex moment holding one real moment per component (PyTorch's
  ``torch.view_as_real``): its dtype is complex64, or complex128 when the real moment dtype is
  float64, and ``fill`` goes into both components (``complex(fill, fill)``, as torch's Adagrad).
  """

  def one(p):
    if jnp.iscomplexobj(p):
      real = _moment_dtype(jnp.finfo(p.dtype).dtype, moment_dtype)
      dt = jnp.dtype(jnp.complex128 if real == jnp.float64 else jnp.complex64)
      part = as_float(fill, jnp.finfo(dt).dtype)
      return jnp.full(jnp.shape(p), lax.complex(part, part), dt)
    dt = _moment_dtype(p.dtype, moment_dtype)
    return jnp.full(jnp.shape(p), as_float(fill, dt), dt)

  return jax.tree.map(one, params)


# ------------------------------------------------------------------------------------------------
# Weight decay: a number or a schedule, and an optional mask
# ------------------------------------------------------------------------------------------------


def _is_schedule(x) -> bool:
  """A callable hyperparameter (a schedule ``step -> value``), as opposed to a number or array."""
  return callable(x) and not isinstance(x, (jax.Array, np.ndarray, optax.GradientTransformation))


def _calls_user_code(s) -> bool:
  """Whether an lr_jax schedule wraps a plain callable somewhere (those are never called eagerly)."""
  if isinstance(s, FunctionSchedule):
    return True
  if isinstance(s, (list, tuple)):
    return any(_calls_user_code(x) for x in s)
  if dataclasses.is_dataclass(s) and isinstance(s, Schedule):
    return any(_calls_user_code(getattr(s, f.name)) for f in dataclasses.fields(s))
  return False


_CHECK_STEPS_DENSE = 4096  # steps 0 .. 4095 are checked one by one
_CHECK_STEPS_LOG = 256  # then a geometric grid up to 2**31 - 1


def _check_steps(schedule) -> np.ndarray:
  """The steps at which :func:`_check_schedule_non_negative` evaluates a schedule.

  Every step below 4096, a geometric grid of 256 steps from 4096 to 2**31 - 1, and every whole
  number among the schedule's hyperparameters (boundaries, total_steps, warmup_steps, ...) with its
  two neighbours, where piecewise schedules change.
  """
  top = 2**31 - 1
  steps = [np.arange(_CHECK_STEPS_DENSE), np.geomspace(_CHECK_STEPS_DENSE, top, _CHECK_STEPS_LOG).round()]
  for leaf in jax.tree.leaves(schedule):
    v = np.asarray(leaf, np.float64).ravel()
    v = v[np.isfinite(v) & (v == np.round(v)) & (v >= 0) & (v <= top)]
    steps += [v - 1, v, v + 1]
  steps = np.unique(np.clip(np.concatenate(steps), 0, top)).astype(np.int64)
  # Padded (with step 0) to a multiple of 8192, so that eager evaluation compiles once per shape.
  return np.pad(steps, (0, -steps.size % 8192))


@jax.jit
def _evaluate(schedule, steps):
  """``schedule(steps)`` as one compiled program (cached per schedule structure)."""
  return schedule(steps)


def _check_schedule_non_negative(schedule, *, fn: str, name: str) -> None:
  """Raises ``ValueError`` if an lr_jax schedule with concrete hyperparameters gives a value < 0.

  The schedule is evaluated once, vectorised, at the steps of :func:`_check_steps`. Only lr_jax
  ``Schedule`` values whose hyperparameters are all concrete are checked; a schedule with traced
  hyperparameters, a plain callable (an Optax schedule, a lambda) or an lr_jax schedule wrapping
  one is not called here (its values are the caller's responsibility).
  """
  if not isinstance(schedule, Schedule) or is_traced(schedule) or _calls_user_code(schedule):
    return
  steps = _check_steps(schedule)
  with jax.ensure_compile_time_eval():  # concrete even when the optimizer is built under jit
    values = np.asarray(_evaluate(schedule, jnp.asarray(steps, jnp.int32)), np.float64)
  bad = np.flatnonzero(values < 0)
  if bad.size:
    k = bad[0]
    raise ValueError(
      f"{fn}: `{name}` must be >= 0 at every step, got {name}={schedule!r}, "
      f"which gives {values[k]:.6g} at step {int(steps[k])}."
    )


def _mask_option(mask, fn: str):
  """Checks the static ``mask`` option: None, a callable params -> tree of bools, or a tree of bools."""
  if mask is None or callable(mask):
    return mask
  leaves = jax.tree.leaves(mask)
  if not all(isinstance(m, (bool, np.bool_)) for m in leaves):
    raise ValueError(
      f"{fn}: `mask` must be a pytree of Python bools (True: decay this parameter) or a callable "
      f"params -> such a pytree, got mask={mask!r}."
    )
  return mask


def _mask_leaves(mask, params, fn: str) -> list[bool]:
  """The mask as one static bool per leaf of ``params`` (a prefix tree broadcasts over subtrees)."""
  if mask is None:
    return [True] * len(jax.tree.leaves(params))
  tree = mask(params) if callable(mask) else mask
  try:
    full = jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), tree, params)
  except ValueError as e:
    raise ValueError(
      f"{fn}: `mask` must have the structure of the params (or a prefix of it), got mask={tree!r}."
    ) from e
  leaves = jax.tree.leaves(full)
  if not all(isinstance(m, (bool, np.bool_)) for m in leaves):
    raise ValueError(f"{fn}: `mask` must give Python bools, got mask={tree!r}.")
  return [bool(m) for m in leaves]


class _WeightDecay:
  """``weight_decay`` (a number, an array, a traced value or a schedule) and its ``mask``.

  Validated at construction; :meth:`per_leaf` resolves, at each update, the decay value of every
  leaf (None where no decay is applied) and the tree to read parameters from.
  """

  def __init__(self, weight_decay, mask, *, fn: str):
    self.fn = fn
    self.is_schedule = _is_schedule(weight_decay)
    if self.is_schedule:
      _check_schedule_non_negative(weight_decay, fn=fn, name="weight_decay")
      self.value, self.ok = weight_decay, True
    else:
      self.value, self.ok = _non_negative(weight_decay, fn=fn, name="weight_decay")
    self.mask = _mask_option(mask, fn)
    #: static: no decay term at all (a Python 0, or a mask that is False everywhere)
    self.off = (not self.is_schedule and _static_zero(self.value)) or (
      self.mask is not None and not callable(self.mask) and not any(jax.tree.leaves(self.mask))
    )

  def per_leaf(self, updates, params, count):
    """``(decays, params, ok)`` for one update (``count`` = updates so far, the schedule's step).

    ``decays`` is a flat list with one entry per leaf of ``updates``: None (no decay term: masked
    out, or a weight decay known to be 0) or the weight-decay value. Without ``params``, a concrete
    weight decay of 0 needs none; a concrete non-zero one raises; a traced one (under
    ``optax.inject_hyperparams`` + ``jit``, or ``vmap``) gives NaN updates where it is non-zero,
    the package's rule for a configuration that cannot be computed under tracing.
    """
    n = len(jax.tree.leaves(updates))
    if self.off:
      return [None] * n, updates, True
    wd, ok = self.value, self.ok
    if self.is_schedule:
      wd, ok = _non_negative(self.value(count), fn=self.fn, name="weight_decay")
    if params is None:
      if not is_traced(wd):
        if np.all(np.asarray(wd) == 0):
          return [None] * n, updates, ok
        raise ValueError(
          f"{self.fn}: `params` must be passed to update() when weight_decay is non-zero, e.g. "
          f"`updates, state = opt.update(grads, state, params)`, got params=None, weight_decay={_show_wd(wd)}."
        )
      return [None] * n, updates, all_ok(ok, wd == 0)
    mask = _mask_leaves(self.mask, params, self.fn)
    if len(mask) != n:
      raise ValueError(f"{self.fn}: `params` must have the structure of the gradients.")
    return [wd if m else None for m in mask], params, ok


def _show_wd(wd) -> str:
  return repr(np.asarray(wd).tolist()) if isinstance(wd, (np.ndarray, jax.Array, np.generic)) else repr(wd)


def _with_coupled_decay(g, p, weight_decay, dt):
  """``g`` cast to ``dt``, plus the coupled L2 term ``weight_decay * p`` unless ``weight_decay`` is None."""
  x = g.astype(dt)
  if weight_decay is not None:
    x = x + as_float(weight_decay, dt) * p.astype(dt)
  return x


def _unit_interval(value, *, fn: str, name: str, closed: bool = False):
  """Validates ``value`` in [0, 1) (or [0, 1] with ``closed``); returns (value, ok)."""
  value = number(value, fn=fn, name=name)
  upper = (value <= 1) if closed else (value < 1)
  must = f"`{name}` must be in [0, 1{']' if closed else ')'}"
  return value, check((value >= 0) & upper, fn=fn, must=must, **{name: value})


def _non_negative(value, *, fn: str, name: str):
  """Validates ``value`` >= 0; returns (value, ok)."""
  value = number(value, fn=fn, name=name)
  return value, check(value >= 0, fn=fn, must=f"`{name}` must be >= 0", **{name: value})


def _whole_at_least(value, minimum: int, *, fn: str, name: str):
  """Validates a whole number >= ``minimum`` (patience, counts); returns (value, ok).

  Concrete values are checked by ``number(integer=True)`` and ``check``; a traced value must also
  be whole, which is folded into ``ok`` (a NaN lane through ``poison``).
  """
  value = number(value, fn=fn, name=name, integer=True)
  ok = check(value >= minimum, fn=fn, must=f"`{name}` must be >= {minimum}", **{name: value})
  if is_traced(value):
    ok = ok & (jnp.round(value) == value)
  return value, ok


class _Flat(list):
  """A tree given to :func:`_map_leaves` already flattened (one entry per leaf of ``updates``)."""


def _real_part(x):
  return x.real if x is not None and jnp.iscomplexobj(x) else x


def _imag_part(x):
  return x.imag if x is not None and jnp.iscomplexobj(x) else x


def _map_leaves(fn, n_out: int, updates, *trees):
  """Calls ``fn(u, *xs)`` per leaf of ``updates`` (a ``None`` tree gives ``None`` leaves).

  ``fn`` returns a tuple of ``n_out`` values; value ``i`` of every leaf is gathered into tree ``i``
  (same structure as ``updates``), and the ``n_out`` trees are returned as a tuple. A ``_Flat``
  list is taken as already flattened.

  A complex leaf is computed as PyTorch does (``torch.view_as_real``): ``fn`` runs once on the real
  parts and once on the imaginary parts of the update and of every complex argument (real
  arguments, such as a weight decay, are shared), and each output is recombined with
  ``lax.complex``. Every optimizer here is elementwise, so this is exactly the real-pair view.
  """
  treedef = jax.tree.structure(updates)
  n = treedef.num_leaves
  flats = [
    [None] * n if t is None else (list(t) if isinstance(t, _Flat) else treedef.flatten_up_to(t))
    for t in trees
  ]

  def call(u, *xs):
    if not jnp.iscomplexobj(u):
      return fn(u, *xs)
    re = fn(u.real, *(_real_part(x) for x in xs))
    im = fn(u.imag, *(_imag_part(x) for x in xs))
    return tuple(None if r is None else lax.complex(r, i) for r, i in zip(re, im, strict=True))

  outs = [call(u, *xs) for u, *xs in zip(treedef.flatten_up_to(updates), *flats, strict=True)]
  cols = list(zip(*outs, strict=True)) if outs else [()] * n_out
  return tuple(treedef.unflatten(list(col)) for col in cols)


def _lerp(start, end, weight):
  """``torch.lerp`` to the rounding: ``start + w*(end-start)`` if w < 0.5 else ``end - (end-start)*(1-w)``."""
  diff = end - start
  return jnp.where(weight < 0.5, start + weight * diff, end - diff * (1 - weight))
