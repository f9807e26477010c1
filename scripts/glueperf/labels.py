"""Which dataset label each of a model's classes stands for.

Checkpoints order their classes as they were trained: many MNLI models say ``0: CONTRADICTION,
1: NEUTRAL, 2: ENTAILMENT`` where GLUE says ``0 entailment, 1 neutral, 2 contradiction``. Comparing
class ids as they are would then score a good model as a bad one, silently. So classes are matched
by name (case-insensitive) when the model names them; ids are compared as they are only when the
model's names are generic (``LABEL_0``...) and the class counts agree, or the dataset names no
labels at all; an explicit ``label_map`` in the config decides otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from glueperf import GlueperfError

GENERIC_NAME = re.compile(r"LABEL_\d+", re.IGNORECASE)


@dataclass(frozen=True)
class LabelMapping:
    """``to_dataset[class id of the model]`` = the dataset's label id; ``how`` says why."""

    to_dataset: np.ndarray
    how: str  # "by name", "by id" or "label_map"
    description: str  # e.g. "NEGATIVE->negative, POSITIVE->positive", for the row and report

    def apply(self, predictions: np.ndarray) -> np.ndarray:
        return self.to_dataset[predictions]


def model_class_names(id2label: dict | None, n_classes: int) -> list[str]:
    """The model's class names in id order (``LABEL_i`` where its config names none)."""
    id2label = {int(k): str(v) for k, v in (id2label or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(n_classes)]


def map_labels(
    model: str,
    model_names: list[str],
    dataset: str,
    dataset_names: tuple[str, ...] | list[str] | None,
    label_map: dict[str, str] | None = None,
) -> LabelMapping:
    """Match the model's classes to the dataset's labels; a GlueperfError naming both label
    lists when they cannot be matched."""
    n_classes = len(model_names)
    dataset_names = list(dataset_names) if dataset_names else None
    if label_map:
        return _from_label_map(model, model_names, dataset, dataset_names, label_map)
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
        f"{dataset_names}: "
        + (
            f"the class counts differ ({n_classes} vs {len(dataset_names)})"
            if generic
            else "the names do not match (case is ignored)"
        )
        + f". If the model is meant for this dataset, give datasets.{dataset}.label_map in the "
        "config: model class name -> dataset label name, e.g. "
        + "{"
        + ", ".join(f"{m}: {d}" for m, d in zip(model_names, dataset_names, strict=False))
        + "}"
    )


def _from_label_map(model, model_names, dataset, dataset_names, label_map) -> LabelMapping:
    where = f"config key datasets.{dataset}.label_map"
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
    return LabelMapping(np.asarray(targets, dtype=np.int64), how, f"{how}: {description}")
