"""The task graph: the overnight runbook as an incremental build, a table of contents.

    doit                 build what is stale: web deps -> demo pack -> sample shards -> merge -> ...
    doit help sample     the sampler's knobs (TargetCoverage, MaxHours, workers, ...) with their defaults
    doit clean           remove generated artifacts; never a user's presets, manifests, elite or ratings

Loaded by `dodo.py` in a checkout (`doit`) and by the installed `coupled-quality` command (`cli.py`, through
doit's `DoitMain` with this module as the task loader's namespace). Each task is a few declarative lines;
the work lives in the stage modules (each one's `run`).
"""
from doit import create_after, task_params
from doit.task import clean_targets

from . import convert, demopack, merge, report, sample, score, train, verify, webdeps
from .core.errors import CqError, report_errors
from .core.plan import plan_pack
from .core.settings import SampleSettings, TaskParams, TrainSettings, VerifySettings, artifact_key
from .core.uptodate import Holds, InputsUnchanged, KeyUnchanged
from .core.workspace import Workspace
from .learn.inputs import TRAINING_CODE_VERSION, inputs_digest, pack_inputs_digest
from .presets.manifests import pack_preset_paths

WS = Workspace.from_environment()
WS.state_dir.mkdir(parents=True, exist_ok=True)
SAMPLE, TRAIN, VERIFY = (TaskParams(settings, WS) for settings in (SampleSettings, TrainSettings, VerifySettings))

DOIT_CONFIG = {
    "dep_file": str(WS.doit_db),
    "backend": "sqlite3",
    "verbosity": 2,
}


def task_web_deps():
    """Install the pinned renderer (butterchurn) for the browser pages with npm ci."""
    return {
        "actions": [report_errors(webdeps.run)],
        "uptodate": [Holds(webdeps.installed, "the npm packages are not those of web/package-lock.json")],
        "targets": [webdeps.INSTALLED_LOCK],
    }


def task_demo_pack():
    """Build the bundled demo pack: coupled fg/bg variants of presets that screen clean."""
    return {
        "actions": [(report_errors(demopack.run), [WS])],
        "file_dep": demopack.demo_pack_inputs(),
        "targets": demopack.demo_pack_outputs(WS),
        "clean": True,
    }


def task_convert():
    """Convert each pack's .milk presets to butterchurn (HLSL -> GLSL), once per file content."""
    for pack in WS.packs():
        try:
            presets = pack_preset_paths(WS, pack)
        except CqError:
            continue  # a broken manifest is reported by its sample task
        if any(path.suffix.lower() == ".milk" for path in presets):
            yield {
                "name": pack,
                "actions": [(report_errors(convert.run), [WS, pack])],
                "file_dep": [WS.manifest_path(pack), *presets],
                "targets": [WS.conversion_report_path(pack)],
                "clean": True,
            }


def pack_plans(settings):
    """(pack, plan or the error that stops planning it) for each pack to sample."""
    for pack in settings.pack_list or WS.packs():
        try:
            yield pack, plan_pack(WS, pack, settings), None
        except CqError as error:  # a broken manifest fails its pack's task, not the whole graph
            yield pack, None, error


def raise_error(error):
    raise error


@create_after(executed="demo_pack")
@task_params(SAMPLE.specs())
def task_sample(**params):
    """Render pairs in headless Chromium, in resumable shards, up to TargetCoverage."""
    settings = SAMPLE.settings(params)
    for pack, plan, error in pack_plans(settings):
        if error:
            yield {"name": pack, "actions": [(report_errors(raise_error), [error])]}
            continue
        for shard in range(len(plan.shards)):
            yield {
                "name": f"{pack}:{shard}",
                "actions": [(report_errors(sample.run), [WS, plan, shard])],
                "targets": [WS.shard_path(pack, shard), WS.shard_done_path(pack, shard)],
                "uptodate": [KeyUnchanged(plan.shard_key(shard), "the shard's content key (its pairs' preset "
                                                                 "files, render settings, renderer or audio)")],
                "clean": True,
            }


@create_after(executed="sample")
@task_params(SAMPLE.specs())
def task_merge(**params):
    """Merge a pack's shards into eval.jsonl + meta.json (coverage, renderer, audio)."""
    settings = SAMPLE.settings(params)
    for pack, plan, error in pack_plans(settings):
        if error:
            continue
        yield {
            "name": pack,
            "actions": [(report_errors(merge.run), [WS, pack, settings])],
            "file_dep": [WS.manifest_path(pack)] + [WS.shard_path(pack, i) for i in range(len(plan.shards))],
            "targets": [WS.eval_path(pack), WS.meta_path(pack)],
            "uptodate": [KeyUnchanged(plan.key(), "the pack's sampling plan (its shards' content keys)")],
            "clean": True,
        }


@task_params(TRAIN.specs())
def task_train(**params):
    """Train the coupling net on the samples that exist, then rescore every pack (never starts a browser)."""
    settings = TRAIN.settings(params)
    yield {"name": None, "task_dep": ["score"], "doc": "train the coupling net, then rescore every pack"}
    yield {
        "name": "model",
        "actions": [(report_errors(train.run), [WS, settings])],
        "targets": [WS.checkpoint_path, WS.train_report_path],
        "uptodate": [KeyUnchanged({"settings": settings.key(), "code": TRAINING_CODE_VERSION},
                                  "the trainer's settings or code"),
                     InputsUnchanged(lambda: inputs_digest(WS, settings), "what training reads (manifests, "
                                     "presets, eval rows, elite, ratings, sample thresholds)")],
        "clean": True,
    }


@create_after(executed="train:model")
def task_score():
    """Write each pack's pairs-quality.v0.json from the checkpoint, behind the std/min gates."""
    for pack in WS.packs():
        yield {
            "name": pack,
            "actions": [(report_errors(score.run), [WS, pack])],
            "file_dep": [WS.checkpoint_path],
            "targets": [WS.quality_path(pack)],
            "uptodate": [InputsUnchanged(lambda pack=pack: pack_inputs_digest(WS, pack),
                                         f"what scoring {pack} reads (manifest, presets, eval rows)")],
            "clean": [clean_targets, (WS.rejected_quality_path(pack).unlink, [], {"missing_ok": True})],
        }


@create_after(executed="score")
@task_params(VERIFY.specs())
def task_verify(**params):
    """Play each scored pack in the headless player: fails unless it picks by quality and draws."""
    settings = VERIFY.settings(params)
    for pack in WS.packs():
        yield {
            "name": pack,
            "actions": [(report_errors(verify.run), [WS, pack, settings])],
            "file_dep": [WS.manifest_path(pack), WS.quality_path(pack), *verify.PLAYER_FILES],
            "targets": [WS.verify_report_path(pack)],
            "uptodate": [KeyUnchanged(artifact_key(settings), "the verify settings")],
            "clean": True,
        }


@create_after(executed="verify")
def task_report():
    """Write reports/<pack>/index.html; `doit -s report` rebuilds it from what exists (after a failed gate)."""
    for pack in WS.packs():
        yield {
            "name": pack,
            "actions": [(report_errors(report.run), [WS, pack])],
            "uptodate": [KeyUnchanged(report.inputs_signature(WS, pack), f"what the report of {pack} shows")],
            "targets": [WS.report_index_path(pack)],
            "clean": True,
        }
