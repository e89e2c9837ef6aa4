"""The job layer (biobert.job): the settings a fine-tuning job takes from a fine-tuned folder it predicts from,
and the one place the model files are looked up."""
import json
import shutil
import types

import pytest
from helpers import tiny_config

from biobert import job, modeling
from biobert.errors import InputError


class Flags(dict):
    """Stands in for absl's FLAGS: attribute access, ``name in FLAGS``, ``FLAGS[name].present`` (True for the
    names in ``given``: set on the command line)."""
    __getattr__ = dict.__getitem__

    def __init__(self, given=(), **values):
        super().__init__(values)
        self.given = set(given)

    def __getitem__(self, name):
        return types.SimpleNamespace(present=name in self.given)

    def flags_by_module_dict(self):
        return {}


def finetuning_flags(given=(), **over):
    values = dict(do_train=False, do_eval=False, do_predict=False, predict_file=None, export_dir=None, data_dir=None,
                  output_dir="out", init_checkpoint=None, do_lower_case=True, max_seq_length=128,
                  bert_config_file=None, vocab_file=None, bert_model=None, iterations_per_loop=100, dllog_path=None)
    values.update(over)
    return Flags(given, **values)


@pytest.fixture
def fine_tuned(tmp_path, cased_vocab):
    """A fine-tuned output folder's model files: cased, trained with max_seq_length 64."""
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(cased_vocab, folder / "vocab.txt")
    tiny_config().to_json_file(folder / "bert_config.json")
    (folder / "model_info.json").write_text(json.dumps({"do_lower_case": False, "max_seq_length": 64,
                                                        "entity_type": "Chemical"}))
    return folder


def test_predicting_from_a_fine_tuned_folder_takes_its_length_casing_and_files(fine_tuned):
    settings = job.finetuning_settings(finetuning_flags(init_checkpoint=str(fine_tuned), predict_file="in.txt"))
    assert settings.max_seq_length == 64 and settings.do_lower_case is False
    assert settings.vocab_file == str(fine_tuned / "vocab.txt")
    assert settings.bert_config == str(fine_tuned / "bert_config.json")
    assert settings.model_info["entity_type"] == "Chemical"
    assert settings.predict_file == "in.txt" and not settings.predict_test


def test_a_sequence_length_given_on_the_command_line_wins(fine_tuned):
    flags = finetuning_flags(given={"max_seq_length"}, init_checkpoint=str(fine_tuned), max_seq_length=32,
                             do_predict=True, predict_file="in.txt")
    assert job.finetuning_settings(flags).max_seq_length == 32


def test_training_from_a_fine_tuned_folder_takes_the_flags(fine_tuned, tmp_path):
    flags = finetuning_flags(init_checkpoint=str(fine_tuned), do_train=True, data_dir=str(tmp_path))
    settings = job.finetuning_settings(flags)
    assert settings.max_seq_length == 128 and settings.do_lower_case is True and settings.model_info == {}


def test_a_casing_given_against_the_fine_tuned_folder_stops(fine_tuned):
    flags = finetuning_flags(given={"do_lower_case"}, init_checkpoint=str(fine_tuned), predict_file="in.txt")
    with pytest.raises(InputError, match="fine-tuned with do_lower_case=False") as caught:
        job.finetuning_settings(flags)
    assert str(fine_tuned / "model_info.json") in str(caught.value)


def test_model_files_order(fine_tuned, tmp_path, cased_vocab):
    given = tmp_path / "given_config.json"
    tiny_config().to_json_file(given)
    init = str(fine_tuned)
    assert job.model_files(str(given), None, init) == (str(given), str(fine_tuned / "vocab.txt"))
    preset, vocab = job.model_files(None, str(cased_vocab), init, bert_model="tiny")
    assert vocab == str(cased_vocab) and preset.hidden_size == 128
    assert preset.vocab_size == sum(1 for _ in open(cased_vocab, encoding="utf-8"))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    tiny_config().to_json_file(resumed / "bert_config.json")
    assert job.model_files(None, None, init, resumed=str(resumed))[0] == str(resumed / "bert_config.json")
    assert job.model_files(None, None, init)[0] == str(fine_tuned / "bert_config.json")
    with pytest.raises(InputError, match="--vocab_file is required"):
        job.model_files(str(given), None, None)
    assert job.model_files(str(given), None, None, vocab_required=False) == (str(given), None)
    with pytest.raises(InputError, match=r"required \(or --bert_model=tiny\|base\|large, or an --init_checkpoint"):
        job.model_files(None, str(cased_vocab), None)
    with pytest.raises(InputError, match=r"required \(or an --init_checkpoint"):
        job.model_files(None, str(cased_vocab), None, presets=False)


def test_start_job_sets_the_models_matmul_dtype_from_the_runtime(tmp_path, monkeypatch):
    from biobert import distribution, runcontrol

    real_setup = distribution.setup
    monkeypatch.setattr(distribution, "setup", lambda **kw: real_setup(cpu_bf16=True, **kw))
    settings = job.Settings(output_dir=str(tmp_path), dllog_path=str(tmp_path / "log.json"), max_seq_length=16,
                            seed=1, amp=True)
    try:
        _, runtime, log = job.start_job(settings, tiny_config())
        log.close()
    finally:
        runcontrol.PREEMPTION.uninstall()
    assert runtime.matmul_dtype == "bfloat16" and modeling.matmul_dtype() == "bfloat16"
    assert real_setup(amp=True, cpu_bf16=True, log=lambda *_: None).matmul_dtype == "bfloat16"
    modeling.set_matmul_dtype(None)
    real_setup(amp=True, cpu_bf16=True, log=lambda *_: None)
    assert modeling.matmul_dtype() is None          # distribution.setup leaves the models' dtype to the job
