"""Quality metrics of one evaluation over its labeled rows, for every GLUE task.

Classification (class ids): accuracy, Matthews correlation (MCC), F1 of the positive class (id 1,
binary tasks only) and macro F1. Regression (STS-B's similarity scores): Pearson's r and
Spearman's rho. Each metric is one entry of ``METRICS``; ``task_scores`` turns a dataset's labels
and the model's outputs into the flat metrics row, with the task's official score (GLUE's: the
mean of its official metrics when it has two, x 100) and a 95 % interval: Wilson's when the
official metric is accuracy alone, else a seeded percentile bootstrap.

numpy only, so that the evaluation environment needs neither scipy nor scikit-learn; the tests
compare every metric with scipy / scikit-learn and with textbook definitions written out there.

Bootstrap, vectorized:
- classification: the rows reduce to their K x K confusion matrix, so a replicate is a
  multinomial draw of n over its cells with probabilities counts / n, and every metric is
  computed on B matrices at once.
- regression: a replicate is a vector of row multiplicities w ~ Multinomial(n, 1/n) (the counts of
  n indices drawn with replacement), drawn in chunks of rows x replicates <= CHUNK_CELLS to
  bound memory. Pearson is the w-weighted Pearson; Spearman the w-weighted Pearson of the
  resample's average ranks, from the original values' tie groups: group g ranks
  (weight of the groups below g) + (weight of g + 1) / 2 in a replicate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from glueperf import NO_LABEL, GlueperfError
from glueperf.results import Quality

CLASSIFICATION = "classification"
REGRESSION = "regression"
# Percentile bootstrap: the middle 95 % of the replicates.
CONFIDENCE = 0.95
DEFAULT_SEED = 0
DEFAULT_RESAMPLES = 1000
# Regression replicates are drawn this many (replicate, row) cells at a time: 8 MB per array,
# which bounds memory and runs faster than larger chunks (bench/metrics_speed.py).
CHUNK_CELLS = 1_000_000


# --- classification, on a confusion matrix ------------------------------------------------------


def confusion_matrix(labels, predictions, n_classes: int) -> np.ndarray:
    """counts[true, predicted] over the given pairs."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def accuracy(counts: np.ndarray) -> float:
    """Correct / all pairs, as a fraction; NaN without pairs."""
    total = counts.sum()
    return float(np.trace(counts) / total) if total else math.nan


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


