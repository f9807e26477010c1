"""One evaluation: a model on a dataset file -> the groups of its metrics row that it measures
(glueperf/results.py defines every column) and the predictions table. The model is loaded in one
step (``load``, by glueperf/models.py, or moved to the device when loaded on the CPU before the
claim); the offline pass
(glueperf/engine.py) is measured for time, memory and, on a GPU, energy (glueperf/energy.py),
then single requests for latency (glueperf/latency.py), with the same model on the same device.

What the reported figures measure (also in docs/results.md):
- ``inference_time_s`` ("Inference Time (seconds)"): wall-clock seconds from the list of texts to
  predictions on the host: tokenization plus all forward passes, the device synchronized at both
  ends. Excludes reading the file, starting the device, loading the model and one small warm-up
  batch, each reported on its own (``read_s``, ``device_start_s``, ``model_load_s``,
  ``warmup_s``), and the job's start-up and imports before the evaluation begins (``startup_s``,
  from the start of the process Snakemake started for the job). On CUDA, tokenization of the next
  chunk overlaps the forward passes, so ``tokenize_s`` + ``forward_s`` can exceed it.
- The fixed cost of an evaluation is ``startup_s + device_start_s + model_load_s + warmup_s``:
  ``device_start_s`` is CUDA's start in this process (its context, on the claimed GPU; 0 on the
  CPU), after the claim, or before it where the GPU is known in advance (``EarlyStart``: it then
  costs the held device no time, and includes a stand-in's warm-up, ``warm_up_stand_in``);
  ``model_load_s`` the model's loading from its files and its move
  to the device (for a GPU, the loading on the CPU happens before the claim: ``LoadedOnCpu``).
- ``peak_rss_mb`` ("Memory Usage (MB)"): peak resident set size of the evaluation process over
  its whole life (imports, data, model, inference), in MiB, from the kernel's high-water mark and
  a 10 ms sampler; in a child of the fork server (``job_process`` ``forked``) the imports come
  with the fork, and library pages it never touches are not counted. A dataset of
  ``engine.PROCESS_TEXTS`` rows or more, on a GPU, in bfloat16 or float16, is tokenized in a
  process of its own (glueperf/tokenizer_process.py): its peak is added (a sum of two peaks,
  which may come at different times: never less than what both held at once). GPU memory is
  reported apart: ``gpu_peak_allocated_mb`` / ``_reserved_mb``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from glueperf import TRUNCATED_WARN_PCT, GlueperfError, one_line, results
from glueperf.clock import job_age_s
from glueperf.energy import EnergySettings, energy_fields, open_meter
from glueperf.engine import Batching, Engine, EngineResult, start_tokenizer_early
from glueperf.labels import LabelMapping, ModelOutputs, check_model_fits
from glueperf.latency import LatencySettings, latency_fields, measure_latency
from glueperf.measure import MIB, PeakMemory, PhaseTimer, gpu_peaks_mb, reset_gpu_peaks
from glueperf.metrics import task_scores
from glueperf.models import LoadedOnCpu, load_model, stand_in, token_limit
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


# Set to 0, an evaluation's early start leaves out the stand-in's warm-up (to compare).
STAND_IN_VARIABLE = "GLUEPERF_STAND_IN"


@dataclass(frozen=True)
class StandIn:
    """The model whose one-layer stand-in an early start warms up (``warm_up_stand_in``)."""

    model_dir: str
    dtype: str = "float32"
    trust_remote_code: bool = False


class EarlyStart:
    """``start_device`` begun in a thread, for an evaluation whose GPU is known before its claim
    (glueperf/infra/devices.py: ``foreseen_gpu``): CUDA starts while the job reads its data and
    loads its model on the CPU, and waits for the device, instead of on the held device's time.
    With a ``stand_in``, the thread then warms up a one-layer stand-in of the model
    (``warm_up_stand_in``), unless GLUEPERF_STAND_IN=0. ``after``: an early start begun before
    this job, in this process, on the same device (a child forked ahead,
    glueperf/infra/forkserver.py): this one waits for it instead of starting CUDA, and warms up
    its own stand-in only where that one's was of another model or dtype. ``seconds()``: how long
    the start and the warm-ups took, both starts' when there are two, once they have ended (the
    start's error, if it failed)."""

    def __init__(
        self, device: str = "cuda", stand_in: StandIn | None = None, after: EarlyStart | None = None
    ):
        if after is not None and after.device != device:
            raise ValueError(f"CUDA was started on {after.device}, not on {device}")
        self.device = device
        self.stand_in = stand_in if os.environ.get(STAND_IN_VARIABLE, "1") != "0" else None
        self.after = after
        self._outcome: list = []
        self._device_started = threading.Event()  # started or failed, before any warm-up
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            seconds = self.after.seconds() if self.after else start_device(self.device)
        except BaseException as error:  # re-raised where the evaluation would have started it
            self._outcome.append(error)
            return
        finally:
            self._device_started.set()
        if self.stand_in is not None and self.stand_in != (self.after and self.after.stand_in):
            seconds += warm_up_stand_in(self.stand_in, self.device)
        self._outcome.append(seconds)

    def device_started(self) -> bool:
        """Wait for CUDA's start (not the warm-up): whether it started."""
        self._device_started.wait()
        return not (self._outcome and isinstance(self._outcome[0], BaseException))

    def seconds(self) -> float:
        self._thread.join()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def warm_up_stand_in(model: StandIn, device: str) -> float:
    """What a process pays once before its first forward pass on a GPU runs at speed (kernels
    loaded on their first launch, cuBLAS's and the allocators' set-up: 0.15-0.4 s on an H100
    host, where a later model in the same process pays 0.01-0.02 s; BENCHMARKS.md), paid on a
    stand-in of the model (glueperf/models.py: ``stand_in``) through the engine's forward pass,
    on a padded batch and an unpadded one, then let go with its GPU memory. An early start does it
    before the claim: GPU work of microseconds beside the evaluation that holds the device, which
    spares the held device the fixed cost. The seconds it took; a stand-in that cannot be built
    or run is logged and left out (the model's own warm-up then pays)."""
    import torch

    started = time.perf_counter()
    try:
        network = stand_in(model.model_dir, model.dtype, device, model.trust_remote_code)
        pad_id = network.config.pad_token_id
        tokenizer = _IdsOnly(pad_id if isinstance(pad_id, int) else 0)
        engine = Engine(network, tokenizer, device, Batching())
        engine.forward_ids([[1, 2, 3, 4, 5], [1, 2, 3]])
        engine.forward_ids([[1, 2, 3, 4]])
        del engine, network
        torch.cuda.empty_cache()
    except Exception as error:  # a speed-up only: the evaluation goes on without it
        log.info("no stand-in warm-up before the claim: %s", one_line(error))
    return time.perf_counter() - started


