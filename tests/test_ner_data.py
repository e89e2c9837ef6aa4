"""NER data layer: reading BC5CDR and CoNLL files, the 30-word split, labels, features,
decoding of hand-built probabilities and the prediction files."""
import json
import os

import numpy as np
import pytest

from biobert import conlleval, ner
from biobert.errors import InputError
from biobert.tokenization import FullTokenizer

# README: sentences, words and B tags of the raw (blank-line separated) sentences.
BC5CDR_COUNTS = {
    ("chem", "train"): (5234, 118081, 5203),
    ("chem", "devel"): (5251, 117329, 5347),
    ("chem", "test"): (5626, 124669, 5385),
    ("disease", "train"): (5234, 118081, 4182),
    ("disease", "devel"): (5251, 117329, 4244),
    ("disease", "test"): (5626, 124669, 4424),
}


@pytest.fixture(scope="module")
def tokenizer(cased_vocab):
    return FullTokenizer(str(cased_vocab), do_lower_case=False)


@pytest.fixture(scope="module")
def blue_map():
    return ner.LabelMap(["B", "I", "O"])


def _one_hot(ids, num_labels):
    return np.eye(num_labels, dtype=np.float32)[np.asarray(ids)]


# ----------------------------------------------------------------------------- reading

@pytest.mark.parametrize("corpus, split", sorted(BC5CDR_COUNTS))
def test_bc5cdr_counts_and_30_word_split(shared_data, corpus, split):
    path = shared_data / "BC5CDR" / corpus / f"{split}.tsv"
    raw = ner.read_ner_file(path, max_words=None)
    n_sentences, n_words, n_b = BC5CDR_COUNTS[(corpus, split)]
    assert len(raw) == n_sentences
    assert sum(len(s) for s in raw) == n_words
    assert sum(s.labels.count("B") for s in raw) == n_b
    assert {label for s in raw for label in s.labels} == {"B", "I", "O"}
    assert raw[0].line == 1 and all(s.piece == 0 for s in raw)

    pieces = ner.read_ner_file(path)
    assert max(len(p) for p in pieces) <= 30
    assert len(pieces) > len(raw)  # the data has sentences longer than 30 words
    # Joining the pieces of each sentence gives the raw sentences back.
    joined = []
    for p in pieces:
        if p.piece == 0:
            joined.append(ner.Sentence(list(p.words), list(p.labels), p.path, p.line))
        else:
            assert p.line == joined[-1].line + len(joined[-1])
            joined[-1].words += p.words
            joined[-1].labels += p.labels
    assert joined == raw


def test_line_numbers_point_at_the_first_token(shared_data):
    path = shared_data / "BC5CDR" / "chem" / "test.tsv"
    file_lines = path.read_text(encoding="utf-8").split("\n")
    for s in ner.read_ner_file(path)[::500]:
        for k in (0, len(s) - 1):
            fields = file_lines[s.line + k - 1].split("\t")
            assert (fields[0], fields[-1]) == (s.words[k], s.labels[k])


def test_split_rule_on_a_hand_built_sentence():
    labels = "O B I O B I I I I I O".split()
    words = [f"w{k}" for k in range(len(labels))]
    pieces = ner.split_sentence(ner.Sentence(words, labels, "f.tsv", 10), max_words=5)
    # last O within the first 5 is word 4 -> cut after it; next window B I I I I has no O -> 5.
    assert [p.words for p in pieces] == [words[:4], words[4:9], words[9:]]
    assert [p.labels for p in pieces] == [labels[:4], labels[4:9], labels[9:]]
    assert [(p.line, p.piece) for p in pieces] == [(10, 0), (14, 1), (19, 2)]
    # Exactly max_words words, or no limit: unchanged.
    assert ner.split_sentence(ner.Sentence(words[:5], labels[:5]), 5) == [ner.Sentence(words[:5], labels[:5])]
    assert len(ner.split_sentence(ner.Sentence(words, labels), None)) == 1


def test_split_rule_cuts_after_an_o_at_the_window_edge():
    labels = ["B"] + ["I"] * 28 + ["O"] + ["B", "O", "O"]
    pieces = ner.split_sentence(ner.Sentence([str(k) for k in range(33)], labels), 30)
    assert [len(p) for p in pieces] == [30, 3]


