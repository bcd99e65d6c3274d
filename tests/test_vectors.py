"""SteeringVectors: validation, container behaviour, safetensors + JSON storage, GGUF export."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import gguf
import numpy as np
import pytest
import torch

from xsteer.vectors import SteeringVectors

D, DEPTH = 8, 4


def _unit_rows(layers, d=D, seed=0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for l in layers:
        v = rng.standard_normal(d).astype(np.float32)
        out[l] = v / np.linalg.norm(v)
    return out


def _vectors(layers=(0, 1, 3), **overrides) -> SteeringVectors:
    rows = _unit_rows(layers)
    kwargs = dict(
        directions={l: torch.from_numpy(v) for l, v in rows.items()},
        model_name="parent-x",
        d_model=D,
        n_layers=DEPTH,
        method="pca",
        seed=7,
        data_hash="abc123",
        explained_variance={l: 0.1 * (l + 1) for l in layers},
        sign_agreement={l: 1.0 - 0.05 * l for l in layers},
        provenance={"pairs": 40, "split": "train", "note": [1, 2]},
    )
    kwargs.update(overrides)
    return SteeringVectors(**kwargs)


def _fake_model(d_model: int, n_layers: int, name: str = "child-y"):
    return SimpleNamespace(cfg=SimpleNamespace(d_model=d_model, n_layers=n_layers, model_name=name))


# ----------------------------------------------------------------------------- construction


def test_from_raw_normalises_each_vector_keeping_its_sign():
    rng = np.random.default_rng(1)
    raw = {1: rng.standard_normal(D) * 5.0, 2: -rng.standard_normal(D) * 0.01}
    sv = SteeringVectors.from_raw(raw, model_name="m", d_model=D, n_layers=DEPTH, method="mean_diff")
    for l, v in raw.items():
        np.testing.assert_allclose(sv[l].numpy(), v / np.linalg.norm(v), rtol=1e-6, atol=1e-7)
        assert sv[l].dtype == torch.float32


def test_from_raw_rejects_zero_vector():
    with pytest.raises(ValueError, match="zero or non-finite"):
        SteeringVectors.from_raw({1: np.zeros(D)}, model_name="m", d_model=D, n_layers=DEPTH, method="pca")


def test_non_unit_vector_raises_and_names_the_fix():
    v = torch.from_numpy(_unit_rows([1])[1]) * 1.01
    with pytest.raises(ValueError, match=r"norm 1\.01.*v / v\.norm\(\).*from_raw"):
        _vectors(layers=(1,), directions={1: v})


def test_vector_within_tolerance_is_accepted():
    v = torch.from_numpy(_unit_rows([1])[1]) * (1 + 5e-5)
    assert _vectors(layers=(1,), directions={1: v}).layers == [1]


@pytest.mark.parametrize("layer", [DEPTH, -1])
def test_layer_out_of_range_raises(layer):
    v = torch.from_numpy(_unit_rows([0])[0])
    with pytest.raises(ValueError, match=rf"Layer {layer} is outside \[0, {DEPTH}\)"):
        _vectors(layers=(), directions={layer: v})


def test_wrong_width_or_shape_raises():
    with pytest.raises(ValueError, match=r"shape \(16,\); expected \(8,\)"):
        _vectors(layers=(), directions={1: torch.from_numpy(_unit_rows([1], d=16)[1])})
    with pytest.raises(ValueError, match=r"shape \(1, 8\)"):
        _vectors(layers=(), directions={1: torch.from_numpy(_unit_rows([1])[1])[None]})


def test_non_finite_vector_raises():
    v = torch.from_numpy(_unit_rows([1])[1]).clone()
    v[0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        _vectors(layers=(), directions={1: v})


def test_empty_directions_raise():
    with pytest.raises(ValueError, match="at least one layer"):
        _vectors(layers=(), directions={})


def test_per_layer_stats_must_belong_to_vector_layers():
    with pytest.raises(ValueError, match=r"explained_variance has layers \[2\]"):
        _vectors(layers=(1,), explained_variance={1: 0.5, 2: 0.4})


def test_provenance_must_be_json_serialisable():
    with pytest.raises(ValueError, match="JSON-serialisable"):
        _vectors(provenance={"weights": torch.zeros(2)})


# ----------------------------------------------------------------------------- container


def test_container_protocol():
    rows = _unit_rows([3, 0, 1])
    sv = _vectors(layers=(), directions={l: torch.from_numpy(v) for l, v in rows.items()})
    assert sv.layers == [0, 1, 3]
    assert list(sv) == [0, 1, 3]
    assert len(sv) == 3
    np.testing.assert_array_equal(sv[3].numpy(), rows[3])
    with pytest.raises(KeyError, match=r"available layers: \[0, 1, 3\]"):
        sv[2]


def test_select_keeps_only_the_chosen_layers():
    sv = _vectors(layers=(0, 1, 3))
    sub = sv.select([3, 1])
    rows = _unit_rows((0, 1, 3))
    assert sub.layers == [1, 3]
    for l in (1, 3):
        np.testing.assert_array_equal(sub[l].numpy(), rows[l])
    assert sub.explained_variance == {1: 0.2, 3: 0.4}
    assert sub.sign_agreement == {1: 0.95, 3: 0.85}
    assert (sub.model_name, sub.method, sub.seed, sub.provenance) == (
        "parent-x", "pca", 7, {"pairs": 40, "split": "train", "note": [1, 2]}
    )
    assert sv.layers == [0, 1, 3]
    with pytest.raises(ValueError, match=r"No vectors at layers \[2\].*Fix: select layers they have"):
        sv.select([1, 2])


def test_equality_sees_every_field():
    assert _vectors() == _vectors()
    assert _vectors() != _vectors(seed=8)
    assert _vectors() != _vectors(sign_agreement={0: 1.0, 1: 0.95, 3: 0.8})
    flipped = {l: -torch.from_numpy(v) for l, v in _unit_rows((0, 1, 3)).items()}
    assert _vectors() != _vectors(directions=flipped)


# ----------------------------------------------------------------------------- storage


@pytest.mark.parametrize("name", ["vecs", "vecs.safetensors", "vecs.json"])
def test_save_load_round_trip(tmp_path, name):
    sv = _vectors()
    written = sv.save(tmp_path / "out" / name)
    assert written == tmp_path / "out" / "vecs.safetensors"
    assert (tmp_path / "out" / "vecs.json").is_file()

    back = SteeringVectors.load(tmp_path / "out" / name)
    rows = _unit_rows((0, 1, 3))
    assert back.layers == [0, 1, 3]
    for l, v in rows.items():
        assert back[l].dtype == torch.float32
        np.testing.assert_array_equal(back[l].numpy(), v)
    assert back.model_name == "parent-x"
    assert (back.d_model, back.n_layers, back.method) == (D, DEPTH, "pca")
    assert (back.seed, back.data_hash) == (7, "abc123")
    assert back.explained_variance == {0: 0.1, 1: 0.2, 3: 0.4}
    assert back.sign_agreement == {0: 1.0, 1: 0.95, 3: 0.85}
    assert back.provenance == {"pairs": 40, "split": "train", "note": [1, 2]}
    assert back == sv


def test_sidecar_is_plain_json_and_tensors_are_safetensors_not_pickle(tmp_path):
    sv = _vectors()
    sv.save(tmp_path / "vecs")
    meta = json.loads((tmp_path / "vecs.json").read_text())
    assert meta["model_name"] == "parent-x" and meta["d_model"] == D and meta["layers"] == [0, 1, 3]
    assert meta["explained_variance"] == {"0": 0.1, "1": 0.2, "3": 0.4}

    # Parse the safetensors layout by hand: u64 little-endian header length, JSON header, raw data.
    raw = (tmp_path / "vecs.safetensors").read_bytes()
    assert not raw.startswith((b"\x80", b"PK"))  # neither a pickle stream nor a torch zip archive
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    rows = _unit_rows((0, 1, 3))
    for l, v in rows.items():
        entry = header[f"layer.{l}"]
        assert entry["dtype"] == "F32" and entry["shape"] == [D]
        start, end = entry["data_offsets"]
        np.testing.assert_array_equal(np.frombuffer(data[start:end], dtype="<f4"), v)


def test_load_missing_file_says_which(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors does not exist.*SteeringVectors\.save"):
        SteeringVectors.load(tmp_path / "nope")
    _vectors().save(tmp_path / "half")
    (tmp_path / "half.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"half\.json does not exist"):
        SteeringVectors.load(tmp_path / "half")


def test_load_rejects_inconsistent_pair(tmp_path):
    _vectors().save(tmp_path / "vecs")
    meta = json.loads((tmp_path / "vecs.json").read_text())
    meta["layers"] = [0, 1]
    (tmp_path / "vecs.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="inconsistent"):
        SteeringVectors.load(tmp_path / "vecs")


def test_load_for_other_width_names_both_widths_and_the_fix(tmp_path):
    _vectors().save(tmp_path / "vecs")
    with pytest.raises(ValueError, match=r"8-wide.*16-wide.*xsteer\.transfer\.Transfer.*load the model"):
        SteeringVectors.load(tmp_path / "vecs", d_model=16)
    with pytest.raises(ValueError, match=r"8-wide.*'child-y' is 16-wide.*xsteer\.transfer\.Transfer"):
        SteeringVectors.load(tmp_path / "vecs", model=_fake_model(16, DEPTH))
    assert SteeringVectors.load(tmp_path / "vecs", d_model=D, model=_fake_model(D, DEPTH)).layers == [0, 1, 3]


def test_check_compatible_layer_range():
    sv = _vectors(layers=(0, 3))
    expected = r"Layers \[3\] do not exist in 'child-y', which has 3 blocks.*\.select"
    with pytest.raises(ValueError, match=expected):
        sv.check_compatible(_fake_model(D, 3))
    sv.select([0]).check_compatible(_fake_model(D, 3))
    sv.check_compatible(_fake_model(D, 4))


def test_check_compatible_with_a_real_bridge(tiny_llama):
    rows = _unit_rows((0, 2), d=64)
    sv = SteeringVectors(
        directions={l: torch.from_numpy(v) for l, v in rows.items()},
        model_name="p", d_model=64, n_layers=3, method="random", seed=0,
    )
    sv.check_compatible(tiny_llama)
    narrow = SteeringVectors.from_raw(
        {0: np.ones(32)}, model_name="p", d_model=32, n_layers=3, method="random"
    )
    with pytest.raises(ValueError, match=r"32-wide.*64-wide"):
        narrow.check_compatible(tiny_llama)


# ----------------------------------------------------------------------------- GGUF


def test_gguf_export_reads_back_as_llama_cpp_control_vector(tmp_path):
    sv = _vectors(layers=(0, 1, 3))
    with pytest.warns(UserWarning, match="block 0"):
        path = sv.to_gguf(tmp_path / "cv")
    assert path == tmp_path / "cv.gguf"

    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "controlvector"
    assert reader.fields["controlvector.model_hint"].contents() == "parent-x"
    assert reader.fields["controlvector.layer_count"].contents() == 2
    rows = _unit_rows((0, 1, 3))
    tensors = {t.name: t for t in reader.tensors}
    assert sorted(tensors) == ["direction.1", "direction.3"]
    for l in (1, 3):
        t = tensors[f"direction.{l}"]
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
        assert list(t.shape) == [D]
        np.testing.assert_array_equal(np.asarray(t.data), rows[l])


def test_gguf_export_without_layer_zero_does_not_warn(tmp_path, recwarn):
    path = _vectors(layers=(2,)).to_gguf(tmp_path / "cv.gguf")
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    assert [t.name for t in gguf.GGUFReader(path).tensors] == ["direction.2"]


def test_gguf_export_of_only_layer_zero_raises(tmp_path):
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="layers >= 1"):
        _vectors(layers=(0,)).to_gguf(tmp_path / "cv.gguf")


def test_vectors_show_and_plot_their_per_layer_quality():
    v = _vectors(explained_variance={0: 0.5, 1: 0.25, 3: 0.125}, sign_agreement={0: 0.75, 1: 1.0, 3: 0.5})
    evr, agree = (t for t in v.plot().data)
    assert list(evr.x) == [0, 1, 3] and list(evr.y) == [0.5, 0.25, 0.125]
    assert list(agree.y) == [0.75, 1.0, 0.5]
    html = v._repr_html_()
    assert "<table>" in html and "0.250" in html and "3 of" in html
