"""glueperf.metrics against textbook computations written out here and against scipy and
scikit-learn (test-only references: the pipeline does not depend on them), on random data, with
unlabeled rows (-1) mixed in."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn import metrics as skm

from conftest import QUALITY_FIELDS
from glueperf import GlueperfError
from glueperf.metrics import (
    CHUNK_CELLS,
    METRICS,
    ROW_FIELDS,
    Pairs,
    average_ranks,
    bootstrap_weights,
    classification_replicates,
    confusion_matrix,
    f1_positive,
    pearson,
    percentile_interval,
    regression_replicates,
    spearman,
    task_scores,
    wilson_interval,
)
from glueperf.tasks import GLUE_TASKS

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


# --- every GLUE metric: the registry and task_scores --------------------------------------------

CLASSIFICATION_METRICS = ("accuracy", "mcc", "macro_f1", "f1")
REGRESSION_METRICS = ("pearson", "spearman")


def regression_case(seed: int, n: int = 300, unlabeled_share: float = 0.0, grid: float = 0.2):
    """STS-B-like: gold scores on a grid in [0, 5] (ties), predictions correlated with them."""
    rng = np.random.default_rng(seed)
    gold = np.round(rng.uniform(0, 5, n) / grid) * grid
    predicted = gold + rng.normal(0, 1.0, n)
    gold[rng.random(n) < unlabeled_share] = -1
    return gold, predicted


def textbook_f1_positive(labels, predictions) -> float:
    pairs = [(t, p) for t, p in zip(labels, predictions, strict=True) if t != -1]
    tp = sum(1 for t, p in pairs if t == 1 and p == 1)
    fp = sum(1 for t, p in pairs if t == 0 and p == 1)
    fn = sum(1 for t, p in pairs if t == 1 and p == 0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def test_registry_holds_every_glue_metric():
    expected = {
        "accuracy": ("Accuracy", "classification"),
        "mcc": ("MCC", "classification"),
        "f1": ("F1", "classification"),
        "macro_f1": ("Macro F1", "classification"),
        "pearson": ("Pearson r", "regression"),
        "spearman": ("Spearman ρ", "regression"),
    }
    assert {name: (m.label, m.kind) for name, m in METRICS.items()} == expected
    assert all(name == metric.name for name, metric in METRICS.items())
    assert [name for name, m in METRICS.items() if m.binary_only] == ["f1"]


def test_glue_official_metrics():
    official = {name: task.metrics for name, task in GLUE_TASKS.items()}
    assert official["cola"] == ("mcc",)
    assert official["mrpc"] == official["qqp"] == ("f1", "accuracy")
    assert official["stsb"] == ("pearson", "spearman")
    for task in ("sst2", "mnli", "qnli", "rte", "wnli"):
        assert official[task] == ("accuracy",)
    # Every task's metrics are known, of one kind, and that kind is the task's.
    for name, names in official.items():
        kinds = {METRICS[metric].kind for metric in names}
        assert kinds == {"regression" if GLUE_TASKS[name].regression else "classification"}


def test_the_schema_offers_exactly_the_registered_metrics():
    import yaml

    from conftest import REPO

    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    entry = schema["properties"]["datasets"]["additionalProperties"]["properties"]
    assert entry["metrics"]["items"]["enum"] == list(METRICS)
    assert entry["glue_task"]["enum"] == list(GLUE_TASKS)


def score(labels, predictions, n_classes):
    """The classification fields, as accuracy-scored tasks report them."""
    return task_scores(labels, predictions, ("accuracy",), n_classes)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_classification_metrics_match_scikit_learn(seed, n_classes):
    labels, predictions = random_case(seed, n_classes)
    keep = labels != -1
    counts = confusion_matrix(labels[keep], predictions[keep], n_classes)
    y, p = labels[keep], predictions[keep]
    assert METRICS["accuracy"].value(counts) == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
    assert METRICS["mcc"].value(counts) == pytest.approx(skm.matthews_corrcoef(y, p), abs=1e-12)
    expected_macro = skm.f1_score(y, p, average="macro", zero_division=0)
    assert METRICS["macro_f1"].value(counts) == pytest.approx(expected_macro, abs=1e-12)
    if n_classes == 2:
        expected_f1 = skm.f1_score(y, p, pos_label=1, zero_division=0)
        assert METRICS["f1"].value(counts) == pytest.approx(expected_f1, abs=1e-12)
        assert f1_positive(counts) == pytest.approx(textbook_f1_positive(labels, predictions))
    else:
        assert math.isnan(METRICS["f1"].value(counts))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=40))
def test_f1_is_that_of_the_positive_class(pairs):
    labels, predictions = map(np.array, zip(*pairs, strict=True))
    counts = confusion_matrix(labels, predictions, 2)
    assert f1_positive(counts) == pytest.approx(textbook_f1_positive(labels, predictions))
    expected = skm.f1_score(labels, predictions, pos_label=1, zero_division=0)
    assert f1_positive(counts) == pytest.approx(expected)
    # Swapping the classes gives the F1 of class 0, which is not the same number in general.
    swapped = skm.f1_score(labels, predictions, pos_label=0, zero_division=0)
    assert f1_positive(counts[::-1, ::-1]) == pytest.approx(swapped)


def test_f1_without_any_positive_is_zero():
    # No row labeled or predicted 1: 2TP / (2TP + FP + FN) = 0 / 0, reported 0 (zero_division=0).
    assert f1_positive(confusion_matrix([0, 0, 0], [0, 0, 0], 2)) == 0.0
    row = task_scores([0, 0, 0], [0, 0, 0], ("f1", "accuracy"), 2)
    assert row["f1"] == 0.0
    assert row["score"] == pytest.approx(50.0)


finite_scores = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite_scores, finite_scores), min_size=3, max_size=60))
def test_pearson_and_spearman_match_scipy(pairs):
    x, y = (np.array(side) for side in zip(*pairs, strict=True))
    # Rounding makes ties common, as STS-B's gold scores have.
    x = np.round(x / 100) * 100
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(pearson(x, y)) and math.isnan(spearman(x, y))
        return
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-9)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-9)


def test_spearman_with_ties_uses_average_ranks():
    x = np.array([1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 5.0])
    np.testing.assert_array_equal(average_ranks(x), [1, 2.5, 2.5, 5, 5, 5, 7])
    np.testing.assert_array_equal(average_ranks(x[::-1]), [7, 5, 5, 5, 2.5, 2.5, 1])
    y = np.array([0.1, 0.4, 0.2, 0.3, 0.9, 0.3, 0.8])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    # Ordinal (first-come) ranks would give another number here.
    ordinal = pearson(stats.rankdata(x, method="ordinal"), stats.rankdata(y, method="ordinal"))
    assert spearman(x, y) != pytest.approx(ordinal)
    rng = np.random.default_rng(3)
    values = rng.integers(0, 20, 500).astype(float)
    np.testing.assert_array_equal(average_ranks(values), stats.rankdata(values))


def test_correlations_of_a_constant_side_are_nan():
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(spearman([1.0, 2.0, 3.0], [0.1, 0.1, 0.1]))
    assert math.isnan(pearson([1.0], [2.0]))
    assert math.isnan(pearson([], []))
    # Not constant, however close: a correlation.
    assert pearson([0.1, 0.1 + 1e-12, 0.1], [1.0, 2.0, 3.0]) == pytest.approx(0.0, abs=1e-9)


# --- vectorized replicates against the scalar metric on the same resample -----------------------


def some_confusion_matrices(n_classes: int):
    """Random matrices and the degenerate ones: empty rows or columns, one cell, all zeros."""
    rng = np.random.default_rng(n_classes)
    matrices = list(rng.integers(0, 30, (50, n_classes, n_classes)))
    matrices += list(rng.integers(0, 3, (50, n_classes, n_classes)))
    one_cell = np.zeros((n_classes, n_classes), dtype=np.int64)
    one_cell[1, 0] = 7
    diagonal = np.diag(rng.integers(1, 5, n_classes))
    constant_prediction = np.zeros((n_classes, n_classes), dtype=np.int64)
    constant_prediction[:, 1] = rng.integers(1, 9, n_classes)
    return np.stack([*matrices, one_cell, diagonal, constant_prediction, one_cell * 0])


@pytest.mark.parametrize("n_classes", [2, 3, 4])
@pytest.mark.parametrize("name", CLASSIFICATION_METRICS)
def test_classification_replicates_equal_the_metric_per_matrix(name, n_classes):
    matrices = some_confusion_matrices(n_classes)
    metric = METRICS[name]
    vectorized = metric.replicates(matrices)
    expected = [metric.value(m) for m in matrices]
    np.testing.assert_allclose(vectorized, expected, rtol=0, atol=1e-12, equal_nan=True)


def test_classification_replicates_are_multinomial_draws_of_the_confusion_matrix():
    labels, predictions = random_case(4, n_classes=3, n=400, unlabeled_share=0)
    counts = confusion_matrix(labels, predictions, 3)
    replicates = classification_replicates(counts, ("mcc", "accuracy"), seed=7, n_resamples=50)
    drawn = np.random.default_rng(7).multinomial(400, counts.ravel() / 400, size=50)
    for b, cells in enumerate(drawn.reshape(50, 3, 3)):
        assert replicates["mcc"][b] == pytest.approx(METRICS["mcc"].value(cells), abs=1e-12)
        assert replicates["accuracy"][b] == pytest.approx(np.trace(cells) / 400, abs=1e-12)
    # The draws resample the rows: each is n rows, spread around the data's cells.
    assert (drawn.sum(axis=1) == 400).all()
    assert np.abs(drawn.mean(axis=0) - counts.ravel()).max() < 8


def resample_indices(seed: int, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices drawn with replacement, and the weights bootstrap_weights makes of the same draw."""
    indices = np.random.default_rng(seed).integers(0, n, size=(size, n))
    return indices, bootstrap_weights(np.random.default_rng(seed), n, size)


