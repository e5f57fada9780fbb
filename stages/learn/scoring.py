"""Score every pair of a pack and write `pairs-quality.v0.json` behind gates.

In: the checkpoint (`learn.checkpoint`, loadable alone), the pack's manifest and preset files, its eval
rows, the elite manifest and ratings, and the training report (for the cross-validated metrics).
Out: `public/presets/<pack>/pairs-quality.v0.json` (`contracts.validate_quality`): one entry per manifest
pair whose presets exist and load, `qualityStats`, and `stats`: `missingFiles` (pairs with a preset file
that does not exist) and `unreadableFiles` (pairs with one that does not load), the first of each by name,
eval coverage, how well the scores follow the measurements, and the model's metrics from the training report.

The rule (measured m, model p, rating r = (score - 1) / 4; s = model_share, w = rating_share):

    sampled pair     quality01 = m * (1 - s + s * p)    the measurement decides; the model, which carries
                                                         the ratings and the negatives, moves it down by
                                                         at most the share s (0.2)
    unsampled pair   quality01 = p                      the model alone
    rated pair       quality01 <- (1 - w) * quality01 + w * r    a person's rating moves any pair halfway
                                                                 towards it

A pair that failed to render or was cut as too heavy measures 0 and stays 0 unless rated; one flagged
too-dark or low-motion measures at most its factor (about 0.25-0.3, `learn.quality.quality_factors`), so it stays
out of the top decile unless a person rated it well. Each entry says what it rests on (`basis`:
measured | model) and carries `measured` and `rating` where they exist.

Gates (no stretching of the distribution to pass them): `qualityStats.std >= MinQualityStd` and
`min <= p50 - 0.05`. A failed gate writes the scores to `pairs-quality.v0.rejected.json` beside the product,
leaves the last good `pairs-quality.v0.json` in place, and raises with the advice: fingerprints (when the
pack's presets lack them), more coverage, more negatives, more epochs, in that order.
"""
from __future__ import annotations

import numpy as np

from ..core.contracts import load_manifest, now_iso, read_json, validate_quality, validate_train_report, write_json
from ..core.errors import ContractError, CqError
from ..core.settings import TrainSettings, from_params
from ..core.workspace import Workspace, command
from ..learn.checkpoint import load_checkpoint
from ..learn.features import TEXT_WIDTH, FeatureCache, pair_features
from ..learn.fingerprints import SCALARS
from ..learn.gates import gate_failures, quality_stats
from ..learn.metrics import spearman
from ..learn.quality import TOO_HEAVY, measured_quality
from ..learn.sources import eval_pairs, quality_thresholds, ratings_by_urls, read_pack_presets

FINGERPRINTED = TEXT_WIDTH + SCALARS.index("fingerprinted")  # in a preset vector
FLAGS = ("too-dark", "low-motion", TOO_HEAVY)  # with a failed status: never in the top decile unless rated >= 4
WELL_RATED = 0.75                                # rating 4 of 1..5 as a target


def _training_metrics(workspace: Workspace) -> dict:
    path = workspace.train_report_path
    try:
        report = validate_train_report(read_json(path), path)
    except ContractError as error:
        return {"error": str(error)}
    validated = report["crossValidation"]
    summary = ({key: validated[key] for key in ("folds", "pairs", "chosenEpochs", "net", "ridge", "netMinusRidge")}
               if validated else None)
    return {"trainedAt": report["trainedAt"], "crossValidation": summary, "eliteAuc": report["eliteAuc"]}


def blend(model: np.ndarray, measured: np.ndarray, rating: np.ndarray, settings: TrainSettings) -> np.ndarray:
    """The rule of the module docstring; `measured` and `rating` are nan where a pair has none."""
    sampled = np.isfinite(measured)
    scores = np.where(sampled, np.nan_to_num(measured) * (1 - settings.model_share + settings.model_share * model),
                      model)
    rated = np.isfinite(rating)
    return np.where(rated, (1 - settings.rating_share) * scores + settings.rating_share * np.nan_to_num(rating),
                    scores)


def flagged(row: dict) -> bool:
    """A row that must not reach the top decile unrated: a failed render, too dark, frozen or too heavy."""
    return row["status"] != "ok" or any(flag in row["reasons"] for flag in FLAGS)


