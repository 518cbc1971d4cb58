from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the CLI prints str(self) on one line and exits non-zero."""


class NonFiniteError(UserError):
    """A loss, gradient or value estimate became NaN/inf: training stops with one line."""
