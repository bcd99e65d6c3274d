"""Export to lm-evaluation-harness's ``steered`` model file and back (xsteer.interop.lm_eval), and the
`xsteer export` command, on tiny random-weight models. The harness itself runs in
tests/test_lm_eval_parity.py; here its hook is mirrored on a plain Hugging Face model."""

from __future__ import annotations

import statistics

import pytest
import torch
from typer.testing import CliRunner

from xsteer.cli import app
from xsteer.interop.lm_eval import from_lm_eval, hookpoint, lm_eval_config, to_lm_eval
from xsteer.steer import REFERENCE_TEXTS, steer
from xsteer.vectors import SteeringVectors


def _vectors(model, layers=(0, 1, 2), seed=0, **extra) -> SteeringVectors:
    g = torch.Generator().manual_seed(seed)
    d = int(model.cfg.d_model)
    return SteeringVectors.from_raw(
        {l: torch.randn(d, generator=g) for l in layers}, model_name=model.cfg.model_name, d_model=d,
        n_layers=int(model.cfg.n_layers), method="random", seed=seed, **extra,
    )


@pytest.fixture(scope="module")
def tiny():
    from xsteer.models import tiny_model

    return tiny_model("llama", n_layers=3, d_model=64, seed=0)


def _independent_norms(model) -> dict[int, float]:
    """Median ‖h_l‖ over every token of the reference texts, from forward hooks on the Hugging Face
    decoder layers, one text at a time (no padding): not via xsteer.steer.residual_norms."""
    from xsteer.plain import plain_view

    hf = plain_view(model).model
    layers = hf.model.layers
    seen: dict[int, list[torch.Tensor]] = {l: [] for l in range(len(layers))}
    handles = [
        layer.register_forward_hook(
            lambda mod, args, out, l=l: seen[l].append((out[0] if isinstance(out, tuple) else out)[0].norm(dim=-1))
        )
        for l, layer in enumerate(layers)
    ]
    try:
        with torch.no_grad():
            for text in REFERENCE_TEXTS:
                hf(**model.tokenizer(text, return_tensors="pt"))
    finally:
        for h in handles:
            h.remove()
    return {l: float(torch.cat(v).median()) for l, v in seen.items()}


# ---------------------------------------------------------------- format and round trips


def test_file_has_the_steered_model_layout(tiny, tmp_path):
    v = _vectors(tiny)
    path = to_lm_eval(v, tmp_path / "steer", 0.25)
    assert path.name == "steer.pt"  # lm-eval picks its loader by the suffix
    config = torch.load(path, weights_only=True)  # plain tensors, floats, strings, None
    assert list(config) == ["layers.0", "layers.1", "layers.2"]
    for l in v.layers:
        entry = config[hookpoint(l)]
        assert entry["action"] == "add" and entry["bias"] is None and entry["head_index"] is None
        assert entry["steering_vector"].shape == (64,)
        assert torch.equal(entry["steering_vector"], v[l])
        assert entry["steering_coefficient"] == 0.25


def test_round_trip_absolute(tiny, tmp_path):
    v = _vectors(tiny, explained_variance={0: 0.5, 2: 0.25}, sign_agreement={1: 0.75}, provenance={"why": "test"})
    back, coef = from_lm_eval(to_lm_eval(v, tmp_path / "s.pt", 0.3))
    assert back == v
    assert coef == {0: 0.3, 1: 0.3, 2: 0.3}
    back2, _ = from_lm_eval(tmp_path / "s.pt", model=tiny, model_name="renamed")
    assert back2.model_name == "renamed" and back2.layers == v.layers


def test_round_trip_relative_and_folded_norms(tiny, tmp_path):
    v = _vectors(tiny)
    lam = 0.08
    path = to_lm_eval(v, tmp_path / "rel.pt", lam, scale="relative", model=tiny)
    norms = _independent_norms(tiny)
    config = torch.load(path, weights_only=True)
    for l in v.layers:  # λ·m_l folded into the coefficient, m_l measured independently
        assert config[hookpoint(l)]["steering_coefficient"] == pytest.approx(lam * norms[l], rel=1e-4)
    back, coef = from_lm_eval(path, model=tiny, scale="relative")
    assert back == v
    assert coef == pytest.approx({l: lam for l in v.layers}, rel=1e-6)
    _, absolute = from_lm_eval(path, model=tiny)
    assert absolute == pytest.approx({l: lam * norms[l] for l in v.layers}, rel=1e-4)


