"""Tests for biobert.tokenization: Google BERT tokenization on the real BERT vocabularies.

Expected WordPiece outputs were worked out by hand from Google's algorithm and the vocabulary
files (which pieces exist, longest match first); ids are the 0-based line numbers in the files.
The toy-vocabulary cases are the ones in google-research/bert ``tokenization_test.py``.
"""
import time

import pytest

from biobert import tokenization
from biobert.errors import InputError
from biobert.tokenization import (BasicTokenizer, FullTokenizer, WordpieceTokenizer,
                                  convert_to_unicode, load_vocab, validate_case_matches_checkpoint,
                                  whitespace_tokenize)

TOY_VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","]


@pytest.fixture
def toy_vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(token + "\n" for token in TOY_VOCAB), encoding="utf-8")
    return path


# ---------------------------------------------------------------- vocabulary


def test_load_vocab_real_files(uncased_vocab, cased_vocab):
    uncased = load_vocab(uncased_vocab)
    cased = load_vocab(cased_vocab)
    assert len(uncased) == 30522 and len(cased) == 28996
    assert list(uncased.items())[:2] == [("[PAD]", 0), ("[unused0]", 1)]
    assert list(cased.items())[:2] == [("[PAD]", 0), ("[unused1]", 1)]
    for vocab in (uncased, cased):
        assert [vocab[t] for t in ("[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [100, 101, 102, 103]
        assert list(vocab.values()) == list(range(len(vocab)))
    assert uncased["hello"] == 7592 and uncased["##s"] == 2015 and uncased[","] == 1010
    assert cased["Hello"] == 8667 and cased["##s"] == 1116 and cased[","] == 117


def test_load_vocab_strips_line_ends_and_keeps_blank_lines(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"[PAD]\r\n\n  hi \nlast")
    assert list(load_vocab(path).items()) == [("[PAD]", 0), ("", 1), ("hi", 2), ("last", 3)]


def test_load_vocab_missing_file(tmp_path):
    missing = tmp_path / "no_such_vocab.txt"
    with pytest.raises(InputError, match="no_such_vocab.txt.*not found"):
        load_vocab(missing)
    with pytest.raises(InputError, match="no_such_vocab.txt"):
        FullTokenizer(missing)


def test_load_vocab_empty_file(tmp_path):
    empty = tmp_path / "empty_vocab.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="empty_vocab.txt.*empty"):
        load_vocab(empty)


def test_load_vocab_not_utf8_names_line(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"[PAD]\nok\ncaf\xe9\n")
    with pytest.raises(InputError, match=r"latin1.txt:3: .*UTF-8"):
        load_vocab(bad)


# ---------------------------------------------------------------- helpers


def test_convert_to_unicode_and_whitespace_tokenize():
    assert convert_to_unicode("h\u00e9") == "h\u00e9"
    assert convert_to_unicode("h\u00e9".encode("utf-8")) == "h\u00e9"
    assert convert_to_unicode(b"a\xffb") == "ab"  # bad bytes dropped
    with pytest.raises(ValueError):
        convert_to_unicode(12)
    assert whitespace_tokenize("  a\tb \n c  ") == ["a", "b", "c"]
    assert whitespace_tokenize(" \t\n ") == []


def test_character_classes_as_google():
    for char in (" ", "\t", "\r", "\n", "\u00a0", "\u3000"):
        assert tokenization.is_whitespace(char)
    for char in ("A", "-", "\u2028"):
        assert not tokenization.is_whitespace(char)
    for char in ("\u0005", "\x0b", "\u200b", "\ufeff"):
        assert tokenization.is_control(char)
    for char in ("A", " ", "\t", "\r", "\U0001F4A9", "\ue000"):
        assert not tokenization.is_control(char)
    for char in ("-", "$", "`", ".", "^", "~", "\u00bf", "\u2014", "\u00ab"):
        assert tokenization.is_punctuation(char)
    for char in ("A", " ", "\u00b1", "\u00a9"):
        assert not tokenization.is_punctuation(char)


# ---------------------------------------------------------------- BasicTokenizer


def test_basic_lower_google_cases():
    basic = BasicTokenizer(do_lower_case=True)
    assert basic.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
    assert basic.tokenize("H\u00e9llo") == ["hello"]
    assert basic.tokenize("He\u0301llo") == ["hello"]  # decomposed accent is stripped too


def test_basic_cased_keeps_case_and_accents():
    basic = BasicTokenizer(do_lower_case=False)
    assert basic.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["HeLLo", "!", "how", "Are", "yoU", "?"]
    assert basic.tokenize("H\u00e9llo") == ["H\u00e9llo"]


def test_basic_punctuation():
    basic = BasicTokenizer(do_lower_case=False)
    # ASCII symbols count as punctuation even where Unicode says "symbol" ($ ^ ` + = ~ |).
    assert basic.tokenize("a$b^c`d+e=f~g|h") == list("a$b^c`d+e=f~g|h")
    assert basic.tokenize("x--y...") == ["x", "-", "-", "y", ".", ".", "."]
    # Unicode P* categories: guillemets, em dash, inverted question mark.
    assert basic.tokenize("\u00abx\u00bb y\u2014z \u00bfq") == [
        "\u00ab", "x", "\u00bb", "y", "\u2014", "z", "\u00bf", "q"]
    # Non-ASCII symbols (Sm, So) are not punctuation.
    assert basic.tokenize("5\u00b12 a\u00a9b") == ["5\u00b12", "a\u00a9b"]
    # Special tokens get no protection: Google splits their brackets.
    assert BasicTokenizer(True).tokenize("[CLS] x [SEP]") == ["[", "cls", "]", "x", "[", "sep", "]"]


def test_basic_chinese_characters():
    basic = BasicTokenizer(do_lower_case=True)
    assert basic.tokenize("ah\u535a\u63a8zz") == ["ah", "\u535a", "\u63a8", "zz"]
    # Compatibility ideographs and extension B are CJK too; hiragana and hangul are not.
    cased = BasicTokenizer(do_lower_case=False)
    assert cased.tokenize("a\uf900b\U00020000c") == ["a", "\uf900", "b", "\U00020000", "c"]
    # Uncased NFD maps the compatibility ideograph U+F900 to its canonical U+8C48.
    assert basic.tokenize("a\uf900b") == ["a", "\u8c48", "b"]
    assert cased.tokenize("\u3042\u3044 \ud55c\uad6d") == ["\u3042\u3044", "\ud55c\uad6d"]


def test_basic_removes_nul_replacement_and_control_chars():
    basic = BasicTokenizer(do_lower_case=False)
    assert basic.tokenize("a\x00b\ufffdc\u200bd\x07e\ufefff") == ["abcdef"]
    # \x0b, \x1c and \x85 are control characters (dropped), though str.split treats them as spaces.
    assert basic.tokenize("a\x0bb\x1cc\x85d") == ["abcd"]
    assert basic.tokenize("\x00\ufffd\x07") == []


def test_basic_whitespace_variants():
    basic = BasicTokenizer(do_lower_case=False)
    assert basic.tokenize("a\tb\nc\rd\u00a0e\u2009f\u3000g\u202fh") == list("abcdefgh")
    assert basic.tokenize("a\u2028b") == ["a", "b"]  # kept by cleaning, split by whitespace splitting
    assert basic.tokenize("") == [] and basic.tokenize(" \t\r\n\u00a0") == []


# ---------------------------------------------------------------- WordpieceTokenizer


def test_wordpiece_google_cases():
    vocab = {token: i for i, token in enumerate(TOY_VOCAB[:-1])}
    wordpiece = WordpieceTokenizer(vocab=vocab)
    assert wordpiece.tokenize("") == []
    assert wordpiece.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert wordpiece.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
    # Results are cached per word; a repeat must give the same (and an independent) list.
    first = wordpiece.tokenize("unwanted")
    first.append("junk")
    assert wordpiece.tokenize("unwanted") == ["un", "##want", "##ed"]


def test_wordpiece_max_input_chars_per_word():
    vocab = {token: i for i, token in enumerate(TOY_VOCAB)}
    wordpiece = WordpieceTokenizer(vocab=vocab, max_input_chars_per_word=8)
    assert wordpiece.tokenize("unwanted") == ["un", "##want", "##ed"]
    assert wordpiece.tokenize("unwanteded") == ["[UNK]"]
    assert WordpieceTokenizer(vocab=vocab).max_input_chars_per_word == 200  # Google's default


def test_wordpiece_cache_is_bounded():
    vocab = {token: i for i, token in enumerate(TOY_VOCAB)}
    wordpiece = WordpieceTokenizer(vocab=vocab, cache_size=2)
    for word in ("un", "want", "wa", "runn", "unwanted"):
        wordpiece.tokenize(word)
    assert len(wordpiece._cache) <= 2
    assert wordpiece.tokenize("un wa") == ["un", "wa"]


# ---------------------------------------------------------------- FullTokenizer


def test_full_tokenizer_google_toy_vocab(toy_vocab_file):
    tokenizer = FullTokenizer(toy_vocab_file)
    tokens = tokenizer.tokenize("UNwant\u00e9d,running")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tokenizer.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]


def test_unwanted_running_real_vocabs(uncased, cased):
    # uncased: lower + strip accent gives "unwanted", a whole word of the real vocabulary.
    tokens = uncased.tokenize("UNwant\u00e9d,running")
    assert tokens == ["unwanted", ",", "running"]
    assert uncased.convert_tokens_to_ids(tokens) == [18162, 1010, 2770]
    # cased: no UNw..., so UN; then ##wan (no ##want), ##t\u00e9 (no ##t\u00e9d), ##d.
    assert cased.tokenize("UNwant\u00e9d,running") == ["UN", "##wan", "##t\u00e9", "##d", ",", "running"]


def test_accents_cased_vs_uncased(uncased, cased):
    assert uncased.tokenize("H\u00e9llo") == ["hello"]
    assert cased.tokenize("H\u00e9llo") == ["H", "##\u00e9", "##llo"]
    assert uncased.do_lower_case is True and cased.do_lower_case is False


def test_chinese_and_kana_real_vocabs(uncased, cased):
    # Each CJK ideograph is its own word: the missing one becomes [UNK] alone.
    assert uncased.tokenize("ah\u535a\u63a8") == ["ah", "\u535a", "[UNK]"]
    assert cased.tokenize("ah\u535a\u63a8") == ["ah", "[UNK]", "[UNK]"]
    # Hiragana is not split; uncased has \u3042 and ##\u3044, cased lacks \u3042.
    assert uncased.tokenize("\u3042\u3044") == ["\u3042", "##\u3044"]
    assert cased.tokenize("\u3042\u3044") == ["[UNK]"]


def test_unmatchable_word_is_one_unk(uncased, cased):
    # No piece of either vocabulary contains the snowman, so the whole word is [UNK].
    assert uncased.tokenize("x ab\u2603 z") == ["x", "[UNK]", "z"]
    assert cased.tokenize("ab\U0001F600") == ["[UNK]"]
    # A private-use character (category Co, as in a real ChemProt abstract) is not a control
    # character for Google (only Cc/Cf are), so it stays and makes its word [UNK].
    assert cased.tokenize("a \ue2f640 b") == ["a", "[UNK]", "b"]


def test_very_long_word(uncased):
    word = "ab" * 100  # 200 characters: still split into pieces
    pieces = uncased.tokenize(word)
    assert "[UNK]" not in pieces and len(pieces) > 1
    assert "".join(p[2:] if p.startswith("##") else p for p in pieces) == word
    assert uncased.tokenize(word + "a") == ["[UNK]"]  # 201 characters
    assert uncased.tokenize("x " + "a" * 500 + " y") == ["x", "[UNK]", "y"]


def test_control_chars_and_whitespace_in_full_tokenizer(uncased):
    assert uncased.tokenize("hel\x00lo\ufffd\u200b how\tare") == ["hello", "how", "are"]
    assert uncased.tokenize("hello\u00a0how\nare\r\nyou") == ["hello", "how", "are", "you"]
    assert uncased.tokenize("") == [] and uncased.tokenize("\x00 \ufffd") == []


def test_special_tokens_are_split_like_google(uncased):
    assert uncased.tokenize("[CLS]") == ["[", "cl", "##s", "]"]


def test_biomedical_sentence_uncased(uncased):
    text = "Naloxone reverses the antihypertensive effect of clonidine."
    tokens = uncased.tokenize(text)
    assert tokens == ["na", "##lo", "##xon", "##e", "reverse", "##s", "the", "anti", "##hy", "##per",
                      "##tens", "##ive", "effect", "of", "cl", "##oni", "##dine", "."]
    assert uncased.convert_tokens_to_ids(tokens) == [
        6583, 4135, 22500, 2063, 7901, 2015, 1996, 3424, 10536, 4842,
        25808, 3512, 3466, 1997, 18856, 10698, 10672, 1012]


def test_biomedical_sentence_cased(cased):
    text = "Naloxone reverses the antihypertensive effect of clonidine."
    tokens = cased.tokenize(text)
    assert tokens == ["Na", "##lo", "##xon", "##e", "reverse", "##s", "the", "anti", "##hy", "##pert",
                      "##ens", "##ive", "effect", "of", "c", "##lon", "##id", "##ine", "."]
    assert cased.convert_tokens_to_ids(tokens) == [
        11896, 2858, 21501, 1162, 7936, 1116, 1103, 2848, 7889, 17786,
        5026, 2109, 2629, 1104, 172, 4934, 2386, 2042, 119]


def test_relation_markers(uncased, cased):
    text = "@CHEMICAL$ inhibits @GENE$ (IC50 = 3.5 nM)."
    assert uncased.tokenize(text) == ["@", "chemical", "$", "inhibit", "##s", "@", "gene", "$", "(", "ic",
                                      "##50", "=", "3", ".", "5", "nm", ")", "."]
    assert cased.tokenize(text) == ["@", "CH", "##EM", "##IC", "##AL", "$", "in", "##hibit", "##s", "@",
                                    "GE", "##NE", "$", "(", "I", "##C", "##50", "=", "3", ".", "5",
                                    "n", "##M", ")", "."]


def test_bytes_input_matches_str(cased):
    text = "Naloxone reverses H\u00e9llo"
    assert cased.tokenize(text.encode("utf-8")) == cased.tokenize(text)


# ---------------------------------------------------------------- ids


def test_ids_round_trip(uncased, cased):
    for tokenizer in (uncased, cased):
        tokens = tokenizer.tokenize("[CLS] Naloxone reverses the effect of clonidine (IC50 = 3.5 nM). [SEP]")
        ids = tokenizer.convert_tokens_to_ids(tokens)
        assert tokenizer.convert_ids_to_tokens(ids) == tokens
        assert all(tokenizer.inv_vocab[i] == t for i, t in zip(ids, tokens))
    assert uncased.convert_ids_to_tokens([0, 100, 101, 102, 103]) == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(uncased.inv_vocab) == 30522


def test_unknown_token_and_id(uncased, tmp_path):
    assert uncased.convert_tokens_to_ids(["hello", "no-such-piece", "[CLS]"]) == [7592, 100, 101]
    with pytest.raises(InputError, match="bert-base-uncased-vocab.txt.*id 30522"):
        uncased.convert_ids_to_tokens([30522])
    no_unk = tmp_path / "no_unk.txt"
    no_unk.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(InputError, match="no_unk.txt.*'c'"):
        FullTokenizer(no_unk).convert_tokens_to_ids(["a", "c"])


# ---------------------------------------------------------------- checkpoint casing


def test_validate_case_matches_checkpoint():
    validate_case_matches_checkpoint(True, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt")
    validate_case_matches_checkpoint(False, "/m/cased_L-12_H-768_A-12/bert_model.ckpt")
    validate_case_matches_checkpoint(True, "/results/biobert/model.ckpt-1000")  # unknown name: no check
    validate_case_matches_checkpoint(False, None)
    with pytest.raises(InputError, match=r"uncased_L-12_H-768_A-12.*do_lower_case=True"):
        validate_case_matches_checkpoint(False, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt")
    with pytest.raises(InputError, match=r"multi_cased_L-12_H-768_A-12.*do_lower_case=False"):
        validate_case_matches_checkpoint(True, "gs://b/multi_cased_L-12_H-768_A-12/bert_model.ckpt.index")


# ---------------------------------------------------------------- real corpus


def test_bc5cdr_train_words_fast(cased, shared_data):
    words = []
    with open(shared_data / "BC5CDR" / "chem" / "train.tsv", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                words.append(line.split("\t")[0])
    assert len(words) == 118081
    start = time.perf_counter()
    pieces = [cased.tokenize(word) for word in words]
    elapsed = time.perf_counter() - start
    assert all(pieces), "every BC5CDR word yields at least one piece"
    # The pieces of a word without [UNK] spell the word back (cased: nothing is changed).
    for word, word_pieces in zip(words[:2000], pieces[:2000]):
        if "[UNK]" not in word_pieces:
            assert "".join(p[2:] if p.startswith("##") else p for p in word_pieces) == word.replace(" ", "")
    assert elapsed < 10, f"tokenizing BC5CDR train took {elapsed:.1f}s"
