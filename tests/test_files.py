"""Issue 24 (1, 6): written files get the permissions a plain open() gives under the umask; a no-overwrite
write needs no hard link; a replace held up briefly by a reader (Windows) is retried."""
from __future__ import annotations

import os
import stat

import pytest

from stages.core import contracts
from stages.core.contracts import write_bytes_atomic, write_bytes_new, write_json
from stages.core.settings import SampleSettings
from stages.core.workspace import Workspace, save_settings
from stages.render.live import LiveStatus


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_every_written_file_gets_the_mode_a_plain_open_gives(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"x")
    expected = 0o666 & ~umask
    assert mode(plain) == expected

    write_json(tmp_path / "pairs-quality.v0.json", {"version": "v0"})
    write_bytes_atomic(tmp_path / "report" / "index.html", b"<html>")
    write_bytes_new(tmp_path / "pairs-manifest.filtered.v1.json", b"{}")
    workspace = Workspace(tmp_path / "ws")
    save_settings(workspace, "sample", {"target_coverage": 0.5})
    live = LiveStatus(workspace, SampleSettings())
    written = [tmp_path / "pairs-quality.v0.json", tmp_path / "report" / "index.html",
               tmp_path / "pairs-manifest.filtered.v1.json", workspace.config_path, live.path]
    assert {path.name: mode(path) for path in written} == {path.name: expected for path in written}
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_no_overwrite_write_needs_no_hard_link(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "link")  # exFAT, FAT and many SMB shares refuse hard links
    target = tmp_path / "v1.json"
    write_bytes_new(target, b"first")
    with pytest.raises(FileExistsError):
        write_bytes_new(target, b"second")
    assert target.read_bytes() == b"first"
    assert [path.name for path in tmp_path.iterdir()] == ["v1.json"]


def test_a_replace_refused_while_a_reader_holds_the_file_is_retried(tmp_path, monkeypatch):
    real_replace, refusals = os.replace, []

    def held_twice(source, target):  # what Windows does while another process has the target open
        if len(refusals) < 2:
            refusals.append(target)
            raise PermissionError(13, "The process cannot access the file", str(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", held_twice)
    write_json(tmp_path / "meta.json", {"ok": True})
    assert len(refusals) == 2
    assert contracts.read_json(tmp_path / "meta.json") == {"ok": True}


def test_a_replace_refused_for_good_fails_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def refused(source, target):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(os, "replace", refused)
    monkeypatch.setattr(contracts, "REPLACE_TRIES", 3)
    with pytest.raises(PermissionError):
        write_json(tmp_path / "meta.json", {"ok": True})
    assert list(tmp_path.iterdir()) == []
