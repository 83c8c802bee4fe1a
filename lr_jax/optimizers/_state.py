"""Reading nested Optax states: the learning-rate step's state and :func:`current_lr`.

Every lr_jax optimizer ends with a learning-rate step whose state (:class:`ScaleByLearningRateState`)
keeps the update count and the learning rate itself: the float rate, or the schedule as a pytree value
(an lr_jax schedule's numbers are leaves; a plain callable is kept as static data in a
``FunctionSchedule``). :func:`current_lr` walks any nesting of Optax wrappers down to those states and
the ``reduce_on_plateau`` states beside them.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_jax.optimizers._hypergradient import HypergradientAdamState, HypergradientSGDState
from lr_jax.optimizers._plateau import ReduceOnPlateauState
from lr_jax.optimizers._schedule_free import ScheduleFreeState
from lr_jax.schedules._base import FunctionSchedule

__all__ = ["ScaleByLearningRateState", "current_lr"]


class ScaleByLearningRateState(NamedTuple):
  """State of the learning-rate step at the end of every lr_jax optimizer.

  ``learning_rate`` is the rate given at construction: an array (a constant rate) or a
  :class:`StoredSchedule` (an lr_jax schedule with array leaves, or a ``FunctionSchedule`` holding a
  plain callable as static data). The next update uses ``learning_rate(count)`` (or the constant).
  """

  count: jax.Array  # int32, updates so far; saturates at 2**31 - 1
  learning_rate: Any  # the constant rate (an array) or the schedule (a pytree)


def _is_number(x) -> bool:
  return isinstance(x, (numbers.Number, np.ndarray, np.generic, jax.Array))


class StoredSchedule(tuple):
  """A schedule kept in a state: its leaves as the one field ``leaves``, its structure in the class.

  ``stored_learning_rate`` makes one subclass per schedule structure (cached), with the tree structure
  as the class attribute ``treedef``: the leaves are the only data, so the state is a plain pytree of
  arrays that Flax's and Orbax's checkpointing handle like a NamedTuple (restored into the structure of
  a fresh ``init``), and two states compare with ``==`` leaf by leaf. Calling it rebuilds the schedule
  and calls it.
  """

  _fields = ("leaves",)
  treedef: Any = None

  def __new__(cls, leaves):
    return tuple.__new__(cls, (tuple(leaves),))

  @property
  def leaves(self) -> tuple:
    return self[0]

  @property
  def schedule(self):
    return jax.tree.unflatten(self.treedef, list(self.leaves))

  def __call__(self, step):
    return self.schedule(step)

  def __repr__(self) -> str:
    return f"StoredSchedule({self.schedule!r})"


_STORED_CLASSES: dict = {}


def _stored_class(treedef) -> type:
  try:
    return _STORED_CLASSES[treedef]
  except TypeError:  # an unhashable static part: a class of its own
    pass
  except KeyError:
    pass
  cls = type("StoredSchedule", (StoredSchedule,), {"treedef": treedef, "__module__": __name__})
  jax.tree_util.register_pytree_node(cls, lambda s: (s[0], None), lambda _, leaves: cls(leaves))
  try:
    _STORED_CLASSES[treedef] = cls
  except TypeError:
    pass
  return cls


def real_dtype(tree) -> jnp.dtype:
  """The real floating dtype of a tree's leaves, at least float32 (float64 params: float64)."""
  leaves = jax.tree.leaves(tree)
  dt = jnp.result_type(*leaves) if leaves else jnp.float32
  return jnp.finfo(jnp.promote_types(dt, jnp.float32)).dtype


def _as_leaf(x, dtype) -> jax.Array:
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.floating):
    return x.astype(dtype)
  if jnp.issubdtype(x.dtype, jnp.integer) and x.dtype != jnp.int32:
    if isinstance(x, jax.core.Tracer) or not bool(jnp.all(jnp.abs(x) <= 2**31 - 1)):
      return x
    return x.astype(jnp.int32)
  return x


