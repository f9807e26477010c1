"""glueperf.metrics against textbook computations written out here (scikit-learn is not a
dependency), on random data, with unlabeled rows (-1) mixed in."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import QUALITY_FIELDS
from glueperf.metrics import confusion_matrix, score, wilson_interval

SEEDS = range(8)


def random_case(seed: int, n_classes: int, n: int = 300, unlabeled_share: float = 0.2):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    # Predictions that agree with the labels more often than chance, so MCC is not ~0.
    predictions = np.where(rng.random(n) < 0.6, labels, rng.integers(0, n_classes, n))
    labels[rng.random(n) < unlabeled_share] = -1
    return labels, predictions


def textbook_binary_mcc(labels, predictions) -> float:
    tp = tn = fp = fn = 0
    for label, prediction in zip(labels, predictions, strict=True):
        if label == -1:
            continue
        if label == 1 and prediction == 1:
            tp += 1
        elif label == 0 and prediction == 0:
            tn += 1
        elif label == 0 and prediction == 1:
            fp += 1
        else:
            fn += 1
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def textbook_multiclass_mcc(labels, predictions, n_classes: int) -> float:
    """Gorodkin's R_K as the correlation between the one-hot label and prediction matrices."""
    keep = labels != -1
    x = np.eye(n_classes)[labels[keep]]
    y = np.eye(n_classes)[predictions[keep]]
    x -= x.mean(axis=0)
    y -= y.mean(axis=0)
    return float((x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum()))