def test_bootstrap_weights_count_the_drawn_rows():
    indices, weights = resample_indices(5, 50, 30)
    for row, drawn in zip(weights, indices, strict=True):
        np.testing.assert_array_equal(row, np.bincount(drawn, minlength=50))
    assert (weights.sum(axis=1) == 50).all()


@pytest.mark.parametrize(
    "make_sides",
    [
        pytest.param(lambda g, p: (g, p), id="gold-ties"),
        pytest.param(lambda g, p: (p, g), id="sides-swapped"),
        pytest.param(lambda g, p: (np.sort(g), p), id="sorted-side"),
        pytest.param(lambda g, p: (np.sort(p), np.sort(g)[::-1]), id="both-sorted-one-reversed"),
        pytest.param(lambda g, p: (np.round(p, 1), p), id="many-small-tie-groups"),
        pytest.param(lambda g, p: (g, np.round(g)), id="few-groups-both"),
        pytest.param(lambda g, p: (p, -p + 1e9), id="no-ties-large-offset"),
    ],
)
@pytest.mark.parametrize("name", REGRESSION_METRICS)
def test_regression_replicates_equal_scipy_on_the_same_resamples(name, make_sides):
    gold, predicted = regression_case(11, n=240)
    x, y = make_sides(gold, predicted)
    indices, weights = resample_indices(2, len(x), 40)
    vectorized = METRICS[name].replicates(Pairs(x, y), weights)
    reference = stats.pearsonr if name == "pearson" else stats.spearmanr
    for b, drawn in enumerate(indices):
        assert vectorized[b] == pytest.approx(reference(x[drawn], y[drawn]).statistic, abs=1e-9)


