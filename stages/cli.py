"""The `coupled-quality` command (`python -m stages.cli` in a checkout): the task graph, plus tools.

    coupled-quality [TASK ...] [--knob V]  the task graph through doit: build what is stale; `train`,
                                           `sample`, `clean`, `list`, `info`, `help TASK`: doit's commands
    screen DIR --out report.json   convert and draw every preset under a folder (ok / dark-start / black / ... per file)
    manifest PACKDIR               write a pack's pairs-manifest.v0.json from its fg/ and bg/ folders
    serve [--port N]               the quality-weighted player on 127.0.0.1
    watch [--port N]               a live page of the sampling run (per worker, per pack, pairs/min, ETA)
    filter --rule R [--top N] [--packs a,b] [--current]
                                   the next pairs-manifest.filtered.vN.json of each pack
    discover FOLDER [--top K] [--max-per-preset M] [--per-fg N] [--pack NAME]
                                   fingerprint a folder of presets, score every fg x bg pair with the model
                                   and write the best as pairs-manifest.discovered.vN.json of a new pack
    demo-bases                     re-screen butterchurn's presets for the demo pack's bases (data/)
    install-chromium               install Playwright's Chromium (where no Chromium/Chrome/Edge is found)
    cluster-check [ADDRESS]        are the Dask cluster's workers ready to sample? (no ADDRESS: this machine)

A first word that names a tool (a sub-command of `parser()`: adding one there is all a new tool needs)
runs that tool; anything else goes to doit's `DoitMain` with `graph` as its task loader's namespace, so
the installed command and `doit` in a checkout run the same graph. Errors are one line on stderr and a
non-zero exit.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.metadata
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

from . import demopack, discover, filter, screen
from .core.contracts import MANIFEST_NAME
from .core.errors import CqError
from .core.progress import lines_in_order
from .core.workspace import COMMAND_ENV, Workspace, command
from .learn.discovery import DiscoverSettings
from .presets.filtering import FilterSettings
from .presets.manifests import write_manifest_from_folder
from .render.server import PLAYER_PATH, WATCH_PATH, serving

PROG = "coupled-quality"


def _screen(args) -> int:
    report = screen.run(args.folder, args.out, args.frames, args.size, args.workers, args.allow_degraded,
                        args.timeout, args.chromium, render=not args.no_render, gpu_mode=args.gpu_mode)
    counts = ", ".join(f"{status} {count}" for status, count in sorted(report["by_status"].items()))
    print(f"{report['ok']}/{report['total']} ok ({counts}); translation median {report['translateMs']['median']} ms, "
          f"p90 {report['translateMs']['p90']} ms; report: {args.out}")
    return 0


def _manifest(args) -> int:
    for line in write_manifest_from_folder(args.pack_dir):
        print(f"unmatched: {line}")
    print(f"wrote {args.pack_dir / MANIFEST_NAME}")
    return 0


def _serve_until_interrupted(name: str, page: str, port: int) -> int:
    """Serve the workspace's pages on 127.0.0.1, print the address of `page`, wait for Ctrl+C."""
    workspace = Workspace.from_environment()
    try:
        with serving(workspace, port) as server:
            print(f"{name}: {server.url}{page}  (workspace {workspace.root}; Ctrl+C stops)", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


def _serve(args) -> int:
    return _serve_until_interrupted("player", PLAYER_PATH, args.port)


def _watch(args) -> int:
    return _serve_until_interrupted("watch", WATCH_PATH, args.port)


def _filter(args) -> int:
    settings = FilterSettings(packs=args.packs, rule=args.rule, top=args.top, current=args.current)
    if not settings.asked:
        raise CqError("give a rule (--rule \"quality01 >= 0.6\") or a count (--top 200): without one every pair "
                      "would be kept")
    filter.run(Workspace.from_environment(), settings)
    return 0


def _discover(args) -> int:
    settings = DiscoverSettings(**{**{item.name: getattr(args, item.name) for item in
                                      dataclasses.fields(DiscoverSettings) if item.name != "folder"},
                                   "folder": str(args.folder)})
    discover.run(Workspace.from_environment(), settings)
    return 0


def _demo_bases(args) -> int:
    report = demopack.screen(args.out, limit=args.limit, frames=args.frames, size=args.size, workers=args.workers)
    print(f"{len(report['bases'])} of {report['screen']['candidates']} presets screened clean "
          f"on {report['screen']['renderer']}; wrote {args.out}")
    return 0


def _install_chromium(args) -> int:
    return subprocess.run([sys.executable, "-m", "playwright", "install", "chromium"]).returncode


def _cluster_check(args) -> int:
    """Probe every worker as a sampling run does (browsers, renderer against gpu_mode, sampling page,
    self-test pair twice); without an address, a one-worker cluster on this machine."""
    import contextlib

    from .core.keys import engine_version
    from .core.settings import SampleSettings
    from .render.audio import load_audio
    from .render.cluster import ClusterRenderer, local_cluster
    from .render.session import self_test_job

    with contextlib.ExitStack() as stack:
        address = args.address or stack.enter_context(local_cluster(args.gpu_mode)).scheduler_address
        settings = SampleSettings(executor="dask", address=address, gpu_mode=args.gpu_mode).validate()
        checked = ClusterRenderer(settings, load_audio(settings).frames, self_test_job(), engine_version(),
                                  on_event=lambda kind, details: print(details["message"], flush=True))
        try:
            print(f"ready: {len(checked.nodes)} workers, {checked.browsers} browsers, renderer {checked.renderer}, "
                  f"gpu mode {checked.gpu_mode_used}")
        finally:
            checked.close_pools()
            checked.close()
    return 0


def task_names() -> list[str]:
    """The task graph's tasks, in its order, read from graph.py's source: importing it would prepare the
    workspace, which help should not."""
    tree = ast.parse(Path(__file__).with_name("graph.py").read_text(encoding="utf-8"))
    return [node.name[len("task_"):] for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("task_")]


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{PROG} [TASK ...] [--knob VALUE]   build what is stale (the task graph, through doit)\n"
              f"       {PROG} COMMAND [TASK]             a command on the task graph\n"
              f"       {PROG} TOOL [ARGS]",
        description=f"{PROG} {version()}: scores pairs of MilkDrop presets for coupled mode.\n"
                    f"workspace: {Workspace.from_environment().root} (from $CQ_WORKSPACE; when installed, "
                    f"the current directory)\n\n"
                    f"tasks: {', '.join(task_names())}\n"
                    f"  ({PROG} with no TASK builds every stale one; `{PROG} list` shows them with their docs)\n\n"
                    f"commands on the task graph:\n"
                    f"  list [--status]    the tasks (and which would run)\n"
                    f"  info TASK          why TASK (or each sub-task of it) would run\n"
                    f"  help TASK          TASK's knobs with their defaults (`{PROG} help sample`)\n"
                    f"  clean [TASK]       remove generated artifacts (never presets, manifests, elite, ratings)\n"
                    f"  forget TASK        forget that TASK ran, so it runs again\n"
                    f"  help TOOL          a tool's options",
        epilog=f"`{PROG} --version` prints the version; the task graph is doit's "
               f"(https://pydoit.org): its other commands work too.")
    commands = main_parser.add_subparsers(dest="command", required=True, title="tools", metavar="TOOL", prog=PROG)

    screening = commands.add_parser("screen", help="convert and draw every preset under a folder")
    screening.add_argument("folder", type=Path)
    screening.add_argument("--out", type=Path, required=True, help="where the JSON report goes")
    screening.add_argument("--frames", type=int, default=20)
    screening.add_argument("--size", type=int, default=64)
    screening.add_argument("--workers", type=int, default=1)
    screening.add_argument("--timeout", type=float, default=30.0, help="seconds per preset")
    screening.add_argument("--allow-degraded", action="store_true",
                           help="replace failing shaders by butterchurn's default (status degraded)")
    screening.add_argument("--chromium", default="", help="path of a Chromium to use")
    screening.add_argument("--no-render", action="store_true", help="convert only, do not draw")
    screening.add_argument("--gpu-mode", default="off", help="off | safe | require (as for sampling)")
    screening.set_defaults(handler=_screen)

    manifest = commands.add_parser("manifest", help="write a pack's pairs manifest from fg/ and bg/")
    manifest.add_argument("pack_dir", type=Path)
    manifest.set_defaults(handler=_manifest)

    serve = commands.add_parser("serve", help="serve the quality-weighted player on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    serve.set_defaults(handler=_serve)

    watch = commands.add_parser("watch", help="a live page of the sampling run, on 127.0.0.1")
    watch.add_argument("--port", type=int, default=8766, help="port on 127.0.0.1 (default 8766)")
    watch.set_defaults(handler=_watch)

    filtering = commands.add_parser("filter", help="write the next filtered manifest of each pack from a rule")
    for item in dataclasses.fields(FilterSettings):
        option = f"--{item.name.replace('_', '-')}"
        if item.type in (bool, "bool"):
            filtering.add_argument(option, action="store_true", help=item.metadata["help"])
        else:
            kind = {"int": int, "str": str}.get(item.type, item.type)
            filtering.add_argument(option, type=kind, default=item.default, help=item.metadata["help"])
    filtering.set_defaults(handler=_filter)

    discovering = commands.add_parser("discover", help="the best fg x bg pairs of a folder of presets, by the model")
    discovering.add_argument("folder", type=Path, help="a folder of .milk and .json presets (not searched below)")
    for item in dataclasses.fields(DiscoverSettings):
        if item.name != "folder":
            kind = {"int": int, "str": str}[item.type]
            discovering.add_argument(f"--{item.name.replace('_', '-')}", type=kind, default=item.default,
                                     help=item.metadata["help"])
    discovering.set_defaults(handler=_discover)

    bases = commands.add_parser("demo-bases", help=f"render each butterchurn preset; rewrite "
                                                   f"{demopack.BASES_PATH.name}")
    bases.add_argument("--out", type=Path, default=demopack.BASES_PATH)
    bases.add_argument("--limit", type=int, default=0, help="screen only the first N presets (0: all)")
    bases.add_argument("--frames", type=int, default=demopack.SCREEN_FRAMES)
    bases.add_argument("--size", type=int, default=demopack.SCREEN_SIZE)
    bases.add_argument("--workers", type=int, default=1)
    bases.set_defaults(handler=_demo_bases)

    chromium = commands.add_parser("install-chromium", help="install Playwright's Chromium build for sampling")
    chromium.set_defaults(handler=_install_chromium)

    check = commands.add_parser("cluster-check", help="probe a Dask cluster's workers as a sampling run does")
    check.add_argument("address", nargs="?", default="",
                       help="the scheduler, HOST:PORT (default: start a one-worker cluster on this machine)")
    check.add_argument("--gpu-mode", default="off", help="off | safe | require (as for sampling)")
    check.set_defaults(handler=_cluster_check)
    return main_parser


def tool_parsers(main_parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The tools (sub-commands) `main_parser` defines, by name (argparse keeps them on its sub-parsers action)."""
    return {name: tool for action in main_parser._actions if isinstance(action, argparse._SubParsersAction)
            for name, tool in action.choices.items()}


def build(argv: list[str]) -> int:
    """Run doit's command line on the task graph (`graph`), as `doit` does with dodo.py in a checkout."""
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from . import graph

    doit_main = DoitMain(ModuleTaskLoader(graph), config_filenames=(),
                         extra_config={"COMMAND": {"info": f"{__package__}.core.uptodate:Info",
                                                      "list": f"{__package__}.core.uptodate:List"}})
    doit_main.BIN_NAME = command()  # doit's own messages ("see `X help info`") name this command
    return doit_main.run(argv)


def version() -> str:
    try:
        return importlib.metadata.version(PROG)
    except importlib.metadata.PackageNotFoundError:
        return "(a checkout that is not pip-installed)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ[COMMAND_ENV] = f"python -m {__package__}.cli" if Path(sys.argv[0]).name == "cli.py" else PROG
    lines_in_order()
    tools = parser()
    try:
        if argv and argv[0] in tool_parsers(tools):
            args = tools.parse_args(argv)
            return args.handler(args)
        if argv in (["-h"], ["--help"], ["help"]):
            tools.print_help()
            return 0
        if argv[:1] == ["help"] and argv[1:] and argv[1] in tool_parsers(tools):
            tool_parsers(tools)[argv[1]].print_help()
            return 0
        if argv[:1] == ["--version"]:
            import doit

            print(f"{PROG} {version()} (doit {'.'.join(map(str, doit.__version__))}, Python {platform.python_version()})")
            return 0
        return build(argv)
    except CqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
