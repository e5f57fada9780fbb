"""User-facing errors.

Every problem a user can fix (bad input, a missing browser, a failed gate) is raised as a `CqError`
whose message says what is wrong, where, and what to do. `report_errors` turns one into a single line under
doit's `TaskFailed` instead of a traceback.
"""
from __future__ import annotations

import functools

from doit.exceptions import TaskFailed


class CqError(Exception):
    """An error the user can act on; its message is shown as one line, without a traceback."""


class ContractError(CqError):
    """A file does not follow its contract (manifest, eval row, meta, quality file, checkpoint...)."""

    def __init__(self, where, problem: str, advice: str = ""):
        self.where = str(where)
        self.problem = problem
        self.advice = advice
        text = f"{self.where}: {problem}"
        if advice:
            text += f" ({advice})"
        super().__init__(text)


def report_errors(action):
    """Wrap a doit python-action: a CqError fails the task with its one-line message, no traceback."""

    @functools.wraps(action)
    def wrapped(*args, **kwargs):
        try:
            result = action(*args, **kwargs)
        except CqError as error:
            return TaskFailed(f"error: {error}")
        # doit accepts only these from an action; a stage's other return values are for its callers
        return result if isinstance(result, (bool, str, dict)) else None

    return wrapped