@pytest.mark.parametrize("name", REGRESSION_METRICS)
def test_regression_replicates_of_a_constant_resample_are_nan(name):
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([0.5, 0.25, 0.75, 1.0])
    weights = np.array([[4.0, 0, 0, 0], [0, 2, 2, 0], [1, 1, 1, 1], [0, 0, 0, 4]])
    values = METRICS[name].replicates(Pairs(x, y), weights)
    assert math.isnan(values[0]) and math.isnan(values[3])
    assert values[1] == pytest.approx(1.0)  # rows 2 and 3 rise together
    assert values[2] == pytest.approx(METRICS[name].value(x, y))
    # Sums of a constant resample need not cancel exactly (here 2e-16 for the last row): still NaN.
    x = np.array([0.9, 4.3, 2.7, 1.5, 2.1, 0.1])
    y = np.array([0.62, 3.35, 3.24, 3.08, 1.92, 4.99])
    assert np.isnan(METRICS[name].replicates(Pairs(x, y), 6 * np.eye(6))).all()


def test_regression_replicates_follow_the_seeded_draws():
    """regression_replicates sorts the rows by prediction and draws indices into that order."""
    gold, predicted = regression_case(8, n=200)
    assert CHUNK_CELLS >= 50 * 200  # one chunk, so the draw below is the function's
    replicates = regression_replicates(gold, predicted, REGRESSION_METRICS, seed=3, n_resamples=50)
    order = np.lexsort((gold, predicted))
    x, y = gold[order], predicted[order]
    indices = np.random.default_rng(3).integers(0, 200, size=(50, 200))
    for b, drawn in enumerate(indices):
        assert replicates["pearson"][b] == pytest.approx(stats.pearsonr(x[drawn], y[drawn])[0])
        assert replicates["spearman"][b] == pytest.approx(stats.spearmanr(x[drawn], y[drawn])[0])


