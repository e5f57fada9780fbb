"""The coupling net: a small MLP from standardised pair features to a quality logit.

In: a batch of pair vectors (`stages.features.PAIR_FEATURES`: fg, bg, fg-bg, fg*bg), already standardised
with the training set's mean and std. Out: one logit per pair; `sigmoid(logit)` is `quality01`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(-1)

    def config_dict(self) -> dict:
        return asdict(self.config)
