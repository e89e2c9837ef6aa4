"""benchmarks/normal_init_run_re.py: the classifier drawn from a plain normal (HF's) instead of a truncated one."""
import keras
import numpy as np
import pytest
from helpers import load_script, tiny_config

from biobert import modeling

normal_init = load_script("benchmarks/normal_init_run_re.py", "normal_init_run_re")


def classifier_weights(hidden=1024, labels=6):
    keras.utils.set_random_seed(3)
    head = modeling.ClassifierHead(labels, tiny_config(hidden_size=hidden, num_attention_heads=4))
    head.build((None, hidden))
    return head.output_weights.numpy(), head.output_bias.numpy()


def test_run_re_draws_a_truncated_normal_the_script_a_plain_one(monkeypatch):
    truncated, _ = classifier_weights()
    assert np.abs(truncated).max() <= 0.04                         # Google's: nothing beyond two sd
    assert 0.0170 < truncated.std() < 0.0182                       # 0.02 x 0.8796 for a cut at two sd
    # restored after the test: monkeypatch keeps the attribute as it was
    monkeypatch.setattr(modeling.ClassifierHead, "output_initializer", modeling.ClassifierHead.output_initializer)
    normal_init.use_normal_init()
    plain, bias = classifier_weights()
    assert (np.abs(plain) > 0.04).mean() == pytest.approx(0.0455, abs=0.008)   # P(|z| > 2) of 6144 draws
    assert plain.std() == pytest.approx(0.02, rel=0.03)
    np.testing.assert_array_equal(bias, np.zeros(6, np.float32))
