"""Raw-text prediction: the tasks' decoding run backwards to character offsets of the user's own text.

NER (``run_ner.py --do_predict --predict_file=FILE``):

    documents = read_documents(FILE)                 # plain text (a document a line) or JSON lines {"text", "id"}
    tagger = NerTagger(tokenizer, label_map, max_seq_length, segmenter)
    features, plan = tagger.features(documents)      # sentences -> windows of at most max_seq_length pieces
    probs = <the shared predict loop over features>  # finetuning.infer: length-sorted batches across documents
    records = tagger.decode(documents, plan, probs)  # {"id", "text", "entities": [{"start", "end", ...}]}

Every character offset points into the ORIGINAL string: ``words_with_offsets`` reproduces BasicTokenizer
(control characters dropped, whitespace, CJK, lower-casing, accent stripping, punctuation) while remembering
where each character came from, so ``text[start:end] == entity["text"]`` whatever the tokenizer normalised.
"""
import dataclasses
import json

import numpy as np

from biobert import tokenization
from biobert.errors import InputError, require_file
from biobert.fileio import atomic_open

CLS, SEP, UNK = "[CLS]", "[SEP]", "[UNK]"


# ----------------------------------------------------------------------------------------------------------
# Input documents

@dataclasses.dataclass
class Document:
    id: object          # the JSON line's "id", else the 1-based line number
    text: str
    line: int           # 1-based line in the input file
    extra: dict = dataclasses.field(default_factory=dict)   # other JSON fields (relation spans)


def read_documents(path, require_json=False):
    """Read a predict file: plain text, one document a line, or JSON lines with ``"text"`` (and ``"id"``).

    The format is JSON lines when the first non-blank line starts with ``{``. Lines are split on ``\\n``
    only; a ``\\r`` ending a line (CRLF files) is not part of the text. An empty line is a document with
    empty text. InputError naming ``path:line`` for a line that is not UTF-8 or not a JSON object with a
    string ``"text"``; a missing file or a file with no line at all is an error too.
    """
    path = require_file(path, "predict file")
    with open(path, "rb") as handle:
        raw = handle.read()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise InputError("no documents (empty file)", path=path)
    texts = []
    for number, line in enumerate(lines, start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]                                  # a UTF-8 byte-order mark is not text
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise InputError(f"not UTF-8 text (byte {err.start + 1} of the line: {err.reason})",
                             path=path, line=number) from None
    first = next((t for t in texts if t.strip()), "")
    as_json = require_json or first.lstrip().startswith("{")
    documents = []
    for number, text in enumerate(texts, start=1):
        if not as_json:
            documents.append(Document(number, text, number))
            continue
        if not text.strip():
            documents.append(Document(number, "", number))
            continue
        try:
            obj = json.loads(text)
        except ValueError as err:
            raise InputError(f"not a JSON object ({err})", path=path, line=number) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputError('expected a JSON object with a string "text"', path=path, line=number)
        extra = {k: v for k, v in obj.items() if k not in ("id", "text")}
        documents.append(Document(obj.get("id", number), obj["text"], number, extra))
    return documents


def write_jsonl(path, records):
    """One JSON object a line (UTF-8, not ASCII-escaped), written atomically."""
    with atomic_open(path, "w") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------------------------------------
# BasicTokenizer + WordPiece with character offsets

@dataclasses.dataclass
class Word:
    """One BasicTokenizer token: its (normalised) text, its span in the original string, its WordPiece pieces
    and each piece's span."""
    text: str
    start: int
    end: int
    pieces: list
    piece_spans: list


def _char_kind(char):
    """What BasicTokenizer's cleaning does with ``char``: tokenization.DROP, SPACE, PAD (CJK) or KEEP.

    A kept character that ``str.split`` treats as whitespace (U+2028, U+2029, ...) separates words as well,
    as it does in BasicTokenizer's whitespace_tokenize."""
    action = tokenization.char_action(char)
    if action == tokenization.KEEP and char.isspace():
        return tokenization.SPACE
    return action


