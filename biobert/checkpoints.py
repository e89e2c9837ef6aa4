"""Checkpoints: load weights by Google's variable names; save and resume training state.

Three sources load into a model (weights only, for ``--init_checkpoint``):
  (a) TF1 name-based checkpoints as Google, NGC and BioBERT ship them (``bert_model.ckpt``, ``model.ckpt-N``);
  (b) a Hugging Face folder (or file) with ``model.safetensors`` (+ ``config.json``, ``vocab.txt``);
  (c) this project's own checkpoints, which are name-based bundles with the same Google names.
Our checkpoints also hold the optimizer slots (``<name>/adam_m``, ``<name>/adam_v``), the global step and the
loss scale, so a run in output_dir resumes exactly; and the original TF1 code can read their weights.
"""
import glob
import json
import os
import re

import numpy as np
import tensorflow as tf

from biobert.errors import InputError
from biobert.fileio import atomic_open, atomic_write_text

CHECKPOINT_PREFIX = "model.ckpt"


# ----------------------------------------------------------------------------------------------------------
# Finding what a path holds

def hf_folder(path):
    """The folder holding ``model.safetensors`` if ``path`` names one (or the file itself), else None."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.safetensors")):
        return path
    if os.path.isfile(path) and path.endswith(".safetensors"):
        return os.path.dirname(path) or "."
    return None


def checkpoint_folder(path):
    """The folder of a checkpoint path: the path itself if it is a folder, else the prefix's folder; None for none."""
    if not path:
        return None
    return path if os.path.isdir(path) else os.path.dirname(path) or "."


MODEL_INFO = "model_info.json"


def read_model_info(init_checkpoint):
    """model_info.json beside --init_checkpoint (written by a fine-tuning run), else {}."""
    folder = checkpoint_folder(init_checkpoint)
    path = os.path.join(folder, MODEL_INFO) if folder else None
    if not path or not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except ValueError as err:
        raise InputError(f"not a model info file ({err})", path=path) from None
    if not isinstance(info, dict):
        raise InputError("not a model info file (expected a JSON object)", path=path)
    return info


def save_model_files(output_dir, vocab_file, info):
    """What fine-tuning or predicting from ``output_dir`` alone needs besides the checkpoint and bert_config.json:
    the vocabulary (vocab.txt, copied from ``vocab_file`` unless it is that file) and model_info.json (casing,
    max_seq_length, and for a fine-tuned model its entity type), written atomically. Fine-tuning and pre-training
    runs both call it, so either output folder is a complete --init_checkpoint."""
    target = os.path.join(output_dir, "vocab.txt")
    if os.path.abspath(vocab_file) != os.path.abspath(target):
        with open(vocab_file, "rb") as src, atomic_open(target, "wb") as dst:
            dst.write(src.read())
    write_json(os.path.join(output_dir, MODEL_INFO), info)


def model_files(init_checkpoint):
    """The model files that come with ``init_checkpoint``: {"config": path or None, "vocab": path or None}.

    A Hugging Face folder: its config.json and vocab.txt. A TF checkpoint (prefix, or folder with a
    ``checkpoint`` file): bert_config.json and vocab.txt in its folder, as Google's and BioBERT's releases
    ship them and as this project saves bert_config.json beside every checkpoint it writes.
    """
    found = {"config": None, "vocab": None}
    if not init_checkpoint:
        return found
    folder = hf_folder(init_checkpoint)
    names = {"config": "config.json", "vocab": "vocab.txt"}
    if folder is None:
        folder = checkpoint_folder(init_checkpoint)
        names["config"] = "bert_config.json"
    for key, name in names.items():
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            found[key] = path
    return found


