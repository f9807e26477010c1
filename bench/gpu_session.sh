#!/usr/bin/env bash
# All GPU work of one benchmarking session (see BENCHMARKS.md). Run from the repository root on
# the GPU machine, with .carry/ holding: wheels/ (snakemake[reports] and what it needs, for the
# machine's Python; nvidia-ml-py where the host lacks it, else GPU energy stays empty),
# slurm_wheels/ (the two SLURM plugins, to time Snakemake with them), models/tokenizer/ (the
# bert-base-uncased tokenizer files of ../shared/models/minilm-*), models/minilm-sst2/
# (../shared's, for latency; left out where absent), data/<task>/<split>.parquet (../shared's
# data/glue/: sst2, cola and mnli for most parts, every task's validation files for glue and
# gpus), optionally engine_before.py (an earlier scripts/glueperf/engine.py, which bf16 times
# beside the engine as it is). Every step runs in a user's environment made by
# bench/user_env.py, with bytecode compiled (kept for a later call on the same machine).
# The arguments (default: final) select what runs, one or more of: sweep | pipeline (the default
# experiment from empty with --cores 1, then --cores $(nproc)) | slurm (no-op reruns with and
# without the SLURM plugins) | endtoend (the notebook's whole run) | startup (each import in a
# fresh interpreter) | loops (the engine against its floors, and the tokenizer against cores) |
# pairs | bf16 (the engines on SST-2 train with every variant of bench/compare_loops.py, then
# bench/tokenizer_process_start.py) | glue
# (the GLUE twins: the pipeline from empty with --cores $(nproc) and 1, then the same
# experiment in one process, with the engine and with the notebook's loop; about 3 min) |
# torchscript (issue 23: the engines on the twin's transformers model against its TorchScript
# trace, float32 and bfloat16, SST-2 train, with their GPU timelines, then an evaluation's model
# load both ways in children of a fork server's imports; about 2.5 min) | gpus (the default
# and GLUE experiments with --resources gpu=1, then on every GPU, compared by
# bench/gpu_runs.py) | targets (issue 24's ratios from what $OUT holds; also printed after
# endtoend, glue and bf16) | latency (issue 21: single-request latency against its floor and
# transformers.pipeline, and the offline pass's GPU energy, on SST-2 validation, in each dtype,
# transformers and traced models, the twin then minilm-sst2; about 2 min) | precisions (issue
# 21: the default experiment with minilm-sst2 in float32, bfloat16 and float16, latency and
# energy on; about 1.5 min) | floor (bench/snakemake_floor.py on the GLUE twins' config:
# Snakemake's own seconds for its job graph with --cores 1 and $(nproc), Python scripts then
# shell jobs; about 1 min) | imports (bench/import_probe.sh in the user environment: the ideal's
# imports against the fork server's; IMPORT_ROUNDS, default 2; about 1 min) | warmup (an evaluation's fixed cost per process and per
# model, with CUDA's kernel loading, WARMUP_MODULE_LOADING, and without and with the early
# start's stand-in, WARMUP_STAND_IN) | final (= pipeline, slurm, endtoend, startup, pairs and
# loops).
# REPEATS (default 3) sets the loop comparisons' repeats; NOOPS (default 3) the no-op reruns
# after each pipeline run; PIPELINE_CORES_N=off leaves out pipeline's --cores $(nproc) run;
# LATENCY_MODELS (default: the twin and minilm-sst2) the models that latency times; EXTRAS (default off) keeps the latency and energy phases in the
# pipeline and glue parts' configs (off: the same work as the notebook and the ideal); BF16_VARIANTS (default: checked graphs captured compile) the variants that bf16
# times (BF16_BATCH_TOKENS and BF16_RAYON: token budgets and tokenizer threads it sweeps);
# GLUE_LOOPS (default: engine notebook) the one-process loops that glue times; GLUE_ENVS
# (settings NAME=value, each a pipeline run of its own, in turn) and GLUE_ROUNDS what glue
# compares (e.g. GLUEPERF_STAND_IN=0 against the default; GLUE_SNAKEFILE=PATH runs the workflow
# of PATH, a copy of another commit's, against this one's); GLUE_CORES1=off leaves out its
# --cores 1 runs, GLUE_CORES1_ROUNDS (default 1) repeats them; LATENCY_REQUESTS (default 500) the requests that latency times per case. OUT (default
# /tmp/out) receives the tables and plots; SESSION_TMP (default /tmp) holds the session's
# working files.
set -u
PARTS=" ${*:-final} "
# Whether part $1 was asked for (final asks for pipeline, slurm, endtoend, startup, pairs, loops).
wants() {
  [[ $PARTS == *" $1 "* ]] && return 0
  [[ $PARTS == *" final "* ]] && [[ " pipeline slurm endtoend startup pairs loops " == *" $1 "* ]]
}
REPEATS=${REPEATS:-3}
NOOPS=${NOOPS:-3}
BF16_VARIANTS=${BF16_VARIANTS:-checked graphs captured compile}
T=${SESSION_TMP:-/tmp}  # the session's working files (user environment, configs, twins, copies)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
C=${CARRY:-.carry}  # what the call carried: wheels, models, data (see the header)
TOKENIZER=$C/models/tokenizer
now() { python3 -c "import time; print(time.time())"; }
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step environment
HOST_PY=$(command -v python3)  # the host's Python, with pip (the user environment has none)
# A user's pip install leaves bytecode; this machine ships torch without it and sets
# PYTHONDONTWRITEBYTECODE: compile it once, so that start-up is timed as users see it.
purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
PY=$T/uenv/bin/python
if [ -x "$PY" ]; then
  echo "user environment of an earlier call on this machine: $PY"