def test_regression_replicates_in_chunks_are_the_bootstrap_distribution(monkeypatch):
    """Chunked draws (tiny chunks here) agree in distribution with a naive loop over np.random
    indices and textbook ranks: same mean and spread within Monte Carlo error."""
    import glueperf.metrics

    monkeypatch.setattr(glueperf.metrics, "CHUNK_CELLS", 7 * 300)
    gold, predicted = regression_case(9, n=300)
    fast = regression_replicates(gold, predicted, ["spearman"], seed=1, n_resamples=2000)
    rng = np.random.default_rng(12345)
    naive = []
    for _ in range(2000):
        drawn = rng.integers(0, 300, 300)
        naive.append(np.corrcoef(average_ranks(gold[drawn]), average_ranks(predicted[drawn]))[0, 1])
    naive = np.array(naive)
    spread = naive.std()
    assert abs(fast["spearman"].mean() - naive.mean()) < 0.15 * spread
    assert fast["spearman"].std() == pytest.approx(spread, rel=0.1)
    assert len(set(fast["spearman"])) > 1900  # no chunk repeated


# --- percentile intervals and the official score ------------------------------------------------


def test_percentile_interval_ignores_nan_replicates():
    values = np.r_[np.arange(101.0), np.full(50, np.nan)]
    assert percentile_interval(values) == pytest.approx((2.5, 97.5))
    assert all(math.isnan(end) for end in percentile_interval([np.nan, np.nan]))
    assert all(math.isnan(end) for end in percentile_interval([]))


@pytest.mark.parametrize(
    ("official", "n_classes"),
    [(("f1", "accuracy"), 2), (("mcc",), 2), (("mcc",), 3), (("macro_f1",), 3)],
)
def test_classification_score_is_the_mean_of_the_official_metrics_x100(official, n_classes):
    labels, predictions = random_case(6, n_classes, n=500)
    row = task_scores(labels, predictions, official, n_classes, seed=4, n_resamples=300)
    keep = labels != -1
    counts = confusion_matrix(labels[keep], predictions[keep], n_classes)
    values = [METRICS[name].value(counts) for name in official]
    assert row["metric"] == "/".join(official)
    assert row["score"] == pytest.approx(100 * np.mean(values), abs=1e-9)
    # The interval is that of the mean, from the same replicates (not a mean of two intervals).
    replicates = classification_replicates(counts, official, seed=4, n_resamples=300)
    low, high = np.percentile(np.mean([replicates[n] for n in official], axis=0), [2.5, 97.5])
    assert (row["score_ci_low"], row["score_ci_high"]) == pytest.approx((100 * low, 100 * high))
    assert row["score_ci_low"] < row["score"] < row["score_ci_high"]


def test_mrpc_like_row():
    labels, predictions = random_case(1, 2, n=408, unlabeled_share=0)
    row = task_scores(labels, predictions, GLUE_TASKS["mrpc"].metrics, 2)
    assert list(row) == list(ROW_FIELDS)
    f1 = textbook_f1_positive(labels, predictions)
    accuracy = float((labels == predictions).mean())
    assert row["f1"] == pytest.approx(f1)
    assert row["accuracy_pct"] == pytest.approx(100 * accuracy)
    assert row["score"] == pytest.approx(50 * (f1 + accuracy))
    assert row["mcc"] == pytest.approx(skm.matthews_corrcoef(labels, predictions))
    assert row["macro_f1"] == pytest.approx(textbook_macro_f1(labels, predictions))
    assert math.isnan(row["pearson"]) and math.isnan(row["spearman"])


def test_cola_score_is_mcc_times_100():
    labels, predictions = random_case(2, 2, n=1043)
    row = task_scores(labels, predictions, GLUE_TASKS["cola"].metrics, 2)
    assert row["metric"] == "mcc"
    assert row["score"] == pytest.approx(100 * row["mcc"])
    assert row["score_ci_low"] < row["score"] < row["score_ci_high"] <= 100


