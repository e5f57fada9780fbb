"""The published JSON Schemas: the files other tools read, described by the types that validate them here.

Out: `schemas/pairs-manifest.v0.schema.json` and `schemas/pairs-quality.v0.schema.json` (JSON Schema 2020-12),
generated from `core.formats` and checked in; a test keeps them equal to what the types generate.
`python -m stages.core.schemas` regenerates them; `--check` only says which differ (exit status 1).
"""
from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import orjson

from ..core.contracts import write_bytes_atomic
from ..core.formats import PairsManifest, PairsQuality
from ..core.workspace import SCHEMAS_DIR

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
PUBLISHED = {
    "pairs-manifest.v0.schema.json": PairsManifest,
    "pairs-quality.v0.schema.json": PairsQuality,
}


def json_schema(kind: type) -> dict:
    """A format's JSON Schema, with the dialect and the root type's title and description on top."""
    generated = msgspec.json.schema(kind)
    root = generated["$defs"][kind.__name__]
    return {"$schema": JSON_SCHEMA_DIALECT, "title": root["title"], "description": root["description"], **generated}


def schema_bytes(kind: type) -> bytes:
    return orjson.dumps(json_schema(kind), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def stale_schemas(folder: Path = SCHEMAS_DIR) -> list[str]:
    """Names of the published schemas that are missing from `folder` or differ from what the types generate."""
    return [name for name, kind in PUBLISHED.items()
            if not (folder / name).is_file() or (folder / name).read_bytes() != schema_bytes(kind)]


def write_schemas(folder: Path = SCHEMAS_DIR) -> list[Path]:
    """Write every published schema into `folder`; returns the files."""
    written = []
    for name, kind in PUBLISHED.items():
        write_bytes_atomic(folder / name, schema_bytes(kind))
        written.append(folder / name)
    return written


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        stale = stale_schemas()
        for name in stale:
            print(f"{SCHEMAS_DIR / name}: differs from the types in stages/core/formats.py; "
                  f"run `python -m stages.core.schemas` to regenerate it")
        return 1 if stale else 0
    if argv:
        print("usage: python -m stages.core.schemas [--check]", file=sys.stderr)
        return 2
    for path in write_schemas():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
