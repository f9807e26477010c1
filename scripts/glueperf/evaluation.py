"""One evaluation: a model on a dataset file -> one metrics row and a predictions table.

What the reported figures measure (also in the README):
- ``inference_time_s`` ("Inference Time (seconds)"): wall-clock seconds from the list of texts to
  predictions on the host: tokenization plus all forward passes, the device synchronized at both
  ends. Excludes reading the file, loading the model and one small warm-up batch, each reported
  on its own (``read_s``, ``model_load_s``, ``warmup_s``), and the process's start-up and imports
  before the evaluation begins (``startup_s``). On CUDA, tokenization of the next chunk
  overlaps the forward passes, so ``tokenize_s`` + ``forward_s`` can exceed it.
- ``peak_rss_mb`` ("Memory Usage (MB)"): peak resident set size of the evaluation process over
  its whole life (imports, data, model, inference), in MiB, from the kernel's high-water mark and
  a 10 ms sampler. GPU memory is reported apart: ``gpu_peak_allocated_mb`` / ``_reserved_mb``.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import time
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from glueperf import TRUNCATED_WARN_PCT, GlueperfError
from glueperf.engine import Batching, Engine
from glueperf.fetch import OFFLINE_ADVICE, is_hub_model
from glueperf.labels import LabelMapping, map_labels, model_class_names
from glueperf.measure import PeakMemory, PhaseTimer, gpu_peaks_mb, reset_gpu_peaks
from glueperf.metrics import task_scores
from glueperf.tasks import DatasetSpec
from glueperf.validation import NO_LABEL, Dataset, load_dataset

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


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


# A saved tokenizer has at least one of these (fast tokenizer, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "spm.model",
    "tokenizer.model",
)
CLASSIFIER_SUFFIX = "ForSequenceClassification"


# Weights files as transformers looks for them: safetensors (plain tensors) before PyTorch's
# pickle format, which can hold code and is only ever read with torch.load(weights_only=True).
SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
SAFETENSORS, PICKLE = "safetensors", "pytorch-pickle"
TRUST_KEY = "models.<name>.trust_remote_code"


def load_model(
    source: str,
    revision: str | None,
    dtype: str,
    device: str,
    trust_remote_code: bool = False,
):
    """Model and tokenizer from a Hub id or a local directory in Hugging Face format, and what
    the metrics row records of how they were loaded (``weights_format``, ``trust_remote_code``).

    Whatever is wrong (no such directory, no tokenizer, not a sequence classifier, a classifier
    head missing from the weights, the Hub unreachable, code of the model's own that the config
    does not trust, a pickle that holds more than tensors) is a GlueperfError naming the source.
    """
    import torch

    if dtype not in DTYPES:
        raise GlueperfError(f"evaluation.dtype must be one of {DTYPES}, got '{dtype}'")
    options = {
        "dtype": getattr(torch, dtype),
        "attn_implementation": "sdpa",
        # Explicit, never None: None makes transformers ask on standard input.
        "trust_remote_code": bool(trust_remote_code),
        "weights_only": True,
        # Weights whose shape differs from the config come back in the loading info, which
        # _check_classifier names, rather than as transformers' RuntimeError and report.
        "ignore_mismatched_sizes": True,
    }
    if Path(source).is_dir():  # a revision names a Hub commit; a directory is used as it is
        directory = Path(source)
        _check_model_dir(directory, trust_remote_code)
        weights_format = _weights_format(directory)
        if weights_format:  # the same choice for transformers, stated rather than left to it
            options["use_safetensors"] = weights_format == SAFETENSORS
        model, tokenizer, info = _loading_errors(source, _from_pretrained, source, options)
    elif not is_hub_model(source):
        raise GlueperfError(f"model '{source}': no such directory ({Path(source).absolute()})")
    else:
        model, tokenizer, info = _from_hub(source, revision, options)
        weights_format = _hub_weights_format(source, revision)
    _check_classifier(source, model, tokenizer, info)
    if weights_format == PICKLE:
        log.warning(
            "model '%s': weights from a PyTorch pickle file, read with torch.load(weights_only="
            "True), which loads tensors only and refuses anything else; safetensors is safer",
            source,
        )
    loaded = {"weights_format": weights_format or "", "trust_remote_code": bool(trust_remote_code)}
    return model.eval().to(device), tokenizer, loaded


def _weights_format(directory: Path) -> str | None:
    if any((directory / name).is_file() for name in SAFETENSORS_FILES):
        return SAFETENSORS
    if any((directory / name).is_file() for name in PICKLE_FILES):
        return PICKLE
    return None  # transformers says which file it missed


def _hub_weights_format(source: str, revision: str | None) -> str:
    """Which weights a Hub model was loaded from: the files now in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    for name in SAFETENSORS_FILES:
        if isinstance(try_to_load_from_cache(source, name, revision=revision), str):
            return SAFETENSORS
    return PICKLE


