"""The browser pages' npm dependencies (butterchurn, butterchurn-presets), pinned by web/package-lock.json.

In: `web/package-lock.json`. Out: `node_modules` in `WEB_DEPS_DIR` (`web/node_modules` in a checkout; the
user's cache directory for an installed tool), fetched without Node or npm: for each package of the lock,
the tarball at its `resolved` URL is downloaded, checked against its `integrity` hash (sha512) and unpacked
where npm would put it. The tree is built beside the old one and swapped in whole, so a failed download
leaves the previous tree as it was. `installed()` compares the lock with the record written last
(`node_modules/.package-lock.json`, also npm's own), so a new workspace does not fetch what is there.
"""
from __future__ import annotations

import base64
import hashlib
import io
import secrets
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from .core.contracts import dumps, read_json, write_bytes_atomic
from .core.errors import ContractError, CqError
from .core.workspace import NODE_MODULES_DIR, WEB_DIR

LOCK = WEB_DIR / "package-lock.json"
INSTALLED_LOCK = NODE_MODULES_DIR / ".package-lock.json"
DOWNLOAD_TIMEOUT_S = 60


def installed(lock: Path = LOCK, modules_dir: Path = NODE_MODULES_DIR) -> bool:
    """True when every package of the lock file is in node_modules at its locked version."""
    try:
        wanted = read_json(lock)["packages"]
        present = read_json(modules_dir / INSTALLED_LOCK.name)["packages"]
    except (ContractError, KeyError, TypeError):
        return False
    return all(present.get(name, {}).get("version") == entry.get("version")
               for name, entry in wanted.items() if name)


def run(lock: Path = LOCK, modules_dir: Path = NODE_MODULES_DIR) -> None:
    """Fetch, verify and unpack every package of `lock` into `modules_dir` (a `node_modules` folder)."""
    packages = {name: entry for name, entry in read_json(lock)["packages"].items() if name}
    try:
        modules_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = modules_dir.with_name(f".{modules_dir.name}.new-{secrets.token_hex(4)}")
        try:
            for name, entry in packages.items():
                _unpack(_download(name, entry, lock), staging.joinpath(*PurePosixPath(name).parts[1:]), name)
            write_bytes_atomic(staging / INSTALLED_LOCK.name, dumps({"lockfileVersion": 3, "packages": packages},
                                                                     pretty=True))
            retired = modules_dir.with_name(f".{modules_dir.name}.old-{secrets.token_hex(4)}")
            if modules_dir.exists():
                modules_dir.rename(retired)
            staging.rename(modules_dir)
            shutil.rmtree(retired, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as error:
        raise CqError(f"cannot write the browser pages' npm packages to {modules_dir.parent}: {error}") from None


def _download(name: str, entry: dict, lock: Path) -> bytes:
    """The package's tarball from its `resolved` URL, checked against its sha512 `integrity`."""
    url, integrity = entry.get("resolved", ""), entry.get("integrity", "")
    expected = [part[len("sha512-"):] for part in integrity.split() if part.startswith("sha512-")]
    if not url.startswith(("https://", "http://")) or not expected:
        raise ContractError(lock, f"{name} has no registry URL ('resolved') or no sha512 'integrity'",
                            "regenerate the lock with npm install --package-lock-only")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CqError(f"cannot download {name} from {url}: {reason} (check the network or the npm registry)") from None
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest not in expected:
        raise CqError(f"{url} does not match the sha512 integrity of {name} in {lock.name}: refused "
                      f"(a corrupted download or a changed package; run again, or check the registry)")
    return data


def _unpack(tarball: bytes, target: Path, name: str) -> None:
    """Unpack an npm tarball (one top folder, usually `package/`) into `target`: regular files and folders
    only, nothing outside `target` (links and absolute or `..` paths are left out, as npm does)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for member in archive:
                parts = PurePosixPath(member.name).parts[1:]
                if not parts or member.name.startswith("/") or ".." in parts:
                    continue
                path = target.joinpath(*parts)
                if member.isdir():
                    path.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(archive.extractfile(member).read())
    except tarfile.TarError as error:
        raise CqError(f"the tarball of {name} cannot be unpacked ({error}); run again") from None
