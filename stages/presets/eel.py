"""MilkDrop's EEL as butterchurn's EEL parser (eel-wasm) reads it, with the same meaning.

In: one code section of a `.milk` preset as `presets.milk` reads it (numbered lines joined by newlines).
Out: the same code where what MilkDrop's expression compiler (ns-eel2: its flex lexer and yacc grammar)
accepts but eel-wasm's grammar rejects is spelled the way eel-wasm takes it:

  0x1F, $x1F              hex constants          -> 31
  $pi, $e, $phi, $'c', $~8  named, character and bit-mask constants (any case) -> their value
  x ^= y, x |= y, x &= y  assignment operators eel-wasm lacks -> x = x ^ (y), ...
  ; before the first statement   (ns-eel2 skips empty statements, eel-wasm stops at a leading `;`)

Everything else is left byte for byte as it is, comments included, so a preset without these constructs
converts to the same text as before. Not handled (seen in no preset we have; eel-wasm still rejects them):
`a ? b : c`, `x[i]` memory subscripts, `<<`, `>>`, `~`, `===`, and compound assignment to a memory cell.
"""
from __future__ import annotations

import math
import re

# One token of MilkDrop's expression code; comments are tokens too, so they are kept as written.
_TOKEN = re.compile(r"""
    (?P<comment>//[^\n]*|\\\\[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<hex>0[xX][0-9a-fA-F]*|\$[xX][0-9a-fA-F]*)
  | (?P<constant>\$(?:[pP][hH][iI]|[pP][iI]|[eE]|'.'|~[0-9]*))
  | (?P<number>[0-9]+\.?[0-9]*|\.[0-9]+)
  | (?P<name>[a-zA-Z_][a-zA-Z0-9._]*)
  | (?P<space>\s+)
  | (?P<operator>[\^|&]=(?!=)|.)
""", re.VERBOSE | re.DOTALL)
_CONSTANTS = {"$pi": math.pi, "$e": math.e, "$phi": (1 + math.sqrt(5)) / 2}
_COMPOUND = {"^=": "^", "|=": "|", "&=": "&"}


def _constant(text: str) -> str:
    if text.startswith("$'"):
        return str(ord(text[2]))
    if text.startswith("$~"):   # a mask of that many low bits, at most 53
        return str((1 << min(int(text[2:] or 0), 53)) - 1)
    return repr(_CONSTANTS[text.lower()])


def _hex(text: str) -> str:
    digits = text[2:]
    return str(int(digits, 16)) if digits else "0"


def _tokens(code: str) -> list[tuple[str, str]]:
    return [(match.lastgroup, match.group()) for match in _TOKEN.finditer(code)]


def _right_side_end(tokens: list[tuple[str, str]], start: int) -> int:
    """Where the right side of a compound assignment starting at `start` ends: ns-eel2 reads it as far as it
    can, so up to the next `;` or `,` outside brackets, or the bracket that closes the one it stands in."""
    depth = 0
    for index in range(start, len(tokens)):
        kind, text = tokens[index]
        if kind != "operator":
            continue
        if text == "(":
            depth += 1
        elif text == ")":
            if depth == 0:
                return index
            depth -= 1
        elif text in ";," and depth == 0:
            return index
    return len(tokens)


def _previous_meaningful(tokens: list[tuple[str, str]], index: int) -> int:
    index -= 1
    while index >= 0 and tokens[index][0] in ("space", "comment"):
        index -= 1
    return index


def normalize_eel(code: str) -> str:
    """`code` with MilkDrop-only spellings rewritten for eel-wasm (the same text when there are none)."""
    tokens = _tokens(code)
    out: list[str] = []
    closers: dict[int, int] = {}   # token index -> how many `)` to write before it
    seen_statement = False
    for index, (kind, text) in enumerate(tokens):
        out.append(")" * closers.pop(index, 0))
        if kind == "hex":
            text = _hex(text)
        elif kind == "constant":
            text = _constant(text)
        elif kind == "operator" and text == ";" and not seen_statement:
            text = ""   # an empty statement before the first one: ns-eel2 skips it
        elif kind == "operator" and text in _COMPOUND:
            target = _previous_meaningful(tokens, index)
            if target >= 0 and tokens[target][0] == "name":
                text = f"= {tokens[target][1]} {_COMPOUND[text]} ("
                end = _right_side_end(tokens, index + 1)
                closers[end] = closers.get(end, 0) + 1
        if kind not in ("space", "comment"):
            seen_statement = seen_statement or text != ""
        out.append(text)
    out.append(")" * closers.pop(len(tokens), 0))
    return "".join(out)
