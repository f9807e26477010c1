"""What each GLUE task is, in one place: its text columns, label names, kind and official metrics.

A dataset in the config names its task (``glue_task: mnli``) and takes these as its defaults; any
other parquet file gives the same settings itself (``text_columns``, ``label_names``,
``regression``, ``metrics``). A new task is one entry in ``GLUE_TASKS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from glueperf import GlueperfError


@dataclass(frozen=True)
class Task:
    """One GLUE task. ``label_names`` lists the classes in id order; None means regression."""

    name: str  # as the Hub's nyu-mll/glue names its folder
    title: str  # as papers print it in the GLUE table
    description: str  # what it asks, for people (the table's Task column by default)
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]  # official GLUE metrics; the task's score is their mean

    @property
    def regression(self) -> bool:
        return self.label_names is None


GLUE_TASKS = {
    task.name: task
    for task in (
        Task(
            "cola",
            "CoLA",
            "Linguistic acceptability",
            ("sentence",),
            ("unacceptable", "acceptable"),
            ("mcc",),
        ),
        Task(
            "sst2",
            "SST-2",
            "Sentiment analysis",
            ("sentence",),
            ("negative", "positive"),
            ("accuracy",),
        ),
        Task(
            "mrpc",
            "MRPC",
            "Paraphrase",
            ("sentence1", "sentence2"),
            ("not_equivalent", "equivalent"),
            ("f1", "accuracy"),
        ),
        Task(
            "qqp",
            "QQP",
            "Question paraphrase",
            ("question1", "question2"),
            ("not_duplicate", "duplicate"),
            ("f1", "accuracy"),
        ),
        Task(
            "stsb",
            "STS-B",
            "Semantic similarity",
            ("sentence1", "sentence2"),
            None,
            ("pearson", "spearman"),
        ),
        Task(
            "mnli",
            "MNLI",
            "Natural language inference",
            ("premise", "hypothesis"),
            ("entailment", "neutral", "contradiction"),
            ("accuracy",),
        ),
        Task(
            "qnli",
            "QNLI",
            "Question answering inference",
            ("question", "sentence"),
            ("entailment", "not_entailment"),
            ("accuracy",),
        ),
        Task(
            "rte",
            "RTE",
            "Textual entailment",
            ("sentence1", "sentence2"),
            ("entailment", "not_entailment"),
            ("accuracy",),
        ),
        Task(
            "wnli",
            "WNLI",
            "Winograd inference",
            ("sentence1", "sentence2"),
            ("not_entailment", "entailment"),
            ("accuracy",),
        ),
    )
}

# A dataset that names no GLUE task: one text column, class ids scored by accuracy.
DEFAULT_TEXT_COLUMNS = ("sentence",)
DEFAULT_METRICS = {False: ("accuracy",), True: ("pearson", "spearman")}


@dataclass(frozen=True)
class DatasetSpec:
    """How one dataset is read and scored. The rules hand it to the scripts as a plain dict
    (``asdict``), a params value: changing any of it reruns that dataset's jobs."""

    text_columns: tuple[str, ...] = DEFAULT_TEXT_COLUMNS
    label_column: str = "label"
    regression: bool = False
    # Class names in id order, from the config or the GLUE task; None: not known. A file's own
    # ClassLabel names win over the task's (validation decides), never over the config's.
    label_names: tuple[str, ...] | None = None
    label_names_from_config: bool = False
    metrics: tuple[str, ...] = DEFAULT_METRICS[False]
    # Model class name -> dataset label name, for a model scored outside its own label set: the
    # one that applies to the evaluated model (``label_map_for``), from config key
    # ``label_map_key``. Empty for validation, which no label_map changes.
    label_map: dict[str, str] = field(default_factory=dict)
    label_map_key: str = ""
    glue_task: str = ""

    def __post_init__(self):
        # Lists after a trip through YAML, JSON or Snakemake's params: tuples, as declared.
        object.__setattr__(self, "text_columns", tuple(self.text_columns))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if self.label_names is not None:
            object.__setattr__(self, "label_names", tuple(self.label_names))

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2


