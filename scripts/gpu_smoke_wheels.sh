#!/usr/bin/env bash
# Build the wheel bundle that scripts/gpu_smoke.sh installs on an offline GPU machine.
#
# That machine's Python (3.12) has torch, peft, accelerate, numpy, pandas, pyarrow, aiohttp, httpx...
# but not trl, hydra-core, omegaconf, mlflow, datasets or openai. This downloads, with no dependencies
# resolved by pip (the machine's own packages cover the rest), exactly the versions installed in this
# project's venv (so the smoke runs the stack CI tests), plus transformers at our pin: the machine's
# transformers (5.17) is outside verl's and our range (<5.11), and ours needs tokenizers<=0.23.0 (the
# machine has 0.23.2). Everything must fit the 64 MiB that
# travels with the working tree; the script prints the total and fails above 48 MiB (the rest is the
# repository and the tiny model).
#
#   bash scripts/gpu_smoke_wheels.sh [DEST=.whl] [PYTHON_VERSION=3.12]
# DEST should be git-ignored (echo /.whl/ >> .git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PYVER=${2:-3.12}
PY=${PYTHON:-.venv/bin/python}
# Not on the GPU image (KINDS.md's package list), needed on the `engine=trl` path with an
# OpenAI-compatible judge and the local sqlite MLflow store.
PACKAGES=(
  trl transformers tokenizers datasets dill multiprocess
  hydra-core omegaconf
  mlflow-skinny mlflow-tracing sqlalchemy alembic mako greenlet sqlparse
  opentelemetry-api opentelemetry-sdk opentelemetry-proto opentelemetry-semantic-conventions
  importlib-metadata cachetools python-dotenv gitpython gitdb smmap databricks-sdk google-auth
  pyasn1 pyasn1-modules rsa fastapi starlette uvicorn cryptography cffi pycparser
  openai httpx2 httpcore2 truststore jiter pydantic pydantic-core annotated-types typing-inspection sniffio distro
)
SDIST_ONLY=(antlr4-python3-runtime)   # hydra's parser: published as a source archive only (pure Python)

version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null; }

rm -rf "$DEST" && mkdir -p "$DEST"
specs=()
for name in "${PACKAGES[@]}"; do
  v=$(version "$name") || { echo "skip $name: not installed in $PY (not needed by this version of the stack)"; continue; }
  specs+=("$name==$v")
done
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${specs[@]}"
for name in "${SDIST_ONLY[@]}"; do
  v=$(version "$name")
  "$PY" -m pip wheel -q --no-deps -w "$DEST" "$name==$v"
done
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "$(ls "$DEST"/*.whl | wc -l) wheels, $((total / 1024 / 1024)) MiB in $DEST"
if (( total > 48 * 1024 * 1024 )); then echo "the bundle is over 48 MiB: it would not travel" >&2; exit 1; fi
