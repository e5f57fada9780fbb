"""doit up-to-date checks that say in words why a task is stale (`doit info TASK` prints them).

- `KeyUnchanged(key, what)`: true while `key` equals its value at the task's last successful run
  (doit's `config_changed`, named);
- `InputsUnchanged(digest, what)`: true while `digest()`, computed when doit checks the task, equals its
  value at the last successful run. Used instead of `file_dep` on files that are targets of other tasks,
  where a file_dep would make doit run those tasks (train must never start a browser);
- `CodeUnchanged(stage, pages)`: true while the code that produces the task's artifact is what it was at
  the last successful run (the rule, and the tasks it does not apply to: `core.code`);
- `Holds(predicate, what)`: a plain check, `what` saying what is wrong when it is false.

And doit's `info` and `list` commands, told to say the truth about group tasks (`sample`, `merge`, ...).
"""
from __future__ import annotations

import re
from pathlib import Path

import orjson
from doit import cmd_info, cmd_list
from doit.exceptions import InvalidCommand
from doit.tools import config_changed

from ..core.code import code_hash

SHOWN_CHANGES = 6
STATUS_FIELD = re.compile(r"\{status((?:![rsa])?(?::[^{}]*)?)\}")  # `{status}` of a `list --template`


class Key(str):
    """A key (a hash) that remembers what it was computed from, by name (`described`), so that a stale task
    can say which knob or file changed."""

    parts: dict


def described(digest: str, parts: dict) -> Key:
    key = Key(digest)
    key.parts = orjson.loads(orjson.dumps(parts))  # as doit's database gives it back (tuples are lists)
    return key


def _parts(key) -> dict:
    if isinstance(key, Key):
        return key.parts
    if isinstance(key, dict):
        return {name: value for entry, part in key.items()
                for name, value in (_parts(part).items() if isinstance(part, Key) else [(entry, part)])}
    return {}


def _change(name: str, before, after) -> str:
    if isinstance(before, list) or isinstance(after, list):
        return name
    return f"{name} {before!r} -> {after!r}"


class KeyUnchanged(config_changed):
    """True while `key` equals its value at the task's last successful run; when `key` was `described`
    (or is a dict of such keys), says which of its parts changed."""

    def __init__(self, key, what: str):
        super().__init__(key)
        self.what, self.parts, self.changes = what, _parts(key), []

    def configure_task(self, task):
        super().configure_task(task)
        task.value_savers.append(lambda: {"_key_parts": self.parts})

    def __call__(self, task, values) -> bool:
        same = super().__call__(task, values)
        before = values.get("_key_parts") or {}
        self.changes = [] if same else [_change(name, before.get(name), value) for name, value in self.parts.items()
                                        if name in before and before[name] != value]
        self.changes += [] if same else [f"{name} (new)" for name in self.parts if before and name not in before]
        return same

    def __str__(self) -> str:
        if not self.changes:
            return f"{self.what} changed since the last successful run (or it never ran)"
        more = len(self.changes) - SHOWN_CHANGES
        return (f"{self.what} changed: {', '.join(self.changes[:SHOWN_CHANGES])}"
                + (f" and {more} more" if more > 0 else ""))


class InputsUnchanged:
    def __init__(self, digest, what: str, name: str = "_inputs_digest"):
        self.digest, self.what, self.name, self.value = digest, what, name, None

    def configure_task(self, task):
        task.value_savers.append(lambda: {self.name: self.value})

    def __call__(self, task, values) -> bool:
        self.value = self.digest()
        return values.get(self.name) == self.value

    def __str__(self) -> str:
        return f"{self.what} changed since the last successful run (or it never ran)"


class CodeUnchanged(InputsUnchanged):
    # saved under its own name, beside the task's KeyUnchanged and InputsUnchanged
    def __init__(self, stage, pages=()):
        super().__init__(lambda: code_hash([Path(stage.__file__)], pages),
                         f"the code of stage {stage.__name__.rpartition('.')[2]} (or a module it imports)", "_code")


