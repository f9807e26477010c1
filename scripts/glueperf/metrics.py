"""Classification metrics over the labeled rows: accuracy, Matthews correlation, macro F1.

Implemented on a confusion matrix with numpy so that the evaluation environment needs no
scikit-learn; tests compare them against their textbook definitions.
"""

from __future__ import annotations

import math

import numpy as np

from glueperf.validation import NO_LABEL


def confusion_matrix(labels, predictions, n_classes: int) -> np.ndarray:
    """counts[true, predicted] over the given pairs."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def matthews_corrcoef(counts: np.ndarray) -> float:
    """Multiclass MCC (Gorodkin 2004); 0.0 when it is undefined (a constant row or column sum)."""
    counts = counts.astype(np.float64)
    total = counts.sum()
    correct = np.trace(counts)
    true_per_class = counts.sum(axis=1)
    predicted_per_class = counts.sum(axis=0)
    numerator = correct * total - predicted_per_class @ true_per_class
    denominator = math.sqrt(total**2 - predicted_per_class @ predicted_per_class) * math.sqrt(
        total**2 - true_per_class @ true_per_class
    )
    if not denominator:
        return 0.0
    # Two square roots can land a perfect (inverse) prediction a rounding step outside [-1, 1].
    return float(min(1.0, max(-1.0, numerator / denominator)))


def macro_f1(counts: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in labels or predictions."""
    true_positive = np.diag(counts).astype(np.float64)
    true_per_class = counts.sum(axis=1)
    predicted_per_class = counts.sum(axis=0)
    present = (true_per_class + predicted_per_class) > 0
    denominators = (true_per_class + predicted_per_class)[present]
    return float(np.mean(2 * true_positive[present] / denominators))


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion, as fractions in [0, 1]."""
    if trials == 0:
        return (math.nan, math.nan)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (z / (1 + z * z / trials)) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2))
    # The interval always holds p; rounding alone would put the upper end of 10/10 at
    # 0.9999999999999999 and the lower end of 0/3 at 5.6e-17, on the wrong side of p.
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def score(labels, predictions, n_classes: int) -> dict:
    """Metrics over rows whose label is not -1; NaN (empty in the CSV) when none is labeled."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    labeled = labels != NO_LABEL
    n_labeled = int(labeled.sum())
    if n_labeled == 0:
        return {
            "n_labeled": 0,
            "correct": math.nan,
            "accuracy_pct": math.nan,
            "accuracy_ci_low_pct": math.nan,
            "accuracy_ci_high_pct": math.nan,
            "mcc": math.nan,
            "macro_f1": math.nan,
        }
    counts = confusion_matrix(labels[labeled], predictions[labeled], n_classes)
    correct = int(np.trace(counts))
    low, high = wilson_interval(correct, n_labeled)
    return {
        "n_labeled": n_labeled,
        "correct": correct,
        "accuracy_pct": 100.0 * correct / n_labeled,
        "accuracy_ci_low_pct": 100.0 * low,
        "accuracy_ci_high_pct": 100.0 * high,
        "mcc": matthews_corrcoef(counts),
        "macro_f1": macro_f1(counts),
    }
