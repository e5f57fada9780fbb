"""doit up-to-date checks that say in words why a task is stale (`doit info TASK` prints them).

- `KeyUnchanged(key, what)`: true while `key` equals its value at the task's last successful run
  (doit's `config_changed`, named);
- `InputsUnchanged(digest, what)`: true while `digest()`, computed when doit checks the task, equals its
  value at the last successful run. Used instead of `file_dep` on files that are targets of other tasks,
  where a file_dep would make doit run those tasks (train must never start a browser);
- `CodeUnchanged(stage, pages)`: true while the code that produces the task's artifact is what it was at
  the last successful run (the rule, and the tasks it does not apply to: `core.code`);
- `Holds(predicate, what)`: a plain check, `what` saying what is wrong when it is false.
"""
from __future__ import annotations

from pathlib import Path

from doit.tools import config_changed

from ..core.code import code_hash


class KeyUnchanged(config_changed):
    def __init__(self, key: str, what: str):
        super().__init__(key)
        self.what = what

    def __str__(self) -> str:
        return f"{self.what} changed since the last successful run (or it never ran)"


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
