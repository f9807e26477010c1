"""A model prepared once for evaluations that start fast: its forward pass traced with TorchScript.

Importing transformers costs an evaluation job more than everything else it does on small data
(10 s on a GPU host, against 2.9 s for torch with CUDA; BENCHMARKS.md). Rule prepare_model loads
the model with transformers once per model, on the device kind its evaluations run on, traces
the forward pass for each set of inputs the engine passes (ids; with an attention mask when a
batch is padded; with token types for sentence pairs where the model takes them), checks the
traces against the model itself on padded and unpadded batches of other shapes than traced, and
saves them with the tokenizer and what the evaluation needs of the config. Each evaluation of
that model then loads the traces with torch alone.

Anything that cannot be traced, or whose trace differs from the model, is recorded as such and
its evaluations load the model with transformers as before (``model_format`` in the row says
which): a prepared model only ever changes how long loading takes, never a prediction.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from types import SimpleNamespace

from glueperf import GlueperfError, one_line
from glueperf.checksums import local_checksums

log = logging.getLogger(__name__)

FORMAT = 1
META = "prepared.json"
MODEL_FILE = "model.pt"
TORCHSCRIPT, TRANSFORMERS = "torchscript", "transformers"
# Texts the traces are made and checked with: short and long, so that batches are padded.
PROBE_TEXTS = [
    "a fine film",
    "the plot was not very good and the actors were awful, though the music was nice",
    "it is what it is",
    "an utterly forgettable movie that nobody should see twice, or even once at all",
    "yes",
]


@dataclass
class Source:
    """A model loaded on the CPU for tracing, and its files' checksums; ``error``: why it could
    not be loaded (then nothing else is set)."""

    model_dir: str
    dtype: str
    max_length: int
    model: object = None
    tokenizer: object = None
    loaded: dict | None = None
    checksums: dict | None = None
    load_s: float = 0.0
    error: str | None = None


def load_source(
    model_dir: str,
    dtype: str,
    trust_remote_code: bool = False,
    max_length: int = 512,
    checksums: dict[str, str] | None = None,
) -> Source:
    """Load the model to trace, on the CPU: rule prepare_model does it (transformers' import
    included) before it claims the device, which it then holds for tracing and checking only.
    ``checksums``: the sha256 of the model's files where known (a fetched model's provenance),
    else they are computed here."""
    from glueperf.models import load_model

    started = time.perf_counter()
    source = Source(model_dir, dtype, max_length, checksums=checksums)
    # The files it is made from, for the evaluations' provenance: hashed once per model here,
    # not in every evaluation (most of a second for DistilBERT's 268 MB), in a thread beside the
    # loading (hashlib lets go of the GIL while it hashes).
    hashing = None
    if checksums is None:
        pool = ThreadPoolExecutor(max_workers=1)
        hashing = pool.submit(local_checksums, model_dir)
        pool.shutdown(wait=False)  # the hashing goes on; its result is awaited below
    try:
        source.model, source.tokenizer, source.loaded = load_model(
            model_dir, dtype, "cpu", trust_remote_code
        )
    except GlueperfError as error:
        # A model that cannot be loaded is named by each of its evaluations, in its own log,
        # where the rest of the pipeline's errors about models are: nothing to prepare.
        source.error = f"model '{model_dir}': {error}"
    if hashing is not None and source.error is None:
        source.checksums = hashing.result()  # before the claim: no device waits for it
    source.load_s = time.perf_counter() - started
    return source


def trace_source(source: Source, device: str, out_dir) -> dict:
    """Trace a loaded model on ``device`` (the one claimed for it) into ``out_dir``."""
    import torch

    from glueperf.engine import ChunkTokenizer, model_inputs
    from glueperf.models import token_limit

    if source.error:
        return record_not_prepared(out_dir, source.error)
    started = time.perf_counter()
    model, tokenizer, max_length = source.model.to(device), source.tokenizer, source.max_length
    chunk = ChunkTokenizer(tokenizer, min(max_length, token_limit(model, tokenizer, max_length)))
    chunk.takes_token_types &= "token_type_ids" in model_inputs(model)
    meta = {
        **made_for(source.dtype, device),
        "loaded": source.loaded,
        "config": {
            "num_labels": model.config.num_labels,
            "id2label": {str(k): v for k, v in (model.config.id2label or {}).items()},
            "problem_type": model.config.problem_type,
            "max_position_embeddings": getattr(model.config, "max_position_embeddings", None),
        },
        "tokenizer": {
            "pad_token_id": tokenizer.pad_token_id,
            "model_input_names": list(getattr(tokenizer, "model_input_names", [])),
            "model_max_length": getattr(tokenizer, "model_max_length", None),
        },
        "variants": [],
        "file": MODEL_FILE,
        "model_sha256": source.checksums,
        # Where this job's time went, after its imports: load_s (transformers' import, loading
        # and hashing) before the device was claimed, the rest with it.
        "seconds": {"load_s": source.load_s, "to_device_s": time.perf_counter() - started},
    }
    files = {}
    try:
        sets = input_sets(chunk.takes_token_types)
        started = time.perf_counter()
        saved = _saved(_trace(model, chunk, sets, device))
        meta["seconds"]["trace_s"] = time.perf_counter() - started
        # Checked as the evaluations will load it: some modules trace but do not load back
        # (a model's own code, whose module path TorchScript cannot parse).
        started = time.perf_counter()
        traced = torch.jit.load(io.BytesIO(saved), map_location=device)
        for names in sets:
            _check(model, traced, chunk, names, device)
        meta["seconds"]["check_s"] = time.perf_counter() - started
    except Exception as error:  # any architecture TorchScript cannot trace faithfully
        meta["format_used"] = TRANSFORMERS
        meta["why"] = f"{type(error).__name__}: {one_line(error)}"
        log.warning(
            "model '%s' could not be traced (%s): its evaluations load it with transformers",
            source.model_dir,
            meta["why"],
        )
    else:
        meta["format_used"] = TORCHSCRIPT
        meta["variants"] = [list(names) for names in sets]
        files[MODEL_FILE] = lambda path: path.write_bytes(saved)
        files["tokenizer.json"] = lambda path: path.write_text(tokenizer.backend_tokenizer.to_str())
    return _write(out_dir, meta, files)


def made_for(dtype: str, device: str) -> dict:
    """What a prepared model must have been made for to be used: this format, torch version,
    device kind and dtype."""
    import torch

    return {
        "format": FORMAT,
        "torch_version": torch.__version__,
        "device_type": torch.device(device).type,
        "dtype": dtype,
    }


def prepared_checksums(directory) -> dict[str, str] | None:
    """The sha256 of the model files a prepared directory was made from; None if not recorded."""
    try:
        return json.loads((Path(directory) / META).read_text()).get("model_sha256")
    except (OSError, ValueError):
        return None


def record_not_prepared(out_dir, why: str) -> dict:
    """A prepared.json that sends the evaluations to transformers, which name the problem."""
    log.warning("not prepared: %s", why)
    return _write(out_dir, {"format": FORMAT, "format_used": TRANSFORMERS, "why": why})


def _write(out_dir, meta: dict, files=None) -> dict:
    """``out_dir`` holding prepared.json and ``files`` (name -> writer), whole or not at all."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        for name, write in (files or {}).items():
            write(staging / name)
        (staging / META).write_text(json.dumps(meta, indent=2) + "\n")
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def input_sets(with_token_types: bool) -> list[tuple[str, ...]]:
    """The keyword inputs the engine may pass: ids, with or without a mask and token types."""
    sets = []
    for mask, types in product((False, True), (False, True) if with_token_types else (False,)):
        sets.append(
            ("input_ids",) + (("attention_mask",) if mask else ()) + (("token_type_ids",) * types)
        )
    return sets


