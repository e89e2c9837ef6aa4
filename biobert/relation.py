"""ChemProt relation extraction data: the tsv reader, BERT features and the prediction file.

Input rows (data/ChemProtTextFormatting.py output): ``index<TAB>sentence<TAB>label`` after a header
line, the sentence carrying the ``@CHEMICAL$`` and ``@GENE$`` masks, the label one of LABELS.
"""
import collections

import numpy as np

from biobert.errors import InputError, require_file
from biobert.fileio import atomic_open

LABELS = ["CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "false"]
LABEL_IDS = {label: index for index, label in enumerate(LABELS)}
NEGATIVE_LABEL = "false"

Example = collections.namedtuple("Example", "guid text label line")
Example.__doc__ = "One pair: guid (PMID.T#.T#), masked sentence, label (str), 1-based file line."


def read_re_tsv(path, with_header=True):
    """Read a formatted ChemProt tsv into a list of Example.

    Each data line must have exactly three tab-separated fields and a label from LABELS.
    Raises InputError naming file and line for a bad row or an unknown label, and for a file
    without data rows.
    """
    path = require_file(path, "relation tsv")
    examples = []
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err})", path=path) from None
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if with_header and number == 1:
            if len(line.split("\t")) != 3:
                raise InputError("header must have three tab-separated columns "
                                 "(index, sentence, label)", path=path, line=number)
            continue
        if not line.strip():
            raise InputError("empty line", path=path, line=number)
        fields = line.split("\t")
        if len(fields) != 3:
            raise InputError(f"expected 3 tab-separated columns (index, sentence, label), "
                             f"found {len(fields)}", path=path, line=number)
        guid, text, label = fields
        if label not in LABEL_IDS:
            raise InputError(f"unknown label {label!r} (expected one of {', '.join(LABELS)})",
                             path=path, line=number)
        if not text.strip():
            raise InputError("empty sentence", path=path, line=number)
        examples.append(Example(guid, text, label, number))
    if not examples:
        raise InputError("no examples (empty file)", path=path)
    return examples


CHEMICAL_MASK, GENE_MASK = "@CHEMICAL$", "@GENE$"


def _span(value, text, name, path, line):
    """A [start, end] (or {"start", "end"}) character span of ``text``, checked; InputError naming the line."""
    if isinstance(value, dict):
        value = [value.get("start"), value.get("end")]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise InputError(f'"{name}" must be a [start, end] pair of character offsets, got {value!r}',
                         path=path, line=line)
    start, end = value
    if not 0 <= start < end <= len(text):
        raise InputError(f'"{name}" span [{start}, {end}] is not inside the text ({len(text)} characters)',
                         path=path, line=line)
    return start, end


def masked_pair(text, fields, path=None, line=None):
    """The BLUE input of one pair: ``text`` with the chemical's and the gene's spans (``fields["chemical"]``,
    ``fields["gene"]``: [start, end] character offsets) replaced by @CHEMICAL$ and @GENE$, or ``text`` itself
    when it already carries both masks. None for an empty text; InputError naming the line otherwise."""
    if not text.strip():
        return None
    if "chemical" in fields or "gene" in fields:
        if "chemical" not in fields or "gene" not in fields:
            raise InputError('give both "chemical" and "gene" spans', path=path, line=line)
        chem = _span(fields["chemical"], text, "chemical", path, line)
        gene = _span(fields["gene"], text, "gene", path, line)
        if chem[0] < gene[1] and gene[0] < chem[1]:
            raise InputError(f"the chemical span {list(chem)} and the gene span {list(gene)} overlap",
                             path=path, line=line)
        out = text
        for (start, end), mask in sorted(((chem, CHEMICAL_MASK), (gene, GENE_MASK)), reverse=True):
            out = out[:start] + mask + out[end:]
        return out
    if CHEMICAL_MASK in text and GENE_MASK in text:
        return text
    raise InputError(f'expected "chemical" and "gene" spans, or a text with {CHEMICAL_MASK} and {GENE_MASK}',
                     path=path, line=line)


def convert_example(example, tokenizer, max_seq_length):
    """BERT features of one Example.

    Returns {"input_ids": int32[L], "segment_ids": int32[L], "label": int} with
    L = min(len(tokens) + 2, max_seq_length): ``[CLS] tokens [SEP]``, tokens truncated from the
    end so the sequence fits (``max_seq_length`` at least 3: flags.check). Not padded. ``tokenizer``
    needs tokenize() and convert_tokens_to_ids() (biobert.tokenization.FullTokenizer).
    """
    tokens = tokenizer.tokenize(example.text)[: max_seq_length - 2]
    ids = tokenizer.convert_tokens_to_ids(["[CLS]"] + tokens + ["[SEP]"])
    return {
        "input_ids": np.asarray(ids, dtype=np.int32),
        "segment_ids": np.zeros(len(ids), dtype=np.int32),
        "label": LABEL_IDS[example.label],
    }


def convert_examples(examples, tokenizer, max_seq_length):
    """convert_example() over a list; returns a list of feature dicts in the same order."""
    return [convert_example(example, tokenizer, max_seq_length) for example in examples]


def write_test_results(path, probs):
    """Write class probabilities, one line per row, tab-separated in LABELS order, no header.

    ``probs``: array-like of shape [num_rows, len(LABELS)]. Written atomically.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(LABELS):
        raise ValueError(f"probabilities must have shape [rows, {len(LABELS)}], got {probs.shape}")
    with atomic_open(path, "w") as handle:
        for row in probs:
            handle.write("\t".join(f"{p:.9g}" for p in row) + "\n")