class Holds:
    """True while `predicate()` is (a plain check, named for `doit info`)."""

    def __init__(self, predicate, what: str):
        self.predicate, self.what = predicate, what

    def __call__(self) -> bool:
        return self.predicate()

    def __str__(self) -> str:
        return self.what


class Info(cmd_info.Info):
    """`info TASK` that says why in words: each reason on one line (no `(args=[], kwargs={})`), and for a task
    with sub-tasks (`info sample`) the status of each of them and why the stale ones would run, where
    doit's own only says "the task has no dependencies". Exits 1 when something would run, as doit's."""

    doc_purpose = "show why a task (or each sub-task of `sample`, `merge`, ...) would run"

    def _execute(self, pos_args, hide_status=False):
        if len(pos_args) != 1 or hide_status:
            return super()._execute(pos_args, hide_status)
        tasks = {task.name: task for task in self.task_list}
        if pos_args[0] not in tasks:
            raise InvalidCommand(f"no task {pos_args[0]!r}: `{self.bin_name} list` names them")
        task = tasks[pos_args[0]]
        subtasks = [tasks[name] for name in task.task_dep if tasks[name].subtask_of == task.name]
        if not subtasks:
            return self._show(task, tasks, doc=True)
        self.outstream.write(f"\n{task.name}: {task.doc}\n" if task.doc else f"\n{task.name}\n")
        stale = [sub for sub in subtasks if self._show(sub, tasks, doc=False)]
        self.outstream.write(f"\n{len(stale)} of {len(subtasks)} sub-tasks would run\n")
        return 1 if stale else 0

    def _show(self, task, tasks, doc: bool) -> int:
        status = self.dep_manager.get_status(task, tasks, get_log=True)
        self.outstream.write(f"\n{task.name}: {status.status}\n")
        if doc and task.doc:
            self.outstream.write(f"  {task.doc}\n")
        if status.status == "up-to-date":
            return 0
        self.outstream.write(self.get_reasons(status.reasons).replace(" (args=[], kwargs={})", "") + "\n")
        return 1


class List(cmd_list.List):
    """`list --status` that tells the truth about a group task (`sample`, `merge`, `train`, ...). A task that
    does nothing itself (no actions, no dependencies of its own) is "R" to doit always, as any task without
    dependencies is; here it is "R" when a task it depends on would run (or "E" when one cannot), else "U"."""

    doc_purpose = "list tasks (with --status: R would run, U up to date, a group task by the tasks it groups)"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.statuses: dict[str, str] = {}  # by task name: each computed once (`--all` lists a group and its tasks)

    def _print_task(self, template, task, status, list_deps, tasks):
        if status:  # the letter goes into the template (with any format spec it gives), doit prints the rest
            letter = "I" if self.dep_manager.status_is_ignore(task) else self.STATUS_MAP[self._status(task, tasks)]
            template = STATUS_FIELD.sub(lambda field: f"{{0{field[1]}}}".format(letter), template)
        super()._print_task(template, task, False, list_deps, tasks)

    def _status(self, task, tasks) -> str:
        """doit's status of `task` ("run", "up-to-date" or "error"), a group's from the tasks it depends on."""
        if task.name not in self.statuses:
            if self.dep_manager.status_is_ignore(task):
                found = "up-to-date"  # skipped by doit while ignored
            elif _does_nothing_itself(task):
                grouped = {self._status(tasks[name], tasks) for name in task.task_dep}
                found = next((state for state in ("error", "run") if state in grouped), "up-to-date")
            else:
                found = self.dep_manager.get_status(task, tasks).status
            self.statuses[task.name] = found
        return self.statuses[task.name]


def _does_nothing_itself(task) -> bool:
    return not (task.actions or task.file_dep or task.uptodate or task.targets)
