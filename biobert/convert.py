"""Our checkpoints (or Google's/BioBERT's TF1 ones) as Hugging Face BERT folders: ``model.safetensors`` (the
encoder as ``bert.*`` in Hugging Face's [out, in] Linear layout, the pre-training heads as ``cls.*``, a fine-tuned
classifier as ``classifier.*``), ``config.json``, ``vocab.txt`` and the run's ``label_map.json``.

The command is the entry point convert.py at the repository root; ``python biobert/convert.py ...`` runs it.
"""
import json
import os
import shutil
import sys

if __name__ == "__main__":    # run as a file: this folder is no place to import the package from
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))), "convert.py"), *sys.argv[1:]])

from biobert.checkpoints import TensorSource, hf_to_google_name, resolve_tf_checkpoint  # noqa: E402
from biobert.config import BertConfig  # noqa: E402
from biobert.errors import InputError  # noqa: E402
from biobert.fileio import atomic_write_text  # noqa: E402

_LAYER_PARTS = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense", "attention.output.LayerNorm", "output.LayerNorm"]


def hf_names(config):
    """Every Hugging Face parameter name of a BERT of ``config`` with its pre-training heads."""
    names = [f"bert.embeddings.{n}.weight" for n in ("word_embeddings", "position_embeddings",
                                                     "token_type_embeddings")]
    names += ["bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.bias"]
    for i in range(config.num_hidden_layers):
        names += [f"bert.encoder.layer.{i}.{part}.{kind}" for part in _LAYER_PARTS for kind in ("weight", "bias")]
    names += ["bert.pooler.dense.weight", "bert.pooler.dense.bias",
              "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
              "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
              "cls.predictions.bias", "cls.seq_relationship.weight", "cls.seq_relationship.bias"]
    return names


def convert(checkpoint, output_dir, bert_config_file=None, vocab_file=None, log=print):
    """Write the Hugging Face folder ``output_dir`` from ``checkpoint``; returns {Hugging Face name: array}."""
    import numpy as np
    from safetensors.numpy import save_file

    prefix = resolve_tf_checkpoint(os.fspath(checkpoint))
    if prefix is None:
        raise InputError("checkpoint not found (expected a prefix such as OUT/model.ckpt-N or a folder with a "
                         "'checkpoint' file)", path=checkpoint)
    folder = os.path.dirname(prefix)
    config_path = bert_config_file or os.path.join(folder, "bert_config.json")
    vocab_path = vocab_file or os.path.join(folder, "vocab.txt")
    config = BertConfig.from_json_file(config_path)
    if not os.path.isfile(vocab_path):
        raise InputError("vocabulary not found (pass --vocab_file)", path=vocab_path)
    source = TensorSource(prefix)
    state, missing = {}, []
    for key in hf_names(config):
        name, transpose = hf_to_google_name(key)
        if name not in source.shapes:
            if name.startswith("bert/"):
                missing.append(name)
            continue
        value = np.asarray(source.get(name))
        state[key] = np.ascontiguousarray(value.T if transpose else value)
    if missing:
        raise InputError(f"not a BERT checkpoint of this config: {len(missing)} encoder variable(s) missing, "
                         f"e.g. {missing[0]}", path=prefix)
    if state["bert.embeddings.word_embeddings.weight"].shape != (config.vocab_size, config.hidden_size):
        raise InputError(f"word embeddings {list(state['bert.embeddings.word_embeddings.weight'].shape)} do not "
                         f"fit the config's vocab_size {config.vocab_size} x hidden_size {config.hidden_size}",
                         path=config_path)
    hf_config = dict(config.to_dict(), model_type="bert", architectures=["BertModel"])
    if "output_weights" in source.shapes:                        # a fine-tuned classifier (run_ner.py, run_re.py)
        state["classifier.weight"] = np.asarray(source.get("output_weights"))
        state["classifier.bias"] = np.asarray(source.get("output_bias"))
        hf_config["num_labels"] = int(state["classifier.weight"].shape[0])
    elif "cls.seq_relationship.weight" in state:
        hf_config["architectures"] = ["BertForPreTraining"]
    os.makedirs(output_dir, exist_ok=True)
    tmp = os.path.join(output_dir, ".tmp-model.safetensors")
    save_file(state, tmp, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(output_dir, "model.safetensors"))
    atomic_write_text(os.path.join(output_dir, "config.json"), json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
    for src, dst in ((vocab_path, "vocab.txt"), (os.path.join(folder, "label_map.json"), "label_map.json")):
        if os.path.isfile(src) and os.path.abspath(src) != os.path.abspath(os.path.join(output_dir, dst)):
            shutil.copyfile(src, os.path.join(output_dir, dst + ".tmp"))
            os.replace(os.path.join(output_dir, dst + ".tmp"), os.path.join(output_dir, dst))
    log(f"{output_dir}: model.safetensors ({len(state)} tensors from {prefix}), config.json, vocab.txt")
    return state