@pytest.mark.parametrize("n_classes", [2, 3])
def test_accuracy_only_score_uses_the_wilson_interval(n_classes):
    labels, predictions = random_case(3, n_classes, n=872)
    row = task_scores(labels, predictions, ("accuracy",), n_classes)
    assert row["score"] == pytest.approx(row["accuracy_pct"])
    assert row["score_ci_low"] == row["accuracy_ci_low_pct"]
    assert row["score_ci_high"] == row["accuracy_ci_high_pct"]
    low, high = wilson_interval(row["correct"], row["n_labeled"])
    assert (row["score_ci_low"], row["score_ci_high"]) == pytest.approx((100 * low, 100 * high))
    assert math.isnan(row["f1"]) if n_classes == 3 else row["f1"] > 0


def test_stsb_like_row():
    gold, predicted = regression_case(4, n=1500, unlabeled_share=0.1)
    row = task_scores(gold, predicted, GLUE_TASKS["stsb"].metrics, None, n_resamples=400)
    assert list(row) == list(ROW_FIELDS)
    keep = gold != -1
    assert row["n_labeled"] == int(keep.sum()) < len(gold)
    expected_pearson = stats.pearsonr(gold[keep], predicted[keep]).statistic
    expected_spearman = stats.spearmanr(gold[keep], predicted[keep]).statistic
    assert row["pearson"] == pytest.approx(expected_pearson, abs=1e-12)
    assert row["spearman"] == pytest.approx(expected_spearman, abs=1e-12)
    assert row["metric"] == "pearson/spearman"
    assert row["score"] == pytest.approx(50 * (expected_pearson + expected_spearman))
    assert row["score_ci_low"] < row["score"] < row["score_ci_high"]
    # Regression has no accuracy: empty, not 0; nor the classification metrics.
    for key in ("correct", "accuracy_pct", "accuracy_ci_low_pct", "accuracy_ci_high_pct"):
        assert math.isnan(row[key]), key
    for key in ("mcc", "macro_f1", "f1"):
        assert math.isnan(row[key]), key


def test_regression_nan_labels_are_unlabeled_too():
    gold, predicted = regression_case(5, n=200)
    with_nan = gold.copy()
    with_nan[:20] = np.nan
    with_minus_one = gold.copy()
    with_minus_one[:20] = -1
    first = task_scores(with_nan, predicted, ("pearson", "spearman"), None, n_resamples=50)
    second = task_scores(with_minus_one, predicted, ("pearson", "spearman"), None, n_resamples=50)
    assert first == second
    assert first["n_labeled"] == 180


def test_bootstrap_is_seeded():
    labels, predictions = random_case(0, 2, n=300)
    gold, predicted = regression_case(0, n=300)
    cases = [
        (labels, predictions, ("f1", "accuracy"), 2),
        (gold, predicted, ("pearson", "spearman"), None),
    ]
    for case in cases:
        first = task_scores(*case, n_resamples=200)
        assert task_scores(*case, n_resamples=200) == first
        assert task_scores(*case, seed=0, n_resamples=200) == first
        other = task_scores(*case, seed=1, n_resamples=200)
        assert other["score"] == first["score"]
        assert other["score_ci_low"] != first["score_ci_low"]


def test_interval_narrows_with_more_rows():
    widths = []
    for n in (200, 3200):
        gold, predicted = regression_case(1, n=n)
        row = task_scores(gold, predicted, ("pearson", "spearman"), None, n_resamples=300)
        widths.append(row["score_ci_high"] - row["score_ci_low"])
    # Four times narrower for sixteen times the rows, roughly.
    assert 2.5 < widths[0] / widths[1] < 6


@pytest.mark.parametrize("regression", [False, True])
def test_unlabeled_rows_are_not_scored_whatever_the_outputs(regression):
    if regression:
        labels, outputs = regression_case(7, n=300, unlabeled_share=0.3)
        other = np.where(labels == -1, 99.0, outputs)
        official, n_classes = ("pearson", "spearman"), None
    else:
        labels, outputs = random_case(7, 2, n=300, unlabeled_share=0.3)
        other = np.where(labels == -1, 1 - outputs, outputs)
        official, n_classes = ("f1", "accuracy"), 2
    row = task_scores(labels, outputs, official, n_classes, n_resamples=100)
    assert row == task_scores(labels, other, official, n_classes, n_resamples=100)
    keep = labels != -1
    assert row == task_scores(labels[keep], outputs[keep], official, n_classes, n_resamples=100)


@pytest.mark.parametrize(
    ("official", "n_classes"),
    [(("accuracy",), 2), (("f1", "accuracy"), 2), (("mcc",), 3), (("pearson", "spearman"), None)],
)
def test_nothing_labeled_gives_nan_everywhere(official, n_classes):
    row = task_scores(np.full(5, -1), np.zeros(5), official, n_classes)
    assert list(row) == list(ROW_FIELDS)
    assert row["n_labeled"] == 0
    assert row["metric"] == "/".join(official)
    for key in set(ROW_FIELDS) - {"n_labeled", "metric"}:
        assert math.isnan(row[key]), key