def _normalise(chars, do_lower_case):
    """chars: [(char, index)] of one whitespace-separated token -> [(char, start, end)] after lower-casing and
    accent stripping, each output character with the span of the original characters it came from.

    Characters are normalised one by one; a character that yields nothing (a stripped combining accent)
    widens the span of the character before it. If the one-by-one result differs from normalising the whole
    token: with as many characters (a final sigma: ``ΟΔΟΣ-X`` lower-cases to ``οδος-x``, one by one to
    ``οδοσ-x``), the whole token's characters keep the one-by-one spans, so that the other words of the token
    keep theirs; otherwise every output character gets the whole token's span."""
    if not do_lower_case:
        return [(c, i, i + 1) for c, i in chars]
    whole = tokenization.strip_accents("".join(c for c, _ in chars).lower())
    out = []
    for c, i in chars:
        produced = tokenization.strip_accents(c.lower())
        if not produced:
            if out:
                ch, s, _ = out[-1]
                out[-1] = (ch, s, i + 1)
            continue
        out += [(p, i, i + 1) for p in produced]
    if "".join(ch for ch, _, _ in out) != whole:
        if len(out) == len(whole):
            return [(ch, s, e) for ch, (_, s, e) in zip(whole, out)]
        start, end = chars[0][1], chars[-1][1] + 1
        out = [(ch, start, end) for ch in whole]
    return out


def basic_words(text, do_lower_case):
    """BasicTokenizer.tokenize(text) as [(token, start, end, char_spans)] with spans into ``text``."""
    words = []

    def flush(chars):
        if not chars:
            return
        current = []
        for ch, s, e in _normalise(chars, do_lower_case):
            if tokenization.is_punctuation(ch):
                if current:
                    words.append(current)
                    current = []
                words.append([(ch, s, e)])
            else:
                current.append((ch, s, e))
        if current:
            words.append(current)

    token = []
    for index, char in enumerate(text):
        kind = _char_kind(char)
        if kind == tokenization.DROP:
            continue
        if kind == tokenization.SPACE:
            flush(token)
            token = []
        elif kind == tokenization.PAD:
            flush(token)
            token = []
            flush([(char, index)])
        else:
            token.append((char, index))
    flush(token)
    return [("".join(ch for ch, _, _ in w), w[0][1], max(e for _, _, e in w), [(s, e) for _, s, e in w])
            for w in words]


def words_with_offsets(text, tokenizer):
    """FullTokenizer.tokenize(text) grouped by word, with character offsets into ``text``: a list of Word.

    The concatenated pieces equal ``tokenizer.tokenize(text)``. A piece's span covers the original
    characters it was made of; an ``[UNK]`` piece covers its whole word."""
    out = []
    for token, start, end, spans in basic_words(text, tokenizer.do_lower_case):
        pieces = list(tokenizer.wordpiece_tokenizer.tokenize(token))
        if pieces == [UNK] or len(pieces) == 0:
            out.append(Word(token, start, end, pieces or [UNK], [(start, end)]))
            continue
        piece_spans, pos = [], 0
        for k, piece in enumerate(pieces):
            n = len(piece) - (2 if k > 0 and piece.startswith("##") else 0)
            piece_spans.append((spans[pos][0], max(e for _, e in spans[pos:pos + n])))
            pos += n
        out.append(Word(token, start, end, pieces, piece_spans))
    return out


# ----------------------------------------------------------------------------------------------------------
# Long sentences: overlapping windows

def windows(piece_counts, budget, overlap):
    """Cover words with windows of at most ``budget`` pieces (a single longer word is a window by itself and
    is truncated), consecutive windows sharing about ``overlap`` pieces. Returns [(first word, end word)]."""
    n = len(piece_counts)
    if n == 0:
        return []
    out, a = [], 0
    while True:
        total, b = 0, a
        while b < n and (b == a or total + piece_counts[b] <= budget):
            total += piece_counts[b]
            b += 1
        out.append((a, b))
        if b >= n:
            return out
        nxt, tail = b, 0
        while nxt - 1 > a and tail + piece_counts[nxt - 1] <= overlap:
            nxt -= 1
            tail += piece_counts[nxt]
        a = nxt


def owners(spans):
    """For windows [(a, b)] over words, the (first, end) words each window decides: an overlap is split in its
    middle, so that every word is decided by the window where it has the most context on both sides."""
    owned = []
    for k, (a, b) in enumerate(spans):
        lo = a if k == 0 else (a + spans[k - 1][1]) // 2
        hi = b if k == len(spans) - 1 else (spans[k + 1][0] + b) // 2
        owned.append((lo, hi))
    return owned


# ----------------------------------------------------------------------------------------------------------
# NER

def entity_type_of(label, default_type):
    """('B'|'I'|'O', type) of a word label: B-Chemical -> (B, Chemical); BLUE's B -> (B, default_type).
    BIOES/BILOU tags read as B (S, U) and I (E, L)."""
    if label == "O":
        return "O", None
    prefix, _, kind = label.partition("-")
    prefix = {"S": "B", "U": "B", "E": "I", "L": "I"}.get(prefix, prefix)
    if prefix not in ("B", "I"):
        return "B", label                  # an untagged class name: each word its own entity
    return prefix, kind or default_type


