"""PubMed data steps: MEDLINE XML formatting, sentence sharding, resumable checksum-verified download."""
import gzip
import hashlib
import http.server
import pathlib
import re
import subprocess
import sys
import threading

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "data"))

import PubMedDownloader  # noqa: E402
import PubMedTextFormatting  # noqa: E402
import TextSharding  # noqa: E402
from biobert.errors import InputError  # noqa: E402

TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:]*(\s[^<>]*)?/?>")


# --- XML -> one article per line --------------------------------------------------------------------

@pytest.fixture(scope="module")
def medline(shared_data):
    return shared_data / "pubmed" / "medline16n0902.xml.gz"


def _expected_articles(path):
    """Independent count: MedlineCitation blocks whose Article/Abstract has non-empty AbstractText."""
    xml = gzip.open(path, "rt", encoding="utf-8").read()
    blocks = re.findall(r"<MedlineCitation[ >].*?</MedlineCitation>", xml, re.S)
    with_abstract = 0
    for block in blocks:
        abstract = re.search(r"<Abstract>(.*?)</Abstract>", block, re.S)
        if abstract and re.search(r"<AbstractText[^>]*>\s*[^<\s]", abstract.group(1)):
            with_abstract += 1
    return len(blocks), with_abstract


def test_medline_formatter_counts_and_clean_text(medline, tmp_path):
    citations, with_abstract = _expected_articles(medline)
    out = tmp_path / "pubmed_baseline_one_article_per_line.txt"
    counts = PubMedTextFormatting.PubMedTextFormatting(str(medline), str(out)).merge()
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert citations == 604  # the data README's figure
    assert counts["citations"] == citations
    assert counts["written"] == len(lines) == with_abstract
    assert counts["skipped_no_abstract"] == citations - with_abstract
    for line in lines:
        assert line and not TAG.search(line), line[:200]
        assert line == " ".join(line.split())  # whitespace normalised
    # First record: title then its four labelled AbstractText parts, labels and markup dropped.
    assert lines[0].startswith("Neuroplasticity in the processing of pitch dimensions: a multidimensional "
                               "scaling analysis of the mismatch negativity. An auditory electrophysiological study")
    assert "PURPOSE" not in lines[0] and lines[0].endswith("within a particular tone space.")
    assert "relevance to conventional pitch" not in lines[0]


def test_medline_formatter_inline_markup_and_bad_xml(tmp_path):
    xml = ('<?xml version="1.0"?><PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>'
           '<ArticleTitle>Effect of <i>E. coli</i>  on\n mice.</ArticleTitle><Abstract>'
           '<AbstractText>CO<sub>2</sub> rose &lt;i&gt;sharply&lt;/i&gt; (p &lt; 0.05).</AbstractText>'
           '<AbstractText Label="R">Done.</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>'
           '<PubmedArticle><MedlineCitation><PMID>2</PMID><Article><ArticleTitle>No abstract.</ArticleTitle>'
           '</Article></MedlineCitation></PubmedArticle></PubmedArticleSet>')
    src = tmp_path / "in" / "a.xml.gz"
    src.parent.mkdir()
    with gzip.open(src, "wt", encoding="utf-8") as handle:
        handle.write(xml)
    out = tmp_path / "out.txt"
    counts = PubMedTextFormatting.PubMedTextFormatting(str(src.parent), str(out)).merge()
    assert out.read_text() == "Effect of E. coli on mice. CO2 rose sharply (p < 0.05). Done.\n"
    assert counts["skipped_no_abstract"] == 1
    bad = tmp_path / "bad" / "b.xml"
    bad.parent.mkdir()
    bad.write_text("<a>\n<b>\n</a>\n")
    with pytest.raises(InputError, match=r"b\.xml:3"):
        PubMedTextFormatting.PubMedTextFormatting(str(bad.parent), str(tmp_path / "o2.txt")).merge()
    assert not (tmp_path / "o2.txt").exists()


# --- sentence segmentation and sharding --------------------------------------------------------------

def test_segmenter_without_nltk_data_keeps_abbreviations():
    seg = TextSharding.NLTKSegmenter(use_downloaded=False)
    assert seg.segment_string("Smith et al. found it, e.g. in mice. Fig. 2 shows the i.v. dose. It worked.") == [
        "Smith et al. found it, e.g. in mice.", "Fig. 2 shows the i.v. dose.", "It worked."]


def _read_shard(path):
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n\n")
    return [doc.split("\n") for doc in text[:-2].split("\n\n")]


def test_sharding_keeps_documents_whole(tmp_path, shared_data):
    articles = [line.strip() for line in
                (shared_data / "pubmed" / "PubMedAbstract_1MB.txt").read_text(encoding="utf-8").splitlines()
                if line.strip()][:200]
    src = tmp_path / "articles.txt"
    src.write_text("\n".join(articles) + "\n", encoding="utf-8")
    seg = TextSharding.NLTKSegmenter(train_text="\n".join(articles), use_downloaded=False)
    prefix = tmp_path / "sharded" / "pubmed_baseline" / "pubmed_baseline"
    result = TextSharding.Sharding([str(src)], str(prefix), 3, 2, 0.1, segmenter=seg, buffer_chars=20000).run()

    assert result["test"]["articles"] == 20 and result["training"]["articles"] == 180
    docs = []  # (document text, split); a list, since the sample holds one article twice
    for split, n in (("training", 3), ("test", 2)):
        for i in range(n):
            path = prefix.parent / split / f"pubmed_baseline_{split}_{i}.txt"
            shard_docs = _read_shard(path)
            assert shard_docs
            for doc in shard_docs:
                assert all(sentence and sentence == sentence.strip() for sentence in doc)
                docs.append((" ".join(doc), split))
    # Every article appears exactly once, whole, as the join of its sentences (compared without
    # whitespace: Punkt may split inside a token, as in 'latter."Diffuse"').
    assert sorted("".join(a.split()) for a in articles) == sorted("".join(d.split()) for d, _ in docs)
    assert [s for _, s in docs].count("test") == 20
    assert not list(prefix.parent.rglob("*.tmp"))


