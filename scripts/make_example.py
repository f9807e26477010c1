"""Make the offline example of config/example.yaml: a tiny random-weight BERT classifier (with
its WordPiece tokenizer) and two small parquet files, in example/ (ignored by git).

    .venv/bin/python scripts/make_example.py
    .venv/bin/snakemake --cores 1 --configfile config/example.yaml

Needs no internet: the model is built from a config, not downloaded. Its predictions mean
nothing (random weights); the example shows the pipeline end to end on a local model directory
and local parquet files, the two things to replace with your own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from glueperf.example import build_model, write_dataset


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("example"), help="default: example/")
    out = parser.parse_args(argv).out
    build_model(out / "tiny-bert")
    write_dataset(out / "reviews-validation.parquet", n=200, seed=0, labeled=True)
    write_dataset(out / "reviews-test.parquet", n=100, seed=1, labeled=False)
    print(f"wrote {out}/tiny-bert/ and {out}/reviews-{{validation,test}}.parquet; now run:")
    print("  .venv/bin/snakemake --cores 1 --configfile config/example.yaml")


if __name__ == "__main__":
    main()
