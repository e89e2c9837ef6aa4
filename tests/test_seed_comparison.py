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
