"""NER model data: a sentence's BERT features (word pieces, label ids, first sub-words), the word labels
decoded from the model's probabilities, and the original's prediction files."""
import os

import numpy as np

from biobert import conlleval
from biobert.fileio import atomic_open
from biobert.ner.corpus import OUTSIDE
from biobert.ner.labels import CLS, SEP, X, check_labels

FEATURE_KEYS = ("input_ids", "segment_ids", "label_ids", "first_subword")


def convert_sentence(sentence, tokenizer, label_map, max_seq_length):
    """BERT features of one Sentence: a dict of 1-D int32 arrays of one unpadded length L.

    ``input_ids``: [CLS] sub-words [SEP], the sub-words truncated to max_seq_length - 2;
    ``segment_ids``: zeros; ``label_ids``: the word's label at its first sub-word, X at its
    other sub-words, [CLS] / [SEP] at the ends; ``first_subword``: 1 at each word's first
    sub-word. ``num_words_kept`` (int): words whose first sub-word survived truncation (a word
    cut inside keeps its first sub-word and counts). A word that tokenizes to nothing (e.g. a
    lone control character) becomes [UNK]. InputError (file:line) for a label not in the map.
    ``max_seq_length`` is at least 3 ([CLS], a piece, [SEP]; flags.check).
    """
    check_labels([sentence], label_map)
    budget = max_seq_length - 2
    # Each word's ids (cached per word by FullTokenizer.word_ids), cut where the budget ends.
    word_ids = tokenizer.word_ids
    pieces, used = [], 0
    for word in sentence.words:
        if used >= budget:
            break
        ids = word_ids(word)[:budget - used]
        pieces.append(ids)
        used += len(ids)
    kept = len(pieces)
    counts = np.fromiter(map(len, pieces), dtype=np.int64, count=kept)
    starts = 1 + np.cumsum(counts) - counts                      # each word's first position ([CLS] is 0)
    length = used + 2
    input_ids = np.empty(length, dtype=np.int32)
    input_ids[0], input_ids[-1] = tokenizer.convert_tokens_to_ids([CLS, SEP])
    input_ids[1:-1] = [i for ids in pieces for i in ids]
    labels = np.full(length, label_map.id(X), dtype=np.int32)
    labels[0], labels[-1] = label_map.id(CLS), label_map.id(SEP)
    labels[starts] = [label_map.id(label) for label in sentence.labels[:kept]]
    first = np.zeros(length, dtype=np.int32)
    first[starts] = 1
    return {
        "input_ids": input_ids,
        "segment_ids": np.zeros(length, dtype=np.int32),
        "label_ids": labels,
        "first_subword": first,
        "num_words_kept": kept,
    }


def convert_sentences(sentences, tokenizer, label_map, max_seq_length):
    """convert_sentence over a list; returns a list of feature dicts in the same order."""
    return [convert_sentence(s, tokenizer, label_map, max_seq_length) for s in sentences]


def pad_features(features, max_seq_length):
    """Stack feature dicts into model inputs: ``input_ids``, ``input_mask``, ``segment_ids``,
    ``label_ids``, ``first_subword`` as int32 arrays [N, max_seq_length], zero-padded
    (label 0 = [PAD]); ``input_mask`` is 1 on real positions."""
    n = len(features)
    out = {key: np.zeros((n, max_seq_length), dtype=np.int32)
           for key in FEATURE_KEYS + ("input_mask",)}
    for i, feature in enumerate(features):
        length = len(feature["input_ids"])
        if length > max_seq_length:
            raise ValueError(f"feature {i} has length {length} > max_seq_length {max_seq_length}")
        for key in FEATURE_KEYS:
            out[key][i, :length] = feature[key]
        out["input_mask"][i, :length] = 1
    return out


# ----------------------------------------------------------------------------- decoding

