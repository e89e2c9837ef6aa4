"""Write a run_re.py checkpoint's weights under Hugging Face BertForSequenceClassification names, for the peer.

    python benchmarks/ckpt_to_hf.py --model_dir=$M --checkpoint=OUT/model.ckpt-1536 --output=/tmp/ours.npz
    /tmp/peer-venv/bin/python benchmarks/peer_predict.py --model_dir=$M --weights=/tmp/ours.npz \
        --data_dir=/tmp/chemprot_formatted --compare=OUT/test_results.tsv

The .npz holds one array per parameter of the --model_dir's model.safetensors (names as the peer's model has
them, Linear weights back in [out, in]) read from --checkpoint, plus ``classifier.weight`` / ``classifier.bias``
from the checkpoint's ``output_weights`` / ``output_bias``. With it the peer's own code predicts from our
trained weights: if its test probabilities equal run_re.py's, a gap in test F1 comes from training, not from
our prediction path (tokenizer, padding, batching, softmax).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from biobert.checkpoints import hf_bare_name, hf_to_google_name  # noqa: E402
from biobert.fileio import atomic_open  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="The Hugging Face folder run_re.py started from.")
    parser.add_argument("--checkpoint", required=True, help="A run_re.py checkpoint prefix (OUT/model.ckpt-N).")
    parser.add_argument("--output", required=True, help="The .npz to write.")
    args = parser.parse_args(argv)
    reader = tf.train.load_checkpoint(args.checkpoint)
    state = {}
    for key, reference in load_file(os.path.join(args.model_dir, "model.safetensors")).items():
        mapped = hf_to_google_name(key)
        if mapped is None or not mapped[0].startswith("bert/"):
            continue                    # buffers such as embeddings.position_ids; pre-training heads (cls.*)
        name, transpose = mapped
        value = reader.get_tensor(name)
        value = np.ascontiguousarray(value.T if transpose else value)
        if value.shape != reference.shape:
            sys.exit(f"error: {args.checkpoint}: {name} has shape {value.shape}, {key} in {args.model_dir} "
                     f"{reference.shape}: not a fine-tuning of this model")
        state["bert." + hf_bare_name(key)] = value       # the peer's model's names
    state["classifier.weight"] = reader.get_tensor("output_weights")
    state["classifier.bias"] = reader.get_tensor("output_bias")
    with atomic_open(args.output, "wb") as handle:
        np.savez(handle, **state)
    print(f"{args.output}: {len(state)} tensors from {args.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
