"""User-facing errors.

Every problem a user can fix (bad input, a missing browser, a failed gate) is raised as a `CqError`
whose message says what is wrong, where, and what to do. `report_errors` turns one into a single line under
doit's `TaskFailed` instead of a traceback.
"""
from __future__ import annotations

import errno
import functools
import sys

from doit.exceptions import InvalidDodoFile, TaskFailed


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


class GraphLoadError(CqError, InvalidDodoFile):
    """A CqError found while the task graph loads: doit prints it as one line (`ERROR: ...`), and so does
    the installed command, which imports the graph before doit runs."""


# errno -> what the user does about it: problems of the disk, not of the program
DISK_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space and run again",
    errno.EDQUOT: "the disk quota is used up; free some space and run again",
    errno.EROFS: "the file system is read-only; point CQ_WORKSPACE at a writable folder",
    errno.EACCES: "permission denied; make the workspace writable or point CQ_WORKSPACE elsewhere",
    errno.EPERM: "permission denied; make the workspace writable or point CQ_WORKSPACE elsewhere",
}
# errno -> what the user does about a path that is not what the tool expects there
PATH_ADVICE = {
    errno.EISDIR: "a folder is where this file belongs; move the folder away and run again",
    errno.ENOTDIR: "a file is where a folder belongs; move the file away and run again",
    errno.ENAMETOOLONG: "the name is too long for the file system; use a shorter one",
}
_BEFORE_EACH_ACTION: list = []


def disk_error(error: OSError) -> CqError | None:
    """The one-line CqError for an OSError the user fixes on the disk (full, read-only, no permission)."""
    advice = DISK_ADVICE.get(error.errno)
    if advice is None:
        return None
    return CqError(f"{error.filename or 'the workspace'}: {advice} (every row written so far is kept)")


def file_error(error: OSError, path=None) -> CqError:
    """The one-line CqError for any OSError about a file: what is wrong with which file, and what to do."""
    advice = DISK_ADVICE.get(error.errno) or PATH_ADVICE.get(error.errno) or error.strerror or str(error)
    return CqError(f"{error.filename or path or 'the workspace'}: {advice}")


def before_each_action(hook) -> None:
    """Run `hook()` before every wrapped action of this process (the run lock, doit's state keeper)."""
    _BEFORE_EACH_ACTION.append(hook)


def one_line_interrupt(kind, value, traceback) -> None:
    """sys.excepthook: a Ctrl-C (or SIGTERM) that ends the run is one line, not a traceback."""
    if issubclass(kind, KeyboardInterrupt):
        print("error: interrupted; every row written so far is kept and finished tasks are remembered: "
              "run the same command again to resume", file=sys.stderr, flush=True)
        return
    sys.__excepthook__(kind, value, traceback)


def report_errors(action):
    """Wrap a doit python-action: a CqError (or an OSError: a full or read-only disk, a folder where a file
    belongs) fails the task with one line."""

    @functools.wraps(action)
    def wrapped(*args, **kwargs):
        try:
            for hook in _BEFORE_EACH_ACTION:
                hook()
            result = action(*args, **kwargs)
        except CqError as error:
            return TaskFailed(f"error: {error}")
        except OSError as error:
            return TaskFailed(f"error: {disk_error(error) or file_error(error)}")
        # doit accepts only these from an action; a stage's other return values are for its callers
        return result if isinstance(result, (bool, str, dict)) else None

    return wrapped
