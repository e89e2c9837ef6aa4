"""Export a fine-tuned model as a TensorFlow SavedModel that tokenizes in the graph (tensorflow-text).

    export_dir/                  saved_model.pb, variables/, plus label_map.json (NER), vocab.txt,
                                 bert_config.json, model_info.json
    signatures:
      serving_default(text: string [B])              raw sentences in, per input:
        NER  entity_start, entity_end [B, E] int32   character offsets into the input string (-1 = padding)
             entity_label [B, E] int32               id of the entity's first word label in label_map.json
             entity_score [B, E] float32             mean probability of the entity's word labels
             num_entities [B] int32
        RE   probabilities [B, 6] float32            CPR:3, CPR:4, CPR:5, CPR:6, CPR:9, false
             label_id [B] int32
      predict_ids(input_ids, input_mask, segment_ids: int32 [B, T])  -> probabilities ([B, T, L] or [B, 6])
        the same model on token ids from any tokenizer (Python's biobert.tokenization, for one).
      tokenize(text: string [B])                     the in-graph pieces of each string, with byte offsets

Each input string is one sequence: [CLS] + its WordPiece pieces (truncated to max_seq_length - 2) + [SEP]; split
documents into sentences first (run_ner.py --predict_file does, with Punkt, and cuts long sentences into windows).
The tokenizer is tensorflow-text's FastBertTokenizer over the same vocabulary, lower-casing and stripping accents
(NFD) for uncased models, words over 200 bytes [UNK]. Loading needs ``import tensorflow_text`` (its ops).

The in-graph ids equal biobert.tokenization's on natural text (tests/test_predict_text.py compares them on every
BC5CDR test sentence and every line of the PubMed sample, cased and uncased). They differ on constructed text:
- a control or format character inside a word (soft hyphen, zero-width space, U+0085) splits the word there,
  where ours drops the character and joins the halves;
- uncased, the graph applies NFKC case folding (ligature ``ﬁ`` -> ``fi``, full-width ``ＡＢＣ`` -> ``abc``,
  ``ß`` -> ``ss``, ``Ⅻ`` -> ``xii``) and no final sigma (``ΟΔΟΣ`` -> ``οδοσ``, ours ``οδος``);
- a non-ASCII word of over 200 bytes but at most 200 characters is [UNK] in the graph and split by ours.
For such text, tokenize with biobert.tokenization and call ``predict_ids``.
"""
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from biobert import modeling, rawtext
from biobert.errors import InputError

MAX_BYTES_PER_WORD = 200      # ours: 200 characters (the same for ASCII words)


def vocabulary(vocab_file):
    """The vocabulary as a list, id = index (lines stripped, as biobert.tokenization.load_vocab)."""
    with open(vocab_file, encoding="utf-8", newline="\n") as handle:
        return [line.strip() for line in handle]


def fast_tokenizer(vocab, do_lower_case):
    import tensorflow_text as tft

    return tft.FastBertTokenizer(vocab, token_out_type=tf.int64, unknown_token=rawtext.UNK,
                                 max_bytes_per_word=MAX_BYTES_PER_WORD, lower_case_nfd_strip_accents=do_lower_case)