def _inputs(chunk, names, device, texts, pairs):
    """Padded tensors for ``names`` from texts (and pairs); unpadded when there is no mask."""
    import numpy as np
    import torch

    from glueperf.engine import pad

    ids, types, _ = chunk(texts, pairs if "token_type_ids" in names else None)
    if "attention_mask" not in names:  # every row as long as the shortest: no padding
        width = min(len(row) for row in ids)
        ids = [row[:width] for row in ids]
        types = [row[:width] for row in types] if types else None
    matrix, mask = pad(ids, chunk.pad_id)
    tensors = {"input_ids": torch.from_numpy(matrix)}
    if "attention_mask" in names:
        tensors["attention_mask"] = torch.from_numpy(
            mask if mask is not None else np.ones_like(matrix)
        )
    if "token_type_ids" in names:
        tensors["token_type_ids"] = torch.from_numpy(pad(types, 0)[0])
    return [tensors[name].to(device) for name in names]


def _saved(module) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()


def method(names) -> str:
    """The traced module's method for these inputs, e.g. ids_mask for ids and a mask."""
    return "_".join(SHORT[name] for name in names)


SHORT = {"input_ids": "ids", "attention_mask": "mask", "token_type_ids": "types"}


def _trace(model, chunk, sets, device):
    """One TorchScript module, the model's weights once, a method per set of inputs."""
    import torch

    class Forward(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def _logits(self, names, inputs):
            return self.model(**dict(zip(names, inputs, strict=True))).logits

    for names in sets:  # ids(input_ids), ids_mask(input_ids, attention_mask), ...
        setattr(
            Forward,
            method(names),
            lambda self, *inputs, names=names: self._logits(names, inputs),
        )
    examples = {
        method(names): tuple(_inputs(chunk, names, device, PROBE_TEXTS[:4], PROBE_TEXTS[1:5]))
        for names in sets
    }
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on constant-folded Python values
        return torch.jit.trace_module(Forward(), examples, check_trace=False)


def _check(model, traced, chunk, names, device) -> None:
    """The trace gives the model's own logits on batches of other sizes than it was traced on."""
    import torch

    for texts, pairs in (
        (PROBE_TEXTS, PROBE_TEXTS[::-1]),
        (PROBE_TEXTS[1:3] * 3, PROBE_TEXTS[2:4] * 3),
        (PROBE_TEXTS[:1], PROBE_TEXTS[4:]),
    ):
        inputs = _inputs(chunk, names, device, texts, pairs)
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            expected = model(**dict(zip(names, inputs, strict=True))).logits
            got = getattr(traced, method(names))(*inputs)
        # Same ops on the same device: equal up to float rounding, and the same classes.
        atol = 1e-5 if expected.dtype == got.dtype == torch.float32 else 1e-2
        if (
            expected.shape != got.shape
            or not torch.allclose(expected, got, rtol=1e-4, atol=atol)
            or (expected.shape[-1] > 1 and not torch.equal(expected.argmax(-1), got.argmax(-1)))
        ):
            raise ValueError(
                f"the trace for inputs {names} differs from the model on a batch of shape "
                f"{tuple(inputs[0].shape)}"
            )


class PreparedModel:
    """The traced forward passes, used by the engine as it uses a transformers model."""

    def __init__(self, directory: Path, meta: dict, device: str):
        import torch

        self.config = SimpleNamespace(
            **{
                **meta["config"],
                "id2label": {int(k): v for k, v in meta["config"]["id2label"].items()},
            }
        )
        self.input_names = {name for names in meta["variants"] for name in names}
        self._module = torch.jit.load(str(directory / meta["file"]), map_location=device)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
        import torch

        given = {"input_ids": input_ids, "attention_mask": attention_mask}
        given["token_type_ids"] = token_type_ids
        names = tuple(name for name, value in given.items() if value is not None)
        # No graph optimizations: the traced ops run as the model's own do, with equal results.
        with torch.jit.optimized_execution(False):
            logits = getattr(self._module, method(names))(*(given[name] for name in names))
        return SimpleNamespace(logits=logits)

    def eval(self):
        return self


class PreparedTokenizer:
    """What the engine reads of a tokenizer, from the prepared tokenizer.json."""

    def __init__(self, directory: Path, meta: dict):
        from tokenizers import Tokenizer

        self.backend_tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        for key, value in meta["tokenizer"].items():
            setattr(self, key, value)


def load_prepared(directory, dtype: str, device: str):
    """(model, tokenizer, loaded) from a prepared directory, or None when its evaluations must
    load the model with transformers: not traceable, or prepared for another torch version,
    device kind or dtype (the reason is logged)."""

    directory = Path(directory)
    try:
        meta = json.loads((directory / META).read_text())
    except (OSError, ValueError):
        log.info("no prepared model in %s: loading it with transformers", directory)
        return None
    wanted = {**made_for(dtype, device), "format_used": TORCHSCRIPT}
    differing = {k: meta.get(k) for k, v in wanted.items() if meta.get(k) != v}
    if differing:
        log.info(
            "prepared model in %s not used (%s; wanted %s): loading it with transformers",
            directory,
            differing,
            {k: wanted[k] for k in differing},
        )
        return None
    try:
        model = PreparedModel(directory, meta, device)
    except Exception as error:  # e.g. a torch without TorchScript (deprecated in torch 2.13)
        log.warning(
            "prepared model in %s could not be loaded (%s): using transformers",
            directory,
            one_line(error),
        )
        return None
    return model, PreparedTokenizer(directory, meta), meta["loaded"]
