"""The fast prediction and training paths give what the plain ones give (issue 44), on a BC5CDR slice.

Plain: every word tokenized afresh and its features built token by token; batches padded to a multiple of 32,
16 rows. Fast: per-word cached ids, features built with numpy; batches padded to their longest row, 64 rows.
No timings here (benchmarks/side_by_side.py measures); only that the answers are the same.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO, minilm_folder, tiny_config

from biobert import ner
from biobert.tokenization import FullTokenizer

SLICE = 150       # sentences of test.tsv


def plain_features(sentence, tokenizer, label_map, max_seq_length):
    """The features as convert_sentence built them before the cache: one token at a time."""
    budget = max_seq_length - 2
    tokens, labels, first = ["[CLS]"], [label_map.id("[CLS]")], [0]
    kept = 0
    for word, label in zip(sentence.words, sentence.labels):
        room = budget - (len(tokens) - 1)
        if room <= 0:
            break
        pieces = (tokenizer.tokenize(word) or ["[UNK]"])[:room]
        tokens.extend(pieces)
        labels.extend([label_map.id(label)] + [label_map.id("X")] * (len(pieces) - 1))
        first.extend([1] + [0] * (len(pieces) - 1))
        kept += 1
    tokens.append("[SEP]")
    labels.append(label_map.id("[SEP]"))
    first.append(0)
    return {"input_ids": np.asarray(tokenizer.convert_tokens_to_ids(tokens), np.int32),
            "segment_ids": np.zeros(len(tokens), np.int32), "label_ids": np.asarray(labels, np.int32),
            "first_subword": np.asarray(first, np.int32), "num_words_kept": kept}


@pytest.fixture(scope="module")
def test_slice(shared_data):
    sentences = ner.read_ner_file(shared_data / "BC5CDR" / "chem" / "test.tsv")[:SLICE]
    # constructed words too: a lone control character (no pieces -> [UNK]), accents, a word over 200 characters
    sentences.append(ner.Sentence(["\u200b", "Caf\u00e9", "x" * 201, "NaCl"], ["O", "O", "O", "B"]))
    return sentences


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("max_seq_length", [128, 12, 3])
def test_cached_features_equal_plain_ones(test_slice, uncased_vocab, cased_vocab, lower, max_seq_length):
    tokenizer = FullTokenizer(uncased_vocab if lower else cased_vocab, do_lower_case=lower)
    label_map = ner.LabelMap(["B", "I", "O"])
    for _ in range(2):                                   # the second pass comes from the cache
        for sentence in test_slice:
            fast = ner.convert_sentence(sentence, tokenizer, label_map, max_seq_length)
            plain = plain_features(sentence, tokenizer, label_map, max_seq_length)
            assert fast.keys() == plain.keys()
            for key in plain:
                assert np.array_equal(fast[key], plain[key]), (key, sentence.words)
                assert np.asarray(fast[key]).dtype == np.asarray(plain[key]).dtype


def test_word_ids_are_the_tokenizers_ids(uncased_vocab, test_slice):
    tokenizer = FullTokenizer(uncased_vocab, do_lower_case=True)
    for word in {w for s in test_slice for w in s.words}:
        want = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word) or ["[UNK]"])
        assert tokenizer.word_ids(word) == tuple(want) == tokenizer.word_ids(word)


def run_model(features, label_map, batch_size, pad_multiple):
    """Probabilities per sentence from a tiny random BERT (seeded: the same weights every call)."""
    import keras

    from biobert import batching, distribution, modeling
    from biobert.tasks import softmax

    keras.utils.set_random_seed(7)
    distribution.setup(amp=False, use_xla=False, log=lambda *_: None)
    config = tiny_config(vocab_size=30522, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = modeling.build(modeling.BertClassifier(config, label_map.num_labels, per_token=True))
    probs = [None] * len(features)
    for idx, batch in batching.inference_batches(features, batch_size, 128, pad_multiple=pad_multiple):
        logits = model(batch, training=False).numpy()
        for row, i in enumerate(idx):
            probs[i] = softmax(logits[row, :len(features[i]["input_ids"])])
    return probs


def test_fast_prediction_path_gives_the_plain_predictions(test_slice, uncased_vocab):
    tokenizer = FullTokenizer(uncased_vocab, do_lower_case=True)
    label_map = ner.LabelMap(["B", "I", "O"])
    sentences = test_slice[:-1]
    plain_feats = [plain_features(s, tokenizer, label_map, 128) for s in sentences]
    fast_feats = ner.convert_sentences(sentences, tokenizer, label_map, 128)
    plain = run_model(plain_feats, label_map, batch_size=16, pad_multiple=32)
    fast = run_model(fast_feats, label_map, batch_size=64, pad_multiple=1)
    for s, pf, p, q in zip(sentences, plain_feats, plain, fast):
        assert np.allclose(p, q, atol=1e-5), s.where()
        assert ner.decode_sentence(s, pf, p, label_map) == ner.decode_sentence(s, pf, q, label_map)


def test_training_batches_padded_to_the_longest_row_hold_the_same_rows(test_slice, uncased_vocab):
    from biobert import batching

    tokenizer = FullTokenizer(uncased_vocab, do_lower_case=True)
    feats = ner.convert_sentences(test_slice[:-1], tokenizer, ner.LabelMap(["B", "I", "O"]), 128)
    plain = batching.training_batches(feats, 16, 128, seed=3, pad_multiple=32)
    fast = batching.training_batches(feats, 16, 128, seed=3, pad_multiple=batching.pad_multiple(False))
    for _ in range(len(feats) // 16):
        a, b = next(plain), next(fast)
        width = b["input_ids"].shape[1]
        assert width == b["input_mask"].sum(1).max() and a["input_ids"].shape[1] % 32 == 0
        for key in a:
            if a[key].ndim == 2:
                assert np.array_equal(a[key][:, :width], b[key]) and not a[key][:, width:].any()
            else:
                assert np.array_equal(a[key], b[key])
    assert batching.pad_multiple(True) == 32


def test_side_by_side_help():
    proc = subprocess.run([sys.executable, "benchmarks/side_by_side.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--peer_python" in proc.stdout and "--quick" in proc.stdout


PEER = os.environ.get("BIOBERT_PEER_PYTHON", "/tmp/peer-venv/bin/python")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(PEER), reason="no peer venv (benchmarks/README_peer.md; BIOBERT_PEER_PYTHON)")
def test_side_by_side_quick(tmp_path):
    """The whole --quick table on slices (a few minutes): every row, both sides, the labels compared."""
    proc = subprocess.run([sys.executable, "benchmarks/side_by_side.py", f"--peer_python={PEER}", "--quick",
                           "--wait_minutes=0", f"--work_dir={tmp_path}", f"--minilm={minilm_folder()}"],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for row in ("MiniLM-L6 8 x 32, train", "one training epoch, the training loop", "predict test, the job"):
        assert row in proc.stdout
    assert "same label on" in proc.stdout
    shutil.rmtree(tmp_path, ignore_errors=True)
