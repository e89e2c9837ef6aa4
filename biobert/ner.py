"""NER task data: CoNLL-style readers, the label map, BERT features, decoding and output files.

Flow (run_ner.py):

    sentences = read_ner_file("test.tsv")                    # 30-word pieces; bad columns -> file:line
    check_tag_scheme(train + devel)                           # a stray tag ('49', 'b') -> file:line
    label_map = LabelMap.from_sentences([train, devel])       # [PAD], B, I, O, X, [CLS], [SEP]
                                                              # (or LabelMap(parse_label_set("B,I,O,b")))
    check_labels(sentences, label_map)                        # unknown tag -> InputError file:line
    features = convert_sentences(sentences, tokenizer, label_map, 128)
    batch = pad_features(features, 128)                       # model inputs [N, 128]
    ... the model gives probs [N, 128, num_labels] ...
    probs_list = [p[:len(f["input_ids"])] for p, f in zip(probs, features)]
    counts, text = write_prediction_files(out_dir, sentences, features, probs_list, label_map)

Input format: one token per line; the word is the first field and the label the last (BLUE's
4-column ``token<TAB>PMID<TAB>offset<TAB>label``, or 2-column ``word label``), every token line of
a file with the columns of its first; a blank line ends a sentence; ``-DOCSTART-`` lines end a
sentence and are skipped.
"""
import collections
import dataclasses
import json
import os
import re

import numpy as np

from biobert import conlleval
from biobert.errors import InputError, require_file
from biobert.fileio import atomic_open

PAD, X, CLS, SEP = "[PAD]", "X", "[CLS]", "[SEP]"
SPECIAL_LABELS = (PAD, X, CLS, SEP)
OUTSIDE = "O"
DOCSTART = "-DOCSTART-"

FEATURE_KEYS = ("input_ids", "segment_ids", "label_ids", "first_subword")


@dataclasses.dataclass
class Sentence:
    """One sentence (or a piece of one): its words and labels, and where it came from.

    ``line`` is the 1-based line of its first token in ``path``; token k is on line ``line + k``.
    ``piece`` is 0 for a whole sentence or the first piece of a split one, 1, 2, ... for the
    pieces that continue it (split_sentence).
    """

    words: list
    labels: list
    path: str = ""
    line: int = 0
    piece: int = 0

    def __len__(self):
        return len(self.words)

    def where(self, index=0):
        """``path:line`` of word ``index``."""
        return f"{self.path}:{self.line + index}"


# ----------------------------------------------------------------------------- reading

def split_sentence(sentence, max_words=30):
    """Split a Sentence into pieces of at most ``max_words`` words; returns a list of Sentences.

    While more than ``max_words`` words remain, cut after the last ``O`` among the first
    ``max_words`` words, or after ``max_words`` words when there is no ``O`` there (the
    original cut after the first word in that case). ``max_words`` None or 0: no split.
    """
    if not max_words or len(sentence) <= max_words:
        return [sentence]
    pieces = []
    start = 0
    words, labels = sentence.words, sentence.labels
    while len(words) - start > max_words:
        window = labels[start:start + max_words]
        outside = [i for i, label in enumerate(window) if label == OUTSIDE]
        cut = outside[-1] + 1 if outside else max_words
        pieces.append(Sentence(words[start:start + cut], labels[start:start + cut],
                               sentence.path, sentence.line + start, sentence.piece + len(pieces)))
        start += cut
    pieces.append(Sentence(words[start:], labels[start:], sentence.path, sentence.line + start,
                           sentence.piece + len(pieces)))
    return pieces


