"""The ``Schedule`` base: frozen dataclasses registered as pytrees, with JSON configs.

A schedule is a *value*. Its numeric hyperparameters are pytree leaves (so a schedule can be an
argument of a jitted function, and a batch of schedules can be vmapped), its mode strings are static
metadata, and ``to_config()`` / ``from_config()`` rebuild it through the validating public
constructor registered under its name.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

ArrayLike = Any

# public name -> validating constructor (filled by ``register``)
REGISTRY: dict[str, Callable[..., "Schedule"]] = {}


def static_field(default=dataclasses.MISSING):
  """A dataclass field that is pytree metadata (mode strings, booleans), not a leaf."""
  return dataclasses.field(default=default, metadata={"static": True})


def schedule_class(cls):
  """Makes ``cls`` a frozen dataclass registered as a pytree (numeric fields are leaves).

  Registered with ``register_pytree_with_keys`` and the class in the auxiliary data, not with
  ``jax.tree_util.register_dataclass``: in jax 0.10 two dataclass nodes with equal static fields
  compare equal whatever their classes (``PyTreeDef(A[(True,)]) == PyTreeDef(B[(True,)])``), so a
  jitted function taking schedules could, on a hash collision, reuse the program compiled for
  another schedule class with the same shape (seen: ``exponential_decay`` run for
  ``inverse_time_decay``). ``tests/test_schedules_generic.py`` checks the treedefs differ.
  """
  cls = dataclasses.dataclass(frozen=True, repr=False, eq=False)(cls)
  fields = dataclasses.fields(cls)
  meta = tuple(f.name for f in fields if f.metadata.get("static"))
  data = tuple(f.name for f in fields if not f.metadata.get("static"))
  keys = tuple(jax.tree_util.GetAttrKey(n) for n in data)

  def flatten_with_keys(obj):
    return [(k, getattr(obj, n)) for k, n in zip(keys, data)], (cls, tuple(getattr(obj, n) for n in meta))

  def flatten(obj):
    return [getattr(obj, n) for n in data], (cls, tuple(getattr(obj, n) for n in meta))

  def unflatten(aux, children):
    return cls(**dict(zip(data, children)), **dict(zip(meta, aux[1])))

  jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
  return cls


def register(name: str):
  """Registers a public constructor under ``name`` for ``from_config``."""

  def wrap(fn):
    REGISTRY[name] = fn
    return fn

  return wrap


def compute_dtype(*values) -> jnp.dtype:
  """float32, unless a hyperparameter is a (strongly typed) float64 array and x64 is on.

  Python numbers, and the weakly typed arrays they become inside ``jit``, do not count: with x64
  on, ``cosine_annealing(1.0, 100)`` still computes in float32, as it does when passed to ``jit``.
  """
  for v in jax.tree_util.tree_leaves(values):
    if isinstance(v, (int, float)):
      continue
    dt = getattr(v, "dtype", None)
    weak = getattr(v, "weak_type", False) or getattr(getattr(v, "aval", None), "weak_type", False)
    if dt is not None and not weak and jax.dtypes.canonicalize_dtype(dt) == jnp.float64:
      return jnp.dtype(jnp.float64)
  return jnp.dtype(jnp.float32)


def as_float(x, dtype) -> jax.Array:
  """``x`` as an array of ``dtype`` (hyperparameters, steps)."""
  return jnp.asarray(x).astype(dtype)


def as_step(step, dtype=jnp.float32) -> jax.Array:
  """Steps as floats of ``dtype``; steps below 0 count as step 0."""
  return jnp.maximum(as_float(step, dtype), 0)


class Schedule:
  """Base of every lr_jax schedule: a pure ``step -> rate`` pytree value.

  Subclasses are decorated with ``schedule_class`` and define ``__call__`` (and ``valid`` when a
  hyperparameter can be invalid). Field names equal the public constructor's keyword names, so
  ``from_config(s.to_config())`` rebuilds ``s``.
  """

  name: ClassVar[str] = ""

  def __call__(self, step: ArrayLike) -> jax.Array:  # pragma: no cover - abstract
    raise NotImplementedError

  def valid(self):
    """Traced-safe validity of the hyperparameters (``True`` or a boolean array)."""
    return True

  def leaves(self) -> list:
    return jax.tree_util.tree_leaves(self)

  @property
  def dtype(self) -> jnp.dtype:
    return compute_dtype(self.leaves())

  def to_config(self) -> dict:
    """A JSON-able dict ``{"name": ..., **hyperparameters}``; nested schedules become dicts."""
    cfg = {"name": self.name}
    for f in dataclasses.fields(self):
      cfg[f.name] = _encode(getattr(self, f.name))
    return cfg

  def __repr__(self) -> str:
    args = ", ".join(f"{f.name}={_short(getattr(self, f.name))}" for f in dataclasses.fields(self))
    return f"{self.name}({args})"


def _encode(v):
  if isinstance(v, Schedule):
    return v.to_config()
  if isinstance(v, (tuple, list)):
    return [_encode(x) for x in v]
  if isinstance(v, jax.core.Tracer):
    raise TypeError("to_config: a schedule with traced hyperparameters cannot be serialized.")
  if isinstance(v, (np.ndarray, jax.Array, np.generic)):
    a = np.asarray(v)
    if a.dtype == np.float32:  # shortest decimal that round-trips to the same float32
      flat = [float(str(x)) for x in a.ravel()]
      return flat[0] if a.ndim == 0 else np.array(flat, dtype=object).reshape(a.shape).tolist()
    return a.tolist()
  return v


def _short(v) -> str:
  if isinstance(v, jax.core.Tracer):
    return "<traced>"
  if isinstance(v, (np.ndarray, jax.Array, np.generic)):
    a = np.asarray(v)
    return repr(a.tolist()) if a.size <= 8 else f"array(shape={a.shape})"
  if isinstance(v, (tuple, list)):
    return "(" + ", ".join(_short(x) for x in v) + ")"
  return repr(v)


def _decode(v):
  if isinstance(v, dict) and "name" in v:
    return from_config(v)
  if isinstance(v, list) and v and all(isinstance(x, dict) and "name" in x for x in v):
    return [from_config(x) for x in v]
  return v


def from_config(config: dict) -> Schedule:
  """Builds a schedule from ``{"name": ..., **hyperparameters}`` (the inverse of ``to_config``).

  The public, validating constructor is called, so a bad value raises ``ValueError``.

  Examples:
    >>> from lr_jax import schedules
    >>> s = schedules.from_config({"name": "cosine_annealing", "init_value": 1.0, "total_steps": 10})
    >>> print(f"{s(5):.2f}")
    0.50
  """
  if not isinstance(config, dict) or "name" not in config:
    raise ValueError(f"from_config: `config` must be a dict with a 'name' key, got config={config!r}.")
  cfg = dict(config)
  name = cfg.pop("name")
  if name not in REGISTRY:
    raise ValueError(f"from_config: unknown schedule name={name!r}; known: {', '.join(sorted(REGISTRY))}.")
  ctor = REGISTRY[name]
  kwargs = {k: _decode(v) for k, v in cfg.items()}
  params = inspect.signature(ctor).parameters
  unknown = [k for k in kwargs if k not in params or params[k].kind == inspect.Parameter.VAR_POSITIONAL]
  var = [p for p in params.values() if p.kind == inspect.Parameter.VAR_POSITIONAL]
  if var and var[0].name in kwargs:
    unknown.remove(var[0].name)
    args = kwargs.pop(var[0].name)
    return ctor(*args, **kwargs)
  if unknown:
    raise ValueError(f"from_config: {name} has no parameter {unknown[0]!r}; it takes {', '.join(params)}.")
  return ctor(**kwargs)


@schedule_class
class FunctionSchedule(Schedule):
  """Wraps any ``step -> rate`` callable (an Optax schedule, a lambda) so it can be composed."""

  fn: Callable = static_field()
  name: ClassVar[str] = "function"

  def __call__(self, step):
    return jnp.asarray(self.fn(step))

  def to_config(self) -> dict:
    raise TypeError(f"to_config: {self.fn!r} is a plain function; only lr_jax schedules serialize.")


def as_schedule(s, *, fn: str, name: str) -> Schedule:
  """An lr_jax ``Schedule`` as is; another callable wrapped; anything else a ``ValueError``."""
  if isinstance(s, Schedule):
    return s
  if callable(s):
    return FunctionSchedule(s)
  raise ValueError(f"{fn}: `{name}` must be a schedule (a callable step -> rate), got {name}={s!r}.")
