"""The coupling net: a ridge prior plus a small MLP that corrects it, from standardised pair features to a
quality logit.

The prior is a ridge regression of the measured quality on the same features, fitted in closed form on the
training pairs (`set_prior`) and then frozen: it carries what is nearly linear, above all the composite
estimate of the two fingerprints (`mix.estimate`), which alone ranks pairs well. The MLP adds to the
prior's logit what is not linear (where the estimate goes wrong, what the text adds, what ratings and
negatives teach); its last layer starts at zero, so an untrained net is exactly the prior.

In: a batch of pair vectors (`learn.features.PAIR_FEATURES`: text, layer scalars and the composite estimate),
standardised by `standardise` with the training set's mean and std. Out: one logit per pair; `sigmoid(logit)` is the model's
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
PRIOR_FLOOR = 0.02  # the prior's quality is kept inside (0.02, 0.98) before its logit


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
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("prior_weight", torch.zeros(config.features))
        self.register_buffer("prior_bias", torch.tensor(0.5))

    def set_prior(self, weight: np.ndarray, bias: float) -> None:
        """The ridge prior: quality ~ x @ weight + bias on standardised features (fitted, never trained)."""
        self.prior_weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        self.prior_bias.fill_(float(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prior = (x @ self.prior_weight + self.prior_bias).clamp(PRIOR_FLOOR, 1 - PRIOR_FLOOR)
        return torch.logit(prior) + self.head(self.body(x)).squeeze(-1)

    def config_dict(self) -> dict:
        return asdict(self.config)


@torch.no_grad()
def predict_quality(net: CouplingNet, features: np.ndarray, mean: np.ndarray, std: np.ndarray,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """The net's quality in [0, 1] for raw pair vectors (standardised here with the training statistics)."""
    net.eval()
    x = torch.from_numpy(standardise(features, mean, std)).to(device)
    return torch.sigmoid(net(x)).cpu().numpy().astype(np.float64)
