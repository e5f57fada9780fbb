"""Stage 5, intrinsics: HLSL's built-in functions, one table row each (`INTRINSICS`, at the end).

A row maps the HLSL name to a handler `(emitter, call node) -> (GLSL code, Type)`. Most are one GLSL
function applied per component (`componentwise`: `frac` -> `fract`, `lerp` -> `mix`, `atan2` -> `atan`);
the rest differ from GLSL in arguments or meaning and have a handler of their own (`mul` with HLSL's
row-major matrices, `fmod` truncating, `tex2Dlod` unpacking its float4, `sincos` writing two outputs).
"""
from __future__ import annotations

from typing import Protocol

from .errors import HlslError
from .parser import Node
from .types import BOOL, FLOAT, SAMPLER2D, SAMPLER3D, V4, VOID, Type, convert, unify


class Emitting(Protocol):
    """What a handler asks of the emitter: its arguments' code and types, and the fmod helper's name."""

    def expression(self, node: Node) -> tuple[str, Type]: ...

    def lvalue(self, node: Node) -> tuple[str, Type]: ...

    def fmod_name(self) -> str: ...


def _args(emitter: Emitting, node: Node, count: int | tuple) -> list[tuple[str, Type]]:
    counts = (count,) if isinstance(count, int) else count
    if len(node.args) not in counts:
        raise HlslError(f"{node.name}() takes {' or '.join(map(str, counts))} arguments, got {len(node.args)}",
                        node.line)
    return [emitter.expression(arg) for arg in node.args]


def componentwise(glsl: str, count: int, keep_int: bool = False):
    """An intrinsic applied per component: args unified to one float (or int) scalar/vector type."""
    def handler(emitter: Emitting, node: Node) -> tuple[str, Type]:
        args = _args(emitter, node, count)
        base = None if keep_int else "float"
        codes, kind = unify(args, node.line, base=base)
        if kind.is_matrix:
            raise HlslError(f"{node.name}() on a matrix is not supported", node.line)
        return f"{glsl}({', '.join(codes)})", kind
    return handler


def _saturate(emitter: Emitting, node: Node):
    (code,), kind = unify(_args(emitter, node, 1), node.line, base="float")
    return f"clamp({code}, 0.0, 1.0)", kind


def _log10(emitter: Emitting, node: Node):
    (code,), kind = unify(_args(emitter, node, 1), node.line, base="float")
    return f"(log({code}) * 0.4342944819)", kind


def _mad(emitter: Emitting, node: Node):
    (a, b, c), kind = unify(_args(emitter, node, 3), node.line)
    return f"(({a} * {b}) + {c})", kind


def _fmod(emitter: Emitting, node: Node):
    (a, b), kind = unify(_args(emitter, node, 2), node.line, base="float")
    return f"{emitter.fmod_name()}({a}, {b})", kind


def _modf(emitter: Emitting, node: Node):
    """modf(x, out whole): the fraction with x's sign, the integer part written to `whole` (GLSL's modf)."""
    if len(node.args) != 2:
        raise HlslError(f"modf() takes 2 arguments, got {len(node.args)}", node.line)
    x, kind = emitter.expression(node.args[0])
    whole, target = emitter.lvalue(node.args[1])
    if target.base != "float" or target.is_matrix:
        raise HlslError(f"modf() needs a float scalar or vector to write the integer part to, got {target.hlsl()}",
                        node.line)
    return f"modf({convert(x, kind, target, node.line)}, {whole})", target


def _vector_pair(emitter: Emitting, node: Node):
    args = _args(emitter, node, 2)
    codes, kind = unify(args, node.line, base="float")
    return codes, kind


def _dot(emitter: Emitting, node: Node):
    codes, kind = _vector_pair(emitter, node)
    if kind.size == 1:
        return f"({codes[0]} * {codes[1]})", FLOAT
    return f"dot({codes[0]}, {codes[1]})", FLOAT


def _distance(emitter: Emitting, node: Node):
    codes, _ = _vector_pair(emitter, node)
    return f"distance({codes[0]}, {codes[1]})", FLOAT


