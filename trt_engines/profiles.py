"""Optimisation-profile shapes and persistent-buffer sizing (pure; no TensorRT).

A TensorRT engine with a dynamic batch is built with one optimisation profile
giving every dynamic input a (min, opt, max) shape. At run time the wrapper
owns one buffer per I/O tensor allocated once at the profile's largest shape
and hands TensorRT a view of its first ``numel(shape)`` elements; a view that
starts at the buffer's base keeps the allocation's alignment (TensorRT needs
256-byte aligned pointers; fresh CUDA allocations are).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from trt_engines.engine import TensorSpec

Shape = tuple[int, ...]


@dataclass(frozen=True)
class BatchRange:
    """Batch sizes an engine must accept: ``min <= opt <= max``; TensorRT tunes for ``opt``."""

    min: int = 1
    opt: int = 1
    max: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(
                f"batch range needs 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}"
            )


@dataclass(frozen=True)
class ShapeRange:
    """One input's (min, opt, max) shapes in an optimisation profile."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        ranks = {len(self.min), len(self.opt), len(self.max)}
        ordered = all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max, strict=False))
        if len(ranks) != 1 or not ordered:
            raise ValueError(f"invalid shape range min={self.min} opt={self.opt} max={self.max}")

    def contains(self, shape: Sequence[int]) -> bool:
        if len(shape) != len(self.min):
            return False
        return all(lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max, strict=True))

    def as_lists(self) -> list[list[int]]:
        return [list(self.min), list(self.opt), list(self.max)]


Profile = Mapping[str, ShapeRange]
"""Input name -> shape range, for every input with a dynamic dim."""


def profile_for(specs: Sequence[TensorSpec], batch: BatchRange) -> dict[str, ShapeRange]:
    """The profile for inputs whose only dynamic dim is the batch (dim 0).

    Inputs without dynamic dims need no profile entry and get none; any other
    dynamic dim raises, since we cannot guess its range.
    """
    profile = {}
    for spec in specs:
        if all(d is not None for d in spec.shape):
            continue
        if spec.shape[0] is not None:
            raise ValueError(f"{spec.describe()}: only a dynamic batch (dim 0) is supported")
        profile[spec.name] = ShapeRange(
            spec.concrete(batch.min), spec.concrete(batch.opt), spec.concrete(batch.max)
        )
    return profile


def profile_key(profile: Profile) -> dict[str, list[list[int]]]:
    """A JSON-ready, name-sorted form of ``profile`` (part of the engine cache key)."""
    return {name: profile[name].as_lists() for name in sorted(profile)}


def largest_shapes(specs: Sequence[TensorSpec], profile: Profile) -> dict[str, Shape]:
    """Per input, the shape to size its buffer with: the profile max, or the static shape."""
    shapes = {}
    for spec in specs:
        if spec.name in profile:
            shapes[spec.name] = profile[spec.name].max
        elif all(d is not None for d in spec.shape):
            shapes[spec.name] = tuple(int(d) for d in spec.shape if d is not None)
        else:
            raise ValueError(f"{spec.describe()} is dynamic but has no profile entry")
    return shapes


def check_in_profile(name: str, shape: Sequence[int], rng: ShapeRange) -> None:
    """Raise `ValueError` when ``shape`` is outside the engine's profile."""
    if not rng.contains(shape):
        raise ValueError(
            f"input {name!r} has shape {tuple(shape)}, outside the engine's profile "
            f"(min {rng.min}, max {rng.max}); rebuild the engine with a wider batch range"
        )


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def buffer_bytes(shape: Sequence[int], dtype: torch.dtype) -> int:
    """Bytes a buffer of ``shape`` and ``dtype`` needs."""
    return numel(shape) * torch.empty((), dtype=dtype).element_size()


def buffer_view(buffer: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A ``shape`` view over the first elements of a contiguous ``buffer``.

    Valid for any dynamic dim (not only the batch); the view shares the
    buffer's base pointer.
    """
    count = numel(shape)
    if not buffer.is_contiguous() or count > buffer.numel():
        raise ValueError(
            f"buffer of {buffer.numel()} elements cannot hold shape {tuple(shape)} ({count})"
        )
    return buffer.view(-1)[:count].view(tuple(shape))
