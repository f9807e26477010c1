"""Loading a model: a local directory in Hugging Face format -> model, tokenizer, and what the
metrics row records of how they were loaded. Hub models are fetched into a local directory by
the fetch rules first (glueperf/fetch.py), so loading never goes to the network.

Everything that is wrong with a model directory is named before, or instead of, transformers'
own tracebacks: no such directory, no config or tokenizer, not a sequence classifier, a
classifier head missing from the weights or of another size, code of the model's own that the
config does not trust, a pickle that holds more than tensors.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from glueperf import GlueperfError, one_line

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")

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
# The attention every model is built with (the engine answers its padding checks: engine.py), its
# stand-in included, which must launch the model's kernels.
ATTENTION = "sdpa"


def load_model(model_dir: str, dtype: str, device: str, trust_remote_code: bool = False):
    """Model and tokenizer from the local directory ``model_dir`` (Hugging Face format), and
    what the metrics row records of how they were loaded (``weights_format``,
    ``trust_remote_code``).

    Whatever is wrong (see the module docstring) is a GlueperfError naming the directory.
    """
    model, tokenizer, loaded = _load_on_cpu(model_dir, dtype, trust_remote_code)
    return aligned(model.to(device)), tokenizer, loaded


def _load_on_cpu(model_dir: str, dtype: str, trust_remote_code: bool):
    """``load_model``'s model on the CPU, its weights where transformers left them."""
    import torch

    if dtype not in DTYPES:
        raise GlueperfError(f"evaluation.dtype must be one of {DTYPES}, got '{dtype}'")
    directory = Path(model_dir)
    config = model_dir_config(directory)
    _check_architectures(model_dir, config.get("architectures"))
    if not trust_remote_code:
        _check_no_own_code(directory, config)
    options = {
        "dtype": getattr(torch, dtype),
        "attn_implementation": ATTENTION,
        # Explicit, never None: None makes transformers ask on standard input.
        "trust_remote_code": bool(trust_remote_code),
        "weights_only": True,
        # Weights whose shape differs from the config come back in the loading info, which
        # _check_classifier names, rather than as transformers' RuntimeError and report.
        "ignore_mismatched_sizes": True,
    }
    weights_format = _weights_format(directory)
    if weights_format:  # the same choice for transformers, stated rather than left to it
        options["use_safetensors"] = weights_format == SAFETENSORS
    model, tokenizer, info = _loading_errors(model_dir, options)
    _check_classifier(model_dir, model, tokenizer, info)
    loaded = {"weights_format": weights_format or "", "trust_remote_code": bool(trust_remote_code)}
    warn_of_pickle(model_dir, loaded)
    return model.eval(), tokenizer, loaded


@dataclass
class LoadedOnCpu:
    """A model loaded on the CPU before its device is claimed (``load_on_cpu``), for a device
    that is not the CPU: ``to(device)`` then only moves it there. ``load_s``: the seconds the
    loading took."""

    model: object
    tokenizer: object
    loaded: dict
    load_s: float

    def to(self, device: str):
        """(model, tokenizer, loaded) on ``device``, as ``load_model`` gives them."""
        return aligned(self.model.to(device)), self.tokenizer, self.loaded


def load_on_cpu(model_dir: str, dtype: str, trust_remote_code: bool = False) -> LoadedOnCpu:
    """``load_model`` on the CPU, timed: an evaluation on a GPU does it before it claims the GPU
    (reading the files and building the model need no device), and moves the model to the GPU
    once it holds it."""
    started = time.perf_counter()
    model, tokenizer, loaded = _load_on_cpu(model_dir, dtype, trust_remote_code)
    return LoadedOnCpu(model, tokenizer, loaded, time.perf_counter() - started)


