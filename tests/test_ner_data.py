"""NER data layer: reading BC5CDR and CoNLL files, the 30-word split, labels, features,
decoding of hand-built probabilities and the prediction files."""
import json
import os
import re

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
    ("a B\nb O\n\nlonely\nc O\n", 4, "expected 2 whitespace-separated columns (as on line 1, the file's first "
                                      "token line), found 1: 'lonely'"),
    ("solo\n", 1, "found one field 'solo'"),
    ("a\t-\t0\tO\n \t \nb\t-\t2\tO\nc\n", 4, "expected 4 tab-separated columns (as on line 1"),  # blank-looking 2
])
def test_malformed_line_names_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        ner.read_ner_file(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)
    assert err.value.line == line and err.value.path == str(path)


@pytest.mark.parametrize("content, why", [
    (b"", "the file is empty"),
    (b"\xef\xbb\xbf", "the file is empty"),                       # a byte-order mark alone
    (b"\n \t \r\n\n", "3 blank lines"),
    (b"\n\n-DOCSTART- O\n\n", "4 blank or -DOCSTART- lines"),
    (b"-DOCSTART-\t-X-\t-X-\tO\r\n", "1 blank or -DOCSTART- lines"),
])
def test_empty_and_missing_files(tmp_path, content, why):
    path = tmp_path / "empty.tsv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"^{path}: no sentences found \\({why}\\)$"):
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


# ----------------------------------------------------------------------------- malformed and variant corpora
# Copies of the first 40 sentences of BC5CDR-chem train.tsv (real BLUE lines), edited, in tmp_path.

@pytest.fixture(scope="module")
def chem_lines(shared_data):
    """The slice's lines without line ends; line 7 is ``clonidine<TAB>-<TAB>49<TAB>B``."""
    from conftest import first_sentences

    lines = first_sentences(shared_data / "BC5CDR" / "chem" / "train.tsv", 40).splitlines()
    assert lines[6] == "clonidine\t-\t49\tB"
    return lines


def _write(path, lines, end="\n", bom=False):
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "".join(line + end for line in lines).encode("utf-8"))
    return path


def _edited(lines, **at):
    """``lines`` with line N (1-based, keyword ``lN``) replaced."""
    out = list(lines)
    for key, text in at.items():
        out[int(key[1:]) - 1] = text
    return out