def _from_pretrained(source, options, **hub_options):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        source, trust_remote_code=options["trust_remote_code"], **hub_options
    )
    model, info = AutoModelForSequenceClassification.from_pretrained(
        source, output_loading_info=True, **options, **hub_options
    )
    return model, tokenizer, info


def _from_hub(source: str, revision: str | None, options: dict):
    """The local Hugging Face cache first; the Hub only once a quick probe has reached it, since
    the Hub client retries an unreachable server for half a minute per file."""
    from huggingface_hub import constants

    hub_options = {"revision": revision} if revision else {}
    try:
        return _from_pretrained(source, options, local_files_only=True, **hub_options)
    except (OSError, ValueError):  # not (all) in the cache
        pass
    not_cached = f"model '{source}': not in the local Hugging Face cache"
    if constants.HF_HUB_OFFLINE:
        raise GlueperfError(f"{not_cached}, and HF_HUB_OFFLINE is set. {OFFLINE_ADVICE}")
    problem = hub_unreachable()
    if problem:
        raise GlueperfError(
            f"{not_cached}, and the Hugging Face Hub ({constants.ENDPOINT}) is unreachable "
            f"({problem}). {OFFLINE_ADVICE}"
        )
    return _loading_errors(source, _from_pretrained, source, options, **hub_options)


def hub_unreachable() -> str | None:
    """Why the Hub cannot be reached (one request, no retries, the client's proxy settings and
    HF_HUB_ETAG_TIMEOUT), or None when it answers at all."""
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except Exception as error:  # whatever the transport raises: the Hub did not answer
        return f"{type(error).__name__}: {_one_line(error)}"
    return None


def _loading_errors(source: str, load, *args, **kwargs):
    """``load(*args, **kwargs)`` with transformers' and the Hub client's errors made one line."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return load(*args, **kwargs)
    except pickle.UnpicklingError as error:
        raise GlueperfError(
            f"model '{source}': its weights are a pickle that holds more than tensors, and "
            "torch.load(weights_only=True) refused it (loading it fully could run code of the "
            f"file's own): {_pickle_reason(error)}. Save the weights as safetensors."
        ) from error
    except (OSError, ValueError, KeyError, HfHubHTTPError) as error:
        raise GlueperfError(f"model '{source}' could not be loaded: {_one_line(error)}") from error
    except Exception as error:
        if type(error).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2"):
            raise GlueperfError(
                f"model '{source}': the Hugging Face Hub is unreachable ({_one_line(error)}). "
                f"{OFFLINE_ADVICE}"
            ) from error
        raise


def _pickle_reason(error: BaseException) -> str:
    """torch's own reason in its long message, e.g. 'unsupported GLOBAL posix.system ...'."""
    found = re.search(r"(Trying to load|Unsupported)[^\n]*", str(error))
    return found.group(0).rstrip(".") if found else _one_line(error)[:300]


