"""The HLSL -> GLSL translator, construct by construct (the GLSL is compiled in Chromium by test_screen.py)."""

import pytest

from stages.presets.hlsl import HlslError, Preprocessor, parse_type_name, translate
from stages.presets.milk import read_milk


def body(code: str, stage: str = "warp", header: str = "") -> str:
    """Translate `code` as a shader body; return the GLSL text."""
    return translate(f"{header}\nshader_body {{\n{code}\n}}", stage).text


def test_empty_shader_means_butterchurns_default():
    assert translate("", "warp").text == "" and translate("  \n", "comp").text == ""


def test_output_is_butterchurns_form():
    text = body("ret = tex2D(sampler_main, uv).xyz;")
    assert text.count("shader_body {") == 1 and text.rstrip().endswith("}")
    assert "ret = texture(sampler_main, uv).xyz;" in text
    assert "ret = vec3(0.0);" in text     # MilkDrop starts ret at 0; butterchurn leaves it undefined


@pytest.mark.parametrize("name, glsl", [
    ("float", "float"), ("float1", "float"), ("half1", "float"), ("double3", "vec3"), ("half4", "vec4"),
    ("int2", "ivec2"), ("bool3", "bvec3"), ("float2x2", "mat2"), ("float3x2", "mat3x2"), ("float1x3", "vec3")])
def test_type_names(name, glsl):
    assert parse_type_name(name).glsl() == glsl


def test_multi_variable_declarations():
    text = body("float3 one, two = 1, three = uv.xyx;")
    assert "vec3 one; vec3 two = vec3(1.0); vec3 three = uv.xyx;" in text


def test_scalar_to_vector_and_vector_truncation():
    text = body("float2 a = 0.5; float3 b = tex2D(sampler_main, uv); float c = b; ret = c;")
    assert "vec2 a = vec2(0.5);" in text
    assert "vec3 b = texture(sampler_main, uv).xyz;" in text
    assert "float c = b.x;" in text
    assert "ret = vec3(c);" in text


def test_int_and_bool_to_float():
    text = body("int n = 3; float f = n / 2; bool t = f > 1; float g = 1 - t; ret = n * uv.x;")
    assert "float f = float((n / 2));" in text           # HLSL's integer division is kept
    assert "float g = float((1 - int(t)));" in text
    assert "ret = vec3((float(n) * uv.x));" in text


def test_mixed_vector_sizes_truncate_to_the_smaller():
    text = body("float3 a = 1; float2 b = a + uv;")
    assert "vec2 b = (a.xy + uv);" in text


def test_lower_case_tex2d_and_tex3d():
    text = body("ret = tex2d(sampler_main, uv).xyz + tex3d(sampler_noisevol_lq, float3(uv, time)).xyz;")
    assert "texture(sampler_main, uv).xyz" in text and "texture(sampler_noisevol_lq, vec3(uv, time)).xyz" in text


def test_texture_coordinates_are_truncated_to_the_sampler_dimension():
    assert "texture(sampler_main, ret.xy)" in body("ret = tex2D(sampler_main, ret).xyz;")


def test_modulo_and_fmod_truncate_like_hlsl():
    text = body("float a = uv.x % 0.25; float b = fmod(uv.y, 2); int c = 7 % 3;")
    assert "float _hlsl_fmod(float a, float b) { return a - b * trunc(a / b); }" in text
    assert "float a = _hlsl_fmod(uv.x, 0.25);" in text and "float b = _hlsl_fmod(uv.y, 2.0);" in text
    assert "int c = (7 % 3);" in text


@pytest.mark.parametrize("hlsl, glsl", [
    ("lerp(ret, 1, 0.5)", "mix(ret, vec3(1.0), vec3(0.5))"),
    ("frac(ret)", "fract(ret)"),
    ("saturate(ret)", "clamp(ret, 0.0, 1.0)"),
    ("atan2(uv.y, uv.x)", "atan(uv.y, uv.x)"),
    ("rsqrt(uv.x)", "inversesqrt(uv.x)"),
    ("tan(time)", "tan(time)"),
    ("log10(uv.x)", "(log(uv.x) * 0.4342944819)"),
    ("pow(ret, 2)", "pow(ret, vec3(2.0))"),
    ("max(ret, uv.x)", "max(ret, vec3(uv.x))"),
    ("mad(ret, 2, 1)", "((ret * vec3(2.0)) + vec3(1.0))"),
    ("dot(ret, uv)", "dot(ret.xy, uv)"),
])
def test_intrinsics(hlsl, glsl):
    assert glsl in body(f"ret = {hlsl};")


def test_milkdrop_helpers():
    text = body("ret = GetPixel(uv) + GetBlur1(uv) + GetBlur2(uv) + GetBlur3(uv) + lum(ret);", stage="comp")
    assert "texture(sampler_main, uv).xyz" in text
    for n in (1, 2, 3):
        assert f"((texture(sampler_blur{n}, uv).xyz * scale{n}) + bias{n})" in text
    # MilkDrop's lum() is a float (butterchurn's comp header has a vec3 lum of its own): a dot product here
    assert "+ dot(ret, vec3(0.32, 0.49, 0.29)));" in text and "lum(" not in text


