"""Peers' formats: llama.cpp / repeng control-vector GGUF and steering-vectors' SteeringVector.

Format tests run in the main venv on a tiny model: round trips within xsteer (λ and a relative
scale folded in and recovered), what each file holds, and one-line errors for a vector of another
width or depth, a model GGUF passed as a control vector, a non-GGUF, another steering-vectors layer
type. Peer tests run each peer library in its own venv (benchmarks/peer_runner/setup.sh): the peer
loads xsteer's export with its own loader and steers the same model folder — its logits must equal
xsteer's steered logits — and the peer's own saved vector, imported into xsteer, must equal it and
steer the same. Without the venvs those are skipped, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

from xsteer.interop.llamacpp import from_llamacpp, read_control_vector, to_llamacpp, write_control_vector
from xsteer.interop.peers import from_repeng, from_steering_vectors, to_repeng, to_steering_vectors
from xsteer.schedules import PerLayer
from xsteer.steer import residual_norms, steer
from xsteer.vectors import SteeringVectors

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "benchmarks" / "peer_runner" / "interop_check.py"
VENVS = {"repeng": REPO / ".venv-repeng", "steering-vectors": REPO / ".venv-steering-vectors"}
LAM = 2.5


def _vectors(model, layers, seed=0) -> SteeringVectors:
    g = torch.Generator().manual_seed(seed)
    d, depth = int(model.cfg.d_model), int(model.cfg.n_layers)
    return SteeringVectors.from_raw(
        {l: torch.randn(d, generator=g) for l in layers}, model_name=model.cfg.model_name, d_model=d,
        n_layers=depth, method="random", seed=seed,
    )


def _assert_same(imported: SteeringVectors, strengths: dict, original: SteeringVectors, lam: float) -> None:
    assert imported.layers == original.layers
    for l in original.layers:
        torch.testing.assert_close(imported[l] * strengths[l], original[l] * lam, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(imported[l], original[l], rtol=1e-5, atol=1e-6)
        assert strengths[l] == pytest.approx(lam, rel=1e-5)


# ----------------------------------------------------------------------------- format round trips

EXPORTS = {
    "llamacpp": (to_llamacpp, from_llamacpp, "cv.gguf"),
    "repeng": (to_repeng, from_repeng, "cv.gguf"),
    "steering-vectors": (to_steering_vectors, from_steering_vectors, "sv.pt"),
}


@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_round_trip_absolute(fmt, tiny_llama, tmp_path):
    to, back, name = EXPORTS[fmt]
    sv = _vectors(tiny_llama, (1, 2))
    path = to(sv, tmp_path / name, LAM)
    vectors, strengths = back(path, model=tiny_llama)
    _assert_same(vectors, strengths, sv, LAM)
    assert vectors.n_layers == 3 and vectors.model_name == tiny_llama.cfg.model_name


@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_round_trip_relative(fmt, tiny_llama, tmp_path):
    to, back, name = EXPORTS[fmt]
    sv = _vectors(tiny_llama, (1, 2))
    path = to(sv, tmp_path / name, 0.3, scale="relative", model=tiny_llama)
    m = residual_norms(tiny_llama)
    _, absolute = back(path, model=tiny_llama)  # raw file = λ·m_l·v_l
    assert absolute == pytest.approx({l: 0.3 * m[l] for l in (1, 2)}, rel=1e-5)
    vectors, strengths = back(path, model=tiny_llama, scale="relative")
    _assert_same(vectors, strengths, sv, 0.3)


def test_imported_strengths_steer_like_the_original(tiny_llama, tmp_path):
    sv = _vectors(tiny_llama, (0, 1, 2))
    tokens = torch.tensor([[5, 70, 80, 90, 100, 33]])
    with steer(tiny_llama, sv, LAM):
        want = tiny_llama(tokens)
    vectors, strengths = from_steering_vectors(to_steering_vectors(sv, tmp_path / "sv", LAM), model=tiny_llama)
    with steer(tiny_llama, vectors, 1.0, schedule=PerLayer(strengths)):
        got = tiny_llama(tokens)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_gguf_file_is_a_llamacpp_control_vector_with_lambda_folded_in(tiny_llama, tmp_path):
    sv = _vectors(tiny_llama, (1, 2))
    path = to_llamacpp(sv, tmp_path / "cv", LAM)
    assert path == tmp_path / "cv.gguf"
    reader = gguf.GGUFReader(path)
    assert bytes(reader.get_field("general.architecture").parts[-1]).decode() == "controlvector"
    assert bytes(reader.get_field("controlvector.model_hint").parts[-1]).decode() == sv.model_name
    assert [t.name for t in reader.tensors] == ["direction.1", "direction.2"]
    for t in reader.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
        np.testing.assert_allclose(t.data, LAM * sv[int(t.name.split(".")[1])].numpy(), rtol=1e-6)
    assert read_control_vector(path)[0] == sv.model_name


def test_steering_vectors_file_holds_the_dataclass_fields(tiny_llama, tmp_path):
    sv = _vectors(tiny_llama, (0, 2))
    fields = torch.load(to_steering_vectors(sv, tmp_path / "sv", LAM), weights_only=True)
    assert set(fields) == {"layer_activations", "layer_type"} and fields["layer_type"] == "decoder_block"
    assert sorted(fields["layer_activations"]) == [0, 2]
    torch.testing.assert_close(fields["layer_activations"][2], LAM * sv[2])


def test_repeng_model_type_is_the_hf_model_type(tiny_llama, tmp_path):
    with pytest.warns(UserWarning, match="llama.cpp refuses"):
        path = to_repeng(_vectors(tiny_llama, (0, 1)), tmp_path / "cv", 1.0, model=tiny_llama)
    hint, raw = read_control_vector(path)
    assert hint == "llama" and sorted(raw) == [0, 1]  # repeng can steer block 0


def test_layer_zero_is_left_out_of_llamacpp_files(tiny_llama, tmp_path):
    with pytest.warns(UserWarning, match="cannot steer block 0"):
        path = to_llamacpp(_vectors(tiny_llama, (0, 2)), tmp_path / "cv", 1.0)
    assert sorted(read_control_vector(path)[1]) == [2]
    with pytest.raises(ValueError, match="export vectors at layers >= 1"), pytest.warns(UserWarning):
        to_llamacpp(_vectors(tiny_llama, (0,)), tmp_path / "cv0", 1.0)


def test_steering_vectors_negative_layers_count_from_the_end(tiny_llama, tmp_path):
    path = tmp_path / "neg.pt"
    v = torch.randn(64)
    torch.save({"layer_activations": {-1: v}, "layer_type": "decoder_block"}, path)
    vectors, strengths = from_steering_vectors(path, model=tiny_llama)
    assert vectors.layers == [2] and strengths[2] == pytest.approx(float(v.norm()))


def test_same_layer_twice_in_a_gguf_is_summed_as_llamacpp_does(tmp_path):
    import gguf as g

    path = tmp_path / "twice.gguf"
    w = g.GGUFWriter(str(path), "controlvector")
    w.add_string("controlvector.model_hint", "x")
    w.add_tensor("direction.1", np.ones(4, np.float32))
    w.add_tensor("direction.01", np.full(4, 2.0, np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    np.testing.assert_array_equal(read_control_vector(path)[1][1], np.full(4, 3.0, np.float32))


# ----------------------------------------------------------------------------- bad inputs


def test_control_vector_of_another_width_is_refused(tiny_llama, tmp_path):
    path = write_control_vector(tmp_path / "wide", {1: torch.ones(128)}, "other")
    with pytest.raises(ValueError, match=r"Width mismatch: .* 128-wide .* is 64-wide\. Fix:"):
        from_llamacpp(path, model=tiny_llama)
    with pytest.raises(ValueError, match="Width mismatch"):
        from_repeng(path, d_model=64, n_layers=3)


def test_control_vector_for_a_deeper_model_is_refused(tiny_llama, tmp_path):
    path = write_control_vector(tmp_path / "deep", {1: torch.ones(64), 7: torch.ones(64)}, "other")
    with pytest.raises(ValueError, match=r"Layer mismatch: .* layers \[7\], but .* has 3 blocks \(0\.\.2\)\. Fix:"):
        from_llamacpp(path, model=tiny_llama)
    neg = tmp_path / "neg.pt"
    torch.save({"layer_activations": {-4: torch.ones(64)}, "layer_type": "decoder_block"}, neg)
    with pytest.raises(ValueError, match=r"Layer mismatch: .* layers \[-1\]"):
        from_steering_vectors(neg, model=tiny_llama)


def test_depth_must_be_known(tmp_path):
    path = write_control_vector(tmp_path / "cv", {1: torch.ones(64)}, "other")
    with pytest.raises(ValueError, match="pass model= .* or n_layers="):
        from_llamacpp(path)
    vectors, strengths = from_llamacpp(path, n_layers=4)
    assert vectors.n_layers == 4 and strengths == {1: pytest.approx(8.0)}


def test_model_gguf_is_not_a_control_vector(tmp_path):
    from xsteer.models import embedded_gguf_path

    try:
        model_file = embedded_gguf_path("smollm2-135m")
    except ModuleNotFoundError as err:
        pytest.skip(str(err))
    with pytest.raises(ValueError, match=r"architecture 'llama' with \d+ tensors .* not a control vector .* not the model"):
        from_llamacpp(model_file, d_model=576, n_layers=30)
    with pytest.raises(ValueError, match="not a control vector"):
        from_repeng(model_file, d_model=576, n_layers=30)


def test_other_files_are_refused_with_the_fix(tiny_llama, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(ValueError, match="is not a GGUF file .* pass a llama.cpp control vector"):
        from_llamacpp(junk, model=tiny_llama)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_repeng(tmp_path / "missing.gguf", model=tiny_llama)
    other = tmp_path / "mlp.pt"
    torch.save({"layer_activations": {1: torch.ones(64)}, "layer_type": "mlp"}, other)
    with pytest.raises(ValueError, match="layer_type 'mlp'.*layer_type='decoder_block'"):
        from_steering_vectors(other, model=tiny_llama)
    plain = tmp_path / "plain.pt"
    torch.save(torch.ones(3), plain)
    with pytest.raises(ValueError, match="not a steering-vectors SteeringVector file"):
        from_steering_vectors(plain, model=tiny_llama)
    named = tmp_path / "named.gguf"
    w = gguf.GGUFWriter(str(named), "controlvector")
    w.add_tensor("layers.1", np.ones(64, np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    with pytest.raises(ValueError, match="is not 'direction.<layer>'"):
        from_llamacpp(named, model=tiny_llama)


def test_export_checks_the_model_and_lambda(tiny_llama, tmp_path):
    from xsteer.models import tiny_model

    sv = _vectors(tiny_model("llama", n_layers=2, d_model=32, seed=1), (1,))
    with pytest.raises(ValueError, match="Width mismatch"):
        to_repeng(sv, tmp_path / "cv", 1.0, model=tiny_llama)
    with pytest.raises(ValueError, match="finite"):
        to_steering_vectors(_vectors(tiny_llama, (1,)), tmp_path / "sv", float("nan"))
    with pytest.raises(ValueError, match="pass model="):
        to_llamacpp(_vectors(tiny_llama, (1,)), tmp_path / "cv", 0.1, scale="relative")


# ----------------------------------------------------------------------------- the peers themselves


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _peer_python(peer: str) -> Path:
    python = VENVS[peer] / "bin" / "python"
    if python.exists():
        return python
    msg = f"{python} is missing; build it with: bash benchmarks/peer_runner/setup.sh {peer}"
    if _in_ci():
        pytest.fail(f"peer interop cannot run in CI: {msg}")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def peer_model(tmp_path_factory):
    """A tiny random Llama saved as a plain HF folder, and xsteer's bridge of that folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from xsteer.models import _tiny_config, _tiny_tokenizer_dir, load_model

    folder = tmp_path_factory.mktemp("peer-model") / "tiny-llama"
    tokenizer = AutoTokenizer.from_pretrained(_tiny_tokenizer_dir())
    with torch.random.fork_rng():
        torch.manual_seed(3)
        hf = AutoModelForCausalLM.from_config(_tiny_config("llama", 4, 64, len(tokenizer), {}))
    hf.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, load_model(folder, device="cpu")


