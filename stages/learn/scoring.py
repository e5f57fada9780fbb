"""Score every pair of a pack with the trained coupling net and write `pairs-quality.v0.json` behind gates.

In: the checkpoint (`stages.checkpoint`, loadable alone), the pack's manifest and preset files, its eval
rows (for coverage) and the training report (for the held-out metrics).
Out: `public/presets/<pack>/pairs-quality.v0.json` (`contracts.validate_quality`): one `quality01` per
manifest pair whose presets exist and load, `qualityStats`, and `stats`: `missingFiles` (pairs with a
preset file that does not exist) and `unreadableFiles` (pairs with one that does not load), the first of
each by name, eval coverage, and the model's held-out metrics from the training report.

Gates (no stretching of the distribution to pass them): `qualityStats.std >= MinQualityStd` and
`min <= p50 - 0.05`. A failed gate writes the scores to `pairs-quality.v0.rejected.json` beside the product,
leaves the last good `pairs-quality.v0.json` in place, and raises with the advice: more coverage, more
negatives, more epochs, in that order.
"""
from __future__ import annotations

import numpy as np

from ..core.contracts import load_manifest, now_iso, read_json, validate_quality, validate_train_report, write_json
from ..core.errors import ContractError, CqError
from ..core.workspace import Workspace
from ..learn.checkpoint import load_checkpoint
from ..learn.features import FeatureCache, pair_features
from ..learn.gates import gate_failures, quality_stats
from ..learn.sources import eval_pairs, read_pack_presets


def _training_metrics(workspace: Workspace) -> dict:
    path = workspace.train_report_path
    try:
        report = validate_train_report(read_json(path), path)
    except ContractError as error:
        return {"error": str(error)}
    return {"trainedAt": report["trainedAt"], "heldOut": report["heldOut"], "eliteAuc": report["eliteAuc"]}


def score_pack(workspace: Workspace, pack: str, log=print) -> dict:
    """Score `pack`, apply the gates, write the quality file (or the rejected one); return the scores."""
    scorer = load_checkpoint(workspace.checkpoint_path)
    manifest = load_manifest(workspace.manifest_path(pack))
    presets = read_pack_presets(workspace, pack, FeatureCache(workspace.conversion_cache_dir))
    if not presets.pairs:
        raise CqError(f"{workspace.manifest_path(pack)}: no pair of pack {pack!r} can be scored "
                      f"({len(presets.missing)} preset files missing, {len(presets.unreadable)} unreadable; "
                      f"first: {(presets.missing + presets.unreadable)[:1]}): fix the manifest's URLs or the files")
    scores = scorer.predict(pair_features(np.stack(presets.fg), np.stack(presets.bg)))
    stats = quality_stats(scores)
    sampled, _, _ = eval_pairs(workspace, presets)
    missing_pairs = {text.split(":")[0] for text in presets.missing}
    unreadable_pairs = {text.split(":")[0] for text in presets.unreadable}
    quality = {
        "version": "v0", "pack": manifest.pack, "generatedAt": now_iso(),
        "pairs": [{"pair": pair, "quality01": round(float(score), 6)} for pair, score in zip(presets.pairs, scores)],
        "qualityStats": stats,
        "stats": {"missingFiles": len(missing_pairs), "unreadableFiles": len(unreadable_pairs),
                  "manifestPairs": len(manifest.pairs), "scoredPairs": len(presets.pairs),
                  "sampledPairs": len(sampled),
                  "evalCoverage": round(len(sampled) / len(manifest.pairs), 4) if manifest.pairs else 0.0,
                  "missing": presets.missing[:20], "unreadable": presets.unreadable[:20],
                  "model": {"codeVersion": scorer.checkpoint["codeVersion"], **_training_metrics(workspace)}},
    }
    path = workspace.quality_path(pack)
    validate_quality(quality, path, manifest)
    min_quality_std = scorer.checkpoint["config"]["settings"]["min_quality_std"]
    failures = gate_failures(stats, min_quality_std)
    rejected = workspace.rejected_quality_path(pack)
    if failures:
        quality["stats"]["gateFailures"] = failures
        write_json(rejected, quality)
        kept = "the last good file stays in place" if path.exists() else "no quality file was written"
        coverage = (f"more coverage ({len(sampled)}/{len(manifest.pairs)} pairs sampled: "
                    f"`doit sample --target-coverage 1.0`)" if len(sampled) < len(manifest.pairs)
                    else "coverage is complete")
        raise CqError(
            f"{pack}: the scores fail the gate: {'; '.join(failures)}. Fix, in this order: {coverage}, more "
            f"negatives (`doit train --neg-samples N`), more epochs (`doit train --epochs N`). "
            f"Rejected scores: {rejected}; {kept}.")
    write_json(path, quality)
    rejected.unlink(missing_ok=True)
    log(f"score {pack}: {len(presets.pairs)}/{len(manifest.pairs)} pairs scored, "
        f"{len(missing_pairs)} with missing files; qualityStats {stats}")
    return quality