def stored_learning_rate(learning_rate, dtype=jnp.float32):
  """What :class:`ScaleByLearningRateState` keeps of ``learning_rate``: an array, or a schedule value.

  A constant is kept as an array of ``dtype`` (the params' real dtype: float32 params keep a float32
  state even with x64 on). A pytree schedule whose leaves are all numbers is kept with float leaves in
  ``dtype`` and integer leaves in int32 (the state's dtypes are fixed at ``init``); any other callable
  (an Optax schedule, a lambda) is wrapped in a ``FunctionSchedule``, which holds it as static data.
  A schedule is kept as a :class:`StoredSchedule`.
  """
  if not callable(learning_rate):
    return _as_leaf(learning_rate, dtype)
  leaves, treedef = jax.tree.flatten(learning_rate)
  if treedef.num_nodes > 1 and all(_is_number(x) for x in leaves):
    return _stored_class(treedef)([_as_leaf(x, dtype) for x in leaves])
  leaves, treedef = jax.tree.flatten(FunctionSchedule(learning_rate))
  return _stored_class(treedef)(leaves)


def _rate_of(state: ScaleByLearningRateState) -> jax.Array:
  lr = state.learning_rate
  return jnp.asarray(lr(state.count)) if callable(lr) else jnp.asarray(lr)


class _Found(NamedTuple):
  factors: list  # rates and plateau scales in force at this level (multiplied together)
  has_lr: bool  # whether a learning rate (not only a plateau scale) was among them
  groups: dict | None  # label -> _Found, under optax.multi_transform


def _children(node) -> list:
  kids = jax.tree_util.tree_flatten(node, is_leaf=lambda x: x is not node)[0]
  if len(kids) == 1 and kids[0] is node:  # an array (or other leaf)
    return []
  return kids


def _merge(parts: list) -> _Found:
  factors, has_lr, groups = [], False, None
  for p in parts:
    factors += p.factors
    has_lr = has_lr or p.has_lr
    if p.groups is not None:
      if groups is not None:
        raise ValueError(
          "current_lr: `opt_state` holds two optax.multi_transform states side by side; "
          "call current_lr on each part of the state."
        )
      groups = p.groups
  return _Found(factors, has_lr, groups)


_ADAPTED = (HypergradientSGDState, HypergradientAdamState)


def _holds_adapted_rate(tree) -> bool:
  leaves = jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, _ADAPTED))
  return any(isinstance(x, _ADAPTED) for x in leaves)


def _walk(node, skip_lr: bool) -> _Found:
  if isinstance(node, _ADAPTED):  # hypergradient descent: the adapted rate, kept in the state
    return _Found([], False, None) if skip_lr else _Found([node.learning_rate], True, None)
  if isinstance(node, ScheduleFreeState):  # the rate (warm-up / rectification included) of the next update
    return _Found([], False, None) if skip_lr else _Found([node.next_lr], True, None)
  if isinstance(node, ScaleByLearningRateState):
    return _Found([], False, None) if skip_lr else _Found([_rate_of(node)], True, None)
  if isinstance(node, ReduceOnPlateauState):
    return _Found([node.scale], False, None)
  hyper = getattr(node, "hyperparams", None)
  if isinstance(hyper, dict) and hasattr(node, "inner_state"):  # optax.inject_hyperparams
    wrapped = getattr(node, "hyperparams_states", None)
    if not skip_lr and isinstance(wrapped, dict) and "learning_rate" in wrapped:
      raise ValueError(
        "current_lr: `opt_state` holds an optax.inject_hyperparams state whose learning_rate is a "
        "schedule, which Optax keeps outside the state (its hyperparams hold the rate of the last "
        "update, not the next); pass the schedule through: "
        "optax.inject_hyperparams(opt, static_args=('learning_rate',))(learning_rate=schedule, ...)."
      )
    if _holds_adapted_rate(node.inner_state):  # its learning_rate hyperparameter was only the initial rate
      hyper = {k: v for k, v in hyper.items() if k != "learning_rate"}
    inner = _walk(node.inner_state, skip_lr or "learning_rate" in hyper)
    if "learning_rate" in hyper and not skip_lr:
      return _merge([_Found([jnp.asarray(hyper["learning_rate"])], True, None), inner])
    return inner
  if isinstance(node, optax.MultiTransformState):
    groups = {k: _walk(v, skip_lr) for k, v in node.inner_states.items()}
    return _Found([], False, groups)
  return _merge([_walk(c, skip_lr) for c in _children(node)])


