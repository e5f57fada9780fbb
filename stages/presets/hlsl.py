"""MilkDrop HLSL -> GLSL ES 3.0, in the form butterchurn 3 wraps into its warp and comp shaders.

In: a MilkDrop 2 warp or comp shader as the .milk file holds it (declarations, user functions, then
`shader_body { ... }`), and which of the two it is.
Out: `Translation.text`, the `warp`/`comp` string of a butterchurn-3 preset: GLSL declarations (user
samplers as `uniform sampler2D sampler_<name>;`, which butterchurn binds by that exact form), then
`shader_body { ... }`, whose body butterchurn pastes into its `main()` after its own uniforms.

How: a preprocessor (MilkDrop's built-in macros such as `GetBlur1`, `lum`, `tex2d` predefined, then the
shader's own `#define`/`#if`), a tokenizer, a recursive-descent parser to an AST, and a typed emitter that
checks every expression's type and writes HLSL's implicit conversions out explicitly, as GLSL needs: scalar
to vector, vector truncation, int/bool to float, float to bool in conditions; `mul` with HLSL's row-major
matrices, `%`/`fmod` with truncation, intrinsics renamed (`lerp`->`mix`, `frac`->`fract`, `tex2D`->`texture`,
`atan2`->`atan`, `rsqrt`->`inversesqrt`, `saturate`->`clamp`, ...). Anything it cannot translate raises
`HlslError` with the line, which the caller records as `translate-failed`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..core.errors import CqError

# Part of the conversion cache key: bump it whenever a change alters any translated text.
TRANSLATOR_VERSION = "hlsl2glsl-4"


class HlslError(CqError):
    """A shader this translator cannot turn into GLSL; the message names the line and the construct."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


# ============================================================================================ types


@dataclass(frozen=True)
class Type:
    """A shader value's type. `size` is the vector size (1 = scalar); matrices have `rows` > 0 (HLSL
    floatRxC: `rows`=R, `size`=C); arrays carry their length in `array`."""

    base: str            # float | int | uint | bool | void | sampler2D | sampler3D
    size: int = 1
    rows: int = 0
    array: int = 0

    @property
    def is_scalar(self) -> bool:
        return self.size == 1 and self.rows == 0 and self.array == 0 and self.base in NUMERIC

    @property
    def is_vector(self) -> bool:
        return self.size > 1 and self.rows == 0 and self.array == 0

    @property
    def is_matrix(self) -> bool:
        return self.rows > 0 and self.array == 0

    def with_base(self, base: str) -> "Type":
        return Type(base, self.size, self.rows)

    def element(self) -> "Type":
        return Type(self.base, self.size, self.rows)

    def glsl(self) -> str:
        if self.base in ("void", "sampler2D", "sampler3D"):
            return self.base
        if self.rows:
            return f"mat{self.rows}" if self.rows == self.size else f"mat{self.rows}x{self.size}"
        if self.size == 1:
            return self.base
        return {"float": "vec", "int": "ivec", "uint": "uvec", "bool": "bvec"}[self.base] + str(self.size)

    def hlsl(self) -> str:
        if self.rows:
            return f"{self.base}{self.rows}x{self.size}"
        return self.base + (str(self.size) if self.size > 1 else "")


NUMERIC = ("float", "int", "uint", "bool")
FLOAT, INT, BOOL, VOID = Type("float"), Type("int"), Type("bool"), Type("void")
SAMPLER2D, SAMPLER3D = Type("sampler2D"), Type("sampler3D")
_TYPE_NAME = re.compile(r"(float|half|double|min16float|min10float|int|min16int|uint|dword|bool)"
                        r"([1-4])?(?:x([1-4]))?$")
_BASE_ALIAS = {"half": "float", "double": "float", "min16float": "float", "min10float": "float",
               "min16int": "int", "dword": "uint"}


def parse_type_name(name: str) -> Type | None:
    """`float3` -> Type('float', 3); `half1` -> float; `float3x2` -> a 3-row matrix; None if not a type."""
    if name in ("sampler", "sampler2D", "texture", "texture2D"):
        return SAMPLER2D
    if name in ("sampler3D", "texture3D"):
        return SAMPLER3D
    if name == "void":
        return VOID
    match = _TYPE_NAME.match(name)
    if not match:
        return None
    base = _BASE_ALIAS.get(match.group(1), match.group(1))
    size = int(match.group(2) or 1)
    if match.group(3):
        cols = int(match.group(3))
        if size == 1 and cols == 1:
            return Type(base)
        if size == 1 or cols == 1:       # float1x3 is a vector in all but name
            return Type(base, max(size, cols))
        if base != "float":
            base = "float"               # GLSL has float matrices only
        return Type(base, cols, size)
    return Type(base, size)


# ==================================================================================== preprocessor

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


# ========================================================================================== parser


class Node:
    """An AST node: `kind` plus named children; `line` for error messages."""

    def __init__(self, kind: str, line: int, **fields):
        self.kind = kind
        self.line = line
        self.__dict__.update(fields)

    def __repr__(self):
        return f"Node({self.kind}, {', '.join(f'{k}={v!r}' for k, v in self.__dict__.items() if k != 'line')})"


ASSIGN_OPS = ("=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=")
BINARY_LEVELS = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="),
                 ("<<", ">>"), ("+", "-"), ("*", "/", "%")]
QUALIFIERS = ("static", "const", "uniform", "extern", "volatile", "inline", "precise", "shared",
              "groupshared", "row_major", "column_major", "linear", "centroid", "nointerpolation")


