"""Functions stay the size of a well-kept library's: median <= 8 lines, none over 50.

A function's size is the span of its body's statements, its docstring left out.
"""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "stages", "networks", "trt_engines", "training", "benchmarks")


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        body = body[1:]
    if not body:
        return 0
    return (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1


def function_sizes(root: Path = ROOT) -> dict[str, int]:
    sizes = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    sizes[f"{path.relative_to(root)}:{node.lineno} {node.name}"] = body_lines(node)
    return sizes


def test_functions_are_small():
    sizes = function_sizes()
    assert len(sizes) > 1000  # the whole tree was read
    assert statistics.median(sizes.values()) <= 8
    assert {name: n for name, n in sizes.items() if n > 50} == {}


def test_the_measure_counts_statements_not_the_docstring():
    tree = ast.parse('def f():\n    """Doc.\n\n    More."""\n    a = 1\n\n    return a\n')
    assert body_lines(tree.body[0]) == 3  # type: ignore[arg-type]