def f1_positive(counts: np.ndarray) -> float:
    """F1 of the positive class (id 1) of a binary task: 2 TP / (2 TP + FP + FN).

    0.0 when undefined (class 1 neither labeled nor predicted), as scikit-learn's
    ``f1_score(zero_division=0)``; NaN unless there are exactly 2 classes (no positive class).
    """
    if counts.shape != (2, 2):
        return math.nan
    tp, fp, fn = int(counts[1, 1]), int(counts[0, 1]), int(counts[1, 0])
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def macro_f1(counts: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in labels or predictions."""
    true_positive = np.diag(counts).astype(np.float64)
    true_per_class = counts.sum(axis=1)
    predicted_per_class = counts.sum(axis=0)
    present = (true_per_class + predicted_per_class) > 0
    if not present.any():
        return math.nan
    denominators = (true_per_class + predicted_per_class)[present]
    return float(np.mean(2 * true_positive[present] / denominators))


# The same metrics on a stack of B confusion matrices (B, K, K) -> (B,), for the bootstrap.


def _accuracy_many(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=(1, 2)).astype(np.float64)
    correct = np.trace(counts, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / total, np.nan)


def _mcc_many(counts: np.ndarray) -> np.ndarray:
    counts = counts.astype(np.float64)
    total = counts.sum(axis=(1, 2))
    correct = np.trace(counts, axis1=1, axis2=2)
    true_per_class = counts.sum(axis=2)
    predicted_per_class = counts.sum(axis=1)
    numerator = correct * total - (predicted_per_class * true_per_class).sum(axis=1)
    denominator = np.sqrt(total**2 - (predicted_per_class**2).sum(axis=1)) * np.sqrt(
        total**2 - (true_per_class**2).sum(axis=1)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        mcc = np.where(denominator > 0, numerator / denominator, 0.0)
    return np.clip(mcc, -1.0, 1.0)


def _f1_positive_many(counts: np.ndarray) -> np.ndarray:
    if counts.shape[1:] != (2, 2):
        return np.full(len(counts), np.nan)
    tp = counts[:, 1, 1].astype(np.float64)
    denominator = 2 * tp + counts[:, 0, 1] + counts[:, 1, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, 0.0)


def _macro_f1_many(counts: np.ndarray) -> np.ndarray:
    true_positive = np.diagonal(counts, axis1=1, axis2=2).astype(np.float64)
    denominators = counts.sum(axis=2) + counts.sum(axis=1)
    present = denominators > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(present, 2 * true_positive / denominators, 0.0)
        return per_class.sum(axis=1) / present.sum(axis=1)


# --- regression ---------------------------------------------------------------------------------


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks (scipy's rankdata(method='average'))."""
    values = np.asarray(values, dtype=np.float64)
    _, inverse, group_sizes = np.unique(values, return_inverse=True, return_counts=True)
    below = np.cumsum(group_sizes) - group_sizes
    return (below + (group_sizes + 1) / 2)[inverse]


def pearson(x, y) -> float:
    """Pearson's r; NaN when either side is constant (or has fewer than 2 values)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    # Centred, then scaled to a largest magnitude of 1: no underflow of tiny spreads to 0.
    x = x - x.mean()
    y = y - y.mean()
    x /= np.abs(x).max()
    y /= np.abs(y).max()
    r = (x @ y) / math.sqrt((x @ x) * (y @ y))
    return float(min(1.0, max(-1.0, r)))


def spearman(x, y) -> float:
    """Spearman's rho: Pearson's r of the average ranks; NaN when either side is constant."""
    return pearson(average_ranks(x), average_ranks(y))


class Pairs:
    """Gold and predicted scores prepared for weighted (bootstrap) metrics: both sides standardized
    for Pearson, and each side's tie groups for Spearman (computed once, on first use)."""

    def __init__(self, gold, predicted):
        self.gold = np.asarray(gold, dtype=np.float64)
        self.predicted = np.asarray(predicted, dtype=np.float64)
        self.n = len(self.gold)
        self._standardized = None
        self._tie_groups = None

    @property
    def standardized(self) -> np.ndarray:
        """(5, n): x, y, x^2, y^2, xy of both sides centred on their mean and scaled to a largest
        magnitude of 1, so that a replicate's weighted sums of them lose little to cancellation.
        """
        if self._standardized is None:
            columns = []
            for side in (self.gold, self.predicted):
                centred = side - side.mean()
                spread = np.abs(centred).max()
                columns.append(centred / spread if spread > 0 else centred)
            x, y = columns
            self._standardized = np.stack([x, y, x * x, y * y, x * y])
        return self._standardized

    @property
    def tie_groups(self):
        """Per side: (row order sorted by value, None if the rows are in order already; position of
        each group's last row in that order; group sizes; group of each row)."""
        if self._tie_groups is None:
            groups = []
            for side in (self.gold, self.predicted):
                order = None if np.all(side[1:] >= side[:-1]) else np.argsort(side, kind="stable")
                _, inverse, sizes = np.unique(side, return_inverse=True, return_counts=True)
                groups.append((order, np.cumsum(sizes) - 1, sizes, inverse))
            self._tie_groups = groups
        return self._tie_groups


def _pearson_many(pairs: Pairs, weights: np.ndarray) -> np.ndarray:
    """Pearson's r of each replicate: weights (B, n) of row multiplicities summing to n."""
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.sum(axis=1)
    # einsum, not a matrix product: BLAS threads slow to a crawl on a busy machine.
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = (
        np.einsum("bi,i->b", weights, column) / n for column in pairs.standardized
    )
    var_x = mean_xx - mean_x**2
    var_y = mean_yy - mean_y**2
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip((mean_xy - mean_x * mean_y) / np.sqrt(var_x * var_y), -1.0, 1.0)
    # A resample of one distinct value has variance 0, which the sums above only round to;
    # replicates that come close are checked exactly.
    suspicious = np.flatnonzero((var_x < 1e-9) | (var_y < 1e-9))
    for b in suspicious:
        drawn = weights[b] > 0
        if np.ptp(pairs.gold[drawn]) == 0 or np.ptp(pairs.predicted[drawn]) == 0:
            r[b] = np.nan
    return r


def _spearman_many(pairs: Pairs, weights: np.ndarray) -> np.ndarray:
    """Spearman's rho of each replicate: weighted Pearson of the resample's average ranks."""
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.sum(axis=1)
    centred_ranks, sums_of_squares = [], []
    for order, group_ends, group_sizes, inverse in pairs.tie_groups:
        # np.take: far faster than fancy indexing along the second axis.
        in_order = weights if order is None else np.take(weights, order, axis=1)
        if len(group_ends) == pairs.n:  # no ties: a group per row
            group_weight = in_order
            through = np.cumsum(in_order, axis=1)
        elif len(group_ends) * 4 <= pairs.n:  # few, large groups: sum within each, then across
            group_weight = np.add.reduceat(in_order, group_ends - group_sizes + 1, axis=1)
            through = np.cumsum(group_weight, axis=1)
        else:
            through = np.take(np.cumsum(in_order, axis=1), group_ends, axis=1)
            group_weight = np.diff(through, axis=1, prepend=0)
        # Rank (through - weight) + (weight + 1) / 2 less the mean rank (n + 1) / 2, in place:
        # halves of integers, exact in float64, so a constant side gives exactly 0 below.
        centred = group_weight + n[:, None]
        centred *= -0.5
        centred += through
        sums_of_squares.append(np.einsum("bg,bg,bg->b", group_weight, centred, centred))
        in_row_order = order is None and len(group_ends) == pairs.n
        centred_ranks.append(centred if in_row_order else np.take(centred, inverse, axis=1))
    cross = np.einsum("bi,bi,bi->b", weights, *centred_ranks)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = cross / np.sqrt(sums_of_squares[0] * sums_of_squares[1])
    defined = (sums_of_squares[0] > 0) & (sums_of_squares[1] > 0)
    return np.where(defined, np.clip(rho, -1.0, 1.0), np.nan)


# --- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One metric: its value on the data and on many bootstrap replicates at once.

    classification: ``value(counts)`` on a (K, K) confusion matrix, ``replicates(counts)`` on
    (B, K, K) ones. regression: ``value(gold, predicted)`` on two float arrays,
    ``replicates(pairs, weights)`` on a ``Pairs`` and (B, n) row multiplicities.
    Values on their natural scale (accuracy a fraction in [0, 1]).
    """

    name: str
    label: str
    kind: Literal["classification", "regression"]
    value: Callable[..., float]
    replicates: Callable[..., np.ndarray]
    binary_only: bool = False


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("accuracy", "Accuracy", CLASSIFICATION, accuracy, _accuracy_many),
        Metric("mcc", "MCC", CLASSIFICATION, matthews_corrcoef, _mcc_many),
        Metric("macro_f1", "Macro F1", CLASSIFICATION, macro_f1, _macro_f1_many),
        Metric("f1", "F1", CLASSIFICATION, f1_positive, _f1_positive_many, binary_only=True),
        Metric("pearson", "Pearson r", REGRESSION, pearson, _pearson_many),
        Metric("spearman", "Spearman ρ", REGRESSION, spearman, _spearman_many),
    )
}

# The keys of task_scores' row, in order: the columns of the row's Quality group
# (glueperf/results.py), the same for every task, so every row has the same columns. Accuracy is
# there in percent with its Wilson interval, every other metric under its name. Quality fields
# that do not apply to a task are NaN (empty in the CSV), never 0.
ROW_FIELDS = Quality.names()

# --- intervals ----------------------------------------------------------------------------------


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


def percentile_interval(replicates, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The middle ``confidence`` of the replicates, NaN ones left out; NaN when none is left."""
    replicates = np.asarray(replicates, dtype=np.float64)
    replicates = replicates[~np.isnan(replicates)]
    if not len(replicates):
        return (math.nan, math.nan)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return (float(low), float(high))


def classification_replicates(
    counts: np.ndarray, names: Sequence[str], seed: int = DEFAULT_SEED, n_resamples: int = 1000
) -> dict[str, np.ndarray]:
    """Each named metric on ``n_resamples`` bootstrap replicates of the rows behind ``counts``."""
    n = int(counts.sum())
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(n, counts.ravel() / n, size=n_resamples).reshape(-1, *counts.shape)
    return {name: METRICS[name].replicates(drawn) for name in names}


def bootstrap_weights(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(size, n) row multiplicities, as floats, of ``size`` resamples of n rows drawn with
    replacement: row b counts the rows of ``rng.integers(0, n, size=(size, n))[b]``."""
    drawn = rng.integers(0, n, size=(size, n))
    weights = np.empty((size, n))
    for row, indices in zip(weights, drawn, strict=True):
        # One replicate at a time: its counts stay in cache, faster than one bincount of all.
        row[:] = np.bincount(indices, minlength=n)
    return weights


def regression_replicates(
    gold, predicted, names: Sequence[str], seed: int = DEFAULT_SEED, n_resamples: int = 1000
) -> dict[str, np.ndarray]:
    """Each named metric on ``n_resamples`` bootstrap replicates of the (gold, predicted) rows."""
    gold = np.asarray(gold, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    # Rows in the order of the predictions: their side's ranks then need no reordering. Which rows
    # a seed draws changes with the order, not the distribution of the replicates.
    order = np.lexsort((gold, predicted))
    pairs = Pairs(gold[order], predicted[order])
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_CELLS // max(pairs.n, 1))
    results = {name: np.empty(n_resamples) for name in names}
    for start in range(0, n_resamples, chunk):
        weights = bootstrap_weights(rng, pairs.n, min(chunk, n_resamples - start))
        for name in names:
            results[name][start : start + len(weights)] = METRICS[name].replicates(pairs, weights)
    return results


# --- the metrics row ----------------------------------------------------------------------------


def _check_official(official: Sequence[str], n_classes: int | None) -> tuple[str, ...]:
    official = tuple(official)
    kind = REGRESSION if n_classes is None else CLASSIFICATION
    if not official or len(set(official)) != len(official):
        raise GlueperfError(f"official metrics must be distinct and at least one: {official}")
    for name in official:
        if name not in METRICS:
            raise GlueperfError(f"unknown metric '{name}'; known: {', '.join(METRICS)}")
        metric = METRICS[name]
        if metric.kind != kind:
            raise GlueperfError(f"'{name}' is a {metric.kind} metric, this is a {kind} task")
        if metric.binary_only and n_classes != 2:
            raise GlueperfError(f"'{name}' needs 2 classes, this task has {n_classes}")
    if n_classes is not None and n_classes < 2:
        raise GlueperfError(f"a classification task has at least 2 classes, not {n_classes}")
    return official


def check_dataset_metrics(dataset: str, metrics: Sequence[str], regression: bool) -> None:
    """A dataset's configured metrics are known and of its kind (checked when the run starts;
    the class count, for f1, is checked once the labels are known)."""
    kind = REGRESSION if regression else CLASSIFICATION
    wrong = [name for name in metrics if name not in METRICS or METRICS[name].kind != kind]
    if wrong:
        raise GlueperfError(
            f"config key datasets.{dataset}.metrics: {wrong} are not {kind} metrics, and the "
            f"dataset is a {kind} dataset (metrics: "
            + ", ".join(f"{name} ({metric.kind})" for name, metric in METRICS.items())
            + ")"
        )


def _of_kind(kind: str):
    return [(name, metric) for name, metric in METRICS.items() if metric.kind == kind]


def _empty_row(official: tuple[str, ...], n_labeled: int = 0) -> dict:
    row = dict.fromkeys(ROW_FIELDS, math.nan)
    row["n_labeled"] = n_labeled
    row["metric"] = "/".join(official)
    return row


def task_scores(
    labels,
    outputs,
    official: Sequence[str],
    n_classes: int | None,
    seed: int = DEFAULT_SEED,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> dict:
    """The metrics row of one evaluation: the keys of ROW_FIELDS, in that order.

    classification (``n_classes`` >= 2): ``labels`` and ``outputs`` are class ids; rows labeled
    -1 are not scored. regression (``n_classes`` None): float gold and predicted scores; rows
    labeled -1 (GLUE's hidden test labels, as the Hub files write them for STS-B too) or NaN are
    not scored. ``official``: the task's official metrics (e.g. ``GLUE_TASKS["mrpc"].metrics``);
    ``score`` is their mean x 100 with a 95 % interval (x 100): Wilson's when the official
    metric is accuracy alone, else the percentile interval of ``n_resamples`` bootstrap
    replicates of that mean drawn with ``seed`` (NaN replicates left out; NaN when
    ``n_resamples`` is 0), widened to hold the score where rounding (a replicate equal to the
    data, computed another way) or a tiny sample leaves it a step outside. Fields that do not
    apply are NaN: f1 unless binary, pearson and spearman for classification, correct /
    accuracy / mcc / macro_f1 for regression; every quality field when nothing is labeled.
    """
    official = _check_official(official, n_classes)
    if n_classes is None:
        gold = np.asarray(labels, dtype=np.float64)
        predicted = np.asarray(outputs, dtype=np.float64)
        labeled = (gold != NO_LABEL) & ~np.isnan(gold)
        row = _empty_row(official, int(labeled.sum()))
        if not row["n_labeled"]:
            return row
        gold, predicted = gold[labeled], predicted[labeled]
        values = {name: metric.value(gold, predicted) for name, metric in _of_kind(REGRESSION)}
        replicates = (
            regression_replicates(gold, predicted, official, seed, n_resamples)
            if n_resamples
            else None
        )
    else:
        labels = np.asarray(labels, dtype=np.int64)
        predictions = np.asarray(outputs, dtype=np.int64)
        labeled = labels != NO_LABEL
        row = _empty_row(official, int(labeled.sum()))
        if not row["n_labeled"]:
            return row
        counts = confusion_matrix(labels[labeled], predictions[labeled], n_classes)
        row.update(_accuracy_fields(counts))
        values = {name: metric.value(counts) for name, metric in _of_kind(CLASSIFICATION)}
        replicates = (
            classification_replicates(counts, official, seed, n_resamples)
            if n_resamples and official != ("accuracy",)
            else None
        )
    row.update({name: value for name, value in values.items() if name in row})
    estimate = float(np.mean([values[name] for name in official]))
    row["score"] = 100 * estimate
    if official == ("accuracy",):
        low, high = row["accuracy_ci_low_pct"] / 100, row["accuracy_ci_high_pct"] / 100
    elif replicates is None:
        low = high = math.nan
    else:
        low, high = percentile_interval(np.mean([replicates[name] for name in official], axis=0))
        if not math.isnan(estimate) and not math.isnan(low):
            low, high = min(low, estimate), max(high, estimate)
    row["score_ci_low"], row["score_ci_high"] = 100 * low, 100 * high
    return row


def _accuracy_fields(counts: np.ndarray) -> dict:
    n_labeled = int(counts.sum())
    correct = int(np.trace(counts))
    low, high = wilson_interval(correct, n_labeled)
    return {
        "correct": correct,
        "accuracy_pct": 100.0 * correct / n_labeled,
        "accuracy_ci_low_pct": 100.0 * low,
        "accuracy_ci_high_pct": 100.0 * high,
    }