def resolve_tf_checkpoint(path):
    """A TF checkpoint prefix for ``path`` (a prefix, or a folder: the checkpoint a run there would resume
    from, ``latest_checkpoint``), else None."""
    if os.path.isdir(path):
        return latest_checkpoint(path)
    if os.path.isfile(path + ".index"):
        return path
    for suffix in (".index", ".meta"):
        if path.endswith(suffix) and os.path.isfile(path[: -len(suffix)] + ".index"):
            return path[: -len(suffix)]
    match = re.match(r"(.*)\.data-\d+-of-\d+$", path)
    if match and os.path.isfile(match.group(1) + ".index"):
        return match.group(1)
    return None


# ----------------------------------------------------------------------------------------------------------
# Reading tensors by Google name

_HF_LAYER_PARTS = [
    ("attention.self.query", "attention/self/query"), ("attention.self.key", "attention/self/key"),
    ("attention.self.value", "attention/self/value"), ("attention.output.dense", "attention/output/dense"),
    ("attention.output.LayerNorm", "attention/output/LayerNorm"), ("intermediate.dense", "intermediate/dense"),
    ("output.dense", "output/dense"), ("output.LayerNorm", "output/LayerNorm"),
]


def hf_bare_name(key):
    """A Hugging Face BERT parameter name without the model's ``bert.`` / ``model.`` prefix."""
    return re.sub(r"^(bert\.|model\.)", "", key)


def hf_to_google_name(key):
    """Map a Hugging Face BERT parameter name to (Google name, transpose?) or None if it has no counterpart."""
    key = hf_bare_name(key)
    key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    simple = {
        "embeddings.word_embeddings.weight": "bert/embeddings/word_embeddings",
        "embeddings.position_embeddings.weight": "bert/embeddings/position_embeddings",
        "embeddings.token_type_embeddings.weight": "bert/embeddings/token_type_embeddings",
        "embeddings.LayerNorm.gamma": "bert/embeddings/LayerNorm/gamma",
        "embeddings.LayerNorm.beta": "bert/embeddings/LayerNorm/beta",
        "pooler.dense.weight": "bert/pooler/dense/kernel",
        "pooler.dense.bias": "bert/pooler/dense/bias",
        "cls.predictions.transform.dense.weight": "cls/predictions/transform/dense/kernel",
        "cls.predictions.transform.dense.bias": "cls/predictions/transform/dense/bias",
        "cls.predictions.transform.LayerNorm.gamma": "cls/predictions/transform/LayerNorm/gamma",
        "cls.predictions.transform.LayerNorm.beta": "cls/predictions/transform/LayerNorm/beta",
        "cls.predictions.bias": "cls/predictions/output_bias",
        "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
        "cls.seq_relationship.bias": "cls/seq_relationship/output_bias",
    }
    if key in simple:
        name = simple[key]
        return name, name.endswith("/kernel")
    match = re.match(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)$", key)
    if not match:
        return None
    index, part, kind = match.groups()
    for hf_part, google_part in _HF_LAYER_PARTS:
        if part == hf_part:
            suffix = {"weight": "kernel", "bias": "bias", "gamma": "gamma", "beta": "beta"}[kind]
            return f"bert/encoder/layer_{index}/{google_part}/{suffix}", kind == "weight"
    return None


def read_hf_safetensors(folder):
    """{Google name: numpy array} from ``folder/model.safetensors`` (Linear weights transposed to [in, out])."""
    from safetensors.numpy import load_file

    path = os.path.join(folder, "model.safetensors")
    try:
        tensors = load_file(path)
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise InputError(f"cannot read safetensors file: {err}", path=path) from err
    out = {}
    for key, value in tensors.items():
        mapped = hf_to_google_name(key)
        if mapped is None:
            continue
        name, transpose = mapped
        out[name] = np.ascontiguousarray(value.T) if transpose else value
    if not any(name.startswith("bert/") for name in out):
        raise InputError("no BERT weights found (expected names like encoder.layer.0.attention.self.query.weight)",
                         path=path)
    return out


