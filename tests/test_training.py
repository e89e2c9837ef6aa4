"""The shared loop: loss falls, checkpoints resume, accumulation, AMP/XLA steps, optimizer maths."""
import itertools
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_config, toy_features

from biobert import batching, checkpoints, defaults, distribution, modeling, optimization, training
from biobert.dllogger import RunLog
from biobert.tasks import weighted_cross_entropy


class Quiet(RunLog):
    def __init__(self):
        super().__init__(None)
        self.lines = []

    def info(self, text):
        self.lines.append(text)

    def log(self, step, data, text=None):
        self.lines.append((step, data))


def token_loss(batch, logits):
    return weighted_cross_entropy(batch["label_ids"], logits, batch["input_mask"])


@pytest.fixture
def runtime():
    return distribution.setup(log=lambda *_: None)     # conftest restores float32 after each test


def make_trainer(rt, tmp_path, steps, **kw):
    dropout = kw.pop("dropout", 0.1)
    cfg = training.TrainConfig(output_dir=str(tmp_path), learning_rate=kw.pop("lr", 2e-3), num_train_steps=steps,
                               num_warmup_steps=2, display_loss_steps=1, **{"use_xla": False, **kw})
    config = tiny_config(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return training.Trainer(rt, lambda: modeling.BertClassifier(config, 4, per_token=True), token_loss, cfg, Quiet())


def losses(log):
    return [d["loss"] for s, d in logged(log) if "loss" in d]


def logged(log):
    return [entry for entry in log.lines if isinstance(entry, tuple)]


def test_loss_falls_and_checkpoint_resumes_at_step(runtime, tmp_path):
    feats = toy_features()
    trainer = make_trainer(runtime, tmp_path, steps=30, save_checkpoints_steps=10)
    trainer.fit(batching.training_batches(feats, 16, 32, seed=3))
    seen = losses(trainer.log)
    assert np.mean(seen[-5:]) < 0.7 * np.mean(seen[:5])
    assert checkpoints.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-30")
    # A new run in the same output_dir continues from the saved state, optimizer included.
    again = make_trainer(runtime, tmp_path, steps=35)
    assert again.restore_latest() == 30
    assert int(again.optimizer.iterations.numpy()) == 30
    name = "bert/encoder/layer_0/attention/self/query/kernel"
    np.testing.assert_array_equal(again.variables[name].numpy(), trainer.variables[name].numpy())
    np.testing.assert_array_equal(again.optimizer.slots(again.variables[name])["adam_v"].numpy(),
                                  trainer.optimizer.slots(trainer.variables[name])["adam_v"].numpy())
    again.fit(batching.training_batches(feats, 16, 32, seed=3, start_step=30))
    assert int(again.global_step.numpy()) == 35
    assert [s for s, d in logged(again.log) if "loss" in d] == [31, 32, 33, 34, 35]


def test_resumed_run_draws_the_dropout_masks_of_an_uninterrupted_one(runtime, tmp_path):
    # With dropout on, a run stopped after its step-3 checkpoint and resumed must take the same steps 4..6 as the
    # run never stopped: the checkpoint holds the dropout seed generators' state, not only weights, slots, step.
    feats = toy_features()
    keras.utils.set_random_seed(11)
    whole = make_trainer(runtime, tmp_path / "whole", steps=6, save_checkpoints_steps=3, keep_checkpoints=2)
    whole.fit(batching.training_batches(feats, 16, 32, seed=3))
    cut = tmp_path / "cut"
    cut.mkdir()
    for produced in (tmp_path / "whole").glob("model.ckpt-3.*"):
        shutil.copy(produced, cut / produced.name)
    (cut / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-3"\n')
    assert "rng/dropout_0" in dict(tf.train.list_variables(str(cut / "model.ckpt-3")))

    keras.utils.set_random_seed(12)                      # a new process starts from other dropout seeds
    resumed = make_trainer(runtime, cut, steps=6, save_checkpoints_steps=0)
    assert resumed.restore_latest() == 3
    resumed.fit(batching.training_batches(feats, 16, 32, seed=3, start_step=3))
    assert len(losses(resumed.log)) == 3
    np.testing.assert_allclose(losses(resumed.log), losses(whole.log)[3:], rtol=1e-6)
    for name, var in whole.variables.items():
        np.testing.assert_allclose(resumed.variables[name].numpy(), var.numpy(), rtol=0, atol=1e-6, err_msg=name)

    # A checkpoint from before the seeds were saved still resumes, saying its dropout masks are new.
    old = {n: v for n, v in whole.state_variables().items() if not n.startswith("rng/")}
    checkpoints.save_checkpoint(str(tmp_path / "old"), 6, old)
    again = make_trainer(runtime, tmp_path / "old", steps=8)
    assert again.restore_latest() == 6
    assert any("no dropout seed state" in str(line) for line in again.log.lines)


@pytest.mark.parametrize("xla", [False, True])
def test_batches_of_every_length_run_one_trace(runtime, tmp_path, xla):
    # Training batches padded to 8..24 and inference batches of other shapes: one trace each of the training
    # step and of the forward pass, and the same losses as the step traced for each shape.
    feats = toy_features(n=64, seed=4)
    batches = list(itertools.islice(batching.training_batches(feats, 8, 32, seed=1, pad_multiple=8, sort_window=1), 8))
    assert len({b["input_ids"].shape[1] for b in batches}) >= 2
    keras.utils.set_random_seed(5)
    trainer = make_trainer(runtime, tmp_path, steps=len(batches), dropout=0.0, use_xla=xla)
    trainer.fit(iter(batches))
    assert trainer.train_step.apply.function.experimental_get_tracing_count() == 1
    outputs = list(trainer.predict([{k: v[:n] for k, v in b.items()} for b, n in zip(batches[:3], (8, 5, 3))]))
    assert [o.shape[0] for o in outputs] == [8, 5, 3]
    assert trainer._forward.function.experimental_get_tracing_count() == 1
    # The same steps, each shape traced by itself.
    keras.utils.set_random_seed(5)
    plain = make_trainer(runtime, tmp_path / "plain", steps=len(batches), dropout=0.0, use_xla=xla)
    plain.train_step.apply = plain.train_step.apply.function
    plain.fit(iter(batches))
    np.testing.assert_allclose(losses(trainer.log), losses(plain.log), rtol=1e-5)


def test_gradient_accumulation_matches_one_large_batch(runtime, tmp_path):
    # Equal lengths, so the mean over 16 examples' tokens is the mean of the two halves' means.
    feats = [dict(f, input_ids=f["input_ids"][:4], segment_ids=f["segment_ids"][:4], label_ids=f["label_ids"][:4])
             for f in toy_features(n=16, seed=1)]
    big = batching.pad_batch(feats, 32)
    halves = [batching.pad_batch(feats[:8], 32), batching.pad_batch(feats[8:], 32)]
    trainers, losses = [], []
    for accum, batches in ((1, [big]), (2, halves)):
        keras.utils.set_random_seed(7)
        trainer = make_trainer(runtime, tmp_path / str(accum), steps=1, dropout=0.0, clip_norm=0.0,
                               num_accumulation_steps=accum)
        losses.append(trainer.fit(iter(batches)))
        trainers.append(trainer)
    one, two = trainers
    # The step's reported loss (summed with the gradients, no collective of its own) is the big batch's.
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert int(two.global_step.numpy()) == 1 and int(two.optimizer.iterations.numpy()) == 1
    for name in ("bert/encoder/layer_1/output/dense/kernel", "bert/embeddings/word_embeddings", "output_weights"):
        # The first moment after one step is (1 - beta_1) * gradient: it shows the gradient's scale too.
        m_one = one.optimizer.slots(one.variables[name])["adam_m"].numpy()
        m_two = two.optimizer.slots(two.variables[name])["adam_m"].numpy()
        assert np.abs(m_one).max() > 0
        np.testing.assert_allclose(m_two, m_one, rtol=1e-4, atol=1e-8)
        np.testing.assert_allclose(two.variables[name].numpy(), one.variables[name].numpy(), rtol=1e-5, atol=1e-6)


def test_length_sorted_parts_give_the_whole_batch_update(runtime, tmp_path):
    # A sequence classifier with a mean loss over rows, as run_re.py: one step on a plainly shuffled batch of 16
    # mixed-length rows (padded to the longest) and one step accumulating its 4 length-sorted parts agree.
    feats = [dict(f, label=int(f["input_ids"][0] % 3)) for f in toy_features(n=16, seed=2)]

    def row_loss(batch, logits):
        return weighted_cross_entropy(batch["label"], logits, batch["valid"])

    trainers = []
    # The whole batch; its 4 parts in one step (run_re.py); its 4 parts accumulated one by one (under XLA).
    for parts, accum in ((1, 1), (4, 1), (4, 4)):
        keras.utils.set_random_seed(7)
        cfg = training.TrainConfig(output_dir=str(tmp_path / f"{parts}-{accum}"), learning_rate=1e-3,
                                   num_train_steps=1, clip_norm=1.0, num_accumulation_steps=accum, use_xla=False,
                                   **defaults.FINETUNING)
        config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 3, per_token=False), row_loss,
                                   cfg, Quiet())
        batches = batching.training_batches(feats, 16, 32, seed=1, pad_multiple=1, sort_window=1, parts=parts)
        trainer.fit(batching.flat_parts(batches) if accum > 1 else batches)
        trainers.append(trainer)
    first = next(batching.training_batches(feats, 16, 32, seed=1, pad_multiple=1, sort_window=1, parts=4))
    assert len({p["input_ids"].shape[1] for p in first}) > 1    # the parts really are padded differently
    one = trainers[0]
    losses_logged = [losses(t.log) for t in trainers]
    np.testing.assert_allclose(losses_logged[1], losses_logged[0], rtol=1e-5)
    np.testing.assert_allclose(losses_logged[2], losses_logged[0], rtol=1e-5)
    for other in trainers[1:]:
        for name in ("bert/encoder/layer_1/output/dense/kernel", "bert/embeddings/word_embeddings",
                     "output_weights"):
            m_one = one.optimizer.slots(one.variables[name])["adam_m"].numpy()
            m_other = other.optimizer.slots(other.variables[name])["adam_m"].numpy()
            assert np.abs(m_one).max() > 0
            np.testing.assert_allclose(m_other, m_one, rtol=1e-4, atol=1e-8)
            np.testing.assert_allclose(other.variables[name].numpy(), one.variables[name].numpy(), rtol=1e-5,
                                       atol=1e-6)


