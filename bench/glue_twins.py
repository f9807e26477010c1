"""BERT-base twins of config/glue.yaml's models, and that config pointed at them and local files.

    python bench/glue_twins.py TOKENIZER_DIR DATA_DIR OUT_DIR CONFIG_OUT [--tiny]

For timing runs without the Hub: each model of config/glue.yaml whose datasets are all in
DATA_DIR (``DATA_DIR/<task>/<split>.parquet``, as ../shared holds them) becomes a BERT-base
classifier with random weights (seeded), the shape and cost of the fine-tuned checkpoint, with
its task's classes named as GLUE names them (one output for STS-B) and the tokenizer of
TOKENIZER_DIR. CONFIG_OUT is config/glue.yaml with those models' sources and the datasets' paths
made local; models without their files are left out. Scores mean nothing; predictions must
still be identical from run to run. --tiny makes 2-layer twins of hidden size 64 instead, the
same run's shape at a cost a CPU evaluates in seconds (a GLUE-shaped run's fixed costs, timed on
the CPU).
"""

import argparse
import sys
from pathlib import Path

import torch
import yaml
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from glueperf.tasks import GLUE_TASKS  # noqa: E402


def local_file(data_dir: Path, hub_path: str) -> Path:
    """hf://datasets/nyu-mll/glue/mnli/validation_matched-00000-of-00001.parquet ->
    DATA_DIR/mnli/validation_matched.parquet"""
    task, name = hub_path.split("/")[-2:]
    return data_dir / task / f"{name.split('-')[0]}.parquet"


# BertConfig's sizes for --tiny (BERT-base's are its defaults).
TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
}


def twin(task_name: str, tokenizer, directory: Path, tiny: bool = False) -> None:
    labels = GLUE_TASKS[task_name].label_names
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        num_labels=1 if labels is None else len(labels),
        attn_implementation="sdpa",
        **(TINY if tiny else {}),
    )
    if labels is None:
        config.problem_type = "regression"
    else:
        config.id2label = dict(enumerate(labels))
        config.label2id = {name: i for i, name in enumerate(labels)}
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def main(tokenizer_dir: str, data_dir: str, out_dir: str, config_out: str, tiny: bool) -> None:
    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config" / "glue.yaml").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    datasets = {}
    for name, dataset in config["datasets"].items():
        path = local_file(Path(data_dir), dataset["path"])
        if path.is_file():
            datasets[name] = {**dataset, "path": str(path.resolve())}
    models = {}
    for name, model in config["models"].items():
        if not all(dataset in datasets for dataset in model["datasets"]):
            print(f"left out {name}: no local file for {model['datasets']}")
            continue
        directory = Path(out_dir) / name
        twin(datasets[model["datasets"][0]]["glue_task"], tokenizer, directory, tiny)
        models[name] = {**model, "source": str(directory.resolve())}
    used = {dataset for model in models.values() for dataset in model["datasets"]}
    config["models"] = models
    config["datasets"] = {name: spec for name, spec in datasets.items() if name in used}
    Path(config_out).write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"{len(models)} twins in {out_dir}, {len(used)} datasets; config in {config_out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("tokenizer_dir", "data_dir", "out_dir", "config_out"):
        parser.add_argument(name)
    parser.add_argument("--tiny", action="store_true", help="2-layer twins, for the CPU")
    args = parser.parse_args()
    main(args.tokenizer_dir, args.data_dir, args.out_dir, args.config_out, args.tiny)
