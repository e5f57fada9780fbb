"""Issue 24 (4): the pages' npm packages come from the registry without Node: the lock's resolved URL and
sha512 integrity are all that is needed. Real downloads from the npm registry, and a local server for
the tarballs no registry would serve."""
from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from stages import webdeps
from stages.core.contracts import read_json
from stages.core.errors import ContractError, CqError


def lock_copy(tmp_path: Path, edit=None) -> Path:
    lock = read_json(webdeps.LOCK)
    if edit:
        edit(lock["packages"])
    path = tmp_path / "package-lock.json"
    path.write_text(json.dumps(lock))
    return path


def test_the_locked_packages_are_fetched_verified_and_unpacked_without_node(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-node-here"))
    modules = tmp_path / "cache" / "node_modules"
    assert not webdeps.installed(modules_dir=modules)
    webdeps.run(modules_dir=modules)
    assert webdeps.installed(modules_dir=modules)
    for name, entry in read_json(webdeps.LOCK)["packages"].items():
        if name:
            assert read_json(modules.parent / name / "package.json")["version"] == entry["version"], name
    assert (modules / "butterchurn" / "dist" / "butterchurn.js").stat().st_size > 100_000
    assert len(list((modules / "butterchurn-presets" / "presets" / "converted").glob("*.json"))) > 100
    assert sorted(path.name for path in modules.parent.iterdir()) == ["node_modules"]  # no staging left


def test_a_tarball_that_does_not_match_its_integrity_is_refused_and_the_old_tree_kept(tmp_path):
    def swap(packages):  # butterchurn's tarball, checked against another package's hash
        packages["node_modules/butterchurn"]["integrity"] = packages["node_modules/eel-wasm"]["integrity"]

    modules = tmp_path / "node_modules"
    (modules / "butterchurn").mkdir(parents=True)
    (modules / "butterchurn" / "kept.txt").write_text("the previous tree")
    with pytest.raises(CqError, match="does not match the sha512 integrity of node_modules/butterchurn"):
        webdeps.run(lock_copy(tmp_path, swap), modules)
    assert (modules / "butterchurn" / "kept.txt").read_text() == "the previous tree"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["node_modules", "package-lock.json"]


def test_an_unreachable_registry_is_one_line_and_an_entry_without_url_names_the_lock(tmp_path):
    def unreachable(packages):
        packages["node_modules/butterchurn"]["resolved"] = "http://127.0.0.1:9/butterchurn-3.0.0-beta.5.tgz"

    with pytest.raises(CqError, match=r"cannot download node_modules/butterchurn from http://127\.0\.0\.1:9/.*"
                                      r"\(check the network or the npm registry\)"):
        webdeps.run(lock_copy(tmp_path, unreachable), tmp_path / "node_modules")

    def no_url(packages):
        del packages["node_modules/butterchurn"]["resolved"]

    with pytest.raises(ContractError, match="node_modules/butterchurn has no registry URL"):
        webdeps.run(lock_copy(tmp_path, no_url), tmp_path / "node_modules")


def test_links_and_paths_outside_the_package_are_not_unpacked(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("package/index.js", b"ok"), ("package/../../escaped.js", b"no"),
                           ("/abs/evil.js", b"no")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("package/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    served = tmp_path / "served"
    served.mkdir()
    (served / "odd-1.0.0.tgz").write_bytes(buffer.getvalue())
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(buffer.getvalue()).digest()).decode()
        lock = tmp_path / "lock" / "package-lock.json"
        lock.parent.mkdir()
        lock.write_text(json.dumps({"packages": {"": {}, "node_modules/odd": {
            "version": "1.0.0", "resolved": f"http://127.0.0.1:{server.server_address[1]}/odd-1.0.0.tgz",
            "integrity": integrity}}}))
        modules = tmp_path / "out" / "node_modules"
        webdeps.run(lock, modules)
        server.shutdown()
    assert sorted(str(path.relative_to(tmp_path / "out")) for path in (tmp_path / "out").rglob("*")) == [
        "node_modules", "node_modules/.package-lock.json", "node_modules/odd", "node_modules/odd/index.js"]