@pytest.mark.parametrize("amp,xla", [(True, False), (False, True), (True, True)])
def test_amp_and_xla_training_steps(tmp_path, amp, xla):
    # No GPU here: --amp is bfloat16 products in a float32 model (no loss scaling; forced, as on a CPU with
    # bfloat16 arithmetic, so that the path is tested on any CPU); --noamp all float32.
    rt = distribution.setup(amp=amp, use_xla=xla, log=lambda *_: None, cpu_bf16=True)
    modeling.set_matmul_dtype(rt.matmul_dtype)                 # as a job does (job.start_job)
    assert rt.policy == "float32" and rt.matmul_dtype == ("bfloat16" if amp else None) and not rt.loss_scaling
    trainer = make_trainer(rt, tmp_path, steps=3, use_xla=xla)
    layer = trainer.model.bert.encoder_layers[0].attention.query
    x = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    rounded = tf.cast(tf.matmul(tf.cast(x, tf.bfloat16), tf.cast(kernel, tf.bfloat16)), tf.float32) + bias
    out = layer(x).numpy()
    assert out.dtype == np.float32 and layer.kernel.dtype == "float32"
    if amp:                                        # the product rounded to bfloat16, the bias added in float32
        np.testing.assert_array_equal(out, rounded.numpy())
        assert not np.allclose(out, x @ kernel + bias, rtol=1e-5, atol=0)
    else:
        np.testing.assert_allclose(out, x @ kernel + bias, rtol=1e-5, atol=1e-6)
    before = trainer.variables["output_weights"].numpy().copy()
    trainer.fit(batching.training_batches(toy_features(), 16, 32, seed=1))
    assert all(np.isfinite(losses(trainer.log)))
    assert not np.array_equal(trainer.variables["output_weights"].numpy(), before)


