"""One home per default: a TrainConfig built without flags trains as a run started with the flags' defaults."""
import dataclasses

import pytest
import helpers

from biobert import defaults, training

ENTRY_POINTS = ("run_ner.py", "run_re.py", "run_pretraining.py")
# Set by each job from its own flags: fine-tuning derives warm-up from --warmup_proportion and always uses Adam
# with linear decay; pre-training takes --optimizer_type, --num_warmup_steps and --poly_power (None: by optimizer).
JOB_SETTINGS = {"num_warmup_steps", "optimizer_type", "poly_power"}


@pytest.fixture(scope="module")
def flag_defaults():
    """{entry point: {flag name: default}}, each entry point's flags defined alone in one process."""
    return helpers.flag_defaults(ENTRY_POINTS)


def test_train_config_defaults_are_the_flags_defaults(flag_defaults):
    config = training.TrainConfig(output_dir="out", learning_rate=1e-4, num_train_steps=10)
    compared = set()
    for field in dataclasses.fields(config):
        if field.default is dataclasses.MISSING or field.name in JOB_SETTINGS:
            continue
        for script, values in flag_defaults.items():
            if field.name in values:
                assert getattr(config, field.name) == values[field.name], (script, field.name)
                compared.add(field.name)
    # the four that once differed are among them, and every shared default is a flag of some entry point
    assert {"adam_bias_correction", "allreduce_post_accumulation", "init_loss_scale", "use_xla"} <= compared
    assert compared == set(defaults.TRAINING)


def test_each_job_sets_what_it_has_no_flag_for(flag_defaults):
    fields = {f.name for f in dataclasses.fields(training.TrainConfig)}
    for job, scripts in ((defaults.FINETUNING, ("run_ner.py", "run_re.py")),
                         (defaults.PRETRAINING, ("run_pretraining.py",))):
        assert set(job) <= fields
        for script in scripts:
            assert not set(job) & set(flag_defaults[script]), script