def stand_in(model_dir: str, dtype: str, device: str, trust_remote_code: bool = False):
    """The model's architecture with one layer and fresh weights, built on ``device`` from the
    directory's config alone (no weights read): the same kernels as the model on a forward pass,
    for a warm-up before the model itself is there (glueperf/evaluation.py: ``EarlyStart``)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=bool(trust_remote_code))
    config.num_hidden_layers = 1  # DistilBERT's n_layers and the like answer to this name too
    # No dtype for transformers: it would set torch's default dtype, which is the process's, not
    # the thread's, while the evaluation's own thread may be loading the model under its dtype.
    # The device, a context of this thread alone, and the cast below leave the other alone.
    config.dtype = None
    with torch.device(device):
        model = AutoModelForSequenceClassification.from_config(
            config, attn_implementation=ATTENTION, trust_remote_code=bool(trust_remote_code)
        )
    return model.to(getattr(torch, dtype)).eval()


def prepare_loading() -> None:
    """Build what transformers builds on a process's first ``from_pretrained`` whatever the
    model: its table of checkpoint conversions, about 900 regular expressions over every
    architecture it knows (0.05 s on a CPU). The fork server does it once for every evaluation
    forked from it (glueperf/infra/forkserver.py); a transformers without the table is left as
    it is."""
    try:
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping
    except ImportError:
        return
    get_checkpoint_conversion_mapping(None)  # builds the whole table, whatever the key


def modeling_module(model_dir) -> str | None:
    """The transformers module that defines a model directory's architecture (e.g.
    transformers.models.bert.modeling_bert), for the fork server to import once for every
    evaluation of that architecture; None for a model that brings code of its own, or whose
    type transformers does not know."""
    try:
        config = model_dir_config(Path(model_dir))
    except GlueperfError:
        return None
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or config.get("auto_map"):
        return None
    from transformers.models.auto.configuration_auto import (
        CONFIG_MAPPING_NAMES,
        model_type_to_module_name,
    )

    if model_type not in CONFIG_MAPPING_NAMES:
        return None
    name = model_type_to_module_name(model_type)
    return f"transformers.models.{name}.modeling_{name}"


# Bytes to which torch's CPU allocator aligns every tensor it allocates.
ALIGNMENT = 64


def aligned(model):
    """The model with every weight on the CPU in memory of its own, aligned as torch allocates
    it. transformers leaves weights where they lie in the file it maps (safetensors), at any
    offset; a matrix product's rounding can depend on its operands' alignment (which SIMD loads
    and remainder loops a CPU's BLAS takes), so the same model gave other last bits than its
    trace, whose weights are allocated, on some CPUs. Aligned alike, both run the same kernels
    on the same bytes, on every CPU."""
    import itertools

    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.device.type == "cpu" and tensor.data_ptr() % ALIGNMENT:
            tensor.data = tensor.data.clone()
    return model


def warn_of_pickle(model_dir, loaded: dict) -> None:
    """Said in the log of every job whose model's weights came from a pickle file."""
    if loaded["weights_format"] == PICKLE:
        log.warning(
            "model '%s': weights from a PyTorch pickle file, read with torch.load(weights_only="
            "True), which loads tensors only and refuses anything else; safetensors is safer",
            model_dir,
        )


def _weights_format(directory: Path) -> str | None:
    if any((directory / name).is_file() for name in SAFETENSORS_FILES):
        return SAFETENSORS
    if any((directory / name).is_file() for name in PICKLE_FILES):
        return PICKLE
    return None  # transformers says which file it missed


def _from_pretrained(model_dir: str, options: dict):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            model_dir, trust_remote_code=options["trust_remote_code"]
        )
    except Exception as error:  # the Rust parser's errors are plain Exceptions
        raise tokenizer_error(Path(model_dir), error) from error
    model, info = AutoModelForSequenceClassification.from_pretrained(
        model_dir, output_loading_info=True, **options
    )
    return model, tokenizer, info


# The tokenizer's files that are JSON, in the order transformers reads them.
TOKENIZER_JSON_FILES = ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json")


