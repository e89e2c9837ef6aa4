"""CoNLL chunk evaluation: a Python port of the ``conlleval`` perl script's semantics.

Input: lines ``word ... gold pred`` (the last two whitespace-separated fields are the gold and
the predicted tag). A blank line, a line whose first field is ``-X-`` (conlleval's boundary)
or ``-DOCSTART-`` ends a sentence; sentence boundaries are never tokens and always lie
outside every chunk.

A tag is ``<chunk tag>-<type>`` split at its first hyphen (``B-Chemical`` -> ``B``,
``Chemical``); a tag without a hyphen (``B``, ``I``, ``O``) has the empty type. Chunk tags
``B I E S O . [ ]`` follow conlleval's startOfChunk/endOfChunk rules, in the IOBES-aware form
of the Python conlleval that NVIDIA's BioBERT shipped (an ``S`` is a one-word chunk, a ``B``
always starts a chunk). For B/I/O data both forms agree with the 2004 perl script.

A phrase counts as correct when gold and prediction start it at the same word, end it at the
same word and give it the same type.

    counts = evaluate(open("test_labels.txt"))
    print(report(counts), end="")       # conlleval's text
    metrics(counts)["f1"]               # percent

Command line: ``python -m biobert.conlleval [file] < file`` prints the report.
"""
import argparse
import collections
import dataclasses
import re
import sys

from biobert.errors import InputError

BOUNDARY = "-X-"
DOCSTART = "-DOCSTART-"

_TAG_RE = re.compile(r"^([^-]*)-(.*)$")


@dataclasses.dataclass
class Counts:
    """What conlleval counts over a corpus.

    tokens: words evaluated (boundaries excluded); gold_phrases / found_phrases: chunks in the
    gold / predicted tags; correct_phrases: chunks identical in both (same span and type);
    correct_tags: words whose full tag (chunk tag and type) is predicted exactly.
    The ``*_by_type`` dicts hold the same phrase counts per chunk type.
    """

    tokens: int = 0
    gold_phrases: int = 0
    found_phrases: int = 0
    correct_phrases: int = 0
    correct_tags: int = 0
    gold_by_type: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(int))
    found_by_type: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(int))
    correct_by_type: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(int))

    @property
    def types(self):
        """Sorted chunk types seen in gold or predictions."""
        return sorted(set(self.gold_by_type) | set(self.found_by_type))


def split_tag(tag):
    """``'B-Chemical'`` -> ``('B', 'Chemical')``; ``'O'`` -> ``('O', '')`` (split at the first hyphen)."""
    match = _TAG_RE.match(tag)
    return (match.group(1), match.group(2)) if match else (tag, "")


def end_of_chunk(prev_tag, tag, prev_type, type_):
    """True when a chunk ended between the previous word and the current one."""
    end = False
    if prev_tag in ("E", "S"):
        end = True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        end = True
    if prev_tag not in ("O", ".") and prev_type != type_:
        end = True
    if prev_tag in ("[", "]"):  # conlleval: these chunks have length 1
        end = True
    return end


def start_of_chunk(prev_tag, tag, prev_type, type_):
    """True when a chunk started at the current word."""
    start = False
    if tag in ("B", "S"):
        start = True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        start = True
    if tag not in ("O", ".") and prev_type != type_:
        start = True
    if tag in ("[", "]"):
        start = True
    return start


def evaluate(lines, path=None, delimiter=None, boundary=BOUNDARY):
    """Count chunks over ``lines`` (an iterable of strings, e.g. an open file).

    ``delimiter`` None splits on any whitespace. Every non-blank line must have the same
    number of fields (at least 2; conlleval's rule); otherwise InputError names ``path``
    (if given) and the 1-based line. Returns Counts.
    """
    counts = Counts()
    num_fields = None
    in_correct = False
    last_gold, last_gold_type = "O", ""
    last_pred, last_pred_type = "O", ""

    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        fields = line.split() if delimiter is None else line.split(delimiter)
        if delimiter is not None:
            while fields and fields[-1] == "":  # perl's split drops trailing empty fields
                fields.pop()
        if fields:
            if num_fields is None:
                num_fields = len(fields)
            elif len(fields) != num_fields:
                raise InputError(
                    f"unexpected number of fields: {len(fields)} (the first line had {num_fields})",
                    path=path, line=lineno)
        is_boundary = not fields or fields[0] in (boundary, DOCSTART)
        if is_boundary:
            gold, gold_type, pred, pred_type = "O", "", "O", ""
        else:
            if len(fields) < 2:
                raise InputError("expected `word ... gold predicted`, found one field",
                                 path=path, line=lineno)
            gold, gold_type = split_tag(fields[-2])
            pred, pred_type = split_tag(fields[-1])

        end_gold = end_of_chunk(last_gold, gold, last_gold_type, gold_type)
        end_pred = end_of_chunk(last_pred, pred, last_pred_type, pred_type)
        start_gold = start_of_chunk(last_gold, gold, last_gold_type, gold_type)
        start_pred = start_of_chunk(last_pred, pred, last_pred_type, pred_type)

        if in_correct:
            if end_gold and end_pred and last_pred_type == last_gold_type:
                in_correct = False
                counts.correct_phrases += 1
                counts.correct_by_type[last_gold_type] += 1
            elif end_gold != end_pred or pred_type != gold_type:
                in_correct = False

        if start_gold and start_pred and pred_type == gold_type:
            in_correct = True
        if start_gold:
            counts.gold_phrases += 1
            counts.gold_by_type[gold_type] += 1
        if start_pred:
            counts.found_phrases += 1
            counts.found_by_type[pred_type] += 1
        if not is_boundary:
            if gold == pred and gold_type == pred_type:
                counts.correct_tags += 1
            counts.tokens += 1

        last_gold, last_gold_type = gold, gold_type
        last_pred, last_pred_type = pred, pred_type

    if in_correct:
        counts.correct_phrases += 1
        counts.correct_by_type[last_gold_type] += 1
    return counts


