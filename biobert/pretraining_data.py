"""BERT pre-training data: sentence pairs, masking, TFRecord writing and reading.

Writing side (used by ``create_pretraining_data.py``) follows Google BERT's
``create_pretraining_data.py``: documents are lists of sentences, each sentence a list of
word-piece ids; every document yields instances ``[CLS] A [SEP] B [SEP]`` where B is the true
continuation half of the time and a span of another document otherwise; 15% of the tokens are
chosen for masked-LM prediction (80% ``[MASK]``, 10% random token, 10% unchanged), optionally
whole words at a time. The TFRecords carry Google's feature names, shapes and dtypes.

Reading side (used by the trainer): ``name_to_features`` and ``pretraining_dataset``.
"""
import glob
import os
import random

from biobert.errors import InputError

CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"

# Characters that Python's str.split() treats as whitespace but BERT's BasicTokenizer does not
# (it deletes control characters or keeps them inside a word). Text holding one of them is
# tokenized whole instead of chunk by chunk, so the cache never changes the result.
_SPLIT_MISMATCH = frozenset("\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029")


class CachedTokenizer:
    """Turns text into word-piece ids fast, memoising the tokenizer per whitespace-separated chunk.

    ``tokenizer`` is a Google-BERT-compatible ``FullTokenizer`` (``tokenize``,
    ``convert_tokens_to_ids``, ``vocab``). BERT's basic tokenizer handles whitespace-separated
    chunks independently, so ``ids(text)`` equals
    ``tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))`` while tokenizing each distinct
    chunk only once.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._cache = {}

    def _chunk_ids(self, chunk):
        ids = self._cache.get(chunk)
        if ids is None:
            tok = self.tokenizer
            ids = tuple(tok.convert_tokens_to_ids(tok.tokenize(chunk)))
            self._cache[chunk] = ids
        return ids

    def ids(self, text):
        """Return the list of word-piece ids of ``text``."""
        if any(c in _SPLIT_MISMATCH for c in text):
            tok = self.tokenizer
            return list(tok.convert_tokens_to_ids(tok.tokenize(text)))
        out = []
        for chunk in text.split():
            out.extend(self._chunk_ids(chunk))
        return out


class VocabInfo:
    """What masking needs to know about the vocabulary, as ids.

    Built from ``tokenizer.vocab`` (token -> id): the ids of [CLS], [SEP], [MASK], the list of all
    ids (random replacements draw from it) and which ids are ``##`` continuation pieces.
    """

    def __init__(self, vocab):
        missing = [t for t in (CLS, SEP, MASK) if t not in vocab]
        if missing:
            raise InputError(f"vocabulary lacks the special tokens {missing}")
        self.cls_id, self.sep_id, self.mask_id = vocab[CLS], vocab[SEP], vocab[MASK]
        self.all_ids = sorted(vocab.values())
        self.subword_ids = frozenset(i for t, i in vocab.items() if t.startswith("##"))
        self.id_to_token = {i: t for t, i in vocab.items()}


class TrainingInstance:
    """One pre-training example before padding.

    tokens: list of ids after masking; segment_ids: 0 for [CLS] A [SEP], 1 for B [SEP];
    masked_lm_positions: sorted positions chosen for prediction; masked_lm_labels: the original ids
    there; is_random_next: True when B comes from another document; num_segments: how many
    sentences the document chunk had (a one-sentence chunk always gets a random B, as in Google's
    code, so the overall random share is a little above 50%). num_segments is not written out.
    """

    __slots__ = ("tokens", "segment_ids", "masked_lm_positions", "masked_lm_labels", "is_random_next",
                 "num_segments")

    def __init__(self, tokens, segment_ids, masked_lm_positions, masked_lm_labels, is_random_next,
                 num_segments=None):
        self.tokens = tokens
        self.segment_ids = segment_ids
        self.masked_lm_positions = masked_lm_positions
        self.masked_lm_labels = masked_lm_labels
        self.is_random_next = is_random_next
        self.num_segments = num_segments


def expand_input_files(spec):
    """Comma-separated list of files or glob patterns -> sorted list of existing paths.

    Raises InputError naming the pattern that matched nothing.
    """
    files = []
    for pattern in (p.strip() for p in str(spec).split(",")):
        if not pattern:
            continue
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise InputError("no input file matches", path=pattern)
        files.extend(m for m in matches if m not in files)
    if not files:
        raise InputError("no input files given")
    return files


def read_documents(input_files, cached_tokenizer):
    """Read sentence-per-line files (blank line between documents) into documents of id lists.

    Returns a list of documents, each a non-empty list of non-empty sentences (lists of ids).
    Raises InputError if a file is missing or undecodable, or if no sentence is found at all.
    """
    documents = [[]]
    for path in input_files:
        if not os.path.isfile(path):
            raise InputError("input file not found", path=path)
        with open(path, encoding="utf-8", errors="strict") as handle:
            line_no = 0
            try:
                for line_no, line in enumerate(handle, 1):
                    line = line.strip()
                    if not line:
                        documents.append([])
                        continue
                    ids = cached_tokenizer.ids(line)
                    if ids:
                        documents[-1].append(ids)
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 text ({exc.reason})", path=path, line=line_no + 1) from None
        documents.append([])
    documents = [d for d in documents if d]
    if not documents:
        raise InputError("no text found in the input", path=",".join(input_files))
    return documents


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Trim the longer of the two lists in place, from a random end, until they fit together."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()


def create_masked_lm_predictions(tokens, masked_lm_prob, max_predictions_per_seq, vocab_info, rng,
                                 do_whole_word_mask=False):
    """Choose positions to predict and corrupt them as in Google BERT.

    tokens: ids of ``[CLS] A [SEP] B [SEP]``. Returns (output_tokens, positions, labels) with
    positions sorted; at most ``max_predictions_per_seq`` and about ``masked_lm_prob`` of the
    tokens; [CLS]/[SEP] never chosen. With ``do_whole_word_mask`` a word's pieces are chosen
    together (each piece still gets its own 80/10/10 draw, as in the original).
    """
    cand_indexes = []
    specials = (vocab_info.cls_id, vocab_info.sep_id)
    subword = vocab_info.subword_ids
    for i, tok in enumerate(tokens):
        if tok in specials:
            continue
        if do_whole_word_mask and cand_indexes and tok in subword:
            cand_indexes[-1].append(i)
        else:
            cand_indexes.append([i])
    rng.shuffle(cand_indexes)
    output = list(tokens)
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob))))
    chosen = []
    covered = set()
    all_ids = vocab_info.all_ids
    for index_set in cand_indexes:
        if len(chosen) >= num_to_predict:
            break
        if len(chosen) + len(index_set) > num_to_predict:
            continue
        if any(i in covered for i in index_set):
            continue
        for i in index_set:
            covered.add(i)
            if rng.random() < 0.8:
                new = vocab_info.mask_id
            elif rng.random() < 0.5:
                new = tokens[i]
            else:
                new = all_ids[rng.randint(0, len(all_ids) - 1)]
            output[i] = new
            chosen.append(i)
    chosen.sort()
    return output, chosen, [tokens[i] for i in chosen]


def create_instances_from_document(all_documents, document_index, max_seq_length, short_seq_prob,
                                   masked_lm_prob, max_predictions_per_seq, vocab_info, rng,
                                   do_whole_word_mask=False):
    """All instances of one document (Google BERT's algorithm); returns a list of TrainingInstance."""
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)
    instances = []
    chunk, chunk_len, i = [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_len += len(document[i])
        if i == len(document) - 1 or chunk_len >= target_seq_length:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for seg in chunk[:a_end] for t in seg]
            tokens_b = []
            is_random_next = False
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random_next = True
                target_b_length = target_seq_length - len(tokens_a)
                for _ in range(10):
                    random_index = rng.randint(0, len(all_documents) - 1)
                    if random_index != document_index:
                        break
                random_document = all_documents[random_index]
                random_start = rng.randint(0, len(random_document) - 1)
                for j in range(random_start, len(random_document)):
                    tokens_b.extend(random_document[j])
                    if len(tokens_b) >= target_b_length:
                        break
                # The segments of this chunk not used as A go back to the document.
                i -= len(chunk) - a_end
            else:
                for seg in chunk[a_end:]:
                    tokens_b.extend(seg)
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            tokens = [vocab_info.cls_id] + tokens_a + [vocab_info.sep_id] + tokens_b + [vocab_info.sep_id]
            segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
            tokens, positions, labels = create_masked_lm_predictions(
                tokens, masked_lm_prob, max_predictions_per_seq, vocab_info, rng, do_whole_word_mask)
            instances.append(TrainingInstance(tokens, segment_ids, positions, labels, is_random_next, len(chunk)))
            chunk, chunk_len = [], 0
        i += 1
    return instances


