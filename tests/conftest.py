"""Shared test fixtures: where the real corpora live (../shared/data beside the repository)."""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("BIOBERT_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The suite runs on two pytest-xdist workers (pytest.ini). The modules below hold the longest tests (real
# processes: Slurm, mpirun, interrupted and resumed runs); handing them out first lets both workers finish together.
LONGEST_FIRST = ("test_multiworker", "test_run_re", "test_replicas", "test_run_pretraining", "test_predict_text",
                 "test_first_hour", "test_run_ner", "test_faults", "test_distribution", "test_help", "test_training")


def pytest_collection_modifyitems(config, items):
    """Keep the tests that share a module-scoped fixture (a trained model, a Slurm cluster) on one worker, so the
    fixture is built once, and order the work longest first."""
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        shared = defs and any(d and d[-1].scope == "module" for d in defs.name2fixturedefs.values())
        if shared and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))

    def rank(item):
        name = item.module.__name__
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)          # stable: within a module, the written order


@pytest.fixture(autouse=True)
def float32_after_each_test():
    """distribution.setup() sets process-wide precision (Keras policy, matmul dtype); undo it after a test."""
    yield
    import keras

    from biobert import modeling

    keras.mixed_precision.set_dtype_policy("float32")
    modeling.set_matmul_dtype(None)


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


def first_sentences(path, n):
    """The first ``n`` blank-line-separated sentences of a CoNLL file, as text."""
    blocks = open(path, encoding="utf-8").read().split("\n\n")
    return "\n\n".join(blocks[:n]).strip("\n") + "\n\n"


@pytest.fixture(scope="session")
def ner_slice(tmp_path_factory, shared_data, cased_vocab):
    """A slice of BC5CDR chem (160/40/60 sentences) and a tiny BERT config over the cased vocabulary."""
    from helpers import tiny_config

    from biobert import ner

    root = tmp_path_factory.mktemp("bc5cdr")
    data = root / "chem"
    data.mkdir()
    src = shared_data / "BC5CDR" / "chem"
    for name, n in (("train.tsv", 160), ("devel.tsv", 40), ("test.tsv", 60)):
        (data / name).write_text(first_sentences(src / name, n), encoding="utf-8")
    config = root / "bert_config.json"
    tiny = tiny_config(vocab_size=sum(1 for _ in open(cased_vocab, encoding="utf-8")), hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
    tiny.to_json_file(config)
    pieces = sum(len(ner.read_ner_file(data / name)) for name in ("train.tsv", "devel.tsv"))
    return {"data": data, "config": config, "vocab": cased_vocab, "pieces": pieces, "steps_per_epoch": pieces // 16}


@pytest.fixture(scope="session")
def records(shared_data, uncased_vocab, tmp_path_factory):
    """Sentence-per-line documents of the PubMed sample as phase-1 (64/10) and phase-2 (128/20) records: training
    from the first 120 articles, test (held out) from the next 60."""
    import sys

    from helpers import run_python, tiny_config

    sys.path.insert(0, str(REPO / "data"))
    import TextSharding

    root = tmp_path_factory.mktemp("pretrain")
    lines = (shared_data / "pubmed" / "PubMedAbstract_1MB.txt").read_text(encoding="utf-8").splitlines()
    segmenter = TextSharding.NLTKSegmenter(train_text="\n".join(lines), use_downloaded=False)
    articles = [line for line in lines if line.strip()]
    texts = {}
    for split, chosen in (("training", articles[:120]), ("test", articles[120:180])):   # test: text never trained on
        texts[split] = root / f"sentences_{split}.txt"
        texts[split].write_text("".join("\n".join(segmenter.segment_string(a)) + "\n\n" for a in chosen),
                                encoding="utf-8")
    out = {}
    for phase, seq, pred in ((1, 64, 10), (2, 128, 20)):
        for split, dupe in (("training", 3), ("test", 1)):
            folder = root / f"phase{phase}" / split
            folder.mkdir(parents=True)
            run_python([REPO / "create_pretraining_data.py", f"--input_file={texts[split]}",
                        f"--output_file={folder / 'part-0.tfrecord'}", f"--vocab_file={uncased_vocab}",
                        "--do_lower_case", f"--max_seq_length={seq}", f"--max_predictions_per_seq={pred}",
                        f"--dupe_factor={dupe}", f"--random_seed={12345 + (split == 'test')}"])
        out[phase] = {"train": root / f"phase{phase}" / "training", "test": root / f"phase{phase}" / "test",
                      "seq": seq, "pred": pred}
    config = root / "bert_config.json"
    tiny_config(vocab_size=30522, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                max_position_embeddings=128).to_json_file(config)
    out["config"] = config
    return out


@pytest.fixture(scope="session")
def uncased(uncased_vocab):
    """BERT's uncased tokenizer on the real bert-base-uncased vocabulary."""
    from biobert.tokenization import FullTokenizer

    return FullTokenizer(uncased_vocab, do_lower_case=True)


@pytest.fixture(scope="session")
def cased(cased_vocab):
    """BERT's cased tokenizer on the real bert-base-cased vocabulary."""
    from biobert.tokenization import FullTokenizer

    return FullTokenizer(cased_vocab, do_lower_case=False)