def test_q_variables_and_their_vectors():
    text = body("float2x2 m = float2x2(_qb); ret = q1 + _qa.y;")
    assert "mat2 m = mat2(_qb);" in text and "(q1 + _qa.y)" in text


def test_writing_read_only_inputs_and_uniforms_uses_local_copies():
    text = body("uv += 0.1; q3 = 1; ret = tex2D(sampler_main, uv).xyz * q3;", stage="warp")
    assert "vec2 _m_uv = uv;" in text and "float _m_q3 = q3;" in text
    assert "_m_uv += 0.1;" in text and "texture(sampler_main, _m_uv)" in text
    comp = body("uv += 0.1;", stage="comp")       # in comp, uv is a local of butterchurn's main: writable
    assert "uv += 0.1;" in comp and "_m_uv" not in comp


def test_user_samplers_and_texsize():
    text = body("ret = tex2D(sampler_worms, uv * texsize_worms.xy).xyz + tex2D(sampler_fw_main, uv).xyz;",
                header="sampler sampler_worms; float4 texsize_worms; sampler2D sampler_fc_main;")
    assert "uniform sampler2D sampler_worms;" in text    # the exact form butterchurn binds user textures by
    assert "const vec4 texsize_worms = vec4(128.0" in text
    assert "uniform sampler2D sampler_fc_main" not in text    # butterchurn declares that one itself


def test_filter_prefix_on_a_builtin_texture_maps_to_it():
    text = body("ret = tex3D(sampler_fw_noisevol_hq, float3(uv, 0)).xyz;", header="sampler sampler_fw_noisevol_hq;")
    assert "texture(sampler_noisevol_hq, vec3(uv, 0.0))" in text and "uniform" not in text


def test_sampler_state_blocks_are_skipped():
    text = body("ret = tex2D(sampler_grad, uv).xyz;",
                header="sampler sampler_grad = sampler_state { Filter = MIN_MAG_MIP_POINT; };")
    assert "uniform sampler2D sampler_grad;" in text


def test_preprocessor_defines_and_conditionals():
    header = """#define AMOUNT 0.5
#define SCALE(x) ((x) * AMOUNT)
#define sampler_pic sampler_main
#if AMOUNT > 1
#error never
#elif defined(SCALE) && !defined(NOPE)
#define PICKED 2
#else
#define PICKED 3
#endif
#ifdef NOPE
broken tokens here
#endif"""
    text = body("ret = SCALE(tex2D(sampler_pic, uv).xyz) * PICKED;", header=header)
    assert "ret = ((texture(sampler_main, uv).xyz * 0.5) * 2.0);" in text


def test_macro_argument_mismatch_is_an_error():
    with pytest.raises(HlslError, match="macro SCALE takes 1 arguments, got 2"):
        Preprocessor().run("#define SCALE(x) (x)\nfloat a = SCALE(1, 2);")


def test_loops_and_control_flow():
    text = body("""int n = 0;
while (n < 4) { n++; if (n == 2) continue; }
do { n--; } while (n > 0);
for (int i = 0; i < 3; i++) { if (i > uv.x) break; }
[unroll] for (float f = 0; f < 1; f += 0.5) ret += f;""")
    assert "while ((n < 4)) {" in text and "do {" in text and "} while ((n > 0));" in text
    assert "for (int i = 0; (i < 3); i++) {" in text
    assert "if ((float(i) > uv.x)) {" in text
    assert "for (float f = 0.0; (f < 1.0); f += 0.5) {" in text


def test_float_conditions_become_bool():
    assert "if ((uv.x != 0.0)) {" in body("if (uv.x) ret = 1;")
    assert "((uv.x != 0.0) && (uv.y != 0.0))" in body("ret = (uv.x && uv.y) ? 1 : 0;")


def test_vector_comparisons_are_component_wise():
    text = body("bool2 b = uv < 0.5; ret.xy = b;")
    assert "bvec2 b = lessThan(uv, vec2(0.5));" in text and "ret.xy = vec2(b);" in text


def test_scalar_swizzles_and_casts():
    text = body("float a = 0.5; ret = a.xxx; float2 b = (float2)a; float c = (float)ret;")
    assert "ret = vec3(a);" in text and "vec2 b = vec2(a);" in text and "float c = ret.x;" in text


def test_mul_follows_hlsl_row_vectors():
    # GLSL matrices here are HLSL's transposed: mul(v, M) is M * v, mul(M, v) is v * M.
    text = body("float2x2 m = {1, 2, 3, 4}; float2 a = mul(uv, m); float2 b = mul(m, uv); float c = mul(uv, uv);")
    assert "mat2 m = mat2(1.0, 2.0, 3.0, 4.0);" in text
    assert "vec2 a = (m * uv);" in text and "vec2 b = (uv * m);" in text and "float c = dot(uv, uv);" in text


