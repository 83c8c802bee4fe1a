"""Packaging: one version string, and the environment meets the floors that pyproject.toml states.

The floors themselves (jax/jaxlib 0.6.1 for ``jax.shard_map(..., check_vma=...)``, optax 0.2.6 for
``optax.init_empty_state`` and ``optax.tree``, chex 0.1.87, numpy 1.26, Python 3.11) were verified by
installing exactly those versions in a fresh venv and running the library's tests there (README,
"The two commands").
"""

import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import lr_jax

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]


def test_version_is_the_one_in_pyproject():
  assert lr_jax.__version__ == PYPROJECT["version"] == metadata.version("lr-jax")


def test_installed_dependencies_meet_the_stated_floors():
  requirements = pytest.importorskip("packaging.requirements")
  specifiers = pytest.importorskip("packaging.specifiers")
  py = ".".join(map(str, sys.version_info[:3]))
  assert py in specifiers.SpecifierSet(PYPROJECT["requires-python"]), (py, PYPROJECT["requires-python"])
  for line in PYPROJECT["dependencies"]:
    req = requirements.Requirement(line)
    assert metadata.version(req.name) in req.specifier, (line, metadata.version(req.name))


def test_the_floors_are_at_least_what_the_code_uses():
  # jax.shard_map with check_vma (lr_jax._sweep) arrived in jax 0.6.1; optax.init_empty_state in optax 0.2.6
  requirements = pytest.importorskip("packaging.requirements")
  version = pytest.importorskip("packaging.version")
  floors = {}
  for line in PYPROJECT["dependencies"]:
    req = requirements.Requirement(line)
    (spec,) = [s for s in req.specifier if s.operator == ">="]
    floors[req.name] = version.Version(spec.version)
  assert floors["jax"] >= version.Version("0.6.1") and floors["jaxlib"] == floors["jax"]
  assert floors["optax"] >= version.Version("0.2.6")