def test_two_column_typed_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(
        b"-DOCSTART- O\n\n"
        b"Aspirin B-Chemical\ncauses\tO\nliver   B-Disease\ndamage I-Disease\n\n\n"
        b"-DOCSTART- O\n"
        b"Heparin B-Chemical\r\nworks O")  # CRLF, no final newline
    sentences = ner.read_ner_file(path)
    assert [(s.words, s.labels, s.line) for s in sentences] == [
        (["Aspirin", "causes", "liver", "damage"], ["B-Chemical", "O", "B-Disease", "I-Disease"], 3),
        (["Heparin", "works"], ["B-Chemical", "O"], 10),
    ]
    label_map = ner.LabelMap.from_sentences([sentences])
    assert label_map.labels == ["[PAD]", "B-Chemical", "B-Disease", "I-Disease", "O",
                                "X", "[CLS]", "[SEP]"]
    assert label_map.entity_ids == [1, 2, 3, 4]
    assert label_map.num_labels == 8


@pytest.mark.parametrize("text, line, message", [
    ("a B\nb O\n\nlonely\nc O\n", 4, "found one field 'lonely'"),
    ("solo\n", 1, "found one field 'solo'"),
    ("a\t-\t0\tO\n \t \nb\t-\t2\tO\nc\n", 4, "found one field 'c'"),  # blank-looking line 2
])
def test_malformed_line_names_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        ner.read_ner_file(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)
    assert err.value.line == line and err.value.path == str(path)