@dataclass(frozen=True)
class _IdsOnly:
    """A tokenizer for an engine that is only given token ids (``Engine.forward_ids``)."""

    pad_token_id: int
    model_input_names: tuple = ("input_ids", "attention_mask")


def warm_up(engine: Engine, pairs: bool) -> None:
    """One tiny batch so that CUDA context, kernels and allocator set-up are not timed."""
    texts = ["warm up the kernels", "a second, longer sentence to warm up the kernels"]
    engine.run(texts, texts[::-1] if pairs else None)


@dataclass
class ReadData:
    """A dataset file read and validated: ``path`` and ``name`` (the config's, for errors)
    name it, ``spec`` says how it is scored; ``startup_s``: the job's age when reading began
    (its process's start-up and imports), ``read_s``: how long reading took."""

    data: Dataset
    startup_s: float
    read_s: float
    path: str = "dataset"
    spec: DatasetSpec = field(default_factory=DatasetSpec)
    name: str = "dataset"


def read_data(data_file, spec: DatasetSpec | None = None, name: str = "dataset") -> ReadData:
    """Read the dataset (no device needed: an evaluation does it before it claims one)."""
    # Interpreter start and imports, before any of our work: part of every job's fixed cost.
    startup_s = job_age_s()
    spec = spec or DatasetSpec()
    start = time.perf_counter()
    data = load_dataset(data_file, spec)
    return ReadData(data, startup_s, time.perf_counter() - start, str(data_file), spec, name)


@dataclass(frozen=True)
class ModelHandle:
    """The model to evaluate: its directory in Hugging Face format, its ``name`` in the config
    (for errors), whether its own code may run, and the model as ``load_on_cpu`` loaded it
    already, before the device was claimed (``loaded_on_cpu``; else it is loaded here)."""

    model_dir: str
    name: str = "model"
    trust_remote_code: bool = False
    loaded_on_cpu: LoadedOnCpu | None = None


