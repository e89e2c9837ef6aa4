"""Compare two sets of ChemProt runs (ours and the Hugging Face peer) over their seeds.

    python benchmarks/seed_comparison.py --answer_path=/tmp/chemprot_formatted/test.tsv \
        --ours=DIR[,DIR...] --peer=DIR[,DIR...]

Each DIR holds a run's test_results.tsv (run_re.py's, or peer_hf_chemprot.py's: class probabilities in
biobert.relation.LABELS order). Scores every run with biobert.re_eval (micro P/R/F1 over the five CPR classes)
and prints one row per run with its CPR:5 predictions (the rare class whose loss separates weak runs), then per
side the median, mean and standard deviation, and for the difference between the sides: the Welch standard
error of the means with the one-sided 95 % bound it gives (normal approximation), and permutation tests (every way of splitting the pooled F1s into groups of the two sizes,
or 200000 random splits, seeded, when there are over ten million ways) of how often a split gives a gap in
means, or in medians, at least as far below zero as the one observed.

An item of --ours or --peer may also be a micro-F1 in percent (a run scored earlier whose folder is gone, as
the figures in BENCHMARKS.md): it enters the statistics but has no row.

Feeds BENCHMARKS.md, "ChemProt relation extraction": the result table (runs, mean, median, standard deviation,
the difference of the means with its standard error and one-sided 95 % bound, the permutation p-values). A run
counts as having lost CPR:5 when it predicts it fewer than 40 times (the table prints each folder's count).
"""
import argparse
import itertools
import math
import os
import random
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert import re_eval  # noqa: E402

RARE = "CPR:5"
LOST_BELOW = 40       # a run predicting CPR:5 fewer times than this has lost the class
Z95 = 1.645           # one-sided 95 % quantile of the normal distribution


def score(run_dir, answer_path):
    """re_eval's result for one run folder's test_results.tsv."""
    return re_eval.evaluate_files(os.path.join(run_dir, "test_results.tsv"), answer_path)


EXACT_LIMIT = 10_000_000   # splits enumerated one by one (C(28, 9) = 6.9 M takes minutes in Python)
RANDOM_SPLITS = 200_000     # beyond that: this many random splits (seeded), standard error of p under 0.0012


def permutation_p(ours, peer, statistic, exact_limit=EXACT_LIMIT, random_splits=RANDOM_SPLITS):
    """Share of the splits of ours+peer into groups of their sizes whose statistic(a) - statistic(b) is at most
    the observed one (one-sided: how often chance alone puts the first group this far below).

    Every split when there are at most ``exact_limit`` of them, else ``random_splits`` random ones (seed 0).
    Returns (p, how): how is "exact" or "<random_splits> random splits".
    """
    pooled = ours + peer
    observed = statistic(ours) - statistic(peer)
    if math.comb(len(pooled), len(ours)) <= exact_limit:
        splits, how = itertools.combinations(range(len(pooled)), len(ours)), "exact"
    else:
        rng = random.Random(0)
        splits = (rng.sample(range(len(pooled)), len(ours)) for _ in range(random_splits))
        how = f"{random_splits} random splits"
    at_most = total = 0
    for chosen in splits:
        picked = set(chosen)
        a = [pooled[i] for i in chosen]
        b = [x for i, x in enumerate(pooled) if i not in picked]
        total += 1
        at_most += statistic(a) - statistic(b) <= observed + 1e-12
    return at_most / total, how


def as_figure(item):
    """The F1 an item of --ours/--peer gives directly (a number), or None for a run folder."""
    try:
        return float(item)
    except ValueError:
        return None


def item_f1(item, answer_path, parser):
    """(micro-F1 in percent, re_eval's result or None) of an item of --ours/--peer: a figure as it is, or a
    run folder scored against ``answer_path``."""
    figure = as_figure(item)
    if figure is not None:
        return figure, None
    if not answer_path:
        parser.error(f"{item} is a run folder: --answer_path is needed to score it")
    result = score(item, answer_path)
    return 100 * result["f1"], result


def summary(name, f1s):
    sd = statistics.stdev(f1s) if len(f1s) > 1 else float("nan")
    return (f"{name}: {len(f1s)} runs, median {statistics.median(f1s):.2f}, mean {statistics.mean(f1s):.2f}, "
            f"sd {sd:.2f}, min {min(f1s):.2f}, max {max(f1s):.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answer_path", help="The formatted test.tsv (needed when a run folder is given).")
    parser.add_argument("--ours", required=True,
                        help="Comma-separated run folders of run_re.py, or micro-F1 figures in percent.")
    parser.add_argument("--peer", required=True,
                        help="Comma-separated run folders of peer_hf_chemprot.py, or micro-F1 figures in percent.")
    args = parser.parse_args(argv)

    f1, rows, lost = {}, [], {"ours": [], "peer": []}
    for side in ("ours", "peer"):
        f1[side] = []
        for run_dir in (d.strip() for d in getattr(args, side).split(",") if d.strip()):
            figure, result = item_f1(run_dir, args.answer_path, parser)
            f1[side].append(figure)
            if result is None:
                continue                # a figure scored earlier: it enters the statistics only
            rare = result["per_class"][RARE]
            lost[side].append(rare["predicted"] < LOST_BELOW)
            rows.append(f"| {side} | {run_dir} | {100 * result['precision']:.2f} | {100 * result['recall']:.2f} | "
                        f"{figure:.2f} | {rare['predicted']} / {rare['gold']} | {100 * rare['f1']:.2f} |")
    if rows:
        print(f"| side | run | micro P | R | F1 | {RARE} predicted / gold | {RARE} F1 |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(rows))
        for side, flags in lost.items():
            if flags:
                print(f"{side}: {RARE} lost (under {LOST_BELOW} predicted) in {sum(flags)} of {len(flags)} run folders")
    ours, peer = f1["ours"], f1["peer"]
    print(summary("ours", ours))
    print(summary("peer", peer))
    gap = statistics.mean(ours) - statistics.mean(peer)
    se = math.sqrt(statistics.variance(ours) / len(ours) + statistics.variance(peer) / len(peer))
    print(f"means: ours - peer {gap:+.2f}, standard error {se:.2f} ({gap / se:+.2f} SE)")
    print(f"one-sided 95 % bound (normal approximation): the peer's mean at most {-(gap - Z95 * se):.2f} "
          f"over ours")
    print(f"medians: ours - peer {statistics.median(ours) - statistics.median(peer):+.2f}")
    for name, statistic in (("means", statistics.mean), ("medians", statistics.median)):
        p, how = permutation_p(ours, peer, statistic)
        print(f"permutation p (a gap in {name} this low or lower by chance): {p:.3f} ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
