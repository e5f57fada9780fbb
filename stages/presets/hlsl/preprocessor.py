"""Stage 1b, the preprocessor: tokens after macros and conditionals, as the C preprocessor gives them.

MilkDrop compiles every shader with its own include file, whose macros (`GetBlur1`, `lum`, `tex2d`, ...) are
predefined here; then the shader's own `#define`/`#undef`/`#if`... run line by line, and every macro use is
expanded (a macro never expands inside its own expansion).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import HlslError
from .tokens import Token, strip_comments, tokenize_line

# MilkDrop's own include file defines these for every shader; they are macros there too.
MILKDROP_MACROS = {
    "GetMain": (["uv"], "(tex2D(sampler_main,uv).xyz)"),
    "GetPixel": (["uv"], "(tex2D(sampler_main,uv).xyz)"),
    "GetBlur1": (["uv"], "(tex2D(sampler_blur1,uv).xyz*scale1 + bias1)"),
    "GetBlur2": (["uv"], "(tex2D(sampler_blur2,uv).xyz*scale2 + bias2)"),
    "GetBlur3": (["uv"], "(tex2D(sampler_blur3,uv).xyz*scale3 + bias3)"),
    "lum": (["x"], "(dot(x,float3(0.32,0.49,0.29)))"),
    "tex2d": (None, "tex2D"),
    "tex3d": (None, "tex3D"),
    "sampler_FC_main": (None, "sampler_fc_main"),
    "sampler_PC_main": (None, "sampler_pc_main"),
    "sampler_FW_main": (None, "sampler_fw_main"),
    "sampler_PW_main": (None, "sampler_pw_main"),
}


@dataclass
class Macro:
    params: list[str] | None
    body: list[Token]


class Preprocessor:
    """`#define` (object- and function-like), `#undef`, `#if/#ifdef/#ifndef/#elif/#else/#endif`."""

    def __init__(self):
        self.macros: dict[str, Macro] = {
            name: Macro(params, tokenize_line(body, 0)) for name, (params, body) in MILKDROP_MACROS.items()}

    def run(self, text: str) -> list[Token]:
        text = strip_comments(text.replace("\r\n", "\n").replace("\r", "\n"))
        lines = text.split("\n")
        out: list[Token] = []
        stack: list[list[bool]] = []   # per #if: [this branch active, some branch taken]
        number = 0
        while number < len(lines):
            line = lines[number]
            start = number + 1
            while line.endswith("\\") and number + 1 < len(lines):
                number += 1
                line = line[:-1] + " " + lines[number]
            number += 1
            active = all(frame[0] for frame in stack)
            stripped = line.strip()
            if stripped.startswith("#"):
                self.directive(stripped[1:].strip(), start, stack, active)
                continue
            if active and stripped:
                out.extend(tokenize_line(line, start))
        if stack:
            raise HlslError("#if without #endif")
        return self.expand(out, frozenset())

    def directive(self, text: str, line: int, stack: list, active: bool) -> None:
        word, _, rest = text.partition(" ")
        word = word.strip()
        rest = rest.strip()
        if word in ("if", "ifdef", "ifndef"):
            if not active:
                stack.append([False, True])
                return
            if word == "if":
                value = self.evaluate(rest, line)
            else:
                value = (rest.split()[0] if rest else "") in self.macros
                value = value if word == "ifdef" else not value
            stack.append([value, value])
        elif word in ("elif", "else"):
            if not stack:
                raise HlslError(f"#{word} without #if", line)
            frame = stack[-1]
            outer = all(f[0] for f in stack[:-1])
            if frame[1] or not outer:
                frame[0] = False
            else:
                frame[0] = True if word == "else" else self.evaluate(rest, line)
                frame[1] = frame[0]
        elif word == "endif":
            if not stack:
                raise HlslError("#endif without #if", line)
            stack.pop()
        elif not active:
            return
        elif word == "define":
            match = re.match(r"([A-Za-z_]\w*)(\(([^)]*)\))?\s*(.*)$", rest)
            if not match:
                raise HlslError(f"cannot read #define {rest!r}", line)
            params = None
            if match.group(2):
                params = [p.strip() for p in match.group(3).split(",") if p.strip()]
            self.macros[match.group(1)] = Macro(params, tokenize_line(match.group(4), line))
        elif word == "undef":
            self.macros.pop(rest.split()[0] if rest else "", None)
        elif word in ("pragma", "include", "line", "error", "warning"):
            return
        else:
            raise HlslError(f"unknown preprocessor directive #{word}", line)

    def evaluate(self, text: str, line: int) -> bool:
        text = re.sub(r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
                      lambda m: "1" if (m.group(1) or m.group(2)) in self.macros else "0", text)
        tokens = self.expand(tokenize_line(text, line), frozenset())
        expression = " ".join(t.text for t in tokens)
        expression = expression.replace("&&", " and ").replace("||", " or ")
        expression = re.sub(r"!(?!=)", " not ", expression)
        expression = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: m.group(0) if m.group(0) in ("and", "or", "not")
                            else "0", expression)
        try:
            return bool(eval(expression, {"__builtins__": {}}, {}))  # digits, operators and and/or/not only
        except Exception:
            raise HlslError(f"cannot evaluate #if {text!r}", line) from None

    def expand(self, tokens: list[Token], hidden: frozenset) -> list[Token]:
        out: list[Token] = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            macro = self.macros.get(token.text) if token.kind == "id" and token.text not in hidden else None
            if macro is None:
                out.append(token)
                index += 1
                continue
            if macro.params is None:
                body = [Token(t.kind, t.text, token.line) for t in macro.body]
                out.extend(self.expand(body, hidden | {token.text}))
                index += 1
                continue
            if index + 1 >= len(tokens) or tokens[index + 1].text != "(":
                out.append(token)
                index += 1
                continue
            args, index = self.arguments(tokens, index + 2, token.line)
            if len(args) != len(macro.params) and not (len(macro.params) == 0 and args == [[]]):
                raise HlslError(f"macro {token.text} takes {len(macro.params)} arguments, got {len(args)}",
                                token.line)
            expanded = {name: self.expand(arg, hidden) for name, arg in zip(macro.params, args)}
            body: list[Token] = []
            for part in macro.body:
                if part.kind == "id" and part.text in expanded:
                    body.extend(Token(t.kind, t.text, token.line) for t in expanded[part.text])
                else:
                    body.append(Token(part.kind, part.text, token.line))
            out.extend(self.expand(body, hidden | {token.text}))
        return out

    @staticmethod
    def arguments(tokens: list[Token], index: int, line: int) -> tuple[list[list[Token]], int]:
        args: list[list[Token]] = [[]]
        depth = 0
        while index < len(tokens):
            token = tokens[index]
            index += 1
            if token.text in "([{" and token.kind == "op":
                depth += 1
            elif token.text in ")]}" and token.kind == "op":
                if depth == 0:
                    return args, index
                depth -= 1
            elif token.text == "," and depth == 0:
                args.append([])
                continue
            args[-1].append(token)
        raise HlslError("unclosed macro call", line)
