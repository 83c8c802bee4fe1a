"""The training plumbing every tool shares: batch checks, the one step body, chunked runs with progress.

``lr_find``, ``sweep`` and ``tasks.fit`` all train the same way (a plain Optax loop written as a
``lax.scan``)::

    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)

That step is :func:`train_step`. The rest of this module prepares ``batches`` (a pytree of arrays
whose leading axis indexes mini-batches, or a Python list of batches, which is stacked), checks that
``loss_fn`` returns a real scalar without running it, and runs a scan either as one program or in
about 20 chunks between progress-bar updates (:func:`run_chunked`).
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

# --------------------------------------------------------------------------------------------------
# Batches.


def _is_batch_list(batches) -> bool:
  """A Python list of batches (what a data loader gives): every element a container of arrays."""
  return (
    isinstance(batches, list)
    and len(batches) > 0
    and all(isinstance(b, (tuple, list, dict)) for b in batches)
  )


def _stack(batches: list, fn: str):
  """Stacks a list of same-shaped batches into one pytree with a leading batch-index axis."""
  first = jax.tree_util.tree_structure(batches[0])
  shapes0 = [np.shape(x) for x in jax.tree_util.tree_leaves(batches[0])]
  for i, b in enumerate(batches):
    if jax.tree_util.tree_structure(b) != first:
      raise ValueError(
        f"{fn}: every batch in the list `batches` must have the same structure, got batch 0 with "
        f"{first} and batch {i} with {jax.tree_util.tree_structure(b)}."
      )
    shapes = [np.shape(x) for x in jax.tree_util.tree_leaves(b)]
    if shapes != shapes0:
      raise ValueError(
        f"{fn}: the batches of a list `batches` are stacked, so they must all have the same shapes, "
        f"got leaf shapes {shapes0} for batch 0 and {shapes} for batch {i} "
        "(drop the last, smaller batch, e.g. drop_last=True)."
      )
  return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *batches)


def prepare_batches(batches, fn: str, *, stacklevel: int = 4) -> tuple[Any, int]:
  """Checks ``batches`` and returns ``(batches as JAX arrays, number of batches)``.

  ``batches`` is a pytree of arrays whose leading axis indexes mini-batches (every leaf the same
  length), or a Python list of batches with identical shapes, which is stacked into that form.
  A batch in which some leaf is a scalar (``(X, y)`` with ``X`` of shape ``[n, d]`` and ``y`` of
  shape ``[n]`` passed as is: each "batch" one example) gets a warning, since it usually means the
  data were not cut into mini-batches.

  Raises:
    ValueError: no leaves, a scalar leaf, leaves with different leading axes, zero batches, or a list
      of batches that differ in structure or shape.
  """
  if _is_batch_list(batches):
    batches = _stack(batches, fn)
  leaves = jax.tree_util.tree_leaves(batches)
  if not leaves:
    raise ValueError(
      f"{fn}: `batches` must be a pytree of arrays with a leading batch axis, got batches={batches!r}."
    )
  shapes = [np.shape(x) for x in leaves]
  if any(len(s) == 0 for s in shapes):
    raise ValueError(
      f"{fn}: `batches` leaves must have a leading axis indexing batches, got leaf shapes {shapes}."
    )
  lead = {s[0] for s in shapes}
  if len(lead) != 1:
    raise ValueError(
      f"{fn}: `batches` leaves must share their leading axis, got leading axes {sorted(lead)}."
    )
  n = lead.pop()
  if n < 1:
    raise ValueError(f"{fn}: `batches` must hold at least one batch, got leading axis 0.")
  if any(len(s) == 1 for s in shapes) and any(len(s) > 1 for s in shapes):
    warnings.warn(
      f"{fn}: each batch holds a single example (leaf shapes per batch {[s[1:] for s in shapes]}): "
      f"the leading axis of `batches` indexes batches, so {n} batches of one example each are used. "
      "Stack mini-batches (e.g. X.reshape(num_batches, batch_size, ...)), or pass one full batch as "
      "(X[None], y[None]).",
      UserWarning,
      stacklevel=stacklevel,
    )
  return jax.tree_util.tree_map(jnp.asarray, batches), n


def batch_spec(batches):
  """The abstract shape of one batch (``ShapeDtypeStruct`` leaves)."""
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x)[1:], jnp.result_type(x)), batches)


def take(batches, i):
  """Batch ``i`` (a traced index) of stacked ``batches``."""
  return jax.tree_util.tree_map(lambda b: b[i], batches)


def check_scalar_loss(loss_fn, params, batches, fn: str):
  """Checks (abstractly, without running it) that ``loss_fn(params, batch)`` is a real scalar; its dtype."""
  if not callable(loss_fn):
    raise ValueError(
      f"{fn}: `loss_fn` must be a function (params, batch) -> scalar, got loss_fn={loss_fn!r}."
    )
  out = jax.eval_shape(loss_fn, params, batch_spec(batches))
  shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
  if shape != () or not jnp.issubdtype(dtype, jnp.floating):
    got = f"shape {shape} and dtype {dtype}" if shape is not None else repr(out)
    raise ValueError(f"{fn}: `loss_fn` must return a real scalar, got {got}.")
  return dtype


# --------------------------------------------------------------------------------------------------
# The step.


def train_step(loss_fn: Callable, tx: optax.GradientTransformation, params, state, batch):
  """One plain Optax step; returns ``(loss before the update, new params, new state)``."""
  loss, grads = jax.value_and_grad(loss_fn)(params, batch)
  updates, state = tx.update(grads, state, params)
  return loss, optax.apply_updates(params, updates), state


def mean_loss(loss_fn: Callable, params, batches) -> jax.Array:
  """The mean of ``loss_fn(params, batch)`` over every batch of stacked ``batches`` (one at a time)."""
  return jnp.mean(lax.map(lambda b: loss_fn(params, b), batches))


# --------------------------------------------------------------------------------------------------
# Progress and chunked execution.


class Progress:
  """A minimal stderr progress bar (no dependency)."""

  def __init__(self, total: int, desc: str, enabled: bool, stream=None):
    self.total, self.desc, self.enabled = total, desc, enabled
    self.stream = sys.stderr if stream is None else stream
    self.done, self.t0 = 0, time.perf_counter()
    self._draw()

  def update(self, n: int):
    self.done += n
    self._draw()

  def _draw(self):
    if not self.enabled:
      return
    width = 30
    k = int(width * self.done / max(self.total, 1))
    dt = time.perf_counter() - self.t0
    end = "\n" if self.done >= self.total else ""
    self.stream.write(f"\r{self.desc} [{'#' * k}{'.' * (width - k)}] {self.done}/{self.total} {dt:.1f}s{end}")
    self.stream.flush()


def chunks(total: int, progress: bool) -> list[tuple[int, int]]:
  """(start, length) pairs: the whole run, or about 20 equal chunks (at most 2 distinct lengths)."""
  if not progress:
    return [(0, total)]
  length = max(1, math.ceil(total / 20))
  return [(s, min(length, total - s)) for s in range(0, total, length)]


def run_chunked(total: int, progress: bool, desc: str, *, whole: Callable, init: Callable, steps: Callable):
  """Runs a scan of ``total`` steps as one program, or in chunks between progress-bar updates.

  Without progress: ``whole()``. With it: ``carry = init()``, then ``carry, rows = steps(carry, t0,
  length)`` per chunk; the rows (a pytree of arrays whose axis 1 is the step) are concatenated.

  Returns:
    ``(None, whole())`` or ``(carry, rows)``.
  """
  parts = chunks(total, progress)
  if len(parts) == 1:
    return None, whole()
  bar = Progress(total, desc, True)
  carry, rows = init(), []
  for t0, length in parts:
    carry, row = steps(carry, jnp.asarray(t0, jnp.int32), length)
    rows.append(jax.block_until_ready(row))
    bar.update(length)
  return carry, jax.tree_util.tree_map(lambda *r: jnp.concatenate(r, axis=1), *rows)
