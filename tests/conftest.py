"""Shared fixtures: paths to ../shared, a tiny model built on the spot, and a workflow runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "scripts"))
from glueperf.example import build_bert, class_names, wordpiece  # noqa: E402

# What a workflow copy needs from the repository (results/ and caches are left behind).
WORKFLOW_PARTS = [
    "Snakefile",
    "rules",
    "scripts",
    "schemas",
    "envs",
    "profiles",
    "report",
    "config.yaml",
]

# The fields of a metrics row that score predictions against labels: empty (NaN), not 0, when a
# dataset has no labels.
QUALITY_FIELDS = [
    "correct",
    "accuracy_pct",
    "accuracy_ci_low_pct",
    "accuracy_ci_high_pct",
    "mcc",
    "macro_f1",
    "f1",
    "score",
    "score_ci_low",
    "score_ci_high",
]

requires_shared = pytest.mark.skipif(
    not (SHARED / "data" / "glue").is_dir(),
    reason=f"needs the shared GLUE data and model at {SHARED} (not present on this machine)",
)

WORDS = (
    "good great fine nice happy love bad awful poor sad hate terrible movie film plot actors "
    "the a was is very not it this and of story"
).split()


def build_tiny_model(
    directory: Path,
    num_labels: int = 2,
    max_position_embeddings: int = 64,
    initializer_range: float = 0.02,
    id2label: dict[int, str] | None = None,
    architecture: str = "bert",
):
    """A random-weight BERT (or RoBERTa) classifier with a real WordPiece tokenizer that also
    encodes sentence pairs, saved in HF format. ``num_labels`` 1 makes a regression head;
    ``id2label`` names the classes (default: transformers' generic LABEL_i).

    With the default ``initializer_range`` the logits are nearly equal and the model predicts
    one class for every sentence; 0.5 spreads them so that predictions vary between sentences.
    """
    if architecture == "roberta":
        return _build_tiny_roberta(directory, num_labels, max_position_embeddings, id2label)
    return build_bert(
        directory,
        WORDS + ["##s", "##ed", "##ing"],
        max_position_embeddings,
        num_labels,
        id2label,
        initializer_range,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _build_tiny_roberta(directory: Path, num_labels, max_position_embeddings, id2label):
    """RoBERTa's conventions: <s> a </s></s> b </s>, no token type ids, positions offset by 2."""
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    backend = wordpiece(vocab, "<unk>", "<s> $A </s>", "<s> $A </s> </s> $B </s>", ("<s>", "</s>"))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=max_position_embeddings,
        model_input_names=["input_ids", "attention_mask"],
    )
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings + 2,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=num_labels,
        initializer_range=0.5,
        **class_names(id2label),
    )
    model = RobertaForSequenceClassification(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 20))) for _ in range(n)]


def write_dataset(path: Path, n: int = 40, seed: int = 0, labeled: bool = True, **columns):
    """A GLUE-style parquet file: sentence (string), label (int64), idx (int32)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sentence": make_sentences(n, seed),
            "label": rng.integers(0, 2, n) if labeled else np.full(n, -1),
            "idx": np.arange(n, dtype=np.int32),
        }
    )
    for name, values in columns.items():
        frame[name] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def varied_model(tmp_path_factory) -> Path:
    """A tiny model whose predictions differ between sentences (both classes occur), so that
    comparing its predictions with a reference catches rows mixed up or padded wrongly."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "varied", initializer_range=0.5)


def reference_predictions(model_dir, sentences, max_length: int | None = None) -> pd.DataFrame:
    """Predictions computed independently of glueperf: transformers' own tokenizer and model,
    one sentence at a time in float32, no padding. Columns: prediction, probability, n_tokens."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    if max_length is None:
        max_length = model.config.max_position_embeddings
    rows = []
    # One thread: a one-sentence batch gains little from more, and threads that wait for each
    # other make the loop many times slower when other processes share the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.inference_mode():
        for sentence in sentences:
            inputs = tokenizer(
                sentence, truncation=True, max_length=max_length, padding=False, return_tensors="pt"
            )
            assert bool(inputs["attention_mask"].all()), "the reference must not be padded"
            probabilities = torch.softmax(model(**inputs).logits[0].float(), dim=-1)
            rows.append(
                {
                    "prediction": int(probabilities.argmax()),
                    "probability": float(probabilities.max()),
                    "n_tokens": int(inputs["input_ids"].shape[1]),
                }
            )
    torch.set_num_threads(threads)
    return pd.DataFrame(rows)


@pytest.fixture(scope="session", autouse=True)
def private_device_locks(tmp_path_factory):
    """The tests' evaluations lock devices in a directory of their own (inherited by every
    Snakemake they start), not in the host's: test runs in other clones on this host would
    otherwise wait for each other's CPU evaluations."""
    from glueperf.infra.devices import LOCK_DIR_VARIABLE

    previous = os.environ.get(LOCK_DIR_VARIABLE)
    os.environ[LOCK_DIR_VARIABLE] = str(tmp_path_factory.mktemp("device-locks"))
    yield
    if previous is None:
        os.environ.pop(LOCK_DIR_VARIABLE, None)
    else:
        os.environ[LOCK_DIR_VARIABLE] = previous


