"""benchmarks/seed_comparison.py: the permutation test, exact and by random splits."""
import statistics

import pytest
from helpers import load_script

seed_comparison = load_script("benchmarks/seed_comparison.py", "seed_comparison")


def test_exact_permutation_p_counts_every_split():
    # 6 ways to split {1, 2, 3, 4} in two pairs; only {1, 2} has a mean gap of -2 or lower.
    p, how = seed_comparison.permutation_p([1.0, 2.0], [3.0, 4.0], statistics.mean)
    assert (p, how) == (pytest.approx(1 / 6), "exact")
    # {1, 3} vs {2, 4} (gap -1): {1, 2} and {1, 3} are at or below it.
    p, _ = seed_comparison.permutation_p([1.0, 3.0], [2.0, 4.0], statistics.mean)
    assert p == pytest.approx(2 / 6)


def test_random_splits_agree_with_the_exact_count():
    ours = [60.1, 58.2, 61.5, 59.0, 57.7, 62.3, 60.8, 58.9]
    peer = [61.2, 63.0, 59.4, 62.1, 60.5]
    exact, how = seed_comparison.permutation_p(ours, peer, statistics.median)
    assert how == "exact"
    sampled, how = seed_comparison.permutation_p(ours, peer, statistics.median, exact_limit=10, random_splits=20000)
    assert how == "20000 random splits"
    assert sampled == pytest.approx(exact, abs=0.015)
    again, _ = seed_comparison.permutation_p(ours, peer, statistics.median, exact_limit=10, random_splits=20000)
    assert again == sampled                                     # seeded: the same figure on every run


def test_control_differences_and_their_permutation_test(capsys):
    # ours - peer: +1, +2; the peer again - the peer: +3 (second pair has no control).
    # Splits of {1, 2, 3} into 2 + 1: gaps -1.5, 0, +1.5, so p = 1/3 for the means.
    seed_comparison.controlled([61.0, 62.0], [60.0, 60.0], [63.0, None])
    out = capsys.readouterr().out
    assert "control differences (the peer again - the peer): +3.00\n" in out
    assert "control: mean +3.00, standard error nan, 1 of 2 pairs" in out
    assert "means: -1.50, permutation p (this low or lower by chance) 0.333 (exact)" in out


def test_control_from_the_command_line_skips_dashes(capsys):
    assert seed_comparison.main(["--paired", "--ours=59,60,61", "--peer=61,61,61", "--control=61.5,-,60.5"]) == 0
    out = capsys.readouterr().out
    assert "control differences (the peer again - the peer): +0.50, -0.50\n" in out
    # ours' differences -2, -1, 0 against +0.5, -0.5: of the 10 ways to pick 3 of the 5 as ours, a mean gap of
    # -1 or lower needs a sum of -3 or lower: {-2, -1, 0} and {-2, -1, -0.5}
    assert "means: -1.00, permutation p (this low or lower by chance) 0.200 (exact)" in out


def test_control_needs_paired_and_one_item_per_pair():
    with pytest.raises(SystemExit):
        seed_comparison.main(["--ours=59,60", "--peer=61,61", "--control=61,61"])
    with pytest.raises(SystemExit, match="one item per pair"):
        seed_comparison.main(["--paired", "--ours=59,60", "--peer=61,61", "--control=61"])
