"""Errors the command line reports as one clear line (no traceback)."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: the message says what and how."""
