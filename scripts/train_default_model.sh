#!/usr/bin/env bash
# Reproduce the embedded default cross-encoder: BM25 mining on a private OpenSearch node,
# training on 2 CPU threads, int8 ONNX export into onnx_models/crossrank-minilm-l6-scifact.
#
#   scripts/train_default_model.sh [extra `crossrank train` options...]
#
# Environment: CROSSRANK_TRAIN_OPENSEARCH=URL uses a running node instead of starting one;
# CROSSRANK_TRAIN_PORT (default 9288) and CROSSRANK_TRAIN_HOME (default .crossrank/train-os)
# place the private node. Needs the train extra (`make venv` installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

url="${CROSSRANK_TRAIN_OPENSEARCH:-}"
if [[ -z "$url" ]]; then
    port="${CROSSRANK_TRAIN_PORT:-9288}"
    home="${CROSSRANK_TRAIN_HOME:-.crossrank/train-os}"
    "$BIN/crossrank" opensearch start --port "$port" --home "$home"
    trap '"$BIN/crossrank" opensearch stop --port "$port" --home "$home"' EXIT
    url="http://127.0.0.1:$port"
fi

began=$(date +%s)
"$BIN/python" -m crossrank.train --opensearch "$url" \
    --out onnx_models/crossrank-minilm-l6-scifact "$@"
echo "train_default_model.sh: $(( $(date +%s) - began )) s in all"
