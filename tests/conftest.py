"""Shared test fixtures: where the real corpora live (../shared/data beside the repository)."""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("BIOBERT_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder not found: {SHARED_DATA} (set BIOBERT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def uncased_vocab(shared_data):
    return shared_data / "vocab" / "bert-base-uncased-vocab.txt"


@pytest.fixture(scope="session")
def cased_vocab(shared_data):
    return shared_data / "vocab" / "bert-base-cased-vocab.txt"
