"""The browser pages' npm dependencies (butterchurn, butterchurn-presets), pinned by web/package-lock.json.

In: `web/package.json` + `web/package-lock.json`. Out: `node_modules` in `WEB_DEPS_DIR`, installed with
`npm ci`: `web/node_modules` in a checkout; in an installed tool the two files are copied to the user's
cache directory and installed there on first use. `installed()` compares the lock file with the one npm
leaves in node_modules, so a fresh doit state (a new workspace) does not reinstall what is already there.
"""
from __future__ import annotations

import shutil
import subprocess

from .core.contracts import read_json
from .core.errors import ContractError, CqError
from .core.workspace import NODE_MODULES_DIR, WEB_DEPS_DIR, WEB_DIR

PACKAGE_FILES = ("package.json", "package-lock.json")
LOCK = WEB_DIR / "package-lock.json"
INSTALLED_LOCK = NODE_MODULES_DIR / ".package-lock.json"


def installed() -> bool:
    """True when every package of the lock file is in node_modules at its locked version."""
    try:
        wanted = read_json(LOCK)["packages"]
        present = read_json(INSTALLED_LOCK)["packages"]
    except (ContractError, KeyError, TypeError):
        return False
    return all(present.get(name, {}).get("version") == entry.get("version")
               for name, entry in wanted.items() if name)


def run() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise CqError("npm not found: install Node.js 20 or newer (it brings npm), then run again")
    if WEB_DEPS_DIR != WEB_DIR:
        try:
            WEB_DEPS_DIR.mkdir(parents=True, exist_ok=True)
            for name in PACKAGE_FILES:
                shutil.copyfile(WEB_DIR / name, WEB_DEPS_DIR / name)
        except OSError as error:
            raise CqError(f"cannot prepare {WEB_DEPS_DIR} for the browser pages' npm packages: {error}") from None
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WEB_DEPS_DIR,
                            capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CqError(f"npm ci in {WEB_DEPS_DIR} failed: {tail[0]} (check the network or the npm registry)")
