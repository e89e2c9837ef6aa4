"""Losses, metrics and learning rates against values worked out by hand, on small batches with padding and
positions that must not count: the pre-training loss (masked LM + next sentence), the pre-training evaluation,
the NER loss and evaluation loss under both label schemes; the rate each optimizer step applies (LAMB and Adam).

Every expected number below is written as the arithmetic done by hand (logits are chosen as logs of small
counts, so each probability is a simple fraction), never computed by the project's code. Each case is built
so that counting a padded slot, flipping a label or weighting the wrong positions changes the result.
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from biobert import batching, ner, pretraining, tasks, training
from biobert.tokenization import FullTokenizer

ln = math.log


def logits_of(*counts):
    """Logits whose softmax is counts / sum(counts)."""
    return [ln(c) for c in counts]


# ---------------------------------------------------------------------------------------------------------
# Pre-training: masked LM + next sentence, on a vocabulary of 4 and 3 prediction slots per sequence

# Sequence 0 predicts ids 3 and 1 (slot 2 is padding); sequence 1 predicts id 2 (slots 1, 2 are padding).
# Padding slots carry id 0 and weight 0; the model is made to give them id 0 with probability 0.7, so that
# counting them would change the loss (a low -ln 0.7) and the accuracy (they would all be right).
PAD_SLOT = logits_of(7, 1, 1, 1)
MLM_BATCH = {
    "masked_lm_ids": np.array([[3, 1, 0], [2, 0, 0]], np.int32),
    "masked_lm_weights": np.array([[1, 1, 0], [1, 0, 0]], np.float32),
    "next_sentence_labels": np.array([[0], [1]], np.int32),          # 0: B follows A; 1: B is random
}
MLM_LOGITS = np.array([[logits_of(1, 2, 3, 4),      # id 3: p = 4/10, arg-max 3 (right)
                        logits_of(4, 3, 2, 1),      # id 1: p = 3/10, arg-max 0 (wrong)
                        PAD_SLOT],
                       [logits_of(1, 2, 3, 4),      # id 2: p = 3/10, arg-max 3 (wrong)
                        PAD_SLOT, PAD_SLOT]], np.float32)
NSP_LOGITS = np.array([logits_of(3, 1),             # label 0: p = 3/4 (right)
                       logits_of(1, 4)], np.float32)  # label 1: p = 4/5 (right)


def test_pretraining_loss_counts_weighted_slots_and_the_next_sentence_labels():
    batch = {k: tf.constant(v) for k, v in MLM_BATCH.items()}
    loss = float(pretraining.pretraining_loss(batch, (tf.constant(MLM_LOGITS), tf.constant(NSP_LOGITS))))
    mlm = -(ln(4 / 10) + ln(3 / 10) + ln(3 / 10)) / 3          # 3 real slots: 1.1081
    nsp = -(ln(3 / 4) + ln(4 / 5)) / 2                          # 0.2554
    assert loss == pytest.approx(mlm + nsp, rel=1e-4)            # 1.3635
    # What the bugs would give, far from it: every slot averaged ((3.3243 + 3 x 0.3567) / 6 + nsp = 0.9878)
    # and flipped next-sentence labels (mlm + (-ln 1/4 - ln 1/5) / 2 = 2.6060).
    assert abs(loss - ((-ln(.4) - 2 * ln(.3) - 3 * ln(.7)) / 6 + nsp)) > 0.3
    assert abs(loss - (mlm - (ln(1 / 4) + ln(1 / 5)) / 2)) > 1.0


def test_pretraining_loss_without_real_slots_is_the_next_sentence_loss():
    """A batch whose prediction slots are all padding contributes no masked-LM loss (not 0/0, not the padding)."""
    batch = {"masked_lm_ids": tf.zeros((2, 3), tf.int32), "masked_lm_weights": tf.zeros((2, 3)),
             "next_sentence_labels": tf.constant([[1], [0]])}
    loss = float(pretraining.pretraining_loss(batch, (tf.constant(MLM_LOGITS), tf.constant(NSP_LOGITS))))
    assert loss == pytest.approx(-(ln(1 / 4) + ln(1 / 5)) / 2, rel=1e-5)    # both labels wrong: 1.5041


class FixedOutputs:
    """Stands in for the Trainer in pretraining.evaluate: returns the given outputs batch after batch."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.calls = 0

    def predict(self, batches):
        for _ in batches:
            self.calls += 1
            yield self.outputs[self.calls - 1]


