"""One evaluation: a model on a dataset file -> the measured fields of its metrics row and the
predictions table. The model is loaded by glueperf/models.py.

What the reported figures measure (also in the README):
- ``inference_time_s`` ("Inference Time (seconds)"): wall-clock seconds from the list of texts to
  predictions on the host: tokenization plus all forward passes, the device synchronized at both
  ends. Excludes reading the file, starting the device, loading the model and one small warm-up
  batch, each reported on its own (``read_s``, ``device_start_s``, ``model_load_s``,
  ``warmup_s``), and the job's start-up and imports before the evaluation begins (``startup_s``,
  from the start of the process Snakemake started for the job). On CUDA, tokenization of the next
  chunk overlaps the forward passes, so ``tokenize_s`` + ``forward_s`` can exceed it.
- The fixed cost of an evaluation is ``startup_s + device_start_s + model_load_s + warmup_s``:
  ``device_start_s`` is CUDA's start in this process (its context, on the claimed GPU; 0 on the
  CPU), after the claim; ``model_load_s`` the model's loading from its files and its move to the
  device (for a GPU, the loading on the CPU happens before the claim: ``LoadedOnCpu``).
- ``peak_rss_mb`` ("Memory Usage (MB)"): peak resident set size of the evaluation process over
  its whole life (imports, data, model, inference), in MiB, from the kernel's high-water mark and
  a 10 ms sampler; in a child of the fork server (``job_process`` ``forked``) the imports come
  with the fork, and library pages it never touches are not counted. GPU memory is reported
  apart: ``gpu_peak_allocated_mb`` / ``_reserved_mb``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from glueperf import TRUNCATED_WARN_PCT, GlueperfError
from glueperf.engine import Batching, Engine
from glueperf.labels import LabelMapping, ModelOutputs, check_model_fits
from glueperf.measure import (
    PeakMemory,
    PhaseTimer,
    gpu_peaks_mb,
    job_age_s,
    reset_gpu_peaks,
)
from glueperf.metrics import task_scores
from glueperf.models import LoadedOnCpu, load_model, token_limit
from glueperf.tasks import DatasetSpec
from glueperf.validation import NO_LABEL, Dataset, load_dataset

log = logging.getLogger(__name__)


def resolve_device(requested: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else is used as given, once
    it is known to exist here (torch's own errors for a missing device are tracebacks)."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GlueperfError(f"evaluation.device is '{requested}' but no CUDA device is visible")
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise GlueperfError(
                f"evaluation.device is '{requested}' but only {torch.cuda.device_count()} CUDA "
                f"device(s) are visible (cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
    if requested == "mps" and not torch.backends.mps.is_available():
        raise GlueperfError(
            "evaluation.device is 'mps' but Apple's Metal (MPS) backend is not available on this "
            "machine; use 'auto' or 'cpu'"
        )
    return requested


def start_device(device: str) -> float:
    """Start CUDA in this process on ``device`` (its context), the first thing an evaluation
    does with the device it holds; the seconds it took. Nothing to start on the CPU (0.0)."""
    import torch

    if torch.device(device).type != "cuda":
        return 0.0
    started = time.perf_counter()
    torch.cuda.init()
    torch.cuda.synchronize(device)  # the context exists once the device has been waited for
    return time.perf_counter() - started


def warm_up(engine: Engine, pairs: bool) -> None:
    """One tiny batch so that CUDA context, kernels and allocator set-up are not timed."""
    texts = ["warm up the kernels", "a second, longer sentence to warm up the kernels"]
    engine.run(texts, texts[::-1] if pairs else None)


@dataclass
class ReadData:
    """A dataset file read and validated; ``startup_s``: the job's age when reading began (its
    process's start-up and imports), ``read_s``: how long reading took."""

    data: Dataset
    startup_s: float
    read_s: float


