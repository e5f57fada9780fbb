"""One run at a time per workspace.

In: the workspace. Out: `hold_workspace` takes `<workspace>/.cq/run.lock` (an OS file lock through the
`filelock` package: flock on Linux and macOS, msvcrt on Windows) for the rest of the process, and writes who
holds it to `run.owner.json` next to it. A second run that finds the lock held refuses with one line naming
the first (pid, start time, command). The OS drops the lock when its process dies, however it dies, so a
lock left by a killed run is simply taken over; the owner file it left is overwritten.
"""
from __future__ import annotations

import os
import sys
import time

from filelock import FileLock, Timeout

from ..core.contracts import read_json, write_json
from ..core.errors import ContractError, CqError, file_error
from ..core.workspace import Workspace

_HELD: dict[str, FileLock] = {}  # workspace root -> the lock this process holds until it exits


def hold_workspace(workspace: Workspace) -> None:
    """Take the workspace's run lock for this process (a no-op once held); CqError if another run has it."""
    key = str(workspace.root)
    if key in _HELD:
        return
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(workspace.state_dir / "run.lock", timeout=0)
    owner_path = workspace.state_dir / "run.owner.json"
    try:
        lock.acquire()
    except Timeout:
        try:
            owner = read_json(owner_path)
            who = (f"pid {owner['pid']}, started {owner['startedAt']}, "
                   f"`{owner['command']}`")
        except (ContractError, KeyError, TypeError):
            who = "a process that is still starting"
        raise CqError(f"workspace {workspace.root} is in use by another run ({who}); wait for it to finish "
                      f"or stop it, then run again") from None
    except OSError as error:  # after Timeout, which is one: e.g. a folder where the lock file belongs
        raise file_error(error, lock.lock_file) from None
    _HELD[key] = lock
    write_json(owner_path, {"pid": os.getpid(), "startedAt": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "command": " ".join(os.path.basename(arg) if i == 0 else arg
                                                for i, arg in enumerate(sys.argv))})
