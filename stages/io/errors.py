"""Errors raised by sources and sinks, with messages that say what to do."""

from __future__ import annotations


class SourceError(RuntimeError):
    """A source cannot be opened or read: missing file, not a video, no video stream."""


class SinkError(RuntimeError):
    """A sink cannot write or finalise its output."""
