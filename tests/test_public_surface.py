"""The public surface: every package says what it exports, every exported name imports, and no
name means two things (a public submodule and a public attribute of the same package)."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import circuitscope


def _packages() -> list[str]:
    names = ["circuitscope"]
    names += [m.name for m in pkgutil.walk_packages(circuitscope.__path__, "circuitscope.") if m.ispkg]
    return sorted(names)


PACKAGES = _packages()


def test_every_package_is_found() -> None:
    assert {"circuitscope.analysis", "circuitscope.circuits", "circuitscope.core", "circuitscope.sae"} <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_package_has_an_explicit_all(name: str) -> None:
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__ list"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in_all_imports(name: str) -> None:
    package = importlib.import_module(name)
    missing = [n for n in package.__all__ if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # the star import is what is tested
    assert set(package.__all__) <= set(namespace)


@pytest.mark.parametrize("name", PACKAGES)
def test_no_submodule_shares_a_name_with_an_attribute(name: str) -> None:
    """``from pkg import x`` must not be a function when ``pkg.x`` is also a module (or the reverse)."""
    package = importlib.import_module(name)
    attributes = set(package.__all__) | {
        n for n, v in vars(package).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    clashes = []
    for sub in pkgutil.iter_modules(package.__path__):
        if sub.name.startswith("_"):
            continue
        full = f"{name}.{sub.name}"
        value = getattr(package, sub.name, None)
        is_the_module = isinstance(value, types.ModuleType) and value.__name__ == full
        if sub.name in attributes or (value is not None and not is_the_module):
            clashes.append(full)
    assert not clashes, f"public submodules that share a name with a public attribute: {clashes}"


def test_no_package_imports_another_packages_private_module() -> None:
    """The README's rule: a ``_`` module is not for users, so only its own package imports it (others use the
    package's re-export, ``from circuitscope.analysis import path_patching``)."""
    import ast
    from pathlib import Path

    root = Path(circuitscope.__file__).parent
    reaches = []
    for file in root.rglob("*.py"):
        importer = "circuitscope." + ".".join(file.relative_to(root).with_suffix("").parts)
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("circuitscope."):
                parts = node.module.split(".")
                private = next((i for i, p in enumerate(parts) if p.startswith("_") and i > 1), None)
                if private is not None and not importer.startswith(".".join(parts[:private]) + "."):
                    reaches.append(f"{importer} imports {node.module}")
    assert not reaches, f"private modules imported from outside their package: {reaches}"