def score_pack(workspace: Workspace, pack: str, log=print) -> dict:
    """Score `pack`, apply the gates, write the quality file (or the rejected one); return the scores."""
    scorer = load_checkpoint(workspace.checkpoint_path)
    manifest = load_manifest(workspace.manifest_path(pack))
    thresholds = quality_thresholds(workspace)
    presets = read_pack_presets(workspace, pack, FeatureCache.of_workspace(workspace, thresholds))
    if not presets.pairs:
        raise CqError(f"{workspace.manifest_path(pack)}: no pair of pack {pack!r} can be scored "
                      f"({len(presets.missing)} preset files missing, {len(presets.unreadable)} unreadable; "
                      f"first: {(presets.missing + presets.unreadable)[:1]}): fix the manifest's URLs or the files")
    settings = from_params(TrainSettings, scorer.checkpoint["config"]["settings"])
    model = scorer.predict(pair_features(np.stack(presets.fg), np.stack(presets.bg), thresholds))
    sampled, _, _ = eval_pairs(workspace, presets)
    measured = np.array([measured_quality(sampled[pair], thresholds) if pair in sampled else np.nan
                         for pair in presets.pairs])
    ratings = ratings_by_urls(workspace, settings)
    rating = np.array([ratings.get(presets.urls[pair], np.nan) for pair in presets.pairs])
    scores = blend(model, measured, rating, settings)
    stats = quality_stats(scores)
    is_sampled = np.isfinite(measured)
    top_decile = scores >= np.percentile(scores, 90)
    flagged_on_top = [pair for pair, on_top, known, rated in zip(presets.pairs, top_decile, is_sampled, rating)
                      if on_top and known and flagged(sampled[pair]) and not rated >= WELL_RATED]
    missing_pairs = {text.split(":")[0] for text in presets.missing}
    unreadable_pairs = {text.split(":")[0] for text in presets.unreadable}
    entries = []
    for index, pair in enumerate(presets.pairs):
        entry = {"pair": pair, "quality01": round(float(scores[index]), 6),
                 "basis": "measured" if is_sampled[index] else "model"}
        if is_sampled[index]:
            entry["measured"] = round(float(measured[index]), 6)
        if np.isfinite(rating[index]):
            entry["rating"] = round(float(rating[index]), 4)
        entries.append(entry)
    quality = {
        "version": "v0", "pack": manifest.pack, "generatedAt": now_iso(),
        "pairs": entries,
        "qualityStats": stats,
        "stats": {"missingFiles": len(missing_pairs), "unreadableFiles": len(unreadable_pairs),
                  "manifestPairs": len(manifest.pairs), "scoredPairs": len(presets.pairs),
                  "sampledPairs": len(sampled),
                  "evalCoverage": round(len(sampled) / len(manifest.pairs), 4) if manifest.pairs else 0.0,
                  "sampledSpearman": (round(spearman(scores[is_sampled], measured[is_sampled]), 4)
                                      if is_sampled.sum() >= 2 else None),
                  "flaggedInTopDecile": flagged_on_top,
                  "missing": presets.missing[:20], "unreadable": presets.unreadable[:20],
                  "model": {"codeVersion": scorer.checkpoint["codeVersion"], **_training_metrics(workspace)}},
    }
    path = workspace.quality_path(pack)
    validate_quality(quality, path, manifest)
    failures = gate_failures(stats, settings.min_quality_std)
    rejected = workspace.rejected_quality_path(pack)
    if failures:
        quality["stats"]["gateFailures"] = failures
        write_json(rejected, quality)
        kept = "the last good file stays in place" if path.exists() else "no quality file was written"
        coverage = (f"more coverage ({len(sampled)}/{len(manifest.pairs)} pairs sampled: "
                    f"`{command('sample --target-coverage 1.0')}`)" if len(sampled) < len(manifest.pairs)
                    else "coverage is complete")
        unprinted = sum(1 for vector in presets.fg + presets.bg if not vector[FINGERPRINTED])
        if unprinted:  # without fingerprints, unsampled pairs have nothing but their text to tell them apart
            coverage = (f"fingerprints ({unprinted} of {2 * len(presets.pairs)} pair layers have none: "
                        f"`{command(f'fingerprint --packs {pack}')}`), {coverage}")
        raise CqError(
            f"{pack}: the scores fail the gate: {'; '.join(failures)}. Fix, in this order: {coverage}, more "
            f"negatives (`{command('train --neg-samples N')}`), more epochs (`{command('train --epochs N')}`). "
            f"Rejected scores: {rejected}; {kept}.")
    write_json(path, quality)
    rejected.unlink(missing_ok=True)
    log(f"score {pack}: {len(presets.pairs)}/{len(manifest.pairs)} pairs scored, "
        f"{len(missing_pairs)} with missing files; qualityStats {stats}")
    return quality

