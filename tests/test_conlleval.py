"""conlleval port: hand-computed figures, conlleval's text, seqeval agreement on real BC5CDR data."""
import pathlib
import random
import subprocess
import sys

import pytest
from seqeval import metrics as seqeval_metrics

from biobert import conlleval
from biobert.errors import InputError

REPO = pathlib.Path(__file__).resolve().parents[1]


def _lines(text):
    return text.strip("\n").split("\n")


# Untyped B/I/O. Gold chunks: a-b, d-e, g (an I after an O starts a chunk), i = 4.
# Predicted chunks: a-b, d, g-h, j = 4. Correct: a-b only. Correct tags: a b c d f = 5 of 10.
UNTYPED = """
a B B
b I I
c O O
d B B
e I O
f O O
g I B
h O I

i B O
j O B
"""

# Typed tags. Gold: Chem {Aspirin, Heparin}, Dis {liver damage, renal failure} = 4.
# Predicted: Chem {Aspirin, liver}, Dis {damage (type change starts a chunk), and, renal failure} = 5.
# Correct: Aspirin, renal failure. The -DOCSTART- line is a boundary, not a token: 9 tokens,
# correct tags: Aspirin causes damage renal failure . = 6.
TYPED = """
Aspirin B-Chem B-Chem
causes O O
liver B-Dis B-Chem
damage I-Dis I-Dis
and O B-Dis
renal B-Dis B-Dis
failure I-Dis I-Dis
. O O
-DOCSTART- O O
Heparin B-Chem O
"""


def test_untyped_counts_and_report():
    counts = conlleval.evaluate(_lines(UNTYPED))
    assert (counts.tokens, counts.gold_phrases, counts.found_phrases, counts.correct_phrases,
            counts.correct_tags) == (10, 4, 4, 1, 5)
    m = conlleval.metrics(counts)
    assert m["precision"] == pytest.approx(25.0)
    assert m["recall"] == pytest.approx(25.0)
    assert m["f1"] == pytest.approx(25.0)
    assert m["accuracy"] == pytest.approx(50.0)
    assert conlleval.report(counts) == (
        "processed 10 tokens with 4 phrases; found: 4 phrases; correct: 1.\n"
        "accuracy:  50.00%; precision:  25.00%; recall:  25.00%; FB1:  25.00\n"
        "                 : precision:  25.00%; recall:  25.00%; FB1:  25.00  4\n")


def test_typed_counts_and_report():
    counts = conlleval.evaluate(_lines(TYPED))
    assert (counts.tokens, counts.gold_phrases, counts.found_phrases, counts.correct_phrases,
            counts.correct_tags) == (9, 4, 5, 2, 6)
    assert dict(counts.gold_by_type) == {"Chem": 2, "Dis": 2}
    assert dict(counts.found_by_type) == {"Chem": 2, "Dis": 3}
    assert dict(counts.correct_by_type) == {"Chem": 1, "Dis": 1}
    m = conlleval.metrics(counts)
    assert m["f1"] == pytest.approx(2 * 40 * 50 / 90)
    assert m["by_type"]["Dis"]["precision"] == pytest.approx(100 / 3)
    assert m["by_type"]["Dis"]["f1"] == pytest.approx(40.0)
    assert conlleval.report(counts) == (
        "processed 9 tokens with 4 phrases; found: 5 phrases; correct: 2.\n"
        "accuracy:  66.67%; precision:  40.00%; recall:  50.00%; FB1:  44.44\n"
        "             Chem: precision:  50.00%; recall:  50.00%; FB1:  50.00  2\n"
        "              Dis: precision:  33.33%; recall:  50.00%; FB1:  40.00  3\n")


@pytest.mark.parametrize("tags, phrases", [
    ("O I I O", 1),            # I after O starts a chunk
    ("B I B I", 2),            # B after I starts a new one
    ("B-A I-B I-B", 2),        # a type change starts a new chunk
    ("S-A S-A B-A E-A E-A", 4),  # IOBES: S is one word; E after E starts a chunk
    ("B E I O", 2),            # I after E starts a chunk
    ("[ ] O", 2),              # [ and ] are one-word chunks
    ("B . I", 1),              # . continues a chunk
])
def test_chunk_rules(tags, phrases):
    lines = [f"w{k} {t} {t}" for k, t in enumerate(tags.split())]
    counts = conlleval.evaluate(lines)
    assert counts.gold_phrases == counts.found_phrases == counts.correct_phrases == phrases


def test_chunks_end_at_sentence_boundaries():
    # Without the boundary, B I would be one chunk; the blank line and -X- split it.
    for boundary in ("", "-X- -X- O O"):
        counts = conlleval.evaluate(["a x B B", "b x I I", boundary, "c x I I"])
        assert counts.gold_phrases == 2 and counts.tokens == 3


def test_empty_input_prints_only_the_first_line():
    counts = conlleval.evaluate([])
    assert conlleval.report(counts) == "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"
    assert conlleval.metrics(counts)["f1"] == 0.0


