"""Character offsets of raw text through every normalisation the tokenizer applies, against offsets written by
hand (not against the project's own slices): combining accents at word ends, accent stripping and lower-casing
(uncased), control and format characters, CJK ideographs, punctuation splitting, whitespace variants, CRLF; the
predict file's line endings; WordPiece's longest match up to the longest vocabulary piece."""
import json

import numpy as np

import pytest

from biobert import rawtext
from biobert.tokenization import FullTokenizer, WordpieceTokenizer


def spans(text, tokenizer):
    return [(w.text, w.start, w.end) for w in rawtext.words_with_offsets(text, tokenizer)]


# Each case: text, then the uncased words as (normalised text, start, end), counted by hand.
UNCASED = [
    # A decomposed accent (U+0301) ends the word: it belongs to the word's span, stripped or not.
    ("cafe\u0301 au lait", [("cafe", 0, 5), ("au", 6, 8), ("lait", 9, 13)]),
    ("re\u0301sume\u0301. ok", [("resume", 0, 8), (".", 8, 9), ("ok", 10, 12)]),
    ("e\u0301", [("e", 0, 2)]),
    ("Na\u0308\u0301 x", [("na", 0, 4), ("x", 5, 6)]),                   # two stacked marks
    # Precomposed accents, lower-casing, a dotted capital I (lower-cases to i + U+0307).
    ("Café, Ångström naïve", [("cafe", 0, 4), (",", 4, 5), ("angstrom", 6, 14), ("naive", 15, 20)]),
    ("İstanbul", [("istanbul", 0, 8)]),
    # A final sigma: the whole token lower-cases to "οδος"; the word after the hyphen keeps its own span.
    ("ΟΔΟΣ-Aspirin x", [("οδος", 0, 4), ("-", 4, 5), ("aspirin", 5, 12), ("x", 13, 14)]),
    # Control and format characters are dropped, joining the halves: BEL, zero-width space, soft hyphen, NUL,
    # U+FFFD; the word still spans the original characters.
    ("a\x07b c\u200bd", [("ab", 0, 3), ("cd", 4, 7)]),
    ("ab\u00adcd \x00x\ufffdy", [("abcd", 0, 5), ("xy", 7, 10)]),
    # CJK ideographs are words of their own; kana is not CJK for BERT.
    ("中文abc", [("中", 0, 1), ("文", 1, 2), ("abc", 2, 5)]),
    ("abc中", [("abc", 0, 3), ("中", 3, 4)]),
    # Punctuation splits (ASCII symbols and Unicode P*), one character a word.
    ("(±)-1,2-NaCl-induced", [("(", 0, 1), ("±", 1, 2), (")", 2, 3), ("-", 3, 4), ("1", 4, 5), (",", 5, 6),
                               ("2", 6, 7), ("-", 7, 8), ("nacl", 8, 12), ("-", 12, 13), ("induced", 13, 20)]),
    ("x\u2013y\u00bfz", [("x", 0, 1), ("\u2013", 1, 2), ("y", 2, 3), ("\u00bf", 3, 4), ("z", 4, 5)]),
    # Whitespace variants: NBSP, tab, thin space, ideographic space, line separator, CRLF, runs of them.
    ("NaCl\u00a0and\tKCl\u2009x\u3000y\u2028z", [("nacl", 0, 4), ("and", 5, 8), ("kcl", 9, 12), ("x", 13, 14),
                                                ("y", 15, 16), ("z", 17, 18)]),
    ("  x\r\ny \t\u00a0 z ", [("x", 2, 3), ("y", 5, 6), ("z", 10, 11)]),
]


@pytest.mark.parametrize("text, expected", UNCASED, ids=[repr(t) for t, _ in UNCASED])
def test_uncased_word_offsets(uncased, text, expected):
    assert spans(text, uncased) == expected
    words = rawtext.words_with_offsets(text, uncased)
    assert [p for w in words for p in w.pieces] == uncased.tokenize(text)


