"""Stage 2, the syntax tree: a recursive-descent parser from tokens to `Node`s.

A shader is top-level declarations (globals, samplers, user functions) followed by `shader_body { ... }`;
what follows the body's closing brace is dropped, as MilkDrop does. Expressions follow C's precedence
(`BINARY_LEVELS`, loosest first); casts, swizzles and calls are all plain nodes: the emitter gives them
meaning. Types appear here only as names read by `types.parse_type_name`.
"""
from __future__ import annotations

from .errors import HlslError
from .tokens import Token
from .types import BOOL, FLOAT, INT, Type, parse_type_name


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