def test_bad_lines_name_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a B B\nb O O\n\nc O\n")
    with pytest.raises(InputError, match=f"{path}:4: unexpected number of fields: 2"):
        conlleval.evaluate_file(path)
    path.write_text("a\nb\n")
    with pytest.raises(InputError, match=f"{path}:1: .*one field"):
        conlleval.evaluate_file(path)


def test_command_line(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text(TYPED.lstrip("\n"))
    run = subprocess.run([sys.executable, "-m", "biobert.conlleval"], stdin=path.open(),
                         capture_output=True, text=True, cwd=REPO, check=True)
    assert run.stdout == conlleval.report(conlleval.evaluate(_lines(TYPED)))
    path.write_text("a B B\nb B\n")
    run = subprocess.run([sys.executable, "-m", "biobert.conlleval", str(path)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 1 and run.stderr.startswith(f"error: {path}:2: ")


# ----------------------------------------------------------------------------- real data

def _read_columns(path):
    """Sentences of (word, tag) from a BLUE file, read independently of biobert.ner."""
    sentences, current = [], []
    for line in open(path, encoding="utf-8"):
        fields = line.split()
        if not fields:
            if current:
                sentences.append(current)
            current = []
        else:
            current.append((fields[0], fields[-1]))
    if current:
        sentences.append(current)
    return sentences


def _corrupt(sentences, tagset, rate, seed):
    rng = random.Random(seed)
    return [[rng.choice(tagset) if rng.random() < rate else tag for tag in s] for s in sentences]


def _conll_lines(words, gold, pred):
    lines = []
    for ws, gs, ps in zip(words, gold, pred):
        lines.extend(f"{w} {g} {p}" for w, g, p in zip(ws, gs, ps))
        lines.append("")
    return lines


def _assert_same_as_seqeval(words, gold, pred):
    counts = conlleval.evaluate(_conll_lines(words, gold, pred))
    m = conlleval.metrics(counts)
    assert m["precision"] / 100 == pytest.approx(seqeval_metrics.precision_score(gold, pred), abs=1e-6)
    assert m["recall"] / 100 == pytest.approx(seqeval_metrics.recall_score(gold, pred), abs=1e-6)
    assert m["f1"] / 100 == pytest.approx(seqeval_metrics.f1_score(gold, pred), abs=1e-6)
    assert m["accuracy"] / 100 == pytest.approx(seqeval_metrics.accuracy_score(gold, pred), abs=1e-6)
    return counts


@pytest.mark.parametrize("corpus, gold_phrases", [("chem", 5386), ("disease", 4424)])
def test_gold_as_prediction_on_bc5cdr_test(shared_data, corpus, gold_phrases):
    sentences = _read_columns(shared_data / "BC5CDR" / corpus / "test.tsv")
    words = [[w for w, _ in s] for s in sentences]
    gold = [[t for _, t in s] for s in sentences]
    text = conlleval.report(conlleval.evaluate(_conll_lines(words, gold, gold)))
    assert text.startswith(f"processed 124669 tokens with {gold_phrases} phrases; "
                           f"found: {gold_phrases} phrases; correct: {gold_phrases}.\n"
                           "accuracy: 100.00%; precision: 100.00%; recall: 100.00%; FB1: 100.00\n")


@pytest.mark.parametrize("corpus, seed", [("chem", 1), ("disease", 2)])
def test_untyped_matches_seqeval_on_corrupted_bc5cdr(shared_data, corpus, seed):
    sentences = _read_columns(shared_data / "BC5CDR" / corpus / "test.tsv")
    words = [[w for w, _ in s] for s in sentences]
    gold = [[t for _, t in s] for s in sentences]
    pred = _corrupt(gold, ["B", "I", "O"], 0.05, seed)
    counts = _assert_same_as_seqeval(words, gold, pred)
    assert 0 < counts.correct_phrases < counts.gold_phrases  # the corruption did something


def test_typed_matches_seqeval_on_corrupted_bc5cdr(shared_data):
    chem = _read_columns(shared_data / "BC5CDR" / "chem" / "test.tsv")
    disease = _read_columns(shared_data / "BC5CDR" / "disease" / "test.tsv")
    words, gold = [], []
    for sc, sd in zip(chem, disease):
        assert [w for w, _ in sc] == [w for w, _ in sd]
        words.append([w for w, _ in sc])
        gold.append([f"{c}-Chemical" if c != "O" else (f"{d}-Disease" if d != "O" else "O")
                     for (_, c), (_, d) in zip(sc, sd)])
    tagset = ["B-Chemical", "I-Chemical", "B-Disease", "I-Disease", "O"]
    pred = _corrupt(gold, tagset, 0.05, 3)
    counts = _assert_same_as_seqeval(words, gold, pred)
    assert set(counts.types) == {"Chemical", "Disease"}
    report = seqeval_metrics.classification_report(gold, pred, output_dict=True)
    by_type = conlleval.metrics(counts)["by_type"]
    for name in ("Chemical", "Disease"):
        assert by_type[name]["precision"] / 100 == pytest.approx(report[name]["precision"], abs=1e-6)
        assert by_type[name]["recall"] / 100 == pytest.approx(report[name]["recall"], abs=1e-6)
        assert counts.gold_by_type[name] == report[name]["support"]
