"""What each GLUE task is, in one place: its text columns, label names, kind and official metrics.

A dataset in the config names its task (``glue_task: mnli``) and takes these as its defaults; any
other parquet file gives the same settings itself (``text_columns``, ``label_names``,
``regression``, ``metrics``). A new task is one entry in ``GLUE_TASKS``.
"""

from __future__ import annotations

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
    # Model class name -> dataset label name, for a model scored outside its own label set.
    label_map: dict[str, str] = field(default_factory=dict)
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


def dataset_spec(name: str, entry: dict) -> DatasetSpec:
    """A config ``datasets`` entry as a DatasetSpec: its GLUE task's defaults with the entry's own
    settings on top. Display-only keys (``task``, ``note``) are not part of it, so changing them
    reruns no evaluation."""
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
        label_map=dict(entry.get("label_map") or {}),
        glue_task=glue_task,
    )


def display_task(entry: dict) -> str:
    """The table's Task column: the config's label, else the GLUE task's description."""
    if entry.get("task"):
        return entry["task"]
    task = GLUE_TASKS.get(entry.get("glue_task") or "")
    return task.description if task else ""