class Exported(tf.Module):
    """The fine-tuned classifier with its in-graph tokenizer and decoding."""

    def __init__(self, model, vocab, do_lower_case, max_seq_length, per_token, label_map=None):
        super().__init__()
        # The weights are tracked (saved); the Keras model itself is not, or Keras's own default signature would
        # be saved with it.
        object.__setattr__(self, "model", model)
        self.weights = list(model.weights)
        self.tokenizer = fast_tokenizer(vocab, do_lower_case)
        self.budget = max_seq_length - 2
        self.per_token = per_token
        self.cls_id, self.sep_id = vocab.index(rawtext.CLS), vocab.index(rawtext.SEP)
        self.first_piece = tf.constant([not token.startswith("##") for token in vocab])
        if per_token:
            prefix, kind, types = [], [], {}
            for label in label_map.labels:
                if label_map.is_entity(label):
                    p, t = rawtext.entity_type_of(label, "")
                    prefix.append({"O": 0, "B": 1, "I": 2}[p])
                    kind.append(types.setdefault(t, len(types)) if t is not None else -1)
                else:
                    prefix.append(0)
                    kind.append(-1)
            self.entity_ids = tf.constant(label_map.entity_ids, tf.int32)
            self.prefix = tf.constant(prefix, tf.int32)
            self.kind = tf.constant(kind, tf.int32)

    def _forward(self, input_ids, input_mask, segment_ids):
        logits = self.model({"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids},
                            training=False)
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="input_ids"),
                                  tf.TensorSpec([None, None], tf.int32, name="input_mask"),
                                  tf.TensorSpec([None, None], tf.int32, name="segment_ids")])
    def predict_ids(self, input_ids, input_mask, segment_ids):
        return {"probabilities": self._forward(input_ids, input_mask, segment_ids)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def tokenize(self, text):
        """The in-graph pieces of each string (no [CLS]/[SEP], not truncated), with byte offsets."""
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(text)
        return {"ids": ids.to_tensor(-1), "starts": starts.to_tensor(-1), "ends": ends.to_tensor(-1),
                "lengths": ids.row_lengths()}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(text)
        ids, starts, ends = ids[:, :self.budget], starts[:, :self.budget], ends[:, :self.budget]
        batch = tf.shape(text)[0]
        ids32 = tf.cast(ids, tf.int32)
        seq = tf.concat([tf.fill([batch, 1], self.cls_id), ids32, tf.fill([batch, 1], self.sep_id)], axis=1)
        input_ids = seq.to_tensor(0)
        input_mask = tf.sequence_mask(seq.row_lengths(), tf.shape(input_ids)[1], dtype=tf.int32)
        probs = self._forward(input_ids, input_mask, tf.zeros_like(input_ids))
        if not self.per_token:
            return {"probabilities": probs, "label_id": tf.argmax(probs, axis=-1, output_type=tf.int32)}
        return self._entities(text, ids32, starts, ends, probs, batch)

    def _entities(self, text, ids, starts, ends, probs, batch):
        row = tf.cast(ids.value_rowids(), tf.int32)                                # piece -> input
        position = tf.range(tf.size(ids.values), dtype=tf.int32) - tf.gather(tf.cast(ids.row_starts(), tf.int32),
                                                                               row)
        piece_probs = tf.gather_nd(probs, tf.stack([row, position + 1], axis=1))   # [pieces, L]
        first = tf.gather(self.first_piece, ids.values)
        word = tf.cumsum(tf.cast(first, tf.int32)) - 1                             # piece -> word (global)
        num_words = tf.reduce_sum(tf.cast(first, tf.int32))
        word_start = tf.math.unsorted_segment_min(starts.values, word, num_words)
        word_end = tf.math.unsorted_segment_max(ends.values, word, num_words)
        word_row = tf.boolean_mask(row, first)
        first_probs = tf.boolean_mask(piece_probs, first)                           # [words, L]
        entity_probs = tf.gather(first_probs, self.entity_ids, axis=1)
        label = tf.gather(self.entity_ids, tf.argmax(entity_probs, axis=1, output_type=tf.int32))
        score = tf.reduce_max(entity_probs, axis=1)
        prefix, kind = tf.gather(self.prefix, label), tf.gather(self.kind, label)
        inside = prefix > 0
        previous = lambda t, fill: tf.concat([tf.fill([1], fill), t[:-1]], axis=0)  # noqa: E731
        continues = ((prefix == 2) & previous(inside, False) & tf.equal(previous(kind, -2), kind)
                     & tf.equal(previous(word_row, -1), word_row))
        begins = inside & ~continues
        entity = tf.cumsum(tf.cast(begins, tf.int32)) - 1
        n = tf.reduce_sum(tf.cast(begins, tf.int32))
        e_ids = tf.boolean_mask(entity, inside)
        e_start = tf.math.unsorted_segment_min(tf.boolean_mask(word_start, inside), e_ids, n)
        e_end = tf.math.unsorted_segment_max(tf.boolean_mask(word_end, inside), e_ids, n)
        e_score = tf.math.unsorted_segment_mean(tf.boolean_mask(score, inside), e_ids, n)
        e_label = tf.boolean_mask(label, begins)
        e_row = tf.boolean_mask(word_row, begins)
        # Byte offsets -> character offsets: how many characters of the input start before the byte offset,
        # counted in one sorted list of the whole batch's characters (each input's bytes shifted past the last).
        _, char_starts = tf.strings.unicode_decode_with_offsets(text, "UTF-8", errors="replace")
        base = tf.cumsum(tf.cast(tf.strings.length(text, unit="BYTE"), tf.int64) + 1, exclusive=True)
        flat = char_starts.values + tf.gather(base, char_starts.value_rowids())
        first_char = tf.gather(char_starts.row_starts(), e_row)

        def to_chars(byte_offsets):
            shifted = byte_offsets + tf.gather(base, e_row)
            index = tf.searchsorted(tf.expand_dims(flat, 0), tf.expand_dims(shifted, 0), side="left",
                                    out_type=tf.int64)[0]
            return index - first_char

        e_start, e_end = to_chars(e_start), to_chars(e_end)

        def per_input(values, fill):
            ragged = tf.RaggedTensor.from_value_rowids(values, e_row, nrows=tf.cast(batch, tf.int32))
            return ragged.to_tensor(fill)

        counts = tf.math.bincount(e_row, minlength=batch, maxlength=batch, dtype=tf.int32)
        return {"entity_start": per_input(tf.cast(e_start, tf.int32), -1),
                "entity_end": per_input(tf.cast(e_end, tf.int32), -1),
                "entity_label": per_input(e_label, -1), "entity_score": per_input(e_score, -1.0),
                "num_entities": counts}


def export(export_dir, trainer_variables, bert_config, num_labels, per_token, vocab_file, do_lower_case,
           max_seq_length, folder_files, label_map=None, info=None, log=print):
    """Write the SavedModel (float32 weights copied by name from ``trainer_variables``) and the model files
    (``folder_files``: {name: path} copied beside it) to ``export_dir``, atomically (a temporary folder renamed).
    """
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        raise InputError("--export_dir needs tensorflow-text (pip install tensorflow-text==2.21.1)") from None
    policy = keras.mixed_precision.global_policy()
    matmul = modeling.matmul_dtype()
    keras.mixed_precision.set_dtype_policy("float32")
    modeling.set_matmul_dtype(None)
    try:
        model = modeling.build(modeling.BertClassifier(bert_config, num_labels, per_token=per_token))
        for name, var in modeling.variable_map(model).items():
            var.assign(tf.cast(trainer_variables[name], var.dtype))
        module = Exported(model, vocabulary(vocab_file), do_lower_case, max_seq_length, per_token, label_map)
        parent = os.path.dirname(os.path.abspath(export_dir))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="." + os.path.basename(os.path.abspath(export_dir)) + ".", dir=parent)
        try:
            tf.saved_model.save(module, tmp, signatures={
                "serving_default": module.serve.get_concrete_function(),
                "predict_ids": module.predict_ids.get_concrete_function(),
                "tokenize": module.tokenize.get_concrete_function()})
            for name, path in folder_files.items():
                shutil.copyfile(path, os.path.join(tmp, name))
            with open(os.path.join(tmp, "model_info.json"), "w", encoding="utf-8") as handle:
                json.dump(dict(info or {}, do_lower_case=bool(do_lower_case), max_seq_length=max_seq_length,
                               task="ner" if per_token else "re"), handle, indent=2, sort_keys=True)
            old = None
            if os.path.exists(export_dir):
                old = tmp + ".old"
                os.replace(export_dir, old)
            os.replace(tmp, export_dir)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        keras.mixed_precision.set_dtype_policy(policy)
        modeling.set_matmul_dtype(matmul)
    log(f"exported a SavedModel (serving_default on raw strings, predict_ids on token ids) to {export_dir}")
