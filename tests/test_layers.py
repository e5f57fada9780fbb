"""The libraries' floors (stages/__init__.py): core, then presets, then render, then learn; a module imports
only from its own floor or lower ones, at the top or inside a function, and never a stage module. So
`core` (a row's identity among it) is the ground floor: it is handed what it needs from above
(`render.versions.KEY_VERSIONS`), never imports it."""
from __future__ import annotations

import ast

from stages.core.workspace import PACKAGE_DIR

FLOORS = ("core", "presets", "render", "learn")


def imported_modules(source: str, folder: tuple[str, ...]) -> set[str]:
    """Dotted names, relative to the package, of the package's modules that `source`, a module in the
    package's sub-folder `folder` (`("core",)`), imports (`render.pool`)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(folder[:len(folder) - node.level + 1])
            found.add(".".join([*base, *filter(None, [node.module])]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stages."):
            found.add(node.module.removeprefix("stages."))
        elif isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("stages.") for alias in node.names if alias.name.startswith("stages.")}
    return found


def test_a_library_imports_only_its_own_floor_and_lower():
    stage_modules = {path.stem for path in PACKAGE_DIR.glob("*.py")} - {"__init__"}
    upward = []
    for floor, name in enumerate(FLOORS):
        for path in sorted((PACKAGE_DIR / name).rglob("*.py")):
            for module in imported_modules(path.read_text(encoding="utf-8"), path.relative_to(PACKAGE_DIR).parent.parts):
                top = module.split(".")[0]
                if top in stage_modules or (top in FLOORS and FLOORS.index(top) > floor):
                    upward.append(f"{path.relative_to(PACKAGE_DIR)} imports {module}")
    assert upward == []


def test_the_check_sees_every_form_of_import():
    """The check above can fail: a function-local relative import and an absolute one are both found."""
    source = ("from ..core.contracts import value_hash\nfrom .plan import plan_pack\n"
              "def f():\n    from ..render.versions import KEY_VERSIONS\n    import stages.learn.model\n")
    assert imported_modules(source, ("core",)) == {"core.contracts", "core.plan", "render.versions", "learn.model"}
