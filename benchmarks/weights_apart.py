"""How far two trainings' weights are apart, against how far they moved, per tensor group.

    python benchmarks/weights_apart.py --init=PEER_OUT/weights-0.npz A.npz B.npz [A2.npz B2.npz ...]

Each file holds Hugging Face BertForSequenceClassification tensors by name: the peer's
``peer_hf_chemprot.py --save_every`` dumps, or ours through ``benchmarks/ckpt_to_hf.py``. For each pair (A, B)
and each group (embeddings, each encoder layer, pooler, classifier, and all of them) it prints
||A - init||, ||B - init||, ||A - B|| and ||A - B|| / ||B - init||: two runs of the same computation from the same
start stay a small fraction apart, rounding aside.
"""
import argparse
import re
import sys

import numpy as np


def group(name):
    """The tensor group of a Hugging Face parameter name."""
    name = name[len("bert."):] if name.startswith("bert.") else name
    layer = re.match(r"encoder\.layer\.(\d+)\.", name)
    return f"layer{layer.group(1)}" if layer else name.split(".")[0]


def squared_distances(init, a, b):
    """{group: [sum (a - init)^2, sum (b - init)^2, sum (a - b)^2]} over the tensors ``init`` and ``b`` share."""
    sums = {}
    for name, w0 in init.items():
        if name not in b:
            continue
        if name not in a:
            raise SystemExit(f"error: {name} is in the initial weights and the second file but not the first")
        row = sums.setdefault(group(name), np.zeros(3))
        row += [((a[name] - w0) ** 2).sum(), ((b[name] - w0) ** 2).sum(), ((a[name] - b[name]) ** 2).sum()]
    if not sums:
        raise SystemExit("error: the files share no tensor names")
    sums["total"] = sum(sums.values())
    return sums


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", required=True, help="The weights both runs started from (.npz).")
    parser.add_argument("pairs", nargs="+", help="A.npz B.npz, pair after pair.")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("the weight files must come in pairs")
    init = dict(np.load(args.init))
    for a_path, b_path in zip(args.pairs[::2], args.pairs[1::2]):
        sums = squared_distances(init, dict(np.load(a_path)), dict(np.load(b_path)))
        print(f"{a_path} (A) against {b_path} (B)")
        print(f"{'group':12s} {'|A - init|':>11s} {'|B - init|':>11s} {'|A - B|':>11s} {'apart/moved':>11s}")
        for name, row in sums.items():
            moved_a, moved_b, apart = np.sqrt(row)
            print(f"{name:12s} {moved_a:11.5f} {moved_b:11.5f} {apart:11.6f} {apart / max(moved_b, 1e-12):11.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