@dataclass(frozen=True)
class Settings:
    """How one evaluation runs: the config's `evaluation` settings for its model and dtype."""

    device: str = "auto"
    dtype: str = "float32"
    batching: Batching = field(default_factory=Batching)
    latency: LatencySettings = field(default_factory=LatencySettings)
    energy: EnergySettings = field(default_factory=EnergySettings)

    @classmethod
    def of(cls, settings: Mapping) -> Settings:
        """From one evaluation's settings as the rule passes them (glueperf/infra/plan.py)."""
        return cls(
            device=settings["device"],
            dtype=settings["dtype"],
            batching=Batching(
                batch_tokens=settings["batch_tokens"],
                max_batch_size=settings["max_batch_size"],
                max_length=settings["max_length"],
            ),
            latency=LatencySettings(**settings.get("latency", {})),
            energy=EnergySettings(**settings.get("energy", {})),
        )


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate`` measured: the groups of the metrics row it fills (glueperf/results.py)
    and the predictions table's columns. The job adds who and what was evaluated, where, and
    from which inputs."""

    workload: results.Workload
    quality: results.Quality
    timing: results.Timing
    memory: results.Memory
    work: results.Work
    latency: results.Latency
    energy: results.Energy
    setup: results.Setup
    loading: results.Loading
    predictions: dict[str, np.ndarray]

    def groups(self) -> tuple[results.Group, ...]:
        return tuple(
            getattr(self, name) for name in self.__dataclass_fields__ if name != "predictions"
        )

    def fields(self) -> dict:
        """Every measured column, by name."""
        return {name: value for group in self.groups() for name, value in group.values().items()}


@dataclass
class Loaded:
    """A model loaded for an evaluation, the row's record of how, and the seconds of its loading
    before the claim (``before_s``: on the CPU, for another device)."""

    model: object
    tokenizer: object
    record: results.Loading
    before_s: float = 0.0


# How every model is loaded since the TorchScript traces were dropped; model_format is kept so
# that tables of earlier runs, where it could be torchscript, read alike.
TRANSFORMERS = "transformers"


def load(model: ModelHandle, dtype: str, device: str) -> Loaded:
    """The model's one loading step (or, loaded on the CPU already, its move to the device), by
    glueperf/models.py."""
    before = model.loaded_on_cpu
    network, tokenizer, loaded = (
        before.to(device)
        if before is not None
        else load_model(model.model_dir, dtype, device, model.trust_remote_code)
    )
    record = results.Loading(model_format=TRANSFORMERS, **loaded)
    return Loaded(network, tokenizer, record, before.load_s if before is not None else 0.0)


def evaluate(
    dataset: ReadData,
    model: ModelHandle,
    settings: Settings | None = None,
    started: EarlyStart | None = None,
    done_with_device: Callable[[], None] | None = None,
) -> Evaluation:
    """Evaluate ``model`` on ``dataset`` (as ``read_data`` read it) and measure it: the offline
    pass (its time, memory and, on a GPU, energy), then single-request latency, with the same
    model on the same device. ``started``: CUDA's start, begun before (on that device).
    ``done_with_device`` is called once the device's last work is done, before the scoring and
    the predictions table, which need only the host (an evaluation job lets go of its device
    there)."""
    settings = settings or Settings()
    data, spec = dataset.data, dataset.spec
    device = resolve_device(settings.device)
    if started is not None and started.device != device:
        raise ValueError(f"CUDA was started on {started.device}, the evaluation runs on {device}")
    start_tokenizer_early(device, settings.dtype, len(data.texts))
    timer = PhaseTimer(device)
    with PeakMemory() as memory:
        device_start_s = started.seconds() if started is not None else start_device(device)
        reset_gpu_peaks(device)
        with timer.phase("model_load_s"):
            loaded = load(model, settings.dtype, device)
        mapping = check_task_fits(
            loaded.model, data, spec, dataset.path, (model.name, dataset.name)
        )
        engine = Engine(loaded.model, loaded.tokenizer, device, capped(settings.batching, loaded))
        engine.expect(len(data.texts))
        with timer.phase("warmup_s"):
            warm_up(engine, pairs=data.pairs is not None)
        result, energy = offline_pass(engine, data, timer, settings.energy)
        gpu_allocated_mb, gpu_reserved_mb = gpu_peaks_mb(device)
        latency = measure_latency(engine, data.texts, data.pairs, settings.latency)
        tokenizer_process_peak = engine.close()
    if done_with_device is not None:
        done_with_device()
    outputs = result.predictions if mapping is None else mapping.apply(result.predictions)
    n_classes = None if mapping is None else len(data.label_names or mapping.to_dataset)
    seconds, n_rows = timer.seconds, len(data.texts)
    return Evaluation(
        workload=results.Workload(
            n_rows=n_rows,
            text_input="pair" if data.pairs is not None else "single",
            label_mapping="" if mapping is None else mapping.description,
        ),
        quality=results.Quality(**task_scores(data.labels, outputs, spec.metrics, n_classes)),
        timing=results.Timing(
            inference_time_s=seconds["inference_time_s"],
            throughput_eps=n_rows / seconds["inference_time_s"],
            tokenize_s=result.tokenize_s,
            forward_s=seconds["inference_time_s"] - (0.0 if engine.overlap else result.tokenize_s),
            read_s=dataset.read_s,
            device_start_s=device_start_s,
            model_load_s=seconds["model_load_s"] + loaded.before_s,
            warmup_s=seconds["warmup_s"],
            startup_s=dataset.startup_s,
        ),
        memory=results.Memory(
            peak_rss_mb=memory.peak_rss_mb + tokenizer_process_peak / MIB,
            gpu_peak_allocated_mb=gpu_allocated_mb,
            gpu_peak_reserved_mb=gpu_reserved_mb,
        ),
        work=work_of(result, n_rows, engine.batching.max_length),
        latency=latency_fields(latency),
        energy=energy_fields(energy),
        setup=setup_of(device, engine.batching),
        loading=loaded.record,
        predictions=predictions_table(data, outputs, mapping, result),
    )


def capped(batching: Batching, loaded: Loaded) -> Batching:
    """The batching with max_length capped at what the model can take."""
    limit = token_limit(loaded.model, loaded.tokenizer, batching.max_length)
    return Batching(**{**asdict(batching), "max_length": min(batching.max_length, limit)})


def offline_pass(engine: Engine, data: Dataset, timer: PhaseTimer, settings: EnergySettings):
    """(the offline pass's result, its GPU energy): every row in large batches, timed as
    ``inference_time_s``; repeated, untimed, where the energy counter needs a longer window."""
    meter = open_meter(str(engine.device), settings)

    def offline() -> EngineResult:
        with timer.phase("inference_time_s"):
            return engine.run(data.texts, data.pairs, progress=True)

    return meter.measure(offline, len(data.texts), again=lambda: engine.run(data.texts, data.pairs))


def work_of(result: EngineResult, n_rows: int, max_length: int) -> results.Work:
    return results.Work(
        n_tokens=int(result.token_counts.sum()),
        padded_tokens=result.padded_tokens,
        n_truncated=result.n_truncated,
        truncated_pct=truncated_pct(result.n_truncated, n_rows, max_length),
        n_batches=result.n_batches,
        oom_retries=result.oom_retries,
        batch_tokens_final=result.batch_tokens,
    )


def setup_of(device: str, batching: Batching) -> results.Setup:
    from importlib.metadata import version

    import torch

    return results.Setup(
        device=device,
        device_name=device_name(device),
        torch_threads=torch.get_num_threads(),
        tokenizer_threads=tokenizer_threads(),
        batch_tokens=batching.batch_tokens,
        max_batch_size=batching.max_batch_size,
        max_length=batching.max_length,
        torch_version=torch.__version__,
        transformers_version=version("transformers"),
    )


def predictions_table(data: Dataset, outputs, mapping, result: EngineResult) -> dict:
    """The predictions file's columns: per row its idx, label, prediction (the dataset's label
    id) and probability, or for regression the predicted score, and its tokens."""
    columns = {"idx": data.idx, "label": data.labels}
    if mapping is None:  # regression: the predicted score
        columns["score"] = outputs
    else:
        columns["prediction"] = outputs
        columns["probability"] = result.probabilities
    columns["n_tokens"] = result.token_counts
    return columns


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


def check_task_fits_before_loading(model: ModelHandle, dataset: ReadData):
    """``check_task_fits`` on the model's config.json, before the model is loaded: an evaluation
    runs it before it claims its device."""
    from types import SimpleNamespace

    from glueperf.models import model_dir_config

    config = SimpleNamespace(config=model_dir_config(Path(model.model_dir)))
    check_task_fits(config, dataset.data, dataset.spec, dataset.path, (model.name, dataset.name))


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


# The values of TOKENIZERS_PARALLELISM that turn the Rust tokenizer's parallelism off.
PARALLELISM_OFF = ("", "off", "false", "f", "no", "n", "0")


def tokenizer_threads(env: Mapping[str, str] | None = None) -> int:
    """The threads of the Rust tokenizer (Hugging Face tokenizers: rayon's pool, sized once from
    RAYON_NUM_THREADS): 1 where TOKENIZERS_PARALLELISM turns its parallelism off, else
    RAYON_NUM_THREADS where set, else (rayon's default) one per core this process may run on."""
    env = os.environ if env is None else env
    if env.get("TOKENIZERS_PARALLELISM", "true").strip().lower() in PARALLELISM_OFF:
        return 1
    if env.get("RAYON_NUM_THREADS", "").strip().isdigit() and int(env["RAYON_NUM_THREADS"]):
        return int(env["RAYON_NUM_THREADS"])
    return cores_available()


def cores_available() -> int:
    """The cores this process may run on (rayon's default pool size)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