@pytest.mark.parametrize("policy,matmul_dtype,tolerance",
                         [("float32", "bfloat16", 1e-6), ("mixed_bfloat16", None, 1e-2)])
def test_bias_gradient_is_the_sum_of_the_upstream_gradient(policy, matmul_dtype, tolerance):
    # Keras's Dense adds its bias with BiasAdd, whose CPU gradient sums bfloat16 rows in bfloat16 (~6 % off
    # over 1920 rows); ours sums in float32 (--amp on a CPU) or at least accurately (bfloat16 activations).
    keras.mixed_precision.set_dtype_policy(policy)
    modeling.set_matmul_dtype(matmul_dtype)
    rng = np.random.default_rng(0)
    layer = modeling.Dense(48)
    layer.build((None, None, 48))
    x = rng.standard_normal((32, 60, 48)).astype(np.float32)
    upstream = tf.cast(rng.standard_normal((32, 60, 48)) * 1e-3, layer.compute_dtype)
    with tf.GradientTape() as tape:
        y = layer(x)
    grad = tape.gradient(y, layer.bias, output_gradients=upstream).numpy()
    exact = tf.reduce_sum(tf.cast(upstream, tf.float64), axis=[0, 1]).numpy()
    assert np.linalg.norm(grad - exact) / np.linalg.norm(exact) < tolerance


