"""One home per default: a TrainConfig built without flags trains as a run started with the flags' defaults."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
from helpers import REPO

from biobert import defaults, training

ENTRY_POINTS = ("run_ner.py", "run_re.py", "run_pretraining.py")
# Set by each job from its own flags: fine-tuning derives warm-up from --warmup_proportion and always uses Adam
# with linear decay; pre-training takes --optimizer_type, --num_warmup_steps and --poly_power (None: by optimizer).
JOB_SETTINGS = {"num_warmup_steps", "optimizer_type", "poly_power"}


@pytest.fixture(scope="module")
def flag_defaults():
    """{entry point: {flag name: default}}, each entry point's flags defined alone in one process."""
    code = """
import json, runpy, sys
from absl import flags
out = {}
for path in sys.argv[1:]:
    for name in list(flags.FLAGS):
        delattr(flags.FLAGS, name)
    runpy.run_path(path, run_name="defaults_check")
    out[path] = {name: flags.FLAGS[name].default for name in flags.FLAGS}
print(json.dumps(out))
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, *ENTRY_POINTS], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


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