def dataset_spec(
    name: str, entry: dict, model: str | None = None, model_entry: dict | None = None
) -> DatasetSpec:
    """A config ``datasets`` entry as a DatasetSpec: its GLUE task's defaults with the entry's own
    settings on top. Display-only keys (``task``, ``note``) are not part of it, so changing them
    reruns no evaluation. With a ``model`` (its config entry ``model_entry``): as that model's
    evaluation reads it, with the label_map that applies to it (``label_map_for``); without,
    as validation reads it, with none."""
    glue_task = entry.get("glue_task") or ""
    task = GLUE_TASKS.get(glue_task)
    if glue_task and task is None:
        raise GlueperfError(
            f"config key datasets.{name}.glue_task: '{glue_task}' is not a GLUE task "
            f"(one of {', '.join(GLUE_TASKS)})"
        )
    regression = entry.get("regression", task.regression if task else False)
    if regression and entry.get("label_names"):
        raise GlueperfError(
            f"config key datasets.{name}.label_names: given for a regression dataset "
            f"(regression: true{f', glue_task: {glue_task}' if glue_task else ''})"
        )
    label_names = entry.get("label_names") or (task.label_names if task else None)
    metrics = entry.get("metrics") or (task.metrics if task else DEFAULT_METRICS[bool(regression)])
    return DatasetSpec(
        text_columns=entry.get("text_columns")
        or (task.text_columns if task else DEFAULT_TEXT_COLUMNS),
        label_column=entry.get("label_column", "label"),
        regression=bool(regression),
        label_names=None if regression else label_names,
        label_names_from_config=bool(entry.get("label_names")),
        metrics=metrics,
        **(label_map_for(model, model_entry or {}, name, entry) if model else {}),
        glue_task=glue_task,
    )


def label_map_for(model: str, model_entry: dict, dataset: str, dataset_entry: dict) -> dict:
    """The label_map that says which dataset label each of ``model``'s classes stands for on
    ``dataset``, and its config key, as DatasetSpec fields. The most specific one wins: the
    model's for this dataset (``models.<model>.label_maps.<dataset>``), else the model's own on
    every dataset (``models.<model>.label_map``), else the dataset's for every model
    (``datasets.<dataset>.label_map``); none: classes are matched by name or id."""
    for label_map, key in (
        (
            (model_entry.get("label_maps") or {}).get(dataset),
            f"models.{model}.label_maps.{dataset}",
        ),
        (model_entry.get("label_map"), f"models.{model}.label_map"),
        (dataset_entry.get("label_map"), f"datasets.{dataset}.label_map"),
    ):
        if label_map:
            return {"label_map": dict(label_map), "label_map_key": key}
    return {}


def file_class_names(huggingface_metadata, label_column: str) -> tuple[str, ...] | None:
    """The ClassLabel names of ``label_column`` in a parquet file's ``huggingface`` schema
    metadata (JSON, as the ``datasets`` library writes it and the Hub's files carry it), or
    None."""
    if not huggingface_metadata:
        return None
    try:
        feature = json.loads(huggingface_metadata)["info"]["features"][label_column]
        names = feature["names"] if feature.get("_type") == "ClassLabel" else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return tuple(str(name) for name in names) if names else None


def class_names(spec: DatasetSpec, file_names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The dataset's class names in id order: the config's, else the file's own
    (``file_names``), else the GLUE task's; None for regression or when nothing names them."""
    if spec.regression:
        return None
    if spec.label_names_from_config:
        return spec.label_names
    return file_names or spec.label_names


def display_task(entry: dict) -> str:
    """The table's Task column: the config's label, else the GLUE task's description."""
    if entry.get("task"):
        return entry["task"]
    task = GLUE_TASKS.get(entry.get("glue_task") or "")
    return task.description if task else ""
