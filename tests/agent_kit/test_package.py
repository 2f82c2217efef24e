"""The agent kit installs alone: its own dependencies only, nothing from the server."""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import tomllib
from pathlib import Path

import signoff_agent_kit

PACKAGE = Path(__file__).parents[2] / "packages" / "agent-kit"
SOURCE = PACKAGE / "src" / "signoff_agent_kit"
ALLOWED = {"typer", "rich", "yaml", "signoff_agent_kit"}
MAX_LINES = 500


def _modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def test_dependencies_are_typer_rich_and_pyyaml_only() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]}
    assert names == {"typer", "rich", "pyyaml"}
    assert project["scripts"]["signoff-scan"] == "signoff_agent_kit.cli:main"
    assert (SOURCE / "py.typed").exists()


def test_imports_are_the_standard_library_or_the_declared_dependencies() -> None:
    stdlib = set(sys.stdlib_module_names)
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = {node.module.split(".")[0]}
            else:
                continue
            foreign = tops - stdlib - ALLOWED
            assert not foreign, f"{path.name} imports {foreign}"


def test_modules_are_small_enough_to_read_in_one_sitting() -> None:
    sizes = {p.relative_to(SOURCE).as_posix(): len(p.read_text().splitlines()) for p in _modules()}
    assert max(sizes.values()) <= MAX_LINES, sizes


def test_public_api_is_documented() -> None:
    assert signoff_agent_kit.__doc__
    for path in _modules():
        if path.name == "__main__.py":
            continue
        dotted = path.relative_to(SOURCE).with_suffix("").as_posix().replace("/", ".")
        module = importlib.import_module(f"signoff_agent_kit.{dotted}".removesuffix(".__init__"))
        assert module.__doc__, path.name
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__, f"{path.name}: {name}"
