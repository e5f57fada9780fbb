"""The task graph: the overnight runbook as an incremental build, a table of contents.

    doit                 build what is stale: web deps -> demo pack -> sample shards -> merge -> ...
    doit help sample     the sampler's knobs (TargetCoverage, MaxHours, workers, ...) with their defaults
    doit clean           remove generated artifacts; never a user's presets, manifests, elite or ratings

Loaded by `dodo.py` in a checkout (`doit`) and by the installed `coupled-quality` command (`cli.py`, through
doit's `DoitMain` with this module as the task loader's namespace). Each task is a few declarative lines;
the work lives in the stage modules (each one's `run`).
"""
import dataclasses
import sys

from doit import create_after, task_params
from doit.exceptions import InvalidTask
from doit.task import clean_targets

from . import convert, demopack, discover, filter, fingerprint, merge, report, sample, score, train, verify, webdeps
from .core.doit_state import (
    READ_ONLY_COMMANDS,
    doit_command,
    doit_variables,
    follow_moved_workspace,
    keep_doit_state_current,
    sigterm_like_ctrl_c,
)
from .core.errors import CqError, GraphLoadError, before_each_action, one_line_interrupt, report_errors
from .core.lock import hold_workspace
from .core.plan import plan_fingerprints, plan_pack
from .core.rows import fingerprint_covered, shard_covered
from .core.settings import SampleSettings, TaskParams, TrainSettings, VerifySettings, artifact_key, configured
from .core.uptodate import CodeUnchanged, Holds, InputsUnchanged, KeyUnchanged
from .core.workspace import Workspace
from .learn.discovery import DiscoverSettings
from .learn.inputs import inputs_digest, pack_inputs_digest
from .presets import filtering
from .presets.manifests import pack_preset_paths
from .render.versions import KEY_VERSIONS

WS = Workspace.from_environment()
try:
    for value in doit_variables(sys.argv[1:]):  # the graph reads no variables: doit took an option's value
        raise CqError(f"doit takes {value!r} for a NAME=VALUE variable (it does so with every argument that "
                      f"holds `=`), so its option got nothing; join the value to its option with `=`, as in "
                      f"--rule=\"{value}\"")
    WS.prepare_state_dir()
    # One run per workspace, held from here to the end, so a refused run saves no knob and `doit clean` or
    # `forget` never deletes under a running sampler; `doit list` and `info` need no lock.
    if doit_command(sys.argv[1:]) not in READ_ONLY_COMMANDS:
        hold_workspace(WS)
        follow_moved_workspace(WS)  # a moved or copied workspace redoes nothing
    SAMPLE, TRAIN, VERIFY = (TaskParams(settings, WS) for settings in (SampleSettings, TrainSettings, VerifySettings))
except CqError as error:  # a read-only or full workspace, a held lock, a bad settings file: one line, even
    raise GraphLoadError(str(error)) from None  # for `doit list`
before_each_action(lambda: hold_workspace(WS))  # also for a graph loaded by an argv it was not given
before_each_action(keep_doit_state_current)      # a killed run remembers the tasks it finished
sigterm_like_ctrl_c()
sys.excepthook = one_line_interrupt

DOIT_CONFIG = {
    "dep_file": str(WS.doit_db),
    "backend": "sqlite3",
    "verbosity": 2,
}


def task_web_deps():
    """Fetch the pinned renderer (butterchurn) for the browser pages from the npm registry (no Node needed)."""
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
        "uptodate": [CodeUnchanged(demopack)],
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
                "uptodate": [CodeUnchanged(convert)],
                "targets": [WS.conversion_report_path(pack)],
                "clean": True,
            }


def settings_of(task_params: TaskParams, params: dict):
    try:
        return task_params.settings(params)
    except CqError as error:  # a bad knob is one line before any task runs
        raise InvalidTask(f"error: {error}") from None


def pack_plans(settings):
    """(pack, plan or the error that stops planning it) for each pack to sample."""
    for pack in settings.pack_list or WS.packs():
        try:
            yield pack, plan_pack(WS, pack, settings, KEY_VERSIONS), None
        except CqError as error:  # a broken manifest fails its pack's task, not the whole graph
            yield pack, None, error


def raise_error(error):
    raise error


@create_after(executed="demo_pack")
@task_params(SAMPLE.specs())
def task_sample(**params):
    """Render pairs in headless Chromium, in resumable shards, up to TargetCoverage."""
    settings = settings_of(SAMPLE, params)
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
                                                                 "files, render settings, renderer or audio)"),
                             Holds(lambda pack=pack, shard=shard, cap=settings.max_frame_ms:
                                   shard_covered(WS, pack, shard, cap),
                                   "every pair of the shard has a current row")],
                "clean": True,
            }


def workspace_presets(settings) -> list:
    """Every preset file the packs to sample name (a broken manifest is reported by its sample task)."""
    paths = []
    for pack in settings.pack_list or WS.packs():
        try:
            paths += pack_preset_paths(WS, pack)
        except CqError:
            continue
    return paths


