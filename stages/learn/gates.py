"""The gates a pack's scores must pass before they replace the last good quality file."""
from __future__ import annotations

import numpy as np

from ..core.formats import QUALITY_STAT_FIELDS

MIN_SPREAD_BELOW_MEDIAN = 0.05


def quality_stats(scores: np.ndarray) -> dict:
    values = {"min": scores.min(), "p50": np.percentile(scores, 50), "p95": np.percentile(scores, 95),
              "max": scores.max(), "std": scores.std(), "mean": scores.mean()}
    return {key: round(float(values[key]), 6) for key in QUALITY_STAT_FIELDS}


def gate_failures(stats: dict, min_quality_std: float) -> list[str]:
    failures = []
    if stats["std"] < min_quality_std:
        failures.append(f"qualityStats.std {stats['std']:.4f} < MinQualityStd {min_quality_std}")
    if stats["min"] > stats["p50"] - MIN_SPREAD_BELOW_MEDIAN:
        failures.append(f"qualityStats.min {stats['min']:.4f} is not below p50 {stats['p50']:.4f} "
                        f"by {MIN_SPREAD_BELOW_MEDIAN}")
    return failures