def test_schedule_warmup_then_linear_decay():
    schedule = optimization.WarmupPolynomialDecay(1e-3, total_steps=100, warmup_steps=10)
    values = [float(schedule(s)) for s in (0, 4, 9, 10, 55, 99, 100, 150)]
    np.testing.assert_allclose(values, [0.0, 4e-4, 9e-4, 9e-4, 4.5e-4, 1e-5, 0.0, 0.0], rtol=1e-5, atol=1e-9)


def test_schedule_decay_from_end_of_warmup():
    # Fine-tuning's form: the peak holds when warm-up ends, then falls linearly to 0 over the remaining 90 steps.
    schedule = optimization.WarmupPolynomialDecay(1e-3, total_steps=100, warmup_steps=10, decay_from_warmup=True)
    values = [float(schedule(s)) for s in (0, 9, 10, 55, 99, 100, 150)]
    np.testing.assert_allclose(values, [0.0, 9e-4, 1e-3, 5e-4, 1e-3 / 90, 0.0, 0.0], rtol=1e-5, atol=1e-9)
    restored = optimization.WarmupPolynomialDecay.from_config(schedule.get_config())
    assert float(restored(55)) == float(schedule(55))
    # Every step equals Hugging Face's get_linear_schedule_with_warmup (the ChemProt peer's): step / warmup during
    # warm-up (the first update at rate 0, as Google's BERT), then (total - step) / (total - warmup), floored at 0.
    hf = [1e-3 * (s / 10 if s < 10 else max(0.0, (100 - s) / 90)) for s in range(120)]
    np.testing.assert_allclose([float(schedule(s)) for s in range(120)], hf, rtol=1e-5, atol=1e-10)


def test_lamb_first_step_matches_hand_computation():
    w0 = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    b0 = np.array([0.1, -0.2], np.float32)
    g_w = np.array([[0.1, 0.2], [-0.3, 0.4]], np.float32)
    g_b = np.array([1.0, -2.0], np.float32)
    w, b = keras.Variable(w0, name="kernel"), keras.Variable(b0, name="bias")
    opt = optimization.Lamb(0.01, weight_decay_rate=0.01)
    opt.set_variable_names({"bert/pooler/dense/kernel": w, "bert/pooler/dense/bias": b})
    opt.apply_gradients([(g_w, w), (g_b, b)])
    # Step 1 (counted from 1): m_hat = g, v_hat = g^2, so the Adam direction is g / (|g| + eps).
    def expected(x, g, decay):
        r = g / (np.abs(g) + 1e-6) + (0.01 * x if decay else 0.0)
        ratio = np.linalg.norm(x) / np.linalg.norm(r)
        return x - 0.01 * ratio * r
    assert np.all(np.isfinite(w.numpy()))
    np.testing.assert_allclose(w.numpy(), expected(w0, g_w, True), rtol=1e-5)
    np.testing.assert_allclose(b.numpy(), expected(b0, g_b, False), rtol=1e-5)   # bias: no weight decay


def test_adam_weight_decay_exclusions():
    kernel = keras.Variable(np.ones((2, 2), np.float32), name="kernel")
    gamma = keras.Variable(np.ones((2,), np.float32), name="gamma")
    opt = optimization.AdamWeightDecay(0.1, weight_decay_rate=0.5)
    opt.set_variable_names({"bert/encoder/layer_0/output/dense/kernel": kernel,
                            "bert/encoder/layer_0/output/LayerNorm/gamma": gamma})
    opt.apply_gradients([(np.zeros((2, 2), np.float32), kernel), (np.zeros((2,), np.float32), gamma)])
    np.testing.assert_allclose(kernel.numpy(), 1 - 0.1 * 0.5)     # zero gradient: only the decay moves it
    np.testing.assert_allclose(gamma.numpy(), 1.0)                 # LayerNorm: excluded
