"""data/biomedical_text.py: the continued-pre-training text never holds a test-split document, and the held-out
PubMed articles are not trained on."""
import gzip
import json

from helpers import load_script

text = load_script("data/biomedical_text.py", "biomedical_text")


def write_bc5cdr(path, documents):
    """documents: [(pmid, [sentence tokens, ...])] in the BLUE format (PMID on each sentence's first token)."""
    lines = []
    for pmid, sentences in documents:
        offset = 0
        for tokens in sentences:
            for i, token in enumerate(tokens):
                lines.append(f"{token}\t{pmid if i == 0 else '-'}\t{offset}\tO")
                offset += len(token) + 1
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_sources_leave_out_test_documents_and_the_held_out_articles(tmp_path):
    shared = tmp_path / "shared"
    (shared / "pubmed").mkdir(parents=True)
    articles = [f"Article {i} reports that drug {i} lowers pressure. It was well tolerated." for i in range(20)]
    (shared / "pubmed" / "PubMedAbstract_1MB.txt").write_text("\n".join(articles) + "\n", encoding="utf-8")
    xml = ("<PubmedArticleSet>" + "".join(
        f"<PubmedArticle><MedlineCitation><PMID>{p}</PMID><Article><ArticleTitle>Title {p}.</ArticleTitle>"
        f"<Abstract><AbstractText>Abstract of {p} here.</AbstractText></Abstract></Article></MedlineCitation>"
        "</PubmedArticle>" for p in (111, 999)) + "</PubmedArticleSet>")
    with gzip.open(shared / "pubmed" / "medline16n0902.xml.gz", "wt", encoding="utf-8") as handle:
        handle.write(xml)
    for split, name, pmids in (("training", "chemprot_training_abstracts.tsv", (222, 998)),
                               ("development", "chemprot_development_abstracts.tsv", (333,)),
                               ("test_gs", "chemprot_test_abstracts_gs.tsv", (998,))):
        folder = shared / "ChemProt_Corpus" / f"chemprot_{split}"
        folder.mkdir(parents=True)
        (folder / name).write_text("".join(f"{p}\tChemProt title {p}.\tChemProt abstract {p}.\n" for p in pmids),
                                   encoding="utf-8")
    for corpus in ("chem", "disease"):
        folder = shared / "BC5CDR" / corpus
        folder.mkdir(parents=True)
        write_bc5cdr(folder / "train.tsv", [("444", [["Naloxone", "reverses", "clonidine", "."],
                                                     ["In", "rats", "."]])])
        write_bc5cdr(folder / "devel.tsv", [("555", [["Lidocaine", "asystole", "."]])])
        write_bc5cdr(folder / "test.tsv", [("999", [["Test", "sentence", "."]])])
    out = tmp_path / "text"
    assert text.main(["--shared_data", str(shared), "--output_dir", str(out)]) == 0
    train = (out / "train.txt").read_text(encoding="utf-8")
    heldout = (out / "heldout.txt").read_text(encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    # MEDLINE 999 is a BC5CDR test document and ChemProt 998 a ChemProt test one: both left out
    assert "Abstract of 999" not in train and "ChemProt abstract 998" not in train
    assert manifest["left_out_test_documents"] == {"medline": 1, "chemprot": 1}
    assert "Abstract of 111" in train and "ChemProt abstract 222" in train and "ChemProt abstract 333" in train
    # BC5CDR sentences rebuilt from their offsets, one document per PMID, in train; never test
    assert "Naloxone reverses clonidine .\nIn rats ." in train and "Lidocaine asystole ." in train
    assert "Test sentence" not in train
    # every 10th PubMed article held out, and only there
    for i, article in enumerate(articles):
        first = article.split(". ")[0]
        assert (first in heldout) == (i % 10 == 9) and (first in train) == (i % 10 != 9), i
    assert manifest["sources"]["pubmed"]["documents"] == 18 and manifest["heldout"]["documents"] == 2
    assert manifest["train"]["documents"] == 18 + 1 + 2 + 2
