"""The names a shader sees, and the scopes that hold them while the emitter walks the tree.

butterchurn's shader header declares the uniforms and samplers MilkDrop provides (`BUILTIN_VALUES`,
`BUILTIN_SAMPLERS`); a few MilkDrop values it lacks are declared on demand (`EXTRA_VALUES`), and a user name
that GLSL ES reserves (or butterchurn's header already uses) is renamed with a `_h_` prefix. `Scopes` is the
emitter's symbol table: one dict per open block, outermost first, and the header declarations that looking
a name up may add (a user sampler, a MilkDrop constant).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import HlslError
from .types import FLOAT, SAMPLER2D, SAMPLER3D, V4, Type

NOISE_TEXTURES = ("noise_lq", "noise_lq_lite", "noise_mq", "noise_hq", "noisevol_lq", "noisevol_hq")
# Samplers butterchurn declares itself (and binds); 3D ones are the volume noise textures.
BUILTIN_SAMPLERS = {f"sampler_{name}": (SAMPLER3D if name.startswith("noisevol") else SAMPLER2D)
                    for name in ("main", "fw_main", "fc_main", "pw_main", "pc_main", "blur1", "blur2", "blur3",
                                 "pw_noise_lq") + NOISE_TEXTURES}
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


@dataclass
class Symbol:
    type: Type
    glsl: str
    writable: bool = True


class Scopes:
    """Declared names by block, innermost last; `scopes[0]` holds the globals and what the header provides."""

    def __init__(self, stage: str):
        self.scopes: list[dict[str, Symbol]] = [{}]
        self.header: list[str] = []           # declarations in source order
        self.extra: dict[str, str] = {}       # on-demand declarations (helpers, MilkDrop constants)
        self.user_samplers: list[str] = []
        builtins = {**BUILTIN_VALUES, **(WARP_ONLY if stage == "warp" else COMP_ONLY)}
        # main()'s own locals are writable; uniforms and (in warp) the inputs uv/uv_orig are not
        writable = {"ret", "rad", "ang"} | ({"uv", "uv_orig", "hue_shader"} if stage == "comp" else set())
        for name, kind in builtins.items():
            self.scopes[0][name] = Symbol(kind, name, name in writable)
        for name, kind in BUILTIN_SAMPLERS.items():
            self.scopes[0][name] = Symbol(kind, name, False)

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

