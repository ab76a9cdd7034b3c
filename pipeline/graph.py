"""Graph validation, before the first frame.

Every stage declares the result types it needs and produces (see
`pipeline.stage.Stage`). A chain is valid when stage names are unique, every
component implements its interface, and each stage's needs are produced by a
stage before it. A mis-wired graph is rejected with one message listing every
problem, so a user fixes them all at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.stage import Source, Stage


class GraphError(ValueError):
    """The graph cannot run as wired."""


def validate_chain(source: Source, stages: Sequence[Stage]) -> None:
    problems: list[str] = []
    if not isinstance(source, Source):
        problems.append(f"source {source!r} does not implement open/read/close")
    if not stages:
        problems.append("the graph has no stages: at least a sink is needed")
    problems.extend(_interface_problems(stages))
    problems.extend(_name_problems(stages))
    problems.extend(_dependency_problems(stages))
    if problems:
        raise GraphError("invalid stage graph:\n  - " + "\n  - ".join(problems))


def _interface_problems(stages: Sequence[Stage]) -> list[str]:
    return [
        f"{stage!r} is not a stage (needs name, needs, produces, blocking, start/process/stop)"
        for stage in stages
        if not isinstance(stage, Stage)
    ]


def _name_problems(stages: Sequence[Stage]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for stage in stages:
        name = getattr(stage, "name", None)
        if name in seen:
            problems.append(f"two stages are named {name!r}; names must be unique")
        if isinstance(name, str):
            seen.add(name)
    return problems


def _dependency_problems(stages: Sequence[Stage]) -> list[str]:
    available: dict[type, str] = {}
    problems = []
    for stage in stages:
        for need in sorted(getattr(stage, "needs", ()), key=lambda t: t.__name__):
            if need not in available:
                problems.append(
                    f"stage {stage.name!r} needs {need.__name__}, "
                    "but no stage before it produces one"
                )
        for made in getattr(stage, "produces", ()):
            available.setdefault(made, stage.name)
    return problems
