"""Every column of the results, defined once: its name, unit, meaning (one sentence for people),
the decimals that model_performance.csv keeps of it and its kind, in the order the files list
them. The metrics files' column order, the table's order, names and rounding, and the column
reference docs/columns.md (``column_reference``; scripts/write_column_docs.py writes it) all
follow from here.

The columns come in typed groups, as optimum-benchmark's Latency, Memory and Energy dataclasses
carry their unit: each group is a frozen, keyword-only dataclass whose fields are its columns,
each field's metadata its ``Column``. Each producer fills its own group (the evaluation its
measurements, the job who and what was evaluated, where and from which inputs, the aggregation
the table's own columns); a group cannot be made with a field missing or an unknown one, and
``metrics_row`` assembles one evaluation's row from every group of the row, once each, in order.

Light (dataclasses only): the Snakefile reads the plots' registry, which names columns from here,
while it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

# Where each evaluation's results go: one row of metrics, and one row per sentence.
METRICS_PATH = "results/metrics/{model}/{dtype}/{dataset}.csv"
PREDICTIONS_PATH = "results/predictions/{model}/{dtype}/{dataset}.parquet"
# The precision every other one is compared with (the Agreement group).
REFERENCE_DTYPE = "float32"

# Kinds of column: how a value is read back and written. A name is user-chosen text that must
# stay text when read (a model named 'NA' or '2e5'); a count is a whole number, even when empty.
NAME, TEXT, COUNT, NUMBER, FLAG = "name", "text", "count", "number", "flag"
KINDS = (NAME, TEXT, COUNT, NUMBER, FLAG)


@dataclass(frozen=True)
class Column:
    """One column: ``decimals`` kept in model_performance.csv (None: written as it is; the
    metrics files keep full precision), ``table_name`` its name there where it differs (the
    original report's), ``group`` the name of its group, ``in_row`` whether every metrics row has
    it (else the aggregation adds it to the table)."""

    name: str
    unit: str
    meaning: str
    kind: str
    decimals: int | None
    table_name: str
    group: str
    in_row: bool


def column(unit: str, meaning: str, kind: str = NUMBER, decimals=None, table_name=None):
    """A group's field that is a column (see ``Column``)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    return field(metadata={"column": (unit, meaning, kind, decimals, table_name)})


class Group:
    """A group of columns: subclasses are frozen keyword-only dataclasses of ``column`` fields.
    ``title``: its heading in docs/columns.md; its docstring, what the columns share."""

    title: ClassVar[str]
    in_row: ClassVar[bool] = True

    @classmethod
    def columns(cls) -> tuple[Column, ...]:
        return tuple(
            Column(
                name=f.name,
                unit=f.metadata["column"][0],
                meaning=f.metadata["column"][1],
                kind=f.metadata["column"][2],
                decimals=f.metadata["column"][3],
                table_name=f.metadata["column"][4] or f.name,
                group=cls.__name__,
                in_row=cls.in_row,
            )
            for f in fields(cls)
        )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def values(self) -> dict:
        """Column name -> value, in the group's order."""
        return {name: getattr(self, name) for name in self.names()}


def group(title: str, in_row: bool = True):
    """A Group subclass as a frozen keyword-only dataclass: every column named when it is made."""

    def make(cls):
        cls.title, cls.in_row = title, in_row
        return dataclass(frozen=True, kw_only=True)(cls)

    return make


SECONDS = "s"
MIB = "MiB"
PERCENT = "%"
TIMES_100 = "x 100"


@group("Who and what")
class Subject(Group):
    """What was evaluated: a model in one precision on one dataset."""

    model: str = column("", "the model's name in the config (`models.<name>`)", NAME, None, "Model")
    dtype: str = column(
        "",
        "the precision of the weights and activations: float32 (the reference), bfloat16 or "
        "float16 (`evaluation.dtype`)",
        NAME,
    )
    dataset: str = column("", "the dataset's name in the config", NAME, None, "Dataset")
    glue_task: str = column("", "the dataset's GLUE task (`glue_task`); empty if none", NAME)


@group("Who and what")
class Workload(Group):
    """What the evaluation was given."""

    n_rows: int = column("rows", "rows evaluated: sentences, or sentence pairs", COUNT)
    text_input: str = column("", "`single` sentences or sentence `pair`s", TEXT)
    label_mapping: str = column(
        "",
        "which dataset label each model class was taken for, and how: by name, by id, or the "
        "config's `label_map` (`label_map: NEGATIVE->unacceptable, ...`); empty for regression",
        TEXT,
    )


@group("Who and what", in_row=False)
class Reading(Group):
    """Added to model_performance.csv by the aggregation, for people and the GLUE summary."""

    cross_task: bool = column(
        "",
        "True when `label_mapping` matched the classes through a `label_map`: the model scored "
        "on labels of a task it was not trained for, left out of the GLUE summary",
        FLAG,
    )
    task: str = column(
        "",
        "the dataset's `task` label for people (default: its GLUE task's description)",
        NAME,
        None,
        "Task",
    )
    family: str = column(
        "", "the model's `family`: its row of the GLUE summary (default: its name)", NAME
    )


@group("Quality")
class Quality(Group):
    """Predictions against labels, over the labeled rows (label not -1); a field that does not
    apply to the task, or any of them without labels, is empty, never 0."""

    n_labeled: int = column("rows", "rows with a label (not -1): the rows scored", COUNT)
    correct: int = column("rows", "labeled rows whose predicted class is their label", COUNT)
    accuracy_pct: float = column(
        PERCENT,
        "correct / n_labeled; empty for regression",
        NUMBER,
        2,
        "Accuracy (%)",
    )
    accuracy_ci_low_pct: float = column(
        PERCENT, "lower end of the accuracy's 95 % Wilson interval", NUMBER, 2
    )
    accuracy_ci_high_pct: float = column(
        PERCENT, "upper end of the accuracy's 95 % Wilson interval", NUMBER, 2
    )
    mcc: float = column(
        "-1 to 1",
        "Matthews correlation coefficient (CoLA's official metric; 0 is chance)",
        NUMBER,
        4,
    )
    macro_f1: float = column("0 to 1", "unweighted mean of the classes' F1", NUMBER, 4)
    f1: float = column("0 to 1", "F1 of class 1, for two classes", NUMBER, 4)
    pearson: float = column(
        "-1 to 1", "Pearson's r of predicted and gold scores (regression)", NUMBER, 4
    )
    spearman: float = column(
        "-1 to 1", "Spearman's rho of predicted and gold scores (regression)", NUMBER, 4
    )
    metric: str = column(
        "",
        "the official metric(s) the score is the mean of, e.g. `f1/accuracy`",
        NAME,
        None,
        "Metric",
    )
    score: float = column(
        TIMES_100,
        "the task's official metric (the mean of its two where it has two) x 100",
        NUMBER,
        2,
        "Score",
    )
    score_ci_low: float = column(
        TIMES_100,
        "lower end of the score's 95 % interval: Wilson for accuracy, else a seeded bootstrap "
        "(1,000 resamples, seed 0)",
        NUMBER,
        2,
    )
    score_ci_high: float = column(TIMES_100, "upper end of the score's 95 % interval", NUMBER, 2)


@group("Timing")
class Timing(Group):
    """Wall-clock seconds of the evaluation's phases, the device synchronized at both ends of
    each."""

    inference_time_s: float = column(
        SECONDS,
        "the offline pass: from the list of sentences to the predictions on the host, "
        "tokenization plus every forward pass",
        NUMBER,
        3,
        "Inference Time (seconds)",
    )
    throughput_eps: float = column(
        "sentences/s", "n_rows / inference_time_s: sentences (all rows) per second", NUMBER, 1
    )
    tokenize_s: float = column(
        SECONDS,
        "seconds inside the tokenizer; on CUDA it overlaps the forward passes, so tokenize_s + "
        "forward_s can exceed inference_time_s",
        NUMBER,
        3,
    )
    forward_s: float = column(
        SECONDS, "seconds of the forward passes (and what is not tokenization)", NUMBER, 3
    )
    read_s: float = column(SECONDS, "reading and checking the dataset file", NUMBER, 3)
    device_start_s: float = column(
        SECONDS,
        "starting CUDA in the evaluation's process on the GPU it claimed (its context); 0 on a "
        "CPU. With one GPU to claim, CUDA starts before the claim, during the job's "
        "preparation, and then also warms up a one-layer stand-in of the model (its kernels "
        "loaded, the allocators set up); in a process forked ahead (`job_process` `ahead`) "
        "most of it happened before the job came, while the job before it ran",
        NUMBER,
        3,
    )
    model_load_s: float = column(
        SECONDS,
        "loading the model from its files and moving it to the device (on a GPU host the "
        "loading is done on the CPU before the claim, and counted here)",
        NUMBER,
        3,
    )
    warmup_s: float = column(
        SECONDS,
        "one tiny batch run before the timed pass (after a stand-in's warm-up, what the model "
        "itself still pays)",
        NUMBER,
        3,
    )
    startup_s: float = column(
        SECONDS,
        "the job's start-up and imports, from the start of the process Snakemake started for "
        "it, its wait for the device left out",
        NUMBER,
        3,
    )


@group("Memory")
class Memory(Group):
    """Peak memory, in MiB (2^20 bytes)."""

    peak_rss_mb: float = column(
        MIB,
        "peak resident set size of the evaluation process over its whole life (imports, data, "
        "model, inference), plus that of its tokenizer's process where it had one (a large "
        "dataset, on a GPU, in bfloat16 or float16: PROCESS_TEXTS in glueperf/engine.py)",
        NUMBER,
        1,
        "Memory Usage (MB)",
    )
    gpu_peak_allocated_mb: float = column(
        MIB, "peak GPU memory held by tensors; empty on a CPU", NUMBER, 1
    )
    gpu_peak_reserved_mb: float = column(
        MIB, "peak GPU memory reserved by PyTorch's caching allocator; empty on a CPU", NUMBER, 1
    )


@group("Work")
class Work(Group):
    """The offline pass's tokens and batches."""

    n_tokens: int = column("tokens", "tokens of every row, special tokens included", COUNT)
    padded_tokens: int = column("tokens", "tokens the model computed, padding included", COUNT)
    n_truncated: int = column("rows", "rows cut at max_length", COUNT)
    truncated_pct: float = column(
        PERCENT,
        "n_truncated / n_rows; above 1 % the run is flagged (its log, the console, every plot)",
        NUMBER,
        2,
    )
    n_batches: int = column("batches", "batches of the offline pass", COUNT)
    oom_retries: int = column(
        "batches", "batches retried at half the token budget after CUDA ran out of memory", COUNT
    )
    batch_tokens_final: int = column(
        "tokens", "the token budget per batch at the end (batch_tokens, halved per retry)", COUNT
    )


@group("Single-request latency")
class Latency(Group):
    """A seeded sample of the rows sent one at a time after the offline pass, each tokenized
    alone, run at batch size 1 and its prediction read on the host before the next is sent
    (`evaluation.latency`); nearest-rank percentiles, each empty unless at least 5 requests lie
    at or above it (p50 needs 8 requests, p90 40, p99 400)."""

    latency_requests: int = column("requests", "requests timed", COUNT)
    latency_p50_ms: float = column("ms", "median single-request latency", NUMBER, 2)
    latency_p90_ms: float = column("ms", "90th percentile of the latencies", NUMBER, 2)
    latency_p99_ms: float = column("ms", "99th percentile of the latencies", NUMBER, 2)
    latency_max_ms: float = column("ms", "the slowest timed request", NUMBER, 2)
    latency_phase_s: float = column(
        SECONDS, "the whole latency phase, warm-up included: its cost to the evaluation", NUMBER, 3
    )
    latency_note: str = column(
        "", "why fewer requests ran than asked, or which percentile is empty; else empty", TEXT
    )


@group("GPU energy")
class Energy(Group):
    """The GPU's energy during the offline pass, from NVML's counter; a pass shorter than
    `evaluation.energy.min_updates` counter updates is repeated, untimed, and the figures are per
    pass. Empty on a CPU and where the GPU has no counter."""

    energy_j: float = column("J", "GPU energy of one offline pass", NUMBER, 2)
    energy_j_per_1k: float = column(
        "J per 1,000 rows", "energy_j per 1,000 rows (a sentence or a pair)", NUMBER, 2
    )
    mean_power_w: float = column("W", "the window's energy / its seconds", NUMBER, 1)
    energy_passes: int = column(
        "passes", "offline passes in the measured window (0: not measured)", COUNT
    )
    energy_window_s: float = column(
        SECONDS, "the window, between two updates of the counter", NUMBER, 3
    )
    energy_note: str = column("", "why the energy is empty; else empty", TEXT)


@group("Agreement with float32", in_row=False)
class Agreement(Group):
    """Added to model_performance.csv by the aggregation, for each row in another precision
    than float32 whose model also ran in float32 on the same dataset (from both predictions
    files); empty for float32 rows and where no float32 evaluation ran."""

    agreement_pct: float = column(
        PERCENT,
        "rows (all, labeled or not) whose predicted class is float32's; classification",
        NUMBER,
        2,
    )
    max_abs_diff: float = column(
        "label units",
        "the largest difference between a predicted score and float32's; regression",
        NUMBER,
        4,
    )
    score_diff: float = column(
        TIMES_100, "score minus the float32 evaluation's score, in points", NUMBER, 2
    )


@group("Setup")
class Setup(Group):
    """What was measured with what."""

    device: str = column("", "`cuda`, `cpu` or `mps`: the device the model ran on", TEXT)
    device_name: str = column("", "the GPU's or CPU's model name", TEXT)
    torch_threads: int = column(
        "threads",
        "torch's CPU threads (`evaluation.threads`, else the job's: `--cores` caps them)",
        COUNT,
    )
    tokenizer_threads: int = column(
        "threads",
        "the Rust tokenizer's threads: RAYON_NUM_THREADS where set (`evaluation.threads` sets "
        "it), else one per core the process may run on, but one fewer on a GPU (a core for the "
        "thread that feeds it)",
        COUNT,
    )
    batch_tokens: int = column("tokens", "padded tokens per batch asked (`batch_tokens`)", COUNT)
    max_batch_size: int = column("rows", "most rows in one batch (`max_batch_size`)", COUNT)
    max_length: int = column(
        "tokens", "tokens per row used: `max_length`, capped at the model's maximum", COUNT
    )
    torch_version: str = column("", "torch's version", TEXT)
    transformers_version: str = column("", "transformers' version", TEXT)


@group("Setup")
class Loading(Group):
    """How the model was loaded."""

    model_format: str = column(
        "",
        "`transformers`, how every model is loaded (earlier runs could say `torchscript`)",
        TEXT,
    )
    weights_format: str = column(
        "",
        "`safetensors`, or `pytorch-pickle` read with torch.load(weights_only=True)",
        TEXT,
    )
    trust_remote_code: bool = column(
        "", "whether the model's own code was allowed to run (`trust_remote_code`)", FLAG
    )


@group("Setup")
class Job(Group):
    """The job around the measurement: how its process started, the device it claimed, and
    when it held it."""

    job_process: str = column(
        "",
        "`forked` from the run's fork server; `ahead`: forked before the job came, CUDA "
        "started on the one GPU to claim (docs/internals.md); or `own` (imported for itself)",
        TEXT,
    )
    gpu_index: int = column("", "the GPU as nvidia-smi numbers it; empty on a CPU", COUNT)
    gpu_uuid: str = column("", "the GPU's UUID; empty on a CPU", TEXT)
    device_wait_s: float = column(
        SECONDS, "seconds the job waited for its device (held by another evaluation)", NUMBER, 3
    )
    device_held_from: float = column(
        "Unix time, s", "when the job took its device; empty where nothing is locked", NUMBER
    )
    device_held_until: float = column(
        "Unix time, s", "when it had measured and let the device go", NUMBER
    )


@group("Provenance")
class Provenance(Group):
    """The exact inputs, as fetched and validated."""

    model_source: str = column("", "the model's `source`: a Hub id or a directory", TEXT)
    model_revision: str = column("", "the `revision` asked for a Hub model; else empty", TEXT)
    model_commit: str = column("", "the Hub commit the model was fetched at; else empty", TEXT)
    model_weights_sha256: str = column("", "sha256 of the model's weights files", TEXT)
    dataset_path: str = column("", "the dataset's `path`: a local file or an hf:// file", TEXT)
    dataset_commit: str = column("", "the Hub commit the dataset file was fetched at", TEXT)
    dataset_sha256: str = column("", "sha256 of the parquet file", TEXT)


# Every group, in the order of the files' columns.
GROUPS: tuple[type[Group], ...] = (
    Subject,
    Workload,
    Reading,
    Quality,
    Timing,
    Memory,
    Work,
    Latency,
    Energy,
    Agreement,
    Setup,
    Loading,
    Job,
    Provenance,
)
ROW_GROUPS = tuple(g for g in GROUPS if g.in_row)


def _columns() -> dict[str, Column]:
    found: dict[str, Column] = {}
    for kind in GROUPS:
        for col in kind.columns():
            if col.name in found:
                raise ValueError(f"column {col.name} is defined twice ({found[col.name].group})")
            found[col.name] = col
    return found


# Column name -> its definition, in the order of the files.
COLUMNS: dict[str, Column] = _columns()
# The metrics files' columns, in order.
ROW_COLUMNS = tuple(name for kind in ROW_GROUPS for name in kind.names())
# model_performance.csv's first columns, the original report's five then what names the row;
# the others follow in the order of COLUMNS.
FIRST_IN_TABLE = (
    "dataset",
    "task",
    "inference_time_s",
    "peak_rss_mb",
    "accuracy_pct",
    "model",
    "dtype",
    "metric",
    "score",
)


def metrics_row(*groups: Group) -> dict:
    """One evaluation's metrics row from one filled group of each of ROW_GROUPS: every column of
    ROW_COLUMNS, in that order. A group missing, given twice, or not of the row is an error."""
    given: dict[type, Group] = {}
    for filled in groups:
        kind = type(filled)
        if kind not in ROW_GROUPS:
            raise TypeError(f"{kind.__name__} is not a group of the metrics row")
        if kind in given:
            raise TypeError(f"{kind.__name__} is given twice")
        given[kind] = filled
    missing = [kind.__name__ for kind in ROW_GROUPS if kind not in given]
    if missing:
        raise TypeError(f"the metrics row lacks the groups {', '.join(missing)}")
    row: dict = {}
    for kind in ROW_GROUPS:
        row.update(given[kind].values())
    return row


def decimals(name: str) -> int | None:
    """Decimals that model_performance.csv keeps of a column (None: as it is, or unknown)."""
    known = COLUMNS.get(name)
    return known.decimals if known else None


def table_name(name: str) -> str:
    """A column's name in model_performance.csv (KeyError for a column defined nowhere)."""
    return COLUMNS[name].table_name


def table_name_of(name: str) -> str:
    """A column's name in model_performance.csv; a column defined nowhere keeps its name."""
    known = COLUMNS.get(name)
    return known.table_name if known else name


def names_of_kind(kind: str, table: bool = False) -> tuple[str, ...]:
    """The columns of a kind, by their names in the metrics files (or in the table)."""
    return tuple(
        col.table_name if table else col.name for col in COLUMNS.values() if col.kind == kind
    )


def evaluation_labels(models, dtypes) -> list[str]:
    """Each evaluation's label among those given (a plot's series, a GLUE summary's row): its
    model's name, or "model · dtype" for all when some model among them ran in several dtypes,
    so that one label never stands for two precisions."""
    models, dtypes = [str(m) for m in models], [str(d) for d in dtypes]
    several = len(set(zip(models, dtypes, strict=True))) > len(set(models))
    if not several:
        return models
    return [f"{model} \N{MIDDLE DOT} {dtype}" for model, dtype in zip(models, dtypes, strict=True)]


# --- docs/columns.md ----------------------------------------------------------------------------

DOCS_FILE = "docs/columns.md"
DOCS_COMMAND = ".venv/bin/python scripts/write_column_docs.py"


def column_reference() -> str:
    """docs/columns.md: every column, group by group, as this module defines it."""
    first = ", ".join(f"`{table_name(name)}`" for name in FIRST_IN_TABLE)
    lines = [
        "# Columns of the results",
        "",
        f"<!-- Generated from scripts/glueperf/results.py by `{DOCS_COMMAND}`: edit that "
        "module, not this file. -->",
        "",
        f"Each evaluation writes one row, `{METRICS_PATH}`, at full precision. "
        "`results/model_performance.csv` holds every row, with the columns the aggregation adds "
        f"(marked *table only*), each number rounded to the decimals given here; its first "
        f"columns are {first} (the original report's names), then the others in the order below.",
        "An empty cell means the value does not apply or was not measured, never 0.",
    ]
    for title in dict.fromkeys(kind.title for kind in GROUPS):
        lines += ["", f"## {title}", ""]
        members = [kind for kind in GROUPS if kind.title == title]
        lines.append("\n\n".join(" ".join(kind.__doc__.split()) for kind in members))
        lines += [
            "",
            "| column | unit | decimals | meaning |",
            "|---|---|---|---|",
        ]
        for kind in members:
            for col in kind.columns():
                lines.append(_reference_line(col))
    return "\n".join(lines) + "\n"


def _reference_line(col: Column) -> str:
    name = f"`{col.name}`"
    if col.table_name != col.name:
        name += f" (table: `{col.table_name}`)"
    if not col.in_row:
        name += " *table only*"
    places = "" if col.decimals is None else str(col.decimals)
    if col.kind == COUNT:
        places = "integer"
    return f"| {name} | {col.unit} | {places} | {col.meaning} |"
