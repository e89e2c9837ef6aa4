"""Pre-training instances on the real 1 MB PubMed sample: masking statistics, pairs, TFRecords, determinism."""
import collections
import pathlib
import random
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "data"))

import TextSharding  # noqa: E402
from biobert import pretraining_data as pd  # noqa: E402
from biobert import tokenization  # noqa: E402
from biobert.errors import InputError  # noqa: E402

MAX_SEQ, MAX_PRED = 128, 20


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
    return tokenization.FullTokenizer(vocab_file=str(uncased_vocab), do_lower_case=True)


@pytest.fixture(scope="module")
def sentences_file(shared_data, tmp_path_factory):
    """The 1 MB sample (one article per line) segmented into sentence-per-line documents."""
    text = (shared_data / "pubmed" / "PubMedAbstract_1MB.txt").read_text(encoding="utf-8")
    seg = TextSharding.NLTKSegmenter(train_text=text, use_downloaded=False)
    path = tmp_path_factory.mktemp("pubmed") / "sentences.txt"
    with open(path, "w", encoding="utf-8") as out:
        for line in text.splitlines():
            if line.strip():
                out.write("\n".join(seg.segment_string(line)) + "\n\n")
    return path


@pytest.fixture(scope="module")
def documents(sentences_file, tokenizer):
    return pd.read_documents([str(sentences_file)], pd.CachedTokenizer(tokenizer))


@pytest.fixture(scope="module")
def vocab_info(tokenizer):
    return pd.VocabInfo(tokenizer.vocab)


@pytest.fixture(scope="module")
def instances(documents, vocab_info):
    return pd.create_training_instances(documents, vocab_info, MAX_SEQ, 2, 0.1, 0.15, MAX_PRED, random.Random(7))


def _original(instance):
    """The instance's tokens before masking."""
    tokens = list(instance.tokens)
    for pos, label in zip(instance.masked_lm_positions, instance.masked_lm_labels):
        tokens[pos] = label
    return tokens


def test_cached_tokenizer_matches_tokenizer(sentences_file, tokenizer):
    cached = pd.CachedTokenizer(tokenizer)
    lines = [line for line in sentences_file.read_text(encoding="utf-8").splitlines() if line][:400]
    lines += ["Caf\u00e9 \u00c9COLE  tab\there", "a\x0bb c\x1cd", "x\u2028y \u4e2d\u6587 (IL-2)-induced"]
    for line in lines:
        assert cached.ids(line) == tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)), line


def test_documents_follow_the_blank_lines(sentences_file, documents):
    text = sentences_file.read_text(encoding="utf-8")
    assert len(documents) == len([d for d in text.split("\n\n") if d.strip()])
    assert sum(len(d) for d in documents) == len([line for line in text.splitlines() if line.strip()])


def test_instance_structure(instances, vocab_info):
    cls, sep, mask = vocab_info.cls_id, vocab_info.sep_id, vocab_info.mask_id
    assert len(instances) > 4000
    short = 0
    for inst in instances:
        n = len(inst.tokens)
        assert n <= MAX_SEQ and len(inst.segment_ids) == n
        original = _original(inst)
        seps = [i for i, t in enumerate(original) if t == sep]
        assert original[0] == cls and len(seps) == 2 and seps[1] == n - 1 and cls not in original[1:]
        assert inst.segment_ids == [0] * (seps[0] + 1) + [1] * (n - seps[0] - 1)
        assert seps[0] >= 2 and n - seps[0] >= 3  # A and B are non-empty
        positions = inst.masked_lm_positions
        assert positions == sorted(set(positions))
        assert all(original[p] not in (cls, sep) for p in positions)
        assert inst.tokens[0] == cls and inst.tokens[seps[0]] == sep and inst.tokens[-1] == sep
        # exactly Google's number of predictions when every token is its own candidate
        assert len(positions) == min(MAX_PRED, max(1, int(round(n * 0.15))))
        unmasked = set(range(n)) - set(positions)
        assert all(inst.tokens[i] != mask for i in unmasked)
        short += n < MAX_SEQ - 10
    # short_seq_prob 0.1 plus document ends: some but far from all are short
    assert 0.1 < short / len(instances) < 0.6