def test_user_functions_and_out_parameters():
    header = """float2 rot(float2 p, float a) { float s, c; sincos(a, s, c); return float2(p.x*c - p.y*s, p.x*s + p.y*c); }
void split(float3 v, out float a, inout float b) { a = v.x; b += v.y; }
float sample(float input) { return input * 2; }"""
    text = body("float a, b = 0; split(ret, a, b); ret.xy = rot(uv, time) + sample(1);", header=header)
    assert "vec2 rot(vec2 p, float a) {" in text
    assert "(s = sin(a), c = cos(a));" in text
    assert "void split(vec3 v, out float a, inout float b) {" in text
    assert "float _h_sample(float _h_input) {" in text        # GLSL reserves `sample` and `input`
    assert "(rot(uv, time) + _h_sample(1.0))" in text


def test_global_initializers_run_at_the_start_of_the_body():
    text = body("ret = sw;", header="static const float sw = (rand_preset.x) >= .4; float3 zero;")
    assert "float sw;" in text and "sw = float((rand_preset.x >= 0.4));" in text
    assert "zero = vec3(0.0);" in text
    assert text.index("sw = float") < text.index("ret = vec3(sw);")


def test_milkdrop_constants_butterchurn_lacks():
    text = body("ret = M_PI + M_PI_2 * M_INV_PI_2;")
    assert "const float M_PI = 3.14159265359;" in text and "const float M_INV_PI_2" in text


def test_literals():
    text = body("float a = .5f + 1. + 2e-1 + 1e2; int b = 0x10 + 010 + 02;")
    assert "float a = (((0.5 + 1.0) + 2.0e-1) + 1.0e2);" in text
    assert "int b = ((16 + 8) + 2);" in text


def test_negative_literals_and_double_negation():
    text = body("float2 a = float2(0, -1024); ret = -(-3) - -uv.x;")
    assert "vec2 a = vec2(0.0, -1024.0);" in text
    assert "ret = vec3((float((-(-3))) - (-uv.x)));" in text


def test_shadowing_mains_locals_is_allowed():
    text = body("float rad = 1; ret = rad;", stage="comp")
    assert "float rad = 1.0;" in text


@pytest.mark.parametrize("source, message", [
    ("shader_body { ret = nothing_here; }", "line 1: undeclared identifier 'nothing_here'"),
    ("shader_body {\n ret = frobnicate(uv);\n}", "line 2: unknown function 'frobnicate'"),
    ("shader_body { float3 a = uv; }", "cannot convert float2 to float3"),
    ("shader_body { ret = float3(uv, uv); }", "float3() gets 4 components, needs 3"),
    ("float a = 1;", "no shader_body found"),
    ("shader_body { ret = 1;", "missing '}'"),
    ("#if 1\nshader_body { }", "#if without #endif"),
    ("struct S { float a; }; shader_body { }", "'struct' is not supported"),
    ("shader_body { ret = 1 $ 2; }", "unexpected character '$'"),
    ("shader_body { uv.q = 1; }", "invalid swizzle .q on float2"),
    ("shader_body { sampler_main = 1; }", "'sampler_main' cannot be assigned to"),
])
def test_errors_name_the_line_and_the_construct(source, message):
    with pytest.raises(HlslError) as caught:
        translate(source, "comp")
    assert message in str(caught.value)


def test_matrix_and_scalar_operators_are_component_wise():
    text = body("float2x2 m = {1, 2, 3, 4}; float f = 2; m = m * f; m = 3 * m; m = m / 2; m = m * m; ret = m[0].x;")
    assert "m = (m * f);" in text and "m = (3.0 * m);" in text and "m = (m / 2.0);" in text
    assert "m = matrixCompMult(m, m);" in text   # HLSL's matrix * matrix is per component too; mul() multiplies


def test_modf_splits_into_fraction_and_whole():
    text = body("float whole; float f = modf(-2.75, whole); float2 w2; float2 f2 = modf(uv * 4, w2); ret = f;")
    assert "float f = modf(-2.75, whole);" in text
    assert "vec2 f2 = modf((uv * 4.0), w2);" in text
    with pytest.raises(HlslError, match="modf.. needs a float"):
        body("int n; float f = modf(2.5, n);")


def test_text_after_the_shader_body_is_dropped_as_milkdrop_does():
    text = translate("shader_body {\nret = 1;\n}\nwritten by martin's hand\n", "comp").text
    assert "written" not in text and "ret = vec3(1.0);" in text
    # after the body's own closing brace, even text with braces is not part of the shader
    assert "ret = vec3(1.0);" in translate("shader_body { ret = 1; }\nnotes { more } here", "comp").text


def test_the_corpus_translates(corpus):
    failures = []
    files = sorted(corpus.rglob("*.milk"))
    for path in files:
        milk = read_milk(path)
        for stage in ("warp", "comp"):
            try:
                translate(getattr(milk, stage), stage)
            except HlslError as error:
                failures.append(f"{path.name} {stage}: {error}")
    assert len(failures) <= 0.02 * len(files), failures
