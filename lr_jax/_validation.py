"""The one place that checks hyperparameters.

Concrete values are checked eagerly and raise ``ValueError`` naming the function, the parameter and
the value. Traced values are never branched on: their validity is folded into the output as NaN
(``poison``), so one bad configuration in a vmapped sweep shows up as a NaN lane instead of
killing the sweep.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_traced(x: Any) -> bool:
  """True if ``x`` (or any leaf of it) is a JAX tracer."""
  return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def static_equal(x: Any, value: float) -> bool:
  """True only for a plain Python ``int``/``float`` equal to ``value`` (never for arrays or tracers).

  For shortcuts that skip a term at a hyperparameter's default: a number fixed in the program can
  drop it, while an array or a traced value (under ``jit``, ``vmap``, ``grad``) keeps the general
  formula, whose value there is the same and whose derivative is right.
  """
  return isinstance(x, (int, float)) and not isinstance(x, bool) and x == value


def check(ok, *, fn: str, must: str, **values):
  """Raises ``ValueError`` if concrete ``ok`` is false; returns a traced ``ok`` unchanged.

  Returns ``True`` when the check passed eagerly, so ``all_ok`` and ``poison`` become no-ops.
  """
  if isinstance(ok, jax.core.Tracer):
    return ok
  if not np.all(np.asarray(ok)):
    got = ", ".join(f"{k}={_show(v)}" for k, v in values.items())
    raise ValueError(f"{fn}: {must}, got {got}.")
  return True


def all_ok(*oks):
  """``True`` if every ``ok`` is ``True``, else one traced boolean (their conjunction)."""
  traced = [ok for ok in oks if ok is not True]
  if not traced:
    return True
  return functools.reduce(jnp.logical_and, traced)


def valid_all(*conds):
  """``True`` when every condition is concrete and holds, else one (traced or False) boolean.

  For ``Schedule.valid()``: concrete conditions are reduced with NumPy, so a schedule whose
  hyperparameters were all checked eagerly pays nothing for ``poison``; traced ones (any shape) are
  reduced with ``jnp.all``; a concrete failure gives ``False`` (NaN rates from ``poison``).
  """
  out = []
  for c in conds:
    if is_traced(c):
      out.append(jnp.all(c))
    elif not bool(np.all(np.asarray(c))):
      return jnp.asarray(False)
  return all_ok(*out)


def poison(x, ok):
  """``x`` where ``ok``, NaN elsewhere; a no-op when ``ok is True``."""
  if ok is True:
    return x
  return jnp.where(ok, x, jnp.nan)


def _show(v) -> str:
  if isinstance(v, jax.core.Tracer):
    return "<traced>"
  if isinstance(v, (np.ndarray, jax.Array)):
    return repr(np.asarray(v).tolist())
  return repr(v)


def number(value, *, fn: str, name: str, integer: bool = False, allow_array: bool = False):
  """Checks that a hyperparameter is a finite real number (or a traced one) and returns it.

  Python numbers are returned as they are (so configs stay readable); NumPy and concrete JAX values
  are returned as NumPy arrays; tracers pass through untouched. Strings, ``None``, containers,
  complex, NaN and inf raise ``ValueError`` naming ``fn`` and ``name``. ``integer=True`` requires a
  whole number (``3.0`` is accepted). ``allow_array=True`` allows a 1-D sequence (milestones).
  """
  if isinstance(value, jax.core.Tracer):  # its dtype is static: a traced complex or bool is an error too
    if not (jnp.issubdtype(value.dtype, jnp.integer) or jnp.issubdtype(value.dtype, jnp.floating)):
      raise ValueError(f"{fn}: `{name}` must be a real number, got {name}={value!r}.")
    return value
  if isinstance(value, bool):
    raise ValueError(f"{fn}: `{name}` must be a number, got {name}={value!r}.")  # noqa: TRY004 - the contract: a named ValueError
  if isinstance(value, numbers.Real) and not isinstance(value, np.ndarray):
    if isinstance(value, numbers.Integral) and not _INT32_MIN <= int(value) <= _INT32_MAX:
      value = float(value)  # a Python int past int32 would overflow jnp.asarray: use it as a float
    arr = np.asarray(value, dtype=np.float64)
    out = value
  else:
    if isinstance(value, (str, bytes, dict, set)) or value is None:
      raise ValueError(f"{fn}: `{name}` must be a number, got {name}={value!r}.")
    try:
      arr = np.asarray(value)
    except Exception as e:  # ragged lists, odd objects
      raise ValueError(f"{fn}: `{name}` must be a number, got {name}={value!r}.") from e
    if arr.dtype == bool or not (
      np.issubdtype(arr.dtype, np.integer) or jnp.issubdtype(arr.dtype, jnp.floating)  # bfloat16 too
    ):
      raise ValueError(f"{fn}: `{name}` must be a number, got {name}={value!r}.")
    if arr.ndim > (1 if allow_array else 0):
      kind = "a 1-D sequence of numbers" if allow_array else "a scalar"
      raise ValueError(f"{fn}: `{name}` must be {kind}, got {name} with shape {arr.shape}.")
    if isinstance(value, (list, tuple)) and arr.dtype == np.float64:
      # plain Python floats are "weak": float32 here, as scalars are without x64 (schedules rebuild
      # weak float lists in the default float dtype, float64 under x64: schedules/_base.py _weak_list)
      arr = arr.astype(np.float32)
    elif (
      np.issubdtype(arr.dtype, np.integer)
      and not jax.config.jax_enable_x64
      and arr.size
      and (arr.min() < _INT32_MIN or arr.max() > _INT32_MAX)
    ):
      arr = arr.astype(np.float32)  # jnp.asarray would wrap them to int32: use them as floats, as scalars
    out = arr
    arr = arr.astype(np.float64)
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"{fn}: `{name}` must be finite, got {name}={_show(value)}.")
  if not jax.config.jax_enable_x64 and np.any(np.abs(arr) > _FLOAT32_MAX):
    raise ValueError(
      f"{fn}: `{name}` must be representable in float32 (|x| <= 3.4e38, or enable jax_enable_x64), "
      f"got {name}={_show(value)}."
    )
  if integer and not np.all(arr == np.round(arr)):
    raise ValueError(f"{fn}: `{name}` must be a whole number, got {name}={_show(value)}.")
  return out


def choice(value, options, *, fn: str, name: str):
  """Checks a static string option (mode names) against ``options``; never compares arrays."""
  if not isinstance(value, str) or value not in options:
    opts = ", ".join(repr(o) for o in options)
    raise ValueError(f"{fn}: `{name}` must be one of {opts}, got {name}={value!r}.")
  return value


def flag(value, *, fn: str, name: str) -> bool:
  """Checks a static boolean option."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{fn}: `{name}` must be True or False, got {name}={value!r}.")  # noqa: TRY004 - the contract: a named ValueError
  return bool(value)


