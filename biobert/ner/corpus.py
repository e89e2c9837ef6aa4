"""Reading and checking a CoNLL-style NER corpus file: its sentences (split to ``max_words``), each with the
file and line it came from, and the check of its tags against the B/I/O scheme.

Input format: one token per line; the word is the first field and the label the last (BLUE's
4-column ``token<TAB>PMID<TAB>offset<TAB>label``, or 2-column ``word label``), every token line of
a file with the columns of its first; a blank line ends a sentence; ``-DOCSTART-`` lines end a
sentence and are skipped.
"""
import collections
import dataclasses
import os
import re

from biobert.errors import InputError, require_file

OUTSIDE = "O"
DOCSTART = "-DOCSTART-"


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


# ----------------------------------------------------------------------------- the tag scheme

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
