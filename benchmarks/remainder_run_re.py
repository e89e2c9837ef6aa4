"""run_re.py with each epoch's incomplete last batch kept, as a PyTorch DataLoader does (drop_last=False).

    python benchmarks/remainder_run_re.py <run_re.py's flags>

run_re.py (like Google's BERT, ``drop_remainder=True``) trains on full batches only: 16386 ChemProt rows in
batches of 32 give 512 steps an epoch, 1536 in 3 epochs, and 2 rows an epoch are left out. The Hugging Face peer
(benchmarks/peer_hf_chemprot.py) trains on ceil(16386 / 32) = 513 steps an epoch, the 513th a batch of the 2
rows left over, 1539 steps in all, its schedule counted over 1539. This runs run_re.py as it is (model, loss,
optimizer, precision, dropout, its seeded shuffle of each epoch and the same full batches) with the peer's
batching on top: each epoch's left-over rows are one more batch at the end of the epoch (its loss the mean
over its rows, like any batch), and the step count and warm-up are counted with those batches. A tool for
the ChemProt side-by-side comparison in BENCHMARKS.md, not a run_re.py option. Resuming is not supported;
run_re.py's own "train: ... steps" log line still shows its count, the line of this script the real one.
"""
import functools
import itertools
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert import cli  # noqa: E402  (first: quiet TensorFlow start-up)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from biobert import finetuning, training  # noqa: E402

FLAGS = flags.FLAGS


RUN_RE_BATCHES = training.training_batches   # run_re.py's own, kept before main() puts the one below in its place


def batches_with_remainder(features, batch_size, max_length, seed, start_step=0, pad_multiple=32,
                           sort_window=1, parts=1):
    """training.training_batches's epochs (its own full batches, for sort_window 1), each followed by a batch
    of the rows they leave out (in one piece): the tail of the epoch's seeded permutation, the first draw of
    the epoch's generator in training_batches."""
    if start_step or sort_window != 1:
        raise SystemExit("error: remainder_run_re.py: no resuming (start from an empty --output_dir) and plain "
                         "shuffling only (no --group_by_length)")
    full = len(features) // batch_size
    lengths = np.array([len(f["input_ids"]) for f in features])
    epochs = RUN_RE_BATCHES(features, batch_size, max_length, seed, pad_multiple=pad_multiple,
                            sort_window=sort_window, parts=parts)
    for epoch in itertools.count():
        yield from itertools.islice(epochs, full)
        left = np.random.default_rng([seed, epoch]).permutation(len(features))[full * batch_size:]
        if len(left):
            yield training.assemble_batch(features, left, lengths, max_length, pad_multiple, 1)


def config_with_remainder(config_class, rows):
    """TrainConfig whose step count and warm-up count each epoch's short batch, as the peer's schedule does."""
    def make(**kwargs):
        if FLAGS.do_train:
            per_epoch = math.ceil(rows / FLAGS.train_batch_size)
            kwargs["num_train_steps"] = max(1, int(per_epoch * FLAGS.num_train_epochs))
            kwargs["num_warmup_steps"] = int(kwargs["num_train_steps"] * FLAGS.warmup_proportion)
            print(f"remainder_run_re.py: {rows} rows, {per_epoch} batches an epoch (the last of "
                  f"{rows % FLAGS.train_batch_size or FLAGS.train_batch_size} rows), {kwargs['num_train_steps']} steps, "
                  f"{kwargs['num_warmup_steps']} warm-up", flush=True)
        return config_class(**kwargs)
    return make


def main(argv, run_re):
    if FLAGS.num_accumulation_steps != 1:
        raise SystemExit("error: remainder_run_re.py: --num_accumulation_steps must be 1")
    training.training_batches = batches_with_remainder
    rows = len(finetuning.RelationTask().read(FLAGS.data_dir, "train"))     # run_re.py's reader and count
    training.TrainConfig = config_with_remainder(training.TrainConfig, rows)
    return run_re.main(argv)


if __name__ == "__main__":
    import run_re  # noqa: E402  (defines run_re.py's flags; imported here so that tests can import this file)

    app.run(cli.main_guard(functools.partial(main, run_re=run_re)))