def read_ner_file(path, max_words=30):
    """Read a CoNLL-style NER file into a list of Sentences, split to ``max_words`` words.

    The file's first token line fixes its layout: tab-separated when that line holds a tab (columns are
    split at tabs, so a word may hold a space), else separated by runs of spaces or tabs; its number of
    columns (at least two: the word first, the tag last) must then be every token line's. Line ends
    (LF, CRLF, CR), a UTF-8 byte-order mark and spaces or tabs at either end of a line are ignored; a line
    of nothing else ends a sentence, as does a ``-DOCSTART-`` line (skipped, whatever its columns).
    Raises InputError naming the file and line for a missing or non-UTF-8 file, a line with another
    number of columns or an empty word or tag, or a file without any sentence. The tags are not judged
    here: see check_tag_scheme and check_labels.
    """
    path = require_file(path, "NER data file")
    sentences = []
    words, labels, first_line = [], [], 0
    layout = None           # (columns, tab-separated, line) of the first token line
    lines = docstarts = 0

    def flush():
        nonlocal words, labels
        if words:
            sentences.extend(split_sentence(Sentence(words, labels, path, first_line), max_words))
        words, labels = [], []

    try:
        with open(path, encoding="utf-8-sig") as handle:
            for lineno, line in enumerate(handle, start=1):
                lines = lineno
                line = line.strip(LINE_SPACE)
                if not line:
                    flush()
                    continue
                if line.startswith(DOCSTART) and line[len(DOCSTART):len(DOCSTART) + 1] in ("", " ", "\t"):
                    docstarts += 1
                    flush()
                    continue
                tabbed = layout[1] if layout else "\t" in line
                fields = _columns(line, tabbed)
                if layout is None:
                    if len(fields) < 2:
                        raise InputError(
                            f"expected a word and a label separated by whitespace, found one field "
                            f"{fields[0]!r} (unlabelled text is predicted with --predict_file)",
                            path=path, line=lineno)
                    layout = (len(fields), tabbed, lineno)
                elif len(fields) != layout[0]:
                    raise InputError(_column_message(line, fields, layout), path=path, line=lineno)
                if not fields[-1]:
                    raise InputError(f"empty tag (last column): {_shown(line)}", path=path, line=lineno)
                if not fields[0]:
                    raise InputError(f"empty word (first column): {_shown(line)}", path=path, line=lineno)
                if not words:
                    first_line = lineno
                words.append(fields[0])
                labels.append(fields[-1])
            flush()
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    if not sentences:
        what = ("the file is empty" if not lines else f"{lines} blank or -DOCSTART- lines" if docstarts
                else f"{lines} blank lines")
        raise InputError(f"no sentences found ({what})", path=path)
    return sentences