def tokenizer_error(directory: Path, error: Exception) -> GlueperfError:
    """Why a tokenizer could not be loaded, naming the file at fault: one that is not JSON, or
    a tokenizer.json that the tokenizers library (Rust) refuses, with the parser's position."""
    for name in TOKENIZER_JSON_FILES:
        if not (directory / name).is_file():
            continue
        try:
            json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as bad:
            return GlueperfError(f"model '{directory}': {name} is not valid JSON ({one_line(bad)})")
    if (directory / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        try:
            Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as bad:
            return GlueperfError(
                f"model '{directory}': tokenizer.json is refused by the tokenizers library "
                f"({one_line(bad)}); it was not written by a tokenizer's save_pretrained, or by a "
                "newer tokenizers than this one"
            )
    return GlueperfError(
        f"model '{directory}': its tokenizer could not be loaded: {one_line(error)}"
    )


def _loading_errors(model_dir: str, options: dict):
    """``_from_pretrained`` with transformers' errors made one line."""
    try:
        return _from_pretrained(model_dir, options)
    except pickle.UnpicklingError as error:
        raise GlueperfError(
            f"model '{model_dir}': its weights are a pickle that holds more than tensors, and "
            "torch.load(weights_only=True) refused it (loading it fully could run code of the "
            f"file's own): {_pickle_reason(error)}. Save the weights as safetensors."
        ) from error
    except (OSError, ValueError, KeyError) as error:
        raise GlueperfError(
            f"model '{model_dir}' could not be loaded: {one_line(error)}"
        ) from error


def _pickle_reason(error: BaseException) -> str:
    """torch's own reason in its long message, e.g. 'unsupported GLOBAL posix.system ...'."""
    found = re.search(r"(Trying to load|Unsupported)[^\n]*", str(error))
    return found.group(0).rstrip(".") if found else one_line(error)[:300]


def model_dir_config(directory: Path) -> dict:
    """The config.json of a directory that holds a model in Hugging Face format and its
    tokenizer; a GlueperfError naming what is missing. Checked at start-up for every model
    (glueperf/preflight.py) and again as a model is loaded."""
    if not directory.is_dir():
        raise GlueperfError(f"model '{directory}': no such directory ({directory.absolute()})")
    if not (directory / "config.json").is_file():
        raise GlueperfError(
            f"model '{directory}': no config.json in the directory, so it is not a model saved "
            "in Hugging Face format (model.save_pretrained)"
        )
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise GlueperfError(f"model '{directory}': config.json unreadable ({error})") from error
    if not isinstance(config, dict):
        raise GlueperfError(f"model '{directory}': config.json holds no mapping of settings")
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise GlueperfError(
            f"model '{directory}': no tokenizer in the directory (none of "
            f"{', '.join(TOKENIZER_FILES)}); save it beside the model with "
            "tokenizer.save_pretrained"
        )
    return config


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


def _check_architectures(model_dir: str, architectures: list[str] | None) -> None:
    if architectures and not any(a.endswith(CLASSIFIER_SUFFIX) for a in architectures):
        raise GlueperfError(
            f"model '{model_dir}' is a {', '.join(architectures)} (config.json architectures), "
            f"not a sequence classifier (*{CLASSIFIER_SUFFIX}): it has no trained classification "
            "head"
        )


def _check_classifier(model_dir: str, model, tokenizer, info: dict) -> None:
    """A sequence classifier with trained head and a tokenizer with a vocabulary: transformers
    would otherwise run a fresh random head, or a tokenizer that knows no word, silently."""
    _check_architectures(model_dir, getattr(model.config, "architectures", None))
    mismatched = sorted(info.get("mismatched_keys") or [])
    if mismatched:
        shown = ", ".join(
            f"{key} (checkpoint {list(saved)}, config {list(expected)})"
            for key, saved, expected in mismatched[:5]
        )
        raise GlueperfError(
            f"model '{model_dir}': the shapes of weights {shown} do not fit its config.json; "
            "does num_labels / id2label give another number of classes than the weights have?"
        )
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" * (len(missing) > 5))
        raise GlueperfError(
            f"model '{model_dir}': weights {shown} are missing from the checkpoint (or do not "
            "fit it), so they would be random; is it a fine-tuned sequence classifier?"
        )
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise GlueperfError(
            f"model '{model_dir}': its tokenizer has no vocabulary besides special tokens "
            f"({len(tokenizer)} tokens); the tokenizer files are missing or empty"
        )


# A tokenizer that knows no limit reports a huge sentinel (int(1e30)) as model_max_length.
NO_TOKENIZER_LIMIT = 1_000_000


def token_limit(model, tokenizer, default: int) -> int:
    """The most tokens a sentence may have: the tokenizer's limit where it states one (RoBERTa's
    config says 514 positions but two are reserved), else the model's positions."""
    stated = getattr(tokenizer, "model_max_length", None)
    if stated and stated < NO_TOKENIZER_LIMIT:
        return int(stated)
    return getattr(model.config, "max_position_embeddings", None) or default
