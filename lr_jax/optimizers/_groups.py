"""``param_groups``: PyTorch's parameter groups as one ``optax.multi_transform``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

__all__ = ["param_groups", "param_path"]

_FN = "param_groups"


def param_path(path) -> str:
  """A ``jax.tree_util`` key path as the string that ``param_groups`` rules match: ``"layer/0/bias"``.

  Dict keys, sequence indices and attribute names are joined with ``/``.

  Examples:
    >>> import jax
    >>> from lr_jax import optimizers
    >>> params = {"layer": [{"w": 1.0, "bias": 0.0}]}
    >>> [optimizers.param_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    ['layer/0/bias', 'layer/0/w']
  """
  parts = []
  for k in path:
    if isinstance(k, jax.tree_util.DictKey):
      parts.append(str(k.key))
    elif isinstance(k, jax.tree_util.SequenceKey):
      parts.append(str(k.idx))
    elif isinstance(k, jax.tree_util.GetAttrKey):
      parts.append(k.name)
    elif isinstance(k, jax.tree_util.FlattenedIndexKey):
      parts.append(str(k.key))
    else:
      parts.append(str(k))
  return "/".join(parts)


def _rules_label_fn(rules: Mapping[str, str], names) -> Callable[[Any], Any]:
  compiled = []
  for pattern, label in rules.items():
    try:
      compiled.append((re.compile(pattern), label))
    except re.error as e:
      raise ValueError(f"{_FN}: `rules` patterns must be regular expressions, got {pattern!r} ({e}).") from e

  def label_fn(params):
    def one(path, _):
      name = param_path(path)
      for rx, label in compiled:
        if rx.search(name):
          return label
      raise ValueError(
        f"{_FN}: parameter {name!r} matches no pattern of `rules` ({list(rules)}); "
        f"add a catch-all rule such as {{r'.*': {names[0]!r}}} at the end."
      )

    return jax.tree_util.tree_map_with_path(one, params)

  return label_fn


def param_groups(
  groups: Mapping[str, optax.GradientTransformation],
  labels: Any = None,
  *,
  rules: Mapping[str, str] | None = None,
) -> optax.GradientTransformation:
  """PyTorch's ``param_groups``: one optimizer (rate, schedule, weight decay, betas) per group.

  Each parameter gets a label; the parameters labelled ``name`` are updated by ``groups[name]``
  alone, with its own state, as ``optax.multi_transform(groups, label_fn)`` does (this function
  builds exactly that, so ``current_lr`` and Optax tooling see an ordinary ``multi_transform``).
  The labels come from exactly one of:

  * ``rules={regex: label}``: each parameter's path (:func:`param_path`, e.g.
    ``"encoder/layers/0/bias"``) is matched with ``re.search`` against the patterns in order and
    gets the label of the first match (a parameter that matches none raises ``ValueError``);
  * ``labels``: a callable ``params -> pytree of labels`` (a label function, Optax's form) or a
    pytree of labels with the params' structure.

  A PyTorch recipe maps one to one::

      torch.optim.AdamW([{"params": decay, "lr": 1e-3, "weight_decay": 0.1},
                         {"params": no_decay, "lr": 3e-3, "weight_decay": 0.0, "betas": (0.8, 0.99)}])
      + CosineAnnealingLR(opt, T_max=T)                 (stepped after each update)

      param_groups({"decay": adamw(cosine_annealing(1e-3, T), weight_decay=0.1),
                    "no_decay": adamw(cosine_annealing(3e-3, T), weight_decay=0.0, b1=0.8, b2=0.99)},
                   rules={r"bias$|norm": "no_decay", r".*": "decay"})

  A scheduler applies its rule to each group's own base rate, so each group gets its own schedule
  (``CosineAnnealingLR``: ``cosine_annealing(group_lr, T, end_value=eta_min)``; ``LambdaLR`` with
  one lambda per group: ``lambda t: group_lr * lam(t)``). Every group is updated at every step, so
  their step counts stay equal. If only the weight decay differs between groups, ``mask=`` of the
  optimizer is simpler (one state). Differences from PyTorch: none in the numbers; a parameter
  belongs to exactly one group (PyTorch raises on duplicates too).

  Args:
    groups: a non-empty dict ``label -> optax.GradientTransformation``.
    labels: a label function ``params -> pytree of labels``, or a pytree of labels.
    rules: a dict ``{regex: label}`` matched in order against each parameter's path.

  Returns:
    An ``optax.GradientTransformation`` (an ``optax.multi_transform``).

  Raises:
    ValueError: if ``groups`` is empty or holds something other than a ``GradientTransformation``,
      if not exactly one of ``labels`` and ``rules`` is given, if a rule is not a regular
      expression or names an unknown group, or (at ``init``) if a parameter matches no rule.

  References:
    PyTorch, `Per-parameter options
    <https://pytorch.org/docs/stable/optim.html#per-parameter-options>`_; Optax, ``multi_transform``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from lr_jax import optimizers, schedules
    >>> tx = optimizers.param_groups(
    ...   {"decay": optimizers.adamw(schedules.cosine_annealing(0.1, 100), weight_decay=0.5),
    ...    "no_decay": optimizers.adamw(0.01, weight_decay=0.0)},
    ...   rules={r"bias$": "no_decay", r".*": "decay"})
    >>> params = {"w": jnp.ones(2), "bias": jnp.ones(2)}
    >>> u, state = tx.update({"w": jnp.ones(2), "bias": jnp.ones(2)}, tx.init(params), params)
    >>> print(f"{float(u['w'][0]):.2f} {float(u['bias'][0]):.2f}")
    -0.15 -0.01
  """
  if not isinstance(groups, Mapping) or not groups:
    raise ValueError(f"{_FN}: `groups` must be a non-empty dict label -> optimizer, got groups={groups!r}.")
  for name, tx in groups.items():
    if not isinstance(tx, optax.GradientTransformation):
      raise ValueError(  # noqa: TRY004 (the package's rule: bad input is a ValueError naming it)
        f"{_FN}: `groups` values must be optax.GradientTransformations, got groups[{name!r}]={tx!r}."
      )
  names = list(groups)
  if (labels is None) == (rules is None):
    raise ValueError(
      f"{_FN}: exactly one of `labels` and `rules` must be given, got labels={labels!r}, rules={rules!r}."
    )
  if rules is not None:
    if not isinstance(rules, Mapping) or not rules or not all(isinstance(k, str) for k in rules):
      raise ValueError(f"{_FN}: `rules` must be a non-empty dict {{regex: label}}, got rules={rules!r}.")
    if set(rules.values()) - set(names):
      raise ValueError(f"{_FN}: `rules` must name groups among {names}, got rules={dict(rules)!r}.")
    labels = _rules_label_fn(rules, names)
  return optax.multi_transform(dict(groups), labels)
