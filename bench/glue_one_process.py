"""A config's whole experiment (every model on each of its datasets) in one Python process, for
comparison with the pipeline's whole run of the same config (bench/gpu_session.sh glue).

    python bench/glue_one_process.py CONFIG [--loop engine|notebook] [--compare PREDICTIONS]
        [--device cuda] [--json FILE]

One interpreter imports once, loads each model once, then runs each of its datasets:
  --loop engine (the default; the ideal the pipeline is held to): glueperf's engine with the
      settings the pipeline evaluates with (the config's dtype, batch_tokens, max_batch_size and
      max_length, capped by the model's token limit), on the model as the pipeline loads it with
      transformers (glueperf.models.load_model), scored as the pipeline scores it;
  --loop notebook (what a user would write instead): the original notebook's loop
      (bench/reference.py's notebook_loop, sentence pairs as pairs) on the model as the notebook
      loads it (AutoModelForSequenceClassification.from_pretrained(...).to(device)).
Prints the import, each model's load and each dataset's seconds, and the whole run's, counted
from the interpreter's start (as bench/notebook_run.py counts them). --compare takes a finished
run's results/predictions directory: once the run is timed, each dataset's predictions (mapped to
the dataset's labels, as the pipeline writes them) are compared with
PREDICTIONS/<model>/<dataset>.parquet; for --loop engine a class that differs, or a score by
more than SCORE_TOLERANCE, is an error (exit 1).
Datasets must be local files (bench/glue_twins.py writes such a config).
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from interpreter_clock import since_start as since_interpreter_start  # noqa: E402

from glueperf.engine import Batching, Engine  # noqa: E402
from glueperf.evaluation import check_task_fits, resolve_device  # noqa: E402
from glueperf.measure import cuda_synchronize  # noqa: E402
from glueperf.metrics import task_scores  # noqa: E402
from glueperf.models import load_model, token_limit  # noqa: E402
from glueperf.tasks import dataset_spec  # noqa: E402
from glueperf.validation import load_dataset  # noqa: E402
from reference import notebook_loop  # noqa: E402

EVALUATION_KEYS = ("device", "dtype", "batch_tokens", "max_batch_size", "max_length")


def since_start() -> float:
    return since_interpreter_start(STARTED)


def evaluation_settings(config: dict, model: dict) -> dict:
    """The schema's defaults, the config's `evaluation`, then the model's own, as the pipeline
    takes them (rules/common.smk)."""
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    defaults = schema["properties"]["evaluation"]["properties"]
    settings = {key: defaults[key]["default"] for key in EVALUATION_KEYS}
    return {**settings, **config.get("evaluation", {}), **model.get("evaluation", {})}


def model_directory(name: str, source: str) -> str:
    """A local model directory, or where the pipeline fetched a Hub model."""
    for candidate in (Path(source), Path("resources") / "models" / name):
        if (candidate / "config.json").is_file():
            return str(candidate)
    raise SystemExit(f"model '{name}': no local directory at {source} nor resources/models/")


class Runner:
    """Loads models and runs datasets one way (--loop); ``outputs`` are mapped as the pipeline
    maps them."""

    def __init__(self, loop: str, device: str):
        self.loop, self.device = loop, device

    def load(self, directory: str, settings: dict):
        if self.loop == "engine":
            model, tokenizer, _ = load_model(directory, settings["dtype"], self.device)
        else:
            tokenizer = AutoTokenizer.from_pretrained(directory)
            model = AutoModelForSequenceClassification.from_pretrained(directory)
            model = model.to(self.device)
        cuda_synchronize(self.device)
        return model, tokenizer

    def run(self, model, tokenizer, data, settings: dict) -> np.ndarray:
        """The model's raw outputs: class ids, or scores for a one-output model."""
        if self.loop == "notebook":
            outputs = notebook_loop(
                model, tokenizer, data.texts, data.labels, self.device, pairs=data.pairs
            )
        else:
            limit = token_limit(model, tokenizer, settings["max_length"])
            batching = Batching(
                batch_tokens=settings["batch_tokens"],
                max_batch_size=settings["max_batch_size"],
                max_length=min(settings["max_length"], limit),
            )
            outputs = Engine(model, tokenizer, self.device, batching).run(data.texts, data.pairs)
            outputs = outputs.predictions
        cuda_synchronize(self.device)
        return outputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a config file, e.g. bench/glue_twins.py's")
    parser.add_argument("--loop", choices=("engine", "notebook"), default="engine")
    parser.add_argument("--compare", help="a finished run's results/predictions directory")
    parser.add_argument("--device", help="instead of the config's evaluation.device")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    figures = {"loop": args.loop, "imports_s": since_start(), "models": []}
    print(f"imports done: {figures['imports_s']:.2f} s ({args.loop} loop)", flush=True)
    config = yaml.safe_load(Path(args.config).read_text())
    kept = {}  # (model, dtype, dataset) -> what --compare checks, after the timed run
    for name, entry in config["models"].items():
        settings = evaluation_settings(config, entry)
        device = resolve_device(args.device or settings["device"])
        runner = Runner(args.loop, device)
        started = time.perf_counter()
        model, tokenizer = runner.load(model_directory(name, entry["source"]), settings)
        row = {"model": name, "load_s": time.perf_counter() - started, "datasets": []}
        print(f"{name}: loaded in {row['load_s']:.2f} s, at {since_start():.2f} s", flush=True)
        for dataset in entry.get("datasets", list(config["datasets"])):
            spec = dataset_spec(dataset, config["datasets"][dataset])
            path = config["datasets"][dataset]["path"]
            started = time.perf_counter()
            data = load_dataset(path, spec)
            read_s, started = time.perf_counter() - started, time.perf_counter()
            outputs = runner.run(model, tokenizer, data, settings)
            run_s, started = time.perf_counter() - started, time.perf_counter()
            mapping = check_task_fits(model, data, spec, path, (name, dataset))
            if mapping is not None:
                outputs = mapping.apply(outputs)
            score = np.nan
            if args.loop == "engine":  # the notebook scores nothing but its accuracy
                n_classes = None if mapping is None else len(data.label_names or mapping.to_dataset)
                score = task_scores(data.labels, outputs, spec.metrics, n_classes)["score"]
            timing = {"read_s": read_s, "run_s": run_s, "score_s": time.perf_counter() - started}
            row["datasets"].append(
                {"dataset": dataset, "rows": len(data.texts), **timing, "score": score}
            )
            row["datasets"][-1]["at_s"] = since_start()
            kept[name, settings["dtype"], dataset] = (outputs, mapping is None)
            print(
                f"  {dataset}: {len(data.texts)} rows, read {read_s:.2f} s, run {run_s:.2f} s, "
                f"score {score:.2f}, at {since_start():.2f} s",
                flush=True,
            )
        figures["models"].append(row)
        del model
    figures["total_s"] = since_start()
    print(f"whole run ({args.loop} loop): {figures['total_s']:.2f} s from the interpreter's start")
    failed = False
    if args.compare:
        figures["compare"] = compare(kept, Path(args.compare))
        failed = args.loop == "engine" and not all(c["match"] for c in figures["compare"])
    print(table(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 1 if failed else 0


# Scores of a regression model may differ in their last bits between two processes that run the
# same model on some hosts (the pipeline's evaluation sets its threads, this process does not,
# and a CPU's kernels split their sums by threads); classes may not.
SCORE_TOLERANCE = 1e-5


def compare(kept: dict, directory: Path) -> list[dict]:
    """Each dataset's outputs against the pipeline's predictions file: bitwise equal or not,
    the share of rows that agree (classes) or the largest difference (scores), and whether they
    match (every class, every score within SCORE_TOLERANCE)."""
    import pyarrow.parquet as pq

    found = []
    for (model, dtype, dataset), (outputs, regression) in kept.items():
        path = directory / model / dtype / f"{dataset}.parquet"  # as results/predictions/
        entry = {"model": model, "dataset": dataset}
        if not path.is_file():
            print(f"COMPARE {model}/{dataset}: {path} missing")
            found.append({**entry, "equal": False, "match": False, "missing": True})
            continue
        expected = pq.read_table(path).column("score" if regression else "prediction").to_numpy()
        entry["equal"] = bool(np.array_equal(outputs, expected))
        if regression:
            entry["max_abs_diff"] = float(np.max(np.abs(outputs - expected), initial=0.0))
            entry["match"] = entry["max_abs_diff"] <= SCORE_TOLERANCE
        else:
            entry["agree_pct"] = 100.0 * float(np.mean(outputs == expected))
            entry["match"] = entry["equal"]
        found.append(entry)
        verdict = "bitwise equal" if entry["equal"] else "match" if entry["match"] else "DIFFER"
        print(f"COMPARE {model}/{dataset}: {verdict} {entry}")
    return found


def table(figures: dict) -> str:
    lines = [
        f"| {figures['loop']} loop | load s | dataset | rows | read s | run s | score s | at s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
        f"| imports | | | | | | | {figures['imports_s']:.2f} |",
    ]
    for row in figures["models"]:
        for i, d in enumerate(row["datasets"]):
            load = f"{row['load_s']:.2f}" if i == 0 else ""
            lines.append(
                f"| {row['model'] if i == 0 else ''} | {load} | {d['dataset']} | {d['rows']} "
                f"| {d['read_s']:.2f} | {d['run_s']:.2f} | {d['score_s']:.2f} | {d['at_s']:.2f} |"
            )
    loads = sum(row["load_s"] for row in figures["models"])
    runs = sum(d["run_s"] for row in figures["models"] for d in row["datasets"])
    lines.append(f"| all | {loads:.2f} | | | | {runs:.2f} | | {figures['total_s']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
