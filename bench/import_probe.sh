#!/usr/bin/env bash
# Why the fork server's imports take longer than the one-process ideal's (BENCHMARKS.md, session
# 11: ready 5.8-6.6 s after its start, in --cores 1 runs too, against 4.73 s for the ideal's
# imports). In fresh interpreters, alternately with and without torch's NVML-based CUDA check,
# which the server sets (PYTORCH_NVML_BASED_CUDA_CHECK=1): torch, transformers, modeling_auto
# and BERT's module one by one; the ideal's imports (bench/glue_one_process.py's); the server's
# (glueperf/infra/forkserver.py: PRELOAD) as the server runs them (from /, the repository's
# scripts on sys.path); torch.cuda.is_available(). Then -X importtime of the ideal's and the
# server's imports with the check on, into $OUT (it_ideal.txt, it_server.txt).
# Run on the GPU machine from the repository root. PY: the Python to time (gpu_session.sh passes
# its user environment's); COMPILE=0 skips compiling site-packages' bytecode (about 1 min), which
# gpu_session.sh has done.
set -u
PY=${PY:-python3}
case $PY in */*) PY=$(realpath -s "$PY") ;; esac  # the probes run from /
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ "${COMPILE:-1}" = 1 ]; then
  SP=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  $PY -m compileall -q -j 0 "$SP" >/dev/null 2>&1
fi
SCRIPTS=$(pwd)/scripts
steps='import time
t = time.perf_counter()
import torch; a = time.perf_counter()
import transformers; b = time.perf_counter()
import transformers.models.auto.modeling_auto; c = time.perf_counter()
import transformers.models.bert.modeling_bert; d = time.perf_counter()
print(f"torch {a-t:.2f} transformers {b-a:.2f} modeling_auto {c-b:.2f} bert {d-c:.2f} total {d-t:.2f}")'
ideal="import sys; sys.path[:0] = ['$SCRIPTS', '$(pwd)/bench']
import torch, numpy, yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer
import glueperf.engine, glueperf.evaluation, glueperf.measure, glueperf.metrics, glueperf.models
import glueperf.tasks, glueperf.validation"
server="import sys, importlib; sys.path.append('$SCRIPTS')
from glueperf.infra.forkserver import PRELOAD
for name in PRELOAD: importlib.import_module(name)"
cuda='import torch
t = time.perf_counter(); found = torch.cuda.is_available()
print(f"is_available {found} in {time.perf_counter() - t:.2f} s")'
timed() {  # $1: what, $2: code; the seconds from before the code to after it
  echo -n "$1: "
  (cd / && $PY -c "import time; t = time.perf_counter()
$2
print(f'{time.perf_counter() - t:.2f} s')")
}
for round in $(seq ${ROUNDS:-3}); do
  for check in 1 0; do
    echo "--- round $round, NVML check $([ $check = 1 ] && echo on || echo off)"
    (
      [ $check = 1 ] && export PYTORCH_NVML_BASED_CUDA_CHECK=1
      (cd / && $PY -c "$steps")
      timed "the ideal's imports" "$ideal"
      timed "the server's imports" "$server"
      (cd / && $PY -c "import time
$cuda")
    )
  done
done
export PYTORCH_NVML_BASED_CUDA_CHECK=1
(cd / && $PY -X importtime -c "$ideal" 2> "$OUT/it_ideal.txt")
(cd / && $PY -X importtime -c "$server" 2> "$OUT/it_server.txt")
for which in ideal server; do
  echo "--- -X importtime, $which: the slowest modules by their own microseconds"
  awk -F'|' '/^import time: +[0-9]/ {split($1, own, ":"); print own[2] + 0, $2 + 0, $3}' \
    "$OUT/it_$which.txt" | sort -n | tail -12
done