class TensorSource:
    """Uniform read access to the named tensors of a TF checkpoint or a Hugging Face folder."""

    def __init__(self, path):
        path = os.fspath(path)
        self.path = path
        self.kind = None
        folder = hf_folder(path)
        if folder is not None:
            self.kind = "safetensors"
            self._arrays = read_hf_safetensors(folder)
            self.shapes = {k: tuple(v.shape) for k, v in self._arrays.items()}
            return
        prefix = resolve_tf_checkpoint(path)
        if prefix is None:
            raise InputError("checkpoint not found (expected a TF checkpoint prefix such as bert_model.ckpt, a folder "
                             "with a 'checkpoint' file, or a folder with model.safetensors)", path=path)
        self.kind = "tf"
        self.path = prefix
        try:
            self._reader = tf.train.load_checkpoint(prefix)
        except (tf.errors.OpError, ValueError) as err:
            raise InputError(f"cannot read checkpoint: {err}", path=prefix) from err
        self.shapes = {k: tuple(v) for k, v in self._reader.get_variable_to_shape_map().items()}

    def names(self):
        return set(self.shapes)

    def get(self, name):
        if self.kind == "safetensors":
            return self._arrays[name]
        return self._reader.get_tensor(name)

    def step(self):
        """The global step the checkpoint was saved at (0 for one without: a Hugging Face folder, Google's)."""
        return int(self.get("global_step")) if "global_step" in self.shapes else 0


# ----------------------------------------------------------------------------------------------------------
# Loading weights into a model

def load_weights(variables, path, require_heads=False, log=print, step=None):
    """Assign checkpoint values to ``variables`` ({Google name: variable}) by name; ``step`` (a variable), if
    given, receives the step the checkpoint was saved at (TensorSource.step).

    Every encoder variable (``bert/...``) must be present with the same shape; task-head variables are loaded
    when present with a matching shape and otherwise keep their fresh initialisation (unless ``require_heads``).
    Raises InputError listing the missing and mismatched variables. Returns the set of names loaded.
    """
    source = TensorSource(path)
    missing, mismatched, loaded, fresh = [], [], set(), []
    for name, var in variables.items():
        required = require_heads or name.startswith("bert/")
        if name not in source.shapes:
            (missing if required else fresh).append(name)
            continue
        if tuple(source.shapes[name]) != tuple(var.shape):
            if required:
                mismatched.append(f"{name}: checkpoint {list(source.shapes[name])} vs model {list(var.shape)}")
            else:
                fresh.append(name)
            continue
        loaded.add(name)
    if missing or mismatched:
        lines = []
        if mismatched:
            lines.append(f"{len(mismatched)} variable(s) with a different shape (is --bert_config_file the "
                         f"checkpoint's config?):")
            lines += ["  " + m for m in mismatched[:20]] + (["  ..."] if len(mismatched) > 20 else [])
        if missing:
            lines.append(f"{len(missing)} variable(s) missing from the checkpoint:")
            lines += ["  " + m for m in missing[:20]] + (["  ..."] if len(missing) > 20 else [])
        raise InputError("checkpoint does not fit the model configuration\n" + "\n".join(lines), path=source.path)
    for name in loaded:
        value = source.get(name)
        var = variables[name]
        var.assign(np.asarray(value).astype(_dtype(var)))
    if step is not None:
        step.assign(source.step())
    log(f"loaded {len(loaded)} variables from {source.path} ({source.kind})"
        + (f"; {len(fresh)} head variable(s) newly initialised: {', '.join(sorted(fresh))}" if fresh else ""))
    return loaded


# ----------------------------------------------------------------------------------------------------------
# Our own checkpoints: name-based V2 bundles, written atomically, keeping the latest

def _write_state_file(directory, prefixes):
    lines = [f'model_checkpoint_path: "{os.path.basename(prefixes[-1])}"']
    lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in prefixes]
    atomic_write_text(os.path.join(directory, "checkpoint"), "\n".join(lines) + "\n")