else
  python3 -m compileall -q -j 0 "$(purelib python3)" >/dev/null 2>&1
  # Every step runs in a user's environment: what requirements.txt installs (linked from this
  # host's packages, whose extras transformers would otherwise import) plus the wheels of what
  # the host lacks (snakemake and its plugins), compiled as pip compiles them.
  python3 bench/user_env.py $T/uenv $C/wheels | grep -v "^linked" || exit 1
  "$PY" -m compileall -q -j 0 "$(purelib $PY)" >/dev/null 2>&1
fi
export PATH=$T/uenv/bin:$PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c 'import torch, transformers, tokenizers, snakemake, sys; print(sys.version.split()[0], torch.__version__, transformers.__version__, tokenizers.__version__, snakemake.__version__, torch.cuda.get_device_name())'
nproc

if wants sweep; then
  for budget in 8192 16384 32768 65536; do
    step twin, engine only, batch_tokens=$budget
    $PY bench/compare_loops.py --model $TOKENIZER --twin --data $C/data/sst2/train.parquet \
      --repeats 3 --skip a b tokenizer --batch-tokens $budget --max-batch-size 4096
  done
fi

# One run of the pipeline from an empty results/ (and no resources/), timed job by job,
# then its no-op rerun three times. $1: the cores; $2: the config ($T/gpu_config.yaml); $3: a
# name for its job timeline; further arguments go to snakemake.
pipeline_run() {
  local cores=$1 config=${2:-$T/gpu_config.yaml} name=${3:-cores$1}
  shift 3 2>/dev/null || shift $#
  rm -rf results resources .snakemake
  # The fork servers' logs (their imports' seconds, when each was ready) are removed as they end:
  # copied meanwhile.
  mkdir -p "$OUT/servers_$name"
  (while sleep 0.5; do cp /tmp/glueperf-forkserver-"$(id -u)"/*.log "$OUT/servers_$name/" 2>/dev/null; done) &
  local watcher=$!
  $PY bench/job_times.py --json "$OUT/jobs_$name.json" -- \
    $PY -m snakemake --cores "$cores" --configfile "$config" \
    ${GLUE_SNAKEFILE:+--snakefile "$GLUE_SNAKEFILE"} "$@" || echo "PIPELINE FAILED"
  kill $watcher 2>/dev/null
  cp -r results/logs "$OUT/logs_$name" 2>/dev/null  # the jobs' own timestamps
  grep -h "ready at" "$OUT/servers_$name/"*.log 2>/dev/null
  for f in results/benchmarks/*/*.tsv results/benchmarks/*/*/*.tsv; do
    echo "$f: $(tail -n 1 "$f" | cut -f 1,3)"  # seconds, max RSS
  done
  $PY -c "
import pandas as pd
t = pd.read_csv('results/model_performance.csv')
t['held_s'] = t['device_held_until'] - t['device_held_from']  # the claim to the measurement's end
cols = ['Model', 'Dataset', 'Score', 'Inference Time (seconds)', 'Memory Usage (MB)', 'startup_s', 'device_start_s', 'model_load_s', 'warmup_s', 'device_wait_s', 'held_s', 'gpu_index', 'job_process', 'gpu_peak_allocated_mb']
print(t[[c for c in cols if c in t]].to_string())
print('device held in all:', round(t['held_s'].sum(), 2), 's; inference in all:', round(t['Inference Time (seconds)'].sum(), 2), 's')
"
  for ((i = 0; i < NOOPS; i++)); do
    noop "$cores" "$config"
  done
}

# Whether every predictions file under $1 equals its namesake under $2 (pyarrow's Table.equals).
same_predictions() {
  $PY -c "
import pathlib, sys, pyarrow.parquet as pq
one, other = map(pathlib.Path, sys.argv[1:3])
for path in sorted(one.rglob('*.parquet')):
    twin = other / path.relative_to(one)
    print(path.relative_to(one), 'predictions identical between the two runs:', twin.is_file() and pq.read_table(path).equals(pq.read_table(twin)))
" "$1" "$2"
}

# Issue 24's targets from the figures in $OUT (the parts that wrote them).
targets() {
  step "targets (issue 24) from $OUT"
  $PY bench/speed_targets.py "$OUT"
}

# The GLUE twins and config/glue.yaml pointed at them and the local files: $T/gpu_glue.yaml.
glue_config() {
  [ -f $T/gpu_glue.yaml ] || {
    $PY bench/glue_twins.py $TOKENIZER $C/data $T/glue_twins $T/gpu_glue.yaml | grep -v shards
    same_work $T/gpu_glue.yaml
  }
}

# One no-op rerun with $1 cores and config $2, its wall seconds printed with $3 (what differs).
noop() {
  local start
  start=$(now)
  $PY -m snakemake --cores "$1" --configfile "$2" ${GLUE_SNAKEFILE:+--snakefile "$GLUE_SNAKEFILE"} \
    -q >/dev/null 2>&1
  echo "no-op rerun wall seconds${3:+ ($3)}: $(python3 -c "print(round($(now) - $start, 2))")"
}

# Config $1 without the single-request latency and energy phases (EXTRAS=on keeps them): the
# comparisons with the notebook and the one-process ideal time the same work on both sides.
same_work() {
  [ "${EXTRAS:-off}" = on ] && return
  $PY -c "
import sys, yaml
path = sys.argv[1]
config = yaml.safe_load(open(path))
config.setdefault('evaluation', {}).update(latency={'enabled': False}, energy={'enabled': False})
yaml.safe_dump(config, open(path, 'w'), sort_keys=False)
" "$1"
}

# The default experiment with model $1 (default: the DistilBERT twin) and local files.
default_config() {
  local model=${1:-$T/twin} out=${2:-$T/gpu_config.yaml}
  [ -d $T/twin ] || $PY bench/save_twin.py $TOKENIZER $T/twin
  sed -e "s#distilbert/distilbert-base-uncased-finetuned-sst-2-english#$model#" \
      -e "s#hf://datasets/nyu-mll/glue/\(sst2\|cola\)/\([a-z]*\)-00000-of-00001.parquet#$C/data/\1/\2.parquet#" \
      config.yaml > "$out"
  grep -E "source|path" "$out"
}

if wants pipeline; then
  default_config
  same_work $T/gpu_config.yaml
  step pipeline: default experiment with the twin, --cores 1, from an empty results/
  pipeline_run 1 $T/gpu_config.yaml default_cores1
  cp results/model_performance.csv "$OUT/model_performance_cores1.csv" 2>/dev/null
  cp results/plots/*.png "$OUT/" 2>/dev/null
  rm -rf $T/predictions_cores1 && cp -r results/predictions $T/predictions_cores1
  if [ "${PIPELINE_CORES_N:-on}" = on ]; then
    step pipeline: the same with --cores "$(nproc)"
    pipeline_run "$(nproc)" $T/gpu_config.yaml default_coresN
    cp results/model_performance.csv "$OUT/model_performance_coresN.csv" 2>/dev/null
    mkdir -p "$OUT/logs_coresN" && cp -r results/logs results/benchmarks "$OUT/logs_coresN/"
    same_predictions $T/predictions_cores1 results/predictions
  fi
fi

if wants slurm; then
  # Before requirements-slurm.txt: the SLURM plugins installed beside Snakemake, which imports
  # them (and the plugin pandas) on every command. Alternated, on the same finished run.
  [ -d results/predictions ] || pipeline_run "$(nproc)" $T/gpu_config.yaml default_coresN
  "$HOST_PY" -m pip install -q --no-deps --no-compile --target $T/slurm_plugins \
    $C/slurm_wheels/*.whl
  $PY -m compileall -q $T/slurm_plugins >/dev/null 2>&1
  PYTHONPATH=$T/slurm_plugins $PY -c "import sys, snakemake_executor_plugin_slurm as p
print('SLURM plugin importable from', p.__file__, '- imports pandas:', 'pandas' in sys.modules)"
  for i in 1 2 3 4 5; do
    noop "$(nproc)" $T/gpu_config.yaml "requirements.txt"
    PYTHONPATH=$T/slurm_plugins noop "$(nproc)" $T/gpu_config.yaml "with the SLURM plugins"
  done
fi

if wants endtoend; then
  step the notebook end to end, one process: imports, model load, its loop on the same four datasets
  [ -d $T/twin ] || $PY bench/save_twin.py $TOKENIZER $T/twin
  start=$(now)
  $PY bench/notebook_run.py $T/twin $C/data/sst2/train.parquet $C/data/sst2/validation.parquet \
    $C/data/sst2/test.parquet $C/data/cola/validation.parquet --json "$OUT/notebook_default.json"
  echo "notebook wall seconds, interpreter start to exit: $(python3 -c "print(round($(now) - $start, 2))")"
  targets
fi

if wants startup; then
  step start-up, step by step, each in a fresh interpreter
  $PY bench/startup_probe.py --tokenizer $TOKENIZER --repeats 3 2>&1 | grep -v Warning
fi

if wants pairs; then
  step twin on MNLI validation_matched pairs, all loops, $REPEATS repeats
  $PY bench/compare_loops.py --model $TOKENIZER --twin --glue-task mnli \
    --data $C/data/mnli/validation_matched.parquet --repeats "$REPEATS" --json "$OUT/twin_mnli.json"
fi

if wants loops; then
  # (a) and (b) take 30-60 s and were measured before (BENCHMARKS.md): the engines against their
  # floors, with where the GPU waited.
  step twin on SST-2 train, engines and floors, $REPEATS repeats
  $PY bench/compare_loops.py --model $TOKENIZER --twin --data $C/data/sst2/train.parquet \
    --repeats "$REPEATS" --skip a b --timeline --json "$OUT/twin_train.json"
  step the tokenization of the engine against cores
  $PY bench/tokenizer_scaling.py $TOKENIZER $C/data/sst2/train.parquet
fi

if wants bf16; then
  # Issue 24: bfloat16 against max(its forward floor, the engine's tokenization), with every
  # variant; float32 beside it (part torchscript compares each with its trace). CUDA graphs and
  # torch.compile are captured or compiled in the warm-up, which is not timed.
  before=()
  [ -f $C/engine_before.py ] && before=(before --engine-before $C/engine_before.py)
  # BF16_BATCH_TOKENS and BF16_RAYON (each a list, default: the engine's own settings) sweep
  # the token budget and the tokenizer's threads (RAYON_NUM_THREADS, fixed per process).
  for tokens in ${BF16_BATCH_TOKENS:-default}; do
    for rayon in ${BF16_RAYON:-default}; do
      suffix="" budget=() threads=()
      [ "$tokens" != default ] && suffix="${suffix}_tokens$tokens" budget=(--batch-tokens "$tokens")
      [ "$rayon" != default ] && suffix="${suffix}_rayon$rayon" threads=("RAYON_NUM_THREADS=$rayon")
      step twin on SST-2 train, engines and variants, $REPEATS repeats, budget $tokens, rayon $rayon
      env ${threads[@]+"${threads[@]}"} \
        $PY bench/compare_loops.py --model $TOKENIZER --twin --data $C/data/sst2/train.parquet \
        --repeats "$REPEATS" --skip a b tokenizer --timeline ${budget[@]+"${budget[@]}"} \
        --variants $BF16_VARIANTS ${before[@]+"${before[@]}"} \
        --json "$OUT/twin_train_bf16$suffix.json"
    done
  done
  step "the tokenizer's process: its first chunk, spawned in the run or started ahead"
  $PY bench/tokenizer_process_start.py $TOKENIZER $C/data/sst2/train.parquet \
    --json "$OUT/tokenizer_process_start.json"
  targets
fi

if wants imports; then
  step "imports: the ideal's and the fork server's, with and without the NVML-based CUDA check"
  PY=$PY COMPILE=0 OUT=$OUT ROUNDS=${IMPORT_ROUNDS:-2} bash bench/import_probe.sh
fi

if wants glue; then
  # Issue 24: the GLUE twins (8 models, 9 datasets) through the pipeline from empty, against
  # the same experiment in one process (imports once, each model loaded once): the engine (the
  # ideal), then the notebook's loop (what a user would write).
  glue_config
  step "the fork server's imports leave the GPU driver uninitialized (else it forks no job)"
  PYTORCH_NVML_BASED_CUDA_CHECK=1 $PY -c "import sys, importlib; sys.path.insert(0, 'scripts')
from glueperf.infra.forkserver import PRELOAD, gpu_driver_initialized, mapped_driver
for name in PRELOAD: importlib.import_module(name)
print('GPU driver after the imports: mapped', mapped_driver(), '- initialized', gpu_driver_initialized())"
  # GLUE_ENVS (default: none): settings (NAME=value) to compare, each run in turn with one of
  # them exported, GLUE_ROUNDS (default 1) times for --cores $(nproc), GLUE_CORES1_ROUNDS
  # (default 1) times for --cores 1; the
  # files of a run under a setting are named after it (glue_coresN_NAME=value...).
  for ((round = 0; round < ${GLUE_ROUNDS:-1}; round++)); do
    for setting in ${GLUE_ENVS:-" "}; do
      (
        [ -n "${setting// /}" ] && export "$setting" && tag="_${setting//\//-}"
        [ "${GLUE_ROUNDS:-1}" -gt 1 ] && tag="${tag:-}_r$round"  # each round's files kept
        step "GLUE twins, pipeline --cores $(nproc) from an empty results/ ${tag:-}"
        NOOPS=1 pipeline_run "$(nproc)" $T/gpu_glue.yaml "glue_coresN${tag:-}"
        cp results/model_performance.csv "$OUT/glue_coresN${tag:-}.csv" 2>/dev/null
        rm -rf $T/predictions_glue_N && cp -r results/predictions $T/predictions_glue_N
      )
    done
  done
  for ((round = 0; round < ${GLUE_CORES1_ROUNDS:-1}; round++)); do
    for setting in ${GLUE_ENVS:-" "}; do
      [ "${GLUE_CORES1:-on}" = on ] || break
      (
        [ -n "${setting// /}" ] && export "$setting" && tag="_${setting//\//-}"
        [ "${GLUE_CORES1_ROUNDS:-1}" -gt 1 ] && tag="${tag:-}_r$round"
        step "GLUE twins, pipeline --cores 1 from an empty results/ ${tag:-}"
        NOOPS=1 pipeline_run 1 $T/gpu_glue.yaml "glue_cores1${tag:-}"
        cp results/model_performance.csv "$OUT/glue_cores1${tag:-}.csv" 2>/dev/null
        same_predictions $T/predictions_glue_N results/predictions
      )
    done
  done
  for loop in ${GLUE_LOOPS:-engine notebook}; do
    step "GLUE twins in one process, the $loop loop"
    start=$(now)
    $PY bench/glue_one_process.py $T/gpu_glue.yaml --loop $loop --compare results/predictions \
      --json "$OUT/glue_$loop.json" 2>&1 | grep -v "Loading weights"
    echo "one process ($loop) wall seconds: $(python3 -c "print(round($(now) - $start, 2))")"
  done
  targets
fi

if wants floor; then
  # Issue 24: what Snakemake itself takes for the GLUE twins' job graph, every job doing nothing
  # (bench/snakemake_floor.py), beside the one-process ideal where glue measured it.
  glue_config
  step "Snakemake's floor: the GLUE twins' job graph, each job a script of no work"
  ideal=$($PY -c "import json; print(json.load(open('$OUT/glue_engine.json'))['total_s'])" 2>/dev/null)
  $PY bench/snakemake_floor.py $T/gpu_glue.yaml --cores 1 "$(nproc)" --repeats 3 --shell --script \
    ${ideal:+--ideal $ideal} --json "$OUT/floor.json"
fi

if wants warmup; then
  # Issue 24: an evaluation's fixed cost on the GPU, split into what a fresh process pays once
  # and what each model pays, in one process over the GLUE twins (bench/warmup_probe.py).
  glue_config
  # WARMUP_MODULE_LOADING (default: LAZY): CUDA_MODULE_LOADING of each probe (EAGER loads every
  # kernel as CUDA starts: 6.5 s and 4 GB more RSS in session 10). WARMUP_STAND_IN (default:
  # off on): each probe without, then with, a stand-in's warm-up first (as an early start does).
  for loading in ${WARMUP_MODULE_LOADING:-LAZY}; do
    for stand_in in ${WARMUP_STAND_IN:-off on}; do
      step "fixed cost per process and per model, GLUE twins, one process, $loading module" \
        "loading, stand-in $stand_in"
      flag=() && [ "$stand_in" = on ] && flag=(--stand-in)
      CUDA_MODULE_LOADING=$loading $PY bench/warmup_probe.py $T/glue_twins/*/ ${flag[@]+"${flag[@]}"} \
        --data $C/data/sst2/validation.parquet --json "$OUT/warmup_${loading}_$stand_in.json" \
        2>&1 | grep -v "Loading weights"
    done
  done
fi

if wants precisions; then
  # Issue 21: the default experiment with the real minilm-sst2 (agreement means something) in
  # float32, bfloat16 and float16, each evaluation measuring single-request latency and GPU
  # energy as it does by default, from an empty results/ with --cores $(nproc).
  default_config $C/models/minilm-sst2 $T/gpu_precisions.yaml
  $PY -c "
import sys, yaml
path = sys.argv[1]
config = yaml.safe_load(open(path))
config['evaluation']['dtype'] = ['float32', 'bfloat16', 'float16']
yaml.safe_dump(config, open(path, 'w'), sort_keys=False)
" $T/gpu_precisions.yaml
  step "precisions: minilm-sst2 in float32, bfloat16, float16, --cores $(nproc), from empty"
  NOOPS=1 pipeline_run "$(nproc)" $T/gpu_precisions.yaml precisions
  cp results/model_performance.csv "$OUT/precisions.csv" 2>/dev/null
  for plot in latency energy score_vs_throughput score_vs_latency; do
    cp "results/plots/$plot.png" "$OUT/precisions_$plot.png" 2>/dev/null
  done
  $PY -c "
import pandas as pd
t = pd.read_csv('results/model_performance.csv')
cols = ['Dataset', 'dtype', 'Score', 'Accuracy (%)', 'Inference Time (seconds)', 'throughput_eps', 'latency_p50_ms', 'latency_p90_ms', 'latency_p99_ms', 'latency_max_ms', 'latency_requests', 'latency_phase_s', 'energy_j', 'energy_j_per_1k', 'mean_power_w', 'energy_passes', 'energy_window_s', 'agreement_pct', 'score_diff', 'torch_threads', 'gpu_peak_allocated_mb']
pd.set_option('display.width', 250)
print(t[[c for c in cols if c in t]].to_string())
print(t[['Dataset', 'dtype', 'latency_note', 'energy_note']].to_string())
"
fi

if wants torchscript; then
  # Issue 23: TorchScript dropped. Decides whether that costs the pipeline's figures more than
  # noise: c / c_traced and d / d_traced (speed_targets), the timelines (where the GPU waited),
  # that the outputs are bitwise equal (float32), and the model load both ways.
  step twin on SST-2 train, engines on the transformers model and on its trace, $REPEATS repeats
  $PY bench/compare_loops.py --model $TOKENIZER --twin --data $C/data/sst2/train.parquet \
    --repeats "$REPEATS" --skip a b tokenizer tokenizer_engine --timeline \
    --json "$OUT/twin_train_traced.json" 2>&1 | grep -v "Loading weights"
  [ -d $T/twin ] || $PY bench/save_twin.py $TOKENIZER $T/twin
  step "model load in a forked evaluation: transformers against the trace (twin, float32, bfloat16)"
  for dtype in float32 bfloat16; do
    $PY bench/load_times.py $T/twin --dtype $dtype --repeats 5 --json "$OUT/load_$dtype.json" \
      2>&1 | grep -v "Loading weights"
  done
  targets
fi

if wants targets; then
  targets
fi

if wants gpus; then
  # Issue 15: each experiment from empty with one evaluation at a time (--resources gpu=1), then
  # with every GPU; the metrics rows say which GPU each job held and when.
  default_config
  glue_config
  nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader
  for experiment in default:$T/gpu_config.yaml glue:$T/gpu_glue.yaml; do
    name=${experiment%%:*} config=${experiment#*:}
    for gpus in 1 all; do
      step "$name experiment, --cores $(nproc), gpus: $gpus, from an empty results/"
      if [ "$gpus" = 1 ]; then limit="--resources gpu=1"; else limit=""; fi
      pipeline_run "$(nproc)" "$config" "${name}_gpus$gpus" $limit
      cp results/model_performance.csv "$OUT/${name}_gpus$gpus.csv" 2>/dev/null
      rm -rf "$T/predictions_${name}_$gpus" && cp -r results/predictions "$T/predictions_${name}_$gpus"
    done
    $PY bench/gpu_runs.py "$T/predictions_${name}_1" "$T/predictions_${name}_all" \
      "$OUT/${name}_gpus1.csv" "$OUT/${name}_gpusall.csv" "$OUT/jobs_${name}_gpus1.json" \
      "$OUT/jobs_${name}_gpusall.json"
  done
fi

if wants latency; then
  # Issue 21: per dtype and model kind, glueperf's single-request p50/p90/p99/max against the
  # bare forward pass (target p50 within 1.5x) and transformers.pipeline at batch size 1, p99
  # against p50 (within 2x); the offline pass's energy and the NVML counter's update period.
  # About a minute a model (loads, three traces, 500 requests x 4 ways x 3 dtypes).
  [ -d $T/twin ] || $PY bench/save_twin.py $TOKENIZER $T/twin
  for model in ${LATENCY_MODELS:-$T/twin $C/models/minilm-sst2}; do
    [ -d "$model" ] || { echo "latency: no $model, left out"; continue; }
    step "latency and energy, $(basename "$model"), SST-2 validation"
    $PY bench/latency_bench.py --model "$model" --data $C/data/sst2/validation.parquet \
      --requests "${LATENCY_REQUESTS:-500}" --json "$OUT/latency_$(basename "$model").json" 2>&1 |
      grep -v "Loading weights\|deprecated"
  done
fi