# --- degenerate data ----------------------------------------------------------------------------


def test_constant_predictions_give_mcc_zero_with_a_zero_interval():
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    row = task_scores(labels, np.ones(10, dtype=int), ("mcc",), 2)
    assert (row["mcc"], row["score"], row["score_ci_low"], row["score_ci_high"]) == (0, 0, 0, 0)


def test_labels_of_one_class():
    labels = np.zeros(50, dtype=int)
    predictions = np.r_[np.zeros(40, dtype=int), np.ones(10, dtype=int)]
    row = task_scores(labels, predictions, ("f1", "accuracy"), 2)
    assert row["mcc"] == 0.0
    assert row["f1"] == 0.0  # no positive labeled: TP = 0, FP = 10
    assert row["accuracy_pct"] == pytest.approx(80.0)
    assert row["score"] == pytest.approx(40.0)
    assert row["score_ci_low"] <= row["score"] <= row["score_ci_high"]


@pytest.mark.parametrize("official", [("f1", "accuracy"), ("mcc",), ("accuracy",)])
def test_a_single_labeled_row(official):
    row = task_scores([1, -1], [1, 0], official, 2)
    assert row["n_labeled"] == 1
    assert row["accuracy_pct"] == 100.0
    expected = {"f1": 1.0, "accuracy": 1.0, "mcc": 0.0}
    assert row["score"] == pytest.approx(100 * np.mean([expected[n] for n in official]))
    assert row["score_ci_low"] <= row["score"] <= row["score_ci_high"]


def test_regression_with_too_few_or_constant_values_is_nan():
    for gold, predicted in (([3.0], [2.0]), ([1.0, 2.0, 3.0], [0.5, 0.5, 0.5])):
        row = task_scores(gold, predicted, ("pearson", "spearman"), None)
        assert row["n_labeled"] == len(gold)
        for key in ("pearson", "spearman", "score", "score_ci_low", "score_ci_high"):
            assert math.isnan(row[key]), key
    # Two rows: r = +-1, every resample either the same or constant (NaN, left out).
    row = task_scores([1.0, 2.0], [5.0, 3.0], ("pearson", "spearman"), None)
    assert (row["score"], row["score_ci_low"], row["score_ci_high"]) == (-100, -100, -100)


def test_interval_always_holds_the_score():
    """The replicates' percentiles can miss the score by a rounding step (a resample equal to the
    data computed another way) or more on tiny samples; the row's interval is widened to hold it,
    as the plots draw score - low and high - score as error bars."""
    rng = np.random.default_rng(0)
    missed = 0
    for seed in range(200):
        n = int(rng.integers(2, 6))
        gold, predicted = rng.normal(size=n), rng.normal(size=n)
        row = task_scores(gold, predicted, ("pearson",), None, seed=seed, n_resamples=200)
        assert row["score_ci_low"] <= row["score"] <= row["score_ci_high"]
        replicates = regression_replicates(gold, predicted, ("pearson",), seed, 200)
        low, high = percentile_interval(replicates["pearson"])
        missed += not low <= row["pearson"] <= high
        labels, predictions = rng.integers(0, 2, (2, n))
        row = task_scores(labels, predictions, ("f1", "accuracy"), 2, seed=seed, n_resamples=200)
        assert row["score_ci_low"] <= row["score"] <= row["score_ci_high"]
    assert missed  # the widening was needed in some of these cases


def test_official_metrics_are_checked():
    with pytest.raises(GlueperfError, match="unknown metric 'bleu'"):
        task_scores([0, 1], [0, 1], ("bleu",), 2)
    with pytest.raises(GlueperfError, match="'f1' needs 2 classes"):
        task_scores([0, 1, 2], [0, 1, 2], ("f1",), 3)
    with pytest.raises(GlueperfError, match="'pearson' is a regression metric"):
        task_scores([0, 1], [0, 1], ("pearson",), 2)
    with pytest.raises(GlueperfError, match="'accuracy' is a classification metric"):
        task_scores([0.5, 1.0], [0.5, 1.0], ("accuracy",), None)
    with pytest.raises(GlueperfError, match="at least one"):
        task_scores([0, 1], [0, 1], (), 2)
