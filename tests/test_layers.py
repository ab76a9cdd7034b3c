"""The import graph: library packages import only downward, never the application layer.

Every import is read from the source (module level and inside functions, where
the lazy imports live), so a lazy upward import fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

APPLICATION = ("pipeline.app", "benchmarks")
"""What no library module may import."""

ALLOWED: dict[str, tuple[str, ...]] = {
    # the runtime is the bottom layer
    "pipeline": ("pipeline",),
    # networks share one leaf of the engine layer: the tensor specs of their export graphs
    "networks": ("networks", "trt_engines.engine"),
    "trt_engines": ("trt_engines", "networks", "pipeline"),
    "training": ("training", "networks", "trt_engines", "pipeline"),
    "stages": ("stages", "pipeline", "networks", "trt_engines", "training"),
}
"""Each library package and the packages (or modules) it may import."""

PROJECT = ("pipeline", "stages", "networks", "trt_engines", "training", "benchmarks")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in the file, wherever it stands."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(root: Path, package: str, allowed: tuple[str, ...]) -> list[str]:
    """Imports of project modules from ``root/package`` outside ``allowed`` (or upward)."""
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        if _within(module, APPLICATION):
            continue  # pipeline.app is the application layer, not the runtime
        for line, target in imported_modules(path):
            project = _within(target, PROJECT)
            if project and (_within(target, APPLICATION) or not _within(target, allowed)):
                bad.append(f"{path.relative_to(root)}:{line} imports {target}")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_library_packages_import_only_downward(package):
    assert violations(ROOT, package, ALLOWED[package]) == []


def test_the_check_finds_an_upward_import_even_inside_a_function(tmp_path):
    lib = tmp_path / "stages"
    lib.mkdir()
    (lib / "ok.py").write_text("from pipeline.frame import Frame\nimport numpy\n")
    (lib / "bad.py").write_text("def run():\n    from pipeline.app.cli import main\n")
    (lib / "worse.py").write_text("import benchmarks.live\n")
    assert violations(tmp_path, "stages", ALLOWED["stages"]) == [
        "stages/bad.py:2 imports pipeline.app.cli",
        "stages/worse.py:1 imports benchmarks.live",
    ]


def test_the_application_layer_is_where_the_commands_are():
    from pipeline.app.cli import COMMANDS

    commands = ROOT / "pipeline" / "app" / "commands"
    assert {p.stem for p in commands.glob("*.py")} - {"__init__"} == set(COMMANDS)
