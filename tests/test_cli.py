"""Issue 24 (2): the command speaks as itself: its version and help, messages that name the command the user
ran (`python -m stages.cli` here, `doit`, or the installed `coupled-quality`: tests/test_install.py), and a
log redirected to a file in the order things happened. Real doit, no browser."""
from __future__ import annotations

import os
import subprocess
import sys

from packs import make_pack

from stages.core.workspace import CHECKOUT, Workspace


def cli(workspace: Workspace, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=CHECKOUT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CQ_WORKSPACE": str(workspace.root), **(env or {})})


def test_version_and_help_are_the_tools_own(workspace):
    version = cli(workspace, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("coupled-quality ") and "(doit 0.37.0, Python " in version.stdout

    for asked in (["help"], ["--help"]):
        shown = cli(workspace, *asked)
        assert shown.returncode == 0, shown.stderr
        for tool in ("serve", "watch", "screen", "manifest", "filter", "install-chromium"):
            assert f"\n    {tool}" in shown.stdout, (asked, tool)
        assert "info TASK" in shown.stdout and "dumpdb" not in shown.stdout and "strace" not in shown.stdout
        assert "tasks: web_deps, demo_pack, convert, sample," in shown.stdout

    tool = cli(workspace, "help", "serve")
    assert tool.returncode == 0 and "--port PORT" in tool.stdout
    knobs = cli(workspace, "help", "sample")  # a task's help is doit's: every knob with its default
    assert knobs.returncode == 0 and "--target-coverage" in knobs.stdout


def test_messages_name_the_command_the_user_ran(workspace, doit, no_browser):
    make_pack(workspace, "tiny", 6, rows="eval")
    through_cli = cli(workspace, "-s", "report", env=no_browser)
    assert through_cli.returncode == 0, through_cli.stdout + through_cli.stderr
    html = workspace.report_index_path("tiny").read_text()
    assert "<code>python -m stages.cli serve</code>" in html and "<code>python -m stages.cli score</code>" in html
    assert "doit " not in html.replace("doit's", "")

    workspace.report_index_path("tiny").unlink()
    doit(workspace, "-s", "report", env=no_browser)
    html = workspace.report_index_path("tiny").read_text()
    assert "<code>doit score</code>" in html and "<code>python -m stages.cli serve</code>" in html

    missing = cli(workspace, "info", "no-such-task")
    assert "`python -m stages.cli list` names them" in missing.stderr


def test_a_log_redirected_to_a_file_reads_in_the_order_things_happened(workspace, tmp_path, no_browser):
    make_pack(workspace, "tiny", 6, rows="eval")
    log = tmp_path / "night.log"
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    for command in (["-m", "stages.cli"], ["-m", "doit", "-f", str(CHECKOUT / "dodo.py")]):
        workspace.report_index_path("tiny").unlink(missing_ok=True)
        with log.open("w") as handle:  # doit prints the task's name on stdout, the report its path on stderr
            subprocess.run([sys.executable, *command, "-s", "report"], cwd=CHECKOUT, stdout=handle,
                           stderr=subprocess.STDOUT, timeout=300,
                           env={**environment, **no_browser, "CQ_WORKSPACE": str(workspace.root)})
        lines = log.read_text().splitlines()
        assert lines[:2] == [".  report:tiny", f"report tiny: {workspace.report_index_path('tiny')}"], command
