"""The ``Schedule`` base: frozen dataclasses registered as pytrees, with JSON configs.

A schedule is a *value*. Its numeric hyperparameters are pytree leaves (so a schedule can be an
argument of a jitted function, and a batch of schedules can be vmapped), its mode strings are static
metadata, and ``to_config()`` / ``from_config()`` rebuild it through the validating public
constructor registered under its name.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from lr_jax._validation import Bound, Rule, check_rules, choice, flag, is_traced, number, rules_ok

ArrayLike = Any
_INT32_MAX = 2**31 - 1

# class name -> how many times its ``__call__`` was traced by the eager-call cache (see ``Schedule.__call__``)
TRACES: collections.Counter = collections.Counter()

# public name -> validating constructor (filled by ``register``)
REGISTRY: dict[str, Callable[..., Schedule]] = {}


def hyper(default=dataclasses.MISSING, *, rules: tuple[Bound, ...] = (), array: bool = False):
  """A numeric hyperparameter (a pytree leaf) and its constraints, declared once.

  ``rules`` (``gt(0)``, ``between(0, 1, open_lo=True)``, ``WHOLE``, ...) give both the eager
  ``ValueError`` of ``Schedule.build`` and the traced NaN lane of ``Schedule.valid``. Every numeric
  hyperparameter must also be finite (``number``). ``array=True``: a 1-D sequence (milestones).
  """
  kind = "array" if array else "number"
  return dataclasses.field(default=default, metadata={"kind": kind, "bounds": tuple(rules)})


def static_field(default=dataclasses.MISSING, *, options: tuple[str, ...] | None = None):
  """A dataclass field that is pytree metadata (mode strings, booleans), not a leaf.

  With ``options`` it is a mode string checked by ``choice``; with a ``bool`` default a flag.
  """
  return dataclasses.field(default=default, metadata={"static": True, "kind": "static", "options": options})


def child(default=dataclasses.MISSING):
  """A nested schedule (any ``step -> rate`` callable is wrapped by ``as_schedule``)."""
  return dataclasses.field(default=default, metadata={"kind": "schedule"})


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
  """The float dtype a schedule computes in: JAX's promotion of its floating hyperparameters.

  JAX's convention, as ``jnp.result_type`` gives it over the floating leaves (integer leaves, such as
  ``total_steps`` or milestones, do not count): Python floats (and the weakly typed arrays they
  become inside ``jit``) are "weak" and take JAX's default float dtype, ``jnp.result_type(float)``:
  float32, or float64 with ``jax_enable_x64``; a strongly typed array keeps its own dtype, and a weak
  value does not promote it. So with x64 on, ``cosine_annealing(1.0, 100)`` computes in float64
  (PyTorch's Python floats), while ``cosine_annealing(jnp.float32(1.0), 100, 0.0)`` stays float32;
  with x64 off, everything is float32. The result is float32 or float64 (bfloat16/float16
  hyperparameters compute in float32); a schedule with no floating leaf uses the default float dtype.
  A hyperparameter's dtype, not its value, decides, so a schedule passed to ``jit`` with a new value
  reuses the compiled program.
  """
  strong = set()  # canonical dtypes of the strongly typed floating leaves
  for v in jax.tree_util.tree_leaves(values):
    if isinstance(v, (bool, int, float)) or not jnp.issubdtype(getattr(v, "dtype", np.int32), jnp.floating):
      continue  # integers do not count; Python floats are weak
    if not (getattr(v, "weak_type", False) or getattr(getattr(v, "aval", None), "weak_type", False)):
      strong.add(jax.dtypes.canonicalize_dtype(v.dtype))
  # JAX's promotion lattice, without raising under strict promotion: a strong dtype wins over weak
  # values, float64 over narrower floats; weak floats alone (or no float at all) give the default float.
  if strong:
    return jnp.dtype(jnp.float64 if jnp.dtype(jnp.float64) in strong else jnp.float32)
  return jnp.dtype(jnp.result_type(float))


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
  # cross-field constraints (``Rule("base_value", ...)``); single-field ones sit on their ``hyper`` field
  rules: ClassVar[tuple[Rule, ...]] = ()
  __array_ufunc__ = None  # ``np.float32(2) * s`` defers to ``Schedule.__rmul__``

  def _eval(self, step: ArrayLike) -> jax.Array:  # pragma: no cover - abstract
    raise NotImplementedError

  def __call__(self, step: ArrayLike) -> jax.Array:
    """The rates at ``step`` (a scalar or an array of steps; the result has its shape).

    A concrete call runs one cached, jitted program per schedule structure (class, modes) and step
    shape/dtype, so eager calls to log or plot cost microseconds instead of retracing
    (``lax.cond``) every time; inside ``jit``/``vmap`` the rate is computed inline. Integer steps
    beyond int32 (Python ints, NumPy/JAX int64 or unsigned arrays) are held at 2**31-1, the last
    step every schedule is defined for, instead of wrapping around.
    """
    step = steps_in(step, fn=self.name)
    if is_traced(step) or not self._jittable() or is_traced(self) or not self._checked():
      return self._eval(step)
    return _eval_jit(self, step)

  def _checked(self) -> bool:
    """Every hyperparameter of the tree is concrete and valid (checked once, in float64, and cached).

    The jitted eager program then skips the NaN lane: a value valid in float64 may round to an
    invalid one in float32 (``gamma=1e-300`` becomes 0), and must not turn a checked schedule NaN.
    """
    ok = self.__dict__.get("_valid_ok")
    if ok is None:
      ok = self.valid() is True and all(c._checked() for c in self.children())
      object.__setattr__(self, "_valid_ok", ok)
    return ok

  def _jittable(self) -> bool:
    ok = self.__dict__.get("_jit_ok")
    if ok is None:  # a plain callable inside (FunctionSchedule) is run as is, never jitted
      ok = all(c._jittable() for c in self.children())
      object.__setattr__(self, "_jit_ok", ok)
    return ok

  def children(self) -> list[Schedule]:
    """The schedules nested in this one (``warmup``'s inner schedule, ``join``'s pieces, ...)."""
    out = []
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      out += [x for x in (v if isinstance(v, (tuple, list)) else (v,)) if isinstance(x, Schedule)]
    return out

  @classmethod
  def declared_rules(cls) -> tuple[Rule, ...]:
    """Every constraint of the class: the fields' ``hyper(rules=...)``, then the class's ``rules``."""
    out = [b.rule(f.name) for f in dataclasses.fields(cls) for b in f.metadata.get("bounds", ())]
    return tuple(out) + tuple(cls.rules)

  @classmethod
  def build(cls, fn: str, **kwargs) -> Schedule:
    """Checks ``kwargs`` against the field declarations (types, then rules) and builds the schedule.

    Concrete bad values raise ``ValueError`` naming ``fn``, the parameter and the value; rules that
    read a traced value are left to ``valid()`` (NaN rates), so both come from one declaration.
    """
    values = {}
    for f in dataclasses.fields(cls):
      v = kwargs.get(f.name, f.default)
      kind = f.metadata.get("kind")
      if kind == "number" and not (v is None and f.default is None):  # ``hyper(None)``: optional
        v = number(v, fn=fn, name=f.name)
      elif kind == "array":
        v = vector(
          number(_weak_list(stack_traced(v)), fn=fn, name=f.name, allow_array=True), fn=fn, name=f.name
        )
      elif kind == "static" and f.metadata["options"] is not None:
        v = choice(v, f.metadata["options"], fn=fn, name=f.name)
      elif kind == "static" and isinstance(f.default, bool):
        v = flag(v, fn=fn, name=f.name)
      elif kind == "schedule":
        v = as_schedule(v, fn=fn, name=f.name)
      values[f.name] = v
    check_rules(cls.declared_rules(), values, fn=fn)
    return cls(**values)

  def valid(self):
    """Traced-safe validity of the hyperparameters (``True`` or a boolean array).

    Derived from the same declarations as ``build``'s errors: every rule, and (for traced values)
    finiteness of every numeric field.
    """
    if _TRUSTED:  # tracing the eager program of a schedule whose values were checked (``_checked``)
      return True
    fields = dataclasses.fields(self)
    values = {f.name: getattr(self, f.name) for f in fields}
    numeric = [f.name for f in fields if f.metadata.get("kind") in ("number", "array")]
    return rules_ok(self.declared_rules(), values, finite=numeric)

  # Arithmetic on schedule values: each gives a schedule (a pytree with a JSON config).
  def __mul__(self, other):
    return _arith("mul", self, other)

  def __rmul__(self, other):
    return _arith("mul", other, self)

  def __add__(self, other):
    return _arith("add", self, other)

  def __radd__(self, other):
    return _arith("add", other, self)

  def __sub__(self, other):
    return _arith("sub", self, other)

  def __rsub__(self, other):
    return _arith("sub", other, self)

  def __truediv__(self, other):
    return _arith("div", self, other)

  def __neg__(self):
    return _arith("mul", -1.0, self)

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


def _operand(x):
  """A schedule operand of ``+ - * /``: a schedule or callable as is, a number as ``constant(x)``."""
  from lr_jax.schedules._decay import constant

  if isinstance(x, Schedule):
    return x
  if isinstance(x, (numbers.Real, np.ndarray, np.generic, jax.Array)):
    return constant(x)
  if callable(x):
    return FunctionSchedule(x)
  return None


def _arith(op: str, a, b):
  from lr_jax.schedules._compose import add, multiply
  from lr_jax.schedules._decay import constant

  if op == "div":  # s / x == s * (1 / x) for a number x; dividing by a schedule is not defined
    if isinstance(b, Schedule) or callable(b) or _operand(b) is None:
      return NotImplemented
    b = number(b, fn="Schedule.__truediv__", name="divisor")
    if not is_traced(b) and np.any(np.asarray(b) == 0):
      raise ValueError(f"Schedule.__truediv__: `divisor` must be non-zero, got divisor={b!r}.")
    if is_traced(b):  # a traced 0 or inf divisor: a NaN lane, not inf or a silent 0
      return multiply(a, constant(jnp.where(jnp.isfinite(b) & (b != 0), 1 / b, jnp.nan)))
    return multiply(a, constant(1 / b))
  x, y = _operand(a), _operand(b)
  if x is None or y is None:
    return NotImplemented
  if op == "mul":
    return multiply(x, y)
  if op == "add":
    return add(x, y)
  return add(x, multiply(constant(-1.0), y))


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

  def _jittable(self) -> bool:
    return False

  def _eval(self, step):
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


_TRUSTED: list = []  # non-empty while tracing ``_eval_jit``


@jax.jit
def _eval_jit(schedule: Schedule, step) -> jax.Array:
  """The one jitted evaluator behind eager calls; jit caches a program per treedef and step type.

  Only called for schedules whose concrete hyperparameters were all checked (``Schedule._checked``),
  so the traced NaN lane is left out of the program.
  """
  TRACES[type(schedule).__name__] += 1  # runs only while tracing: counts compilations, per class
  _TRUSTED.append(True)
  try:
    return schedule._eval(step)
  finally:
    _TRUSTED.pop()


def steps_in(step, *, fn: str):
  """Checks a step argument and holds integer steps beyond int32 at 2**31-1 (never wraps them).

  Python ints are clamped to the int32 range; integer arrays wider than int32 (NumPy or JAX int64,
  uint32, uint64, traced or not) are clipped to ``[0, 2**31-1]`` and made int32 (steps below 0 count
  as 0 anyway). Strings, booleans, complex numbers and other non-numbers raise ``ValueError``.
  """
  bad = f"{fn}: `step` must be a number or an array of numbers, got step={step!r}."
  if isinstance(step, (bool, np.bool_)):
    raise ValueError(bad)  # noqa: TRY004 - the library's contract: ValueError names fn, param, value
  if isinstance(step, int):
    return min(max(step, -_INT32_MAX - 1), _INT32_MAX)
  if isinstance(step, float):
    return step
  if isinstance(step, (jax.Array, jax.core.Tracer)):
    dt = step.dtype
  else:
    try:
      arr = np.asarray(step)
    except Exception as e:  # ragged lists, odd objects
      raise ValueError(bad) from e
    if arr.dtype == object and arr.size and all(isinstance(x, numbers.Integral) for x in arr.ravel()):
      arr = np.clip(arr, 0, _INT32_MAX).astype(np.int32)  # Python ints beyond int64
    step, dt = arr, arr.dtype
  if dt == bool or not (jnp.issubdtype(dt, jnp.integer) or jnp.issubdtype(dt, jnp.floating)):
    raise ValueError(bad)  # bfloat16's NumPy kind is "V": ask jnp, not dt.kind
  if dt.kind in "iu" and (dt.itemsize > 4 or dt == np.uint32):
    xp = jnp if isinstance(step, (jax.Array, jax.core.Tracer)) else np
    return xp.clip(step, 0, _INT32_MAX).astype(xp.int32)
  return step


def stack_traced(x):
  """A list or tuple holding tracers (``[w, 2 * w]`` inside jit) as one array; anything else as is."""
  if isinstance(x, (list, tuple)) and is_traced(x):
    dt = compute_dtype(x)
    return jnp.stack([as_float(v, dt) for v in x]) if len(x) else jnp.zeros((0,), dt)
  return x


def _weak_list(x):
  """A list of Python numbers holding a float, with x64 on: a float64 array (JAX's default float).

  ``number`` makes such a list float32 (Python floats are weak and take the default float dtype,
  which is float32 without x64); with x64 the default is float64, as ``jnp.asarray([0.1, 0.2])``.
  """
  plain = lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.generic, np.ndarray))
  if (
    jax.config.jax_enable_x64
    and isinstance(x, (list, tuple))
    and x
    and all(plain(v) for v in x)
    and any(isinstance(v, float) for v in x)
  ):
    return np.asarray(x, np.float64)
  return x


def vector(x, *, fn: str, name: str):
  """Static check that a sequence hyperparameter is 1-D (shapes are static, so this may raise)."""
  if jnp.ndim(x) != 1:
    raise ValueError(
      f"{fn}: `{name}` must be a 1-D sequence of numbers, got {name} with shape {jnp.shape(x)}."
    )
  return x