# --------------------------------------------------------------------------------------------------
# Declared constraints: one declaration gives both the eager ValueError and the traced NaN lane.


def _np_or_jnp(*values):
  return jnp if is_traced(values) else np


def is_whole(v):
  """``v`` is a whole number (elementwise; NumPy for concrete values, ``jnp`` for traced ones)."""
  return _np_or_jnp(v).round(v) == v


@dataclasses.dataclass(frozen=True)
class Rule:
  """One constraint on one or more hyperparameters, declared once.

  ``test(*values)`` (the values of ``names``, in order) returns a boolean or a boolean array; it must
  work on Python/NumPy values and on tracers alike (use operators, or ``is_whole`` and friends).
  ``must`` is the sentence of the error (```step_size` must be > 0``). ``when(values)`` (a dict of
  every field) says statically whether the rule applies, e.g. only in one mode.

  :func:`check_rules` raises the eager ``ValueError`` from it; :func:`rules_ok` gives the traced
  validity that :func:`poison` folds into the rates.
  """

  names: tuple[str, ...]
  test: Callable[..., Any]
  must: str
  when: Callable[[Mapping[str, Any]], bool] | None = None

  def applies(self, values: Mapping[str, Any]) -> bool:
    return self.when is None or bool(self.when(values))

  def holds(self, values: Mapping[str, Any]):
    return self.test(*(values[n] for n in self.names))


class Bound(NamedTuple):
  """A single-parameter constraint, written next to its field: ``hyper(rules=(gt(0),))``."""

  test: Callable[[Any], Any]
  must: str  # completes "`name` ...", e.g. "must be > 0"

  def rule(self, name: str) -> Rule:
    return Rule((name,), self.test, f"`{name}` {self.must}")


def gt(x) -> Bound:
  return Bound(lambda v: v > x, f"must be > {x}")


def ge(x) -> Bound:
  return Bound(lambda v: v >= x, f"must be >= {x}")


def between(lo, hi, *, open_lo: bool = False, open_hi: bool = False) -> Bound:
  """``lo <= v <= hi`` (strict at an open end), written as the interval: ``must be in (0, 1]``."""

  def test(v):
    return (v > lo if open_lo else v >= lo) & (v < hi if open_hi else v <= hi)

  return Bound(test, f"must be in {'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}")


WHOLE = Bound(is_whole, "must be a whole number")
NONDECREASING = Bound(lambda v: v[..., 1:] >= v[..., :-1], "must be sorted (non-decreasing)")


def check_rules(rules, values: Mapping[str, Any], *, fn: str) -> None:
  """Raises ``ValueError`` for the first applicable rule that fails on concrete values.

  A rule that reads a traced value is skipped here: :func:`rules_ok` checks it in the traced lane.
  """
  for r in rules:
    if not r.applies(values):
      continue
    vals = {n: values[n] for n in r.names}
    if is_traced(list(vals.values())):
      continue
    check(r.holds(values), fn=fn, must=r.must, **vals)


def rules_ok(rules, values: Mapping[str, Any], finite=()):
  """The traced-safe validity of ``rules`` (and of the finiteness of ``finite`` fields).

  ``True`` when every value is concrete and valid; else one boolean (traced, or ``False``) for
  :func:`poison`. Finiteness is checked only for traced values (concrete ones were checked by
  :func:`number`), so one NaN or inf hyperparameter in a vmapped sweep also gives a NaN lane.
  """
  conds = [values[n] for n in finite if is_traced(values[n])]
  conds = [jnp.isfinite(v) for v in conds]
  conds += [r.holds(values) for r in rules if r.applies(values)]
  return valid_all(*conds)
