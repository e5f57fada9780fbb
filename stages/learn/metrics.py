"""The figures the trainer and the scorer report: rank and linear correlation, AUC, bootstrap intervals,
binary cross-entropy, and the ridge regression baseline.

In: numpy arrays of predicted and measured qualities. Out: floats, or `{value, lo, hi}` with a bootstrap
95% interval over resampled pairs.
"""
from __future__ import annotations

import numpy as np
import torch

BOOTSTRAP_ROUNDS = 1000
MIN_METRIC_PAIRS = 5  # fewer pairs give no correlation worth reporting
RIDGE_LAMBDAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (what Spearman's rho needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 1e-12 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(_ranks(a), _ranks(b))


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive outranks a negative (ties count half); nan without both kinds."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def bootstrap(statistic, count: int, seed: int) -> dict | None:
    """`{value, lo, hi}`: `statistic(indices)` over all `count` items and its bootstrap 95% interval over
    resampled items; None with too few items or an undefined value."""
    value = statistic(np.arange(count))
    if count < MIN_METRIC_PAIRS or not np.isfinite(value):
        return None
    draws = np.random.default_rng(seed).integers(0, count, size=(BOOTSTRAP_ROUNDS, count))
    samples = np.array([statistic(draw) for draw in draws])
    samples = samples[np.isfinite(samples)]
    lo, hi = np.percentile(samples, [2.5, 97.5]) if len(samples) else (value, value)
    return {"value": round(float(value), 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4)}


def with_interval(metric, predicted: np.ndarray, measured: np.ndarray, seed: int) -> dict | None:
    """A metric of (predicted, measured) with its bootstrap 95% interval over resampled pairs."""
    return bootstrap(lambda d: metric(predicted[d], measured[d]), len(measured), seed)


def ridge_fit(x_train: np.ndarray, y_train: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Ridge regression `(weights, intercept)`; the penalty is picked by 5-fold cross-validation on the rows.

    Solved through one SVD per fit, in torch (which keeps to the configured threads; numpy's BLAS would
    spin on every core of a shared machine)."""
    def fit(x, y, penalty):
        x, y = torch.from_numpy(x).double(), torch.from_numpy(y).double()
        centre = y.mean()
        u, s, vh = torch.linalg.svd(x, full_matrices=False)
        weights = vh.T @ ((s / (s * s + penalty)) * (u.T @ (y - centre)))
        return weights.numpy(), float(centre)

    folds = np.random.default_rng(seed).permutation(len(y_train)) % 5
    errors = []
    for penalty in RIDGE_LAMBDAS:
        squared = []
        for k in range(5):
            if (folds == k).any():
                weights, centre = fit(x_train[folds != k], y_train[folds != k], penalty)
                squared.append(np.mean((x_train[folds == k] @ weights + centre - y_train[folds == k]) ** 2))
        errors.append(np.mean(squared))
    return fit(x_train, y_train, RIDGE_LAMBDAS[int(np.argmin(errors))])


def ridge_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """The ridge baseline's predictions for `x_test` (`ridge_fit` on the training rows)."""
    weights, centre = ridge_fit(x_train, y_train, seed)
    return x_test @ weights + centre


def bce(predicted: np.ndarray, target: np.ndarray) -> float:
    """Binary cross-entropy of qualities against soft targets (the training loss, in numpy)."""
    p = np.clip(predicted, 1e-7, 1 - 1e-7)
    return float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))