def _check_model_dir(directory: Path, trust_remote_code: bool = False) -> None:
    """What a model directory must hold, named before transformers would stumble on it."""
    if not (directory / "config.json").is_file():
        raise GlueperfError(
            f"model '{directory}': no config.json in the directory, so it is not a model saved "
            "in Hugging Face format (model.save_pretrained)"
        )
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise GlueperfError(f"model '{directory}': config.json unreadable ({error})") from error
    _check_architectures(str(directory), config.get("architectures"))
    if not trust_remote_code:
        _check_no_own_code(directory, config)
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise GlueperfError(
            f"model '{directory}': no tokenizer in the directory (none of "
            f"{', '.join(TOKENIZER_FILES)}); save it beside the model with "
            "tokenizer.save_pretrained"
        )


def _check_no_own_code(directory: Path, config: dict) -> None:
    """A model or tokenizer that names code of its own (``auto_map``) is refused unless trusted:
    transformers would run it, or quietly load its own class of the same model type instead."""
    named = {"config.json": config.get("auto_map")}
    tokenizer_config = directory / "tokenizer_config.json"
    if tokenizer_config.is_file():
        # An unreadable tokenizer config is named by transformers itself.
        with suppress(OSError, ValueError, KeyError, TypeError):
            named["tokenizer_config.json"] = json.loads(tokenizer_config.read_text())["auto_map"]
    named = {file: auto_map for file, auto_map in named.items() if auto_map}
    if named:
        shown = "; ".join(f"{file} auto_map {auto_map}" for file, auto_map in named.items())
        raise GlueperfError(
            f"model '{directory}' comes with code of its own ({shown}); glueperf does not run a "
            f"model's own code unless the config sets `{TRUST_KEY}: true` for this model (do "
            "that only for code you have read)"
        )


def _check_architectures(source: str, architectures: list[str] | None) -> None:
    if architectures and not any(a.endswith(CLASSIFIER_SUFFIX) for a in architectures):
        raise GlueperfError(
            f"model '{source}' is a {', '.join(architectures)} (config.json architectures), not "
            f"a sequence classifier (*{CLASSIFIER_SUFFIX}): it has no trained classification head"
        )


def _check_classifier(source: str, model, tokenizer, info: dict) -> None:
    """A sequence classifier with trained head and a tokenizer with a vocabulary: transformers
    would otherwise run a fresh random head, or a tokenizer that knows no word, silently."""
    _check_architectures(source, getattr(model.config, "architectures", None))
    mismatched = sorted(info.get("mismatched_keys") or [])
    if mismatched:
        shown = ", ".join(
            f"{key} (checkpoint {list(saved)}, config {list(expected)})"
            for key, saved, expected in mismatched[:5]
        )
        raise GlueperfError(
            f"model '{source}': the shapes of weights {shown} do not fit its config.json; does "
            "num_labels / id2label give another number of classes than the weights have?"
        )
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" * (len(missing) > 5))
        raise GlueperfError(
            f"model '{source}': weights {shown} are missing from the checkpoint (or do not fit "
            "it), so they would be random; is it a fine-tuned sequence classifier?"
        )
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise GlueperfError(
            f"model '{source}': its tokenizer has no vocabulary besides special tokens "
            f"({len(tokenizer)} tokens); the tokenizer files are missing or empty"
        )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def warm_up(engine: Engine, pairs: bool) -> None:
    """One tiny batch so that CUDA context, kernels and allocator set-up are not timed."""
    texts = ["warm up the kernels", "a second, longer sentence to warm up the kernels"]
    engine.run(texts, texts[::-1] if pairs else None)