class Parser:
    """Recursive descent over the token list: top-level declarations, `shader_body`, statements."""

    def __init__(self, tokens: list[Token]):
        last_line = tokens[-1].line if tokens else 1
        self.tokens = tokens + [Token("eof", "<end of shader>", last_line)]
        self.index = 0

    # -- helpers
    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def accept(self, text: str) -> bool:
        if self.peek().text == text and self.peek().kind in ("op", "id"):
            self.index += 1
            return True
        return False

    def expect(self, text: str) -> Token:
        token = self.peek()
        if token.text != text or token.kind not in ("op", "id"):
            raise HlslError(f"expected {text!r}, found {token.text!r}", token.line)
        return self.next()

    def identifier(self) -> Token:
        token = self.peek()
        if token.kind != "id":
            raise HlslError(f"expected a name, found {token.text!r}", token.line)
        return self.next()

    def at_type(self, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind == "id" and parse_type_name(token.text) is not None

    def skip_semantic(self) -> None:
        """`: TEXCOORD0` / `: register(s0)` after a declarator or a parameter list (ignored)."""
        if self.peek().text == ":" and self.peek(1).kind == "id":
            self.index += 2
            if self.accept("("):
                while not self.accept(")"):
                    self.next()

    # -- program
    def program(self) -> tuple[list[Node], Node]:
        declarations: list[Node] = []
        while True:
            token = self.peek()
            if token.kind == "eof":
                raise HlslError("no shader_body found", token.line)
            if token.text == "shader_body":
                self.next()
                body = self.block()   # what follows the body's closing brace is dropped, as MilkDrop does
                return declarations, body
            if self.accept(";"):
                continue
            declarations.extend(self.top_level())

    def top_level(self) -> list[Node]:
        line = self.peek().line
        qualifiers = set()
        while self.peek().text in QUALIFIERS:
            qualifiers.add(self.next().text)
        if self.peek().text in ("struct", "typedef", "cbuffer", "technique", "pass"):
            raise HlslError(f"'{self.peek().text}' is not supported", line)
        type_token = self.identifier()
        kind = parse_type_name(type_token.text)
        if kind is None:
            raise HlslError(f"unknown type {type_token.text!r}", type_token.line)
        name = self.identifier()
        if self.peek().text == "(":
            return [self.function(kind, name)]
        return [self.declaration_rest(kind, name, qualifiers, line, top=True)]

    def function(self, return_type: Type, name: Token) -> Node:
        self.expect("(")
        params = []
        if not self.accept(")"):
            if self.peek().text == "void" and self.peek(1).text == ")":
                self.next()
                self.expect(")")
            else:
                while True:
                    direction = "in"
                    while self.peek().text in ("in", "out", "inout", "uniform", "const"):
                        word = self.next().text
                        if word in ("out", "inout"):
                            direction = word
                    type_token = self.identifier()
                    kind = parse_type_name(type_token.text)
                    if kind is None:
                        raise HlslError(f"unknown type {type_token.text!r}", type_token.line)
                    param = self.identifier()
                    if self.accept("["):
                        size = self.expression()
                        self.expect("]")
                        kind = Type(kind.base, kind.size, kind.rows, self.constant_int(size))
                    self.skip_semantic()
                    if self.accept("="):
                        self.assignment()
                    params.append((direction, kind, param.text))
                    if self.accept(")"):
                        break
                    self.expect(",")
        self.skip_semantic()
        if self.accept(";"):
            return Node("prototype", name.line, type=return_type, name=name.text, params=params)
        return Node("function", name.line, type=return_type, name=name.text, params=params, body=self.block())

    def declaration_rest(self, kind: Type, first: Token, qualifiers: set, line: int, top: bool) -> Node:
        """Declarators after the type: `a, b[2] = {..}, c = 1;` (the first name already read)."""
        declarators = []
        name = first
        while True:
            declared = kind
            if self.accept("["):
                size = self.expression()
                self.expect("]")
                declared = Type(kind.base, kind.size, kind.rows, self.constant_int(size))
            self.skip_semantic()
            init = None
            if self.accept("="):
                if self.peek().text == "sampler_state":
                    self.next()
                    self.skip_braces()
                elif self.peek().text == "{":
                    init = self.init_list()
                else:
                    init = self.assignment()
            declarators.append((declared, name.text, init, name.line))
            if self.accept(";"):
                break
            self.expect(",")
            name = self.identifier()
        return Node("declaration", line, declarators=declarators, qualifiers=qualifiers, top=top)

    def skip_braces(self) -> None:
        self.expect("{")
        depth = 1
        while depth:
            token = self.next()
            if token.kind == "eof":
                raise HlslError("unclosed '{'", token.line)
            depth += {"{": 1, "}": -1}.get(token.text, 0)

    def init_list(self) -> Node:
        line = self.expect("{").line
        items = []
        while not self.accept("}"):
            items.append(self.init_list() if self.peek().text == "{" else self.assignment())
            if not self.accept(","):
                self.expect("}")
                break
        return Node("init_list", line, items=items)

    def constant_int(self, node: Node) -> int:
        if node.kind == "literal" and node.type.base == "int":
            return int(node.value, 0)
        raise HlslError("array sizes must be integer literals", node.line)

    # -- statements
    def block(self) -> Node:
        line = self.expect("{").line
        statements = []
        while not self.accept("}"):
            if self.peek().kind == "eof":
                raise HlslError("missing '}'", line)
            statements.append(self.statement())
        return Node("block", line, statements=statements)

    def statement(self) -> Node:
        token = self.peek()
        line = token.line
        if token.text == "{":
            return self.block()
        if token.text == ";":
            self.next()
            return Node("empty", line)
        while token.text == "[" and self.peek(1).kind == "id":   # attributes like [unroll], [loop]
            while not self.accept("]"):
                self.next()
            token = self.peek()
        if token.text == "if":
            self.next()
            self.expect("(")
            condition = self.expression()
            self.expect(")")
            then = self.statement()
            otherwise = self.statement() if self.accept("else") else None
            return Node("if", line, condition=condition, then=then, otherwise=otherwise)
        if token.text == "while":
            self.next()
            self.expect("(")
            condition = self.expression()
            self.expect(")")
            return Node("while", line, condition=condition, body=self.statement())
        if token.text == "do":
            self.next()
            body = self.statement()
            self.expect("while")
            self.expect("(")
            condition = self.expression()
            self.expect(")")
            self.expect(";")
            return Node("do", line, condition=condition, body=body)
        if token.text == "for":
            self.next()
            self.expect("(")
            init = None if self.accept(";") else self.simple_statement()
            condition = None if self.peek().text == ";" else self.expression()
            self.expect(";")
            step = None if self.peek().text == ")" else self.expression()
            self.expect(")")
            return Node("for", line, init=init, condition=condition, step=step, body=self.statement())
        if token.text in ("break", "continue", "discard"):
            self.next()
            self.expect(";")
            return Node(token.text, line)
        if token.text == "return":
            self.next()
            value = None if self.peek().text == ";" else self.expression()
            self.expect(";")
            return Node("return", line, value=value)
        return self.simple_statement()

    def simple_statement(self) -> Node:
        """A declaration or an expression, ending with ';'."""
        line = self.peek().line
        qualifiers = set()
        while self.peek().text in QUALIFIERS:
            qualifiers.add(self.next().text)
        if self.at_type() and self.peek(1).kind == "id":
            kind = parse_type_name(self.next().text)
            return self.declaration_rest(kind, self.identifier(), qualifiers, line, top=False)
        expression = self.expression()
        self.expect(";")
        return Node("expression", line, expression=expression)

    # -- expressions
    def expression(self) -> Node:
        node = self.assignment()
        while self.peek().text == "," and self.peek().kind == "op":
            line = self.next().line
            node = Node("comma", line, left=node, right=self.assignment())
        return node

    def assignment(self) -> Node:
        left = self.conditional()
        token = self.peek()
        if token.kind == "op" and token.text in ASSIGN_OPS:
            self.next()
            return Node("assign", token.line, op=token.text, target=left, value=self.assignment())
        return left

    def conditional(self) -> Node:
        condition = self.binary(0)
        if self.peek().text == "?":
            line = self.next().line
            then = self.assignment()
            self.expect(":")
            otherwise = self.assignment()
            return Node("ternary", line, condition=condition, then=then, otherwise=otherwise)
        return condition

    def binary(self, level: int) -> Node:
        if level == len(BINARY_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek().kind == "op" and self.peek().text in BINARY_LEVELS[level]:
            token = self.next()
            left = Node("binary", token.line, op=token.text, left=left, right=self.binary(level + 1))
        return left

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.text in ("-", "+", "!", "~", "++", "--"):
            self.next()
            return Node("unary", token.line, op=token.text, operand=self.unary())
        if token.text == "(" and self.at_type(1) and self.peek(2).text in (")", "["):
            self.next()
            kind = parse_type_name(self.next().text)
            self.expect(")")
            return Node("cast", token.line, type=kind, operand=self.unary())
        return self.postfix(self.primary())

    def primary(self) -> Node:
        token = self.next()
        if token.kind in ("int", "float"):
            return Node("literal", token.line, value=token.text, type=INT if token.kind == "int" else FLOAT)
        if token.kind == "id":
            if token.text in ("true", "false"):
                return Node("literal", token.line, value=token.text, type=BOOL)
            if self.peek().text == "(":
                self.next()
                args = []
                if not self.accept(")"):
                    while True:
                        args.append(self.assignment())
                        if self.accept(")"):
                            break
                        self.expect(",")
                return Node("call", token.line, name=token.text, args=args)
            return Node("name", token.line, name=token.text)
        if token.text == "(":
            node = self.expression()
            self.expect(")")
            return node
        raise HlslError(f"unexpected {token.text!r}", token.line)

    def postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token.text == "." and token.kind == "op":
                self.next()
                node = Node("member", token.line, operand=node, field=self.identifier().text)
            elif token.text == "[":
                self.next()
                index = self.expression()
                self.expect("]")
                node = Node("index", token.line, operand=node, index=index)
            elif token.text in ("++", "--"):
                self.next()
                node = Node("postfix", token.line, op=token.text, operand=node)
            else:
                return node


# ========================================================================================= emitter

NOISE_TEXTURES = ("noise_lq", "noise_lq_lite", "noise_mq", "noise_hq", "noisevol_lq", "noisevol_hq")
# Samplers butterchurn declares itself (and binds); 3D ones are the volume noise textures.
BUILTIN_SAMPLERS = {f"sampler_{name}": (SAMPLER3D if name.startswith("noisevol") else SAMPLER2D)
                    for name in ("main", "fw_main", "fc_main", "pw_main", "pc_main", "blur1", "blur2", "blur3",
                                 "pw_noise_lq") + NOISE_TEXTURES}
V4 = Type("float", 4)
# Values butterchurn's shader header provides, with their types.
BUILTIN_VALUES: dict[str, Type] = {
    "time": FLOAT, "fps": FLOAT, "frame": FLOAT, "bass": FLOAT, "mid": FLOAT, "treb": FLOAT, "vol": FLOAT,
    "bass_att": FLOAT, "mid_att": FLOAT, "treb_att": FLOAT, "vol_att": FLOAT,
    "aspect": V4, "texsize": V4, "roam_cos": V4, "roam_sin": V4, "slow_roam_cos": V4, "slow_roam_sin": V4,
    "rand_frame": V4, "rand_preset": V4, "resolution": Type("float", 2), "PI": FLOAT,
    **{f"texsize_{name}": V4 for name in NOISE_TEXTURES},
    **{f"blur{i}_{end}": FLOAT for i in (1, 2, 3) for end in ("min", "max")},
    **{f"{kind}{i}": FLOAT for kind in ("scale", "bias") for i in (1, 2, 3)},
    **{f"_q{letter}": V4 for letter in "abcdefgh"},
    **{f"q{i}": FLOAT for i in range(1, 33)},
    "uv": Type("float", 2), "uv_orig": Type("float", 2), "rad": FLOAT, "ang": FLOAT, "ret": Type("float", 3),
}
WARP_ONLY = {"decay": FLOAT}
COMP_ONLY = {"hue_shader": Type("float", 3)}
# MilkDrop values butterchurn lacks: declared in our header when a shader uses them.
EXTRA_VALUES = {
    "M_PI": (FLOAT, "3.14159265359"), "M_PI_2": (FLOAT, "6.28318530718"),
    "M_INV_PI_2": (FLOAT, "0.159154943091895"),
    "progress": (FLOAT, "0.5"),   # the preset's progress through its display time: mid-way
    "mip_x": (FLOAT, "1.0"), "mip_y": (FLOAT, "1.0"), "mip_xy": (Type("float", 2), "vec2(1.0)"),
    "mip_avg": (FLOAT, "1.0"),
}
# Names a user declaration may not take in GLSL ES 3.0 (keywords, reserved words, built-in functions,
# butterchurn's header): renamed with a prefix.
GLSL_RESERVED = set("""
attribute const uniform varying layout centroid flat smooth break continue do for while switch case default
if else in out inout float int void bool true false invariant discard return mat2 mat3 mat4 mat2x2 mat2x3
mat2x4 mat3x2 mat3x3 mat3x4 mat4x2 mat4x3 mat4x4 vec2 vec3 vec4 ivec2 ivec3 ivec4 bvec2 bvec3 bvec4 uint
uvec2 uvec3 uvec4 lowp mediump highp precision sampler2D sampler3D samplerCube sampler2DShadow
samplerCubeShadow sampler2DArray sampler2DArrayShadow isampler2D isampler3D isamplerCube isampler2DArray
usampler2D usampler3D usamplerCube usampler2DArray struct coherent volatile restrict readonly writeonly
resource atomic_uint noperspective patch sample subroutine common partition active asm class union enum
typedef template this goto inline noinline public static extern external interface long short double half
fixed unsigned superp input output hvec2 hvec3 hvec4 dvec2 dvec3 dvec4 fvec2 fvec3 fvec4 sampler3DRect
filter image1D image2D image3D imageCube sizeof cast namespace using texture mix fract mod clamp step
smoothstep dot cross length distance normalize reflect refract abs sign floor ceil trunc round roundEven min
max pow exp exp2 log log2 sqrt inversesqrt sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh
radians degrees any all not equal notEqual lessThan greaterThan lessThanEqual greaterThanEqual
matrixCompMult transpose determinant inverse outerProduct dFdx dFdy fwidth textureLod textureProj
textureGrad textureSize texelFetch isnan isinf modf floatBitsToInt intBitsToFloat packHalf2x16 main
fragColor vColor vUv lum PI resolution gammaAdj echo_zoom echo_alpha echo_orientation invert brighten darken
solarize fShader decay""".split())
SWIZZLE_SETS = ("xyzw", "rgba")


def _literal_float(code: str) -> str | None:
    """An integer literal's text as a float literal ('3' -> '3.0'), else None."""
    return code + ".0" if re.fullmatch(r"-?\d+", code) else None


@dataclass
class Symbol:
    type: Type
    glsl: str
    writable: bool = True


@dataclass
class Function:
    name: str
    glsl: str
    type: Type
    params: list[tuple[str, Type, str]]


FMOD_HELPER = "\n".join(
    f"{t} _hlsl_fmod({t} a, {t} b) {{ return a - b * trunc(a / b); }}" for t in ("float", "vec2", "vec3", "vec4"))


@dataclass
class Translation:
    text: str                      # the butterchurn `warp`/`comp` string
    user_samplers: list[str] = field(default_factory=list)


class Emitter:
    """Type-checks the AST and writes GLSL; every implicit HLSL conversion becomes explicit."""

    def __init__(self, stage: str):
        self.stage = stage
        self.scopes: list[dict[str, Symbol]] = [{}]
        self.functions: dict[str, list[Function]] = {}
        self.header: list[str] = []           # declarations in source order
        self.extra: dict[str, str] = {}       # on-demand declarations (helpers, MilkDrop constants)
        self.user_samplers: list[str] = []
        self.deferred: list[str] = []         # global initializers, run at the start of the body
        self.readonly_written: set[str] = set()
        self.mutable_copies: set[str] = set()
        self.return_type: Type | None = None
        builtins = {**BUILTIN_VALUES, **(WARP_ONLY if stage == "warp" else COMP_ONLY)}
        # main()'s own locals are writable; uniforms and (in warp) the inputs uv/uv_orig are not
        writable = {"ret", "rad", "ang"} | ({"uv", "uv_orig", "hue_shader"} if stage == "comp" else set())
        for name, kind in builtins.items():
            self.scopes[0][name] = Symbol(kind, name, name in writable)
        for name, kind in BUILTIN_SAMPLERS.items():
            self.scopes[0][name] = Symbol(kind, name, False)

    # -- names
    def declare(self, name: str, kind: Type, line: int, writable: bool = True) -> str:
        scope = self.scopes[-1]
        glsl = f"_h_{name}" if name in GLSL_RESERVED or "__" in name or name.startswith("gl_") else name
        if len(self.scopes) == 1 and glsl in self.scopes[0] and name not in scope:
            glsl = f"_h_{name}"
        if name in scope and len(self.scopes) > 1:
            raise HlslError(f"'{name}' is declared twice", line)
        scope[name] = Symbol(kind, glsl, writable)
        return glsl

    def lookup(self, name: str, line: int) -> Symbol:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in EXTRA_VALUES:
            kind, value = EXTRA_VALUES[name]
            self.extra[name] = f"const {kind.glsl()} {name} = {value};"
            self.scopes[0][name] = Symbol(kind, name, False)
            return self.scopes[0][name]
        if name.startswith("texsize_"):
            # butterchurn never declares texsize_<image>; unknown images fall back to its 128x128 clouds
            self.extra[name] = f"const vec4 {name} = vec4(128.0, 128.0, 1.0 / 128.0, 1.0 / 128.0);"
            self.scopes[0][name] = Symbol(V4, name, False)
            return self.scopes[0][name]
        if name.startswith("sampler_"):
            return self.declare_sampler(name, SAMPLER2D)
        raise HlslError(f"undeclared identifier '{name}'", line)

    def declare_sampler(self, name: str, kind: Type) -> Symbol:
        if name in BUILTIN_SAMPLERS:
            return self.scopes[0][name]
        match = re.match(r"sampler_(?:fw|fc|pw|pc)_(\w+)$", name, re.IGNORECASE)
        if match and f"sampler_{match.group(1)}" in BUILTIN_SAMPLERS:
            # a filter/wrap-mode prefix on a built-in texture: same texture (butterchurn has one sampler each)
            symbol = self.scopes[0][f"sampler_{match.group(1)}"]
        else:
            symbol = Symbol(kind, name, False)
            if name not in self.user_samplers:
                self.user_samplers.append(name)
                self.header.append(f"uniform {kind.glsl()} {name};")
        self.scopes[0][name] = symbol
        return symbol

    # -- conversions
    def convert(self, code: str, source: Type, target: Type, line: int) -> str:
        if source == target:
            return code
        if target.array or source.array:
            raise HlslError(f"cannot convert {source.hlsl()}[] to {target.hlsl()}", line)
        if source.base in ("sampler2D", "sampler3D", "void") or target.base in ("sampler2D", "sampler3D", "void"):
            raise HlslError(f"cannot use {source.hlsl()} as {target.hlsl()}", line)
        if target.is_matrix:
            if source.is_matrix and source.rows >= target.rows and source.size >= target.size:
                return f"{target.glsl()}({code})"
            if source.is_scalar:
                scalar = self.convert(code, source, FLOAT, line)
                return f"{target.glsl()}({', '.join([scalar] * (target.rows * target.size))})"
            raise HlslError(f"cannot convert {source.hlsl()} to {target.hlsl()}", line)
        if source.is_matrix:
            if target.size == 1:
                return self.convert(f"{code}[0][0]", FLOAT, target, line)
            raise HlslError(f"cannot convert {source.hlsl()} to {target.hlsl()}", line)
        if target.size == 1:
            if source.size > 1:
                code = f"{code}.x"
            if source.base == target.base:
                return code
            if target.base == "float":
                literal = _literal_float(code)
                if literal:
                    return literal
            if target.base == "bool" and source.base == "float":
                return f"({code} != 0.0)"
            return f"{target.base}({code})"
        if source.size == 1:
            if source.base != target.base and target.base == "float" and _literal_float(code):
                code = _literal_float(code)
            return f"{target.glsl()}({code})"
        if source.size < target.size:
            raise HlslError(f"cannot convert {source.hlsl()} to {target.hlsl()} (too few components)", line)
        if source.size > target.size:
            code = f"{code}.{'xyzw'[:target.size]}"
        if source.base != target.base:
            code = f"{target.glsl()}({code})"
        return code

    @staticmethod
    def arithmetic_base(*types: Type) -> str:
        bases = {t.base for t in types}
        if "float" in bases:
            return "float"
        if "int" in bases or "bool" in bases:
            return "int"
        return "uint"

    def unify(self, args: list[tuple[str, Type]], line: int, base: str | None = None) -> tuple[list[str], Type]:
        """HLSL's component-wise rule: scalars widen, vectors truncate to the smallest; one common base."""
        for _, kind in args:
            if kind.array or kind.base in ("sampler2D", "sampler3D", "void"):
                raise HlslError(f"{kind.hlsl()} is not a number", line)
        base = base or self.arithmetic_base(*(t for _, t in args))
        matrices = [t for _, t in args if t.is_matrix]
        if matrices:
            target = Type(base, min(t.size for t in matrices), min(t.rows for t in matrices))
            if any(not t.is_matrix and not t.is_scalar for _, t in args):
                raise HlslError("cannot mix matrices and vectors component-wise", line)
        else:
            sizes = [t.size for _, t in args if t.size > 1]
            target = Type(base, min(sizes) if sizes else 1)
        return [self.convert(code, kind, target, line) for code, kind in args], target

    # -- program
    def program(self, declarations: list[Node], body: Node) -> str:
        for node in declarations:
            self.top_level(node)
        body_code = self.main_body(body)
        if self.readonly_written:
            # The body writes to read-only inputs or uniforms: translate it again with local copies.
            self.mutable_copies = set(self.readonly_written)
            body_code = self.main_body(body)
        parts = list(self.extra.values()) + self.header
        return "\n".join(parts) + ("\n" if parts else "") + "shader_body {\n" + body_code + "}\n"

    def main_body(self, body: Node) -> str:
        self.readonly_written = set()
        self.scopes.append({})
        lines = []
        for name in sorted(self.mutable_copies):
            symbol = self.scopes[0][name]
            glsl = f"_m_{name}"
            self.scopes[-1][name] = Symbol(symbol.type, glsl, True)
            lines.append(f"  {symbol.type.glsl()} {glsl} = {name};")
        self.return_type = VOID
        # butterchurn leaves `ret` uninitialised; MilkDrop starts it at 0. The shader's own statements go in a
        # block of their own, so a declaration may shadow main()'s locals (rad, ang, ...) as in MilkDrop.
        statements = self.block(body, 1)
        self.scopes.pop()
        return "\n".join([f"  {line}" for line in self.deferred] + lines + ["  ret = vec3(0.0);", "  " + statements]) + "\n"

    def top_level(self, node: Node) -> None:
        if node.kind in ("function", "prototype"):
            self.function(node)
            return
        for kind, name, init, line in node.declarators:
            if kind.base in ("sampler2D", "sampler3D"):
                self.declare_sampler(name, kind)
                continue
            if name in BUILTIN_VALUES or name in WARP_ONLY or name in COMP_ONLY:
                if init is None:
                    continue   # re-declaring a value MilkDrop provides
            if init is None and name.startswith("texsize_") and kind == V4:
                self.lookup(name, line)
                continue
            glsl = self.declare(name, kind, line)
            self.header.append(f"{self.declaration_type(kind)} {glsl}{self.array_suffix(kind)};")
            # GLSL ES wants constant global initializers; HLSL allows any: assign at the start of the body.
            if init is not None:
                self.deferred.append(f"{glsl} = {self.initializer(init, kind, line)};")
            elif not kind.array:
                self.deferred.append(f"{glsl} = {self.convert('0', INT, kind, line)};")

    @staticmethod
    def declaration_type(kind: Type) -> str:
        return kind.element().glsl()

    @staticmethod
    def array_suffix(kind: Type) -> str:
        return f"[{kind.array}]" if kind.array else ""

    def function(self, node: Node) -> None:
        params = []
        self.scopes.append({})
        glsl_params = []
        for direction, kind, name in node.params:
            glsl = self.declare(name, kind, node.line)
            params.append((direction, kind, glsl))
            prefix = "" if direction == "in" else direction + " "
            glsl_params.append(f"{prefix}{self.declaration_type(kind)} {glsl}{self.array_suffix(kind)}")
        existing = self.functions.get(node.name, [])
        same = [f for f in existing if [p[1] for p in f.params] == [p[1] for p in params]]
        if same:
            glsl_name = same[0].glsl
        else:
            glsl_name = f"_h_{node.name}" if node.name in GLSL_RESERVED or "__" in node.name else node.name
            self.functions.setdefault(node.name, []).append(Function(node.name, glsl_name, node.type, params))
        signature = f"{node.type.glsl()} {glsl_name}({', '.join(glsl_params)})"
        if node.kind == "prototype":
            self.scopes.pop()
            self.header.append(signature + ";")
            return
        self.return_type = node.type
        body = self.block(node.body, 0)
        self.scopes.pop()
        self.header.append(f"{signature} {body}")

    def initializer(self, init: Node, kind: Type, line: int) -> str:
        if init.kind != "init_list":
            code, source = self.expression(init)
            return self.convert(code, source, kind, line)
        if kind.array:
            element = kind.element()
            items = [self.initializer(item, element, line) for item in init.items]
            return f"{element.glsl()}[{kind.array}]({', '.join(items)})"
        flat = []
        for item in init.items:
            if item.kind == "init_list":
                raise HlslError("nested initializer lists are only supported for arrays", line)
            code, source = self.expression(item)
            if len(init.items) == 1 and not kind.is_matrix:
                return self.convert(code, source, kind, line)
            scalar = Type("float" if kind.is_matrix else kind.base)
            flat.append(code if source.base == scalar.base or not source.is_scalar
                        else self.convert(code, source, scalar, line))
        return f"{kind.glsl()}({', '.join(flat)})"

    # -- statements
    def block(self, node: Node, depth: int) -> str:
        self.scopes.append({})
        inner = [self.statement(statement, depth + 1) for statement in node.statements]
        self.scopes.pop()
        pad = "  " * depth
        return "{\n" + "".join(line + "\n" for line in inner) + pad + "}"

    def condition(self, node: Node) -> str:
        code, kind = self.expression(node)
        if kind.is_vector:
            raise HlslError("a condition must be a scalar, not a vector", node.line)
        return self.convert(code, kind, BOOL, node.line)

    def statement(self, node: Node, depth: int) -> str:
        pad = "  " * depth
        kind = node.kind
        if kind == "block":
            return pad + self.block(node, depth)
        if kind == "empty":
            return pad + ";"
        if kind == "declaration":
            return pad + self.local_declaration(node)
        if kind == "expression":
            return pad + self.expression(node.expression)[0] + ";"
        if kind == "if":
            text = f"{pad}if ({self.condition(node.condition)}) {self.branch(node.then, depth)}"
            if node.otherwise is not None:
                text += f" else {self.branch(node.otherwise, depth)}"
            return text
        if kind == "while":
            return f"{pad}while ({self.condition(node.condition)}) {self.branch(node.body, depth)}"
        if kind == "do":
            body = self.branch(node.body, depth)
            return f"{pad}do {body} while ({self.condition(node.condition)});"
        if kind == "for":
            self.scopes.append({})
            if node.init is None:
                init = ";"
            elif node.init.kind == "declaration":
                init = self.local_declaration(node.init)
            else:
                init = self.expression(node.init.expression)[0] + ";"
            condition = self.condition(node.condition) if node.condition is not None else ""
            step = self.expression(node.step)[0] if node.step is not None else ""
            body = self.branch(node.body, depth)
            self.scopes.pop()
            return f"{pad}for ({init} {condition}; {step}) {body}"
        if kind in ("break", "continue", "discard"):
            return f"{pad}{kind};"
        if kind == "return":
            if node.value is None:
                return f"{pad}return;"
            code, source = self.expression(node.value)
            if self.return_type == VOID:
                raise HlslError("the shader body cannot return a value", node.line)
            return f"{pad}return {self.convert(code, source, self.return_type, node.line)};"
        raise HlslError(f"unsupported statement {kind}", node.line)

    def branch(self, node: Node, depth: int) -> str:
        if node.kind == "block":
            return self.block(node, depth)
        self.scopes.append({})
        inner = self.statement(node, depth + 1)
        self.scopes.pop()
        return "{\n" + inner + "\n" + "  " * depth + "}"

    def local_declaration(self, node: Node) -> str:
        parts = []
        for kind, name, init, line in node.declarators:
            if kind.base in ("sampler2D", "sampler3D"):
                raise HlslError("samplers must be declared outside the shader body", line)
            code = self.initializer(init, kind, line) if init is not None else None
            glsl = self.declare(name, kind, line)
            text = f"{self.declaration_type(kind)} {glsl}{self.array_suffix(kind)}"
            parts.append(text + (f" = {code};" if code is not None else ";"))
        return " ".join(parts)

    # -- expressions
    def expression(self, node: Node) -> tuple[str, Type]:
        method = getattr(self, f"expr_{node.kind}", None)
        if method is None:
            raise HlslError(f"unsupported expression ({node.kind})", node.line)
        return method(node)

    def expr_literal(self, node: Node) -> tuple[str, Type]:
        if node.type == BOOL:
            return node.value, BOOL
        text = node.value
        if node.type == INT:
            text = text.rstrip("uUlL")
            if text[:2] in ("0x", "0X"):
                return str(int(text, 16)), INT
            octal = len(text) > 1 and text.startswith("0") and set(text) <= set("01234567")
            return str(int(text, 8 if octal else 10)), INT
        text = text.rstrip("fFhHlL")
        if text.startswith("."):
            text = "0" + text
        if "." not in text:
            mantissa, _, exponent = text.partition("e") if "e" in text else text.partition("E")
            text = mantissa + ".0" + (("e" + exponent) if exponent else "")
        elif text.endswith("."):
            text += "0"
        text = text.replace(".e", ".0e").replace(".E", ".0E")
        return text, FLOAT

    def expr_name(self, node: Node) -> tuple[str, Type]:
        symbol = self.lookup(node.name, node.line)
        return symbol.glsl, symbol.type

    def expr_comma(self, node: Node) -> tuple[str, Type]:
        left, _ = self.expression(node.left)
        right, kind = self.expression(node.right)
        return f"({left}, {right})", kind

    def lvalue(self, node: Node) -> tuple[str, Type]:
        root = node
        while root.kind in ("member", "index"):
            root = root.operand
        if root.kind != "name":
            raise HlslError("this expression cannot be assigned to", node.line)
        symbol = self.lookup(root.name, root.line)
        if not symbol.writable:
            if root.name in BUILTIN_VALUES or root.name in WARP_ONLY or root.name in COMP_ONLY:
                # HLSL lets a shader overwrite its inputs and uniforms; GLSL does not: use a local copy
                self.readonly_written.add(root.name)
            else:
                raise HlslError(f"'{root.name}' cannot be assigned to", node.line)
        return self.expression(node)

    def expr_assign(self, node: Node) -> tuple[str, Type]:
        target, kind = self.lvalue(node.target)
        value, source = self.expression(node.value)
        op = node.op
        if op == "=":
            return f"{target} = {self.convert(value, source, kind, node.line)}", kind
        arithmetic = op[:-1]
        if arithmetic == "%" and kind.base == "float":
            converted = self.convert(value, source, kind, node.line)
            return f"{target} = {self.fmod_name()}({target}, {converted})", kind
        if arithmetic == "*" and kind.is_matrix and source.is_matrix:
            return f"{target} = matrixCompMult({target}, {self.convert(value, source, kind, node.line)})", kind
        if source.is_scalar:
            return f"{target} {op} {self.convert(value, source, Type(kind.base), node.line)}", kind
        return f"{target} {op} {self.convert(value, source, kind, node.line)}", kind

    def fmod_name(self) -> str:
        self.extra["_hlsl_fmod"] = FMOD_HELPER
        return "_hlsl_fmod"

    def expr_binary(self, node: Node) -> tuple[str, Type]:
        left = self.expression(node.left)
        right = self.expression(node.right)
        op = node.op
        if op in ("&&", "||"):
            codes = [self.convert(code, kind, BOOL, node.line) if not kind.is_vector else None
                     for code, kind in (left, right)]
            if None in codes:
                raise HlslError(f"'{op}' on vectors is not supported", node.line)
            return f"({codes[0]} {op} {codes[1]})", BOOL
        if op in ("<", ">", "<=", ">=", "==", "!="):
            (a, b), kind = self.unify([left, right], node.line)
            if kind.is_matrix:
                raise HlslError(f"'{op}' on matrices is not supported", node.line)
            if kind.size == 1:
                return f"({a} {op} {b})", BOOL
            function = {"<": "lessThan", ">": "greaterThan", "<=": "lessThanEqual", ">=": "greaterThanEqual",
                        "==": "equal", "!=": "notEqual"}[op]
            return f"{function}({a}, {b})", Type("bool", kind.size)
        if op in ("&", "|", "^", "<<", ">>"):
            (a, b), kind = self.unify([left, right], node.line, base="int")
            return f"({a} {op} {b})", kind
        base = self.arithmetic_base(left[1], right[1])
        sizes = [t.size for _, t in (left, right) if t.size > 1 and not t.is_matrix]
        if left[1].is_matrix or right[1].is_matrix:
            scalars = [side[1].is_scalar for side in (left, right)]
            if any(scalars):
                # a scalar stays a scalar: GLSL's scalar-matrix operators are component-wise, as HLSL's are,
                # while a scalar widened to a matrix would turn `*` into a matrix product
                (matrix_code, kind), (scalar_code, scalar) = (right, left) if scalars[0] else (left, right)
                scalar_code = self.convert(scalar_code, scalar, FLOAT, node.line)
                a, b = (scalar_code, matrix_code) if scalars[0] else (matrix_code, scalar_code)
                return f"({a} {op} {b})", kind
            (a, b), kind = self.unify([left, right], node.line)
            if op == "*" and left[1].is_matrix and right[1].is_matrix:
                return f"matrixCompMult({a}, {b})", kind
        else:
            size = min(sizes) if sizes else 1
            a, b = (self.convert(code, kind, Type(base, min(kind.size, size)), node.line) for code, kind in (left, right))
            kind = Type(base, size)
        if op == "%" and base == "float":
            if left[1].size != right[1].size:
                a, b = (self.convert(code, t, kind, node.line) for code, t in (left, right))
            return f"{self.fmod_name()}({a}, {b})", kind
        return f"({a} {op} {b})", kind

    def expr_unary(self, node: Node) -> tuple[str, Type]:
        if node.op in ("++", "--"):
            code, kind = self.lvalue(node.operand)
            return f"{node.op}{code}", kind
        code, kind = self.expression(node.operand)
        if node.op == "!":
            if kind.is_vector:
                return f"not({self.convert(code, kind, Type('bool', kind.size), node.line)})", Type("bool", kind.size)
            return f"(!{self.convert(code, kind, BOOL, node.line)})", BOOL
        if kind.base == "bool":
            code, kind = self.convert(code, kind, kind.with_base("int"), node.line), kind.with_base("int")
        if node.op == "+":
            return code, kind
        if node.op == "-" and re.fullmatch(r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?", code):
            return f"-{code}", kind     # a negative literal stays a literal (so -1 converts to -1.0)
        if code.startswith(("-", "+")):
            code = f"({code})"          # never '--3': that is a decrement
        return f"({node.op}{code})", kind

    def expr_postfix(self, node: Node) -> tuple[str, Type]:
        code, kind = self.lvalue(node.operand)
        return f"{code}{node.op}", kind

    def expr_cast(self, node: Node) -> tuple[str, Type]:
        code, kind = self.expression(node.operand)
        target = node.type
        if kind.is_scalar and (target.is_vector or target.is_matrix):
            return self.convert(code, kind, target, node.line), target
        if kind.size >= target.size or target.size == 1:
            return self.convert(code, kind, target, node.line), target
        raise HlslError(f"cannot cast {kind.hlsl()} to {target.hlsl()}", node.line)

    def expr_ternary(self, node: Node) -> tuple[str, Type]:
        condition = self.condition(node.condition)
        then = self.expression(node.then)
        otherwise = self.expression(node.otherwise)
        if then[1] == otherwise[1]:
            return f"({condition} ? {then[0]} : {otherwise[0]})", then[1]
        (a, b), kind = self.unify([then, otherwise], node.line)
        return f"({condition} ? {a} : {b})", kind

    def expr_member(self, node: Node) -> tuple[str, Type]:
        code, kind = self.expression(node.operand)
        name = node.field
        if kind.is_matrix:
            match = re.fullmatch(r"(?:_m([0-3])([0-3])|_([1-4])([1-4]))", name)
            if not match:
                raise HlslError(f"unsupported matrix member .{name}", node.line)
            row, col = ((int(match.group(1)), int(match.group(2))) if match.group(1) is not None
                        else (int(match.group(3)) - 1, int(match.group(4)) - 1))
            return f"{code}[{row}][{col}]", FLOAT
        if kind.array or kind.base not in NUMERIC:
            raise HlslError(f"{kind.hlsl()} has no member .{name}", node.line)
        charset = next((chars for chars in SWIZZLE_SETS if all(c in chars for c in name)), None)
        if charset is None or len(name) > 4 or any(charset.index(c) >= kind.size for c in name):
            raise HlslError(f"invalid swizzle .{name} on {kind.hlsl()}", node.line)
        result = Type(kind.base, len(name))
        if kind.size == 1:
            return (code, result) if len(name) == 1 else (f"{result.glsl()}({code})", result)
        return f"{code}.{name}", result

    def expr_index(self, node: Node) -> tuple[str, Type]:
        code, kind = self.expression(node.operand)
        index, index_type = self.expression(node.index)
        index = self.convert(index, index_type, INT, node.line) if index_type != INT else index
        if kind.array:
            return f"{code}[{index}]", kind.element()
        if kind.is_matrix:
            return f"{code}[{index}]", Type(kind.base, kind.size)
        if kind.is_vector:
            return f"{code}[{index}]", Type(kind.base)
        raise HlslError(f"cannot index {kind.hlsl()}", node.line)

    def expr_call(self, node: Node) -> tuple[str, Type]:
        name = node.name
        if name in self.functions:
            return self.user_call(node)
        constructor = parse_type_name(name)
        if constructor is not None and constructor.base in NUMERIC:
            return self.constructor(constructor, node)
        handler = INTRINSICS.get(name)
        if handler is None:
            raise HlslError(f"unknown function '{name}'", node.line)
        return handler(self, node)

    def user_call(self, node: Node) -> tuple[str, Type]:
        candidates = [f for f in self.functions[node.name] if len(f.params) == len(node.args)]
        if not candidates:
            raise HlslError(f"{node.name}() does not take {len(node.args)} arguments", node.line)
        args = [self.lvalue(arg) if candidates[0].params[i][0] != "in" else self.expression(arg)
                for i, arg in enumerate(node.args)]
        function = next((f for f in candidates if all(p[1] == a[1] for p, a in zip(f.params, args))), candidates[0])
        codes = []
        for (direction, kind, _), (code, source) in zip(function.params, args):
            if direction != "in" and source != kind:
                raise HlslError(f"argument of {node.name}() must be exactly {kind.hlsl()} (out parameter)", node.line)
            codes.append(self.convert(code, source, kind, node.line))
        return f"{function.glsl}({', '.join(codes)})", function.type

    def constructor(self, target: Type, node: Node) -> tuple[str, Type]:
        args = [self.expression(arg) for arg in node.args]
        if not args:
            raise HlslError(f"{target.hlsl()}() needs arguments", node.line)
        if len(args) == 1:
            code, source = args[0]
            if source.is_scalar:
                if target.is_matrix:
                    return self.convert(code, source, target, node.line), target
                return f"{target.glsl()}({code})", target
            if target.is_matrix and source.is_vector and source.size == target.rows * target.size:
                return f"{target.glsl()}({code})", target
            return self.convert(code, source, target, node.line), target
        needed = target.size * max(target.rows, 1)
        total = sum(kind.size * max(kind.rows, 1) for _, kind in args)
        if total != needed:
            raise HlslError(f"{target.hlsl()}() gets {total} components, needs {needed}", node.line)
        codes = []
        for code, kind in args:
            if kind.base == "float" or kind.is_vector or kind.is_matrix:
                codes.append(code)
            else:
                codes.append(self.convert(code, kind, FLOAT, node.line) if target.base == "float" else code)
        return f"{target.glsl()}({', '.join(codes)})", target


# ===================================================================================== intrinsics


def _args(emitter: Emitter, node: Node, count: int | tuple) -> list[tuple[str, Type]]:
    counts = (count,) if isinstance(count, int) else count
    if len(node.args) not in counts:
        raise HlslError(f"{node.name}() takes {' or '.join(map(str, counts))} arguments, got {len(node.args)}",
                        node.line)
    return [emitter.expression(arg) for arg in node.args]


def componentwise(glsl: str, count: int, keep_int: bool = False):
    """An intrinsic applied per component: args unified to one float (or int) scalar/vector type."""
    def handler(emitter: Emitter, node: Node) -> tuple[str, Type]:
        args = _args(emitter, node, count)
        base = None if keep_int else "float"
        codes, kind = emitter.unify(args, node.line, base=base)
        if kind.is_matrix:
            raise HlslError(f"{node.name}() on a matrix is not supported", node.line)
        return f"{glsl}({', '.join(codes)})", kind
    return handler


def _saturate(emitter: Emitter, node: Node):
    (code,), kind = emitter.unify(_args(emitter, node, 1), node.line, base="float")
    return f"clamp({code}, 0.0, 1.0)", kind


def _log10(emitter: Emitter, node: Node):
    (code,), kind = emitter.unify(_args(emitter, node, 1), node.line, base="float")
    return f"(log({code}) * 0.4342944819)", kind


def _mad(emitter: Emitter, node: Node):
    (a, b, c), kind = emitter.unify(_args(emitter, node, 3), node.line)
    return f"(({a} * {b}) + {c})", kind


def _fmod(emitter: Emitter, node: Node):
    (a, b), kind = emitter.unify(_args(emitter, node, 2), node.line, base="float")
    return f"{emitter.fmod_name()}({a}, {b})", kind


def _modf(emitter: Emitter, node: Node):
    """modf(x, out whole): the fraction with x's sign, the integer part written to `whole` (GLSL's modf)."""
    if len(node.args) != 2:
        raise HlslError(f"modf() takes 2 arguments, got {len(node.args)}", node.line)
    x, kind = emitter.expression(node.args[0])
    whole, target = emitter.lvalue(node.args[1])
    if target.base != "float" or target.is_matrix:
        raise HlslError(f"modf() needs a float scalar or vector to write the integer part to, got {target.hlsl()}",
                        node.line)
    return f"modf({emitter.convert(x, kind, target, node.line)}, {whole})", target


def _vector_pair(emitter: Emitter, node: Node):
    args = _args(emitter, node, 2)
    codes, kind = emitter.unify(args, node.line, base="float")
    return codes, kind


def _dot(emitter: Emitter, node: Node):
    codes, kind = _vector_pair(emitter, node)
    if kind.size == 1:
        return f"({codes[0]} * {codes[1]})", FLOAT
    return f"dot({codes[0]}, {codes[1]})", FLOAT


def _distance(emitter: Emitter, node: Node):
    codes, _ = _vector_pair(emitter, node)
    return f"distance({codes[0]}, {codes[1]})", FLOAT


def _length(emitter: Emitter, node: Node):
    (code,), _ = emitter.unify(_args(emitter, node, 1), node.line, base="float")
    return f"length({code})", FLOAT


def _cross(emitter: Emitter, node: Node):
    args = _args(emitter, node, 2)
    vec3 = Type("float", 3)
    return f"cross({emitter.convert(*args[0], vec3, node.line)}, {emitter.convert(*args[1], vec3, node.line)})", vec3


def _reflect(emitter: Emitter, node: Node):
    codes, kind = _vector_pair(emitter, node)
    return f"reflect({codes[0]}, {codes[1]})", kind


def _mul(emitter: Emitter, node: Node):
    (a, ta), (b, tb) = _args(emitter, node, 2)
    if ta.is_scalar or tb.is_scalar:
        codes, kind = emitter.unify([(a, ta), (b, tb)], node.line)
        return f"({codes[0]} * {codes[1]})", kind
    if ta.is_vector and tb.is_vector:
        codes, _ = emitter.unify([(a, ta), (b, tb)], node.line, base="float")
        return f"dot({codes[0]}, {codes[1]})", FLOAT
    # Our GLSL matrices are HLSL's transposed (HLSL rows are GLSL columns), so mul(a, b) is b * a.
    if ta.is_vector and tb.is_matrix:
        a = emitter.convert(a, ta, Type("float", tb.rows), node.line)
        return f"({b} * {a})", Type("float", tb.size)
    if ta.is_matrix and tb.is_vector:
        b = emitter.convert(b, tb, Type("float", ta.size), node.line)
        return f"({b} * {a})", Type("float", ta.rows)
    if ta.size != tb.rows:
        raise HlslError(f"mul({ta.hlsl()}, {tb.hlsl()}): sizes do not match", node.line)
    return f"({b} * {a})", Type("float", tb.size, ta.rows)


def _texture(dimensions: int, kind: str = "plain"):
    def handler(emitter: Emitter, node: Node):
        args = _args(emitter, node, (2, 3, 4) if kind == "plain" else 2)
        sampler, sampler_type = args[0]
        expected = SAMPLER2D if dimensions == 2 else SAMPLER3D
        if sampler_type not in (SAMPLER2D, SAMPLER3D):
            raise HlslError(f"{node.name}() needs a sampler first, got {sampler_type.hlsl()}", node.line)
        if sampler_type != expected:
            raise HlslError(f"{node.name}() used on a {sampler_type.hlsl()}", node.line)
        coordinate, coordinate_type = args[1]
        if kind == "plain":
            uv = emitter.convert(coordinate, coordinate_type, Type("float", dimensions), node.line)
            return f"texture({sampler}, {uv})", V4
        vec4 = emitter.convert(coordinate, coordinate_type, V4, node.line)
        swizzle = "xy" if dimensions == 2 else "xyz"
        if kind == "lod":
            return f"textureLod({sampler}, {vec4}.{swizzle}, {vec4}.w)", V4
        return f"texture({sampler}, {vec4}.{swizzle}, {vec4}.w)", V4
    return handler


def _any_all(glsl: str):
    def handler(emitter: Emitter, node: Node):
        (code, kind), = _args(emitter, node, 1)
        if kind.size == 1:
            return emitter.convert(code, kind, BOOL, node.line), BOOL
        if kind.base != "bool":
            code = f"notEqual({code}, {kind.glsl()}(0))"
        return f"{glsl}({code})", BOOL
    return handler


def _sincos(emitter: Emitter, node: Node):
    """sincos(x, out s, out c): an assignment pair (it is only used as a statement)."""
    if len(node.args) != 3:
        raise HlslError(f"sincos() takes 3 arguments, got {len(node.args)}", node.line)
    x, kind = emitter.expression(node.args[0])
    (sine, target), (cosine, _) = emitter.lvalue(node.args[1]), emitter.lvalue(node.args[2])
    x = emitter.convert(x, kind, target, node.line)
    return f"({sine} = sin({x}), {cosine} = cos({x}))", VOID


def _matrix_unary(glsl: str, scalar_result: bool):
    def handler(emitter: Emitter, node: Node):
        (code, kind), = _args(emitter, node, 1)
        if not kind.is_matrix:
            raise HlslError(f"{node.name}() needs a matrix", node.line)
        return f"{glsl}({code})", FLOAT if scalar_result else Type("float", kind.rows, kind.size)
    return handler


INTRINSICS = {
    **{name: componentwise(name, 1) for name in (
        "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp", "exp2", "log", "log2",
        "sqrt", "floor", "ceil", "round", "trunc", "degrees", "radians", "normalize", "fwidth")},
    "frac": componentwise("fract", 1), "rsqrt": componentwise("inversesqrt", 1),
    "ddx": componentwise("dFdx", 1), "ddy": componentwise("dFdy", 1),
    "abs": componentwise("abs", 1, keep_int=True), "sign": componentwise("sign", 1, keep_int=True),
    "min": componentwise("min", 2, keep_int=True), "max": componentwise("max", 2, keep_int=True),
    "clamp": componentwise("clamp", 3, keep_int=True),
    "pow": componentwise("pow", 2), "atan2": componentwise("atan", 2), "step": componentwise("step", 2),
    "lerp": componentwise("mix", 3), "smoothstep": componentwise("smoothstep", 3),
    "saturate": _saturate, "log10": _log10, "mad": _mad, "fmod": _fmod, "modf": _modf,
    "dot": _dot, "distance": _distance, "length": _length, "cross": _cross, "reflect": _reflect, "mul": _mul,
    "tex2D": _texture(2), "tex3D": _texture(3), "tex2Dlod": _texture(2, "lod"), "tex3Dlod": _texture(3, "lod"),
    "tex2Dbias": _texture(2, "bias"), "tex3Dbias": _texture(3, "bias"),
    "any": _any_all("any"), "all": _any_all("all"), "sincos": _sincos,
    "transpose": _matrix_unary("transpose", False), "determinant": _matrix_unary("determinant", True),
}


# ============================================================================================ API


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
