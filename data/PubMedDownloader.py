"""Download the PubMed baseline (or daily updates) from NCBI, resumably and checksum-verified.

The public listing (https://ftp.ncbi.nlm.nih.gov/pubmed/baseline/, an HTML index of the FTP
folder) names ``pubmedYYnNNNN.xml.gz`` files and their ``.md5`` companions. Each file is fetched
into ``<name>.part`` with an HTTP Range request that continues a previous partial download, checked
against its md5, then renamed into place. Files already present with a matching md5 are skipped.

Without network access, point ``local_dir`` (or the environment variable PUBMED_LOCAL_DIR) at a
folder of ``*.xml.gz`` files: they are copied (and checked against any ``.md5`` beside them).
The listing's address can be overridden with PUBMED_BASE_URL (e.g. a mirror).
"""
import hashlib
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert.errors import InputError  # noqa: E402

PUBMED_URLS = {
    "baseline": "https://ftp.ncbi.nlm.nih.gov/pubmed/baseline/",
    "daily_update": "https://ftp.ncbi.nlm.nih.gov/pubmed/updatefiles/",
}

_HREF = re.compile(r"""href\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_MD5 = re.compile(r"\b([0-9a-fA-F]{32})\b")
_CHUNK = 1 << 20


def parse_listing(html):
    """HTML (or plain) directory listing -> (sorted *.xml.gz names, set of *.md5 names)."""
    names = set()
    for href in _HREF.findall(html):
        name = urllib.parse.unquote(href.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
        if name:
            names.add(name)
    if not names:  # a plain FTP-style listing: last field of each line
        names = {line.split()[-1] for line in html.splitlines() if line.split()}
    gz = sorted(n for n in names if n.endswith(".xml.gz"))
    md5 = {n for n in names if n.endswith(".xml.gz.md5")}
    return gz, md5


def parse_md5(text, source=None):
    """Return the 32-hex-digit checksum in an .md5 file ('MD5(x.xml.gz)= <hex>' or '<hex>  x')."""
    match = _MD5.search(text.split("=")[-1]) or _MD5.search(text)
    if not match:
        raise InputError("no md5 checksum found", path=source)
    return match.group(1).lower()


def file_md5(path):
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_text(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode("utf-8", errors="replace")


def download_file(url, dest, expected_md5=None, timeout=60, retries=3):
    """Download ``url`` to ``dest`` through ``dest + '.part'``, resuming a partial file.

    Sends ``Range: bytes=<size>-`` when a partial file exists; a 206 reply is appended, a 200
    reply restarts from zero. The finished file is checked against ``expected_md5`` (if given); a
    mismatch discards the partial file and downloads once more from scratch before failing.
    Returns ``dest``. Raises InputError on repeated network failure or checksum mismatch.
    """
    part = dest + ".part"
    fresh_attempt_done = False
    attempt = 0
    while True:
        attempt += 1
        offset = os.path.getsize(part) if os.path.exists(part) else 0
        request = urllib.request.Request(url)
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                mode = "ab" if offset and response.status == 206 else "wb"
                with open(part, mode) as out:
                    shutil.copyfileobj(response, out, _CHUNK)
        except urllib.error.HTTPError as exc:
            if exc.code != 416:  # 416: nothing left to fetch, the partial file is complete
                if attempt >= retries:
                    raise InputError(f"download failed: HTTP {exc.code}", path=url) from None
                time.sleep(min(2 ** attempt, 30) * 0.1)
                continue
        except (urllib.error.URLError, OSError) as exc:
            if attempt >= retries:
                raise InputError(f"download failed: {exc}", path=url) from None
            time.sleep(min(2 ** attempt, 30) * 0.1)
            continue
        if expected_md5 is not None:
            actual = file_md5(part)
            if actual != expected_md5:
                os.unlink(part)
                if not fresh_attempt_done:
                    fresh_attempt_done = True
                    continue
                raise InputError(f"md5 mismatch: expected {expected_md5}, got {actual}", path=url)
        os.replace(part, dest)
        return dest


class PubMedDownloader:
    """Fetch one PubMed subset into ``<save_path>/pubmed/<subset>/``.

    subset: 'baseline' or 'daily_update'. base_url overrides the listing address (also env
    PUBMED_BASE_URL); local_dir (also env PUBMED_LOCAL_DIR) copies *.xml.gz from a folder instead.
    ``download()`` returns the sorted list of files now present; it raises InputError listing
    every file that failed (the others are kept).
    """

    def __init__(self, subset, save_path, base_url=None, local_dir=None, timeout=60, retries=3):
        if subset not in PUBMED_URLS:
            raise InputError(f"unsupported PubMed subset {subset!r}; choose one of {sorted(PUBMED_URLS)}")
        self.subset = subset
        self.save_path = os.path.join(str(save_path), "pubmed", subset)
        self.base_url = base_url or os.environ.get("PUBMED_BASE_URL") or PUBMED_URLS[subset]
        if not self.base_url.endswith("/"):
            self.base_url += "/"
        self.local_dir = local_dir or os.environ.get("PUBMED_LOCAL_DIR") or None
        self.timeout = timeout
        self.retries = retries

    def download(self):
        os.makedirs(self.save_path, exist_ok=True)
        if self.local_dir:
            return self._copy_local()
        listing_url = self.base_url
        try:
            html = _fetch_text(listing_url, self.timeout)
        except (urllib.error.URLError, OSError) as exc:
            raise InputError(f"cannot read the PubMed listing ({exc}); set PUBMED_LOCAL_DIR to use a local "
                             f"folder of *.xml.gz instead", path=listing_url) from None
        names, md5_names = parse_listing(html)
        if not names:
            raise InputError("the listing names no *.xml.gz files", path=listing_url)
        failures = []
        for name in names:
            url = urllib.parse.urljoin(self.base_url, name)
            dest = os.path.join(self.save_path, name)
            try:
                expected = None
                if name + ".md5" in md5_names:
                    expected = parse_md5(_fetch_text(url + ".md5", self.timeout), source=url + ".md5")
                if os.path.exists(dest) and (expected is None or file_md5(dest) == expected):
                    print(f"have {name}")
                    continue
                print(f"downloading {url}")
                download_file(url, dest, expected, timeout=self.timeout, retries=self.retries)
            except (InputError, urllib.error.URLError, OSError) as exc:
                failures.append(str(exc))
        if failures:
            raise InputError(f"{len(failures)} of {len(names)} files failed:\n  " + "\n  ".join(failures),
                             path=listing_url)
        return sorted(os.path.join(self.save_path, n) for n in names)

    def _copy_local(self):
        if not os.path.isdir(self.local_dir):
            raise InputError("local PubMed folder not found", path=self.local_dir)
        names = sorted(n for n in os.listdir(self.local_dir) if n.endswith(".xml.gz"))
        if not names:
            raise InputError("no *.xml.gz files in the local PubMed folder", path=self.local_dir)
        for name in names:
            src = os.path.join(self.local_dir, name)
            dest = os.path.join(self.save_path, name)
            md5_file = src + ".md5"
            if os.path.isfile(md5_file):
                with open(md5_file, encoding="utf-8", errors="replace") as handle:
                    expected = parse_md5(handle.read(), source=md5_file)
                if file_md5(src) != expected:
                    raise InputError("md5 mismatch with its .md5 file", path=src)
            if os.path.exists(dest) and os.path.getsize(dest) == os.path.getsize(src):
                continue
            tmp = dest + ".part"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        print(f"copied {len(names)} files from {self.local_dir} to {self.save_path}")
        return [os.path.join(self.save_path, n) for n in names]