def evaluate(
    model_dir: str,
    data_file: str,
    spec: DatasetSpec | None = None,
    device: str = "auto",
    dtype: str = "float32",
    batching: Batching | None = None,
    names: tuple[str, str] = ("model", "dataset"),
    trust_remote_code: bool = False,
) -> tuple[dict, pd.DataFrame]:
    """Evaluate the model in ``model_dir`` on ``data_file`` and measure it.

    Returns the measured fields of the metrics row (quality, times, memory, sizes, what it ran
    on) and the predictions table; the caller adds who and what was evaluated (names, sources,
    provenance). ``names`` (model, dataset) only make error messages name the config entries.
    """
    import torch
    import transformers

    # Interpreter start and imports, before any of our work: part of every job's fixed cost.
    startup_s = time.time() - psutil.Process().create_time()
    spec = spec or DatasetSpec()
    batching = batching or Batching()
    device = resolve_device(device)
    timer = PhaseTimer(device)
    with PeakMemory() as memory:
        with timer.phase("read_s"):
            data = load_dataset(data_file, spec)
        reset_gpu_peaks(device)
        with timer.phase("model_load_s"):
            model, tokenizer, loaded = load_model(model_dir, None, dtype, device, trust_remote_code)
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
        "model_load_s": seconds["model_load_s"],
        "read_s": seconds["read_s"],
        "startup_s": startup_s,
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
        "transformers_version": transformers.__version__,
        **loaded,
    }
    columns = {"idx": data.idx, "label": data.labels}
    if mapping is None:  # regression: the predicted score
        columns["score"] = outputs
    else:
        columns["prediction"] = outputs
        columns["probability"] = result.probabilities
    columns["n_tokens"] = result.token_counts
    return row, pd.DataFrame(columns)


def check_task_fits(model, data: Dataset, spec: DatasetSpec, path, names) -> LabelMapping | None:
    """A regression model for a regression dataset, a classifier for a classification one, and
    the classifier's classes matched to the dataset's labels (None for regression)."""
    model_name, dataset_name = names
    n_outputs = model.config.num_labels
    model_regression = n_outputs == 1 or model.config.problem_type == "regression"
    if model_regression != spec.regression:
        model_kind = (
            "a regression model (one output, a score)"
            if model_regression
            else f"a classifier of {n_outputs} classes"
        )
        dataset_kind = (
            "a regression dataset (scores)"
            if spec.regression
            else f"a classification dataset (labels {list(data.label_names or [])})"
        )
        raise GlueperfError(
            f"model '{model_name}' is {model_kind}, but dataset '{dataset_name}' ({path}) is "
            f"{dataset_kind}: check the model's datasets, or the dataset's glue_task / regression"
        )
    if spec.regression:
        return None
    mapping = map_labels(
        model_name,
        model_class_names(model.config.id2label, n_outputs),
        dataset_name,
        data.label_names,
        spec.label_map,
    )
    check_labels_fit(data.labels, len(mapping.to_dataset), path, spec.label_column, model_name)
    return mapping


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


# A tokenizer that knows no limit reports a huge sentinel (int(1e30)) as model_max_length.
NO_TOKENIZER_LIMIT = 1_000_000


def token_limit(model, tokenizer, default: int) -> int:
    """The most tokens a sentence may have: the tokenizer's limit where it states one (RoBERTa's
    config says 514 positions but two are reserved), else the model's positions."""
    stated = getattr(tokenizer, "model_max_length", None)
    if stated and stated < NO_TOKENIZER_LIMIT:
        return int(stated)
    return getattr(model.config, "max_position_embeddings", None) or default


def check_labels_fit(labels, n_classes: int, path, column: str, model_source: str) -> None:
    """Every label must be a class the model can predict (or -1)."""
    labeled = labels != NO_LABEL
    outside = np.flatnonzero(labeled & (labels >= n_classes))
    if len(outside):
        from glueperf.validation import DatasetError

        values = sorted(set(labels[outside].tolist()))
        raise DatasetError(
            path,
            f"labels {values[:10]} are outside the {n_classes} classes of model "
            f"'{model_source}' (ids 0..{n_classes - 1})",
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
