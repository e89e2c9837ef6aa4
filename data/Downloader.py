"""Dispatch ``bertPrep.py --action download --dataset <name>`` to the right downloader.

Supported: pubmed_baseline, pubmed_daily_update (see PubMedDownloader) and
google_pretrained_weights (Google's BERT-base/large zips, or a local folder holding
``{cased,uncased}_L-12_H-768_A-12/`` via ``local_dir`` / env GOOGLE_PRETRAINED_WEIGHTS_DIR).
"""
import os
import shutil
import sys
import urllib.request
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert.errors import InputError  # noqa: E402
from PubMedDownloader import PubMedDownloader  # noqa: E402

GOOGLE_WEIGHTS = {
    "uncased_L-12_H-768_A-12": "https://storage.googleapis.com/bert_models/2018_10_18/uncased_L-12_H-768_A-12.zip",
    "cased_L-12_H-768_A-12": "https://storage.googleapis.com/bert_models/2018_10_18/cased_L-12_H-768_A-12.zip",
    "uncased_L-24_H-1024_A-16": "https://storage.googleapis.com/bert_models/2018_10_18/uncased_L-24_H-1024_A-16.zip",
    "cased_L-24_H-1024_A-16": "https://storage.googleapis.com/bert_models/2018_10_18/cased_L-24_H-1024_A-16.zip",
}


class GooglePretrainedWeightDownloader:
    """Fetch Google's BERT checkpoints into ``<save_path>/google_pretrained_weights/<model>/``."""

    def __init__(self, save_path, local_dir=None):
        self.save_path = os.path.join(str(save_path), "google_pretrained_weights")
        self.local_dir = local_dir or os.environ.get("GOOGLE_PRETRAINED_WEIGHTS_DIR") or None

    def download(self):
        os.makedirs(self.save_path, exist_ok=True)
        for model, url in GOOGLE_WEIGHTS.items():
            dest = os.path.join(self.save_path, model)
            if os.path.isfile(os.path.join(dest, "vocab.txt")):
                print(f"have {model}")
                continue
            if self.local_dir:
                src = os.path.join(self.local_dir, model)
                if os.path.isdir(src):
                    shutil.copytree(src, dest, dirs_exist_ok=True)
                continue
            archive = dest + ".zip"
            part = archive + ".part"
            try:
                print(f"downloading {url}")
                urllib.request.urlretrieve(url, part)
            except OSError as exc:
                raise InputError(f"download failed ({exc}); set GOOGLE_PRETRAINED_WEIGHTS_DIR to a local copy",
                                 path=url) from None
            os.replace(part, archive)
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(self.save_path)


class Downloader:
    """``Downloader(dataset_name, save_path, local_dir=None).download()``."""

    def __init__(self, dataset_name, save_path, local_dir=None, base_url=None):
        self.dataset_name = dataset_name
        self.save_path = str(save_path)
        self.local_dir = local_dir
        self.base_url = base_url

    def download(self):
        name = self.dataset_name
        if name == "pubmed_baseline":
            return PubMedDownloader("baseline", self.save_path, self.base_url, self.local_dir).download()
        if name == "pubmed_daily_update":
            return PubMedDownloader("daily_update", self.save_path, self.base_url, self.local_dir).download()
        if name == "google_pretrained_weights":
            return GooglePretrainedWeightDownloader(self.save_path, self.local_dir).download()
        raise InputError(f"unsupported dataset for download: {name!r} (this port prepares PubMed only)")
