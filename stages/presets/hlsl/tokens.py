"""Stage 1a, tokens: a shader's text as a list of tokens, each with its source line.

Comments go first (newlines kept so line numbers stay right), then each line is cut into identifiers,
numbers (with HLSL's suffixes: `1.0f`, `2h`, `0x1Fu`) and operators. Whitespace carries no meaning.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import HlslError


@dataclass
class Token:
    kind: str      # id | int | float | op | eof
    text: str
    line: int


_TOKEN = re.compile(r"""
    (?P<ws>[ \t\f\v]+)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?[fFhHlL]?|\d+[eE][+-]?\d+[fFhHlL]?|\d+[fFhH])
  | (?P<int>0[xX][0-9a-fA-F]+[uUlL]?|\d+[uUlL]?)
  | (?P<id>[A-Za-z_]\w*)
  | (?P<op><<=|>>=|\+\+|--|\+=|-=|\*=|/=|%=|&=|\|=|\^=|==|!=|<=|>=|&&|\|\||<<|>>|\#\#|[-+*/%<>=!~&|^?:;,.(){}\[\]\#\\])
""", re.VERBOSE)


def tokenize_line(text: str, line: int) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise HlslError(f"unexpected character {text[position]!r}", line)
        position = match.end()
        kind = match.lastgroup
        if kind != "ws":
            tokens.append(Token(kind, match.group(kind), line))
    return tokens


def strip_comments(text: str) -> str:
    """Remove // and /* */ comments, keeping newlines so line numbers stay right."""
    def blank(match: re.Match) -> str:
        return "\n" * match.group(0).count("\n") if match.group(0).startswith("/*") else ""
    return re.sub(r"/\*.*?(?:\*/|$)|//[^\n]*", blank, text, flags=re.DOTALL)


def through_last_brace(text: str) -> str:
    """The shader up to its last `}` (comments removed). MilkDrop ends the shader at its last closing brace
    and drops what follows, so presets carry notes such as `written by martin` after the body; cutting them
    here keeps their characters (quotes, ...) from the tokenizer."""
    text = strip_comments(text.replace("\r\n", "\n").replace("\r", "\n"))
    end = text.rfind("}")
    return text[:end + 1] if end >= 0 else text
