"""benchmarks/seed_comparison.py (BENCHMARKS.md, ChemProt): the summary, the bound and the permutation test."""
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


def test_summary_and_one_sided_bound(capsys):
    # ours 59, 60, 61 (mean 60, variance 1), the peer 61, 62, 63 (mean 62, variance 1): gap -2,
    # standard error sqrt(1/3 + 1/3) = 0.8165, bound 2 + 1.645 x 0.8165 = 3.343
    assert seed_comparison.main(["--ours=59,60,61", "--peer=61,62,63"]) == 0
    out = capsys.readouterr().out
    assert "ours: 3 runs, median 60.00, mean 60.00, sd 1.00, min 59.00, max 61.00\n" in out
    assert "means: ours - peer -2.00, standard error 0.82 (-2.45 SE)\n" in out
    assert "the peer's mean at most 3.34 over ours\n" in out
    # of the 20 ways to split the six in 3 + 3, only 59, 60 and either 61 give a gap of -2 or lower in means
    assert "permutation p (a gap in means this low or lower by chance): 0.100 (exact)" in out


def test_a_run_folder_needs_the_answer_file():
    with pytest.raises(SystemExit):
        seed_comparison.main(["--ours=/nonexistent/run", "--peer=61,62"])
