"""core.formats + core.contracts: each format is a type, a bad file is one line saying where and what, rows keep
fields the type does not know, and the published JSON Schemas match the types and accept the files we write."""
import copy

import jsonschema
import pytest
from packs import make_pack

from stages import demopack
from stages.core.contracts import (
    parse_manifest,
    read_json,
    validate_eval_row,
    validate_meta,
    validate_quality,
    validate_rating,
    validate_train_report,
)
from stages.core.errors import ContractError
from stages.core.formats import STAT_FIELDS
from stages.core.schemas import PUBLISHED, json_schema, stale_schemas
from stages.core.settings import TrainSettings
from stages.core.workspace import SCHEMAS_DIR, Workspace
from stages.learn.scoring import score_pack
from stages.learn.training import train

ROW = {
    "tMs": 1796407850355, "pack": "cream", "pair": 0, "presetFgId": "a_fg.milk", "presetBgId": "b_bg.milk",
    "vizAvgLuma": 0.508185, "vizAvgFrameDelta": 0.014602, "pmAvgLumaFg": 0.643649, "pmAvgLumaBg": 0.192102,
    "audioRms": 0.134256, "audioPeak": 0.773437, "pageErrorsSinceLast": 0, "consoleErrorsSinceLast": 0,
    "okHeuristic": True, "reasons": [], "contentKey": "4c4ea46cef7dadc0", "fgHash": "e3ea839dc5e3b2d5",
    "bgHash": "608e7363e38b9d1a", "status": "ok", "render": {"width": 64, "height": 64, "frames": 16},
    "engine": "butterchurn-3.0.0-beta.5+page-eb3adb4b064a", "renderer": "SwiftShader", "errors": [],
    "timings": {"frameMs": 20.5, "peakFrameMs": 0, "maxFrameMs": 400.0, "alone": True},
    "stats": {name: 0.1 for name in STAT_FIELDS}, "attempts": 1, "sampledAt": "2026-12-04T18:10:50Z",
    "thumb": "thumbs/4c4ea46cef7dadc0.png", "node": "local", "gpu": "",
}
MANIFEST = {"version": "v0", "generatedAt": "2026-01-01T00:00:00Z", "pack": "p",
            "pairs": [{"pair": 0, "fgUrl": "/presets/p/fg/a.milk", "bgUrl": "/presets/p/bg/b.milk"},
                      {"pair": 1, "fgUrl": "/presets/p/fg/c.milk", "bgUrl": "/presets/p/bg/d.milk", "warp_diff": 1}]}
QUALITY = {"version": "v0", "pack": "p", "generatedAt": "2026-01-01T00:00:00Z",
           "pairs": [{"pair": 0, "quality01": 0.5, "basis": "measured", "measured": 0.4}, {"pair": 1, "quality01": 1}],
           "qualityStats": {"min": 0.5, "p50": 0.75, "p95": 1.0, "max": 1.0, "std": 0.25, "mean": 0.75},
           "stats": {"missingFiles": 0}}
META = {"kind": "coupled_eval.v0", "startedAt": "t", "finishedAt": "t", "settings": {},
        "progress": {"demo": {"visited": 1, "target": 2, "done": True}}, "audio": {"mode": "click", "audioFile": ""},
        "runtime": {"gpuMode": "off", "headed": False, "requireGpu": False, "webgl": {}}, "errors": []}
RATING = {"pack": "p", "pair": 1, "fgUrl": "/a", "bgUrl": "/b", "score": 3, "ratedAt": "t"}
METRIC = {"value": 0.5, "lo": 0.1, "hi": 0.9}
REPORT = {"kind": "coupling_train.v0", "trainedAt": "t", "trainSeconds": 1, "device": "cpu", "deviceSnapshot": {},
          "settings": {}, "featureCount": 3, "sources": {}, "packs": {}, "eliteAuc": None,
          "epochs": [{"epoch": 1, "loss": {"elite": 1, "eval": None, "neg": 1}, "drawn": {"elite": 1, "eval": 1, "neg": 1}}],
          "crossValidation": {"folds": 5, "pairs": 10, "chosenEpochs": 3, "validationLoss": [], "perFold": [],
                              "outOfFold": [{"key": "p:1", "measured": 0.1, "net": 0.2}], "disagreements": [],
                              "net": {"spearman": METRIC, "pearson": None}, "ridge": {"spearman": METRIC, "pearson": METRIC}}}
