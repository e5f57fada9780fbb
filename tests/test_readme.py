"""The README's commands run as written: every command of its Commands table and of its quick start, against
a fresh workspace, with real doit and real headless Chromium. A command added to or changed in the README
fails `test_every_readme_command_is_run_or_named_here` until it is run here (or named below, with why)."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request

from packs import make_pack

from stages.core.contracts import read_json
from stages.core.workspace import CHECKOUT, Workspace

README = CHECKOUT / "README.md"
# Set up the machine or install the tool: `tests/test_install.py` builds the wheel and runs the installed
# command; `install-chromium` downloads a browser where none is found.
NOT_RUN_HERE = {"./quickstart.sh", "./quickstart.sh test", "pip wheel --no-deps -w dist .",
                "python -m venv ~/cq && ~/cq/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu",
                "~/cq/bin/pip install dist/coupled_quality-*.whl", "mkdir my-night && cd my-night",
                "coupled-quality install-chromium"}
# In an order where each one's inputs exist; `TASK` is the README's placeholder.
RUN_IN_ORDER = [
    "doit",
    "coupled-quality",
    "doit train",
    "doit train --epochs 40 --neg-samples 20000",
    "doit verify",
    "doit -s report",
    "doit list --status",
    "doit info TASK",
    "doit help sample",
    "coupled-quality help sample",
    'doit filter --rule="quality01 >= 0.6 and luma >= 0.1" --top 200 --current',
    "python -m stages.cli watch",
    "doit fingerprint",
    "doit sample --packs a,b --target-coverage 0.99 --max-hours 10 --workers 4",
    "doit discover --folder LIBRARY --top 100 --max-per-preset 3",
    "doit clean",
]
# A user's workspace settings that keep the night short (the commands themselves are run as written).
QUICK = """[sample]
target_coverage = 0.1
frames = 16
width = 64
height = 64
workers = 2

[train]
epochs = 4
neg_samples = 2000
folds = 2

[verify]
seconds = 2.0
width = 240
height = 160
"""


def section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def readme_commands() -> list[str]:
    """The commands of the README's Commands table (first column) and its quick start's code blocks."""
    text = README.read_text(encoding="utf-8")
    commands = [command for line in section(text, "## Commands").splitlines() if line.startswith("| `")
                for command in re.findall(r"`([^`]+)`", line.split(" | ")[0])]
    for block in re.findall(r"```bash\n(.*?)```", section(text, "## Quick start"), re.S):
        commands += [line for line in (re.split(r"\s+#", raw)[0].strip() for raw in block.splitlines()) if line]
    return commands


def test_every_readme_command_is_run_or_named_here():
    assert sorted(readme_commands()) == sorted([*RUN_IN_ORDER, *NOT_RUN_HERE])


def run(workspace: Workspace, command: str, env: dict) -> subprocess.CompletedProcess:
    """`TASK` and `LIBRARY` are the README's placeholders: a task, and a folder of presets (`library`)."""
    words = [word.replace("TASK", "train:model").replace("LIBRARY", str(workspace.root.parent / "library"))
             for word in shlex.split(command)]
    if words[0] == "doit":
        words = [sys.executable, "-m", "doit", "-f", str(CHECKOUT / "dodo.py"), *words[1:]]
    elif words[0] == "coupled-quality":  # in a checkout, `python -m stages.cli` is the same command
        words = [sys.executable, "-m", "stages.cli", *words[1:]]
    elif words[:3] == ["python", "-m", "stages.cli"]:
        words = [sys.executable, *words[1:]]
    return subprocess.run(words, cwd=CHECKOUT, capture_output=True, text=True, timeout=900, env=env)


def watch(env: dict) -> None:
    """`python -m stages.cli watch` serves until Ctrl+C: its page and numbers answer, then it is stopped."""
    server = subprocess.Popen([sys.executable, "-m", "stages.cli", "watch"], cwd=CHECKOUT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = server.stdout.readline()
        assert line.startswith("watch: http://127.0.0.1:8766/web/watch.html"), line + server.stderr.read()
        for path in ("/web/watch.html", "/api/watch"):
            with urllib.request.urlopen(f"http://127.0.0.1:8766{path}", timeout=30) as answer:
                assert answer.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_readme_commands_run_as_written(tmp_path, no_browser):
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    workspace.config_path.write_text(QUICK)
    env = {**os.environ, "CQ_WORKSPACE": str(workspace.root), "PYTHONPATH": str(CHECKOUT)}
    for command in RUN_IN_ORDER:
        if command == "python -m stages.cli watch":
            watch(env)
            continue
        if command.startswith("doit sample --packs a,b"):
            make_pack(workspace, "a", 2)
            make_pack(workspace, "b", 2)
        if command.startswith("doit discover"):
            library = tmp_path / "library"
            library.mkdir()
            for preset in sorted((workspace.pack_dir("demo") / "fg").iterdir())[:3]:
                shutil.copyfile(preset, library / preset.name)
        # train never starts a browser: there, importing playwright fails
        result = run(workspace, command, {**env, **no_browser} if command.startswith("doit train") else env)
        assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        if command == "doit":
            assert read_json(workspace.quality_path("demo"))["pack"] == "demo"
            assert workspace.report_index_path("demo").is_file()
        if command.startswith("doit train --epochs"):
            assert ".  train:model" in result.stdout and "saved epochs = 40" in result.stdout
        if command.startswith("doit filter"):
            assert (workspace.pack_dir("demo") / "pairs-manifest.filtered.current.json").is_file()
        if command.startswith("doit sample"):
            assert all(workspace.shard_files(pack) for pack in ("a", "b"))
        if command == "doit fingerprint":
            assert read_json(workspace.fingerprint_meta_path)["coverage"] == 1.0
        if command.startswith("doit discover"):
            assert (workspace.pack_dir("discovered-library") / "pairs-manifest.discovered.v1.json").is_file()
    assert workspace.manifest_path("a").is_file() and not workspace.shard_files("a"), \
        "clean removed what was generated and kept the user's pack"
