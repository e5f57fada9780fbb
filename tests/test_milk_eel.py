"""MilkDrop's EEL spellings that butterchurn's parser (eel-wasm) rejects: rewritten, and run in the real page.

Each browser probe is a minimal .milk whose per-frame code uses one construct MilkDrop's ns-eel2 accepts and
sets q1 from it; its comp shader draws white only when q1 holds what MilkDrop computes. Before the rewrite,
butterchurn's parser stopped at each of them (the preset did not load), so these fail without it.
"""
import pytest

from stages.presets.eel import normalize_eel
from stages.presets.milk import read_milk
from stages.screen import run as screen

HEADER = "MILKDROP_PRESET_VERSION=201\nPSVERSION=2\nPSVERSION_WARP=2\nPSVERSION_COMP=2\n[preset00]\nfDecay=0.9\n"


def eel_probe(code_lines: list[str], expected: float) -> str:
    frame = "".join(f"per_frame_{n}={line}\n" for n, line in enumerate(code_lines, start=1))
    return f"{HEADER}{frame}comp_1=`shader_body {{ ret = (abs(q1 - {expected}) < 0.001) ? 1 : 0; }}\n"


# MilkDrop's value of q1 for each (ns-eel2: its lexer and grammar are the reference)
PROBES = {
    "hex_constants": eel_probe(["q1 = 0x1F + $x10 + 0X0a;"], 31 + 16 + 10),
    "named_constants": eel_probe(["q1 = $pi + 2*$E + 3*$PHI;"], 3.14159265 + 2 * 2.71828183 + 3 * 1.61803399),
    "character_and_mask_constants": eel_probe(["q1 = $'A' + $~4;"], 65 + 15),
    "empty_statement_first": eel_probe([";", "q1 = 5;"], 5),
    "pow_assignment": eel_probe(["q1 = 2;", "q1 ^= 1 + 2;"], 8),
    "or_and_assignments": eel_probe(["q1 = 5; q1 |= 2;", "q2 = 6; q2 &= 3;", "q1 = q1*10 + q2;"], 72),
}


@pytest.fixture(scope="module")
def eel_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eel-probes")
    for name, text in PROBES.items():
        (folder / f"{name}.milk").write_text(text)
    (folder / "control_false.milk").write_text(eel_probe(["q1 = 1;"], 2))   # must come out black
    return screen(folder, frames=3, size=16, cache_dir=tmp_path_factory.mktemp("state") / "milk-cache")


@pytest.mark.parametrize("name", sorted(PROBES))
def test_milkdrop_eel_runs_in_butterchurn_with_milkdrops_meaning(eel_report, name):
    record = next(r for r in eel_report["presets"] if r["file"] == f"{name}.milk")
    assert record["status"] == "ok", record
    assert record["luma"] > 0.9, record


def test_a_false_eel_probe_draws_black(eel_report):
    record = next(r for r in eel_report["presets"] if r["file"] == "control_false.milk")
    assert record["status"] == "black", record


@pytest.mark.parametrize("code, expected", [
    ("a=0x1F+$x10+0x;", "a=31+16+0;"),
    ("a=$pi*$E+$PHI+$'A'+$~8;", "a=3.141592653589793*2.718281828459045+1.618033988749895+65+255;"),
    ("// lead\n;\n;a=1;", "// lead\n\na=1;"),
    ("a ^= 2+1; b|=c,d; e&=(f;g)", "a = a ^ ( 2+1); b= b | (c),d; e= e & ((f;g))"),
    ("x=if(a,b^=2,c);", "x=if(a,b= b ^ (2),c);"),
])
def test_rewrites(code, expected):
    assert normalize_eel(code) == expected


@pytest.mark.parametrize("code", [
    "a=b<=c; d=e!=f; g = h == i; j = k && l || !m;",
    "a = 1; // 0x1F $pi and b ^= 2 in a comment\nb = 2; \\\\ $e\n/* c |= 1; */ c = .5 + 1.;",
    "b0x1 = 10x5; x.y = 2;;",
    "megabuf(1) ^= 2;",   # left alone: a memory cell would be read twice (see presets.eel)
])
def test_everything_else_keeps_its_bytes(code):
    assert normalize_eel(code) == code


def test_the_corpus_keeps_its_bytes(corpus):
    # its conversions, and so its rows' content keys, do not move with this rewrite
    for path in sorted(corpus.rglob("*.milk")):
        milk = read_milk(path)
        sections = [milk.init_eel, milk.frame_eel, milk.pixel_eel]
        sections += [shape[key] for shape in milk.shapes for key in ("init_eqs_eel", "frame_eqs_eel")]
        sections += [wave[key] for wave in milk.waves for key in ("init_eqs_eel", "frame_eqs_eel", "point_eqs_eel")]
        for code in sections:
            assert normalize_eel(code) == code, path