def eval_batches():
    """Two batches of different sizes: the first as above, the second one sequence with one real slot."""
    second = {"masked_lm_ids": np.array([[1, 0, 0]], np.int32),
              "masked_lm_weights": np.array([[1, 0, 0]], np.float32),
              "next_sentence_labels": np.array([[1]], np.int32)}
    outputs = [(MLM_LOGITS, NSP_LOGITS),
               (np.array([[logits_of(1, 2, 3, 4), PAD_SLOT, PAD_SLOT]], np.float32),   # id 1: p = 2/10, wrong
                np.array([logits_of(3, 1)], np.float32))]                              # label 1: p = 1/4, wrong
    return [dict(MLM_BATCH), second], outputs


def test_pretraining_evaluation_counts_real_slots_over_all_batches():
    batches, outputs = eval_batches()
    figures = pretraining.evaluate(FixedOutputs(outputs), iter(batches), max_steps=10)
    # Masked LM: 4 real slots, 1 right (sequence 0's id 3); padding slots (all "right") are not counted, and the
    # figures are over slots, not a mean of the batches' means (that would be (1/3 + 0) / 2).
    assert figures["masked_lm_accuracy"] == pytest.approx(1 / 4)
    assert figures["masked_lm_loss"] == pytest.approx(-(ln(.4) + ln(.3) + ln(.3) + ln(.2)) / 4, rel=1e-5)  # 1.2334
    # Next sentence: 3 sequences, the first two right.
    assert figures["next_sentence_accuracy"] == pytest.approx(2 / 3)
    assert figures["next_sentence_loss"] == pytest.approx(-(ln(3 / 4) + ln(4 / 5) + ln(1 / 4)) / 3, rel=1e-5)
    assert figures["eval_steps"] == 2
    # max_steps stops after the first batch: 1 of 3 slots, both sequences right.
    batches, outputs = eval_batches()
    first = pretraining.evaluate(FixedOutputs(outputs), iter(batches), max_steps=1)
    assert first["eval_steps"] == 1
    assert first["masked_lm_accuracy"] == pytest.approx(1 / 3)
    assert first["masked_lm_loss"] == pytest.approx(-(ln(.4) + ln(.3) + ln(.3)) / 3, rel=1e-5)
    assert first["next_sentence_accuracy"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------------
# NER: the loss under both label schemes, on a toy vocabulary

TOY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "as", "##pi", "##rin", "and", "water"]


@pytest.fixture
def toy_tokenizer(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(t + "\n" for t in TOY_VOCAB), encoding="utf-8")
    return FullTokenizer(path, do_lower_case=False)


def ner_case(tokenizer, scheme):
    """(task, sentences, features, batch padded to 8 positions, logits [2, 8, 7])."""
    sentences = [ner.Sentence(["aspirin", "and", "water"], ["B", "O", "B"], "toy.tsv", 1),
                 ner.Sentence(["water"], ["O"], "toy.tsv", 5)]
    task = tasks.NerTask(scheme)
    task.label_map = ner.LabelMap(["B", "I", "O"])        # BLUE's tags (no I in these two sentences)
    assert task.label_map.labels == ["[PAD]", "B", "I", "O", "X", "[CLS]", "[SEP]"]
    features = task.features(sentences, tokenizer, 16)
    # [CLS] as ##pi ##rin and water [SEP]: labels [CLS] B X X O B [SEP];  [CLS] water [SEP]: [CLS] O [SEP]
    assert features[0]["label_ids"].tolist() == [5, 1, 4, 4, 3, 1, 6]
    assert features[1]["label_ids"].tolist() == [5, 3, 6]
    batch = batching.pad_batch(features, 8)

    def row(label, count):
        """Logits giving ``label`` count/(count + 6) and every other label 1/(count + 6)."""
        out = [0.0] * 7
        out[label] = ln(count)
        return out

    uniform = [0.0] * 7                                     # every label 1/7: -ln(1/7) = ln 7 = 1.9459
    logits = np.array([[uniform,         # [CLS]
                        row(1, 18),      # aspirin, B: 18/24 = 3/4
                        uniform, uniform,  # ##pi, ##rin: X
                        row(3, 6),       # and, O: 6/12 = 1/2
                        row(1, 2),       # water, B: 2/8 = 1/4
                        uniform,         # [SEP]
                        row(2, 50)],     # padding (label [PAD] = 0): the model says I
                       [uniform, row(3, 18), uniform] + [row(2, 50)] * 5], np.float32)
    return task, sentences, features, batch, logits


