#!/usr/bin/env bash
# Why the fork server's imports take longer than the one-process ideal's (BENCHMARKS.md, session
# 11: ready 5.8-6.6 s after its start, in --cores 1 runs too, against 4.73 s for the ideal's
# imports): torch, transformers, modeling_auto and BERT's module timed in fresh interpreters,
# alternately with and without torch's NVML-based CUDA check, which the server sets
# (PYTORCH_NVML_BASED_CUDA_CHECK=1), then -X importtime of each into $OUT (it1.txt, it0.txt).
# Run on the GPU machine from the repository root; compiles site-packages' bytecode first, as a
# user's install has it (about 1 min).
set -u
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
SP=$($PY -c 'import site; print(site.getsitepackages()[0])')
$PY -m compileall -q -j 16 "$SP" >/dev/null 2>&1
code='import time
t = time.perf_counter()
import torch; a = time.perf_counter()
import transformers; b = time.perf_counter()
import transformers.models.auto.modeling_auto; c = time.perf_counter()
import transformers.models.bert.modeling_bert; d = time.perf_counter()
print(f"torch {a-t:.2f} transformers {b-a:.2f} modeling_auto {c-b:.2f} bert {d-c:.2f} total {d-t:.2f}")'
for round in 1 2 3; do
  echo -n "NVML check on:  "; PYTORCH_NVML_BASED_CUDA_CHECK=1 $PY -c "$code"
  echo -n "NVML check off: "; $PY -c "$code"
done
modules="import torch, transformers, transformers.models.auto.modeling_auto"
PYTORCH_NVML_BASED_CUDA_CHECK=1 $PY -X importtime -c "$modules" 2> "$OUT/it1.txt"
$PY -X importtime -c "$modules" 2> "$OUT/it0.txt"