CASED = [
    # Cased: accents are kept; a decomposed one is part of its word (a piece of its own in this vocabulary).
    ("cafe\u0301 au", [("cafe\u0301", 0, 5), ("au", 6, 8)]),
    ("ΟΔΟΣ-Aspirin", [("ΟΔΟΣ", 0, 4), ("-", 4, 5), ("Aspirin", 5, 12)]),
    ("a\x07b\u00a0\u4e2dC", [("ab", 0, 3), ("\u4e2d", 4, 5), ("C", 5, 6)]),
]


@pytest.mark.parametrize("text, expected", CASED, ids=[repr(t) for t, _ in CASED])
def test_cased_word_offsets(cased, text, expected):
    assert spans(text, cased) == expected
    words = rawtext.words_with_offsets(text, cased)
    assert [p for w in words for p in w.pieces] == cased.tokenize(text)


def test_piece_offsets(uncased, cased):
    """Each WordPiece piece covers the original characters it was made of (dropped ones included)."""
    by_word = {w.text: list(zip(w.pieces, w.piece_spans))
               for w in rawtext.words_with_offsets("Ångström ab\u00adcd cafe\u0301", uncased)}
    assert by_word["angstrom"] == [("ang", (0, 3)), ("##strom", (3, 8))]
    assert by_word["abcd"] == [("abc", (9, 13)), ("##d", (13, 14))]
    assert by_word["cafe"] == [("cafe", (15, 20))]
    words = rawtext.words_with_offsets("cafe\u0301 re\u0301sume\u0301", cased)
    assert list(zip(words[0].pieces, words[0].piece_spans)) == [("cafe", (0, 4)), ("##\u0301", (4, 5))]
    assert list(zip(words[1].pieces, words[1].piece_spans)) == [("re", (6, 8)), ("##\u0301", (8, 9)),
                                                               ("##sume", (9, 13)), ("##\u0301", (13, 14))]


def test_entities_span_their_words_in_the_original_text(uncased):
    """decode_entities on the words of a text full of normalisations: the entity offsets written by hand."""
    text = "Re\u0301sume\u0301-induced ΟΔΟΣ-Aspirin\u00a0and\tcafe\u0301ine\u0301, x\u200by 中文."
    words = rawtext.words_with_offsets(text, uncased)
    assert [w.text for w in words] == ["resume", "-", "induced", "οδος", "-", "aspirin", "and", "cafeine",
                                       ",", "xy", "中", "文", "."]
    # conlleval's chunks: an I after an O starts an entity (cafeine), a B after a B starts another (中).
    labels = ["B", "I", "I", "O", "O", "B", "O", "I", "O", "B", "B", "I", "O"]
    entities = rawtext.decode_entities(text, words, labels, [0.5] * len(words), "Chemical")
    assert [(e["start"], e["end"], e["text"]) for e in entities] == [
        (0, 16, "Re\u0301sume\u0301-induced"),
        (22, 29, "Aspirin"),
        (34, 43, "cafe\u0301ine\u0301"),
        (45, 48, "x\u200by"),
        (49, 51, "中文"),
    ]


# ---------------------------------------------------------------------------------------------------------
# The predict file: line endings