GONE = object()
VALIDATORS = {"row": validate_eval_row, "manifest": lambda data: parse_manifest("m.json", data),
              "quality": lambda data: validate_quality(data, "q.json"), "meta": validate_meta,
              "rating": validate_rating, "report": validate_train_report}
VALID = {"row": ROW, "manifest": MANIFEST, "quality": QUALITY, "meta": META, "rating": RATING, "report": REPORT}


def changed(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if value is GONE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


@pytest.mark.parametrize("kind, path, value, message", [
    # the words of the hand-written checks these types replaced, one line each
    ("row", ("pair",), "3", "eval row: field 'pair' has str '3'"),
    ("row", ("pair",), True, "eval row: field 'pair' has bool True"),
    ("row", ("tMs",), 1.5, "eval row: field 'tMs' has float 1.5"),
    ("row", ("contentKey",), GONE, "eval row: missing field 'contentKey'"),
    ("row", ("audioRms",), 0, "eval row: audioRms must be > 0: the visuals were rendered without audio"),
    ("row", ("audioRms",), float("nan"), "eval row: field 'audioRms' is nan"),
    ("row", ("status",), "weird", "eval row: status 'weird' is not one of ok, load-failed, shader-failed, "
                                  "eel-error, timeout, crashed, black, read-failed, translate-failed, degraded, "
                                  "missing-file, too-heavy"),
    ("row", ("stats", "flicker"), GONE, "eval row: stats lack flicker"),
    ("row", ("gpu",), 1, "eval row: field 'gpu' has int 1"),
    ("manifest", ("version",), "v1", "m.json: version is 'v1', expected 'v0'"),
    ("manifest", ("version",), GONE, "m.json: version is None, expected 'v0'"),
    ("manifest", ("pack",), "..", "m.json: pack name '..' is not a plain folder name"),
    ("manifest", ("pack",), "a/b", "m.json: pack name 'a/b' is not a plain folder name"),
    ("manifest", ("pairs", 0), 5, "m.json: pairs[0]: must be an object"),
    ("manifest", ("pairs", 1, "pair"), 0, "m.json: pairs[1]: pair 0 appears twice"),
    ("manifest", ("pairs", 0, "fgUrl"), "presets/a", "m.json: pairs[0]: URL 'presets/a' must be a web path "
                                                      "starting with '/'"),
    ("manifest", ("pairs", 0, "bgUrl"), GONE, "m.json: pairs[0]: missing field 'bgUrl'"),
    ("quality", ("version",), "v1", "q.json: version must be 'v0'"),
    ("quality", ("pairs", 0, "quality01"), 1.5, "q.json: pairs[0]: quality01 1.5 is outside [0, 1]"),
    ("quality", ("pairs", 0, "quality01"), "high", "q.json: pairs[0]: field 'quality01' has str 'high'"),
    ("quality", ("qualityStats", "std"), float("nan"), "q.json: qualityStats: field 'std' is nan"),
    ("quality", ("stats", "missingFiles"), GONE, "q.json: stats: missing field 'missingFiles'"),
    ("quality", ("pairs", 1, "pair"), 0, "q.json: pairs[1]: pair 0 is duplicated or not in the manifest"),
    ("meta", ("kind",), "other", "meta.json: kind must be 'coupled_eval.v0'"),
    ("meta", ("progress", "demo", "visited"), "1", "meta.json: progress[demo]: field 'visited' has str '1'"),
    ("meta", ("audio", "mode"), "mic", "meta.json: audio.mode must be 'file' or 'click'"),
    ("meta", ("runtime", "webgl"), GONE, "meta.json: runtime lacks 'webgl'"),
    ("rating", ("score",), 7, "rating: score 7 is outside 1..5"),
    ("report", ("crossValidation",), GONE, "training report: missing field 'crossValidation' (null when there is none)"),
    ("report", ("crossValidation", "net", "pearson"), GONE, "training report: crossValidation: net: lacks 'pearson'"),
    ("report", ("epochs", 0, "loss"), {"total": 1}, "training report: epochs[0]: loss lacks elite, eval, neg"),
])
def test_a_bad_file_is_one_line_saying_where_and_what(kind, path, value, message):
    VALIDATORS[kind](copy.deepcopy(VALID[kind]))
    with pytest.raises(ContractError) as caught:
        VALIDATORS[kind](changed(VALID[kind], path, value))
    assert str(caught.value) == message


def test_a_row_keeps_fields_its_type_does_not_know_and_checks_the_optional_ones_it_does():
    newer = {**ROW, "timings": {**ROW["timings"], "queueMs": 3.0}, "newField": {"any": ["shape"]}}
    assert validate_eval_row(newer) is newer and newer["newField"] == {"any": ["shape"]}
    older = {key: value for key, value in ROW.items() if key not in ("node", "gpu")}
    assert validate_eval_row(older) is older


def test_files_written_from_python_are_checked_as_written():
    """numpy numbers are written as numbers (orjson), so they pass where the JSON would."""
    np = pytest.importorskip("numpy")
    quality = changed(QUALITY, ("stats", "sampledSpearman"), np.float64(0.8))
    assert validate_quality(quality)["stats"]["sampledSpearman"] == 0.8


def test_the_published_schemas_are_what_the_types_generate():
    assert stale_schemas() == [], "run `python -m stages.core.schemas` and commit schemas/"
    for name, kind in PUBLISHED.items():
        assert read_json(SCHEMAS_DIR / name) == json_schema(kind)
        jsonschema.Draft202012Validator.check_schema(read_json(SCHEMAS_DIR / name))


def published(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(read_json(SCHEMAS_DIR / name))


def test_the_demo_packs_manifest_validates_against_its_schema(tmp_path):
    if not demopack.PRESETS_DIR.is_dir():
        pytest.skip("butterchurn-presets not installed (doit web_deps)")
    workspace = Workspace(tmp_path / "ws")
    demopack.run(workspace)
    manifest = read_json(workspace.manifest_path(demopack.DEMO_PACK))
    published("pairs-manifest.v0.schema.json").validate(manifest)
    for bad in (changed(manifest, ("pack",), "../elsewhere"), changed(manifest, ("pairs", 0, "fgUrl"), "fg/a.milk"),
                changed(manifest, ("pairs", 0, "pair"), "1"), changed(manifest, ("version",), "v1")):
        assert not published("pairs-manifest.v0.schema.json").is_valid(bad)


def test_a_scored_packs_quality_file_validates_against_its_schema(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "tiny", 120, seed=4, sampled=0.8, presets=None, rows="shard")
    train(workspace, TrainSettings(epochs=6, batch_size=64, neg_samples=0, learning_rate=5e-3), log=lambda *_: None)
    score_pack(workspace, "tiny", log=lambda *_: None)
    quality = read_json(workspace.quality_path("tiny"))
    assert {entry["basis"] for entry in quality["pairs"]} == {"measured", "model"}
    published("pairs-quality.v0.schema.json").validate(quality)
    for bad in (changed(quality, ("pairs", 0, "quality01"), 1.5), changed(quality, ("qualityStats", "std"), GONE),
                changed(quality, ("stats", "missingFiles"), "0")):
        assert not published("pairs-quality.v0.schema.json").is_valid(bad)
