r"""Create BERT pre-training TFRecords from sentence-per-line text (Google BERT's flags).

Input: one sentence per line, a blank line between documents. Output: one TFRecord file with
input_ids, input_mask, segment_ids, masked_lm_positions, masked_lm_ids, masked_lm_weights and
next_sentence_labels per instance, written atomically.

    python create_pretraining_data.py --input_file=shard_0.txt --output_file=shard_0.tfrecord \
        --vocab_file=vocab.txt --do_lower_case --max_seq_length=128 --max_predictions_per_seq=20
"""
import sys
import time

from absl import flags

from biobert import cli
from biobert.errors import InputError, require_file

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None, "Input text file(s): comma-separated list and/or glob patterns.")
flags.DEFINE_string("output_file", None, "Output TFRecord file (written atomically).")
flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary file the BERT model was trained on.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the input (True for uncased models, False for cased).")
flags.DEFINE_bool("do_whole_word_mask", False, "Mask whole words (all their WordPieces) instead of single WordPieces.")
flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length, [CLS] and two [SEP] included.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum number of masked-LM predictions per sequence.")
flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
flags.DEFINE_integer("dupe_factor", 10, "Number of times to duplicate the input data (with different masks).")
flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
flags.DEFINE_float("short_seq_prob", 0.1,
                   "Probability of creating sequences shorter than the maximum length.")
flags.DEFINE_bool("do_prepare", False, "Accepted for compatibility with the original scripts; ignored.")


def main(argv):
    del argv
    from biobert import pretraining_data, tokenization

    try:
        for name in ("input_file", "output_file", "vocab_file"):
            if not getattr(FLAGS, name):
                raise InputError(f"--{name} is required")
        input_files = pretraining_data.expand_input_files(FLAGS.input_file)
        vocab_file = FLAGS.vocab_file
        require_file(vocab_file, "vocabulary file")
        tokenizer = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=FLAGS.do_lower_case)
        start = time.time()
        counts = pretraining_data.create_pretraining_data(
            input_files, FLAGS.output_file, tokenizer,
            max_seq_length=FLAGS.max_seq_length,
            max_predictions_per_seq=FLAGS.max_predictions_per_seq,
            masked_lm_prob=FLAGS.masked_lm_prob,
            short_seq_prob=FLAGS.short_seq_prob,
            dupe_factor=FLAGS.dupe_factor,
            random_seed=FLAGS.random_seed,
            do_whole_word_mask=FLAGS.do_whole_word_mask)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {counts['instances']} instances from {counts['documents']} documents "
          f"({counts['sentences']} sentences) to {FLAGS.output_file} in {time.time() - start:.1f}s")
    return 0


if __name__ == "__main__":
    cli.run(main)