def save_checkpoint(directory, step, named_tensors, keep=1):
    """Write ``named_tensors`` ({name: variable or array}) as ``directory/model.ckpt-<step>``; keep the newest ``keep``.

    The bundle is written under a temporary prefix, renamed into place, and only then does the ``checkpoint``
    state file point to it, so an interruption at any moment leaves the previous checkpoint usable.
    """
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, f"{CHECKPOINT_PREFIX}-{int(step)}")
    tmp = os.path.join(directory, f".tmp-{CHECKPOINT_PREFIX}-{int(step)}")
    names = sorted(named_tensors)
    tensors = [tf.convert_to_tensor(np.asarray(named_tensors[n])) for n in names]
    try:
        with tf.device("/cpu:0"):
            tf.raw_ops.SaveV2(prefix=tmp, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
    except (tf.errors.OpError, OSError) as err:
        # A full disk (or any failed write): drop the partial files; the previous checkpoint stays current.
        for produced in glob.glob(glob.escape(tmp) + ".*"):
            os.remove(produced)
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"cannot write the checkpoint for step {int(step)} ({detail}); the previous checkpoint "
                         "is intact: free disk space and run the same command to resume", path=directory) from None
    for produced in glob.glob(glob.escape(tmp) + ".*"):
        os.replace(produced, final + produced[len(tmp):])
    previous = list_checkpoints(directory)
    kept = [p for p in previous if p != final][-(keep - 1):] if keep > 1 else []
    _write_state_file(directory, kept + [final])
    for old in previous:
        if old not in kept and old != final:
            for path in glob.glob(glob.escape(old) + ".*"):
                os.remove(path)
    return final


def list_checkpoints(directory):
    """Our checkpoint prefixes in ``directory``, oldest first (by step)."""
    found = []
    for index in glob.glob(os.path.join(glob.escape(directory), f"{CHECKPOINT_PREFIX}-*.index")):
        match = re.search(r"-(\d+)\.index$", index)
        if match:
            found.append((int(match.group(1)), index[: -len(".index")]))
    return [p for _, p in sorted(found)]


def resume_candidates(directory):
    """The checkpoints a run in ``directory`` may resume from, best first: the one the ``checkpoint`` state file
    names, then every bundle on disk, newest step first. Without a usable state file (deleted, or naming a bundle
    that is gone) the bundles still count: a run that has them resumed, whatever the state file says."""
    if not os.path.isdir(directory):
        return []
    named = tf.train.latest_checkpoint(directory)
    candidates = [named] if named and os.path.isfile(named + ".index") else []
    return candidates + [p for p in reversed(list_checkpoints(directory)) if p not in candidates]


def latest_checkpoint(directory):
    """The checkpoint a run in ``directory`` resumes from (the first of ``resume_candidates``), or None."""
    candidates = resume_candidates(directory)
    return candidates[0] if candidates else None


def restore_state(prefix, named_variables, optional=()):
    """Assign every variable of ``named_variables`` from checkpoint ``prefix``; all must be present and fit,
    except the names in ``optional``, which are left as they are when absent. Returns the absent optional names."""
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    absent = [n for n in optional if n not in shapes]
    named_variables = {n: v for n, v in named_variables.items() if n not in absent}
    problems = [n for n in named_variables if n not in shapes]
    problems += [f"{n}: checkpoint {shapes[n]} vs run {list(v.shape)}" for n, v in named_variables.items()
                 if n in shapes and list(shapes[n]) != list(v.shape)]
    if problems:
        raise InputError("cannot resume: the checkpoint in output_dir was written by a different configuration "
                         "(use a new --output_dir, or the same flags and config as before):\n  "
                         + "\n  ".join(problems[:20]), path=prefix)
    for name, var in named_variables.items():
        var.assign(np.asarray(reader.get_tensor(name)).astype(_dtype(var)))
    return absent


def _dtype(var):
    """numpy dtype name of a keras or tf variable."""
    return getattr(var.dtype, "name", var.dtype)


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
