#!/bin/bash
# Build the BioBERT TF2 image (tag: IMAGE, default "bert") from the repository root.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bash scripts/docker/build.sh [extra docker build arguments]
Builds the image from the repository's Dockerfile (FROM tensorflow/tensorflow:2.21.0-gpu).
Environment: IMAGE (tag) [bert], DRY_RUN=1 prints the docker command instead of running it.
USAGE
}
case "${1:-}" in -h | --help) usage; exit 0 ;; esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cmd=(docker build --rm -t "${IMAGE:-bert}" "$@" "$repo")
if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "DRY_RUN:"
    printf '%q ' "${cmd[@]}" | sed 's/ $//'
    echo
else
    "${cmd[@]}"
fi