def _length(emitter: Emitting, node: Node):
    (code,), _ = unify(_args(emitter, node, 1), node.line, base="float")
    return f"length({code})", FLOAT


def _cross(emitter: Emitting, node: Node):
    args = _args(emitter, node, 2)
    vec3 = Type("float", 3)
    return f"cross({convert(*args[0], vec3, node.line)}, {convert(*args[1], vec3, node.line)})", vec3


def _reflect(emitter: Emitting, node: Node):
    codes, kind = _vector_pair(emitter, node)
    return f"reflect({codes[0]}, {codes[1]})", kind


def _mul(emitter: Emitting, node: Node):
    (a, ta), (b, tb) = _args(emitter, node, 2)
    if ta.is_scalar or tb.is_scalar:
        codes, kind = unify([(a, ta), (b, tb)], node.line)
        return f"({codes[0]} * {codes[1]})", kind
    if ta.is_vector and tb.is_vector:
        codes, _ = unify([(a, ta), (b, tb)], node.line, base="float")
        return f"dot({codes[0]}, {codes[1]})", FLOAT
    # Our GLSL matrices are HLSL's transposed (HLSL rows are GLSL columns), so mul(a, b) is b * a.
    if ta.is_vector and tb.is_matrix:
        a = convert(a, ta, Type("float", tb.rows), node.line)
        return f"({b} * {a})", Type("float", tb.size)
    if ta.is_matrix and tb.is_vector:
        b = convert(b, tb, Type("float", ta.size), node.line)
        return f"({b} * {a})", Type("float", ta.rows)
    if ta.size != tb.rows:
        raise HlslError(f"mul({ta.hlsl()}, {tb.hlsl()}): sizes do not match", node.line)
    return f"({b} * {a})", Type("float", tb.size, ta.rows)


def _texture(dimensions: int, kind: str = "plain"):
    def handler(emitter: Emitting, node: Node):
        args = _args(emitter, node, (2, 3, 4) if kind == "plain" else 2)
        sampler, sampler_type = args[0]
        expected = SAMPLER2D if dimensions == 2 else SAMPLER3D
        if sampler_type not in (SAMPLER2D, SAMPLER3D):
            raise HlslError(f"{node.name}() needs a sampler first, got {sampler_type.hlsl()}", node.line)
        if sampler_type != expected:
            raise HlslError(f"{node.name}() used on a {sampler_type.hlsl()}", node.line)
        coordinate, coordinate_type = args[1]
        if kind == "plain":
            uv = convert(coordinate, coordinate_type, Type("float", dimensions), node.line)
            return f"texture({sampler}, {uv})", V4
        vec4 = convert(coordinate, coordinate_type, V4, node.line)
        swizzle = "xy" if dimensions == 2 else "xyz"
        if kind == "lod":
            return f"textureLod({sampler}, {vec4}.{swizzle}, {vec4}.w)", V4
        return f"texture({sampler}, {vec4}.{swizzle}, {vec4}.w)", V4
    return handler


def _any_all(glsl: str):
    def handler(emitter: Emitting, node: Node):
        (code, kind), = _args(emitter, node, 1)
        if kind.size == 1:
            return convert(code, kind, BOOL, node.line), BOOL
        if kind.base != "bool":
            code = f"notEqual({code}, {kind.glsl()}(0))"
        return f"{glsl}({code})", BOOL
    return handler


def _sincos(emitter: Emitting, node: Node):
    """sincos(x, out s, out c): an assignment pair (it is only used as a statement)."""
    if len(node.args) != 3:
        raise HlslError(f"sincos() takes 3 arguments, got {len(node.args)}", node.line)
    x, kind = emitter.expression(node.args[0])
    (sine, target), (cosine, _) = emitter.lvalue(node.args[1]), emitter.lvalue(node.args[2])
    x = convert(x, kind, target, node.line)
    return f"({sine} = sin({x}), {cosine} = cos({x}))", VOID


def _matrix_unary(glsl: str, scalar_result: bool):
    def handler(emitter: Emitting, node: Node):
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
