"""MilkDrop HLSL -> GLSL ES 3.0, in the form butterchurn 3 wraps into its warp and comp shaders.

In: a MilkDrop 2 warp or comp shader as the .milk file holds it (declarations, user functions, then
`shader_body { ... }`), and which of the two it is.
Out: `Translation.text`, the `warp`/`comp` string of a butterchurn-3 preset: GLSL declarations (user
samplers as `uniform sampler2D sampler_<name>;`, which butterchurn binds by that exact form), then
`shader_body { ... }`, whose body butterchurn pastes into its `main()` after its own uniforms.

How: a small compiler, one module per stage, read in this order:
  tokens.py        text -> tokens (comments dropped, line numbers kept)
  preprocessor.py  MilkDrop's built-in macros (`GetBlur1`, `lum`, `tex2d`, ...), then `#define`/`#if`
  parser.py        tokens -> syntax tree (recursive descent)
  types.py         HLSL's types and its implicit conversions, written out explicitly as GLSL needs them
  names.py         what butterchurn's header declares, GLSL's reserved words, the scopes of a shader
  emitter.py       syntax tree -> GLSL, every expression type-checked
  intrinsics.py    HLSL's built-in functions as a table (`lerp`->`mix`, `frac`->`fract`, `mul`, `tex2D`, ...)
Anything it cannot translate raises `HlslError` with the line, which the caller records as
`translate-failed`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .emitter import Emitter
from .errors import HlslError
from .parser import Parser
from .preprocessor import Preprocessor
from .tokens import through_last_brace
from .types import parse_type_name

__all__ = ["TRANSLATOR_VERSION", "HlslError", "Preprocessor", "Translation", "parse_type_name", "translate"]

# Part of the conversion cache key: bump it whenever a change alters any translated text.
TRANSLATOR_VERSION = "hlsl2glsl-4"


@dataclass
class Translation:
    text: str                      # the butterchurn `warp`/`comp` string
    user_samplers: list[str] = field(default_factory=list)


def translate(source: str, stage: str) -> Translation:
    """Translate one MilkDrop shader (`stage` is 'warp' or 'comp') to butterchurn's GLSL form.

    An empty shader translates to "" (butterchurn then uses its default for that stage)."""
    if stage not in ("warp", "comp"):
        raise ValueError(f"stage must be 'warp' or 'comp', not {stage!r}")
    if not source.strip():
        return Translation("")
    tokens = Preprocessor().run(through_last_brace(source))
    declarations, body = Parser(tokens).program()
    emitter = Emitter(stage)
    text = emitter.program(declarations, body)
    return Translation(text, list(emitter.user_samplers))
