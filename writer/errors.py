"""Refusals a person can cause, as one family.

Every error that a person's input, a setting or the state of their data can cause is a
`UserError`: it carries a locale key (`key`, looked up in locales/*.toml under
`user_errors.`) and the values the message needs, plus the English one-line message
the CLI prints. Pages catch `UserError` in one place (views/common.py `guarded`) and
the CLI in one place (writer/cli/main.py `main`): nothing a person does shows a
traceback.

`exit_code` is what the CLI returns: 2 for a refused input, 1 for a failure of the
environment (a database that cannot be written).
"""
from __future__ import annotations


class UserError(Exception):
    """A refusal a person can cause; `str(exc)` is the English one-line message."""

    key: str = "user_errors.generic"  # the locale key of the message
    exit_code: int = 2

    def __init__(self, message: str = "", *, key: str | None = None, **values):
        super().__init__(message)
        if key:
            self.key = key
        self.values = values