def decode_entities(text, words, labels, scores, default_type):
    """Entities of one sentence from its words' labels (conlleval's chunks: B starts one, I continues one of
    the same type, an I after O or after another type starts one). ``score``: the mean probability of the
    entity's word labels."""
    entities, current = [], None
    for word, label, score in zip(words, labels, scores):
        prefix, kind = entity_type_of(label, default_type)
        if prefix == "I" and current is not None and current["type"] == kind:
            current["end"] = word.end
            current["_scores"].append(score)
            continue
        if current is not None:
            entities.append(current)
            current = None
        if prefix in ("B", "I"):
            current = {"start": word.start, "end": word.end, "type": kind, "_scores": [score]}
    if current is not None:
        entities.append(current)
    out = []
    for e in entities:
        out.append({"start": e["start"], "end": e["end"], "text": text[e["start"]:e["end"]], "type": e["type"],
                    "score": round(float(np.mean(e.pop("_scores"))), 6)})
    return out


class NerTagger:
    """Raw documents -> window features for the shared predict loop -> entity records with offsets."""

    def __init__(self, tokenizer, label_map, max_seq_length, segmenter, default_type="entity", overlap=None):
        self.tokenizer = tokenizer
        self.label_map = label_map
        self.budget = max_seq_length - 2
        self.overlap = self.budget // 2 if overlap is None else overlap
        self.segmenter = segmenter
        self.default_type = default_type
        self.entity_ids = np.asarray(label_map.entity_ids)

    def sentences(self, text):
        """[(start, end)] of the sentences of ``text`` (the Punkt segmenter's spans)."""
        return self.segmenter.spans(text) if text.strip() else []

    def features(self, documents):
        """Model inputs of every window of every sentence, and the plan to put the outputs back.

        Returns (features: list of {"input_ids", "segment_ids"}, plan: per document a list of sentences,
        each (words, [(feature index, first word, end word, owned first, owned end)]))."""
        features, plan = [], []
        cls_id, sep_id = self.tokenizer.convert_tokens_to_ids([CLS, SEP])
        for doc in documents:
            sentences = []
            for s_start, s_end in self.sentences(doc.text):
                words = words_with_offsets(doc.text[s_start:s_end], self.tokenizer)
                for w in words:
                    w.start += s_start
                    w.end += s_start
                    w.piece_spans = [(a + s_start, b + s_start) for a, b in w.piece_spans]
                if not words:
                    continue
                spans = windows([len(w.pieces) for w in words], self.budget, self.overlap)
                parts = []
                for (a, b), (lo, hi) in zip(spans, owners(spans)):
                    pieces = [p for w in words[a:b] for p in w.pieces][: self.budget]
                    ids = [cls_id] + self.tokenizer.convert_tokens_to_ids(pieces) + [sep_id]
                    features.append({"input_ids": np.asarray(ids, np.int32),
                                     "segment_ids": np.zeros(len(ids), np.int32)})
                    parts.append((len(features) - 1, a, b, lo, hi))
                sentences.append((words, parts))
            plan.append(sentences)
        return features, plan

    def word_predictions(self, words, parts, probs):
        """(labels, scores) of a sentence's words: at each word's first piece in the window that owns it, the
        best word-level label (never X, [CLS], [SEP] or padding) and its probability."""
        labels, scores = [None] * len(words), [0.0] * len(words)
        for index, a, b, lo, hi in parts:
            p = probs[index]
            position = 1
            for k in range(a, b):
                if position > self.budget:
                    break                                  # a word cut off by a one-word window's truncation
                if lo <= k < hi:
                    row = p[position]
                    best = self.entity_ids[int(np.argmax(row[self.entity_ids]))]
                    labels[k], scores[k] = self.label_map.label(best), float(row[best])
                position += len(words[k].pieces)
        for k, label in enumerate(labels):
            if label is None:
                labels[k] = "O"
        return labels, scores

    def decode(self, documents, plan, probs):
        """Records ``{"id", "text", "entities"}`` in input order from the probabilities of every feature."""
        records = []
        for doc, sentences in zip(documents, plan):
            entities = []
            for words, parts in sentences:
                labels, scores = self.word_predictions(words, parts, probs)
                entities += decode_entities(doc.text, words, labels, scores, self.default_type)
            records.append({"id": doc.id, "text": doc.text, "entities": entities})
        return records
