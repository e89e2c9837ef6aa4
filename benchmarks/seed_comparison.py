"""Compare two sets of ChemProt runs (ours and the Hugging Face peer) over their seeds.

    python benchmarks/seed_comparison.py --answer_path=/tmp/chemprot_formatted/test.tsv \
        --ours=DIR[,DIR...] --peer=DIR[,DIR...]

Each DIR holds a run's test_results.tsv (run_re.py's, or peer_hf_chemprot.py's: class probabilities in
biobert.relation.LABELS order). Scores every run with biobert.re_eval (micro P/R/F1 over the five CPR classes)
and prints one row per run with its CPR:5 predictions (the rare class whose loss separates weak runs), then per
side the median, mean and standard deviation, and for the difference between the sides: the Welch standard
error of the means, and permutation tests (every way of splitting the pooled F1s into groups of the two sizes,
or 200000 random splits, seeded, when there are over ten million ways) of how often a split gives a gap in
means, or in medians, at least as far below zero as the one observed.

An item of --ours or --peer may also be a micro-F1 in percent (a run scored earlier whose folder is gone, as
the figures in BENCHMARKS.md): it enters the statistics, and its row shows only that figure.

With --paired the two lists are pairs of runs on the same draws (the same batches and classifier initialisation:
benchmarks/replay_run_re.py, ``peer_hf_chemprot.py --replay``): it adds each pair's difference, their mean and
standard error, and the exact sign-flip test (every choice of signs of the differences) of how often chance gives
a mean difference at least as far below zero.

With --paired, --control lists, pair by pair, a second run of the peer on the same draws with another dropout seed
(a micro-F1 or a run folder; ``-`` where there is none). That measures what the dropout stream alone moves a run on
fixed draws: it adds the peer-against-itself differences (control - peer) and the permutation test of whether
ours-against-the-peer differences sit lower than those by more than chance.
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
    """(micro-F1 in percent, re_eval's result or None) of an item of --ours/--peer/--control: a figure as it
    is, or a run folder scored against ``answer_path``."""
    figure = as_figure(item)
    if figure is not None:
        return figure, None
    if not answer_path:
        parser.error(f"{item} is a run folder: --answer_path is needed to score it")
    result = score(item, answer_path)
    return 100 * result["f1"], result


def standard_error(values):
    """Standard error of the mean of ``values`` (nan for fewer than two)."""
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")


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
    parser.add_argument("--paired", action="store_true",
                        help="--ours and --peer list runs on the same draws, pair by pair in order.")
    parser.add_argument("--control",
                        help="With --paired: per pair, in order, the peer again on the same draws with another "
                             "dropout seed (micro-F1 in percent or a run folder), '-' where there is none.")
    args = parser.parse_args(argv)
    if args.control and not args.paired:
        parser.error("--control needs --paired")

    f1 = {}
    print(f"| side | run | micro P | R | F1 | {RARE} predicted / gold | {RARE} F1 |")
    print("|---|---|---|---|---|---|---|")
    for side in ("ours", "peer"):
        f1[side] = []
        for run_dir in (d.strip() for d in getattr(args, side).split(",") if d.strip()):
            figure, result = item_f1(run_dir, args.answer_path, parser)
            f1[side].append(figure)
            if result is None:
                print(f"| {side} | (scored earlier) | - | - | {figure:.2f} | - | - |")
                continue
            rare = result["per_class"][RARE]
            print(f"| {side} | {run_dir} | {100 * result['precision']:.2f} | {100 * result['recall']:.2f} | "
                  f"{figure:.2f} | {rare['predicted']} / {rare['gold']} | {100 * rare['f1']:.2f} |")
    ours, peer = f1["ours"], f1["peer"]
    print(summary("ours", ours))
    print(summary("peer", peer))
    gap = statistics.mean(ours) - statistics.mean(peer)
    se = math.sqrt(statistics.variance(ours) / len(ours) + statistics.variance(peer) / len(peer))
    print(f"means: ours - peer {gap:+.2f}, standard error {se:.2f} ({gap / se:+.2f} SE)")
    print(f"medians: ours - peer {statistics.median(ours) - statistics.median(peer):+.2f}")
    for name, statistic in (("means", statistics.mean), ("medians", statistics.median)):
        p, how = permutation_p(ours, peer, statistic)
        print(f"permutation p (a gap in {name} this low or lower by chance): {p:.3f} ({how})")
    if args.paired:
        paired(ours, peer)
        if args.control:
            control = [None if item.strip() == "-" else item_f1(item.strip(), args.answer_path, parser)[0]
                       for item in args.control.split(",")]
            controlled(ours, peer, control)
    return 0


def controlled(ours, peer, control):
    """Ours - peer against control - peer (the peer with another dropout stream on the same draws)."""
    if len(control) != len(peer):
        raise SystemExit(f"error: --control needs one item per pair ({len(peer)}), '-' where there is none; "
                         f"got {len(control)}")
    ours_diffs = [a - b for a, b in zip(ours, peer)]
    control_diffs = [c - b for c, b in zip(control, peer) if c is not None]
    if not control_diffs:
        raise SystemExit("error: --control has no run (every item is '-')")
    se = standard_error(control_diffs)
    print("control differences (the peer again - the peer): " + ", ".join(f"{d:+.2f}" for d in control_diffs))
    print(f"control: mean {statistics.mean(control_diffs):+.2f}, standard error {se:.2f}, "
          f"{len(control_diffs)} of {len(peer)} pairs")
    for name, statistic in (("means", statistics.mean), ("medians", statistics.median)):
        gap = statistic(ours_diffs) - statistic(control_diffs)
        p, how = permutation_p(ours_diffs, control_diffs, statistic)
        print(f"ours - peer against the peer - itself, {name}: {gap:+.2f}, permutation p (this low or lower by "
              f"chance) {p:.3f} ({how})")


def paired(ours, peer):
    """Pair-by-pair differences (ours - peer), their mean and standard error, and the sign-flip test."""
    if len(ours) != len(peer):
        raise SystemExit(f"error: --paired needs as many --ours runs ({len(ours)}) as --peer runs ({len(peer)})")
    diffs = [a - b for a, b in zip(ours, peer)]
    mean = statistics.mean(diffs)
    se = standard_error(diffs)
    flips = list(itertools.product((1, -1), repeat=len(diffs)))
    at_most = sum(statistics.mean(d * f for d, f in zip(diffs, signs)) <= mean + 1e-12 for signs in flips)
    print("paired differences (ours - peer): " + ", ".join(f"{d:+.2f}" for d in diffs))
    print(f"paired: mean {mean:+.2f}, standard error {se:.2f}, ours ahead in {sum(d >= 0 for d in diffs)} of "
          f"{len(diffs)}, sign-flip p (a mean this low or lower by chance) {at_most / len(flips):.3f}")


if __name__ == "__main__":
    sys.exit(main())
