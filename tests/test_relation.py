"""biobert/relation.py: the ChemProt tsv reader, BERT features and the prediction file."""
import numpy as np
import pytest

from biobert.errors import InputError
from biobert.relation import (LABELS, Example, convert_example, convert_examples, read_re_tsv,
                              write_test_results)
from biobert.tokenization import FullTokenizer

HEADER = "index\tsentence\tlabel\n"


def _write(tmp_path, text, name="rows.tsv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_labels_order():
    assert LABELS == ["CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "false"]


def test_read_re_tsv(tmp_path):
    path = _write(tmp_path, HEADER + "1.T1.T2\t@CHEMICAL$ inhibits @GENE$.\tCPR:4\n"
                                     "1.T3.T2\t@GENE$ and @CHEMICAL$.\tfalse\n")
    assert read_re_tsv(path) == [
        Example("1.T1.T2", "@CHEMICAL$ inhibits @GENE$.", "CPR:4", 2),
        Example("1.T3.T2", "@GENE$ and @CHEMICAL$.", "false", 3)]
    no_header = _write(tmp_path, "a\tb c\tCPR:9\n", "nh.tsv")
    assert read_re_tsv(no_header, with_header=False) == [Example("a", "b c", "CPR:9", 1)]


@pytest.mark.parametrize("body, line, message", [
    ("1.T1.T2\tx\tCPR:4\n1.T1.T3\tCPR:4\n", 3, "expected 3 tab-separated columns"),
    ("1.T1.T2\tx\tCPR:4\n1.T1.T3\ty\tCPR:2\n", 3, "unknown label 'CPR:2'"),
    ("1.T1.T2\tx\tCPR:4\n\n1.T1.T3\ty\tfalse\n", 3, "empty line"),
    ("1.T1.T2\t \tCPR:4\n", 2, "empty sentence"),
])
def test_read_re_tsv_bad_rows_name_file_and_line(tmp_path, body, line, message):
    path = _write(tmp_path, HEADER + body)
    with pytest.raises(InputError, match=message) as err:
        read_re_tsv(path)
    assert (err.value.path, err.value.line) == (str(path), line)
    assert str(err.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("text", ["", HEADER])
def test_read_re_tsv_empty(tmp_path, text):
    with pytest.raises(InputError, match="no examples"):
        read_re_tsv(_write(tmp_path, text))


def test_read_re_tsv_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_re_tsv(tmp_path / "nope.tsv")


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
    return FullTokenizer(str(uncased_vocab), do_lower_case=True)


@pytest.fixture(scope="module")
def vocab(uncased_vocab):
    return {line.rstrip("\n"): i for i, line in
            enumerate(uncased_vocab.read_text(encoding="utf-8").splitlines(True))}


def test_convert_example(tokenizer, vocab):
    example = Example("1.T1.T2", "@CHEMICAL$ blocks @GENE$.", "CPR:6", 2)
    feats = convert_example(example, tokenizer, 128)
    words = ["[CLS]", "@", "chemical", "$", "blocks", "@", "gene", "$", ".", "[SEP]"]
    assert feats["input_ids"].dtype == np.int32 and feats["input_ids"].ndim == 1
    assert feats["input_ids"].tolist() == [vocab[w] for w in words]
    assert feats["segment_ids"].dtype == np.int32
    assert feats["segment_ids"].tolist() == [0] * len(words)
    assert feats["label"] == 3 and isinstance(feats["label"], int)

    short = convert_example(example, tokenizer, 5)
    assert short["input_ids"].tolist() == [vocab[w] for w in
                                           ["[CLS]", "@", "chemical", "$", "[SEP]"]]
    assert len(short["segment_ids"]) == 5


def test_convert_examples_keeps_order(tokenizer):
    examples = [Example("a", "x", "false", 2), Example("b", "y z", "CPR:3", 3)]
    feats = convert_examples(examples, tokenizer, 16)
    assert [f["label"] for f in feats] == [5, 0]
    assert [len(f["input_ids"]) for f in feats] == [3, 4]


def test_write_test_results(tmp_path):
    probs = np.array([[0.1, 0.2, 0.3, 0.1, 0.2, 0.1], [1, 0, 0, 0, 0, 0]], dtype=np.float32)
    path = tmp_path / "out" / "test_results.tsv"
    write_test_results(path, probs)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    parsed = np.array([[float(x) for x in line.split("\t")] for line in lines])
    np.testing.assert_array_equal(parsed.astype(np.float32), probs)
    assert lines[1] == "1\t0\t0\t0\t0\t0"
    assert [p.name for p in path.parent.iterdir()] == ["test_results.tsv"]
    with pytest.raises(ValueError, match="shape"):
        write_test_results(path, probs[:, :5])
    assert path.read_text().splitlines() == lines