def _decode(sentence, feature, probs, label_map):
    """decode_sentence plus the list of human-readable repair reasons (empty = not repaired)."""
    probs = np.asarray(probs)
    length = len(feature["input_ids"])
    if probs.ndim != 2 or probs.shape != (length, label_map.num_labels):
        raise ValueError(f"probs has shape {probs.shape}, expected ({length}, "
                         f"{label_map.num_labels}) for the sentence at {sentence.where()}")
    arg = probs.argmax(axis=-1)
    raw_labels = [label_map.label(i) for i in arg]
    entity_ids = np.asarray(label_map.entity_ids)
    positions = np.flatnonzero(np.asarray(feature["first_subword"]))
    kept = int(feature["num_words_kept"])
    pred_labels, reasons = [], []
    for k in range(kept):
        pos = positions[k]
        if label_map.is_entity(raw_labels[pos]):
            pred_labels.append(raw_labels[pos])
        else:
            best = label_map.label(entity_ids[probs[pos, entity_ids].argmax()])
            pred_labels.append(best)
            reasons.append(f"word {k + 1} {sentence.words[k]!r}: arg-max {raw_labels[pos]!r} at "
                           f"its first sub-word, used the best word label {best!r}")
    if kept < len(sentence):
        pred_labels.extend([OUTSIDE] * (len(sentence) - kept))
        cut = f"word {kept + 1}" if kept + 1 == len(sentence) else f"words {kept + 1}-{len(sentence)}"
        reasons.append(f"{cut} cut off by the max_seq_length truncation, predicted {OUTSIDE!r}")
    return pred_labels, raw_labels, reasons


def decode_sentence(sentence, feature, probs, label_map):
    """Word-level predictions of one sentence from the model's probabilities.

    ``probs``: float array [L, num_labels] at the unpadded positions of ``feature`` (column 0 =
    padding). Each word is predicted at its first sub-word; when the arg-max there is not a
    word-level label (X, [CLS], [SEP], pad) the best word-level label is used instead, and words
    cut off by truncation are predicted ``O`` - both mark the sentence repaired. Returns
    ``(pred_labels, raw_labels, repaired)``: one label per word, the arg-max label of every
    position, and a bool.
    """
    pred_labels, raw_labels, reasons = _decode(sentence, feature, probs, label_map)
    return pred_labels, raw_labels, bool(reasons)


def continues(previous, sentence):
    """True when ``sentence`` is the piece of a split sentence that directly follows ``previous``."""
    return (sentence.piece > 0 and previous.path == sentence.path
            and previous.line + len(previous) == sentence.line)


def _three_columns(sentence, pred_labels):
    return "".join(f"{w} {g} {p}\n" for w, g, p in zip(sentence.words, sentence.labels, pred_labels))


def write_prediction_files(output_dir, sentences, features, probs_list, label_map):
    """Decode every sentence and write the original's prediction files into ``output_dir``.

    ``label_test.txt``: the arg-max label of every non-pad position, one per line;
    ``test_labels.txt``: ``word gold pred`` per word, a blank line after each sentence (the
    pieces of a sentence split by read_ner_file are joined again, so that conlleval sees the
    file's sentences: a chunk cut by a split is not counted twice);
    ``test_labels_errs.txt``: the repaired sentences in that form, each after a ``# `` line
    saying why and where (file:line); ``test_results_conlleval.txt``: the conlleval report.
    Each file is written atomically, after all decoding succeeded. Returns
    ``(conlleval.Counts, report_text)``.
    """
    if not len(sentences) == len(features) == len(probs_list):
        raise ValueError(f"{len(sentences)} sentences, {len(features)} features and "
                         f"{len(probs_list)} probability arrays: they must match")
    raw_out, pairs_out, errs_out = [], [], []
    previous = None
    for sentence, feature, probs in zip(sentences, features, probs_list):
        pred_labels, raw_labels, reasons = _decode(sentence, feature, probs, label_map)
        raw_out.append("".join(label + "\n" for label in raw_labels))
        block = _three_columns(sentence, pred_labels)
        if previous is not None and not continues(previous, sentence):
            pairs_out.append("\n")
        pairs_out.append(block)
        previous = sentence
        if reasons:
            errs_out.append(f"# repaired ({sentence.where()}): {'; '.join(reasons)}\n{block}\n")
    if previous is not None:
        pairs_out.append("\n")
    pairs_text = "".join(pairs_out)
    counts = conlleval.evaluate(pairs_text.splitlines(),
                                path=os.path.join(output_dir, "test_labels.txt"))
    report_text = conlleval.report(counts)
    for name, text in (("label_test.txt", "".join(raw_out)),
                       ("test_labels.txt", pairs_text),
                       ("test_labels_errs.txt", "".join(errs_out)),
                       ("test_results_conlleval.txt", report_text)):
        with atomic_open(os.path.join(output_dir, name), "w") as handle:
            handle.write(text)
    return counts, report_text
