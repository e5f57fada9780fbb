"""doit's memory of finished tasks, kept current while the run goes on, and SIGTERM taken like Ctrl-C.

doit's sqlite3 backend writes what it learned (which tasks succeeded, with which inputs) only when the
process exits normally, so a killed run forgot every task it had finished and redid them all. Here each
task's record is committed as soon as doit has saved it: `Dependency.save_success` ends with the `deps:`
entry, so that entry is the moment a task's record is whole. (doit is pinned to 0.37.0, whose `SqliteDB`
keeps pending records in `_cache`/`_dirty` on one connection `_conn`; `tests/test_robust.py` kills a
run to prove the records survive.)

A SIGTERM (a service stop, `kill`, a closing terminal session) raises KeyboardInterrupt, so it ends the run
the way Ctrl-C does: the pair in flight is stopped, browsers are closed, and doit writes its state.

doit keys each file dependency by its path, so a workspace moved or copied to another path looked all new
(merge, score and verify ran again for nothing). `follow_moved_workspace` rewrites the paths under the old
root in doit's records to the new root, once, when `.cq/root.json` says the workspace was elsewhere; the
files are then checked by content as before.

`doit_command(argv)` is the doit command a command line runs (`run`, `clean`, `list`, ...), found as
`DoitMain.run` finds it, so the task graph knows when it is loaded whether this process will change the
workspace (and must hold its lock from the start).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys

from doit import Globals
from doit.cmd_base import opt_cwd, opt_dodo, opt_seek_file
from doit.cmdparse import CmdOption, CmdParse, CmdParseError
from doit.dependency import SqliteDB

from ..core.contracts import read_json, write_json
from ..core.errors import ContractError
from ..core.workspace import Workspace

# doit's commands that only read the workspace and doit's state
READ_ONLY_COMMANDS = frozenset({"list", "info", "help", "dumpdb", "tabcompletion"})
DOIT_COMMANDS = READ_ONLY_COMMANDS | {"run", "clean", "forget", "ignore", "reset-dep", "strace"}

_INSTALLED: set[int] = set()


def keep_doit_state_current() -> None:
    """Commit each task's record when doit saves it (call from inside a running doit; idempotent)."""
    manager = Globals.dep_manager
    if manager is None or id(manager) in _INSTALLED or not isinstance(manager.backend, SqliteDB):
        return
    backend, save, dump = manager.backend, manager._set, manager.backend.dump

    def save_and_commit(task_id, dependency, value):
        save(task_id, dependency, value)
        if dependency == "deps:":  # the last entry save_success writes: the task's record is whole
            try:
                backend._conn.execute("insert or replace into doit values (?,?)",
                                      (task_id, backend.codec.encode(backend._cache[task_id])))
                backend._conn.commit()
            except sqlite3.Error:  # a full disk: the record stays pending, and the save at exit says so
                backend._conn.rollback()
                return
            backend._dirty.discard(task_id)

    def dump_or_say_why():
        try:
            dump()
        except sqlite3.Error as error:
            print(f"error: {backend.name}: doit could not record the tasks this run finished ({error}); free "
                  "some space: every row written is kept, and the next run checks those tasks again",
                  file=sys.stderr, flush=True)

    manager._set = save_and_commit
    backend.dump = dump_or_say_why
    _INSTALLED.add(id(manager))


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def sigterm_like_ctrl_c() -> None:
    signal.signal(signal.SIGTERM, _terminate)


def doit_command(argv: list[str]) -> str:
    """The doit command `argv` (doit's arguments) runs: as `DoitMain.run` reads it, the loader's options
    (`-f dodo.py`) and `name=value` variables are skipped, and a first word that is no command means `run`."""
    try:
        _, args = CmdParse([CmdOption(opt) for opt in (opt_dodo, opt_cwd, opt_seek_file)]).parse_only(argv)
    except CmdParseError:
        args = argv
    args = [arg for arg in args if arg.startswith("-") or "=" not in arg]
    return args[0] if args and args[0] in DOIT_COMMANDS else "run"


def follow_moved_workspace(workspace: Workspace) -> None:
    """Point doit's records at the workspace's current root when it was moved or copied (call before doit
    opens its database, holding the run lock)."""
    record, root = workspace.root_record_path, str(workspace.root)
    try:
        before = read_json(record).get("root") if record.is_file() else None
    except (ContractError, AttributeError):
        before = None  # an unreadable record: the paths stay as they are, and the tasks say so
    if before == root:
        return
    if before and workspace.doit_db.is_file():
        # paths as doit's JSON codec writes them (escaped the same way), ending in a separator so that
        # /a/ws never matches /a/ws2
        old, new = (json.dumps(path + os.sep)[1:-1] for path in (before, root))
        with contextlib.closing(sqlite3.connect(workspace.doit_db)) as db, db:
            if db.execute("select 1 from sqlite_master where type = 'table' and name = 'doit'").fetchone():
                rows = db.execute("select task_id, task_data from doit").fetchall()
                db.executemany("update doit set task_data = ? where task_id = ?",
                               [(data.replace(old, new), task) for task, data in rows if old in data])
    write_json(record, {"root": root})


def doit_variables(argv: list[str]) -> list[str]:
    """The arguments doit takes as `NAME=VALUE` variables (any one with `=` that does not start with `-`),
    as `DoitMain.process_args` does: a rule like `quality01 >= 0.6` given as `--rule "quality01 >= 0.6"`."""
    return [arg for arg in argv if not arg.startswith("-") and "=" in arg]