def read_data(data_file, spec: DatasetSpec | None = None) -> ReadData:
    """Read the dataset (no device needed: an evaluation does it before it claims one)."""
    # Interpreter start and imports, before any of our work: part of every job's fixed cost.
    startup_s = job_age_s()
    start = time.perf_counter()
    data = load_dataset(data_file, spec or DatasetSpec())
    return ReadData(data, startup_s, time.perf_counter() - start)


def evaluate(
    model_dir: str,
    data_file: str,
    spec: DatasetSpec | None = None,
    device: str = "auto",
    dtype: str = "float32",
    batching: Batching | None = None,
    names: tuple[str, str] = ("model", "dataset"),
    trust_remote_code: bool = False,
    read: ReadData | None = None,
    job_process: str = "own",
    loaded_on_cpu: LoadedOnCpu | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Evaluate the model in ``model_dir`` on ``data_file`` and measure it.

    Returns the measured fields of the metrics row (quality, times, memory, sizes, what it ran
    on) and the predictions table's columns; the caller adds who and what was evaluated (names,
    sources, provenance). ``names`` (model, dataset) only name the config entries in errors.
    ``read``: the file as ``read_data`` read it already (else it is read here, first).
    ``job_process``: recorded as it is, "forked" for a job that runs in a child of the fork
    server, else "own". ``loaded_on_cpu``: the model of ``model_dir`` as ``load_on_cpu`` loaded
    it already, before the device was claimed (else it is loaded here); its seconds count in
    ``model_load_s``.
    """
    from importlib.metadata import version

    import torch

    spec = spec or DatasetSpec()
    read = read or read_data(data_file, spec)
    data = read.data
    batching = batching or Batching()
    device = resolve_device(device)
    timer = PhaseTimer(device)
    with PeakMemory() as memory:
        device_start_s = start_device(device)
        reset_gpu_peaks(device)
        # The model's one loading step (or, loaded on the CPU already, its move to the device).
        with timer.phase("model_load_s"):
            model, tokenizer, loaded = (
                loaded_on_cpu.to(device)
                if loaded_on_cpu is not None
                else load_model(model_dir, dtype, device, trust_remote_code)
            )
        mapping = check_task_fits(model, data, spec, data_file, names)
        limit = token_limit(model, tokenizer, batching.max_length)
        batching = Batching(**{**asdict(batching), "max_length": min(batching.max_length, limit)})
        engine = Engine(model, tokenizer, device, batching)
        with timer.phase("warmup_s"):
            warm_up(engine, pairs=data.pairs is not None)
        with timer.phase("inference_time_s"):
            result = engine.run(data.texts, data.pairs, progress=True)
        gpu_allocated_mb, gpu_reserved_mb = gpu_peaks_mb(device)
    outputs = result.predictions if mapping is None else mapping.apply(result.predictions)
    n_classes = None if mapping is None else len(data.label_names or mapping.to_dataset)
    seconds = timer.seconds
    forward_s = seconds["inference_time_s"] - (0.0 if engine.overlap else result.tokenize_s)
    row = {
        "n_rows": len(data.texts),
        **task_scores(data.labels, outputs, spec.metrics, n_classes),
        "inference_time_s": seconds["inference_time_s"],
        "tokenize_s": result.tokenize_s,
        "forward_s": forward_s,
        "device_start_s": device_start_s,
        "model_load_s": seconds["model_load_s"] + (loaded_on_cpu.load_s if loaded_on_cpu else 0.0),
        "read_s": read.read_s,
        "startup_s": read.startup_s,
        "job_process": job_process,
        "warmup_s": seconds["warmup_s"],
        "throughput_eps": len(data.texts) / seconds["inference_time_s"],
        "peak_rss_mb": memory.peak_rss_mb,
        "gpu_peak_allocated_mb": gpu_allocated_mb,
        "gpu_peak_reserved_mb": gpu_reserved_mb,
        "n_tokens": int(result.token_counts.sum()),
        "padded_tokens": result.padded_tokens,
        "n_truncated": result.n_truncated,
        "truncated_pct": truncated_pct(result.n_truncated, len(data.texts), batching.max_length),
        "n_batches": result.n_batches,
        "oom_retries": result.oom_retries,
        "text_input": "pair" if data.pairs is not None else "single",
        "label_mapping": "" if mapping is None else mapping.description,
        "device": device,
        "device_name": device_name(device),
        "dtype": dtype,
        "batch_tokens": batching.batch_tokens,
        "batch_tokens_final": result.batch_tokens,
        "max_batch_size": batching.max_batch_size,
        "max_length": batching.max_length,
        "torch_version": torch.__version__,
        "transformers_version": version("transformers"),
        # Always transformers since the TorchScript traces were dropped; kept so that tables of
        # earlier runs, where it could be torchscript, read alike.
        "model_format": "transformers",
        **loaded,
    }
    columns = {"idx": data.idx, "label": data.labels}
    if mapping is None:  # regression: the predicted score
        columns["score"] = outputs
    else:
        columns["prediction"] = outputs
        columns["probability"] = result.probabilities
    columns["n_tokens"] = result.token_counts
    return row, columns


def write_predictions(columns: dict[str, np.ndarray], target) -> None:
    """The predictions table as a parquet file, with pyarrow alone (no pandas in this job)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from glueperf.outputs import atomic_path

    table = pa.Table.from_arrays(
        [arrow_numbers(values) for values in columns.values()], names=list(columns)
    )
    with atomic_path(target) as path:
        pq.write_table(table, path)


