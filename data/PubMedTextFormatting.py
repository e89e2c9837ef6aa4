"""MEDLINE/PubMed XML (``*.xml`` or ``*.xml.gz``) -> one article per line (title + abstract).

Streaming: ``xml.etree.ElementTree.iterparse`` and every top-level record is cleared once read,
so memory stays bounded whatever the file size. Inline markup (<i>, <sup>, ...) is reduced to its
text, whitespace is normalised, and articles without an abstract are skipped and counted.
"""
import glob
import gzip
import os
import re
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert.errors import InputError  # noqa: E402
from biobert.fileio import atomic_open  # noqa: E402
from biobert.progress import Progress  # noqa: E402

# Escaped HTML-like markup that some MEDLINE records carry as text (e.g. "&lt;i&gt;").
_ESCAPED_MARKUP = re.compile(r"</?(?:i|b|u|em|strong|sup|sub|sc|br|p|mml:[a-z]+)(?:\s[^<>]*)?/?>", re.IGNORECASE)


def _text(element):
    """All text inside ``element`` (markup removed), whitespace-normalised; '' for None."""
    if element is None:
        return ""
    text = "".join(element.itertext())
    text = _ESCAPED_MARKUP.sub(" ", text)
    return " ".join(text.split())


def _open(path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def iter_medline_articles(path):
    """Yield (pmid, title, abstract) for every MedlineCitation in one MEDLINE XML file.

    ``abstract`` joins the AbstractText parts of Article/Abstract with spaces ('' if none).
    Raises InputError naming the file and line for malformed XML or an unreadable gzip file.
    """
    try:
        with _open(path) as handle:
            depth = 0
            root = None
            for event, elem in ET.iterparse(handle, events=("start", "end")):
                if event == "start":
                    if root is None:
                        root = elem
                    depth += 1
                    continue
                depth -= 1
                if elem.tag == "MedlineCitation":
                    article = elem.find("Article")
                    title = _text(article.find("ArticleTitle")) if article is not None else ""
                    parts = article.findall("Abstract/AbstractText") if article is not None else []
                    abstract = " ".join(t for t in (_text(p) for p in parts) if t)
                    yield _text(elem.find("PMID")), title, abstract
                if depth == 1:
                    root.clear()  # drop the finished top-level record
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise InputError(f"malformed XML ({exc.msg if hasattr(exc, 'msg') else exc})", path=path, line=line) from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read ({exc})", path=path) from None


class PubMedTextFormatting:
    """Merge every MEDLINE XML file under ``pubmed_path`` into ``output_filename``.

    One line per article with an abstract: ``<title> <abstract>``. ``merge()`` returns counts:
    files, citations, written, skipped_no_abstract.
    """

    def __init__(self, pubmed_path, output_filename, recursive=False):
        self.pubmed_path = str(pubmed_path)
        self.output_filename = str(output_filename)
        self.recursive = recursive

    def input_files(self):
        """Sorted list of *.xml / *.xml.gz files under pubmed_path (or pubmed_path itself if a file)."""
        if os.path.isfile(self.pubmed_path):
            return [self.pubmed_path]
        if not os.path.isdir(self.pubmed_path):
            raise InputError("PubMed folder not found", path=self.pubmed_path)
        pattern = os.path.join(self.pubmed_path, "**" if self.recursive else "", "*.xml*")
        files = sorted(f for f in glob.glob(pattern, recursive=self.recursive)
                       if f.endswith((".xml", ".xml.gz")))
        if not files:
            raise InputError("no *.xml or *.xml.gz files", path=self.pubmed_path)
        return files

    def merge(self):
        counts = {"files": 0, "citations": 0, "written": 0, "skipped_no_abstract": 0}
        files = self.input_files()
        progress = Progress("PubMed text formatting", unit="citations")
        with atomic_open(self.output_filename, "w") as out:
            for path in files:
                counts["files"] += 1
                for _pmid, title, abstract in iter_medline_articles(path):
                    counts["citations"] += 1
                    if progress.update(counts["citations"]):
                        print(f"  (file {counts['files']} of {len(files)}: {os.path.basename(path)})", flush=True)
                    if not abstract:
                        counts["skipped_no_abstract"] += 1
                        continue
                    out.write((f"{title} {abstract}" if title else abstract) + "\n")
                    counts["written"] += 1
        print(f"PubMed text formatting: {counts['files']} files, {counts['citations']} citations, "
              f"{counts['written']} articles written, {counts['skipped_no_abstract']} skipped (no abstract)")
        return counts
