"""Saving and loading the coupling net's checkpoint (`contracts.validate_checkpoint`).

In/out: `outputs/coupling/models/coupling_net_final.pth`, a `torch.save`d dict with the weights, the
feature names and their normalisation, the net's config and the training settings, the code version
(a hash of the feature and model code, so a checkpoint never meets features it was not trained on) and
the torch version. `load_checkpoint` needs nothing else: scoring works from this file alone.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.contracts import validate_checkpoint, write_bytes_atomic
from ..core.errors import ContractError
from ..core.workspace import command
from ..learn import features
from ..learn.inputs import CODE_VERSION
from ..learn.model import CouplingNet, NetConfig, predict_quality


@dataclass
class Scorer:
    """A trained net with its normalisation: `predict(pair_vectors) -> quality01`."""

    net: CouplingNet
    mean: np.ndarray
    std: np.ndarray
    checkpoint: dict

    def predict(self, pair_vectors: np.ndarray) -> np.ndarray:
        return predict_quality(self.net, pair_vectors, self.mean, self.std)


def save_checkpoint(path: Path, net: CouplingNet, mean: np.ndarray, std: np.ndarray, settings: dict) -> dict:
    checkpoint = {
        "weights": {name: tensor.detach().cpu() for name, tensor in net.state_dict().items()},
        "featureNames": list(features.PAIR_FEATURES),
        "featureMean": [float(v) for v in mean],
        "featureStd": [float(v) for v in std],
        "config": {"net": net.config_dict(), "settings": settings},
        "codeVersion": CODE_VERSION,
        "torchVersion": str(torch.__version__),
    }
    validate_checkpoint(checkpoint, path)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return checkpoint


def load_checkpoint(path: Path) -> Scorer:
    """Load a checkpoint for scoring; a missing, foreign or outdated one is a ContractError with advice."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(path, "no checkpoint", f"run `{command('train')}` first")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged file
        raise ContractError(path, f"cannot load the checkpoint: {error}", f"run `{command('train')}` again") from None
    validate_checkpoint(checkpoint, path)
    if checkpoint["featureNames"] != list(features.PAIR_FEATURES) or checkpoint["codeVersion"] != CODE_VERSION:
        raise ContractError(path, "the checkpoint was trained by another version of the feature or model code",
                            f"run `{command('train')}` to retrain")
    net = CouplingNet(NetConfig(**checkpoint["config"]["net"]))
    net.load_state_dict(checkpoint["weights"])
    return Scorer(net, np.asarray(checkpoint["featureMean"], np.float32),
                  np.asarray(checkpoint["featureStd"], np.float32), checkpoint)
