"""The trainer's defaults, in one place: the flags (biobert/flags.py, run_pretraining.py) and
training.TrainConfig take them from here, so that code building a TrainConfig without flags trains as a run
started from the command line with its defaults.

The one-click scripts' per-task defaults (learning rate, batch sizes, epochs, sequence length) live in
configurations.yml, which the scripts read through biobert/launch.py.
"""

# A TrainConfig field and the flag of the same name start from these values.
TRAINING = {
    "weight_decay_rate": 0.01,              # decoupled, not on LayerNorm and bias
    "adam_bias_correction": True,           # textbook Adam, as Hugging Face's AdamW (BENCHMARKS.md: more accurate)
    "num_accumulation_steps": 1,
    "allreduce_post_accumulation": False,   # run_pretraining.py's flag, as NVIDIA's
    "save_checkpoints_steps": 1000,
    "display_loss_steps": 1,
    "max_nonfinite_steps": 200,
    "init_loss_scale": 2.0 ** 32,           # run_pretraining.py's flag, as NVIDIA's
    "use_xla": True,
}

# Fine-tuning has no flag for these: one all-reduce per optimizer step (its micro-batches are parts of one
# batch), and float16 loss scaling starting where TensorFlow's dynamic loss scale, which the original
# fine-tuning used, starts.
FINETUNING = {
    "allreduce_post_accumulation": True,
    "init_loss_scale": 2.0 ** 15,
}

# Pre-training has no flag for this: its Adam (--optimizer_type=adam) is NVIDIA's AdamWeightDecayOptimizer,
# without bias correction (LAMB always corrects).
PRETRAINING = {
    "adam_bias_correction": False,
}