# The four words' first sub-words: -ln(3/4) - ln(1/2) - ln(1/4) - ln(3/4) = 2.6548.
WORDS = -(ln(3 / 4) + ln(1 / 2) + ln(1 / 4) + ln(3 / 4))


@pytest.mark.parametrize("scheme, expected", [
    ("first_subword", WORDS / 4),                       # the 4 words only: 0.6637
    ("original", (WORDS + 6 * ln(7)) / 10),             # and [CLS], X, X, [SEP], [CLS], [SEP]: 10 positions, 1.4330
])
def test_ner_loss_weights_the_positions_of_its_scheme(toy_tokenizer, scheme, expected):
    task, _, _, batch, logits = ner_case(toy_tokenizer, scheme)
    loss = float(task.loss_fn({k: tf.constant(v) for k, v in batch.items()}, tf.constant(logits)))
    assert loss == pytest.approx(expected, rel=1e-5)
    # Never the padding (label [PAD], where the model says I with 50/56): the 16 positions would give
    # (WORDS + 6 ln 7 + 6 x -ln(1/56)) / 16 = 2.4205.
    assert abs(loss - (WORDS + 6 * ln(7) + 6 * ln(56)) / 16) > 0.9


@pytest.mark.parametrize("scheme, expected", [("first_subword", WORDS / 4), ("original", (WORDS + 6 * ln(7)) / 10)])
def test_ner_evaluation_loss_and_f1(toy_tokenizer, scheme, expected):
    """eval_loss is the training loss of the scheme on the evaluated sentences; eval_f1 is conlleval's over words:
    every word's first sub-word has its gold label as the best word label, so P = R = F1 = 100."""
    task, sentences, features, _, logits = ner_case(toy_tokenizer, scheme)
    probs = task.outputs(features, list(logits))
    figures = task.evaluate(sentences, features, probs)
    assert figures["eval_loss"] == pytest.approx(expected, rel=1e-5)
    assert figures["eval_f1"] == pytest.approx(100.0) and figures["eval_accuracy"] == pytest.approx(100.0)
    # Now the model puts "and" in an entity (I: 6/14 at its first sub-word): found 2 phrases (aspirin-and is one
    # chunk, and water; nothing in sentence 2), correct 1 (water): P = 1/2, R = 1/2 (gold: aspirin, water).
    wrong = logits.copy()
    wrong[0, 4] = [0.0, 0.0, ln(6), ln(3), 0.0, 0.0, 0.0]    # I: 6/14, O: 3/14
    figures = task.evaluate(sentences, features, task.outputs(features, list(wrong)))
    assert figures["eval_precision"] == pytest.approx(50.0) and figures["eval_recall"] == pytest.approx(50.0)
    assert figures["eval_f1"] == pytest.approx(50.0)
    assert figures["eval_accuracy"] == pytest.approx(75.0)        # 3 of 4 words


# ---------------------------------------------------------------------------------------------------------
# The rate each step applies: the optimizers follow the schedule step by step

def test_adam_applies_the_scheduled_rate_of_each_step():
    """A constant gradient 1 on one weight, Adam without bias correction, no weight decay, epsilon 0: step k
    (from 0) has m = 1 - 0.9^(k+1), v = 1 - 0.999^(k+1) and moves the weight by rate_k * m / sqrt(v); the rates
    are fine-tuning's: warm-up k/2 of the peak 0.1 for k < 2, then linearly from the peak to 0 at step 6."""
    import keras

    from biobert import optimization

    schedule = optimization.WarmupPolynomialDecay(0.1, total_steps=6, warmup_steps=2, decay_from_warmup=True)
    opt = optimization.AdamWeightDecay(schedule, weight_decay_rate=0.0, epsilon=0.0)
    var = keras.Variable([3.0])
    opt.build([var])
    expected = 3.0
    for k in range(6):
        opt.apply_reduced([tf.constant([1.0])], [var])
        rate = 0.1 * (k / 2 if k < 2 else (6 - k) / 4)
        expected -= rate * (1 - 0.9 ** (k + 1)) / math.sqrt(1 - 0.999 ** (k + 1))
        assert float(var.numpy()[0]) == pytest.approx(expected, rel=1e-5), k


