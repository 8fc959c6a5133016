#!/usr/bin/env bash
# Resolve the `gpu` and `verl` extras beside the pinned core with pip's resolver, without installing
# or downloading wheels: `pip install --dry-run --report` reads each candidate's metadata (PyPI serves
# it apart from the wheel, PEP 658), so vLLM's and torch's multi-GB wheels are not fetched.
# Fails when no set of versions satisfies setup.cfg; prints the versions chosen for the key packages.
#   bash scripts/check_gpu_extra.sh [REPORT=/tmp/longwriter_gpu_resolve.json]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
report="${1:-${TMPDIR:-/tmp}/longwriter_gpu_resolve.json}"
PY="${PYTHON:-$root/.venv/bin/python}"
# --ignore-installed: resolve from scratch (as on a fresh GPU node), not against this venv.
"$PY" -m pip install --dry-run --ignore-installed --quiet --report "$report" "$root[gpu,verl]" \
  2> >(grep -v "^WARNING: Location" >&2)
"$PY" - "$report" <<'PY'
import json, sys
chosen = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
for name in ("torch", "transformers", "vllm", "verl", "trl", "flashinfer-python", "ray"):
    print(f"{name}=={chosen.get(name, 'MISSING')}")
missing = [n for n in ("torch", "transformers", "vllm", "verl", "trl") if n not in chosen]
sys.exit(f"not resolved: {missing}" if missing else 0)
PY
