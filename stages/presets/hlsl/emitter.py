"""Stage 4, GLSL emission: the syntax tree type-checked and written as butterchurn's `shader_body` GLSL.

Each expression is emitted as `(code, Type)`: the code is GLSL ES 3.0 and the type is what HLSL says it is,
so every implicit HLSL conversion can be written out where it happens (`types.convert`). Calls go, in
order, to a user function, a type constructor, or the intrinsics table (`intrinsics.INTRINSICS`).
Globals become declarations before `shader_body`; their initializers run at the start of the body, as
GLSL ES wants constant global initializers and HLSL allows any.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import HlslError
from .intrinsics import INTRINSICS
from .names import BUILTIN_VALUES, COMP_ONLY, GLSL_RESERVED, WARP_ONLY, Scopes, Symbol
from .parser import Node
from .types import BOOL, FLOAT, INT, NUMERIC, V4, VOID, Type, arithmetic_base, convert, parse_type_name, unify

SWIZZLE_SETS = ("xyzw", "rgba")
FMOD_HELPER = "\n".join(
    f"{t} _hlsl_fmod({t} a, {t} b) {{ return a - b * trunc(a / b); }}" for t in ("float", "vec2", "vec3", "vec4"))


@dataclass
class Function:
    name: str
    glsl: str
    type: Type
    params: list[tuple[str, Type, str]]


class Emitter(Scopes):
    """Type-checks the AST and writes GLSL; every implicit HLSL conversion becomes explicit."""

    def __init__(self, stage: str):
        super().__init__(stage)
        self.functions: dict[str, list[Function]] = {}
        self.deferred: list[str] = []         # global initializers, run at the start of the body
        self.readonly_written: set[str] = set()
        self.mutable_copies: set[str] = set()
        self.return_type: Type | None = None

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
                self.deferred.append(f"{glsl} = {convert('0', INT, kind, line)};")

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
            return convert(code, source, kind, line)
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
                return convert(code, source, kind, line)
            scalar = Type("float" if kind.is_matrix else kind.base)
            flat.append(code if source.base == scalar.base or not source.is_scalar
                        else convert(code, source, scalar, line))
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
        return convert(code, kind, BOOL, node.line)

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
            return f"{pad}return {convert(code, source, self.return_type, node.line)};"
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
            return f"{target} = {convert(value, source, kind, node.line)}", kind
        arithmetic = op[:-1]
        if arithmetic == "%" and kind.base == "float":
            converted = convert(value, source, kind, node.line)
            return f"{target} = {self.fmod_name()}({target}, {converted})", kind
        if arithmetic == "*" and kind.is_matrix and source.is_matrix:
            return f"{target} = matrixCompMult({target}, {convert(value, source, kind, node.line)})", kind
        if source.is_scalar:
            return f"{target} {op} {convert(value, source, Type(kind.base), node.line)}", kind
        return f"{target} {op} {convert(value, source, kind, node.line)}", kind

    def fmod_name(self) -> str:
        self.extra["_hlsl_fmod"] = FMOD_HELPER
        return "_hlsl_fmod"

    def expr_binary(self, node: Node) -> tuple[str, Type]:
        left = self.expression(node.left)
        right = self.expression(node.right)
        op = node.op
        if op in ("&&", "||"):
            codes = [convert(code, kind, BOOL, node.line) if not kind.is_vector else None
                     for code, kind in (left, right)]
            if None in codes:
                raise HlslError(f"'{op}' on vectors is not supported", node.line)
            return f"({codes[0]} {op} {codes[1]})", BOOL
        if op in ("<", ">", "<=", ">=", "==", "!="):
            (a, b), kind = unify([left, right], node.line)
            if kind.is_matrix:
                raise HlslError(f"'{op}' on matrices is not supported", node.line)
            if kind.size == 1:
                return f"({a} {op} {b})", BOOL
            function = {"<": "lessThan", ">": "greaterThan", "<=": "lessThanEqual", ">=": "greaterThanEqual",
                        "==": "equal", "!=": "notEqual"}[op]
            return f"{function}({a}, {b})", Type("bool", kind.size)
        if op in ("&", "|", "^", "<<", ">>"):
            (a, b), kind = unify([left, right], node.line, base="int")
            return f"({a} {op} {b})", kind
        base = arithmetic_base(left[1], right[1])
        sizes = [t.size for _, t in (left, right) if t.size > 1 and not t.is_matrix]
        if left[1].is_matrix or right[1].is_matrix:
            scalars = [side[1].is_scalar for side in (left, right)]
            if any(scalars):
                # a scalar stays a scalar: GLSL's scalar-matrix operators are component-wise, as HLSL's are,
                # while a scalar widened to a matrix would turn `*` into a matrix product
                (matrix_code, kind), (scalar_code, scalar) = (right, left) if scalars[0] else (left, right)
                scalar_code = convert(scalar_code, scalar, FLOAT, node.line)
                a, b = (scalar_code, matrix_code) if scalars[0] else (matrix_code, scalar_code)
                return f"({a} {op} {b})", kind
            (a, b), kind = unify([left, right], node.line)
            if op == "*" and left[1].is_matrix and right[1].is_matrix:
                return f"matrixCompMult({a}, {b})", kind
        else:
            size = min(sizes) if sizes else 1
            a, b = (convert(code, kind, Type(base, min(kind.size, size)), node.line) for code, kind in (left, right))
            kind = Type(base, size)
        if op == "%" and base == "float":
            if left[1].size != right[1].size:
                a, b = (convert(code, t, kind, node.line) for code, t in (left, right))
            return f"{self.fmod_name()}({a}, {b})", kind
        return f"({a} {op} {b})", kind

    def expr_unary(self, node: Node) -> tuple[str, Type]:
        if node.op in ("++", "--"):
            code, kind = self.lvalue(node.operand)
            return f"{node.op}{code}", kind
        code, kind = self.expression(node.operand)
        if node.op == "!":
            if kind.is_vector:
                return f"not({convert(code, kind, Type('bool', kind.size), node.line)})", Type("bool", kind.size)
            return f"(!{convert(code, kind, BOOL, node.line)})", BOOL
        if kind.base == "bool":
            code, kind = convert(code, kind, kind.with_base("int"), node.line), kind.with_base("int")
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
            return convert(code, kind, target, node.line), target
        if kind.size >= target.size or target.size == 1:
            return convert(code, kind, target, node.line), target
        raise HlslError(f"cannot cast {kind.hlsl()} to {target.hlsl()}", node.line)

    def expr_ternary(self, node: Node) -> tuple[str, Type]:
        condition = self.condition(node.condition)
        then = self.expression(node.then)
        otherwise = self.expression(node.otherwise)
        if then[1] == otherwise[1]:
            return f"({condition} ? {then[0]} : {otherwise[0]})", then[1]
        (a, b), kind = unify([then, otherwise], node.line)
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
        index = convert(index, index_type, INT, node.line) if index_type != INT else index
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
            codes.append(convert(code, source, kind, node.line))
        return f"{function.glsl}({', '.join(codes)})", function.type

    def constructor(self, target: Type, node: Node) -> tuple[str, Type]:
        args = [self.expression(arg) for arg in node.args]
        if not args:
            raise HlslError(f"{target.hlsl()}() needs arguments", node.line)
        if len(args) == 1:
            code, source = args[0]
            if source.is_scalar:
                if target.is_matrix:
                    return convert(code, source, target, node.line), target
                return f"{target.glsl()}({code})", target
            if target.is_matrix and source.is_vector and source.size == target.rows * target.size:
                return f"{target.glsl()}({code})", target
            return convert(code, source, target, node.line), target
        needed = target.size * max(target.rows, 1)
        total = sum(kind.size * max(kind.rows, 1) for _, kind in args)
        if total != needed:
            raise HlslError(f"{target.hlsl()}() gets {total} components, needs {needed}", node.line)
        codes = []
        for code, kind in args:
            if kind.base == "float" or kind.is_vector or kind.is_matrix:
                codes.append(code)
            else:
                codes.append(convert(code, kind, FLOAT, node.line) if target.base == "float" else code)
        return f"{target.glsl()}({', '.join(codes)})", target

