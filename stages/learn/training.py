"""Train the coupling net on elite, eval and negative pairs; write the checkpoint and a training report.

In: a `Workspace` (its packs' presets and eval rows, elite manifest, ratings) and `TrainSettings`.
Out: `outputs/coupling/models/coupling_net_final.pth` (`learn.checkpoint`) and the JSON report next to
it (`contracts.validate_train_report`): the final fit's loss per source and epoch, and the k-fold
cross-validation: per-fold figures, out-of-fold Spearman/Pearson with bootstrap 95% intervals for the net
and for a ridge baseline on the same features, their paired difference, elite AUC, and every sampled
pair's measured quality beside its out-of-fold scores.

Reads only files: never starts a browser. Seeded and reproducible on CPU; CUDA when present.

The recipe, top to bottom in `train`:
1. gather the sources (`learn.sources`); every example knows the pairs it is made of;
2. k-fold cross-validation by pair (`cross_validate`): for each fold, train on the examples that touch no
   pair of the fold (`settings.epochs` epochs), and predict the fold's eval and elite pairs after every
   epoch; the epoch count with the lowest mean validation loss is the one the final fit runs;
   then the same by preset (`fold_split`: no preset of a tested pair in training) at that epoch count;
3. the final fit on everything, held-out pairs included (they are measured: the scorer scores a sampled
   pair by its measurement, and the model must carry them too), for the chosen epoch count;
4. save the checkpoint and the report.

One fit (`fit`): standardise features with its training set's mean and std; fit the net's ridge prior on the
training eval pairs (closed form, then frozen: `model.CouplingNet`); draw batches with a
WeightedRandomSampler so sources arrive at share_elite/share_eval/share_neg (renormalised over the sources
present); loss = BCE against soft targets, scaled per source by 1 (elite), ExtraEvalWeight (eval) and
NegWeight (neg); AdamW with weight_decay.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import BatchSampler, WeightedRandomSampler

from ..core.contracts import TRAIN_REPORT_KIND, TRAIN_SOURCES, now_iso, validate_train_report, write_json
from ..core.errors import CqError
from ..core.settings import TrainSettings
from ..core.workspace import Workspace
from ..learn.checkpoint import save_checkpoint
from ..learn.features import FINGERPRINT_COLUMNS, FeatureCache
from ..learn.metrics import auc, bce, bootstrap, pearson, ridge_fit, ridge_predict, spearman, with_interval
from ..learn.model import CouplingNet, NetConfig, feature_std, predict_quality, standardise
from ..learn.sources import PairSet, Sources, gather_sources, quality_thresholds

MIN_FOLD_PAIRS = 2    # cross-validation needs at least this many eval pairs per fold on average
MIN_RIDGE_PAIRS = 5   # the ridge baseline needs this many training pairs
DISAGREEMENTS = 20    # pairs listed where measurement and out-of-fold score disagree most

# ------------------------------------------------------------------------------------------- device


def pick_device(require_cuda: bool) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if require_cuda:
        raise CqError("--require-cuda is set but torch sees no CUDA GPU (torch.cuda.is_available() is False): "
                      "run on a machine with an NVIDIA GPU and a CUDA build of torch, or drop --require-cuda")
    return torch.device("cpu")


def gpu_snapshot() -> dict:
    """Name, memory and utilisation of the GPU torch uses, read through NVML (pynvml)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pynvml announces its rename on import
        try:
            import pynvml
        except ImportError:
            return {"error": "NVML unavailable: the pynvml package is not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return {"error": f"NVML unavailable: {error}"}
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        name = pynvml.nvmlDeviceGetName(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
        driver = pynvml.nvmlSystemGetDriverVersion()
        return {"name": name.decode() if isinstance(name, bytes) else name,
                "driver": driver.decode() if isinstance(driver, bytes) else driver,
                "memoryUsedMiB": memory.used // 2**20, "memoryTotalMiB": memory.total // 2**20,
                "utilizationGpu": rates.gpu, "utilizationMemory": rates.memory,
                "torchMaxAllocatedMiB": torch.cuda.max_memory_allocated() // 2**20}
    except pynvml.NVMLError as error:
        return {"error": f"NVML query failed: {error}"}
    finally:
        pynvml.nvmlShutdown()


# ------------------------------------------------------------------------------------------ one fit


def elite_auc(scores: np.ndarray, elite: PairSet, seed: int, held_out: bool) -> dict | None:
    """AUC of scores separating elite pairs rated >= 4 from those rated <= 2, with its bootstrap interval;
    None unless both kinds exist."""
    rating = elite.targets * 4 + 1
    chosen = (rating >= 4) | (rating <= 2)
    positive = rating[chosen] >= 4
    if positive.all() or not positive.any():
        return None
    values = scores[chosen]
    metric = bootstrap(lambda d: auc(values[d], positive[d]), len(values), seed)
    if metric is None:
        return None
    return {**metric, "positives": int(positive.sum()), "negatives": int((~positive).sum()), "heldOut": held_out}



def source_weights(sets: dict[str, PairSet], settings: TrainSettings) -> dict[str, float]:
    """Sampling share per source present, renormalised to sum to 1."""
    shares = {"elite": settings.share_elite, "eval": settings.share_eval, "neg": settings.share_neg}
    total = sum(shares[name] for name in sets)
    return {name: shares[name] / total for name in sets}


def loss_weights(settings: TrainSettings) -> dict[str, float]:
    return {"elite": 1.0, "eval": settings.extra_eval_weight, "neg": settings.neg_weight}


@dataclass
class Fit:
    """A trained net with its standardisation, one record per epoch and, when `fit` was given validation
    sets, their predictions after every epoch (per source, shape (epochs, examples))."""

    net: CouplingNet
    mean: np.ndarray
    std: np.ndarray
    epochs: list[dict]
    validation: dict[str, np.ndarray]


def fit(train_sets: dict[str, PairSet], settings: TrainSettings, device: torch.device, epochs: int,
        validation: dict[str, PairSet] | None = None, log=print) -> Fit:
    """The training loop: `epochs` epochs on `train_sets`; `validation` sets are predicted after each."""
    torch.manual_seed(settings.seed)
    names = list(train_sets)
    everything = np.concatenate([train_sets[n].features for n in names])
    mean, std = everything.mean(axis=0), feature_std(everything)
    x = torch.from_numpy(standardise(everything, mean, std)).to(device)
    del everything
    y = torch.from_numpy(np.concatenate([train_sets[n].targets for n in names])).float().to(device)
    source = torch.from_numpy(np.concatenate([np.full(len(train_sets[n]), i) for i, n in enumerate(names)])).to(device)
    weight_of = loss_weights(settings)
    loss_weight = torch.tensor([weight_of[n] for n in names], device=device)
    shares = source_weights(train_sets, settings)
    draw_weight = np.concatenate([np.full(len(train_sets[n]), shares[n] / len(train_sets[n])) for n in names])
    sampler = WeightedRandomSampler(torch.from_numpy(draw_weight), num_samples=len(draw_weight), replacement=True,
                                    generator=torch.Generator().manual_seed(settings.seed))
    validation = validation or {}
    predicted = {name: np.zeros((epochs, len(pairs))) for name, pairs in validation.items()}

    net = CouplingNet(NetConfig(features=x.shape[1], hidden=settings.hidden, layers=settings.layers,
                                dropout=settings.dropout))
    if "eval" in train_sets and len(train_sets["eval"]) >= MIN_RIDGE_PAIRS:  # the prior: ridge on measured pairs
        columns = list(FINGERPRINT_COLUMNS)
        weights, bias = ridge_fit(standardise(train_sets["eval"].features, mean, std)[:, columns].astype(np.float64),
                                  train_sets["eval"].targets.astype(np.float64), settings.seed)
        prior = np.zeros(x.shape[1])
        prior[columns] = weights
        net.set_prior(prior, bias)
    net = net.to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    records = []
    for epoch in range(1, epochs + 1):
        started = time.monotonic()
        net.train()
        loss_sum = torch.zeros(len(names), device=device)
        drawn = torch.zeros(len(names), device=device)
        for batch in BatchSampler(sampler, settings.batch_size, drop_last=False):
            index = torch.as_tensor(batch, device=device)
            losses = F.binary_cross_entropy_with_logits(net(x[index]), y[index], reduction="none")
            batch_source = source[index]
            loss = (losses * loss_weight[batch_source]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum.index_add_(0, batch_source, losses.detach())
            drawn.index_add_(0, batch_source, torch.ones_like(losses))
        per_source = (loss_sum / drawn.clamp(min=1)).tolist()
        drawn_counts = drawn.long().tolist()
        record = {"epoch": epoch,
                  "loss": {n: (round(per_source[names.index(n)], 5) if n in names else None) for n in TRAIN_SOURCES},
                  "drawn": {n: (drawn_counts[names.index(n)] if n in names else 0) for n in TRAIN_SOURCES},
                  "validationLoss": None, "seconds": 0.0}
        record["loss"]["total"] = round(float(loss_sum.sum() / drawn.sum()), 5)
        for name, pairs in validation.items():
            predicted[name][epoch - 1] = predict_quality(net, pairs.features, mean, std, device)
        if "eval" in validation:
            record["validationLoss"] = round(bce(predicted["eval"][epoch - 1], validation["eval"].targets), 5)
        record["seconds"] = round(time.monotonic() - started, 3)
        records.append(record)
        log(f"epoch {epoch:3d}/{epochs}  loss " + "  ".join(f"{n} {record['loss'][n]:.4f}" for n in names)
            + (f"  validation {record['validationLoss']:.4f}" if record["validationLoss"] is not None else "")
            + f"  ({record['seconds']:.1f} s)")
    return Fit(net, mean, std, records, predicted)


# ------------------------------------------------------------------------------- cross-validation


def fold_split(sources: Sources, by: str, fold: int, k: int, seed: int) -> tuple[dict, dict]:
    """(held, trained): per source, the masks of the examples a fold validates on and trains on.

    by pair: a fold holds out whole pairs (`fold_of` their key): their row, rating and every negative
    built from them. By preset: a fold tests the pairs whose fg preset's family falls in it, and trains
    only on examples that use none of the presets (fg or bg) of those pairs, so every tested pair is made
    of presets the model never saw."""
    if by == "pair":
        held = {name: pairs.touches(fold, k, seed) for name, pairs in sources.sets.items()}
        return held, {name: ~mask for name, mask in held.items()}
    held = {name: (pairs.fg_family_in(fold, k, seed) if name != "neg" else np.zeros(len(pairs), bool))
            for name, pairs in sources.sets.items()}
    unseen = {family for name, pairs in sources.sets.items()
              for families, tested in zip(pairs.families, held[name]) if tested for family in families}
    return held, {name: ~pairs.uses_any(unseen) for name, pairs in sources.sets.items()}


def cross_validate(sources: Sources, settings: TrainSettings, device: torch.device, log=print, by: str = "pair",
                   epochs: int | None = None) -> dict | None:
    """k-fold cross-validation `by` pair or by preset (`fold_split`): per-fold and pooled out-of-fold figures
    for the net and the ridge baseline, elite AUC, and the epoch count with the lowest mean validation loss
    (or `epochs`, fixed, when given: the by-preset figure runs the count the by-pair folds chose).

    None when there are too few eval pairs (fewer than MIN_FOLD_PAIRS per fold) or folds < 2."""
    k, seed = settings.folds, settings.seed
    evals = sources.sets.get("eval")
    if k < 2 or evals is None or len(evals) < MIN_FOLD_PAIRS * k:
        return None
    run_epochs = epochs or settings.epochs
    kinds = [name for name in ("eval", "elite") if name in sources.sets]
    out_of_fold = {name: np.full((run_epochs, len(sources.sets[name])), np.nan) for name in kinds}
    ridge_out = np.full(len(evals), np.nan)
    fold_of_pair = np.full(len(evals), -1)
    folds = []
    for fold in range(k):
        held, trained = fold_split(sources, by, fold, k, seed)
        if not held["eval"].any() or not trained["eval"].any():
            continue
        train_sets = {name: pairs.subset(trained[name]) for name, pairs in sources.sets.items() if trained[name].any()}
        validation = {name: sources.sets[name].subset(held[name]) for name in kinds if held[name].any()}
        started = time.monotonic()
        result = fit(train_sets, settings, device, run_epochs, validation, log=lambda *_: None)
        for name, predicted in result.validation.items():
            out_of_fold[name][:, held[name]] = predicted
        if "eval" in train_sets and len(train_sets["eval"]) >= MIN_RIDGE_PAIRS:
            ridge_out[held["eval"]] = ridge_predict(
                standardise(train_sets["eval"].features, result.mean, result.std), train_sets["eval"].targets,
                standardise(validation["eval"].features, result.mean, result.std), seed)
        fold_of_pair[held["eval"]] = fold
        folds.append({"fold": fold, "pairs": int(held["eval"].sum()),
                      "trained": {name: len(pairs) for name, pairs in train_sets.items()},
                      "validationLoss": [record["validationLoss"] for record in result.epochs],
                      "trainingLoss": [record["loss"]["total"] for record in result.epochs],
                      "seconds": round(time.monotonic() - started, 3)})
        log(f"fold {fold + 1}/{k} by {by}: {folds[-1]['pairs']} eval pairs held out, best validation loss "
            f"{min(folds[-1]['validationLoss']):.4f} at epoch {int(np.argmin(folds[-1]['validationLoss'])) + 1} "
            f"({folds[-1]['seconds']:.1f} s)")

    if not folds:
        return None
    validation_loss = np.mean([f["validationLoss"] for f in folds], axis=0)
    chosen = epochs or int(np.argmin(validation_loss)) + 1
    tested = fold_of_pair >= 0  # by preset, a pair whose presets fall in two folds' tests is tested in one
    measured = evals.targets.astype(np.float64)[tested]
    net_out = out_of_fold["eval"][chosen - 1][tested]
    ridge_out, fold_of_pair = ridge_out[tested], fold_of_pair[tested]
    evals = evals.subset(tested)
    has_ridge = np.isfinite(ridge_out)
    for record in folds:
        mask = fold_of_pair == record["fold"]
        record["net"] = _rounded(spearman(net_out[mask], measured[mask]))
        record["ridge"] = _rounded(spearman(ridge_out[mask], measured[mask])) if has_ridge[mask].all() else None
    ridge_metrics = {"spearman": None, "pearson": None}
    difference = None
    if has_ridge.all():
        ridge_metrics = {"spearman": with_interval(spearman, ridge_out, measured, seed),
                         "pearson": with_interval(pearson, ridge_out, measured, seed)}
        difference = bootstrap(lambda d: spearman(net_out[d], measured[d]) - spearman(ridge_out[d], measured[d]),
                               len(measured), seed)
    elite = None
    if "elite" in out_of_fold:
        predicted = out_of_fold["elite"][chosen - 1]
        validated_elite = np.isfinite(predicted)  # an elite pair of a fold without eval pairs was not validated
        elite = elite_auc(predicted[validated_elite], sources.sets["elite"].subset(validated_elite), seed,
                          held_out=True)
    order = np.argsort(-np.abs(net_out - measured), kind="stable")
    report = {
        "by": by, "folds": k, "seed": seed, "pairs": len(evals), "chosenEpochs": chosen,
        "validationLoss": [round(float(v), 5) for v in validation_loss],
        "trainingLoss": [round(float(v), 5) for v in np.mean([f["trainingLoss"] for f in folds], axis=0)],
        "perFold": folds,
        "net": {"spearman": with_interval(spearman, net_out, measured, seed),
                "pearson": with_interval(pearson, net_out, measured, seed)},
        "ridge": ridge_metrics, "netMinusRidge": {"spearman": difference}, "eliteAuc": elite,
        "outOfFold": [{"key": key, "fold": int(fold_of_pair[i]), "measured": round(float(measured[i]), 5),
                       "net": round(float(net_out[i]), 5),
                       "ridge": round(float(ridge_out[i]), 5) if has_ridge[i] else None}
                      for i, key in enumerate(evals.keys)],
        "disagreements": [evals.keys[i] for i in order[:DISAGREEMENTS]],
    }
    log(f"{k}-fold cross-validation by {by} ({len(evals)} pairs): {chosen} epochs; out-of-fold spearman "
        f"net {report['net']['spearman']}, ridge {ridge_metrics['spearman']}, net - ridge {difference}; "
        f"elite AUC {elite}")
    return report


def _rounded(value: float) -> float | None:
    return round(value, 4) if np.isfinite(value) else None


# ------------------------------------------------------------------------------------------ training


def train(workspace: Workspace, settings: TrainSettings, log=print, cache: FeatureCache | None = None) -> dict:
    """Cross-validate, fit on everything, save the checkpoint and the report; return the report. `cache`
    reads the presets' vectors (default: the workspace's, fingerprints included)."""
    started = time.monotonic()
    device = pick_device(settings.require_cuda)
    torch.set_num_threads(max(1, settings.threads))
    snapshot = {"before": gpu_snapshot() if device.type == "cuda" else None, "after": None}
    if device.type == "cuda":
        log(f"device=cuda  {snapshot['before']}")
    else:
        log(f"device=cpu  (no CUDA GPU visible to torch {torch.__version__}; training on the CPU)")

    # 1. the sources
    sources = gather_sources(workspace, settings, cache, thresholds=quality_thresholds(workspace))
    for warning in sources.warnings[:20]:
        log(f"warning: {warning}")
    for name in TRAIN_SOURCES:
        log(f"source {name}: {sources.notes.get(name, '')}")
    if "eval" not in sources.sets and "elite" not in sources.sets:
        raise CqError("nothing to learn from: no eval rows and no elite entries in the workspace "
                      f"{workspace.root} (run `doit sample` first, or add an elite manifest)")

    # 2. k-fold cross-validation: the honest figure, and the epoch count
    validated = cross_validate(sources, settings, device, log)
    epochs = validated["chosenEpochs"] if validated else settings.epochs
    by_preset = cross_validate(sources, settings, device, log, by="preset", epochs=epochs)
    if validated is None:
        log(f"cross-validation skipped (folds {settings.folds}, "
            f"{len(sources.sets['eval']) if 'eval' in sources.sets else 0} eval pairs): {epochs} epochs")

    # 3. the final fit on everything
    log(f"final fit on {', '.join(f'{len(p)} {n}' for n, p in sources.sets.items())} for {epochs} epochs")
    final = fit(sources.sets, settings, device, epochs, log=log)
    if validated:
        for record, loss in zip(final.epochs, validated["validationLoss"]):
            record["validationLoss"] = loss
    elite = validated["eliteAuc"] if validated else None
    if elite is None and "elite" in sources.sets:
        elite = elite_auc(predict_quality(final.net, sources.sets["elite"].features, final.mean, final.std, device),
                          sources.sets["elite"], settings.seed, held_out=False)
    train_seconds = time.monotonic() - started

    # 4. save
    if device.type == "cuda":
        snapshot["after"] = gpu_snapshot()
        log(f"device=cuda after training  {snapshot['after']}")
    settings_record = dataclasses.asdict(settings)
    save_checkpoint(workspace.checkpoint_path, final.net.cpu(), final.mean, final.std, settings_record)
    shares, weights = source_weights(sources.sets, settings), loss_weights(settings)
    report = {
        "kind": TRAIN_REPORT_KIND, "trainedAt": now_iso(), "trainSeconds": round(train_seconds, 3),
        "fitSeconds": round(sum(record["seconds"] for record in final.epochs), 3),
        "crossValidationSeconds": round(sum(f["seconds"] for check in (validated, by_preset) if check
                                            for f in check["perFold"]), 3),
        "device": device.type, "deviceSnapshot": snapshot, "settings": settings_record,
        "featureCount": int(final.mean.shape[0]),
        "sources": {name: {"count": len(sources.sets[name]) if name in sources.sets else 0,
                           "share": shares.get(name, 0.0), "lossWeight": weights[name],
                           "note": sources.notes.get(name, "")} for name in TRAIN_SOURCES},
        "epochs": final.epochs, "crossValidation": validated, "crossValidationByPreset": by_preset,
        "eliteAuc": elite, "packs": sources.packs,
        "warnings": sources.warnings,
    }
    write_json(workspace.train_report_path, validate_train_report(report, workspace.train_report_path))
    log(f"wrote {workspace.checkpoint_path} and {Path(workspace.train_report_path).name} "
        f"({train_seconds:.1f} s on {device.type})")
    return report
