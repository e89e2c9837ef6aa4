r"""Convert a checkpoint of this project (or a Google/BioBERT TF1 one) to a Hugging Face BERT folder.

    python convert.py --checkpoint=OUT --output_dir=HF_DIR [--bert_config_file=...] [--vocab_file=...]

(``python biobert/convert.py ...`` runs this too.) --checkpoint is a checkpoint prefix (``OUT/model.ckpt-1536``)
or a folder with a ``checkpoint`` file (a run_ner.py / run_re.py / run_pretraining.py output_dir: its latest).
HF_DIR receives ``model.safetensors`` (the encoder as ``bert.*``, Linear weights in Hugging Face's [out, in]
layout; the pre-training heads as ``cls.*``; a fine-tuned classifier's ``output_weights`` / ``output_bias`` as
``classifier.weight`` / ``classifier.bias``), ``config.json`` and ``vocab.txt`` (and ``label_map.json`` when the
run wrote one). The config and vocabulary default to the files beside the checkpoint (``bert_config.json``,
``vocab.txt``). Hugging Face transformers (``BertForSequenceClassification.from_pretrained(HF_DIR)``) and this
project's ``--init_checkpoint=HF_DIR`` both load the folder; the other direction needs no converter:
``--init_checkpoint`` reads a Hugging Face folder.
"""
from biobert import cli  # first: quiet TensorFlow start-up

from absl import flags

from biobert import convert
from biobert.errors import InputError

flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (OUT/model.ckpt-N) or a folder with a 'checkpoint' "
                                        "file (its latest).")
flags.DEFINE_string("output_dir", None, "The Hugging Face folder to write.")
flags.DEFINE_string("bert_config_file", None, "The model's bert_config.json [bert_config.json beside the "
                                              "checkpoint].")
flags.DEFINE_string("vocab_file", None, "The vocabulary [vocab.txt beside the checkpoint].")
FLAGS = flags.FLAGS


@cli.main_guard
def main(_):
    if not FLAGS.checkpoint or not FLAGS.output_dir:
        raise InputError("--checkpoint and --output_dir are required")
    convert.convert(FLAGS.checkpoint, FLAGS.output_dir, FLAGS.bert_config_file, FLAGS.vocab_file)
    return 0


if __name__ == "__main__":
    cli.run(main)