def test_masking_statistics(instances, vocab_info):
    tokens = sum(len(i.tokens) for i in instances)
    masked = collections.Counter()
    for inst in instances:
        for pos, label in zip(inst.masked_lm_positions, inst.masked_lm_labels):
            out = inst.tokens[pos]
            masked["mask" if out == vocab_info.mask_id else "same" if out == label else "random"] += 1
    total = sum(masked.values())
    assert total > 50000
    assert abs(total / tokens - 0.15) < 0.01
    assert abs(masked["mask"] / total - 0.8) < 0.01
    # 10% kept, plus the rare random draw of the same token
    assert abs(masked["same"] / total - 0.1) < 0.01
    assert abs(masked["random"] / total - 0.1) < 0.01


def test_next_sentence_balance(instances):
    single = [i for i in instances if i.num_segments == 1]
    multi = [i for i in instances if i.num_segments >= 2]
    assert all(i.is_random_next for i in single)  # a one-sentence chunk can only pair with another document
    share = sum(i.is_random_next for i in multi) / len(multi)
    assert len(multi) > 3000 and abs(share - 0.5) < 0.03
    overall = sum(i.is_random_next for i in instances) / len(instances)
    assert overall == pytest.approx((len(single) + share * len(multi)) / len(instances))


def test_whole_word_masking_never_splits_a_word(documents, vocab_info):
    insts = pd.create_training_instances(documents[:300], vocab_info, MAX_SEQ, 1, 0.1, 0.15, MAX_PRED,
                                         random.Random(3), do_whole_word_mask=True)
    words_with_pieces = 0
    for inst in insts:
        original = _original(inst)
        chosen = set(inst.masked_lm_positions)
        assert len(chosen) <= MAX_PRED
        word = []
        for i, tok in enumerate(original + [vocab_info.sep_id]):
            if word and not (tok in vocab_info.subword_ids and tok not in (vocab_info.cls_id, vocab_info.sep_id)):
                flags = {p in chosen for p in word}
                assert len(flags) == 1, (word, chosen)
                words_with_pieces += len(word) > 1 and flags == {True}
                word = []
            if tok not in (vocab_info.cls_id, vocab_info.sep_id):
                word.append(i)
    assert words_with_pieces > 100  # multi-piece words were masked, all pieces together


