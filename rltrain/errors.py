from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the CLI prints str(self) on one line and exits non-zero."""
