#!/bin/bash
# Start the BioBERT TF2 container with all GPUs, the repository at /workspace/bert, an optional
# external data root (DATA_DIR) at /data and the results folder at /results.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bash scripts/docker/launch.sh [command ...]      (default command: bash)
Runs: docker run --gpus all -it --rm ... -v <repo>:/workspace/bert -v <results>:/results
      [-v $DATA_DIR:/data -e DATA_ROOT=/data] --workdir=/workspace/bert <image> <command>
The repository's own data/ folder is the default data root (visible through the repository
mount); DATA_DIR mounts a data root kept elsewhere at /data and points DATA_ROOT at it.
Environment: IMAGE [bert], DATA_DIR [unset], RESULTS_DIR [<repo>/results],
NVIDIA_VISIBLE_DEVICES [all], DRY_RUN=1 prints the docker command instead of running it.
USAGE
}
case "${1:-}" in -h | --help) usage; exit 0 ;; esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data_flags=()
if [ -n "${DATA_DIR:-}" ]; then
    data_flags=(-v "$(cd "$DATA_DIR" && pwd):/data" -e DATA_ROOT=/data)
fi
results="${RESULTS_DIR:-$repo/results}"
if [ "$#" -eq 0 ]; then set -- bash; fi
cmd=(docker run --gpus all --rm -it
     --net=host --shm-size=1g --ulimit memlock=-1 --ulimit stack=67108864
     -e "NVIDIA_VISIBLE_DEVICES=${NVIDIA_VISIBLE_DEVICES:-all}"
     -v "$repo:/workspace/bert"
     "${data_flags[@]}"
     -v "$results:/results"
     --workdir=/workspace/bert
     "${IMAGE:-bert}" "$@")
if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "DRY_RUN:"
    printf '%q ' "${cmd[@]}" | sed 's/ $//'
    echo
else
    mkdir -p "$results"
    "${cmd[@]}"
fi