def _product(factors: list) -> jax.Array:
  out = factors[0]
  for f in factors[1:]:
    out = out * f
  return out


def _finish(found: _Found, outer: list, outer_has_lr: bool):
  factors, has_lr = outer + found.factors, outer_has_lr or found.has_lr
  if found.groups is not None:
    return {k: _finish(g, factors, has_lr) for k, g in found.groups.items()}
  if not has_lr:
    raise ValueError(
      "current_lr: found no learning rate in `opt_state`: it holds neither an lr_jax optimizer's "
      "learning-rate state nor an optax.inject_hyperparams state with a 'learning_rate'; build the "
      "optimizer with lr_jax.optimizers (or wrap an Optax one with optax.inject_hyperparams)."
    )
  return _product(factors)


def current_lr(opt_state) -> jax.Array | dict:
  """The learning rate the next update will use: PyTorch's ``scheduler.get_last_lr()``.

  Found anywhere in ``opt_state`` (inside ``optax.chain``, ``optax.inject_hyperparams``,
  ``optax.MultiSteps``, ``optax.masked``, ``optax.apply_if_finite``, lr_jax's ``skip_nonfinite``)::

      current_lr = lr(count) * prod(scale of every reduce_on_plateau in force)

  where ``lr`` is the learning rate of an lr_jax optimizer (a constant, an lr_jax schedule or any
  callable: its state keeps the rate, see :class:`ScaleByLearningRateState`) and ``count`` its number of
  updates so far. For the schedule-free optimizers ``lr(count)`` is the step size of the next update,
  warm-up or RAdam's rectification included (``ScheduleFreeState.next_lr``, schedulefree's
  ``scheduled_lr``); the learning-rate-free ones (``prodigy``, ``dadapt_*``, ``dog``) keep their estimate
  in their state instead (``state.d``, ``state.eta``). For ``hypergradient_sgd`` / ``hypergradient_adam``
  it is the adapted rate ``state.learning_rate``: that of the last update (the initial rate before the
  first), which the next update first moves by one hypergradient step. Under ``optax.multi_transform`` it is a dict ``{label: rate}`` (one entry per group;
  factors outside the ``multi_transform`` multiply every group). Under ``optax.inject_hyperparams``
  with a numeric ``learning_rate`` hyperparameter (set, and changed by hand, in
  ``state.hyperparams["learning_rate"]``), that value is used. A *schedule* given to
  ``inject_hyperparams`` as ``learning_rate`` is kept outside the state by Optax (its hyperparams hold
  the rate of the last update): that raises ``ValueError``; pass it through instead, with
  ``optax.inject_hyperparams(optimizers.sgd, static_args=("learning_rate",))(learning_rate=schedule,
  momentum=...)``, and the lr_jax optimizer's state keeps it.

  Twin: ``scheduler.get_last_lr()`` (the optimizer's ``param_groups[i]["lr"]``) at the same point of the
  loop, after ``optimizer.step(); scheduler.step()``. To log it each step, return it from the jitted
  train step (``return params, state, loss, optimizers.current_lr(state)``) or read it from the state
  afterwards; it is a jnp computation, so it can be jitted and vmapped over a batch of states.

  Args:
    opt_state: the state of an optimizer (``tx.init(params)`` and its updates).

  Returns:
    A scalar array, or a dict ``{label: rate}`` under ``optax.multi_transform``.

  Raises:
    ValueError: if ``opt_state`` holds no learning rate (e.g. a plain ``optax.adam(1e-3)`` state), or
      one that ``optax.inject_hyperparams`` schedules outside the state.

  References:
    PyTorch, `LRScheduler.get_last_lr
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.LRScheduler.html>`_.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from lr_jax import optimizers, schedules
    >>> tx = optax.chain(optimizers.sgd(schedules.step_decay(0.1, step_size=2, gamma=0.5)),
    ...                  optimizers.reduce_on_plateau(factor=0.1))
    >>> params = jnp.zeros(2)
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update(jnp.ones(2), state, params)
    >>> print(f"{float(optimizers.current_lr(state)):.4f}")
    0.0500
  """
  return _finish(_walk(opt_state, False), [], False)