def arrow_numbers(values: np.ndarray):
    """A numpy array of numbers as an arrow array, from its buffer. Not ``pa.array()``: that
    imports pandas where it is installed, half a second of the job for nothing."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    if values.dtype.kind not in "iuf":
        return pa.array(values)
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def check_task_fits(model, data: Dataset, spec: DatasetSpec, path, names) -> LabelMapping | None:
    """A regression model for a regression dataset, a classifier for a classification one, and
    the classifier's classes matched to the dataset's labels (None for regression), every label
    among them."""
    mapping = check_model_fits(
        names,
        ModelOutputs.of(model.config),
        spec.regression,
        data.label_names,
        path,
        spec.label_map,
        spec.label_map_key,
    )
    if mapping is not None:
        check_labels_fit(data.labels, len(mapping.targets), path, spec.label_column, names[0])
    return mapping


def check_task_fits_before_loading(model_dir, data: Dataset, spec: DatasetSpec, path, names):
    """``check_task_fits`` on the model's config.json, before the model is loaded: an evaluation
    runs it before it claims its device."""
    from types import SimpleNamespace

    from glueperf.models import model_dir_config

    config = SimpleNamespace(config=model_dir_config(Path(model_dir)))
    check_task_fits(config, data, spec, path, names)


def truncated_pct(n_truncated: int, n_rows: int, max_length: int) -> float:
    """The share of rows cut at ``max_length``, in %; a warning when it exceeds
    TRUNCATED_WARN_PCT (shown on the console too, by run_script)."""
    pct = 100.0 * n_truncated / n_rows if n_rows else 0.0
    if pct > TRUNCATED_WARN_PCT:
        log.warning(
            "%.1f %% of rows (%d of %d) were longer than max_length %d tokens and truncated: the "
            "model saw only their beginning, so quality figures describe the cut sentences",
            pct,
            n_truncated,
            n_rows,
            max_length,
        )
    return pct


def check_labels_fit(labels, n_classes: int, path, column: str, model_name: str) -> None:
    """Every label must be a class the model can predict (or -1)."""
    labeled = labels != NO_LABEL
    outside = np.flatnonzero(labeled & (labels >= n_classes))
    if len(outside):
        from glueperf.validation import DatasetError

        values = sorted(set(labels[outside].tolist()))
        raise DatasetError(
            path,
            f"labels {values[:10]} are outside the {n_classes} classes of model "
            f"'{model_name}' (ids 0..{n_classes - 1})",
            column=column,
            rows=outside,
        )


def device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():  # platform.processor() is empty on Linux
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
