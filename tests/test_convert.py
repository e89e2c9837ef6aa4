"""biobert/convert.py: our checkpoint -> Hugging Face folder -> loaded back by name, numerically equal; the
convert.py command."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, tiny_config

from biobert import checkpoints, convert, modeling
from biobert.errors import InputError


def saved_run(tmp_path, model, config):
    """A run's output folder as run_re.py / run_pretraining.py leave it: checkpoint, bert_config.json, label map."""
    run = tmp_path / "run"
    names = modeling.variable_map(model)
    rng = np.random.default_rng(0)
    for var in names.values():          # random values everywhere, so a transposed or swapped tensor shows
        var.assign(rng.normal(size=var.shape).astype(np.float32))
    checkpoints.save_checkpoint(str(run), 7, names)
    config.to_json_file(str(run / "bert_config.json"))
    (run / "vocab.txt").write_text("".join(f"tok{i}\n" for i in range(config.vocab_size)))
    return run, {name: var.numpy() for name, var in names.items()}


def test_classifier_round_trip(tmp_path):
    config = tiny_config()
    run, weights = saved_run(tmp_path, modeling.build(modeling.BertClassifier(config, 6, per_token=False)), config)
    (run / "label_map.json").write_text('{"B": 1}\n')
    hf = tmp_path / "hf"
    printed = []                                    # 5 embedding + 2 x 16 layer + 2 pooler + 2 classifier
    convert.convert(str(run), str(hf), log=printed.append)                  # the folder: its latest checkpoint
    assert printed == [f"{hf}: model.safetensors (41 tensors from {run / 'model.ckpt-7'}), config.json, vocab.txt"]
    assert sorted(p.name for p in hf.iterdir()) == ["config.json", "label_map.json", "model.safetensors", "vocab.txt"]
    back = checkpoints.TensorSource(str(hf))                       # as --init_checkpoint=HF_DIR reads it
    encoder = {n for n in weights if n.startswith("bert/")}
    assert back.names() == encoder
    for name in encoder:
        np.testing.assert_array_equal(back.get(name), weights[name], err_msg=name)
    from safetensors.numpy import load_file

    tensors = load_file(str(hf / "model.safetensors"))
    np.testing.assert_array_equal(tensors["classifier.weight"], weights["output_weights"])
    np.testing.assert_array_equal(tensors["classifier.bias"], weights["output_bias"])
    np.testing.assert_array_equal(tensors["bert.encoder.layer.1.intermediate.dense.weight"],
                                  weights["bert/encoder/layer_1/intermediate/dense/kernel"].T)   # HF's [out, in]
    hf_config = json.loads((hf / "config.json").read_text())
    assert (hf_config["model_type"], hf_config["num_labels"], hf_config["hidden_size"]) == ("bert", 6, 32)
    # a fresh model initialised from the folder computes what the checkpoint's model computes (encoder only)
    fresh = modeling.build(modeling.BertClassifier(config, 6, per_token=True))
    checkpoints.load_weights(modeling.variable_map(fresh), str(hf), log=lambda text: None)
    for name in encoder:
        np.testing.assert_array_equal(modeling.variable_map(fresh)[name].numpy(), weights[name], err_msg=name)


def test_pretraining_heads_round_trip(tmp_path):
    config = tiny_config()
    run, weights = saved_run(tmp_path, modeling.build(modeling.BertPretrainer(config)), config)
    state = convert.convert(str(run / "model.ckpt-7"), str(tmp_path / "hf"), log=lambda text: None)
    assert "classifier.weight" not in state
    back = checkpoints.TensorSource(str(tmp_path / "hf"))
    assert back.names() == set(weights)
    for name in weights:
        np.testing.assert_array_equal(back.get(name), weights[name], err_msg=name)
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == ["BertForPreTraining"]


def test_wrong_config_or_missing_vocabulary_stop_before_writing(tmp_path):
    config = tiny_config()
    run, _ = saved_run(tmp_path, modeling.build(modeling.BertClassifier(config, 3, per_token=True)), config)
    (run / "vocab.txt").unlink()
    with pytest.raises(InputError, match="vocabulary not found"):
        convert.convert(str(run), str(tmp_path / "hf"))
    (tmp_path / "deeper.json").write_text(json.dumps(dict(config.to_dict(), num_hidden_layers=3)))
    with pytest.raises(InputError, match="layer_2"):
        convert.convert(str(run), str(tmp_path / "hf"), bert_config_file=str(tmp_path / "deeper.json"),
                        vocab_file=str(tmp_path / "deeper.json"))
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize("script", ["convert.py", "biobert/convert.py"])
def test_command_writes_the_folder_or_stops_with_one_error_line(tmp_path, script):
    """The entry point, and `python biobert/convert.py ...` (run from another folder) which runs it."""
    config = tiny_config()
    run, weights = saved_run(tmp_path, modeling.build(modeling.BertClassifier(config, 3, per_token=True)), config)

    def command(*args):
        return subprocess.run([sys.executable, os.path.join(REPO, script), *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    proc = command(f"--checkpoint={run}", "--output_dir=hf")
    assert proc.returncode == 0, proc.stderr
    assert f"hf: model.safetensors (41 tensors from {run / 'model.ckpt-7'})" in proc.stdout
    back = checkpoints.TensorSource(str(tmp_path / "hf"))
    np.testing.assert_array_equal(back.get("bert/pooler/dense/kernel"), weights["bert/pooler/dense/kernel"])
    proc = command(f"--checkpoint={tmp_path / 'missing'}", "--output_dir=hf2")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith(f"error: {tmp_path / 'missing'}: checkpoint not found")
    assert not (tmp_path / "hf2").exists()