def _not_utf8(path):
    """InputError naming the line of the first byte that is not UTF-8."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        utf16 = " (UTF-16?)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        return InputError(f"not UTF-8 text{utf16} ({err.reason}: byte {data[err.start:err.start + 1]!r}; save "
                          "the file as UTF-8)", path=path, line=line)
    return InputError("not UTF-8 text", path=path)


LINE_SPACE = " \t\r\n\f\v"     # what surrounds a line's columns; other (Unicode) spaces belong to the word


def _columns(line, tabbed):
    """The columns of a stripped, non-empty line: split at (runs of) tabs, each column stripped of spaces, or
    at runs of spaces and tabs."""
    if tabbed:
        fields = line.split("\t") if "\t\t" not in line else re.split(r"\t+", line)
        return [f.strip(" ") for f in fields] if " " in line else fields
    return line.split(" ") if "\t" not in line and "  " not in line else re.split(r"[ \t]+", line)


def _shown(line, width=80):
    return repr(line if len(line) <= width else line[:width] + "...")


def _column_message(line, fields, layout):
    columns, tabbed, first = layout
    kind = "tab-separated" if tabbed else "whitespace-separated"
    message = (f"expected {columns} {kind} columns (as on line {first}, the file's first token line), "
               f"found {len(fields)}: {_shown(line)}")
    if tabbed and "\t" not in line and " " in line:
        message += " (spaces where the file has tabs?)"
    elif len(fields) < columns:
        message += " (a column missing?)"
    return message


# ----------------------------------------------------------------------------- labels

class LabelMap:
    """Label <-> id. Id 0 is padding (``[PAD]``); the word-level (entity) labels, sorted, get
    ids 1..n; then ``X`` (non-first sub-words), ``[CLS]`` and ``[SEP]``.

    For BLUE's B/I/O this is ``[PAD] B I O X [CLS] [SEP]`` = ids 0..6, the original's ids.
    """

    def __init__(self, entity_labels, source="built from the training data"):
        self.source = source        # where the set came from, for messages (not part of equality)
        entity_labels = sorted(set(entity_labels))
        reserved = [label for label in entity_labels if label in SPECIAL_LABELS]
        if reserved:
            raise ValueError(f"labels {reserved} are reserved for the model's own use")
        if not entity_labels:
            raise ValueError("no entity labels")
        self._labels = [PAD] + entity_labels + [X, CLS, SEP]
        self._ids = {label: i for i, label in enumerate(self._labels)}
        self._num_entity = len(entity_labels)

    @classmethod
    def from_sentences(cls, sentence_lists):
        """Label map of every label seen in ``sentence_lists`` (a list of lists of Sentences).

        InputError with file:line if the data uses a reserved name (``X``, ``[CLS]``, ...).
        """
        seen = set()
        for sentences in sentence_lists:
            for sentence in sentences:
                for k, label in enumerate(sentence.labels):
                    if label in SPECIAL_LABELS:
                        raise InputError(f"label {label!r} is reserved for the model's own use",
                                         path=sentence.path, line=sentence.line + k)
                    seen.add(label)
        if not seen:
            raise InputError("no labelled words to build the label set from")
        return cls(seen)

    @property
    def labels(self):
        """All labels, index = id (index 0 = ``[PAD]``)."""
        return list(self._labels)

    @property
    def entity_labels(self):
        """The word-level labels, in id order."""
        return self._labels[1:1 + self._num_entity]

    @property
    def entity_ids(self):
        """Ids of the word-level labels (1..n)."""
        return list(range(1, 1 + self._num_entity))

    @property
    def num_labels(self):
        """Number of model outputs, padding included."""
        return len(self._labels)

    def __contains__(self, label):
        return label in self._ids

    def __eq__(self, other):
        return isinstance(other, LabelMap) and self._labels == other._labels

    def __repr__(self):
        return f"LabelMap({self._labels!r})"

    def is_entity(self, label):
        """True for a word-level label (not padding, ``X``, ``[CLS]``, ``[SEP]``)."""
        return label in self._ids and 1 <= self._ids[label] <= self._num_entity

    def id(self, label):
        """Id of ``label``; KeyError if unknown."""
        try:
            return self._ids[label]
        except KeyError:
            raise KeyError(f"label {label!r} not in the label set {self._labels}") from None

    def label(self, id_):
        """Label of id ``id_``."""
        return self._labels[int(id_)]

    def to_json(self, path):
        """Write ``{"labels": [...]}`` (index = id) to ``path`` atomically."""
        with atomic_open(path, "w") as handle:
            json.dump({"labels": self._labels}, handle, indent=1)
            handle.write("\n")

    @classmethod
    def from_json(cls, path):
        """Read a file written by to_json; InputError if missing or not a label map."""
        path = require_file(path, "label map")
        try:
            with open(path, encoding="utf-8") as handle:
                labels = json.load(handle)["labels"]
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"not a label map file ({err})", path=path) from None
        n = len(labels) - 4 if isinstance(labels, list) else -1
        if (n < 1 or labels[0] != PAD or labels[-3:] != [X, CLS, SEP]
                or labels[1:1 + n] != sorted(set(labels[1:1 + n]))
                or any(label in SPECIAL_LABELS for label in labels[1:1 + n])):
            raise InputError("not a label map: expected [PAD], sorted labels, X, [CLS], [SEP]",
                             path=path)
        return cls(labels[1:1 + n], source=f"of the trained model, {path}")


def check_labels(sentences, label_map):
    """Raise InputError naming file:line at the first word whose label is not a word-level
    label of ``label_map`` (e.g. a test-file tag never seen in training); the message names where the
    label set came from (LabelMap.source) and lists the tags of that file with their counts."""
    for sentence in sentences:
        for k, label in enumerate(sentence.labels):
            if not label_map.is_entity(label):
                hint = {"of": "", "declared": "; add it to --labels if it is meant"}.get(
                    label_map.source.split()[0], "; declare the label set with --labels to include it")
                raise InputError(
                    f"label {label!r} is not in the label set {', '.join(label_map.entity_labels)} "
                    f"({label_map.source}){hint}; {tags_seen(sentences, sentence.path)}",
                    path=sentence.path, line=sentence.line + k)


# The tagging scheme a corpus is checked against when no label set is declared: O, and B / I, each either
# bare (BLUE's BC5CDR files) or typed (B-Chemical, I-Disease), the same way throughout the training data.
TAG_PATTERN = re.compile(r"(?:([BI])-(.+)|[BIO])\Z", re.S)


def tag_counts(sentences, path=None):
    """collections.Counter of the tags of ``sentences`` (those read from ``path`` only, when given)."""
    counts = collections.Counter()
    for sentence in sentences:
        if path is None or sentence.path == path:
            counts.update(sentence.labels)
    return counts


def tags_seen(sentences, path, most=12):
    """``tags in <file>: O 20, B 3, ...`` (most frequent first), for messages."""
    counts = tag_counts(sentences, path).most_common()
    shown = ", ".join(f"{tag} {n}" for tag, n in counts[:most])
    more = f" and {len(counts) - most} more" if len(counts) > most else ""
    return f"tags in {os.path.basename(path)}: {shown}{more}"


def _why_outside(tag):
    if tag == "0":
        return " (the digit 0: the letter O meant?)"
    if tag.lstrip("+-").replace(".", "", 1).isdigit():
        return " (a number: a column missing on this line?)"
    if tag in ("B-", "I-"):
        return " (B-/I- without a type)"
    if TAG_PATTERN.match(tag[:1].upper() + tag[1:]):
        return " (lower case)"
    return ""


def check_tag_scheme(sentences):
    """Raise InputError (file:line, the tags of that file, how to declare them) unless every tag of the
    training ``sentences`` is O, B or I, or typed B-<type> / I-<type>, and the corpus uses one form:

    - a tag outside the scheme (a number, a lower-case ``b``, a type-less ``B-``, anything else) stops at
      its first occurrence;
    - bare and typed B/I tags mixed (a ``B`` in a B-Chemical corpus), or one type spelled in two cases
      (``B-chemical`` beside ``B-Chemical``): the rarer form stops at its first occurrence.

    A corpus that means such tags declares its label set instead (check_labels against it).
    """
    first = {}                              # tag -> (sentence, index) of its first occurrence
    for sentence in sentences:
        for k, tag in enumerate(sentence.labels):
            if tag in first:
                continue
            first[tag] = (sentence, k)
            if not TAG_PATTERN.match(tag):
                raise _tag_error(f"tag {tag!r} is not O, B, I, B-<type> or I-<type>{_why_outside(tag)}",
                                 sentences, sentence, k)
    counts = tag_counts(sentences)
    forms = collections.defaultdict(collections.Counter)    # bare/typed, then each type by its case-folded name
    for tag, n in counts.items():
        match = TAG_PATTERN.match(tag)
        if tag != OUTSIDE:
            forms["B/I form"]["typed" if match.group(1) else "bare"] += n
        if match.group(2):
            forms[f"type {match.group(2).casefold()}"][match.group(2)] += n
    for name, variants in forms.items():
        if len(variants) < 2:
            continue
        (common, _), (rare, _) = variants.most_common(2)
        if name == "B/I form":
            tags = [t for t in first if t != OUTSIDE and bool(TAG_PATTERN.match(t).group(1)) == (rare == "typed")]
            what = ("is typed but the other B/I tags are bare" if rare == "typed"
                    else "has no type but the other B/I tags are typed")
        else:
            tags = [t for t in first if TAG_PATTERN.match(t).group(2) == rare]
            what = f"spells the type {rare!r}, elsewhere {common!r}"
        tag = tags[0]                       # ``first`` is in reading order
        raise _tag_error(f"tag {tag!r} {what}", sentences, *first[tag])


def _tag_error(message, sentences, sentence, k):
    labels = sorted(tag_counts(sentences))
    example = ",".join(labels)
    declare = f"--labels={example}" if len(example) <= 100 else "--labels=FILE (one tag a line)"
    return InputError(f"{message}; {tags_seen(sentences, sentence.path)}. If these tags are meant, declare "
                      f"the label set ({declare})", path=sentence.path, line=sentence.line + k)


def parse_label_set(value):
    """The declared NER label set of ``value``: a comma-separated list of tags, or the path of a file with
    one tag a line (blank lines ignored) or of a label_map.json. Returns the sorted tags; InputError for an
    empty set, a tag with whitespace, a reserved name (X, [CLS], ...) or a file that is missing or unreadable.
    """
    value = value.strip()
    path = None
    if os.path.isfile(value):
        path = value
        try:
            with open(path, encoding="utf-8-sig") as handle:
                text = handle.read()
        except UnicodeDecodeError as err:
            raise InputError(f"not UTF-8 text ({err.reason})", path=path) from None
        if text.lstrip().startswith("{"):
            return LabelMap.from_json(path).entity_labels
        items = [(number, line.strip(LINE_SPACE)) for number, line in enumerate(text.split("\n"), start=1)]
        items = [(number, tag) for number, tag in items if tag]
    elif "," not in value and (os.sep in value or value.endswith((".txt", ".json", ".tsv"))):
        raise InputError("labels file not found (--labels)", path=value)
    else:
        items = [(None, tag.strip()) for tag in value.split(",")]
    tags = []
    for number, tag in items:
        where = {"path": path, "line": number} if path else {}
        if not tag:
            raise InputError(f"--labels={value!r} has an empty tag", **where)
        if any(c in LINE_SPACE for c in tag):
            raise InputError(f"tag {tag!r} holds whitespace", **where)
        if tag in SPECIAL_LABELS:
            raise InputError(f"tag {tag!r} is reserved for the model's own use", **where)
        tags.append(tag)
    if not tags:
        raise InputError("no tags in the labels file", path=path)
    return sorted(set(tags))


# ----------------------------------------------------------------------------- features

def convert_sentence(sentence, tokenizer, label_map, max_seq_length):
    """BERT features of one Sentence: a dict of 1-D int32 arrays of one unpadded length L.

    ``input_ids``: [CLS] sub-words [SEP], the sub-words truncated to max_seq_length - 2;
    ``segment_ids``: zeros; ``label_ids``: the word's label at its first sub-word, X at its
    other sub-words, [CLS] / [SEP] at the ends; ``first_subword``: 1 at each word's first
    sub-word. ``num_words_kept`` (int): words whose first sub-word survived truncation (a word
    cut inside keeps its first sub-word and counts). A word that tokenizes to nothing (e.g. a
    lone control character) becomes [UNK]. InputError (file:line) for a label not in the map.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be at least 3, got {max_seq_length}")
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
