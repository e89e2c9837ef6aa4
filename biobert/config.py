"""BertConfig: the model's hyper-parameters, read and written as Google's ``bert_config.json``.

Hugging Face ``config.json`` files of BERT models carry the same keys (plus some we ignore), so both load.
"""
import dataclasses
import json
import os

from biobert.errors import InputError
from biobert.fileio import atomic_write_text

# --bert_model presets: BertConfig values (vocab_size comes from the vocabulary).
PRESETS = {
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


@dataclasses.dataclass
class BertConfig:
    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}")

    @classmethod
    def from_dict(cls, values, path=None):
        known = {f.name for f in dataclasses.fields(cls)}
        if "vocab_size" not in values:
            raise InputError("BERT config has no 'vocab_size'", path=path)
        kwargs = {k: v for k, v in values.items() if k in known}
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise InputError(f"invalid BERT config: {err}", path=path) from err

    @classmethod
    def from_json_file(cls, path):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise InputError("BERT config file not found", path=path)
        with open(path, encoding="utf-8") as handle:
            try:
                values = json.load(handle)
            except json.JSONDecodeError as err:
                raise InputError(f"not valid JSON: {err.msg}", path=path, line=err.lineno) from err
        if not isinstance(values, dict):
            raise InputError("BERT config must be a JSON object", path=path)
        return cls.from_dict(values, path=path)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path):
        atomic_write_text(path, self.to_json_string())