@create_after(executed="sample")
@task_params(SAMPLE.specs())
def task_fingerprint(**params):
    """Render each preset of the packs alone, once per content (its fingerprint), in resumable shards."""
    settings = settings_of(SAMPLE, params)
    plan = plan_fingerprints(workspace_presets(settings), settings, KEY_VERSIONS)
    for shard in plan.shards:
        yield {
            "name": str(shard),
            "actions": [(report_errors(fingerprint.run), [WS, plan, shard])],
            "targets": [WS.fingerprint_shard_path(shard), WS.fingerprint_done_path(shard)],
            "uptodate": [KeyUnchanged(plan.shard_key(shard), "the shard's presets, layer render settings, "
                                                              "renderer or audio"),
                         Holds(lambda shard=shard: fingerprint_covered(WS, shard, settings.max_frame_ms),
                               "every preset of the shard has a current fingerprint")],
            "clean": True,
        }


@create_after(executed="sample")
@task_params(SAMPLE.specs())
def task_merge(**params):
    """Merge a pack's shards into eval.jsonl + meta.json (coverage, renderer, audio)."""
    settings = settings_of(SAMPLE, params)
    for pack, plan, error in pack_plans(settings):
        if error:
            continue
        yield {
            "name": pack,
            "actions": [(report_errors(merge.run), [WS, pack, settings])],
            "file_dep": [WS.manifest_path(pack)] + [WS.shard_path(pack, i) for i in range(len(plan.shards))],
            "targets": [WS.eval_path(pack), WS.meta_path(pack)],
            "uptodate": [KeyUnchanged(plan.key(), "the pack's sampling plan (its shards' content keys)"),
                         CodeUnchanged(merge)],
            "clean": True,
        }


@task_params(TRAIN.specs())
def task_train(**params):
    """Train the coupling net on the samples that exist, then rescore every pack (never starts a browser)."""
    settings = settings_of(TRAIN, params)
    yield {"name": None, "task_dep": ["score"], "doc": "train the coupling net, then rescore every pack"}
    yield {
        "name": "model",
        "actions": [(report_errors(train.run), [WS, settings])],
        "targets": [WS.checkpoint_path, WS.train_report_path],
        "uptodate": [KeyUnchanged(settings.key(), "the trainer's settings"), CodeUnchanged(train),
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
                                         f"what scoring {pack} reads (manifest, presets, eval rows)"),
                         CodeUnchanged(score)],
            "clean": [clean_targets, (WS.rejected_quality_path(pack).unlink, [], {"missing_ok": True})],
        }


@create_after(executed="score")
@task_params(VERIFY.specs())
def task_verify(**params):
    """Play each scored pack in the headless player: fails unless it picks by quality and draws."""
    settings = settings_of(VERIFY, params).with_browser_of(configured(SampleSettings, WS))
    for pack in WS.packs():
        yield {
            "name": pack,
            "actions": [(report_errors(verify.run), [WS, pack, settings])],
            "file_dep": [WS.manifest_path(pack), WS.quality_path(pack)],
            "targets": [WS.verify_report_path(pack)],
            "uptodate": [KeyUnchanged(artifact_key(settings), "the verify settings"),
                         CodeUnchanged(verify, verify.PLAYER_PAGES)],
            "clean": True,
        }


@create_after(executed="verify")
def task_report():
    """Write reports/<pack>/index.html; `doit -s report` rebuilds it from what exists (after a failed gate)."""
    for pack in WS.packs():
        yield {
            "name": pack,
            "actions": [(report_errors(report.run), [WS, pack])],
            "uptodate": [KeyUnchanged(report.inputs_signature(WS, pack), f"what the report of {pack} shows"),
                         CodeUnchanged(report, report.template_files())],
            "targets": [WS.report_index_path(pack)],
            "clean": True,
        }


def discovery_params() -> list[dict]:
    """doit `task_params` of `DiscoverSettings` (one run's knobs: never saved, like the filter's)."""
    kinds = {"int": int, "str": str}
    return [{"name": item.name, "long": item.name.replace("_", "-"), "default": item.default,
             "type": kinds[item.type], "help": item.metadata["help"]} for item in dataclasses.fields(DiscoverSettings)]


@task_params(filtering.task_params())
def task_filter(**params):
    """Write the next filtered manifest of each pack from a rule: `doit filter --rule="quality01 >= 0.6" --current`
    (without --rule or --top there is nothing to do, so a plain `doit` never filters)."""
    settings = filtering.FilterSettings(**params)
    return {
        "actions": [(report_errors(filter.run), [WS, settings])],
        "uptodate": [not settings.asked],
    }


@task_params(discovery_params())
def task_discover(**params):
    """Pick the best pairs of a library folder by the model: `doit discover --folder LIBRARY --top 100`
    writes public/presets/discovered-LIBRARY/ (the next `doit` samples the picks); without --folder, nothing."""
    settings = DiscoverSettings(**params)
    return {
        "actions": [(report_errors(discover.run), [WS, settings])],
        "uptodate": [not settings.asked],
    }
