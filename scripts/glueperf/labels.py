"""Which dataset label each of a model's classes stands for.

Checkpoints order their classes as they were trained: many MNLI models say ``0: CONTRADICTION,
1: NEUTRAL, 2: ENTAILMENT`` where GLUE says ``0 entailment, 1 neutral, 2 contradiction``. Comparing
class ids as they are would then score a good model as a bad one, silently. So classes are matched
by name (case-insensitive) when the model names them; ids are compared as they are only when the
model's names are generic (``LABEL_0``...) and the class counts agree, or the dataset names no
labels at all; an explicit ``label_map`` in the config decides otherwise.

The same checks run at start-up on each model's config.json (glueperf/preflight.py), before any
job, and in each evaluation on the loaded model: one function says both, so the messages are the
same. numpy is imported only when a mapping is applied (the start-up checks run on every
Snakemake invocation, whose time matters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from glueperf import GlueperfError

if TYPE_CHECKING:
    import numpy as np

GENERIC_NAME = re.compile(r"LABEL_\d+", re.IGNORECASE)


@dataclass(frozen=True)
class LabelMapping:
    """``targets[class id of the model]`` = the dataset's label id; ``how`` says why."""

    targets: tuple[int, ...]
    how: str  # "by name", "by id" or "label_map"
    description: str  # e.g. "by name: NEGATIVE->negative, POSITIVE->positive", for the row

    @cached_property
    def to_dataset(self) -> np.ndarray:
        import numpy as np

        return np.asarray(self.targets, dtype=np.int64)

    def apply(self, predictions: np.ndarray) -> np.ndarray:
        return self.to_dataset[predictions]


@dataclass(frozen=True)
class ModelOutputs:
    """What a model's config says of its outputs: class names in id order (``LABEL_i`` where it
    names none), or one score (regression)."""

    class_names: list[str]
    regression: bool

    @classmethod
    def of(cls, config) -> ModelOutputs:
        """From a transformers config, or a config.json read as a dict (which saves id2label,
        from which transformers derives num_labels)."""
        if isinstance(config, dict):
            id2label = config.get("id2label") or {}
            n_outputs = len(id2label) or config.get("num_labels") or 2  # transformers' default
            problem_type = config.get("problem_type")
        else:
            id2label, n_outputs = config.id2label, config.num_labels
            problem_type = getattr(config, "problem_type", None)
        regression = n_outputs == 1 or problem_type == "regression"
        return cls(model_class_names(id2label, n_outputs), regression)