def textbook_macro_f1(labels, predictions) -> float:
    """Mean over the classes seen in labels or predictions of 2PR / (P + R), 0 when P + R = 0."""
    pairs = [(t, p) for t, p in zip(labels, predictions, strict=True) if t != -1]
    classes = sorted({t for t, _ in pairs} | {p for _, p in pairs})
    f1s = []
    for c in classes:
        tp = sum(1 for t, p in pairs if t == c and p == c)
        predicted = sum(1 for _, p in pairs if p == c)
        actual = sum(1 for t, _ in pairs if t == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(f1s) / len(f1s)


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_scores_match_the_textbook(seed):
    labels, predictions = random_case(seed, n_classes=2)
    result = score(labels, predictions, n_classes=2)
    labeled = labels != -1
    correct = int((labels[labeled] == predictions[labeled]).sum())
    assert result["n_labeled"] == int(labeled.sum()) < len(labels)
    assert result["correct"] == correct
    assert result["accuracy_pct"] == pytest.approx(100 * correct / labeled.sum(), abs=1e-12)
    assert result["mcc"] == pytest.approx(textbook_binary_mcc(labels, predictions), abs=1e-12)
    assert -1.0 <= result["mcc"] <= 1.0
    assert result["macro_f1"] == pytest.approx(textbook_macro_f1(labels, predictions), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_classes", [3, 5])
def test_multiclass_scores_match_the_textbook(seed, n_classes):
    labels, predictions = random_case(seed, n_classes=n_classes)
    result = score(labels, predictions, n_classes=n_classes)
    labeled = labels != -1
    assert result["correct"] == int((labels[labeled] == predictions[labeled]).sum())
    expected_mcc = textbook_multiclass_mcc(labels, predictions, n_classes)
    assert result["mcc"] == pytest.approx(expected_mcc, abs=1e-12)
    assert result["macro_f1"] == pytest.approx(textbook_macro_f1(labels, predictions), abs=1e-12)


def test_multiclass_mcc_with_two_classes_is_the_binary_formula():
    labels, predictions = random_case(99, n_classes=2)
    assert textbook_multiclass_mcc(labels, predictions, 2) == pytest.approx(
        textbook_binary_mcc(labels, predictions), abs=1e-12
    )


def test_perfect_and_inverted_predictions():
    labels = np.array([0, 1, 1, 0, 1, -1])
    perfect = score(labels, np.where(labels == -1, 0, labels), 2)
    assert (perfect["accuracy_pct"], perfect["mcc"], perfect["macro_f1"]) == (100.0, 1.0, 1.0)
    inverted = score(labels, 1 - np.clip(labels, 0, 1), 2)
    assert (inverted["accuracy_pct"], inverted["mcc"], inverted["macro_f1"]) == (0.0, -1.0, 0.0)


def test_constant_predictions_give_mcc_zero_not_nan():
    labels = np.array([0, 1, 1, 0, 1])
    result = score(labels, np.ones_like(labels), 2)
    assert result["mcc"] == 0.0
    assert result["accuracy_pct"] == pytest.approx(60.0)
    assert result["macro_f1"] == pytest.approx(textbook_macro_f1(labels, np.ones_like(labels)))


def test_unlabeled_rows_do_not_count():
    labels = np.array([1, 1, -1, -1, 0])
    predictions = np.array([1, 0, 0, 1, 0])
    result = score(labels, predictions, 2)
    assert (result["n_labeled"], result["correct"]) == (3, 2)
    # Whatever the predictions on unlabeled rows, the scores stay the same.
    assert score(labels, np.array([1, 0, 1, 0, 0]), 2) == result


def test_nothing_labeled_gives_nan_not_zero():
    result = score(np.full(10, -1), np.zeros(10, dtype=int), 2)
    assert result["n_labeled"] == 0
    for key in QUALITY_FIELDS:
        assert math.isnan(result[key]), key


def test_confusion_matrix_counts_pairs():
    counts = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_accuracy_interval_of_score_is_wilson_in_percent():
    labels, predictions = random_case(5, n_classes=2)
    result = score(labels, predictions, 2)
    low, high = wilson_interval(result["correct"], result["n_labeled"])
    assert result["accuracy_ci_low_pct"] == pytest.approx(100 * low)
    assert result["accuracy_ci_high_pct"] == pytest.approx(100 * high)
    assert result["accuracy_ci_low_pct"] < result["accuracy_pct"] < result["accuracy_ci_high_pct"]


# --- Wilson interval ---------------------------------------------------------------------------


def wilson_by_quadratic(successes: int, trials: int, z: float = 1.959964):
    """The interval's ends as the roots in p of (p_hat - p)^2 = z^2 p (1 - p) / n."""
    p_hat, k = successes / trials, z * z / trials
    roots = np.roots([1 + k, -(2 * p_hat + k), p_hat * p_hat])
    return tuple(sorted(float(r.real) for r in roots))


@pytest.mark.parametrize(("successes", "trials"), [(0, 1), (1, 1), (3, 10), (779, 872), (50, 51)])
def test_wilson_interval_solves_the_score_equation(successes, trials):
    low, high = wilson_interval(successes, trials)
    expected_low, expected_high = wilson_by_quadratic(successes, trials)
    assert low == pytest.approx(max(0.0, expected_low), abs=1e-9)
    assert high == pytest.approx(min(1.0, expected_high), abs=1e-9)


def test_wilson_interval_properties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        trials = int(rng.integers(1, 2000))
        successes = int(rng.integers(0, trials + 1))
        low, high = wilson_interval(successes, trials)
        p = successes / trials
        assert 0.0 <= low <= p <= high <= 1.0
        mirrored_low, mirrored_high = wilson_interval(trials - successes, trials)
        assert (mirrored_low, mirrored_high) == pytest.approx((1 - high, 1 - low), abs=1e-12)
        # More trials at the same proportion give a narrower interval.
        more_low, more_high = wilson_interval(4 * successes, 4 * trials)
        assert more_high - more_low < high - low
    assert wilson_interval(0, 20)[0] == 0.0 < wilson_interval(0, 20)[1]
    assert wilson_interval(20, 20)[0] < wilson_interval(20, 20)[1] == 1.0


def test_wilson_interval_without_trials_is_nan():
    assert all(math.isnan(end) for end in wilson_interval(0, 0))


def test_wilson_interval_holds_the_estimate_exactly_at_0_and_100_percent():
    # Rounding must not leave p = 1 above the upper end (nor p = 0 below the lower one): the
    # accuracy plot draws value - low and high - value as error bars, which must not be negative.
    for trials in range(1, 500):
        assert wilson_interval(trials, trials)[1] == 1.0
        assert wilson_interval(0, trials)[0] == 0.0
        for successes in (1, trials // 2, trials - 1):
            low, high = wilson_interval(successes, trials)
            assert low <= successes / trials <= high
