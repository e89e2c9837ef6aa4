#!/bin/bash
# Training-throughput benchmark: short fine-tuning runs over sequence lengths, batch sizes and
# precisions; collects throughput and latency of every run into one summary file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { bb_py usage benchmark train; }

bb_maybe_usage "$@"
bb_benchmark_main train "$@"