def create_training_instances(documents, vocab_info, max_seq_length, dupe_factor, short_seq_prob,
                              masked_lm_prob, max_predictions_per_seq, rng, do_whole_word_mask=False):
    """Shuffle documents, make ``dupe_factor`` passes of instances, shuffle them; returns a list."""
    documents = list(documents)
    rng.shuffle(documents)
    instances = []
    for _ in range(dupe_factor):
        for index in range(len(documents)):
            instances.extend(create_instances_from_document(
                documents, index, max_seq_length, short_seq_prob, masked_lm_prob,
                max_predictions_per_seq, vocab_info, rng, do_whole_word_mask))
    rng.shuffle(instances)
    return instances


def instance_to_example(instance, max_seq_length, max_predictions_per_seq):
    """Pad one TrainingInstance into a ``tf.train.Example`` with Google's seven features."""
    import tensorflow as tf

    n = len(instance.tokens)
    if n > max_seq_length:
        raise ValueError(f"instance of {n} tokens exceeds max_seq_length {max_seq_length}")
    pad = max_seq_length - n
    m = len(instance.masked_lm_positions)
    mpad = max_predictions_per_seq - m

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    features = {
        "input_ids": ints(instance.tokens + [0] * pad),
        "input_mask": ints([1] * n + [0] * pad),
        "segment_ids": ints(instance.segment_ids + [0] * pad),
        "masked_lm_positions": ints(instance.masked_lm_positions + [0] * mpad),
        "masked_lm_ids": ints(instance.masked_lm_labels + [0] * mpad),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0] * m + [0.0] * mpad)),
        "next_sentence_labels": ints([1 if instance.is_random_next else 0]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features))


