#!/usr/bin/env bash
# The GPU check (benchmarks/gpu/check.py): run from the repository root after the project's own
# install step (`pip install -e ".[dev]"`, torch with CUDA). Fails at once, with one sentence,
# on a machine without a CUDA device. Writes gpu_check.json and gpu_check.md (default
# benchmarks/results/gpu; `--out DIR` to change it, e.g. --out "$OUT" on the device tool).
set -uo pipefail
cd "$(dirname "$0")/../.."
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    if ! python -c "import torch" 2>/dev/null; then
        echo "gpu check: torch does not import; install the project first: pip install -e '.[dev]'" >&2
        exit 2
    fi
    echo "gpu check: no CUDA device is visible to torch; run this on a machine with one NVIDIA GPU" >&2
    exit 3
fi
export PYTHONUNBUFFERED=1
exec timeout 470 python benchmarks/gpu/check.py "$@"