def test_lamb_applies_the_scheduled_rate_of_each_step():
    """LAMB on one positive weight w with a constant gradient and no weight decay: the bias-corrected Adam
    direction is 1 and the trust ratio |w| / 1, so each step multiplies w by (1 - rate_k); the rates are
    pre-training's: warm-up k/2 of the peak 0.2 for k < 2, then 0.2 (1 - k/6)^0.5 counted from step 0."""
    import keras

    from biobert import optimization

    schedule = optimization.WarmupPolynomialDecay(0.2, total_steps=6, warmup_steps=2, power=0.5)
    opt = optimization.Lamb(schedule, weight_decay_rate=0.0, epsilon=0.0)
    var = keras.Variable([2.0])
    opt.build([var])
    expected = 2.0
    for k in range(6):
        opt.apply_reduced([tf.constant([0.5])], [var])
        expected *= 1 - 0.2 * (k / 2 if k < 2 else (1 - k / 6) ** 0.5)
        assert float(var.numpy()[0]) == pytest.approx(expected, rel=1e-5), k


@pytest.mark.parametrize("kind, power, from_warmup, rates", [
    ("lamb", 0.5, False, [0.0, 0.05] + [0.1 * max(0.0, 1 - k / 6) ** 0.5 for k in range(2, 8)]),   # pre-training's LAMB
    ("adam", 1.0, True, [0.0, 0.05] + [0.1 * max(0.0, (6 - k) / 4) for k in range(2, 8)]),  # fine-tuning's Adam
])
def test_trainer_optimizer_follows_the_configured_schedule(tmp_path, kind, power, from_warmup, rates):
    """The Trainer's optimizer takes the rate of the schedule it logs, at its own step: warm-up over 2 steps to the
    peak 0.1 of 6 steps, then the decay of the configuration (0 after the last step)."""
    from helpers import tiny_config

    from biobert import distribution, modeling
    from biobert.dllogger import RunLog

    runtime = distribution.setup(log=lambda *_: None)
    config = training.TrainConfig(output_dir=str(tmp_path), learning_rate=0.1, num_train_steps=6, num_warmup_steps=2,
                                  optimizer_type=kind, poly_power=power, decay_from_warmup=from_warmup)
    trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(tiny_config(), 3, per_token=True),
                               lambda batch, logits: 0.0, config, RunLog(None, enabled=False))
    applied = []
    for k in range(8):
        trainer.optimizer.iterations.assign(k)
        applied.append(float(trainer.optimizer.learning_rate))
    np.testing.assert_allclose(applied, rates, rtol=1e-5, atol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# conlleval: phrase counts worked out by hand on typed tags

def test_conlleval_counts_a_typed_example_by_hand():
    from biobert import conlleval

    lines = ["Aspirin B-Chemical B-Chemical",     # right
             "induced O O",
             "acute B-Disease B-Disease",         # gold: 2 words; predicted: 1 word
             "hepatitis I-Disease O",
             "with O B-Chemical",                 # predicted: "with NaCl"; gold: "NaCl"
             "NaCl B-Chemical I-Chemical",
             "",
             "cocaine B-Chemical B-Disease",      # the same word, the wrong type, the file's last phrase
             ". O O"]
    counts = conlleval.evaluate(lines)
    # gold: Aspirin, acute hepatitis, NaCl, cocaine; found: Aspirin, acute, with NaCl, cocaine; correct: Aspirin.
    assert (counts.tokens, counts.gold_phrases, counts.found_phrases, counts.correct_phrases) == (8, 4, 4, 1)
    assert counts.correct_tags == 4                  # Aspirin, induced, acute, "."
    m = conlleval.metrics(counts)
    assert (m["precision"], m["recall"], m["f1"], m["accuracy"]) == pytest.approx((25.0, 25.0, 25.0, 50.0))
    # Chemical: correct 1, found 2, gold 3: P 50, R 33.33, F1 2 x 50 x 33.33 / 83.33 = 40. Disease: found 2, gold 1.
    assert m["by_type"]["Chemical"]["f1"] == pytest.approx(40.0)
    assert (m["by_type"]["Disease"]["precision"], m["by_type"]["Disease"]["found"]) == (0.0, 2)