def test_empty_and_missing_files(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("\n\n-DOCSTART- O\n\n")
    with pytest.raises(InputError, match=f"{path}: no sentences"):
        ner.read_ner_file(path)
    with pytest.raises(InputError, match="not found"):
        ner.read_ner_file(tmp_path / "missing.tsv")


# ----------------------------------------------------------------------------- labels

def test_blue_label_ids_are_the_originals(shared_data, blue_map):
    data = shared_data / "BC5CDR" / "chem"
    built = ner.LabelMap.from_sentences([ner.read_ner_file(data / "train.tsv"),
                                         ner.read_ner_file(data / "devel.tsv")])
    assert built == blue_map
    # The original: ["B", "I", "O", "X", "[CLS]", "[SEP]"] numbered from 1, 0 = padding.
    assert [built.id(x) for x in ["B", "I", "O", "X", "[CLS]", "[SEP]"]] == [1, 2, 3, 4, 5, 6]
    assert built.labels[0] == "[PAD]" and built.label(4) == "X"
    assert built.entity_ids == [1, 2, 3] and built.num_labels == 7
    with pytest.raises(KeyError):
        built.id("B-Chemical")


def test_label_map_json_round_trip(tmp_path):
    label_map = ner.LabelMap(["O", "B-Disease", "I-Disease"])
    path = tmp_path / "sub" / "labels.json"
    label_map.to_json(path)
    assert json.loads(path.read_text())["labels"] == ["[PAD]", "B-Disease", "I-Disease", "O",
                                                     "X", "[CLS]", "[SEP]"]
    assert ner.LabelMap.from_json(path) == label_map
    assert os.listdir(path.parent) == ["labels.json"]  # no temporary file left behind
    path.write_text('{"labels": ["B", "I"]}')
    with pytest.raises(InputError, match=str(path)):
        ner.LabelMap.from_json(path)
    path.write_text("not json")
    with pytest.raises(InputError, match=str(path)):
        ner.LabelMap.from_json(path)


def test_unknown_label_names_file_and_line(tmp_path, blue_map, tokenizer):
    path = tmp_path / "test.tsv"
    path.write_text("a\t-\t0\tO\nb\t-\t2\tB\n\nc\t-\t4\tO\nd\t-\t6\tB-Chemical\n")
    sentences = ner.read_ner_file(path)
    with pytest.raises(InputError) as err:
        ner.check_labels(sentences, blue_map)
    assert str(err.value).startswith(f"{path}:5: label 'B-Chemical'")
    with pytest.raises(InputError, match=f"{path}:5: "):
        ner.convert_sentences(sentences, tokenizer, blue_map, 16)
    ner.check_labels(sentences[:1], blue_map)  # known labels pass


def test_reserved_label_in_data_is_an_input_error(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("a O\nb X\n")
    with pytest.raises(InputError, match=f"{path}:2: label 'X' is reserved"):
        ner.LabelMap.from_sentences([ner.read_ner_file(path)])


# ----------------------------------------------------------------------------- features

def test_convert_sentence(tokenizer, blue_map):
    words = ["Famotidine", "is", "\x00", "safe"]
    assert tokenizer.tokenize("Famotidine") == ["F", "##amo", "##ti", "##dine"]
    assert tokenizer.tokenize("\x00") == []
    sentence = ner.Sentence(words, ["B", "O", "O", "I"], "f", 1)
    f = ner.convert_sentence(sentence, tokenizer, blue_map, 128)
    tokens = ["[CLS]", "F", "##amo", "##ti", "##dine", "is", "[UNK]", "safe", "[SEP]"]
    assert f["input_ids"].tolist() == [tokenizer.vocab[t] for t in tokens]
    assert f["label_ids"].tolist() == [5, 1, 4, 4, 4, 3, 3, 2, 6]
    assert f["first_subword"].tolist() == [0, 1, 0, 0, 0, 1, 1, 1, 0]
    assert f["segment_ids"].tolist() == [0] * 9
    assert f["num_words_kept"] == 4
    for key in ("input_ids", "label_ids", "first_subword", "segment_ids"):
        assert f[key].dtype == np.int32 and f[key].shape == (9,)


def test_convert_sentence_truncates_to_max_seq_length(tokenizer, blue_map):
    sentence = ner.Sentence(["is", "Famotidine", "safe"], ["O", "B", "O"], "f", 1)
    f = ner.convert_sentence(sentence, tokenizer, blue_map, 6)  # room for 4 sub-words
    tokens = ["[CLS]", "is", "F", "##amo", "##ti", "[SEP]"]
    assert f["input_ids"].tolist() == [tokenizer.vocab[t] for t in tokens]
    assert f["label_ids"].tolist() == [5, 3, 1, 4, 4, 6]
    assert f["first_subword"].tolist() == [0, 1, 1, 0, 0, 0]
    assert f["num_words_kept"] == 2
    f = ner.convert_sentence(sentence, tokenizer, blue_map, 4)  # room for 2: "is", "F"
    assert f["num_words_kept"] == 2 and len(f["input_ids"]) == 4
    f = ner.convert_sentence(sentence, tokenizer, blue_map, 3)
    assert f["num_words_kept"] == 1 and len(f["input_ids"]) == 3


def test_pad_features(tokenizer, blue_map):
    sentences = [ner.Sentence(["is"], ["O"]), ner.Sentence(["Famotidine", "is"], ["B", "O"])]
    batch = ner.pad_features(ner.convert_sentences(sentences, tokenizer, blue_map, 8), 8)
    assert batch["input_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0, 0], [1] * 7 + [0]]
    assert batch["label_ids"].tolist() == [[5, 3, 6, 0, 0, 0, 0, 0], [5, 1, 4, 4, 4, 3, 6, 0]]
    assert batch["input_ids"].dtype == np.int32 and batch["input_ids"].shape == (2, 8)


# ----------------------------------------------------------------------------- decoding

def _famotidine(tokenizer, blue_map):
    sentence = ner.Sentence(["Famotidine", "is", "safe"], ["B", "O", "O"], "t.tsv", 7)
    feature = ner.convert_sentence(sentence, tokenizer, blue_map, 128)
    # positions: [CLS] F ##amo ##ti ##dine is safe [SEP]
    return sentence, feature


def test_decode_takes_first_subwords(tokenizer, blue_map):
    sentence, feature = _famotidine(tokenizer, blue_map)
    probs = _one_hot([5, 1, 4, 2, 4, 3, 2, 6], 7) * 0.9 + 0.1 / 7  # ##ti says I: ignored
    pred, raw, repaired = ner.decode_sentence(sentence, feature, probs, blue_map)
    assert pred == ["B", "O", "I"]
    assert raw == ["[CLS]", "B", "X", "I", "X", "O", "I", "[SEP]"]
    assert repaired is False


def test_decode_repairs_an_x_at_a_first_subword(tokenizer, blue_map):
    sentence, feature = _famotidine(tokenizer, blue_map)
    probs = np.full((8, 7), 0.01, dtype=np.float32)
    probs[np.arange(8), [5, 4, 4, 4, 4, 3, 1, 6]] = 0.6
    probs[1, 2] = 0.3   # second best at "F" (first sub-word of Famotidine) is I
    probs[1, 6] = 0.35  # [SEP] is higher than I but not a word label
    pred, raw, repaired = ner.decode_sentence(sentence, feature, probs, blue_map)
    # The original dropped the X and shifted: it would have predicted [O, B, O].
    assert pred == ["I", "O", "B"]
    assert raw[1] == "X" and repaired is True
    probs[1] = 0.0
    probs[1, 0] = 1.0   # pad wins, all word labels tie at 0: the first (B) is used
    assert ner.decode_sentence(sentence, feature, probs, blue_map)[0] == ["B", "O", "B"]


def test_decode_predicts_o_for_truncated_words(tokenizer, blue_map):
    sentence = ner.Sentence(["is", "Famotidine", "safe", "here"], ["O", "B", "B", "O"], "t", 1)
    feature = ner.convert_sentence(sentence, tokenizer, blue_map, 5)  # [CLS] is F ##amo [SEP]
    probs = _one_hot([5, 1, 2, 4, 6], 7)
    pred, raw, repaired = ner.decode_sentence(sentence, feature, probs, blue_map)
    assert pred == ["B", "I", "O", "O"]
    assert raw == ["[CLS]", "B", "I", "X", "[SEP]"]
    assert repaired is True
    with pytest.raises(ValueError, match="shape"):
        ner.decode_sentence(sentence, feature, probs[:4], blue_map)


# ----------------------------------------------------------------------------- output files

def test_prediction_files(tmp_path, tokenizer, blue_map):
    s1, f1 = _famotidine(tokenizer, blue_map)
    s2 = ner.Sentence(["Heparin", "works", "."], ["B", "O", "O"], "t.tsv", 11)
    f2 = ner.convert_sentence(s2, tokenizer, blue_map, 128)
    assert tokenizer.tokenize("Heparin") == ["He", "##par", "##in"]
    p1 = _one_hot([5, 4, 4, 4, 4, 3, 3, 6], 7)  # X at "F": repaired, pred B (B/I/O tie at 0)
    p2 = _one_hot([5, 1, 4, 0, 2, 3, 6], 7)     # X and pad at non-first sub-words: no repair
    counts, text = ner.write_prediction_files(tmp_path / "out", [s1, s2], [f1, f2], [p1, p2], blue_map)
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["label_test.txt", "test_labels.txt", "test_labels_errs.txt",
                                       "test_results_conlleval.txt"]
    assert (out / "label_test.txt").read_text() == "\n".join(
        ["[CLS]", "X", "X", "X", "X", "O", "O", "[SEP]",
         "[CLS]", "B", "X", "[PAD]", "I", "O", "[SEP]"]) + "\n"
    # "works" was predicted I: an I after B continues the chunk, so Heparin works is one phrase.
    assert (out / "test_labels.txt").read_text() == (
        "Famotidine B B\nis O O\nsafe O O\n\nHeparin B B\nworks O I\n. O O\n\n")
    errs = (out / "test_labels_errs.txt").read_text()
    assert errs.startswith("# repaired (t.tsv:7): word 1 'Famotidine': arg-max 'X'")
    assert errs.endswith("\nFamotidine B B\nis O O\nsafe O O\n\n") and errs.count("#") == 1
    assert (out / "test_results_conlleval.txt").read_text() == text
    assert (counts.tokens, counts.gold_phrases, counts.found_phrases, counts.correct_phrases) == (6, 2, 2, 1)
    assert text.startswith("processed 6 tokens with 2 phrases; found: 2 phrases; correct: 1.\n"
                           "accuracy:  83.33%; precision:  50.00%; recall:  50.00%; FB1:  50.00\n")


def test_gold_predictions_through_the_writer_give_conlleval_counts(tmp_path, shared_data, tokenizer,
                                                                    blue_map):
    path = shared_data / "BC5CDR" / "chem" / "test.tsv"
    sentences = ner.read_ner_file(path)
    features = ner.convert_sentences(sentences, tokenizer, blue_map, 128)
    probs = [_one_hot(f["label_ids"], blue_map.num_labels) for f in features]
    counts, text = ner.write_prediction_files(tmp_path, sentences, features, probs, blue_map)
    assert text.startswith("processed 124669 tokens with 5386 phrases; found: 5386 phrases; "
                           "correct: 5386.\n")
    pairs = (tmp_path / "test_labels.txt").read_text()
    assert pairs.count("\n\n") == 5626  # the file's sentences, the 30-word pieces joined again
    assert conlleval.report(conlleval.evaluate_file(tmp_path / "test_labels.txt")) == text
    assert (tmp_path / "test_labels_errs.txt").read_text() == ""
    n_positions = sum(len(f["input_ids"]) for f in features)
    assert len((tmp_path / "label_test.txt").read_text().splitlines()) == n_positions