def test_sharding_refuses_more_shards_than_articles(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("One sentence. Two sentences.\nAnother article here.\n")
    with pytest.raises(InputError, match="cannot fill 3 training shards"):
        TextSharding.Sharding([str(src)], str(tmp_path / "s" / "x"), 3, 1, 0.0,
                              segmenter=TextSharding.NLTKSegmenter(use_downloaded=False)).run()
    assert not list((tmp_path / "s").rglob("*.txt"))


# --- download against a local HTTP server --------------------------------------------------------------

class _Server:
    """A tiny listing + file server with HTTP Range support; records the Range headers it saw."""

    def __init__(self, files):
        self.files = files
        self.ranges = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                if self.path.endswith("/"):
                    body = "".join(f'<a href="{n}">{n}</a><br>\n' for n in outer.files).encode()
                    body = b"<html><body><a href=\"../\">Parent</a>\n" + body + b"</body></html>"
                elif name in outer.files:
                    body = outer.files[name]
                else:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.ranges.append((name, rng))
                if rng:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    body = body[start:]
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/pubmed/baseline/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _gz(text):
    return gzip.compress(text.encode(), mtime=0)


def test_download_resumes_and_verifies_md5(tmp_path):
    good = _gz("<MedlineCitationSet>" + "x" * 5000 + "</MedlineCitationSet>")
    other = _gz("<MedlineCitationSet>second</MedlineCitationSet>")
    files = {
        "pubmed25n0001.xml.gz": good,
        "pubmed25n0001.xml.gz.md5": f"MD5(pubmed25n0001.xml.gz)= {hashlib.md5(good).hexdigest()}\n".encode(),
        "pubmed25n0002.xml.gz": other,
        "pubmed25n0002.xml.gz.md5": f"MD5(pubmed25n0002.xml.gz)= {hashlib.md5(other).hexdigest()}\n".encode(),
        "README.txt": b"not a data file",
    }
    save = tmp_path / "download"
    target = save / "pubmed" / "baseline"
    target.mkdir(parents=True)
    half = len(good) // 2
    (target / "pubmed25n0001.xml.gz.part").write_bytes(good[:half])  # an interrupted earlier run
    with _Server(files) as server:
        got = PubMedDownloader.PubMedDownloader("baseline", str(save), base_url=server.url).download()
        assert [pathlib.Path(p).name for p in got] == ["pubmed25n0001.xml.gz", "pubmed25n0002.xml.gz"]
        assert (target / "pubmed25n0001.xml.gz").read_bytes() == good
        assert (target / "pubmed25n0002.xml.gz").read_bytes() == other
        assert ("pubmed25n0001.xml.gz", f"bytes={half}-") in server.ranges
        assert ("pubmed25n0002.xml.gz", None) in server.ranges
        assert "README.txt" not in [name for name, _ in server.ranges]
        assert not list(target.glob("*.part"))
        # A second run finds both files complete and fetches only the checksums.
        server.ranges.clear()
        PubMedDownloader.PubMedDownloader("baseline", str(save), base_url=server.url).download()
        assert sorted(name for name, _ in server.ranges if name) == ["pubmed25n0001.xml.gz.md5", "pubmed25n0002.xml.gz.md5"]


def test_download_bad_checksum_fails_and_keeps_nothing(tmp_path):
    data = _gz("<MedlineCitationSet>bad</MedlineCitationSet>")
    ok = _gz("<MedlineCitationSet>ok</MedlineCitationSet>")
    files = {
        "pubmed25n0003.xml.gz": data,
        "pubmed25n0003.xml.gz.md5": b"MD5(pubmed25n0003.xml.gz)= 0123456789abcdef0123456789abcdef\n",
        "pubmed25n0004.xml.gz": ok,
        "pubmed25n0004.xml.gz.md5": f"{hashlib.md5(ok).hexdigest()}  pubmed25n0004.xml.gz\n".encode(),
    }
    save = tmp_path / "download"
    with _Server(files) as server:
        with pytest.raises(InputError, match=r"pubmed25n0003\.xml\.gz: md5 mismatch: expected 0123456789abcdef"):
            PubMedDownloader.PubMedDownloader("baseline", str(save), base_url=server.url).download()
        # fetched twice (the second time from scratch) before giving up
        assert [r for r in server.ranges if r[0] == "pubmed25n0003.xml.gz"] == [("pubmed25n0003.xml.gz", None)] * 2
    target = save / "pubmed" / "baseline"
    assert sorted(p.name for p in target.iterdir()) == ["pubmed25n0004.xml.gz"]


def test_download_from_local_folder(tmp_path, medline):
    save = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, str(REPO / "data" / "bertPrep.py"), "--action", "download", "--dataset", "pubmed_baseline",
         "--local_dir", str(medline.parent)],
        env={"BERT_PREP_WORKING_DIR": str(save), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    copied = save / "download" / "pubmed" / "baseline" / "medline16n0902.xml.gz"
    assert copied.read_bytes() == medline.read_bytes()
    proc = subprocess.run(
        [sys.executable, str(REPO / "data" / "bertPrep.py"), "--action", "download", "--dataset", "pubmed_baseline",
         "--local_dir", str(tmp_path / "nowhere")],
        env={"BERT_PREP_WORKING_DIR": str(save), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "nowhere" in proc.stderr