def test_tfrecords_through_pretraining_dataset(sentences_file, tokenizer, tmp_path, vocab_info, documents):
    import tensorflow as tf

    out = tmp_path / "shard_0.tfrecord"
    counts = pd.create_pretraining_data([str(sentences_file)], out, tokenizer, max_seq_length=MAX_SEQ,
                                        max_predictions_per_seq=MAX_PRED, dupe_factor=1, random_seed=11)
    expected = pd.create_training_instances(documents, vocab_info, MAX_SEQ, 1, 0.1, 0.15, MAX_PRED, random.Random(11))
    assert counts["instances"] == len(expected)
    assert not [p for p in tmp_path.iterdir() if p.name != "shard_0.tfrecord"]

    ds = pd.pretraining_dataset(str(out), MAX_SEQ, MAX_PRED, batch_size=8, is_training=False)
    batches = list(ds)
    assert sum(int(b["input_ids"].shape[0]) for b in batches) == len(expected)
    batch = batches[0]
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in batch.items()}
    assert shapes == {
        "input_ids": ((8, MAX_SEQ), tf.int32), "input_mask": ((8, MAX_SEQ), tf.int32),
        "segment_ids": ((8, MAX_SEQ), tf.int32),
        "masked_lm_positions": ((8, MAX_PRED), tf.int32), "masked_lm_ids": ((8, MAX_PRED), tf.int32),
        "masked_lm_weights": ((8, MAX_PRED), tf.float32), "next_sentence_labels": ((8, 1), tf.int32)}
    for row, inst in enumerate(expected[:8]):
        n, m = len(inst.tokens), len(inst.masked_lm_positions)
        assert batch["input_ids"][row].numpy().tolist() == inst.tokens + [0] * (MAX_SEQ - n)
        assert batch["input_mask"][row].numpy().tolist() == [1] * n + [0] * (MAX_SEQ - n)
        assert batch["segment_ids"][row].numpy().tolist() == inst.segment_ids + [0] * (MAX_SEQ - n)
        assert batch["masked_lm_positions"][row].numpy().tolist() == inst.masked_lm_positions + [0] * (MAX_PRED - m)
        assert batch["masked_lm_ids"][row].numpy().tolist() == inst.masked_lm_labels + [0] * (MAX_PRED - m)
        assert batch["masked_lm_weights"][row].numpy().tolist() == [1.0] * m + [0.0] * (MAX_PRED - m)
        assert batch["next_sentence_labels"][row].numpy().tolist() == [int(inst.is_random_next)]

    # Same seed -> same bytes; another seed -> other bytes.
    again = tmp_path / "again.tfrecord"
    pd.create_pretraining_data([str(sentences_file)], again, tokenizer, MAX_SEQ, MAX_PRED, dupe_factor=1, random_seed=11)
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.tfrecord"
    n_other = pd.create_pretraining_data([str(sentences_file)], other, tokenizer, MAX_SEQ, MAX_PRED, dupe_factor=1,
                                         random_seed=12)["instances"]
    assert other.read_bytes() != out.read_bytes()

    # Training order is reproducible for a seed (resume = skip consumed batches), differs across seeds,
    # and batches are full.
    files = f"{out},{other},{again}"

    def first(seed, n=5, **kw):
        ds = pd.pretraining_dataset(files, MAX_SEQ, MAX_PRED, 16, True, seed=seed, **kw)
        return [b["input_ids"].numpy().tolist() for b in ds.take(n)]

    run1 = first(5)
    assert run1 == first(5) and run1 != first(6)
    assert all(len(b) == 16 for b in run1)
    # Two input pipelines read disjoint files (sorted: again, other, shard_0 -> pipeline 0 gets 1st and 3rd).
    ctx = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i) for i in range(2)]
    evals = [pd.pretraining_dataset(files, MAX_SEQ, MAX_PRED, 64, False, input_context=c) for c in ctx]
    sizes = [sum(int(b["input_ids"].shape[0]) for b in d) for d in evals]
    assert sizes == [2 * len(expected), n_other]


def test_empty_and_missing_input(tmp_path, tokenizer):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(InputError, match="empty.txt: no text found"):
        pd.create_pretraining_data([str(empty)], tmp_path / "o.tfrecord", tokenizer)
    assert not (tmp_path / "o.tfrecord").exists()
    with pytest.raises(InputError, match="nothing-here"):
        pd.expand_input_files(str(tmp_path / "nothing-here*.txt"))
    with pytest.raises(InputError, match="no pre-training record files"):
        pd.pretraining_dataset(str(tmp_path / "*.tfrecord"), MAX_SEQ, MAX_PRED, 2, True)


def test_cli_writes_records_and_reports_errors(tmp_path, uncased_vocab):
    text = tmp_path / "docs.txt"
    text.write_text("The cells were lysed.\nProteins were measured by ELISA.\n\n"
                    "Mice received 5 mg/kg i.p. daily.\nWeight loss was recorded.\nNo deaths occurred.\n")
    out = tmp_path / "out" / "a.tfrecord"
    base = [sys.executable, str(REPO / "create_pretraining_data.py"), f"--vocab_file={uncased_vocab}",
            "--do_lower_case=true", "--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=3",
            "--do_prepare=true"]
    proc = subprocess.run(base + [f"--input_file={tmp_path}/doc*.txt", f"--output_file={out}"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import tensorflow as tf

    records = list(tf.data.TFRecordDataset(str(out)))
    assert len(records) >= 6 and f"wrote {len(records)} instances from 2 documents (5 sentences)" in proc.stdout
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    proc = subprocess.run(base + [f"--input_file={empty}", f"--output_file={tmp_path / 'b.tfrecord'}"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == f"error: {empty}: no text found in the input"
    assert not (tmp_path / "b.tfrecord").exists()
