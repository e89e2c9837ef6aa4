"""benchmarks/weights_apart.py: distances per tensor group between two trainings' weights."""
import numpy as np
import pytest
from helpers import load_script

apart = load_script("benchmarks/weights_apart.py", "weights_apart")


def test_groups_follow_the_hugging_face_names():
    assert apart.group("bert.embeddings.word_embeddings.weight") == "embeddings"
    assert apart.group("bert.encoder.layer.11.output.LayerNorm.bias") == "layer11"
    assert apart.group("bert.pooler.dense.weight") == "pooler"
    assert apart.group("classifier.weight") == "classifier"


def test_distances_per_group_and_in_total(tmp_path, capsys):
    init = {"bert.embeddings.word_embeddings.weight": np.zeros((2, 2), np.float32),
            "bert.encoder.layer.0.output.dense.weight": np.zeros(3, np.float32),
            "classifier.weight": np.ones(2, np.float32)}
    a = {k: v.copy() for k, v in init.items()}
    b = {k: v.copy() for k, v in init.items()}
    a["bert.embeddings.word_embeddings.weight"][0] = [3.0, 4.0]        # A moved 5, B 0 in the embeddings
    b["bert.encoder.layer.0.output.dense.weight"][:] = [2.0, 0.0, 0.0]   # B moved 2 in layer 0, A 0
    a["classifier.weight"] += [0.0, 1.0]
    b["classifier.weight"] += [0.0, 1.0]                                 # the same move: 0 apart
    sums = apart.squared_distances(init, a, b)
    np.testing.assert_allclose(np.sqrt(sums["embeddings"]), [5.0, 0.0, 5.0])
    np.testing.assert_allclose(np.sqrt(sums["layer0"]), [0.0, 2.0, 2.0])
    np.testing.assert_allclose(np.sqrt(sums["classifier"]), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(sums["total"], [26.0, 5.0, 29.0])
    for name, weights in (("init", init), ("a", a), ("b", b)):
        np.savez(tmp_path / f"{name}.npz", **weights)
    assert apart.main([f"--init={tmp_path / 'init.npz'}", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    total = [line for line in capsys.readouterr().out.splitlines() if line.startswith("total")][0].split()
    assert [float(x) for x in total[1:]] == pytest.approx([26 ** 0.5, 5 ** 0.5, 29 ** 0.5, (29 / 5) ** 0.5], abs=1e-4)


def test_a_tensor_missing_from_the_first_file_is_an_error():
    init = {"classifier.weight": np.zeros(2)}
    with pytest.raises(SystemExit, match="classifier.weight"):
        apart.squared_distances(init, {}, {"classifier.weight": np.ones(2)})
