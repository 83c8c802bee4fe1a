"""The public surface: one path per name, docstrings with examples, lazy matplotlib."""

import subprocess
import sys

import lr_jax
from lr_jax import optimizers, schedules


def _public():
  for ns_name, ns in (("schedules", schedules), ("optimizers", optimizers)):
    for name in ns.__all__:
      yield f"{ns_name}.{name}", getattr(ns, name)
  for name in ("lr_find", "sweep"):
    if hasattr(lr_jax, name):
      yield name, getattr(lr_jax, name)


def test_every_public_function_has_a_docstring_with_examples():
  missing = []
  for name, obj in _public():
    if isinstance(obj, type):  # states / results: a docstring is enough
      if not obj.__doc__:
        missing.append(name)
      continue
    doc = obj.__doc__ or ""
    if "Examples:" not in doc or ">>>" not in doc:
      missing.append(name)
  assert not missing, f"public names without an Examples: doctest: {missing}"


def test_importing_lr_jax_does_not_import_matplotlib():
  code = "import sys, lr_jax; sys.exit(1 if 'matplotlib' in sys.modules else 0)"
  assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_no_public_name_leaks_from_private_modules():
  for ns in (schedules, optimizers):
    for name in ns.__all__:
      assert not name.startswith("_")
