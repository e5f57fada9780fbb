"""Train the coupling net on elite, eval and negative pairs; write the checkpoint and a training report.

In: a `Workspace` (its packs' presets and eval rows, elite manifest, ratings) and `TrainSettings`.
Out: `outputs/coupling/models/coupling_net_final.pth` (`stages.checkpoint`) and the JSON report next to
it (`contracts.validate_train_report`): per-epoch loss per source, held-out Spearman/Pearson with
bootstrap 95% intervals for the net and for a ridge baseline on the same features, and elite AUC.

Reads only files: never starts a browser. Seeded and reproducible on CPU; CUDA when present.

The recipe, top to bottom in `train`:
1. gather the sources (`stages.sources`) and hold out a seeded 15% of eval pairs (by pair);
2. standardise features with the training set's mean and std;
3. draw batches with a WeightedRandomSampler so sources arrive at 0.25/0.25/0.50 (elite/eval/neg,
   renormalised over the sources present); loss = BCE against soft targets, scaled per source by
   1 (elite), ExtraEvalWeight (eval) and NegWeight (neg);
4. evaluate on the held-out pairs, fit the ridge baseline, save.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import BatchSampler, WeightedRandomSampler

from ..core.contracts import TRAIN_REPORT_KIND, TRAIN_SOURCES, now_iso, validate_train_report, write_json
from ..core.errors import CqError
from ..core.settings import SampleSettings, TrainSettings, from_params
from ..core.workspace import Workspace, settings_config
from ..learn.checkpoint import save_checkpoint
from ..learn.metrics import auc, pearson, ridge_predict, spearman, with_interval
from ..learn.model import CouplingNet, NetConfig, feature_std, standardise
from ..learn.sources import PairSet, gather_sources, held_out_keys

SOURCE_SHARES = {"elite": 0.25, "eval": 0.25, "neg": 0.50}
WEIGHT_DECAY = 0.05  # strong: eval sets are small (a few hundred pairs) and the net must not memorise them

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
        import pynvml
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


# ------------------------------------------------------------------------------------------ training


def held_out_mask(keys: list[str], fraction: float, seed: int) -> np.ndarray:
    """`held_out_keys` as a mask over `keys`."""
    held = held_out_keys(keys, fraction, seed)
    return np.array([key in held for key in keys], bool)


def source_weights(sets: dict[str, PairSet]) -> dict[str, float]:
    """Sampling share per source present, renormalised to sum to 1."""
    total = sum(SOURCE_SHARES[name] for name in sets)
    return {name: SOURCE_SHARES[name] / total for name in sets}


def fit(train_sets: dict[str, PairSet], held_out: PairSet | None, settings: TrainSettings, device: torch.device,
        mean: np.ndarray, std: np.ndarray, log=print) -> tuple[CouplingNet, list[dict]]:
    """The training loop: returns the trained net and one log record per epoch."""
    torch.manual_seed(settings.seed)
    names = list(train_sets)
    x = torch.from_numpy(np.concatenate([standardise(train_sets[n].features, mean, std) for n in names])).to(device)
    y = torch.from_numpy(np.concatenate([train_sets[n].targets for n in names])).float().to(device)
    source = torch.from_numpy(np.concatenate([np.full(len(train_sets[n]), i) for i, n in enumerate(names)])).to(device)
    loss_weight = torch.tensor([{"elite": 1.0, "eval": settings.extra_eval_weight, "neg": settings.neg_weight}[n]
                                for n in names], device=device)
    shares = source_weights(train_sets)
    draw_weight = np.concatenate([np.full(len(train_sets[n]), shares[n] / len(train_sets[n])) for n in names])
    sampler = WeightedRandomSampler(torch.from_numpy(draw_weight), num_samples=len(draw_weight), replacement=True,
                                    generator=torch.Generator().manual_seed(settings.seed))
    if held_out is not None:
        x_held = torch.from_numpy(standardise(held_out.features, mean, std)).to(device)
        y_held = torch.from_numpy(held_out.targets).float().to(device)

    net = CouplingNet(NetConfig(features=x.shape[1])).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=WEIGHT_DECAY)
    epochs = []
    for epoch in range(1, settings.epochs + 1):
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
                  "heldOutLoss": None, "seconds": 0.0}
        record["loss"]["total"] = round(float(loss_sum.sum() / drawn.sum()), 5)
        if held_out is not None:
            net.eval()
            with torch.no_grad():
                record["heldOutLoss"] = round(float(F.binary_cross_entropy_with_logits(net(x_held), y_held)), 5)
        record["seconds"] = round(time.monotonic() - started, 3)
        epochs.append(record)
        log(f"epoch {epoch:3d}/{settings.epochs}  loss " + "  ".join(
            f"{n} {record['loss'][n]:.4f}" for n in names)
            + (f"  held-out {record['heldOutLoss']:.4f}" if held_out is not None else "")
            + f"  ({record['seconds']:.1f} s)")
    return net, epochs


@torch.no_grad()
def predict(net: CouplingNet, features: np.ndarray, mean: np.ndarray, std: np.ndarray,
            device: torch.device) -> np.ndarray:
    net.eval()
    x = torch.from_numpy(standardise(features, mean, std)).to(device)
    return torch.sigmoid(net(x)).cpu().numpy().astype(np.float64)


def elite_auc(scores: np.ndarray, elite: PairSet, held_out: np.ndarray) -> dict | None:
    """AUC of the net separating elite pairs rated >= 4 from those rated <= 2: on held-out elite entries when
    both kinds are among them, else on all of them (in-sample, and marked so)."""
    rating = elite.targets * 4 + 1
    for subset, is_held_out in ((held_out, True), (np.ones(len(rating), bool), False)):
        positive, negative = subset & (rating >= 4), subset & (rating <= 2)
        if positive.any() and negative.any():
            chosen = positive | negative
            return {"value": round(auc(scores[chosen], positive[chosen]), 4), "positives": int(positive.sum()),
                    "negatives": int(negative.sum()), "heldOut": is_held_out}
    return None


def train(workspace: Workspace, settings: TrainSettings, log=print) -> dict:
    """Train on what the workspace holds, save the checkpoint and the report; return the report."""
    started = time.monotonic()
    device = pick_device(settings.require_cuda)
    torch.set_num_threads(max(1, settings.threads))
    snapshot = {"before": gpu_snapshot() if device.type == "cuda" else None, "after": None}
    if device.type == "cuda":
        log(f"device=cuda  {snapshot['before']}")
    else:
        log(f"device=cpu  (no CUDA GPU visible to torch {torch.__version__}; training on the CPU)")

    thresholds = from_params(SampleSettings, settings_config(workspace).get("sample", {}))
    sources = gather_sources(workspace, settings, thresholds=thresholds)
    for warning in sources.warnings[:20]:
        log(f"warning: {warning}")
    for name in TRAIN_SOURCES:
        log(f"source {name}: {sources.notes.get(name, '')}")
    if "eval" not in sources.sets and "elite" not in sources.sets:
        raise CqError("nothing to learn from: no eval rows and no elite entries in the workspace "
                      f"{workspace.root} (run `doit sample` first, or add an elite manifest)")

    # 1. hold out a seeded share of the eval pairs, and of the elite entries
    train_sets = dict(sources.sets)
    held_out, elite_held = None, None
    if "eval" in sources.sets:
        mask = np.array([key in sources.held_out for key in sources.sets["eval"].keys], bool)
        held_out = sources.sets["eval"].subset(mask) if mask.any() else None
        train_sets["eval"] = sources.sets["eval"].subset(~mask)
    if "elite" in sources.sets:
        elite_held = held_out_mask(sources.sets["elite"].keys, settings.holdout, settings.seed)
        train_sets["elite"] = sources.sets["elite"].subset(~elite_held)
    train_sets = {name: pairs for name, pairs in train_sets.items() if len(pairs)}

    # 2. standardise with the training set's statistics
    everything = np.concatenate([pairs.features for pairs in train_sets.values()])
    mean = everything.mean(axis=0)
    std = feature_std(everything)
    del everything

    # 3. train
    log(f"training on {', '.join(f'{len(p)} {n}' for n, p in train_sets.items())}"
        + (f"; {len(held_out)} eval pairs held out" if held_out is not None else ""))
    net, epochs = fit(train_sets, held_out, settings, device, mean, std, log)
    fit_seconds = sum(epoch["seconds"] for epoch in epochs)
    train_seconds = time.monotonic() - started

    # 4. evaluate against the held-out pairs, beside a ridge baseline on the same features
    metrics = {"pairs": 0, "net": {"spearman": None, "pearson": None}, "ridge": {"spearman": None, "pearson": None}}
    if held_out is not None and "eval" in train_sets:
        measured = held_out.targets.astype(np.float64)
        net_scores = predict(net, held_out.features, mean, std, device)
        ridge_scores = ridge_predict(standardise(train_sets["eval"].features, mean, std), train_sets["eval"].targets,
                                     standardise(held_out.features, mean, std), settings.seed)
        metrics["pairs"] = len(held_out)
        for model_name, scores in (("net", net_scores), ("ridge", ridge_scores)):
            metrics[model_name] = {"spearman": with_interval(spearman, scores, measured, settings.seed),
                                   "pearson": with_interval(pearson, scores, measured, settings.seed)}
        log(f"held-out ({len(held_out)} pairs): net spearman {metrics['net']['spearman']}, "
            f"ridge spearman {metrics['ridge']['spearman']}")
    elite_metric = None
    if "elite" in sources.sets:
        elite_metric = elite_auc(predict(net, sources.sets["elite"].features, mean, std, device),
                                 sources.sets["elite"], elite_held)
        log(f"elite AUC (>=4 vs <=2): {elite_metric}")

    if device.type == "cuda":
        snapshot["after"] = gpu_snapshot()
        log(f"device=cuda after training  {snapshot['after']}")
    settings_record = dataclasses.asdict(settings)
    save_checkpoint(workspace.checkpoint_path, net.cpu(), mean, std, settings_record)
    report = {
        "kind": TRAIN_REPORT_KIND, "trainedAt": now_iso(), "trainSeconds": round(train_seconds, 3),
        "fitSeconds": round(fit_seconds, 3),
        "device": device.type, "deviceSnapshot": snapshot, "settings": settings_record,
        "featureCount": int(mean.shape[0]),
        "sources": {name: {"count": len(sources.sets[name]) if name in sources.sets else 0,
                           "trained": len(train_sets[name]) if name in train_sets else 0,
                           "share": source_weights(train_sets).get(name, 0.0),
                           "lossWeight": {"elite": 1.0, "eval": settings.extra_eval_weight,
                                          "neg": settings.neg_weight}[name],
                           "note": sources.notes.get(name, "")} for name in TRAIN_SOURCES},
        "epochs": epochs, "heldOut": metrics, "eliteAuc": elite_metric, "packs": sources.packs,
        "warnings": sources.warnings,
    }
    write_json(workspace.train_report_path, validate_train_report(report, workspace.train_report_path))
    log(f"wrote {workspace.checkpoint_path} and {Path(workspace.train_report_path).name} "
        f"({train_seconds:.1f} s on {device.type})")
    return report