def test_layer_subset_and_2d_vectors(tiny, tmp_path):
    v = _vectors(tiny)
    path = to_lm_eval(v, tmp_path / "sub.pt", 1.5, layers=[1])
    back, coef = from_lm_eval(path, model=tiny)
    assert back.layers == [1] and torch.equal(back[1], v[1]) and coef == {1: 1.5}
    # a file written elsewhere: (1, d) vectors of any norm, no xsteer metadata
    torch.save({"layers.2": {"steering_vector": 3 * v[2][None], "steering_coefficient": 2.0, "action": "add",
                             "bias": None}}, tmp_path / "other.pt")
    back, coef = from_lm_eval(tmp_path / "other.pt", model=tiny)
    assert torch.allclose(back[2], v[2], atol=1e-6) and coef[2] == pytest.approx(6.0)
    assert back.n_layers == 3 and back.method == "lm-eval"


def test_lm_eval_hook_equals_xsteer_steering(tiny, tmp_path):
    """lm-eval's `steered` hook (forward hook on model.base_model's `layers.N`, adding
    coefficient·vector to the output at every position), mirrored on a Hugging Face copy of the
    model, gives the logits of xsteer's steer() with the same vectors and λ."""
    from transformers import AutoModelForCausalLM

    from xsteer.plain import plain_view

    hf_dir = tmp_path / "hf"
    plain_view(tiny).model.save_pretrained(hf_dir)
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    v = _vectors(tiny, layers=(0, 2))
    config = torch.load(to_lm_eval(v, tmp_path / "s.pt", 0.5, scale="relative", model=tiny), weights_only=True)

    handles = []
    for name, module in hf.base_model.named_modules():  # as lm_eval.models.hf_steered.steer resolves them
        if name in config:
            add = config[name]["steering_vector"] * config[name]["steering_coefficient"]

            def hook(mod, args, out, add=add):
                return (out[0] + add, *out[1:]) if isinstance(out, tuple) else out + add

            handles.append(module.register_forward_hook(hook))
    assert len(handles) == len(config)
    ids = tiny.tokenizer("The museum opens at nine.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        theirs = hf(input_ids=ids).logits
        for h in handles:
            h.remove()
        plain = hf(input_ids=ids).logits
        with steer(tiny, v, 0.5, scale="relative"):
            ours = tiny(ids, return_type="logits")
    assert (theirs - plain).abs().max() > 1e-2  # the steering does something
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- bad inputs


def _save(path, config):
    torch.save(config, path)
    return path


def _entry(vec, **kw):
    return {"steering_vector": vec, "steering_coefficient": 1.0, "action": "add", "bias": None, **kw}


@pytest.mark.parametrize("key", ["model.layers.1", "h.1", "blocks.1.hook_resid_post", "layers.1.mlp", "layers"])
def test_unknown_hookpoint(tiny, tmp_path, key):
    path = _save(tmp_path / "bad.pt", {key: _entry(torch.ones(64))})
    with pytest.raises(ValueError, match=r"hookpoint .* use 'layers.N'"):
        from_lm_eval(path, model=tiny)


def test_width_mismatch(tiny, tmp_path):
    path = _save(tmp_path / "wide.pt", {"layers.1": _entry(torch.ones(96))})
    with pytest.raises(ValueError, match=r"Width mismatch: .* 96-wide .* 64-wide"):
        from_lm_eval(path, model=tiny)
    with pytest.raises(ValueError, match="Width mismatch"):
        from_lm_eval(path, d_model=64, n_layers=3)


def test_layer_beyond_depth(tiny, tmp_path):
    path = _save(tmp_path / "deep.pt", {"layers.1": _entry(torch.ones(64)), "layers.7": _entry(torch.ones(64))})
    with pytest.raises(ValueError, match=r"layers.7.* beyond .* 3 decoder layers"):
        from_lm_eval(path, model=tiny)


def test_other_actions_and_extras(tiny, tmp_path):
    path = _save(tmp_path / "clamp.pt", {"layers.1": _entry(torch.ones(64), action="clamp")})
    with pytest.raises(ValueError, match="action 'clamp'; xsteer imports only action 'add'"):
        from_lm_eval(path, model=tiny)
    path = _save(tmp_path / "bias.pt", {"layers.1": _entry(torch.ones(64), bias=torch.zeros(64))})
    with pytest.raises(ValueError, match="bias or head_index"):
        from_lm_eval(path, model=tiny)


def test_unreadable_files(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_lm_eval(tmp_path / "none.pt", model=tiny)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable lm-eval steering .pt"):
        from_lm_eval(tmp_path / "junk.pt", model=tiny)
    with pytest.raises(ValueError, match="not a non-empty dict"):
        from_lm_eval(_save(tmp_path / "list.pt", [1, 2]), model=tiny)
    path = _save(tmp_path / "bare.pt", {"layers.1": _entry(torch.ones(64))})
    with pytest.raises(ValueError, match="pass model= .* or n_layers="):
        from_lm_eval(path)


def test_export_errors(tiny, tmp_path):
    v = _vectors(tiny)
    with pytest.raises(ValueError, match="scale='relative' folds .* pass model="):
        lm_eval_config(v, 0.1, scale="relative")
    with pytest.raises(ValueError, match="scale must be"):
        lm_eval_config(v, 0.1, scale="fraction")
    with pytest.raises(ValueError, match=r"No steering vector for layers \[5\]"):
        lm_eval_config(v, 0.1, layers=[5])
    from xsteer.models import tiny_model

    other = tiny_model("llama", n_layers=2, d_model=96, seed=0)
    with pytest.raises(ValueError, match="Width mismatch"):
        lm_eval_config(v, 0.1, model=other)


# ---------------------------------------------------------------- the command


def test_cli_export(tiny, tmp_path):
    spec = "tiny:llama:3:64:0"
    v = _vectors(tiny)
    stem = v.save(tmp_path / "vecs")
    runner = CliRunner()
    out = tmp_path / "steer.pt"
    res = runner.invoke(app, ["export", "--vectors", str(stem), "--format", "lm-eval", "--lam", "0.08",
                              "--scale", "relative", "--model", spec, "--layers", "1-2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "steered" in res.output
    back, coef = from_lm_eval(out, model=tiny, scale="relative")
    assert back.layers == [1, 2] and torch.equal(back[2], v[2])
    assert coef == pytest.approx({1: 0.08, 2: 0.08}, rel=1e-6)

    res = runner.invoke(app, ["export", "--vectors", str(stem), "--lam", "0.5", "--out", str(tmp_path / "abs.pt")])
    assert res.exit_code == 0, res.output
    assert from_lm_eval(tmp_path / "abs.pt")[1] == {0: 0.5, 1: 0.5, 2: 0.5}

    res = runner.invoke(app, ["export", "--vectors", str(stem), "--format", "gguf", "--layers", "1-2",
                              "--out", str(tmp_path / "cv.gguf")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cv.gguf").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scale", "relative"], "needs the model the vectors steer; pass --model"),
        (["--format", "onnx"], "Unknown format 'onnx'"),
        (["--layers", "7"], "no vectors at layers [7]"),
        (["--layers", "x-y"], "--layers must look like"),
        (["--format", "gguf", "--scale", "relative", "--model", "tiny:llama:3:64:0"], "use --scale absolute"),
        (["--model", "tiny:llama:3:96:0"], "Width mismatch"),
    ],
)
def test_cli_export_errors(tiny, tmp_path, args, message):
    stem = _vectors(tiny).save(tmp_path / "vecs")
    res = CliRunner().invoke(app, ["export", "--vectors", str(stem), "--out", str(tmp_path / "o.pt"), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert len(res.output.strip().splitlines()) == 1  # one line that names the fix


@pytest.mark.parametrize("fmt, suffix", [("repeng", "gguf"), ("steering-vectors", "pt")])
def test_cli_export_peer_formats_round_trip(tiny, tmp_path, fmt, suffix):
    from xsteer.interop import from_repeng, from_steering_vectors

    v = _vectors(tiny)
    stem = v.save(tmp_path / "vecs")
    out = tmp_path / f"steer.{suffix}"
    res = CliRunner().invoke(app, ["export", "--vectors", str(stem), "--format", fmt, "--lam", "0.5",
                                   "--model", "tiny:llama:3:64:0", "--layers", "1-2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    read = from_repeng if fmt == "repeng" else from_steering_vectors
    back, strength = read(out, model=tiny)
    assert back.layers == [1, 2] and strength == pytest.approx({1: 0.5, 2: 0.5})
    for l in (1, 2):
        torch.testing.assert_close(back[l], v[l], atol=1e-6, rtol=0)
