"""One version: src/homeport/__init__.py; the package metadata reads it, galaxy.yml repeats it (issue 20)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import yaml

import homeport

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_version_comes_from_init():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("homeport") == homeport.__version__


def test_galaxy_yml_repeats_the_same_version():
    assert yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"] == homeport.__version__
