"""Training batches: padding, resuming at a batch, length-grouped or plainly shuffled epochs, length-sorted parts
of a batch; and batches prepared ahead on a thread."""
import numpy as np
import pytest
from helpers import toy_features

from biobert import batching


def test_training_batches_resume_position_and_padding():
    feats = toy_features(n=70)
    full = batching.training_batches(feats, 8, 32, seed=5)
    first = [next(full) for _ in range(12)]          # 8 batches an epoch: crosses into epoch 2
    resumed = batching.training_batches(feats, 8, 32, seed=5, start_step=9)
    for expected in first[9:]:
        got = next(resumed)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
    batch = first[0]
    assert batch["input_ids"].shape[1] % 32 == 0 or batch["input_ids"].shape[1] == 32
    np.testing.assert_array_equal(batch["input_mask"].sum(1), (batch["input_ids"] > 0).sum(1))
    epoch = {tuple(r[r > 0]) for b in first[:8] for r in b["input_ids"]}
    assert len(epoch) == 64                           # one epoch: 8 full batches of distinct examples


def test_training_batches_grouped_by_length_or_plainly_shuffled():
    feats = toy_features(n=96)
    lengths = {tuple(f["input_ids"]): len(f["input_ids"]) for f in feats}

    def row_lengths(batch):
        return [lengths[tuple(r[r > 0])] for r in batch["input_ids"]]

    def epoch(sort_window):
        batches = batching.training_batches(feats, 8, 32, seed=4, pad_multiple=1, sort_window=sort_window)
        return [row_lengths(next(batches)) for _ in range(12)]

    def overlapping_pairs(epoch_lengths):
        ranges = [(min(b), max(b)) for b in epoch_lengths]
        return sum(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(ranges) for b in ranges[i + 1:])

    grouped, plain = epoch(64), epoch(1)              # one window of 64 batches holds the whole epoch
    for batches in (grouped, plain):
        assert sorted(n for b in batches for n in b) == sorted(lengths.values())
    # Grouped: each batch holds a run of the length-sorted epoch, so no two batches' length ranges cross and
    # the batches pad to fewer positions; plainly shuffled: mixed lengths in every batch.
    assert overlapping_pairs(grouped) == 0 and overlapping_pairs(plain) > 30
    assert sum(8 * max(b) for b in grouped) < 0.8 * sum(8 * max(b) for b in plain)
    resumed = batching.training_batches(feats, 8, 32, seed=4, pad_multiple=1, sort_window=1, start_step=5)
    assert row_lengths(next(resumed)) == plain[5]


def test_batch_parts_cut_each_plain_batch_by_length():
    assert [batching.batch_parts(n) for n in (32, 64, 16, 24, 8, 12, 1)] == [4, 4, 2, 3, 1, 1, 1]
    feats = toy_features(n=96)
    lengths = {tuple(f["input_ids"]): len(f["input_ids"]) for f in feats}

    def rows(batch):
        return [tuple(r[r > 0]) for r in batch["input_ids"]]

    whole = batching.training_batches(feats, 16, 32, seed=6, pad_multiple=1, sort_window=1)
    cut = batching.training_batches(feats, 16, 32, seed=6, pad_multiple=1, sort_window=1, parts=4)
    tuples = [next(cut) for _ in range(8)]                      # 6 batches an epoch: crosses into epoch 2
    for quarter in tuples:
        batch = next(whole)
        assert isinstance(quarter, tuple) and len(quarter) == 4
        # The same rows train together as without parts, cut in length order, each part padded to its longest.
        assert sorted(r for p in quarter for r in rows(p)) == sorted(rows(batch))
        part_lengths = [[lengths[r] for r in rows(p)] for p in quarter]
        flat = [n for p in part_lengths for n in p]
        assert flat == sorted(flat) and all(len(p) == 4 for p in part_lengths)
        assert [p["input_ids"].shape[1] for p in quarter] == [max(p) for p in part_lengths]
    padded = sum(p["input_ids"].size for quarter in tuples for p in quarter)
    assert padded < 0.8 * sum(16 * max(lengths[r] for p in quarter for r in rows(p)) for quarter in tuples)
    # Resuming counts batches; flat_parts gives the parts one by one, in order.
    resumed = batching.training_batches(feats, 16, 32, seed=6, pad_multiple=1, sort_window=1, parts=4,
                                        start_step=5)
    assert [rows(p) for p in next(resumed)] == [rows(p) for p in tuples[5]]
    flat_parts = batching.flat_parts(iter(tuples[:2]))
    assert [rows(next(flat_parts)) for _ in range(8)] == [rows(p) for quarter in tuples[:2] for p in quarter]
    with pytest.raises(ValueError, match="4 equal parts"):
        next(batching.training_batches(feats, 18, 32, seed=6, parts=4))


def test_prefetch_keeps_the_order_and_raises_the_producers_error_where_its_item_would_be():
    def items():
        yield from range(5)
        raise ValueError("bad line 6")

    got = []
    with pytest.raises(ValueError, match="bad line 6"):
        for item in batching.prefetch(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