def _raises(path, line, *fragments, read=ner.read_ner_file):
    with pytest.raises(InputError) as err:
        read(path)
    text = str(err.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert (err.value.path, err.value.line) == (str(path), line)
    for fragment in fragments:
        assert fragment in text, text
    return text


@pytest.mark.parametrize("end, bom", [("\n", False), ("\r\n", True)])
@pytest.mark.parametrize("bad, fragment", [
    ("clonidine\t-\t49", "found 3: 'clonidine\\t-\\t49' (a column missing?)"),     # the tag column lost
    ("clonidine\t-\t49\t", "found 3"),                                              # the tag emptied, its tab left
    ("\t-\t49\tB", "found 3"),                                                      # the word lost
    ("clonidine\t-\t49\tB\tB", "found 5"),
    ("clonidine - 49 B", "found 1: 'clonidine - 49 B' (spaces where the file has tabs?)"),
    ("clonidine", "found 1: 'clonidine'"),
])
def test_a_line_with_another_column_count_stops_there(tmp_path, chem_lines, end, bom, bad, fragment):
    path = _write(tmp_path / "train.tsv", _edited(chem_lines, l7=bad), end, bom)
    _raises(path, 7, "expected 4 tab-separated columns (as on line 1, the file's first token line), ", fragment)


def test_the_first_token_line_sets_the_count(tmp_path, chem_lines):
    # Line 1 lost its offset column: line 2 is the first that disagrees, and the message names both.
    path = _write(tmp_path / "train.tsv", ["", "-DOCSTART-\t-X-\t-X-\tO", "", "Naloxone\t227508\tB"]
                  + chem_lines[1:])
    _raises(path, 5, "expected 3 tab-separated columns (as on line 4, the file's first token line), found 4")
    # Space-separated files: the count is of whitespace-separated fields.
    two = [" ".join(line.split("\t")[::3]) for line in chem_lines]
    assert two[6] == "clonidine B"
    path = _write(tmp_path / "two.txt", _edited(two, l10="In 227508 O"))
    _raises(path, 10, "expected 2 whitespace-separated columns (as on line 1, the file's first token line), "
                     "found 3: 'In 227508 O'")
    # One column all along: unlabelled text, stopped at the first line.
    path = _write(tmp_path / "words.txt", [line.split("\t")[0] for line in chem_lines])
    _raises(path, 1, "expected a word and a label separated by whitespace, found one field 'Naloxone'",
            "--predict_file")


def test_not_utf8_names_the_line(tmp_path, chem_lines):
    path = tmp_path / "train.tsv"
    path.write_bytes("".join(line + "\n" for line in chem_lines).replace("clonidine", "clonidin\xe9").encode("latin-1"))
    _raises(path, 7, "not UTF-8 text", "\\xe9")
    path.write_bytes("".join(line + "\n" for line in chem_lines).encode("utf-16"))
    _raises(path, 1, "not UTF-8 text (UTF-16?)")


def _variants():
    """name -> (lines -> lines, tag -> expected tag, line shift, write options)."""
    def columns(picks, sep):
        return lambda lines: [sep.join(line.split("\t")[i] for i in picks) if line else line for line in lines]

    def typed(lines):
        return [line if not line or line.endswith("\tO") else line + "-Chemical" for line in lines]

    same = (lambda tag: tag)
    return {
        "2-column space-separated": (columns((0, 3), " "), same, 0, {}),
        "2-column tab-separated": (columns((0, 3), "\t"), same, 0, {}),
        "3-column, runs of spaces": (columns((0, 1, 3), "   "), same, 0, {}),
        "typed tags": (typed, lambda tag: tag if tag == "O" else tag + "-Chemical", 0, {}),
        "CRLF line ends": (lambda lines: lines, same, 0, {"end": "\r\n"}),
        "UTF-8 byte-order mark": (lambda lines: lines, same, 0, {"bom": True}),
        "trailing whitespace": (lambda lines: [line + " \t " if line else line for line in lines], same, 0, {}),
        "whitespace-only separators, -DOCSTART-": (
            lambda lines: ["-DOCSTART-\t-X-\t-X-\tO", ""] + [line or " \t" for line in lines], same, 2, {}),
        "all at once": (lambda lines: ["\t-DOCSTART- -X- -X- O", " "] + [
            f"{line.split(chr(9))[0]} {typed([line])[0].split(chr(9))[-1]}  " if line else "\t"
            for line in lines], lambda tag: tag if tag == "O" else tag + "-Chemical", 2, {"end": "\r\n", "bom": True}),
    }


@pytest.mark.parametrize("name", sorted(_variants()))
def test_accepted_variants_read_as_the_blue_file(tmp_path, chem_lines, name):
    transform, tag, shift, options = _variants()[name]
    reference = ner.read_ner_file(_write(tmp_path / "blue.tsv", chem_lines))
    path = _write(tmp_path / "train.tsv", transform(chem_lines), **options)
    sentences = ner.read_ner_file(path)
    assert [s.words for s in sentences] == [s.words for s in reference]
    assert sentences[0].words[0] == "Naloxone"
    assert [s.labels for s in sentences] == [[tag(t) for t in s.labels] for s in reference]
    assert [s.line for s in sentences] == [s.line + shift for s in reference]
    ner.check_tag_scheme(sentences)
    expected = ["B-Chemical", "I-Chemical", "O"] if "Chemical" in tag("B") else ["B", "I", "O"]
    assert ner.LabelMap.from_sentences([sentences]).entity_labels == expected


def test_a_word_may_hold_spaces_in_a_tab_separated_file(tmp_path, chem_lines):
    path = _write(tmp_path / "train.tsv", _edited(chem_lines, l3="the anti\u00a0hyper tensive\t-\t18\tO"))
    assert ner.read_ner_file(path)[0].words[2] == "the anti\u00a0hyper tensive"


@pytest.mark.parametrize("tag, fragment, declare", [
    ("b", "tag 'b' is not O, B, I, B-<type> or I-<type> (lower case)", "--labels=B,I,O,b"),
    ("49", "tag '49' is not O, B, I, B-<type> or I-<type> (a number: a column missing on this line?)",
     "--labels=49,B,I,O"),
    ("B-", "tag 'B-' is not O, B, I, B-<type> or I-<type> (B-/I- without a type)", "--labels=B,B-,I,O"),
    ("X", "tag 'X' is not O, B, I, B-<type> or I-<type>;", "--labels=B,I,O,X"),
    ("0", "tag '0' is not O, B, I, B-<type> or I-<type> (the digit 0: the letter O meant?)", "--labels=0,B,I,O"),
])
def test_a_tag_outside_the_scheme_stops_with_the_tags_seen(tmp_path, chem_lines, tag, fragment, declare):
    path = _write(tmp_path / "train.tsv", _edited(chem_lines, l7=f"clonidine\t-\t49\t{tag}"))
    sentences = ner.read_ner_file(path)
    counts = ner.tag_counts(sentences)
    assert counts[tag] == 1
    seen = ", ".join(f"{t} {n}" for t, n in counts.most_common())
    text = _raises(path, 7, fragment, f"tags in train.tsv: {seen}.", declare,
                   read=lambda p: ner.check_tag_scheme(ner.read_ner_file(p)))
    assert seen.endswith(f"{tag} 1") and text.count("\n") == 0
    # Declared, the tag is a label like the others (a reserved name never is).
    if tag == "X":
        with pytest.raises(InputError, match="reserved"):
            ner.parse_label_set(declare.split("=")[1])
        return
    declared = ner.LabelMap(ner.parse_label_set(declare.split("=")[1]), source="declared by --labels")
    ner.check_labels(sentences, declared)
    assert declared.is_entity(tag) and declared.entity_labels == sorted(counts)
    # Declared without it: stopped at the same line by the declared set.
    _raises(path, 7, f"label {tag!r} is not in the label set B, I, O (declared by --labels); add it to --labels",
            read=lambda p: ner.check_labels(sentences, ner.LabelMap(["B", "I", "O"], source="declared by --labels")))


@pytest.mark.parametrize("form, line, stray, fragment", [
    ("typed", 7, "B", "tag 'B' has no type but the other B/I tags are typed"),
    ("bare", 7, "B-Chemical", "tag 'B-Chemical' is typed but the other B/I tags are bare"),
    ("typed", 7, "B-chemical", "tag 'B-chemical' spells the type 'chemical', elsewhere 'Chemical'"),
])
def test_one_form_of_tags_throughout(tmp_path, chem_lines, form, line, stray, fragment):
    lines = _variants()["typed tags"][0](chem_lines) if form == "typed" else chem_lines
    path = _write(tmp_path / "train.tsv", _edited(lines, **{f"l{line}": f"clonidine\t-\t49\t{stray}"}))
    _raises(path, line, fragment, f"{stray} 1", read=lambda p: ner.check_tag_scheme(ner.read_ner_file(p)))


def test_the_form_is_the_training_datas_across_files(tmp_path, chem_lines):
    train = ner.read_ner_file(_write(tmp_path / "train.tsv", chem_lines))
    typed = _variants()["typed tags"][0](chem_lines[:30])
    devel_path = _write(tmp_path / "devel.tsv", typed)
    first_typed = next(k for k, line in enumerate(typed, start=1) if "-Chemical" in line)
    _raises(devel_path, first_typed, "is typed but the other B/I tags are bare", "tags in devel.tsv: O",
            read=lambda p: ner.check_tag_scheme(train + ner.read_ner_file(p)))


def test_a_test_tag_unknown_to_training(tmp_path, chem_lines):
    train = ner.read_ner_file(_write(tmp_path / "train.tsv", chem_lines))
    label_map = ner.LabelMap.from_sentences([train])
    path = _write(tmp_path / "test.tsv", _edited(chem_lines, l7="clonidine\t-\t49\tB-Drug"))
    _raises(path, 7, "label 'B-Drug' is not in the label set B, I, O (built from the training data); declare "
            "the label set with --labels to include it; tags in test.tsv: O ", "B-Drug 1",
            read=lambda p: ner.check_labels(ner.read_ner_file(p), label_map))
    saved = tmp_path / "label_map.json"
    label_map.to_json(saved)
    message = _raises(path, 7, f"(of the trained model, {saved}); tags in test.tsv",
                      read=lambda p: ner.check_labels(ner.read_ner_file(p), ner.LabelMap.from_json(saved)))
    assert "--labels" not in message                  # a trained model's labels are fixed


def test_parse_label_set(tmp_path):
    assert ner.parse_label_set("O, B-Chemical ,I-Chemical,O") == ["B-Chemical", "I-Chemical", "O"]
    listed = tmp_path / "labels.txt"
    listed.write_bytes(b"\xef\xbb\xbfB\r\n\r\nI\r\nO \r\nb\r\n")
    assert ner.parse_label_set(str(listed)) == ["B", "I", "O", "b"]
    saved = tmp_path / "label_map.json"
    ner.LabelMap(["B", "I", "O", "49"]).to_json(saved)
    assert ner.parse_label_set(str(saved)) == ["49", "B", "I", "O"]
    for value, fragment in (("B,,O", "has an empty tag"), ("B,[SEP]", "'[SEP]' is reserved"),
                            (str(tmp_path / "missing.txt"), "labels file not found")):
        with pytest.raises(InputError, match=re.escape(fragment)):
            ner.parse_label_set(value)
    listed.write_text("B\nI O\n")
    _raises(listed, 2, "tag 'I O' holds whitespace", read=lambda p: ner.parse_label_set(str(p)))