PROMPTS = [[1, 40, 77, 91, 120, 5], [1, 200, 13], [1, 66, 66, 66, 66, 66, 66, 66, 9]]


@pytest.mark.parametrize("peer", ["repeng", "steering-vectors"])
def test_peer_loads_xsteer_export_and_steers_the_same(peer, peer_model, tmp_path):
    python = _peer_python(peer)
    folder, bridge = peer_model
    sv = _vectors(bridge, (0, 1, 3), seed=7)
    exported = (to_repeng if peer == "repeng" else to_steering_vectors)
    with pytest.warns(UserWarning) if peer == "repeng" else contextlib.nullcontext():
        path = exported(sv, tmp_path / ("cv.gguf" if peer == "repeng" else "sv.pt"), LAM)
    own_file = tmp_path / ("own.gguf" if peer == "repeng" else "own.pt")
    job = {"peer": peer, "model_dir": str(folder), "import_file": str(path), "export_file": str(own_file),
           "export_layers": [1, 2], "export_seed": 11, "export_norm": 3.0, "prompts": PROMPTS,
           "out": str(tmp_path / "out.npz")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(python), str(CHECK), str(tmp_path / "job.json")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")

    # 1. the peer read our file as the vectors we meant: λ·v_l at xsteer's layer l
    assert sorted(int(k[5:]) for k in out.files if k.startswith("read_")) == [0, 1, 3]
    for l in (0, 1, 3):
        np.testing.assert_allclose(out[f"read_{l}"], LAM * sv[l].numpy(), rtol=1e-6, atol=1e-7)

    # 2. it steers as xsteer steers (and the steering does move the logits)
    imported, strengths = (from_repeng if peer == "repeng" else from_steering_vectors)(own_file, model=bridge)
    with torch.inference_mode():
        for i, p in enumerate(PROMPTS):
            tokens = torch.tensor([p])
            base = bridge(tokens)[0].numpy()
            with steer(bridge, sv, LAM):
                ours = bridge(tokens)[0].numpy()
            with steer(bridge, imported, 1.0, schedule=PerLayer(strengths)):
                ours_own = bridge(tokens)[0].numpy()
            np.testing.assert_allclose(out[f"base_{i}"], base, atol=1e-4, rtol=0)
            assert np.abs(ours - base).max() > 0.05
            np.testing.assert_allclose(out[f"imported_{i}"], ours, atol=1e-4, rtol=0)
            # 3. the peer's own vector, saved its way and imported into xsteer, steers the same
            assert np.abs(ours_own - base).max() > 0.05
            np.testing.assert_allclose(out[f"own_{i}"], ours_own, atol=1e-4, rtol=0)

    # 4. and equals what the peer held
    assert imported.layers == [1, 2]
    for l in (1, 2):
        np.testing.assert_allclose((imported[l] * strengths[l]).numpy(), out[f"made_{l}"], rtol=1e-6, atol=1e-7)
        assert strengths[l] == pytest.approx(3.0, rel=1e-6)
