"""Stage 3, types: what HLSL's values are, and how one becomes another.

`Type` is every value a MilkDrop shader can hold (scalars, vectors, HLSL's row-major matrices, arrays,
samplers), `parse_type_name` reads HLSL's spelling of one (`float3`, `half1`, `float3x2`). HLSL converts
between them implicitly where GLSL ES wants every conversion written out: `convert` writes one, `unify`
brings several operands to the one type a component-wise operator or intrinsic works in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import HlslError


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
V4 = Type("float", 4)
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


def literal_float(code: str) -> str | None:
    """An integer literal's text as a float literal ('3' -> '3.0'), else None."""
    return code + ".0" if re.fullmatch(r"-?\d+", code) else None


def convert(code: str, source: Type, target: Type, line: int) -> str:
    """`code`, of type `source`, as a `target`: HLSL converts implicitly where GLSL needs it written out
    (scalar to vector, vector truncation, int/bool to float, float to bool)."""
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
            scalar = convert(code, source, FLOAT, line)
            return f"{target.glsl()}({', '.join([scalar] * (target.rows * target.size))})"
        raise HlslError(f"cannot convert {source.hlsl()} to {target.hlsl()}", line)
    if source.is_matrix:
        if target.size == 1:
            return convert(f"{code}[0][0]", FLOAT, target, line)
        raise HlslError(f"cannot convert {source.hlsl()} to {target.hlsl()}", line)
    if target.size == 1:
        if source.size > 1:
            code = f"{code}.x"
        if source.base == target.base:
            return code
        if target.base == "float":
            literal = literal_float(code)
            if literal:
                return literal
        if target.base == "bool" and source.base == "float":
            return f"({code} != 0.0)"
        return f"{target.base}({code})"
    if source.size == 1:
        if source.base != target.base and target.base == "float" and literal_float(code):
            code = literal_float(code)
        return f"{target.glsl()}({code})"
    if source.size < target.size:
        raise HlslError(f"cannot convert {source.hlsl()} to {target.hlsl()} (too few components)", line)
    if source.size > target.size:
        code = f"{code}.{'xyzw'[:target.size]}"
    if source.base != target.base:
        code = f"{target.glsl()}({code})"
    return code


def arithmetic_base(*types: Type) -> str:
    """The base an arithmetic operator computes in: float wins, then int (bool counts as int)."""
    bases = {t.base for t in types}
    if "float" in bases:
        return "float"
    if "int" in bases or "bool" in bases:
        return "int"
    return "uint"


def unify(args: list[tuple[str, Type]], line: int, base: str | None = None) -> tuple[list[str], Type]:
    """HLSL's component-wise rule: scalars widen, vectors truncate to the smallest; one common base."""
    for _, kind in args:
        if kind.array or kind.base in ("sampler2D", "sampler3D", "void"):
            raise HlslError(f"{kind.hlsl()} is not a number", line)
    base = base or arithmetic_base(*(t for _, t in args))
    matrices = [t for _, t in args if t.is_matrix]
    if matrices:
        target = Type(base, min(t.size for t in matrices), min(t.rows for t in matrices))
        if any(not t.is_matrix and not t.is_scalar for _, t in args):
            raise HlslError("cannot mix matrices and vectors component-wise", line)
    else:
        sizes = [t.size for _, t in args if t.size > 1]
        target = Type(base, min(sizes) if sizes else 1)
    return [convert(code, kind, target, line) for code, kind in args], target
