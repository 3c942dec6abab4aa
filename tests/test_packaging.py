"""Every source folder with an ``__init__.py`` is a package that pyproject lists.

An editable install finds modules by folder, so it hides a subpackage missing from the list; a
wheel built by some setuptools versions then lacks it (the GPU check met exactly that).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package_folder():
    tomllib = pytest.importorskip("tomllib")
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    folders = conf["package-dir"]  # installed name -> source folder
    assert set(folders) <= listed
    found = set()
    for top, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            name = ".".join((top, *rel))
            if not any(name != t and name.startswith(t + ".") and folders[t] != folder for t in folders):
                found.add(name)
    missing = sorted(found - listed)
    assert not missing, f"packages missing from pyproject's [tool.setuptools] packages: {missing}"
    assert "trajstore.backends" in found  # the walk sees nested packages