class Workflow:
    """A copy of the pipeline in a temporary directory, with its own config.yaml."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for part in WORKFLOW_PARTS:
            source = REPO / part
            if source.is_dir():
                shutil.copytree(source, root / part, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copy2(source, root / part)

    def write_config(self, config: dict) -> None:
        (self.root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def snakemake(self, *args, check=True, timeout=900) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "snakemake", "--cores", "1", *args]
        result = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def dry_run(self) -> tuple[dict[str, int], list[tuple[str, dict[str, str]]]]:
        """One ``snakemake -n``: its job counts (as planned_jobs) and job list (as
        planned_job_list)."""
        out = self.snakemake("-n").stdout
        return _job_counts(out), _job_list(out)

    def planned_jobs(self) -> dict[str, int]:
        """Rule name -> number of jobs a dry run would execute (``all`` left out)."""
        return _job_counts(self.snakemake("-n", "--quiet", "rules").stdout)

    def planned_job_list(self) -> list[tuple[str, dict[str, str]]]:
        """(rule, wildcards) of every job a dry run would execute (``all`` left out), sorted."""
        return _job_list(self.snakemake("-n").stdout)

    def planned_outputs(self) -> list[tuple[str, list[str]]]:
        """(rule, output files) of every job a dry run would execute (``all`` left out)."""
        return _job_outputs(self.snakemake("-n").stdout)


def _job_counts(out: str) -> dict[str, int]:
    """The "Job stats" table of a dry run's output (printed twice by Snakemake 9: same values)."""
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if (
            len(parts) == 2
            and parts[0].isidentifier()  # not "jobid:" in a job's description
            and parts[1].isdigit()
            and parts[0] not in ("all", "total", "job")
        ):
            jobs[parts[0]] = int(parts[1])
    return jobs


def _job_list(out: str) -> list[tuple[str, dict[str, str]]]:
    """The jobs a dry run's output describes, each "rule NAME:" and its "wildcards:" line."""
    jobs: list[tuple[str, dict[str, str]]] = []
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("rule", "localrule") and words[1].endswith(":"):
            jobs.append((words[1][:-1], {}))
        elif jobs and line.strip().startswith("wildcards:"):
            for pair in line.split(":", 1)[1].split(","):
                key, value = pair.strip().split("=", 1)
                jobs[-1][1][key] = value
    return sorted((job for job in jobs if job[0] != "all"), key=repr)


def tiny_workflow(tmp_path, tiny_model, datasets: dict[str, int]) -> Workflow:
    workflow = Workflow(tmp_path / "workflow")
    workflow.write_config(
        {
            "models": {"tiny": {"source": str(tiny_model)}},
            "datasets": {
                name: {
                    "path": str(write_dataset(tmp_path / f"{name}.parquet", n=n)),
                    "task": "Sentiment analysis",
                }
                for name, n in datasets.items()
            },
            "evaluation": {"device": "cpu"},
        }
    )
    return workflow


def planned_threads(workflow: Workflow, device: str, *args: str) -> set[str]:
    """The threads a dry run gives the evaluation jobs, for ``device``."""
    config = yaml.safe_load((workflow.root / "config.yaml").read_text())
    config["evaluation"]["device"] = device
    workflow.write_config(config)
    out = workflow.snakemake("-n", "--cores", "16", *args).stdout
    threads, rule = set(), None
    for line in out.splitlines():
        if line.split()[:1] in (["rule"], ["localrule"]):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("threads:") and rule == "evaluate_model":
            threads.add(f"{rule}={line.split(':')[1].strip()}")
    return threads


def _job_outputs(out: str) -> list[tuple[str, list[str]]]:
    """The jobs a dry run's output describes, each "rule NAME:" and its "output:" line."""
    jobs: list[tuple[str, list[str]]] = []
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("rule", "localrule") and words[1].endswith(":"):
            jobs.append((words[1][:-1], []))
        elif jobs and line.strip().startswith("output:"):
            jobs[-1][1].extend(path.strip() for path in line.split(":", 1)[1].split(","))
    return sorted((job for job in jobs if job[0] != "all"), key=repr)


@pytest.fixture
def workflow(tmp_path) -> Workflow:
    return Workflow(tmp_path / "workflow")
