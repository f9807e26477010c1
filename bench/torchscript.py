"""A model's TorchScript trace, as the pipeline made and used one until TorchScript was dropped
(BENCHMARKS.md, session 6): for the benchmarks that compare the transformers model with it.

    traced = trace(model, tokenizer, device, directory)   # saved to directory/model.pt ...
    traced = load(directory, model.config, device)        # ... and loaded as an evaluation did

The trace holds one method per set of inputs the engine passes (ids; with an attention mask when
a batch is padded; with token types for sentence pairs where the model takes them), each traced
on padded probe sentences; ``Traced`` runs them as the engine runs a transformers model, without
TorchScript's graph optimizations (its ops are the model's own, with equal results).
"""

from __future__ import annotations

import warnings
from itertools import product
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from glueperf.engine import ChunkTokenizer, model_inputs, pad
from glueperf.models import token_limit

FILE = "model.pt"
PROBE_TEXTS = [
    "a fine film",
    "the plot was not very good and the actors were awful, though the music was nice",
    "it is what it is",
    "an utterly forgettable movie that nobody should see twice, or even once at all",
    "yes",
]
SHORT = {"input_ids": "ids", "attention_mask": "mask", "token_type_ids": "types"}


def method(names) -> str:
    """The traced module's method for these inputs, e.g. ids_mask for ids and a mask."""
    return "_".join(SHORT[name] for name in names)


def input_sets(with_token_types: bool) -> list[tuple[str, ...]]:
    """The keyword inputs the engine may pass: ids, with or without a mask and token types."""
    sets = []
    for mask, types in product((False, True), (False, True) if with_token_types else (False,)):
        sets.append(
            ("input_ids",) + (("attention_mask",) if mask else ()) + (("token_type_ids",) * types)
        )
    return sets


def probe_inputs(chunk: ChunkTokenizer, names, device):
    """Padded tensors of the probe sentences for ``names`` (unpadded without a mask)."""
    ids, types, _ = chunk(PROBE_TEXTS[:4], PROBE_TEXTS[1:5] if "token_type_ids" in names else None)
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
    return tuple(tensors[name].to(device) for name in names)


def trace(model, tokenizer, device: str, directory: Path) -> Traced:
    """``model`` (on ``device``) traced and saved in ``directory``, then loaded back as an
    evaluation loaded it."""
    chunk = ChunkTokenizer(tokenizer, token_limit(model, tokenizer, 512))
    chunk.takes_token_types &= "token_type_ids" in model_inputs(model)
    sets = input_sets(chunk.takes_token_types)

    class Forward(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def _logits(self, names, inputs):
            return self.model(**dict(zip(names, inputs, strict=True))).logits

    for names in sets:
        setattr(
            Forward, method(names), lambda self, *inputs, names=names: self._logits(names, inputs)
        )
    examples = {method(names): probe_inputs(chunk, names, device) for names in sets}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings, TorchScript's deprecation
        module = torch.jit.trace_module(Forward(), examples, check_trace=False)
        directory.mkdir(parents=True, exist_ok=True)
        torch.jit.save(module, str(directory / FILE))
    return load(directory, model.config, device, sets)


class Traced:
    """The traced forward passes, used by the engine as it uses a transformers model."""

    def __init__(self, module, config, sets):
        self._module = module
        self.config = config
        self.input_names = {name for names in sets for name in names}

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
        given = {"input_ids": input_ids, "attention_mask": attention_mask}
        given["token_type_ids"] = token_type_ids
        names = tuple(name for name, value in given.items() if value is not None)
        with torch.jit.optimized_execution(False):
            logits = getattr(self._module, method(names))(*(given[name] for name in names))
        return SimpleNamespace(logits=logits)

    def eval(self):
        return self

    def parameters(self):
        return self._module.parameters()

    def buffers(self):
        return self._module.buffers()


def load(directory: Path, config, device: str, sets=None) -> Traced:
    """A saved trace, loaded on ``device``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(directory / FILE), map_location=device)
    if sets is None:
        sets = [names for names in input_sets(True) if hasattr(module, method(names))]
    return Traced(module, config, sets)