def test_crlf_lines_are_read_without_their_carriage_return(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes(b"\xef\xbb\xbfFirst line.\r\nSecond\rstill second.\r\n\r\nLast, no newline\r")
    docs = rawtext.read_documents(path)
    assert [(d.id, d.text, d.line) for d in docs] == [
        (1, "First line.", 1), (2, "Second\rstill second.", 2), (3, "", 3), (4, "Last, no newline", 4)]
    path.write_bytes(b'{"id": "a", "text": "x\\r\\ny"}\r\n\r\n{"text": "caf\xc3\xa9\\r"}\r\n')
    docs = rawtext.read_documents(path)
    assert [(d.id, d.text) for d in docs] == [("a", "x\r\ny"), (2, ""), (3, "café\r")]   # escaped \r is text
    # LF files and CRLF files give the same documents.
    lines = ["Aspirin and NaCl.", "", "Naïve\u00a0rats."]
    (tmp_path / "lf.txt").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    (tmp_path / "crlf.txt").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8", newline="")
    assert [d.text for d in rawtext.read_documents(tmp_path / "crlf.txt")] == lines
    assert [d.text for d in rawtext.read_documents(tmp_path / "lf.txt")] == lines
    rows = [json.dumps({"text": t}) for t in lines]
    (tmp_path / "crlf.jsonl").write_text("\r\n".join(rows) + "\r\n", encoding="utf-8", newline="")
    assert [d.text for d in rawtext.read_documents(tmp_path / "crlf.jsonl")] == lines


# ---------------------------------------------------------------------------------------------------------
# WordPiece: the longest match may be as long as the longest piece

def test_wordpiece_matches_the_longest_piece_of_the_vocabulary(uncased, cased):
    wordpiece = WordpieceTokenizer({t: i for i, t in enumerate(["[UNK]", "un", "##aff", "##able", "unaffable", "##s"])})
    assert wordpiece.tokenize("unaffable") == ["unaffable"]                 # 9 characters: the longest piece
    assert wordpiece.tokenize("unaffables un") == ["unaffable", "##s", "un"]
    wordpiece = WordpieceTokenizer({t: i for i, t in enumerate(["[UNK]", "s", "##unaffable", "##un", "##aff"])})
    assert wordpiece.tokenize("sunaffable") == ["s", "##unaffable"]         # the longest piece: ## + 9
    # The real vocabularies' longest piece has 18 characters.
    assert uncased.tokenize("telecommunications") == ["telecommunications"]
    assert cased.tokenize("Telecommunications telecommunications") == ["Telecommunications", "telecommunications"]
    assert uncased.tokenize("interdisciplinary") == ["interdisciplinary"]


# ---------------------------------------------------------------------------------------------------------
# Raw-text NER decoding: each word's label from its first piece, never X / [CLS] / [SEP] / padding

class OneSentence:
    def spans(self, text):
        return [(0, len(text))]


def test_word_labels_come_from_first_pieces_and_word_level_labels(tmp_path):
    from biobert import ner

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "as", "##pi", "##rin", "and",
                                                 "water", ",", "."]), encoding="utf-8")
    tokenizer = FullTokenizer(vocab, do_lower_case=False)
    labels = ner.LabelMap(["B", "I", "O"])                       # [PAD] B I O X [CLS] [SEP]
    tagger = rawtext.NerTagger(tokenizer, labels, 16, OneSentence(), default_type="Chemical")
    text = "aspirin and water, aspirin."
    features, plan = tagger.features([rawtext.Document(1, text, 1)])
    # [CLS] as ##pi ##rin and water , as ##pi ##rin . [SEP]
    assert features[0]["input_ids"].tolist() == [2, 4, 5, 6, 7, 8, 9, 4, 5, 6, 10, 3]
    #            [PAD] B    I    O    X    [CLS] [SEP]
    p = np.array([[0, .1, .1, .1, .1, .5, .1],           # [CLS]
                  [0, .3, .1, .1, .5, 0, 0],            # aspirin: X is the arg-max, B the best word label
                  [0, 0, .9, .1, 0, 0, 0],              # ##pi, ##rin: not first pieces, never read
                  [0, 0, .9, .1, 0, 0, 0],
                  [0, .1, .2, .6, .1, 0, 0],            # and: O
                  [0, .7, .1, .1, .1, 0, 0],            # water: B
                  [.5, .1, .1, .2, .1, 0, 0],           # ",": [PAD] is the arg-max, O the best word label
                  [0, .1, .8, .1, 0, 0, 0],             # aspirin: I after O, an entity of its own
                  [0, .1, .1, .1, .7, 0, 0],
                  [0, .1, .1, .1, .7, 0, 0],
                  [0, .1, .1, .6, .1, .1, 0],           # ".": O
                  [0, .1, .1, .1, 0, 0, .7]])           # [SEP]
    records = tagger.decode([rawtext.Document(1, text, 1)], plan, [p])
    assert records == [{"id": 1, "text": text, "entities": [
        {"start": 0, "end": 7, "text": "aspirin", "type": "Chemical", "score": 0.3},
        {"start": 12, "end": 17, "text": "water", "type": "Chemical", "score": 0.7},
        {"start": 19, "end": 26, "text": "aspirin", "type": "Chemical", "score": 0.8}]}]
