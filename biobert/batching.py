"""Examples into batches: padding, length-sorted training batches, inference batches in length order, and a
background thread that prepares batches ahead of the device. Data in, numpy batches out; nothing else.

A batch is a dict of numpy arrays: one row per example, 1-D features padded to a common length, plus
``input_mask`` (1 on real tokens) and ``valid`` (1 for real rows). A training batch may instead be a tuple of
equal-row parts, each padded to its own longest row (``training_batches(parts=k)``).
"""
import math
import queue
import threading

import numpy as np

from biobert.errors import InputError

SORT_WINDOW = 64      # batches whose rows training_batches sorts by length together (1: a plain shuffle)
PART_ROWS = 8         # fewest rows in one length-sorted part of a plainly shuffled batch (see batch_parts)


def pad_batch(examples, length, batch_size=None):
    """Stack feature dicts into a batch padded to ``length`` (and to ``batch_size`` rows with empty rows).

    1-D array features are zero-padded on the right; scalars are stacked. Adds ``input_mask`` (1 on real
    tokens) and ``valid`` (1 for real rows, 0 for padding rows).
    """
    rows = len(examples)
    total = batch_size or rows
    batch = {}
    for key, value in examples[0].items():
        if isinstance(value, np.ndarray) and value.ndim == 1:
            out = np.zeros((total, length), dtype=np.int32 if value.dtype.kind in "iub" else np.float32)
            for i, ex in enumerate(examples):
                out[i, : len(ex[key])] = ex[key]
            batch[key] = out
        elif np.isscalar(value) or (isinstance(value, np.ndarray) and value.ndim == 0):
            out = np.zeros((total,), dtype=np.int32 if np.asarray(value).dtype.kind in "iub" else np.float32)
            out[:rows] = [ex[key] for ex in examples]
            batch[key] = out
    mask = np.zeros((total, length), dtype=np.int32)
    for i, ex in enumerate(examples):
        mask[i, : len(ex["input_ids"])] = 1
    batch["input_mask"] = mask
    batch["valid"] = (np.arange(total) < rows).astype(np.float32)
    return batch


def _padded_length(longest, multiple, max_length):
    return int(min(max_length, max(multiple, math.ceil(longest / multiple) * multiple)))


def pad_multiple(use_xla):
    """What batch lengths are rounded up to: 32 under XLA (a few shapes, each compiled once), else 1 (each batch
    padded to its longest row: the least padding where every new shape costs nothing to compile)."""
    return 32 if use_xla else 1


def batch_parts(per_replica_batch, most=4, min_rows=PART_ROWS):
    """How many length-sorted parts to compute a plainly shuffled batch in: the largest k <= ``most`` that
    divides the per-replica batch into parts of at least ``min_rows`` rows (1: the batch in one piece)."""
    for k in range(most, 1, -1):
        if per_replica_batch % k == 0 and per_replica_batch // k >= min_rows:
            return k
    return 1


def training_batches(features, batch_size, max_length, seed, start_step=0, pad_multiple=32,
                     sort_window=SORT_WINDOW, parts=1):
    """Endless training batches: each epoch a seeded shuffle, then length-sorted within windows of
    ``sort_window`` batches (little padding), batches in shuffled order; incomplete last batch dropped.

    With ``parts`` > 1 each batch is yielded as a tuple of ``parts`` micro-batches of batch_size / parts rows:
    the batch's rows sorted by length and cut in order, each part padded to its own longest row. The Trainer
    computes a tuple in one step as the mean of the parts' mean losses (equal rows per part, so the batch's
    loss and update) with less padding; which rows train together is unchanged. (``flat_parts`` turns the
    tuples into consecutive micro-batches for gradient accumulation instead.)

    Deterministic for a given seed: ``start_step`` (in yielded batches) skips already-trained batches
    cheaply (for resuming). Yields dicts from ``pad_batch``, or tuples of them.
    """
    steps_per_epoch = len(features) // batch_size
    if steps_per_epoch == 0:
        raise InputError(f"fewer training examples ({len(features)}) than one batch ({batch_size})")
    if batch_size % parts:
        raise ValueError(f"a batch of {batch_size} rows does not cut into {parts} equal parts")
    lengths = np.array([len(f["input_ids"]) for f in features])
    epoch, offset = divmod(start_step, steps_per_epoch)
    while True:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(features))[: steps_per_epoch * batch_size]
        window = batch_size * sort_window
        groups = []
        for start in range(0, len(order), window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            groups += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        for b in rng.permutation(len(groups))[offset:]:
            yield assemble_batch(features, groups[b], lengths, max_length, pad_multiple, parts)
        epoch, offset = epoch + 1, 0


def assemble_batch(features, idx, lengths, max_length, pad_multiple=32, parts=1):
    """One training batch of the rows ``idx`` as ``training_batches`` yields it: padded to its longest row (rounded
    up to ``pad_multiple``), or with ``parts`` > 1 a tuple of that many length-sorted parts, each padded to its own.
    ``lengths``: every feature's token count."""
    if parts > 1:
        idx = idx[np.argsort(lengths[idx], kind="stable")]
    padded = tuple(pad_batch([features[i] for i in part], _padded_length(lengths[part].max(), pad_multiple, max_length))
                   for part in np.split(idx, parts))
    return padded if parts > 1 else padded[0]


def as_parts(batch):
    """The parts of a batch from ``training_batches``: the tuple itself, or (batch,) for a batch in one piece."""
    return batch if isinstance(batch, tuple) else (batch,)


def flat_parts(batches):
    """The parts of each tuple from ``training_batches(parts=k)`` as k consecutive micro-batches (for a Trainer
    accumulating k micro-batches a step: the same update, one compiled shape per part under XLA)."""
    for batch in batches:
        yield from as_parts(batch)


def inference_batches(features, batch_size, max_length, pad_multiple=32):
    """Batches in length order for prediction; yields (indices of the examples, padded batch of batch_size rows)."""
    lengths = np.array([len(f["input_ids"]) for f in features])
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        length = _padded_length(lengths[idx].max(), pad_multiple, max_length)
        yield idx, pad_batch([features[i] for i in idx], length, batch_size=batch_size)


def prefetch(iterator, depth=2):
    """Yield the items of ``iterator`` while a background thread prepares the next ``depth`` (host batches built
    while the device computes). An exception of the producer is raised where the item would have been."""
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((done, None))
        except BaseException as err:       # handed to the consumer
            items.put((done, err))

    thread = threading.Thread(target=produce, daemon=True, name="batch-prefetch")
    thread.start()
    try:
        while True:
            item, err = items.get()
            if item is done:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
