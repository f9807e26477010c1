"""What the bad-input tests share: a Hub out of reach, Snakemake run with its own environment,
bad model directories (one kind of fault each) and parquet tables written column by column.
The tests: test_bad_models.py, test_unreachable_hub.py, test_bad_datasets.py,
test_bad_config.py and test_bad_input_pipeline.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import Workflow, make_sentences

MAX_POSITIONS = 64  # the tiny models' maximum length


def closed_port() -> int:
    """A local port where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_hub_env(home: Path) -> dict[str, str]:
    """The Hub unreachable (a closed local port), an empty cache, nothing offline by setting."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env


def run_snakemake(workflow: Workflow, *args, env=None, timeout=600):
    command = [sys.executable, "-m", "snakemake", *args]
    return subprocess.run(
        command, cwd=workflow.root, capture_output=True, text=True, timeout=timeout, env=env
    )


def copy_tokenizer(source: Path, target: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(source / name, target / name)


def make_bad_models(root: Path, tiny_model: Path) -> dict[str, Path]:
    """name -> a model directory that load_model must refuse (one kind of fault each)."""
    import torch
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    small = {"num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    # A BERT encoder without a classification head, with a good tokenizer.
    BertModel(
        BertConfig(vocab_size=40, hidden_size=32, max_position_embeddings=MAX_POSITIONS, **small)
    ).save_pretrained(root / "base_bert")
    copy_tokenizer(tiny_model, root / "base_bert")
    # A GPT-2 language model, with a tokenizer beside it.
    GPT2LMHeadModel(
        GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=40, n_positions=MAX_POSITIONS)
    ).save_pretrained(root / "gpt2_lm")
    copy_tokenizer(tiny_model, root / "gpt2_lm")
    # A good classifier whose tokenizer was not saved.
    (root / "no_tokenizer").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(tiny_model / name, root / "no_tokenizer" / name)
    # A directory with a tokenizer only.
    (root / "no_config").mkdir()
    copy_tokenizer(tiny_model, root / "no_config")
    # Config and tokenizer, but the weights file is missing.
    (root / "no_weights").mkdir()
    shutil.copy2(tiny_model / "config.json", root / "no_weights" / "config.json")
    copy_tokenizer(tiny_model, root / "no_weights")
    return {p.name: p for p in root.iterdir()} | {"no_dir": root / "absent"}


# model -> what load_model's error must say besides the source.
MODEL_FAULTS = {
    "no_dir": ["no such directory"],
    "base_bert": ["is a BertModel", "not a sequence classifier"],
    "gpt2_lm": ["is a GPT2LMHeadModel", "not a sequence classifier"],
    "no_tokenizer": ["no tokenizer in the directory", "tokenizer.json"],
    "no_config": ["no config.json"],
    "no_weights": ["could not be loaded", "model.safetensors"],
}


def write_table(path: Path, **columns) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def texts(n: int, seed: int = 0) -> pa.Array:
    return pa.array(make_sentences(n, seed), pa.string())


def ints(values) -> pa.Array:
    return pa.array(values, pa.int64())