def model_class_names(id2label: dict | None, n_classes: int) -> list[str]:
    """The model's class names in id order (``LABEL_i`` where its config names none)."""
    id2label = {int(k): str(v) for k, v in (id2label or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(n_classes)]


def check_model_fits(
    names: tuple[str, str],
    outputs: ModelOutputs,
    regression: bool,
    dataset_names: tuple[str, ...] | list[str] | None,
    path,
    label_map: dict[str, str] | None = None,
    label_map_key: str = "",
) -> LabelMapping | None:
    """A regression model for a regression dataset, a classifier for a classification one, and
    the classifier's classes matched to the dataset's labels (None for regression); else the
    GlueperfError that names both. ``names``: the config's model and dataset names; ``path``:
    the dataset's file."""
    model, dataset = names
    if outputs.regression != regression:
        model_kind = (
            "a regression model (one output, a score)"
            if outputs.regression
            else f"a classifier of {len(outputs.class_names)} classes"
        )
        dataset_kind = (
            "a regression dataset (scores)"
            if regression
            else f"a classification dataset (labels {list(dataset_names or [])})"
        )
        raise GlueperfError(
            f"model '{model}' is {model_kind}, but dataset '{dataset}' ({path}) is "
            f"{dataset_kind}: check the model's datasets, or the dataset's glue_task / regression"
        )
    if regression:
        return None
    return map_labels(model, outputs.class_names, dataset, dataset_names, label_map, label_map_key)


def map_labels(
    model: str,
    model_names: list[str],
    dataset: str,
    dataset_names: tuple[str, ...] | list[str] | None,
    label_map: dict[str, str] | None = None,
    label_map_key: str = "",
) -> LabelMapping:
    """Match the model's classes to the dataset's labels; a GlueperfError naming both label
    lists when they cannot be matched. ``label_map_key``: the config key the label_map comes
    from, for its errors."""
    n_classes = len(model_names)
    dataset_names = list(dataset_names) if dataset_names else None
    if label_map:
        where = f"config key {label_map_key or f'datasets.{dataset}.label_map'}"
        return _from_label_map(where, model, model_names, dataset, dataset_names, label_map)
    generic = all(GENERIC_NAME.fullmatch(name) for name in model_names)
    if dataset_names is None or (generic and len(dataset_names) == n_classes):
        # Nothing to match names with: ids as they are (labels beyond the model's classes are
        # refused by the caller).
        targets = dataset_names or model_names
        return _mapping(model_names, targets, list(range(n_classes)), "by id")
    folded = {name.casefold(): i for i, name in enumerate(dataset_names)}
    matched = [folded.get(name.casefold()) for name in model_names]
    if not generic and None not in matched and len(set(matched)) == n_classes:
        return _mapping(model_names, dataset_names, matched, "by name")
    raise GlueperfError(
        f"model '{model}' has classes {model_names} and dataset '{dataset}' has labels "
        f"{dataset_names}: {_why_unmatched(model_names, dataset_names, matched, generic)}. If the "
        "model is meant for this dataset, say which dataset label each of its classes stands "
        f"for in the config, as models.{model}.label_maps.{dataset}: "
        + _label_map_form(model_names, dataset_names, [] if generic else matched)
        + f" (or in models.{model}.label_map for every dataset of the model, or "
        f"datasets.{dataset}.label_map for every model on the dataset)"
    )


def _why_unmatched(model_names, dataset_names, matched, generic) -> str:
    n_classes, n_labels = len(model_names), len(dataset_names)
    counts = f"the class counts differ ({n_classes} vs {n_labels})"
    if generic:
        return counts + "; the model's class names are generic, so nothing matches by name"
    unmatched = [name for name, target in zip(model_names, matched, strict=True) if target is None]
    found = f"{unmatched} match no label by name (case is ignored)" if unmatched else ""
    if n_classes != n_labels:
        return counts + (f": {found}" if found else "")
    return found or "two classes match the same label"


def _label_map_form(model_names, dataset_names, matched) -> str:
    """The label_map to write: a class that matches a label by name is filled in, every other
    class left for the user to decide (pairing them by position would give plausible, wrong
    numbers)."""
    choice = f"<one of {', '.join(dataset_names)}>"
    entries = []
    for position, name in enumerate(model_names):
        target = matched[position] if matched else None
        sure = target is not None and matched.count(target) == 1
        entries.append(f"{name}: {dataset_names[target] if sure else choice}")
    return "{" + ", ".join(entries) + "}"


def _from_label_map(where, model, model_names, dataset, dataset_names, label_map) -> LabelMapping:
    given = {str(k).casefold(): str(v) for k, v in label_map.items()}
    classes = {name.casefold() for name in model_names}
    unknown = sorted(str(k) for k in label_map if str(k).casefold() not in classes)
    if unknown:
        raise GlueperfError(
            f"{where}: {unknown} are not classes of model '{model}' (its classes: {model_names})"
        )
    missing = [name for name in model_names if name.casefold() not in given]
    if missing:
        raise GlueperfError(
            f"{where}: no dataset label for the model's class(es) {missing} (model "
            f"'{model}' has classes {model_names})"
        )
    if dataset_names is None:
        raise GlueperfError(
            f"{where}: dataset '{dataset}' names no labels to map to; give its label_names "
            "(class names in id order) in the config"
        )
    targets = dataset_names
    folded = {name.casefold(): i for i, name in enumerate(targets)}
    wanted = [given[name.casefold()] for name in model_names]
    not_labels = sorted({w for w in wanted if w.casefold() not in folded})
    if not_labels:
        raise GlueperfError(
            f"{where}: {not_labels} are not labels of dataset '{dataset}' (its labels: {targets})"
        )
    return _mapping(model_names, targets, [folded[w.casefold()] for w in wanted], "label_map")


def _mapping(model_names, dataset_names, targets: list[int], how: str) -> LabelMapping:
    description = ", ".join(
        f"{name}->{dataset_names[target]}"
        for name, target in zip(model_names, targets, strict=True)
    )
    return LabelMapping(tuple(targets), how, f"{how}: {description}")
