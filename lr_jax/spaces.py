"""Search spaces for :func:`lr_jax.search`: distributions over hyperparameters, and seeded samplers.

A *space* is a dict ``{name: dimension}``; a dimension is one of :func:`log_uniform`,
:func:`uniform`, :func:`integer`, :func:`categorical`, a plain number (a fixed value), or one of
Optuna's ``FloatDistribution`` / ``IntDistribution`` / ``CategoricalDistribution`` (duck-typed:
Optuna is not imported). :func:`sample` draws ``n`` configurations as columns (one NumPy array per
name, the form :func:`lr_jax.search` lanes see), with plain random numbers or a scrambled Halton
sequence, reproducibly from ``seed``.

Every dimension maps a uniform number ``u`` in [0, 1) to a value (inverse-CDF sampling), so both
samplers share one code path; ``perturb`` is PBT's explore step for that dimension.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Categorical", "Fixed", "Integer", "LogUniform", "Uniform", "categorical", "halton", "integer",
           "log_uniform", "sample", "uniform"]  # fmt: skip

SAMPLERS = ("random", "halton")


def _real(v, fn: str, name: str) -> float:
  if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.integer, np.floating)):
    raise ValueError(f"{fn}: `{name}` must be a real number, got {name}={v!r}.")  # noqa: TRY004 - the contract: a named ValueError
  v = float(v)
  if not math.isfinite(v):
    raise ValueError(f"{fn}: `{name}` must be finite, got {name}={v!r}.")
  return v


def _bounds(low, high, fn: str, log: bool) -> tuple[float, float]:
  low, high = _real(low, fn, "low"), _real(high, fn, "high")
  if not low < high:
    raise ValueError(f"{fn}: `low` must be < `high`, got low={low!r}, high={high!r}.")
  if log and low <= 0:
    raise ValueError(f"{fn}: a log scale needs `low` > 0, got low={low!r}.")
  return low, high


@dataclasses.dataclass(frozen=True)
class Uniform:
  """Uniform on [low, high]: ``low + u (high - low)``."""

  low: float
  high: float

  def from_unit(self, u: np.ndarray) -> np.ndarray:
    return self.low + u * (self.high - self.low)

  def perturb(self, x: np.ndarray, rng: np.random.Generator, factors=(0.8, 1.25)) -> np.ndarray:
    return np.clip(x * rng.choice(np.asarray(factors, np.float64), size=np.shape(x)), self.low, self.high)

  def contains(self, x) -> np.ndarray:
    return (np.asarray(x) >= self.low) & (np.asarray(x) <= self.high)


@dataclasses.dataclass(frozen=True)
class LogUniform(Uniform):
  """Log-uniform on [low, high]: ``exp(log low + u (log high - log low))``, ``low > 0``."""

  def from_unit(self, u: np.ndarray) -> np.ndarray:
    lo, hi = math.log(self.low), math.log(self.high)
    return np.clip(np.exp(lo + u * (hi - lo)), self.low, self.high)


@dataclasses.dataclass(frozen=True)
class Integer:
  """A whole number in [low, high] (both included), uniform or, with ``log``, log-uniform
  (``round(exp(U(log(low - 0.5), log(high + 0.5))))``, as Optuna's ``IntDistribution(log=True)``)."""

  low: int
  high: int
  log: bool = False

  def from_unit(self, u: np.ndarray) -> np.ndarray:
    if self.log:
      lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
      x = np.round(np.exp(lo + u * (hi - lo)))
    else:
      x = np.floor(self.low + u * (self.high - self.low + 1))
    return np.clip(x, self.low, self.high).astype(np.int64)

  def perturb(self, x: np.ndarray, rng: np.random.Generator, factors=(0.8, 1.25)) -> np.ndarray:
    x = np.asarray(x, np.int64)
    scaled = np.round(x * rng.choice(np.asarray(factors, np.float64), size=np.shape(x))).astype(np.int64)
    step = np.where(scaled == x, rng.choice(np.array([-1, 1]), size=np.shape(x)), scaled - x)  # always moves
    step = np.where((x + step < self.low) | (x + step > self.high), -np.sign(step), step)  # inward at a bound
    return np.clip(x + step, self.low, self.high)

  def contains(self, x) -> np.ndarray:
    x = np.asarray(x)
    return (x >= self.low) & (x <= self.high) & (np.round(x) == x)


@dataclasses.dataclass(frozen=True)
class Categorical:
  """One of ``choices`` (numbers), each with probability ``1 / len(choices)``."""

  choices: tuple

  def from_unit(self, u: np.ndarray) -> np.ndarray:
    i = np.minimum(np.floor(u * len(self.choices)).astype(np.int64), len(self.choices) - 1)
    return np.asarray(self.choices)[i]

  def perturb(self, x: np.ndarray, rng: np.random.Generator, factors=None) -> np.ndarray:
    """A neighbour in the list of choices (the choices are taken as ordered)."""
    choices = np.asarray(self.choices)
    x = np.asarray(x)
    # the nearest choice: lanes hold float32 values of float64 choices
    i = np.argmin(np.abs(x[..., None].astype(np.float64) - choices.astype(np.float64)), axis=-1)
    j = np.clip(i + rng.choice(np.array([-1, 1]), size=np.shape(x)), 0, len(choices) - 1)
    if len(choices) > 1:
      j = np.where(j == i, np.where(i == 0, 1, i - 1), j)
    return choices[j]

  def contains(self, x) -> np.ndarray:
    return np.isin(np.asarray(x), np.asarray(self.choices))


@dataclasses.dataclass(frozen=True)
class Fixed:
  """A fixed value: every sample has it; it consumes no dimension of the sampler."""

  value: Any

  def from_unit(self, u: np.ndarray) -> np.ndarray:
    return np.full(np.shape(u), self.value)

  def perturb(self, x: np.ndarray, rng: np.random.Generator, factors=None) -> np.ndarray:
    return np.asarray(x)

  def contains(self, x) -> np.ndarray:
    return np.asarray(x) == self.value


def uniform(low: float, high: float) -> Uniform:
  """Uniform on ``[low, high]``.

  Examples:
    >>> from lr_jax import spaces
    >>> spaces.uniform(0.8, 0.99)
    Uniform(low=0.8, high=0.99)
  """
  return Uniform(*_bounds(low, high, "spaces.uniform", log=False))


def log_uniform(low: float, high: float) -> LogUniform:
  """Log-uniform on ``[low, high]``: ``log x`` is uniform, so every decade is equally likely.

  Examples:
    >>> from lr_jax import spaces
    >>> spaces.log_uniform(1e-4, 1e-1)
    LogUniform(low=0.0001, high=0.1)
  """
  return LogUniform(*_bounds(low, high, "spaces.log_uniform", log=True))


def integer(low: int, high: int, log: bool = False) -> Integer:
  """A whole number in ``[low, high]`` (both included), uniform, or log-uniform with ``log=True``.

  Examples:
    >>> from lr_jax import spaces
    >>> spaces.integer(100, 1000, log=True)
    Integer(low=100, high=1000, log=True)
  """
  fn = "spaces.integer"
  for name, v in (("low", low), ("high", high)):
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
      raise ValueError(f"{fn}: `{name}` must be an integer, got {name}={v!r}.")  # noqa: TRY004 - the contract: a named ValueError
  if not isinstance(log, bool):
    raise ValueError(f"{fn}: `log` must be True or False, got log={log!r}.")  # noqa: TRY004 - the contract: a named ValueError
  if not low < high:
    raise ValueError(f"{fn}: `low` must be < `high`, got low={low!r}, high={high!r}.")
  if log and low < 1:
    raise ValueError(f"{fn}: a log scale needs `low` >= 1, got low={low!r}.")
  return Integer(int(low), int(high), log)


def categorical(choices: Sequence) -> Categorical:
  """One of ``choices`` (distinct numbers), uniformly. Lanes see the value itself (a traced number),
  so strings are not allowed: map an integer choice to an option in ``optimizer``.

  Examples:
    >>> from lr_jax import spaces
    >>> spaces.categorical([0.9, 0.95, 0.99])
    Categorical(choices=(0.9, 0.95, 0.99))
  """
  fn = "spaces.categorical"
  if isinstance(choices, (str, bytes, Mapping)) or not isinstance(choices, (Sequence, np.ndarray)):
    raise ValueError(f"{fn}: `choices` must be a non-empty sequence of numbers, got choices={choices!r}.")  # noqa: TRY004 - the contract: a named ValueError
  choices = list(np.asarray(choices).tolist()) if isinstance(choices, np.ndarray) else list(choices)
  if not choices:
    raise ValueError(f"{fn}: `choices` must be a non-empty sequence of numbers, got choices=[].")
  for c in choices:
    if (
      isinstance(c, bool)
      or not isinstance(c, (numbers.Real, np.integer, np.floating))
      or not math.isfinite(c)
    ):
      raise ValueError(
        f"{fn}: every choice must be a finite number (lanes see the value as a traced scalar; index "
        f"a list of options with an integer instead), got choices={choices!r}."
      )
  if len(set(choices)) != len(choices):
    raise ValueError(f"{fn}: `choices` must be distinct, got choices={choices!r}.")
  return Categorical(tuple(c.item() if isinstance(c, np.generic) else c for c in choices))


_DIMS = (Uniform, LogUniform, Integer, Categorical, Fixed)


def as_dimension(value, name: str = "space", fn: str = "search"):
  """A dimension from a dimension, a plain number (fixed) or an Optuna distribution (duck-typed)."""
  if isinstance(value, _DIMS):
    return value
  kind = type(value).__name__
  if kind == "FloatDistribution" and hasattr(value, "low"):
    if getattr(value, "step", None) is not None:
      raise ValueError(
        f"{fn}: `space[{name!r}]` FloatDistribution with a step is not supported, got {value!r}."
      )
    return log_uniform(value.low, value.high) if value.log else uniform(value.low, value.high)
  if kind == "IntDistribution" and hasattr(value, "low"):
    if getattr(value, "step", 1) != 1:
      raise ValueError(
        f"{fn}: `space[{name!r}]` IntDistribution with step != 1 is not supported, got {value!r}."
      )
    return integer(value.low, value.high, log=bool(value.log))
  if kind == "CategoricalDistribution" and hasattr(value, "choices"):
    return categorical(list(value.choices))
  if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
    raise ValueError(  # noqa: TRY004 - the contract: a named ValueError
      f"{fn}: `space[{name!r}]` must be a number (fixed) or a dimension (spaces.log_uniform, uniform, "
      f"integer, categorical, or an Optuna distribution), got {value!r}."
    )
  return Fixed(value.item() if isinstance(value, np.generic) else value)


def check_space(space, fn: str = "search") -> dict:
  """``{name: dimension}`` from a dict of dimensions, numbers and Optuna distributions."""
  if not isinstance(space, Mapping) or not space:
    raise ValueError(f"{fn}: `space` must be a non-empty dict {{name: dimension}}, got space={space!r}.")
  out = {}
  for name, v in space.items():
    if not isinstance(name, str):
      raise ValueError(f"{fn}: `space` names must be strings, got {name!r}.")  # noqa: TRY004 - the contract: a named ValueError
    out[name] = as_dimension(v, name, fn)
  return out


# --------------------------------------------------------------------------------------------------
# Samplers.


def _primes(n: int) -> list[int]:
  out, k = [], 2
  while len(out) < n:
    if all(k % p for p in out if p * p <= k):
      out.append(k)
    k += 1
  return out


def halton(n: int, d: int, seed: int = 0) -> np.ndarray:
  """``[n, d]`` points of the Halton sequence in [0, 1), scrambled by random digit permutations.

  Dimension j uses base ``p_j`` (the j-th prime): the radical inverse of index i reverses its base-p
  digits behind the point, ``sum_k pi_jk(a_k) p^-(k+1)``, where ``pi_jk`` is a random permutation of
  the digits 0..p-1 for each dimension and digit position (drawn from ``seed``), which removes the
  correlations of plain Halton in higher bases and keeps its stratification: in base 2 the first
  ``2**m`` points fall one in each interval of width ``2**-m``.

  Reference: Halton, Numerische Mathematik 2 (1960); Owen, "A randomized Halton algorithm in R" (2017).

  Examples:
    >>> from lr_jax import spaces
    >>> u = spaces.halton(8, 2, seed=0)
    >>> print(u.shape, sorted((u[:, 0] * 8).astype(int).tolist()))  # one point in each eighth
    (8, 2) [0, 1, 2, 3, 4, 5, 6, 7]
  """
  rng = np.random.default_rng(seed)
  idx = np.arange(n, dtype=np.int64)
  out = np.empty((n, d), np.float64)
  for j, b in enumerate(_primes(d)):
    digits = max(1, math.ceil(53 / math.log2(b)))
    x = np.zeros(n, np.float64)
    i = idx.copy()
    scale = 1.0 / b
    for _ in range(digits):
      perm = rng.permutation(b)
      x += perm[i % b] * scale
      i //= b
      scale /= b
    out[:, j] = np.minimum(x, np.nextafter(1.0, 0.0))
  return out


def sample(space: Mapping, n: int, *, seed: int = 0, sampler: str = "random") -> dict[str, np.ndarray]:
  """``n`` configurations of ``space``, as columns ``{name: array [n]}``.

  Each non-fixed dimension takes one coordinate ``u`` in [0, 1) of an ``[n, d]`` design and maps it
  by its inverse CDF (``log_uniform``: ``exp(log low + u log(high / low))``). ``sampler="random"``:
  ``u`` from ``numpy.random.default_rng(seed)``; ``"halton"``: a scrambled Halton sequence
  (:func:`halton`), which covers the space more evenly than random points for small ``n``. The same
  ``(space, n, seed, sampler)`` gives the same configurations.

  Args:
    space: ``{name: dimension}``; numbers are fixed values.
    n: number of configurations, >= 1.
    seed: an integer >= 0.
    sampler: ``"random"`` or ``"halton"``.

  Raises:
    ValueError: a malformed space, ``n < 1``, a negative or non-integer seed, an unknown sampler.

  Examples:
    >>> from lr_jax import spaces
    >>> cols = spaces.sample({"lr": spaces.log_uniform(1e-3, 1e-1), "b1": 0.9}, 4, seed=0, sampler="halton")
    >>> print(sorted(cols), cols["b1"].tolist())
    ['b1', 'lr'] [0.9, 0.9, 0.9, 0.9]
    >>> print(bool(((cols["lr"] >= 1e-3) & (cols["lr"] <= 1e-1)).all()))
    True
  """
  fn = "spaces.sample"
  dims = check_space(space, fn)
  if isinstance(n, bool) or not isinstance(n, (numbers.Integral, np.integer)) or n < 1:
    raise ValueError(f"{fn}: `n` must be an integer >= 1, got n={n!r}.")
  seed = check_seed(seed, fn)
  if sampler not in SAMPLERS:
    raise ValueError(f"{fn}: `sampler` must be one of {SAMPLERS}, got sampler={sampler!r}.")
  free = [k for k, d in dims.items() if not isinstance(d, Fixed)]
  if sampler == "halton":
    u = halton(int(n), max(1, len(free)), seed)
  else:
    u = np.random.default_rng(seed).random((int(n), max(1, len(free))))
  cols = {}
  for k, d in dims.items():
    cols[k] = d.from_unit(u[:, free.index(k)] if k in free else np.zeros(int(n)))
  return cols


def check_seed(seed, fn: str) -> int:
  if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)) or seed < 0:
    raise ValueError(f"{fn}: `seed` must be an integer >= 0, got seed={seed!r}.")
  return int(seed)
