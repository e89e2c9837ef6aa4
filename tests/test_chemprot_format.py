"""data/ChemProtTextFormatting.py: hand-built corpora with exact rows, and the real dev/test splits."""
import collections
import pathlib
import re
import subprocess
import sys
import zipfile

import pytest

from biobert.errors import InputError
from helpers import load_script

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "data" / "ChemProtTextFormatting.py"
cpf = load_script("data/ChemProtTextFormatting.py", "chemprot_formatting")

# Gold relations of the five evaluated groups, from ../shared/data/README.md
README_GOLD = {
    "train": {"CPR:3": 768, "CPR:4": 2254, "CPR:5": 173, "CPR:6": 235, "CPR:9": 727},
    "dev": {"CPR:3": 550, "CPR:4": 1094, "CPR:5": 116, "CPR:6": 199, "CPR:9": 457},
    "test": {"CPR:3": 665, "CPR:4": 1661, "CPR:5": 195, "CPR:6": 293, "CPR:9": 644},
}
SPLIT_DIRS = {"train": ("chemprot_training", "chemprot_training_gold_standard.tsv"),
              "dev": ("chemprot_development", "chemprot_development_gold_standard.tsv"),
              "test": ("chemprot_test_gs", "chemprot_test_gold_standard.tsv")}


# ------------------------------------------------------------------ sentence splitting

def _sentences(text, protected=()):
    return [text[s:e] for s, e in cpf.split_sentences(text, protected)]


def test_splitter_keeps_abbreviations_decimals_and_initials():
    text = ("Binding was high (approx. 1.5 mM, Fig. 2), e.g. IL-6 vs. TNF, i.e. GABA receptors. "
            "As shown by Smith et al. (2004) and J. A. Brown, it rose 2.5-fold. "
            "It was inhibited by vitamin C. The effect of mRNA. cAMP rose? Yes.")
    assert _sentences(text) == [
        "Binding was high (approx. 1.5 mM, Fig. 2), e.g. IL-6 vs. TNF, i.e. GABA receptors.",
        "As shown by Smith et al. (2004) and J. A. Brown, it rose 2.5-fold.",
        "It was inhibited by vitamin C.",
        "The effect of mRNA.",
        "cAMP rose?",
        "Yes.",
    ]


def test_splitter_routes_enumerators_runons_and_lowercase_species():
    text = ("Rats were given i.v. CCK-8 or saline i.v. Infusion restored flow. "
            "H. pylori grew. 1. Drug A was given.RESULTS Drug B was not.")
    assert _sentences(text) == [
        "Rats were given i.v. CCK-8 or saline i.v.",
        "Infusion restored flow.",
        "H. pylori grew.",
        "1. Drug A was given.",
        "RESULTS Drug B was not.",
    ]


def test_splitter_never_splits_inside_a_protected_mention():
    text = "Cells were treated with 5 mg. Compound X. Then washed."
    assert len(_sentences(text)) == 3
    start = text.index("mg. Compound")
    assert _sentences(text, [(start, start + len("mg. Compound X"))]) == [
        "Cells were treated with 5 mg. Compound X.", "Then washed."]


# ------------------------------------------------------------------ a hand-built corpus

TITLE = "Aspirin inhibits COX-1."
ABSTRACT = ("We tested aspirin (1.5 mM) on COX-2 and PTGS1. "
            "Ibuprofen binds COX-2 and COX-2 kinase activity was low.")


