"""Code is an input: the one rule for when a change of this package's code rebuilds an artifact.

**The rule.** A task's artifact is stale when the code that produces it changed. That code is the task's
stage module and every module of this package it imports, directly or through other modules, at the top
or inside a function (found by reading their `from .x import y` lines, so a new helper module counts
without a list to keep), plus the browser pages the task serves and the templates it fills. It is compared by source text,
hashed (`code_hash`): a comment counts too. That is the simple honest rule: the build cannot tell a comment from
a changed rule, a rebuild nobody needed costs at most a retrain and a verify run, and a changed rule
without a rebuild is stale scores kept silently. The unit is the module: `demopack` imports the render
pool for its `demo-bases` tool, so a pool edit rebuilds the demo pack (to the same bytes). The check is
`core.uptodate.CodeUnchanged`, one per task in `graph.py` (`doit info TASK` says when it is the reason).

So editing `learn/scoring.py` or `learn/gates.py` rescores (score imports them), rebuilds the reports, and
re-verifies when the scores changed (verify reads them by content); training does not import them and is
never redone, nor is anything sampled. Editing `report.py` rebuilds only the reports; `learn/training.py`
retrains, and rescores when the checkpoint changed; a module every stage imports (`core/contracts.py`)
reruns every task the rule applies to. `tests/test_code_inputs.py` shows it with real doit.

Where a task is not checked by its code, and why:

- `sample` and `fingerprint`: a row (a pair's, or a preset's alone) is a pure function of its content key
  (`core.keys`), and throwing rows away costs a night of rendering, so the code that decides pixels and
  statistics enters the key as versions that change only with what is measured: the engine (butterchurn's
  version and the sampling page's files, hashed: the page draws the pixels, so any edit of it renders
  again), `render.framestats.STATS_VERSION`, `presets.hlsl.TRANSLATOR_VERSION` and
  `presets.conversion.CONVERTER_VERSION` (collected in `render.versions` and handed to `core.keys`, which
  imports none of that code). Bump the constant with a change that alters what a row
  measures; a comment or a refactor of the sampler's Python keeps every row. The same versions key the
  `.milk` conversion cache, so `convert`, rerun by its code, translates again only when one changed.
- `web_deps`: its product is shared by every workspace and named by the npm lock; it is checked against
  what is installed, not against a workspace's record.
- `filter` and `discover`: run exactly when asked and write a new version each time; no version is ever
  rewritten.

A checkpoint records the hash of the feature and model code (`learn.inputs.CODE_VERSION`), so scoring
refuses a checkpoint made by other feature code even outside doit.
"""
from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

from ..core.workspace import PACKAGE_DIR

# A relative import: its dots, the module after them, and the imported names (parenthesised over lines or
# not). Matching lines rather than parsing: a no-op `doit` reads the code of every task, and parsing the
# package's syntax trees would cost it a noticeable share of its time.
RELATIVE_IMPORT = re.compile(r"^[ \t]*from[ \t]+(\.+)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.M)


def _module_file(folder: Path, dotted: str) -> Path | None:
    """The file of module `dotted` under `folder` (a package's `__init__.py` for a package), if it exists."""
    path = folder.joinpath(*dotted.split("."))
    candidates = [path.with_suffix(".py"), path / "__init__.py"] if dotted else [path / "__init__.py"]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


@functools.cache
def _imported_files(module: Path) -> frozenset[Path]:
    """The package's files that `module` imports by relative imports (each `x` of `from .m import x` that is
    a module itself, else `m`)."""
    found = set()
    for dots, dotted, names in RELATIVE_IMPORT.findall(module.read_text(encoding="utf-8")):
        folder = module.parent.parents[len(dots) - 2] if len(dots) > 1 else module.parent
        base = _module_file(folder, dotted)
        for name in re.sub(r"#[^\n]*", "", names).strip("()").split(","):
            name = name.split(" as ")[0].strip()
            submodule = _module_file(folder, f"{dotted}.{name}" if dotted else name) if name else None
            if submodule or base:
                found.add(submodule or base)
    return frozenset(found)


def code_files(*modules: Path) -> list[Path]:
    """`modules` and every module of the package they import, directly or not, sorted."""
    seen: set[Path] = set()
    pending = [Path(module).resolve() for module in modules]
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending.extend(_imported_files(module))
    return sorted(seen)


def code_hash(modules, pages=()) -> str:
    """The hash of the source text of `modules` and all they import (`code_files`) and of the page files,
    named relative to the package (pages by file name), so a checkout and an install of the same code
    agree."""
    digest = hashlib.sha256()
    for path in code_files(*modules):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for page in sorted(Path(page) for page in pages):
        digest.update(page.name.encode() + b"\0" + page.read_bytes() + b"\0")
    return digest.hexdigest()
