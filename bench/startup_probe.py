# ruff: noqa: E501 (the probe's steps are one-line programs, kept whole to be read as run)
"""Where an evaluation job's fixed cost goes: each step timed in a fresh interpreter (median of
--repeats), and candidate model artifacts that avoid importing transformers.

    python bench/startup_probe.py --tokenizer DIR [--device cuda] [--repeats 3]

Prints a table: step, median seconds, runs. Run it with bytecode compiled (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = str(Path(__file__).resolve().parents[1] / "scripts")


def fresh(code: str) -> float:
    """Wall seconds of a new interpreter running ``code``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=None)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    twin = work / "twin"
    subprocess.run(
        [sys.executable, str(Path(__file__).parent / "save_twin.py"), args.tokenizer, str(twin)],
        check=True,
    )
    device = args.device
    prepare = f"""
import sys, torch, time
sys.path.insert(0, {SCRIPTS!r})
from transformers import AutoModelForSequenceClassification
m = AutoModelForSequenceClassification.from_pretrained({str(twin)!r}, attn_implementation='sdpa').eval().to({device!r})
ids = torch.randint(1000, 2000, (8, 32), device={device!r})
mask = torch.ones_like(ids)
t = time.perf_counter()
batch = torch.export.Dim('batch', min=1, max=4096)
seq = torch.export.Dim('seq', min=2, max=512)
class Wrapped(torch.nn.Module):
    def __init__(self, m):
        super().__init__(); self.m = m
    def forward(self, input_ids, attention_mask):
        return self.m(input_ids=input_ids, attention_mask=attention_mask).logits
try:
    ep = torch.export.export(Wrapped(m), (ids, mask), dynamic_shapes={{'input_ids': {{0: batch, 1: seq}}, 'attention_mask': {{0: batch, 1: seq}}}})
    torch.export.save(ep, {str(work / "twin.pt2")!r})
    print('export_s', time.perf_counter() - t)
except Exception as error:  # torch.export may refuse the dynamic shapes: say so, go on
    ep = None
    print('torch.export failed:', type(error).__name__, str(error).splitlines()[0])
t = time.perf_counter()
traced = torch.jit.trace(Wrapped(m), (ids, mask), check_trace=False)
traced.save({str(work / "twin.ts")!r})
print('trace_s', time.perf_counter() - t)
# equality on other shapes, with padding
ids2 = torch.randint(1000, 2000, (5, 57), device={device!r}); mask2 = torch.ones_like(ids2); mask2[1:, 40:] = 0
with torch.inference_mode():
    e = m(input_ids=ids2, attention_mask=mask2).logits
    x = ep.module()(ids2, mask2) if ep is not None else e
    j = torch.jit.load({str(work / "twin.ts")!r})(ids2, mask2)
print('export max diff', (e - x).abs().max().item(), 'argmax equal', bool((e.argmax(-1) == x.argmax(-1)).all()))
print('trace max diff', (e - j).abs().max().item(), 'argmax equal', bool((e.argmax(-1) == j.argmax(-1)).all()))
"""
    subprocess.run([sys.executable, "-c", prepare], check=True)
    steps = {
        "python -c pass": "pass",
        "import torch": "import torch",
        "import torch + CUDA init": f"import torch; torch.zeros(1).to({device!r})",
        "import tokenizers, pyarrow.parquet": "import tokenizers, pyarrow.parquet",
        "import pandas": "import pandas",
        "import pandas, pyarrow.parquet, psutil": "import pandas, pyarrow.parquet, psutil",
        "import matplotlib.pyplot (Agg)": "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot",
        "import snakemake.cli": "import snakemake.cli",
        "from transformers import AutoModelForSequenceClassification": (
            "from transformers import AutoModelForSequenceClassification"
        ),
        "glueperf.evaluation imports": f"import sys; sys.path.insert(0, {SCRIPTS!r}); import glueperf.evaluation",
        "+ from_pretrained(twin) on device": (
            "import torch; from transformers import AutoModelForSequenceClassification as A; "
            f"A.from_pretrained({str(twin)!r}).to({device!r})"
        ),
        "torch + export.load(twin.pt2) + first call": (
            f"import torch; ep = torch.export.load({str(work / 'twin.pt2')!r}); "
            f"m = ep.module(); i = torch.ones(2, 8, dtype=torch.long, device={device!r}); m(i, i)"
        ),
        "torch + jit.load(twin.ts) + first call": (
            f"import torch; m = torch.jit.load({str(work / 'twin.ts')!r}); "
            f"i = torch.ones(2, 8, dtype=torch.long, device={device!r}); m(i, i)"
        ),
    }
    print("| step | median s | runs |\n|---|---:|---|")
    if not (work / "twin.pt2").exists():
        steps.pop("torch + export.load(twin.pt2) + first call")
    for name, code in steps.items():
        runs = [fresh(code) for _ in range(args.repeats)]
        print(
            f"| {name} | {statistics.median(runs):.2f} | {', '.join(f'{r:.2f}' for r in runs)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