def write_instances(instances, output_file, max_seq_length, max_predictions_per_seq):
    """Write instances to one TFRecord file atomically (temp file beside it, then rename).

    Returns the number of records written.
    """
    import tensorflow as tf

    output_file = os.fspath(output_file)
    directory = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(output_file)}.{os.getpid()}.tmp")
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for instance in instances:
                example = instance_to_example(instance, max_seq_length, max_predictions_per_seq)
                writer.write(example.SerializeToString())
        os.replace(tmp, output_file)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(instances)


def create_pretraining_data(input_files, output_file, tokenizer, max_seq_length=128,
                            max_predictions_per_seq=20, masked_lm_prob=0.15, short_seq_prob=0.1,
                            dupe_factor=10, random_seed=12345, do_whole_word_mask=False):
    """Sentence-per-line text files -> one TFRecord file of pre-training instances.

    ``tokenizer``: a FullTokenizer. Returns a dict of counts (documents, sentences, instances,
    masked tokens). Raises InputError on missing/empty input or bad parameters.
    """
    if max_seq_length < 5:
        raise InputError(f"max_seq_length must be at least 5, got {max_seq_length}")
    if max_predictions_per_seq < 1:
        raise InputError(f"max_predictions_per_seq must be positive, got {max_predictions_per_seq}")
    if not 0.0 <= masked_lm_prob <= 1.0 or not 0.0 <= short_seq_prob <= 1.0:
        raise InputError("masked_lm_prob and short_seq_prob must lie in [0, 1]")
    if dupe_factor < 1:
        raise InputError(f"dupe_factor must be positive, got {dupe_factor}")
    vocab_info = VocabInfo(tokenizer.vocab)
    documents = read_documents(input_files, CachedTokenizer(tokenizer))
    rng = random.Random(random_seed)
    instances = create_training_instances(
        documents, vocab_info, max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob,
        max_predictions_per_seq, rng, do_whole_word_mask)
    write_instances(instances, output_file, max_seq_length, max_predictions_per_seq)
    return {
        "documents": len(documents),
        "sentences": sum(len(d) for d in documents),
        "instances": len(instances),
        "masked_tokens": sum(len(x.masked_lm_positions) for x in instances),
    }


# ----------------------------------------------------------------------------------------------
# Reading side


def name_to_features(max_seq_length, max_predictions_per_seq):
    """The ``tf.io.parse_example`` spec of a pre-training record (Google's names and shapes)."""
    import tensorflow as tf

    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def list_record_files(file_patterns):
    """Comma-separated string or list of files/globs/directories -> sorted unique file list.

    A directory stands for every file in it. Raises InputError when nothing matches.
    """
    import tensorflow as tf

    if isinstance(file_patterns, (str, os.PathLike)):
        file_patterns = str(file_patterns).split(",")
    files = set()
    for pattern in file_patterns:
        pattern = str(pattern).strip()
        if not pattern:
            continue
        if tf.io.gfile.isdir(pattern):
            pattern = os.path.join(pattern, "*")
        files.update(f for f in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(f))
    if not files:
        raise InputError("no pre-training record files match", path=",".join(map(str, file_patterns)))
    return sorted(files)


def pretraining_dataset(file_patterns, max_seq_length, max_predictions_per_seq, batch_size, is_training,
                        seed=12345, input_context=None, shuffle_buffer=1000):
    """A ``tf.data.Dataset`` of batches of pre-training features.

    file_patterns: files, globs or directories (list or comma-separated string). Yields dicts with
    input_ids, input_mask, segment_ids [batch, max_seq_length] int32; masked_lm_positions,
    masked_lm_ids [batch, max_predictions_per_seq] int32; masked_lm_weights the same shape float32;
    next_sentence_labels [batch, 1] int32.

    The order is a pure function of (files, seed, input_context): files are sorted, then shuffled
    by ``seed``; with ``input_context`` each input pipeline takes its share of files (or of records
    when there are fewer files than pipelines). Training repeats forever, shuffles records with a
    seeded buffer and drops the last partial batch; evaluation reads each record once, in order.
    The trainer can therefore resume by skipping the batches it already consumed.
    """
    import tensorflow as tf

    files = list_record_files(file_patterns)
    if is_training:
        random.Random(seed).shuffle(files)
    spec = name_to_features(max_seq_length, max_predictions_per_seq)

    ds = tf.data.Dataset.from_tensor_slices(files)
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        else:
            shard_records = True
    if is_training:
        ds = ds.repeat()
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)), block_length=1,
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.flat_map(tf.data.TFRecordDataset)
    if shard_records:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if is_training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=is_training)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        return {k: (v if v.dtype == tf.float32 else tf.cast(v, tf.int32)) for k, v in parsed.items()}

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
