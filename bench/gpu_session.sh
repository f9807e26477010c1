#!/usr/bin/env bash
# All GPU work of one benchmarking session (see BENCHMARKS.md). Run from the repository root on
# the GPU machine, with .carry/ holding: wheels/ (snakemake for the machine's Python),
# models/tokenizer/ (the bert-base-uncased tokenizer files of ../shared/models/minilm-*),
# data/{sst2,cola,mnli}/*.parquet. PART selects what runs: sweep | pipeline | endtoend | loops |
# pairs | final (= pipeline, endtoend, pairs and loops). REPEATS (default 3) sets the loop comparisons' repeats.
set -u
PART=${1:-final}
REPEATS=${REPEATS:-3}
TOKENIZER=.carry/models/tokenizer
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
C=.carry
now() { python3 -c "import time; print(time.time())"; }
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step environment
# A user's pip install leaves bytecode; this machine ships torch without it and sets
# PYTHONDONTWRITEBYTECODE: compile it once, so that start-up is timed as users see it.
python3 -m compileall -q -j 0 "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, transformers, tokenizers, sys; print(sys.version.split()[0], torch.__version__, transformers.__version__, tokenizers.__version__, torch.cuda.get_device_name())'
nproc

if [ "$PART" = sweep ]; then
  for budget in 8192 16384 32768 65536; do
    step twin, engine only, batch_tokens=$budget
    python3 bench/compare_loops.py --model $TOKENIZER --twin --data $C/data/sst2/train.parquet \
      --repeats 3 --skip a b tokenizer --batch-tokens $budget --max-batch-size 4096
  done
fi

if [ "$PART" = pipeline ] || [ "$PART" = final ]; then
  step pipeline: default experiment with the twin, from an empty results/
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $C/wheels/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  python3 -c "import snakemake.cli" || exit 1
  python3 bench/save_twin.py $TOKENIZER /tmp/twin
  sed -e "s#distilbert/distilbert-base-uncased-finetuned-sst-2-english#/tmp/twin#" \
      -e "s#hf://datasets/nyu-mll/glue/\(sst2\|cola\)/\([a-z]*\)-00000-of-00001.parquet#$C/data/\1/\2.parquet#" \
      config.yaml > /tmp/gpu_config.yaml
  grep -E "source|path" /tmp/gpu_config.yaml
  rm -rf results .snakemake
  start=$(now)
  python3 -m snakemake --cores 1 --configfile /tmp/gpu_config.yaml --scheduler greedy -q || echo "PIPELINE FAILED"
  end=$(now)
  echo "full run wall seconds: $(python3 -c "print(round($end - $start, 2))")"
  for f in results/benchmarks/evaluate_model/*/*.tsv; do echo "$f"; cat "$f"; done
  python3 -c "
import pandas as pd
t = pd.read_csv('results/model_performance.csv')
cols = ['Dataset', 'Score', 'Metric', 'Inference Time (seconds)', 'Memory Usage (MB)', 'startup_s', 'model_load_s', 'warmup_s', 'device_wait_s', 'gpu_index', 'gpu_uuid', 'device_name', 'gpu_peak_allocated_mb', 'label_mapping']
print(t[cols].to_string())
"
  cat results/logs/evaluate_model/*/*.log | tail -n 30
  start=$(now)
  python3 -m snakemake --cores 1 --configfile /tmp/gpu_config.yaml --scheduler greedy -q
  end=$(now)
  echo "no-op rerun wall seconds: $(python3 -c "print(round($end - $start, 2))")"
  cp results/model_performance.csv "$OUT/" 2>/dev/null
  cp results/plots/*.png "$OUT/" 2>/dev/null
  unset PYTHONPATH
fi

if [ "$PART" = endtoend ] || [ "$PART" = final ]; then
  step the notebook end to end, one process: imports, model load, its loop on the same four datasets
  [ -d /tmp/twin ] || python3 bench/save_twin.py $TOKENIZER /tmp/twin
  python3 bench/notebook_run.py /tmp/twin $C/data/sst2/train.parquet $C/data/sst2/validation.parquet \
    $C/data/sst2/test.parquet $C/data/cola/validation.parquet
  step start-up, step by step, each in a fresh interpreter
  python3 bench/startup_probe.py --tokenizer $TOKENIZER --repeats 3 2>&1 | grep -v Warning
fi

if [ "$PART" = pairs ] || [ "$PART" = final ]; then
  step twin on MNLI validation_matched pairs, all loops, $REPEATS repeats
  python3 bench/compare_loops.py --model $TOKENIZER --twin --glue-task mnli \
    --data $C/data/mnli/validation_matched.parquet --repeats "$REPEATS" --json "$OUT/twin_mnli.json"
fi

if [ "$PART" = loops ] || [ "$PART" = final ]; then
  step twin on SST-2 train, all loops, $REPEATS repeats
  python3 bench/compare_loops.py --model $TOKENIZER --twin --data $C/data/sst2/train.parquet \
    --repeats "$REPEATS" --json "$OUT/twin_train.json"
fi
