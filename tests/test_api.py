"""The public surface: one path per name, docstrings with examples, lazy matplotlib.

``shared/STYLE.md``: every public name has exactly one import path. Modules behind the flat API are
private (``lr_jax._sweep``, ``lr_jax.schedules._decay``, ...); the public modules are the ones listed
in ``PUBLIC_MODULES``, and no public function shadows (or is shadowed by) a module.
"""

import importlib
import importlib.util
import inspect
import pkgutil
import subprocess
import sys
import types
import typing

import pytest

import lr_jax
from lr_jax import optimizers, schedules, spaces

PUBLIC_MODULES = (
  "lr_jax",
  "lr_jax.schedules",
  "lr_jax.optimizers",
  "lr_jax.spaces",
  "lr_jax.plot",
  "lr_jax.cli",
  "lr_jax.tasks",
)


def _all_modules() -> dict[str, types.ModuleType]:
  """Every module of the package, imported (``__main__`` excluded: importing it runs the CLI)."""
  mods = {"lr_jax": lr_jax}
  for info in pkgutil.walk_packages(lr_jax.__path__, "lr_jax."):
    if info.name != "lr_jax.__main__":
      mods[info.name] = importlib.import_module(info.name)
  return mods


def _public():
  for ns_name, ns in (("schedules", schedules), ("optimizers", optimizers)):
    for name in ns.__all__:
      yield f"{ns_name}.{name}", getattr(ns, name)
  for ns_name, ns in (("spaces", spaces),):
    for name in ns.__all__:
      yield f"{ns_name}.{name}", getattr(ns, name)
  for name in ("lr_find", "sweep", "search", "hypergradient", "tune"):
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
  assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_modules_of_the_package_are_the_public_ones_or_private():
  for name in _all_modules():
    private = any(part.startswith("_") for part in name.split(".")[1:])
    assert private or name in PUBLIC_MODULES, f"{name} is neither public nor private (_name)"


@pytest.mark.parametrize(
  "path",
  [
    "lr_jax.optimizers.adam",
    "lr_jax.optimizers.sgd",
    "lr_jax.schedules.cyclic",
    "lr_jax.sweep",
    "lr_jax.search",
    "lr_jax.hypergradient",
    "lr_jax.tune",
    "lr_jax.finder",
  ],
)
def test_functions_are_not_importable_as_modules(path):
  # find_spec imports the parents only; a module of that name would give a spec
  assert importlib.util.find_spec(path) is None, f"`import {path}` finds a module"


def test_flat_names_are_the_functions_and_result_types():
  from lr_jax._finder import LRFindResult
  from lr_jax._sweep import SweepResult

  assert inspect.isfunction(lr_jax.sweep) and inspect.isfunction(lr_jax.lr_find)
  assert lr_jax.SweepResult is SweepResult and lr_jax.LRFindResult is LRFindResult
  assert isinstance(lr_jax.SweepResult, type) and isinstance(lr_jax.LRFindResult, type)
  assert typing.get_type_hints(lr_jax.sweep)["return"] is lr_jax.SweepResult
  assert typing.get_type_hints(lr_jax.search)["return"] is lr_jax.SearchResult
  assert typing.get_type_hints(lr_jax.lr_find)["return"] is lr_jax.LRFindResult
  assert typing.get_type_hints(lr_jax.hypergradient)["return"] is lr_jax.HypergradResult
  assert typing.get_type_hints(lr_jax.tune)["return"] is lr_jax.TuneResult
  assert inspect.isfunction(optimizers.adam) and inspect.isfunction(schedules.cyclic)


def test_every_module_attribute_of_the_package_is_a_public_module():
  # an attribute `x.name` holding one of our modules is only allowed for the public modules
  # (`lr_jax.plot`) or under a private name (`_decay`); third-party modules (jnp, optax) are not ours
  bad = []
  for mod_name, mod in _all_modules().items():
    for attr, value in vars(mod).items():
      if attr.startswith("_") or not isinstance(value, types.ModuleType):
        continue
      if value.__name__.split(".")[0] == "lr_jax" and value.__name__ not in PUBLIC_MODULES:
        bad.append(f"{mod_name}.{attr} -> {value.__name__}")
  assert not bad, bad


def test_no_public_name_leaks_from_private_modules():
  # the real attributes of each flat namespace, not just its __all__: every non-underscore
  # attribute is either listed in __all__ or one of the public modules
  _all_modules()  # attributes appear when submodules are imported: check after importing everything
  for ns in (lr_jax, schedules, optimizers):
    extra = {
      name
      for name, value in vars(ns).items()
      if not name.startswith("_")
      and name not in ns.__all__
      and not (isinstance(value, types.ModuleType) and value.__name__ in PUBLIC_MODULES)
    }
    assert not extra, f"{ns.__name__} leaks {sorted(extra)}"
    assert all(hasattr(ns, name) for name in ns.__all__)
    assert all(not name.startswith("_") or name == "__version__" for name in ns.__all__)


def test_every_exported_name_is_defined_in_exactly_one_public_namespace():
  # (``lr_jax.plot.sweep`` draws a SweepResult: a different object of the same name, with one path too)
  mods = _all_modules()
  owners: dict[int, list[str]] = {}
  for ns_name in PUBLIC_MODULES:
    ns = mods[ns_name]
    for name in getattr(ns, "__all__", ()):
      obj = getattr(ns, name)
      if isinstance(obj, types.ModuleType) or name == "__version__":
        continue
      owners.setdefault(id(obj), []).append(f"{ns_name}.{name}")
      # defined in this namespace: in the module itself or in one of its private modules
      home = getattr(obj, "__module__", ns_name)
      inner = home.removeprefix(ns_name + ".")
      assert home == ns_name or (inner != home and inner.startswith("_")), f"{ns_name}.{name} is from {home}"
  twice = [paths for paths in owners.values() if len(paths) > 1]
  assert not twice, f"objects exported under more than one public path: {twice}"
