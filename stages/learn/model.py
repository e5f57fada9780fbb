"""The coupling net: a linear model plus a small MLP, from standardised pair features to a quality logit.

The linear part carries what is nearly linear (above all the composite estimate of the two fingerprints,
`mix.estimate`, which alone ranks pairs well); the MLP learns what is not (where the estimate goes wrong,
what the text adds). Wide and deep: with few sampled pairs, the linear path keeps the net from doing worse
than ridge on the same features.

In: a batch of pair vectors (`stages.features.PAIR_FEATURES`: fg, bg, fg-bg, fg*bg), standardised by
`standardise` with the training set's mean and std. Out: one logit per pair; `sigmoid(logit)` is the model's
quality. `predict_quality` is the one inference path: the trainer's validation and the scorer both use it.
Its shape (hidden units, layers, dropout) comes from `TrainSettings` and is saved in the checkpoint.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

# Features live in [0, 1]. One that barely varies in training must not turn a small novelty in an unseen
# pair into a huge input (and a confidently wrong score): its std is floored and every input clipped.
STD_FLOOR = 0.05
Z_CLIP = 5.0


def feature_std(features: np.ndarray) -> np.ndarray:
    return np.maximum(features.std(axis=0), STD_FLOOR)


def standardise(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.clip((features - mean) / std, -Z_CLIP, Z_CLIP).astype(np.float32)


@dataclass(frozen=True)
class NetConfig:
    features: int
    hidden: int = 32
    layers: int = 2
    dropout: float = 0.2


class CouplingNet(nn.Module):
    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        blocks, width = [], config.features
        for _ in range(config.layers):
            blocks += [nn.Linear(width, config.hidden), nn.GELU(), nn.Dropout(config.dropout)]
            width = config.hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, 1)
        self.linear = nn.Linear(config.features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.head(self.body(x)) + self.linear(x)).squeeze(-1)

    def config_dict(self) -> dict:
        return asdict(self.config)


@torch.no_grad()
def predict_quality(net: CouplingNet, features: np.ndarray, mean: np.ndarray, std: np.ndarray,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """The net's quality in [0, 1] for raw pair vectors (standardised here with the training statistics)."""
    net.eval()
    x = torch.from_numpy(standardise(features, mean, std)).to(device)
    return torch.sigmoid(net(x)).cpu().numpy().astype(np.float64)
