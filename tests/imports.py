"""The project's own import graph, read statically: which files of ``cxrssl/`` and ``stages/`` a module runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cxrssl", "stages")


def _module_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _package(file: Path) -> list[str]:
    """The package a file belongs to (for ``pkg/__init__.py``, ``pkg`` itself)."""
    return list(file.relative_to(REPO).with_suffix("").parts[:-1])


def imported_modules(file: Path) -> set[str]:
    """Every module name ``file`` imports (function-level imports too), relative imports resolved."""
    names = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package(file)
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def closure(file: Path) -> set[Path]:
    """The project files that running ``file`` executes: its transitive imports within the packages.

    Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too.
    """
    seen: set[Path] = set()
    todo = [file]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in imported_modules(current):
            parts = name.split(".")
            if parts[0] not in PACKAGES:
                continue
            for i in range(1, len(parts) + 1):
                found = _module_file(".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def has_code(file: Path) -> bool:
    """False for a module with nothing but a docstring (an ``__init__.py`` that only names its package)."""
    body = ast.parse(file.read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def stage_definitions() -> dict[str, dict]:
    """dvc.yaml's stages by name (a foreach's ``do`` and a matrix's body, uninterpolated)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def stage_module(stage: dict) -> Path:
    """The file of the module a stage's command runs (``python -m stages.<name>``)."""
    found = re.search(r"python -m ([\w.]+)", stage["cmd"])
    assert found, f"cannot find the module in {stage['cmd']!r}"
    return _module_file(found.group(1))


def declared_code(stage: dict) -> set[Path]:
    """The stage's Python deps inside the packages, folders expanded to their files (data files left out)."""
    out = set()
    for dep in stage.get("deps", []):
        path = REPO / dep
        if dep.split("/")[0] not in PACKAGES:
            continue
        out.update(path.rglob("*.py") if path.is_dir() else [path] if path.suffix == ".py" else [])
    return out


def needed_code(stage: dict) -> set[Path]:
    """The files a stage's code runs that can change what it does (docstring-only modules left out)."""
    return {f for f in closure(stage_module(stage)) if has_code(f)}