def _offsets(text, needle, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    return start, start + len(needle)


def _hand_corpus(folder, name="chemprot_development"):
    """One document: title sentence + two abstract sentences; returns the folder."""
    doc = TITLE + " " + ABSTRACT
    mentions = [("T1", "CHEMICAL", "Aspirin", 0), ("T2", "GENE-Y", "COX-1", 0),
                ("T3", "CHEMICAL", "aspirin", 0), ("T4", "GENE-Y", "COX-2", 0),
                ("T5", "GENE-N", "PTGS1", 0), ("T6", "CHEMICAL", "Ibuprofen", 0),
                ("T7", "GENE-Y", "COX-2", 1), ("T8", "GENE-N", "COX-2 kinase", 0),
                ("T9", "CHEMICAL", "COX-2", 2)]
    split = folder / name
    split.mkdir(parents=True)
    (split / f"{name}_abstracts.tsv").write_text(f"111\t{TITLE}\t{ABSTRACT}\n", encoding="utf-8")
    lines = []
    for tid, etype, text, nth in mentions:
        s, e = _offsets(doc, text, nth)
        lines.append(f"111\t{tid}\t{etype}\t{s}\t{e}\t{text}\n")
    (split / f"{name}_entities.tsv").write_text("".join(lines), encoding="utf-8")
    (split / f"{name}_relations.tsv").write_text(
        "111\tCPR:4\tY \tINHIBITOR\tArg1:T1\tArg2:T2\n"      # same sentence -> CPR:4
        "111\tCPR:3\tY \tACTIVATOR\tArg1:T3\tArg2:T5\n"      # two groups on one pair
        "111\tCPR:9\tY \tSUBSTRATE\tArg1:T3\tArg2:T5\n"
        "111\tCPR:2\tN \tDIRECT-REGULATOR\tArg1:T6\tArg2:T7\n"  # not evaluated -> false
        "111\tCPR:5\tY \tAGONIST\tArg1:T1\tArg2:T4\n",       # cross-sentence -> lost
        encoding="utf-8")
    return folder


def _read_rows(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "index\tsentence\tlabel"
    return [tuple(line.split("\t")) for line in lines[1:]]


def test_hand_built_corpus_exact_rows(tmp_path):
    corpus = _hand_corpus(tmp_path / "in")
    stats = cpf.format_corpus(corpus, tmp_path / "out", splits=["dev"], duplicate_multi_label=False,
                              log=lambda _: None)["dev"]
    s2 = "We tested {} (1.5 mM) on {} and {}."
    s3 = "{} binds {} and {} activity was low."
    assert _read_rows(tmp_path / "out" / "dev.tsv") == [
        ("111.T1.T2", "@CHEMICAL$ inhibits @GENE$.", "CPR:4"),
        ("111.T3.T4", s2.format("@CHEMICAL$", "@GENE$", "PTGS1"), "false"),
        ("111.T3.T5", s2.format("@CHEMICAL$", "COX-2", "@GENE$"), "CPR:3"),
        ("111.T6.T7", s3.format("@CHEMICAL$", "@GENE$", "COX-2 kinase"), "false"),
        ("111.T6.T8", s3.format("@CHEMICAL$", "COX-2", "@GENE$"), "false"),
        ("111.T9.T7", s3.format("Ibuprofen", "@GENE$", "@CHEMICAL$ kinase"), "false"),
    ]
    # 4 chemicals x 5 genes = 20 pairs: 6 written, T9/T8 overlap, 13 cross sentences
    assert (stats["written"], stats["overlapping"], stats["cross_sentence"]) == (6, 1, 13)
    # gold: CPR:4, CPR:3 + CPR:9 on one pair, CPR:5 across sentences
    assert (stats["gold"], stats["gold_written"], stats["lost_cross_sentence"], stats["lost_second_group"],
            stats["lost_overlapping"]) == (4, 2, 1, 1, 0)

    printed = []
    stats = cpf.format_corpus(corpus, tmp_path / "dup", splits=["dev"], log=printed.append)["dev"]   # the default
    labels = [(r[0], r[2]) for r in _read_rows(tmp_path / "dup" / "dev.tsv")]
    assert ("111.T3.T5", "CPR:3") in labels and ("111.T3.T5", "CPR:9") in labels and len(labels) == 7
    assert (stats["gold"], stats["gold_written"], stats["lost_second_group"]) == (4, 3, 0)
    assert printed[-2:] == [
        "dev: no row for 14 pairs (overlapping mentions 1, in different sentences 13)",
        "dev: gold relations (evaluated CPR:3/4/5/6/9) 4, with their row 3, without 1: overlapping mentions 0, "
        "in different sentences 1, a pair's second group 0"]


def test_reads_nested_and_flat_zips(tmp_path):
    corpus = _hand_corpus(tmp_path / "in")
    cpf.format_corpus(corpus, tmp_path / "ref", splits=["dev"], log=lambda _: None)
    expected = (tmp_path / "ref" / "dev.tsv").read_text()
    split = corpus / "chemprot_development"
    # official layout: ChemProt_Corpus.zip -> ChemProt_Corpus/chemprot_development.zip -> folder
    inner = tmp_path / "chemprot_development.zip"
    with zipfile.ZipFile(inner, "w") as z:
        for f in split.iterdir():
            z.write(f, f"chemprot_development/{f.name}")
    nested = tmp_path / "nested"
    nested.mkdir()
    with zipfile.ZipFile(nested / "ChemProt_Corpus.zip", "w") as z:
        z.write(inner, "ChemProt_Corpus/chemprot_development.zip")
        z.writestr("__MACOSX/ChemProt_Corpus/._chemprot_development.zip", b"junk")
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(flat, "w") as z:
        for f in split.iterdir():
            z.write(f, f.name)
    for source in (nested, nested / "ChemProt_Corpus.zip", flat):
        out = tmp_path / f"out_{source.name}"
        cpf.format_corpus(source, out, splits=["dev"], log=lambda _: None)
        assert (out / "dev.tsv").read_text() == expected


@pytest.mark.parametrize("column, bad, message", [
    (None, "111\tT1\tCHEMICAL\t0\t7", "expected 6 tab-separated columns"),
    (4, "x", "offsets must be integers"),
    (5, "Aspirin", "does not match the abstract text"),
    (2, "PROTEIN", "unknown entity type"),
])
def test_broken_entity_line_names_file_and_line(tmp_path, column, bad, message):
    corpus = _hand_corpus(tmp_path / "in")
    path = corpus / "chemprot_development" / "chemprot_development_entities.tsv"
    lines = path.read_text().splitlines()
    if column is None:
        lines[2] = bad
    else:
        fields = lines[2].split("\t")
        fields[column] = bad
        lines[2] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message) as err:
        cpf.format_corpus(corpus, tmp_path / "out", splits=["dev"], log=lambda _: None)
    assert err.value.path == str(path) and err.value.line == 3
    assert not (tmp_path / "out" / "dev.tsv").exists()


def test_cli_broken_relation_line_exits_1(tmp_path):
    corpus = _hand_corpus(tmp_path / "in")
    path = corpus / "chemprot_development" / "chemprot_development_relations.tsv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("Arg2:T5", "Arg2:T99")
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "dev.tsv").write_text("previous\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), f"--input_folder={corpus}",
                           f"--output_folder={out}", "--splits=dev"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {path}:2: unknown entity 111 T99")
    assert (out / "dev.tsv").read_text() == "previous\n"


def test_missing_split_file_is_a_clear_error(tmp_path):
    corpus = _hand_corpus(tmp_path / "in")
    with pytest.raises(InputError, match="chemprot_training_abstracts.tsv"):
        cpf.format_corpus(corpus, tmp_path / "out", splits=["train"], log=lambda _: None)


# ------------------------------------------------------------------ the real corpus

@pytest.fixture(scope="module")
def formatted(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("chemprot")
    stats = cpf.format_corpus(shared_data / "ChemProt_Corpus", out, log=lambda _: None)
    rows = {split: _read_rows(out / f"{split}.tsv") for split in ("train", "dev", "test")}
    return stats, rows


def _raw_split(shared_data, split):
    """Documents, entities and gold relations read straight from the corpus files."""
    folder, gold_name = SPLIT_DIRS[split]
    base = shared_data / "ChemProt_Corpus" / folder
    suffix = "_gs" if split == "test" else ""
    prefix = folder.replace("_gs", "")
    docs = {}
    for line in (base / f"{prefix}_abstracts{suffix}.tsv").read_text().splitlines():
        pmid, title, abstract = line.split("\t")
        docs[pmid] = (title, abstract)
    entities = collections.defaultdict(dict)
    for line in (base / f"{prefix}_entities{suffix}.tsv").read_text().splitlines():
        pmid, tid, etype, start, end, _ = line.split("\t")
        entities[pmid][tid] = (etype, int(start), int(end))
    gold = [line.split("\t") for line in (base / gold_name).read_text().splitlines()]
    return docs, entities, gold


@pytest.mark.parametrize("split", ["dev", "test"])
def test_real_pair_counts(shared_data, formatted, split):
    stats, rows = formatted
    _, entities, _ = _raw_split(shared_data, split)
    pairs = overlapping = 0
    for ents in entities.values():
        chems = [e for e in ents.values() if e[0] == "CHEMICAL"]
        genes = [e for e in ents.values() if e[0] != "CHEMICAL"]
        pairs += len(chems) * len(genes)
        overlapping += sum(c[1] < g[2] and g[1] < c[2] for c in chems for g in genes)
    s = stats[split]
    assert len(rows[split]) == s["written"]
    # one row per pair, and one per gold group for a pair with several (each a different CPR group)
    labels = collections.defaultdict(list)
    for index, _, label in rows[split]:
        labels[index].append(label)
    for index, got in labels.items():
        assert len(got) == 1 or (len(set(got)) == len(got) and "false" not in got), index
    assert len(labels) + s["overlapping"] + s["cross_sentence"] == pairs
    assert s["overlapping"] == overlapping
    # BLUE kept overlapping pairs as one @CHEM-GENE$ row: dev 11268, test 15745 rows
    blue = {"dev": 11268, "test": 15745}[split]
    assert abs(s["written"] + s["overlapping"] - blue) / blue < 0.02     # (BLUE wrote a row per group, as here)


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_real_gold_relations_get_their_row_or_a_named_cause(shared_data, formatted, split):
    """Every gold relation of the five groups has a row with its label, or its pair cannot have one: the two
    mentions overlap, or no sentence holds both. The counts add up to the gold standard's, and no relation is
    lost to a pair's second group or to a sentence split between its mentions (dev and test lose none)."""
    stats, rows = formatted
    docs, entities, gold = _raw_split(shared_data, split)
    assert collections.Counter(g[1] for g in gold) == README_GOLD[split]
    labels = collections.defaultdict(set)
    for index, _, label in rows[split]:
        labels[index].add(label)
    found, lost = collections.Counter(), collections.Counter()
    for pmid, group, arg1, arg2 in gold:
        index = f"{pmid}.{arg1[5:]}.{arg2[5:]}"
        if group in labels.get(index, ()):
            found[group] += 1
            continue
        assert index not in labels, index              # a pair with a row has a row for each of its groups
        (_, cs, ce), (_, gs, ge) = entities[pmid][arg1[5:]], entities[pmid][arg2[5:]]
        if cs < ge and gs < ce:
            lost["overlapping"] += 1
        else:
            mentions = [cpf.Entity(t, *v, "") for t, v in entities[pmid].items()]
            spans = cpf.document_sentences(*docs[pmid], mentions)
            assert not [(s, e) for s, e in spans if s <= min(cs, gs) and max(ce, ge) <= e], index
            lost["cross_sentence"] += 1
    s = stats[split]
    for group, total in README_GOLD[split].items():
        assert s[group] == found[group] <= total
    assert s["gold"] == sum(README_GOLD[split].values())
    assert (s["gold_written"], s["lost_overlapping"], s["lost_cross_sentence"], s["lost_second_group"]) == \
        (sum(found.values()), lost["overlapping"], lost["cross_sentence"], 0)
    assert s["gold"] == s["gold_written"] + s["lost_overlapping"] + s["lost_cross_sentence"]
    if split != "train":
        assert s["gold_written"] == s["gold"]        # every dev and test relation is scored


@pytest.mark.parametrize("split", ["dev", "test"])
def test_real_rows_masks_once_and_valid_labels(formatted, split):
    _, rows = formatted
    for index, sentence, label in rows[split]:
        assert re.fullmatch(r"\d+\.T\d+\.T\d+", index)
        assert sentence.count("@CHEMICAL$") == 1 and sentence.count("@GENE$") == 1, index
        assert label in ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "false")
        assert sentence == sentence.strip() and "\t" not in sentence


@pytest.mark.parametrize("split", ["dev", "test"])
def test_real_sentences_never_split_inside_numbers_or_mentions(shared_data, split):
    docs, entities, _ = _raw_split(shared_data, split)
    for pmid, (title, abstract) in docs.items():
        text = cpf.document_text(title, abstract)
        ents = [cpf.Entity(t, *v, "") for t, v in entities[pmid].items()]
        spans = cpf.document_sentences(title, abstract, ents)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            # the cut is after ., ?, ! or a closing bracket/quote, never between digits
            assert text[end - 1] in ".?!)]}\"'”’", (pmid, text[end - 20:start + 20])
            # never between the digits of a number such as "1.5"
            assert not (text[end - 1] == "." and text[end - 2].isdigit() and start == end
                        and text[start].isdigit()), (pmid, text[end - 20:start + 20])
        for _, s, e in entities[pmid].values():
            assert any(a <= s and e <= b for a, b in spans), (pmid, text[s:e])
