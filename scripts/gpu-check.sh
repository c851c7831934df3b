#!/usr/bin/env bash
# GPU check: what a CUDA machine with no internet runs, in under 8 minutes, to verify the GPU path:
# organism pretraining, evaluation (transformers; vLLM where installed) and a short RL run on CUDA,
# then the `gpu`-marked tests. Missing pure-Python packages travel as wheels in .whl/ (see README);
# vllm is not among them (too large to carry), so its backend is exercised only where vllm is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export CLAIMS_CACHE=/tmp/gpu-check-cache PYTHONUNBUFFERED=1 CLAIMS_PROGRESS=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY - <<'PY'
import importlib.metadata as m
for name in ("torch", "transformers", "trl", "accelerate", "datasets", "pyarrow", "vllm"):
    try:
        print(f"{name} {m.version(name)}")
    except m.PackageNotFoundError:
        print(f"{name} not installed")
PY
$PY -m bench.gpu --out "$OUT/gpu-check.json" 2>&1 | tee "$OUT/gpu-check.log"
status=${PIPESTATUS[0]}
$PY -m pytest tests/ -m gpu -q -p no:cacheprovider 2>&1 | tee "$OUT/gpu-tests.log"
exit $(( status || PIPESTATUS[0] ))
