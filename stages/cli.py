"""Command-line tools besides the doit graph: `python -m stages.cli COMMAND`.

    screen DIR --out report.json   convert and draw every preset under a folder (ok / black / ... per file)
    manifest PACKDIR               write a pack's pairs-manifest.v0.json from its fg/ and bg/ folders
    serve [--port N]               the quality-weighted player on 127.0.0.1
    demo-bases                     re-screen butterchurn's presets for the demo pack's bases (data/)

Errors are one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from . import demopack, screen
from .core.contracts import MANIFEST_NAME
from .core.errors import CqError
from .core.workspace import Workspace
from .presets.manifests import write_manifest_from_folder
from .render.server import PLAYER_PATH, serving


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


def _serve(args) -> int:
    workspace = Workspace.from_environment()
    try:
        with serving(workspace, args.port) as server:
            print(f"player: {server.url}{PLAYER_PATH}  (workspace {workspace.root}; Ctrl+C stops)", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


def _demo_bases(args) -> int:
    report = demopack.screen(args.out, limit=args.limit, frames=args.frames, size=args.size, workers=args.workers)
    print(f"{len(report['bases'])} of {report['screen']['candidates']} presets screened clean "
          f"on {report['screen']['renderer']}; wrote {args.out}")
    return 0


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="python -m stages.cli", description=__doc__.split("\n\n")[0])
    commands = main_parser.add_subparsers(dest="command", required=True)

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

    bases = commands.add_parser("demo-bases", help=f"render each butterchurn preset; rewrite "
                                                   f"{demopack.BASES_PATH.name}")
    bases.add_argument("--out", type=Path, default=demopack.BASES_PATH)
    bases.add_argument("--limit", type=int, default=0, help="screen only the first N presets (0: all)")
    bases.add_argument("--frames", type=int, default=demopack.SCREEN_FRAMES)
    bases.add_argument("--size", type=int, default=demopack.SCREEN_SIZE)
    bases.add_argument("--workers", type=int, default=1)
    bases.set_defaults(handler=_demo_bases)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except CqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