def _prf(correct, found, gold):
    """Precision, recall, F1 in percent; 0 where undefined (as conlleval)."""
    precision = 100.0 * correct / found if found > 0 else 0.0
    recall = 100.0 * correct / gold if gold > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def metrics(counts):
    """Scores from Counts, in percent.

    Returns ``{"precision", "recall", "f1", "accuracy", "by_type": {type: {"precision",
    "recall", "f1", "found"}}}``; accuracy is 0.0 when there are no tokens.
    """
    precision, recall, f1 = _prf(counts.correct_phrases, counts.found_phrases, counts.gold_phrases)
    accuracy = 100.0 * counts.correct_tags / counts.tokens if counts.tokens else 0.0
    by_type = {}
    for type_ in counts.types:
        p, r, f = _prf(counts.correct_by_type.get(type_, 0), counts.found_by_type.get(type_, 0),
                       counts.gold_by_type.get(type_, 0))
        by_type[type_] = {"precision": p, "recall": r, "f1": f,
                          "found": counts.found_by_type.get(type_, 0)}
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy,
            "by_type": by_type}


def report(counts):
    """conlleval's text report (newline-terminated lines), e.g.::

        processed 124669 tokens with 5386 phrases; found: 5484 phrases; correct: 5102.
        accuracy:  99.01%; precision:  93.03%; recall:  94.73%; FB1:  93.87
                         : precision:  93.03%; recall:  94.73%; FB1:  93.87  5484

    The accuracy line is omitted when there are no tokens; one line per chunk type follows
    (the empty type of untyped B/I/O tags prints as 17 spaces).
    """
    m = metrics(counts)
    out = [f"processed {counts.tokens} tokens with {counts.gold_phrases} phrases; "
           f"found: {counts.found_phrases} phrases; correct: {counts.correct_phrases}.\n"]
    if counts.tokens > 0:
        out.append("accuracy: %6.2f%%; precision: %6.2f%%; recall: %6.2f%%; FB1: %6.2f\n"
                   % (m["accuracy"], m["precision"], m["recall"], m["f1"]))
    for type_, t in m["by_type"].items():
        out.append("%17s: precision: %6.2f%%; recall: %6.2f%%; FB1: %6.2f  %d\n"
                   % (type_, t["precision"], t["recall"], t["f1"], t["found"]))
    return "".join(out)


def evaluate_file(path, **kwargs):
    """evaluate() over a UTF-8 file; InputError if it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return evaluate(handle, path=path, **kwargs)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason})", path=path) from None


def main(argv=None):
    """``python -m biobert.conlleval [-d CHAR] [-b STR] [file]``: print the report; exit 1 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m biobert.conlleval",
        description="Evaluate chunking/NER output with the CoNLL criteria (conlleval). Input lines "
                    "are `word ... gold predicted`, a blank line between sentences; reads the "
                    "file, or standard input when no file is given.")
    parser.add_argument("file", nargs="?", help="input file (default: standard input)")
    parser.add_argument("-d", "--delimiter", default=None,
                        help="field delimiter (default: any whitespace)")
    parser.add_argument("-b", "--boundary", default=BOUNDARY,
                        help="first field of a sentence-boundary line (default: %(default)s; "
                             "blank and -DOCSTART- lines are boundaries too)")
    args = parser.parse_args(argv)
    try:
        if args.file:
            counts = evaluate_file(args.file, delimiter=args.delimiter, boundary=args.boundary)
        else:
            counts = evaluate(sys.stdin, path="<stdin>", delimiter=args.delimiter,
                              boundary=args.boundary)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(report(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
