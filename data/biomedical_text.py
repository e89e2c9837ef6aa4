"""Biomedical text for continued pre-training, from the local samples only, never from a test split.

    python data/biomedical_text.py --shared_data ../shared/data --output_dir TEXT --vocab_file vocab.txt

Sources (in this order), each document once:
  pubmed   pubmed/PubMedAbstract_1MB.txt (one article per line): every 10th article is held out
  medline  pubmed/medline16n0902.xml.gz (title + abstract of each MedlineCitation with an abstract)
  chemprot ChemProt_Corpus/chemprot_{training,development}/*_abstracts.tsv (title + abstract)
  bc5cdr   BC5CDR/chem/{train,devel}.tsv sentences (the disease files hold the same sentences), rebuilt from
           their tokens and character offsets, one document per PMID
A document whose PMID is in a test split (BC5CDR test.tsv, ChemProt test abstracts) is left out wherever it
appears. Writes, atomically, in --output_dir:
  train.txt      one sentence per line, a blank line between documents (create_pretraining_data.py's input)
  heldout.txt    the held-out PubMed articles in the same form: the masked-LM evaluation text, never trained on
  manifest.json  per source: files, documents, sentences, words and WordPiece tokens (with --vocab_file)
"""
import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from biobert.errors import InputError  # noqa: E402
from biobert.fileio import atomic_write_text  # noqa: E402
from biobert.segmentation import NLTKSegmenter  # noqa: E402

HELD_OUT_EVERY = 10      # every 10th PubMed-sample article (index 9, 19, ...) is held out


def test_pmids(shared):
    """PMIDs of every test-split document: BC5CDR test (both corpora) and ChemProt test."""
    pmids = set()
    for corpus in ("chem", "disease"):
        for pmid, _ in bc5cdr_documents(os.path.join(shared, "BC5CDR", corpus, "test.tsv")):
            pmids.add(pmid)
    for pmid, _ in chemprot_documents(os.path.join(shared, "ChemProt_Corpus", "chemprot_test_gs",
                                                   "chemprot_test_abstracts_gs.tsv")):
        pmids.add(pmid)
    return pmids


def chemprot_documents(path):
    """(PMID, title + abstract) of each line of a ChemProt ``*_abstracts.tsv``."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                raise InputError(f"expected 3 tab-separated columns (PMID, title, abstract), found {len(parts)}",
                                 path=path, line=number)
            yield parts[0], f"{parts[1]} {parts[2]}"


def bc5cdr_documents(path):
    """(PMID, text) per document of a BC5CDR tsv: each token placed at its character offset (the gaps become
    single spaces), a document starting where the PMID in the second column (given on each sentence's first
    token) changes."""
    pmid, pieces, end = None, [], 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4 or not parts[2].isdigit():
                raise InputError("expected token, PMID or '-', character offset, tag", path=path, line=number)
            if parts[1] != "-" and parts[1] != pmid:
                if pieces:
                    yield pmid, "".join(pieces)
                pmid, pieces, end = parts[1], [], 0
            offset = int(parts[2])
            pieces.append((" " if pieces and offset > end else "") + parts[0])
            end = offset + len(parts[0])
    if pieces:
        yield pmid, "".join(pieces)


def gather(shared):
    """{source: [(files, [document text, ...])]}, the held-out PubMed articles, and the count left out."""
    import PubMedTextFormatting

    excluded = test_pmids(shared)
    left_out = collections.Counter()
    sources = collections.OrderedDict()
    pubmed = os.path.join(shared, "pubmed", "PubMedAbstract_1MB.txt")
    with open(pubmed, encoding="utf-8") as handle:
        articles = [line.strip() for line in handle if line.strip()]
    held_out = [a for i, a in enumerate(articles) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    sources["pubmed"] = ([pubmed], [a for i, a in enumerate(articles) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1])

    def keep(name, pairs):
        out = []
        for pmid, text in pairs:
            if pmid in excluded:
                left_out[name] += 1
            elif text.strip():
                out.append(text)
        return out

    medline = os.path.join(shared, "pubmed", "medline16n0902.xml.gz")
    sources["medline"] = ([medline], keep("medline", ((p, f"{t} {a}") for p, t, a in
                                                       PubMedTextFormatting.iter_medline_articles(medline) if a)))
    chemprot = [os.path.join(shared, "ChemProt_Corpus", f"chemprot_{s}", f"chemprot_{s}_abstracts.tsv")
                for s in ("training", "development")]
    sources["chemprot"] = (chemprot, keep("chemprot", (d for path in chemprot for d in chemprot_documents(path))))
    bc5cdr = [os.path.join(shared, "BC5CDR", "chem", f"{s}.tsv") for s in ("train", "devel")]
    sources["bc5cdr"] = (bc5cdr, keep("bc5cdr", (d for path in bc5cdr for d in bc5cdr_documents(path))))
    return sources, held_out, left_out


def write_corpus(path, documents, segmenter, tokenizer):
    """Write ``documents`` sentence per line; return their counts."""
    counts = collections.Counter()
    blocks = []
    for text in documents:
        sentences = segmenter.segment_string(text)
        if not sentences:
            continue
        blocks.append("\n".join(sentences) + "\n\n")
        counts["documents"] += 1
        counts["sentences"] += len(sentences)
        counts["words"] += len(text.split())
        if tokenizer is not None:
            counts["wordpiece_tokens"] += sum(len(tokenizer.tokenize(s)) for s in sentences)
    atomic_write_text(path, "".join(blocks))
    return dict(counts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared_data", required=True, help="folder with pubmed/, ChemProt_Corpus/, BC5CDR/")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--vocab_file", help="count WordPiece tokens with this vocabulary")
    parser.add_argument("--do_lower_case", type=int, default=1, help="1 for an uncased vocabulary [1]")
    args = parser.parse_args(argv)
    try:
        sources, held_out, left_out = gather(args.shared_data)
        from biobert.tokenization import FullTokenizer

        tokenizer = FullTokenizer(args.vocab_file, do_lower_case=bool(args.do_lower_case)) if args.vocab_file \
            else None
        segmenter = NLTKSegmenter(train_text="\n".join(sources["pubmed"][1][:300]), use_downloaded=False)
        os.makedirs(args.output_dir, exist_ok=True)
        manifest = {"sources": {}, "left_out_test_documents": dict(left_out)}
        train_docs = [d for _, docs in sources.values() for d in docs]
        for name, (files, docs) in sources.items():
            counts = collections.Counter()
            for text in docs:      # counted per source; the file is written once below
                counts["documents"] += 1
                counts["words"] += len(text.split())
            manifest["sources"][name] = {"files": files, **counts}
        manifest["train"] = write_corpus(os.path.join(args.output_dir, "train.txt"), train_docs, segmenter, tokenizer)
        manifest["heldout"] = dict(write_corpus(os.path.join(args.output_dir, "heldout.txt"), held_out, segmenter,
                                                tokenizer), files=sources["pubmed"][0],
                                   rule=f"every {HELD_OUT_EVERY}th article of the PubMed sample")
        atomic_write_text(os.path.join(args.output_dir, "manifest.json"), json.dumps(manifest, indent=2) + "\n")
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {err.filename}: cannot read ({err.strerror})", file=sys.stderr)
        return 1
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
