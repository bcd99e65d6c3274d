"""Bad input, through the command line and the API: one line that names the problem and the fix, given
before any model loads, and a run folder left as it was."""

from __future__ import annotations

import json
import math
import os
import warnings

import pytest
import torch
from typer.testing import CliRunner

from xsteer.cli import app
from xsteer.pipeline import TransferConfig, run_transfer

TINY = ["--parent", "tiny:llama:3:64:0", "--child", "tiny:qwen3:4:48:1"]


def _cli(args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    errors = [l for l in result.output.splitlines() if l.startswith("error:")]
    return result, errors


def _assert_one_line(result, errors, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


# ---------------------------------------------------------------- data folders with faults


def _arc_dir(tmp_path, test_rows, dev_rows=None):
    """A minimal ARC-Easy data folder: Train (for pairs), Dev and Test files."""
    def row(i, key="A"):
        return {"id": f"q{i}", "question": {"stem": f"Question {i}?", "choices": [
            {"text": "yes", "label": "A"}, {"text": "no", "label": "B"}]}, "answerKey": key}

    arc = tmp_path / "data" / "arc"
    arc.mkdir(parents=True)
    train = [json.dumps(row(100 + i)) for i in range(8)]
    (arc / "ARC-Easy-Train.jsonl").write_text("\n".join(train) + "\n")
    dev = dev_rows if dev_rows is not None else [json.dumps(row(200 + i)) for i in range(4)]
    (arc / "ARC-Easy-Dev.jsonl").write_text("\n".join(dev) + "\n")
    rows = test_rows(row)
    (arc / "ARC-Easy-Test.jsonl").write_bytes(rows if isinstance(rows, bytes) else ("\n".join(rows) + "\n").encode())
    return tmp_path / "data"


DATA_FAULTS = {
    "bad-json": (lambda row: [json.dumps(row(1)), '{"id": "q2", "question":'], ["ARC-Easy-Test.jsonl:2", "not valid JSON"]),
    "no-answerKey": (lambda row: [json.dumps({k: v for k, v in row(1).items() if k != "answerKey"})],
                     ["ARC-Easy-Test.jsonl:1", "'answerKey'", "Fix"]),
    "label-not-a-choice": (lambda row: [json.dumps(row(1)), json.dumps(row(2, key="Z"))],
                           ["ARC-Easy-Test.jsonl:2", "'Z'", "choice labels"]),
    "not-utf8": (lambda row: (json.dumps(row(1)) + "\n").encode() + b'{"id": "\xff\xfe"}\n',
                 ["ARC-Easy-Test.jsonl:2", "not UTF-8"]),
    "duplicate-ids": (lambda row: [json.dumps(row(1)), json.dumps(row(2)), json.dumps({**row(3), "id": "q1"})],
                      ["share ids", "'q1' (2×)", "distinct ids"]),
}


@pytest.mark.parametrize("fault", sorted(DATA_FAULTS))
def test_bad_data_file_names_file_and_line(fault, tmp_path, loads):
    make, needles = DATA_FAULTS[fault]
    data = _arc_dir(tmp_path, make)
    out = tmp_path / "run"
    result, errors = _cli(["run", *TINY, "--task", "arc-easy", "--data-dir", data, "--out", out])
    _assert_one_line(result, errors, *needles)
    assert not loads and not out.exists()  # a failed start leaves no folder behind


# ---------------------------------------------------------------- options of `xsteer run`

RUN_CASES = [
    (["--parent", "nosuchmodel"], ["Unknown model spec 'nosuchmodel'", "embedded defaults"]),
    (["--child", "nosuchmodel"], ["Unknown model spec 'nosuchmodel'", "hub id"]),
    (["--parent", "./missing.gguf"], ["missing.gguf does not exist"]),
    (["--parent", "tiny:nosuch"], ["Bad tiny-model spec", "tiny:llama:3:64:0"]),
    (["--task", "nosuchtask"], ["Unknown task 'nosuchtask'", "arc-easy"]),
    (["--method", "nope"], ["Unknown method 'nope'", "mean_diff"]),
    (["--adapter", "nope"], ["Unknown adapter 'nope'", "procrustes"]),
    (["--layer-map", "nope"], ["Unknown layer map 'nope'", "greedy"]),
    (["--scale", "nosuch"], ["Unknown scale 'nosuch'", "relative"]),
    (["--mode", "nope"], ["Unknown task mode 'nope'", "loglik"]),
    (["--source", "ftp"], ["Unknown source 'ftp'", "hub"]),
    (["--lambdas", "nan"], ["finite", "--lambdas 0.01,0.1,1"]),
    (["--lambdas", "0.1,inf"], ["finite", "inf"]),
    (["--lambdas", "0.1,-1"], [">= 0", "negating"]),
    (["--lambdas", "a,b"], ["--lambdas must be", "'a,b'"]),
    (["--n-test", "-1"], ["n_test must be an integer >= 1", "-1"]),
    (["--n-val", "0"], ["n_val must be an integer >= 1"]),
    (["--batch-size", "0"], ["batch_size must be an integer >= 1"]),
    (["--n-pairs", "1"], ["n_pairs must be an integer >= 2"]),
    (["--n-random", "-2"], ["n_random must be an integer >= 0"]),
    (["--k-shot", "-1"], ["k_shot must be an integer >= 0"]),
    (["--n-anchors", "0"], ["n_anchors must be an integer >= 2"]),
    (["--device", "tpu"], ["Unknown device 'tpu'", "cpu"]),
    (["--task", "gsm8k", "--data-dir", "/nonexistent/folder"], ["/nonexistent/folder", "--source hub"]),
]


@pytest.mark.parametrize("args, needles", RUN_CASES, ids=[" ".join(a) for a, _ in RUN_CASES])
def test_run_rejects_bad_option_before_loading(args, needles, tmp_path, loads):
    out = tmp_path / "run"
    result, errors = _cli(["run", *TINY, *args, "--out", out])
    _assert_one_line(result, errors, *needles)
    assert not loads and not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch build without CUDA")
def test_device_cuda_on_cpu_build(tmp_path, loads):
    result, errors = _cli(["run", *TINY, "--device", "cuda", "--out", tmp_path / "run"])
    _assert_one_line(result, errors, "no CUDA GPU", "--device cpu")
    assert not loads


def test_gsm8k_without_data_suggests_a_flag_the_cli_has(tmp_path, loads, monkeypatch):
    monkeypatch.delenv("XSTEER_DATA_DIR", raising=False)
    result, errors = _cli(["run", *TINY, "--task", "gsm8k", "--out", tmp_path / "run"])
    _assert_one_line(result, errors, "XSTEER_DATA_DIR", "--data-dir", "--source hub")


def test_out_naming_a_file(tmp_path, loads):
    target = tmp_path / "file.txt"
    target.write_text("x")
    result, errors = _cli(["run", *TINY, "--out", target])
    _assert_one_line(result, errors, "is a file", "--out")
    assert target.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_out_in_read_only_folder(tmp_path, loads):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        result, errors = _cli(["run", *TINY, "--out", ro / "run"])
        _assert_one_line(result, errors, "not writable", "--out")
    finally:
        ro.chmod(0o700)


# ---------------------------------------------------------------- a run folder holding another run


def _saved_folder(tmp_path, **overrides):
    """A run folder whose config.json records a run with the CLI's defaults on tiny models."""
    out = tmp_path / "run"
    out.mkdir()
    cfg = TransferConfig(parent="tiny:llama:3:64:0", child="tiny:qwen3:4:48:1", k_shot=0, n_val=20, n_test=40,
                         n_random=2, batch_size=32, **overrides)
    from dataclasses import asdict

    (out / "config.json").write_text(json.dumps(asdict(cfg)))
    (out / "vectors").mkdir()
    (out / "vectors" / "parent.json").write_text("{}")
    return out


@pytest.mark.parametrize(
    "args, fields",
    [
        (["--adapter", "procrustes", "--method", "mean_diff"], ["adapter: 'difference' → 'procrustes'", "method: 'pca' → 'mean_diff'"]),
        (["--parent", "nosuchmodel"], ["parent: 'tiny:llama:3:64:0' → 'nosuchmodel'"]),
        (["--task", "arc-easy"], ["task: 'arith' → 'arc-easy'"]),
    ],
)
def test_resume_with_a_different_request_refuses(args, fields, tmp_path, loads):
    out = _saved_folder(tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result, errors = _cli(["run", *TINY, *args, "--out", out])
    _assert_one_line(result, errors, "holds a different run", "--force", "new --out", *fields)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not loads


def test_force_with_a_failing_start_keeps_the_folder(tmp_path, loads, monkeypatch):
    out = _saved_folder(tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.delenv("XSTEER_DATA_DIR", raising=False)
    result, errors = _cli(["run", *TINY, "--task", "gsm8k", "--force", "--out", out])
    _assert_one_line(result, errors, "--source hub")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------- corrupt files, extract, sweep, report


def _vectors(tmp_path):
    from xsteer.vectors import SteeringVectors

    vec = torch.nn.functional.normalize(torch.randn(2, 48), dim=-1)
    v = SteeringVectors(directions={0: vec[0], 1: vec[1]}, model_name="tiny", d_model=48, n_layers=4, method="pca")
    return v.save(tmp_path / "v" / "vec")


def _corrupt(kind, tmp_path):
    path = _vectors(tmp_path)
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    elif kind == "unknown-key":
        side.write_text(json.dumps({**meta, "colour": "blue"}))
    elif kind == "no-layers":
        side.write_text(json.dumps({k: v for k, v in meta.items() if k != "layers"}))
    elif kind == "sidecar-not-json":
        side.write_text("{")
    elif kind == "missing":
        side.unlink()
    return path


CORRUPT = {
    "truncated": ["vec.safetensors", "re-create"],
    "unknown-key": ["unknown keys ['colour']", "Re-save"],
    "no-layers": ["missing keys ['layers']", "Re-save"],
    "sidecar-not-json": ["vec.json is not valid JSON", "re-create"],
    "missing": ["vec.json does not exist", "Check the path"],
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_sweep_with_corrupt_vectors(kind, tmp_path, loads):
    path = _corrupt(kind, tmp_path)
    result, errors = _cli(["sweep", "--vectors", path, "--model", "tiny:qwen3:4:48:1", "--n", "2"])
    _assert_one_line(result, errors, *CORRUPT[kind])
    assert not loads


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--n", "0"], ["--n must be an integer >= 1"]),
        (["--batch-size", "0"], ["--batch-size must be an integer >= 1"]),
        (["--lambdas", "nan"], ["finite"]),
        (["--split", "dev"], ["Unknown split 'dev'", "validation"]),
        (["--model", "nosuchmodel"], ["Unknown model spec"]),
    ],
)
def test_sweep_rejects_bad_option_before_loading(args, needles, tmp_path, loads):
    path = _vectors(tmp_path)
    result, errors = _cli(["sweep", "--vectors", path, "--model", "tiny:qwen3:4:48:1", *args])
    _assert_one_line(result, errors, *needles)
    assert not loads


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--model", "nosuchmodel"], ["Unknown model spec"]),
        (["--method", "nope"], ["Unknown method"]),
        (["--n-pairs", "1"], ["--n-pairs must be an integer >= 2"]),
        (["--task", "nope"], ["Unknown task"]),
    ],
)
def test_extract_rejects_bad_option_before_loading(args, needles, tmp_path, loads):
    result, errors = _cli(["extract", "--model", "tiny:llama", *args, "--out", tmp_path / "v" / "parent"])
    _assert_one_line(result, errors, *needles)
    assert not loads


def test_extract_into_a_file_path(tmp_path, loads):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    result, errors = _cli(["extract", "--model", "tiny:llama", "--out", blocker / "parent"])
    _assert_one_line(result, errors, "is a file", "--out")
    assert not loads


def test_report_of_a_corrupt_report(tmp_path):
    (tmp_path / "report.json").write_text('{"config": ')
    result, errors = _cli(["report", tmp_path])
    _assert_one_line(result, errors, "report.json is not a readable report", "xsteer run")


def test_report_of_a_missing_folder():
    result, errors = _cli(["report", "/nonexistent/run"])
    _assert_one_line(result, errors, "No report", "xsteer run")


# ---------------------------------------------------------------- the API


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_test": -1}, "n_test must be an integer >= 1"),
        ({"n_val": 0}, "n_val must be an integer >= 1"),
        ({"lambdas": [0.1, math.nan]}, "finite"),
        ({"lambdas": [math.inf]}, "finite"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"adapter": "nope"}, "Unknown adapter"),
        ({"sc_temperature": 0.0}, "sc_temperature must be a finite positive number"),
    ],
)
def test_config_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        TransferConfig(**kwargs)


def test_api_unknown_model_before_loading(tmp_path, loads):
    cfg = TransferConfig(parent="nosuchmodel", child="tiny:qwen3:4:48:1", n_pairs=4, n_val=2, n_test=2)
    with pytest.raises(ValueError, match="Unknown model spec 'nosuchmodel'"):
        run_transfer(cfg, tmp_path / "run", progress=False)
    assert not loads and not (tmp_path / "run").exists()


def test_relative_lambda_too_large_warns():
    with pytest.warns(UserWarning, match="degenerate"):
        TransferConfig(scale="relative", lambdas=[0.5, 50])


def test_absolute_lambda_too_large_warns(tiny_llama):
    from xsteer.pipeline import _warn_large_lambda
    from xsteer.steer import residual_norms
    from xsteer.vectors import SteeringVectors

    d = tiny_llama.cfg.d_model
    direction = torch.nn.functional.normalize(torch.ones(d), dim=0)
    vecs = SteeringVectors(directions={0: direction}, model_name="tiny", d_model=d, n_layers=3, method="pca")
    median = residual_norms(tiny_llama)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_large_lambda(tiny_llama, vecs, TransferConfig(lambdas=[median]))  # 1× the stream: no warning
    with pytest.warns(UserWarning, match=r"by \d+× its median norm"):
        _warn_large_lambda(tiny_llama, vecs, TransferConfig(lambdas=[1e9]))


def test_prompt_longer_than_context_warns(tiny_llama):
    from xsteer.pipeline import _check_prompts
    from xsteer.tasks import load_task

    task = load_task("arith", k_shot=3)
    examples = task.split("test")[:2]
    n_prompt = len(tiny_llama.tokenizer(task.prompt(examples[0], None).text)["input_ids"])
    old = tiny_llama.cfg.n_ctx
    try:
        tiny_llama.cfg.n_ctx = n_prompt - 1
        with pytest.warns(UserWarning, match="longer than .* context"):
            _check_prompts(tiny_llama, task, {"test": examples}, None)
        tiny_llama.cfg.n_ctx = n_prompt + 1000
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _check_prompts(tiny_llama, task, {"test": examples}, None)
    finally:
        tiny_llama.cfg.n_ctx = old


@pytest.mark.parametrize("args, needles", [
    (["--operator", "nope"], ["Unknown steering operator"]),
    (["--operator", "clamp"], ["clamp:VALUE"]),
    (["--budget", "-1"], ["budget", "> 0"]),
])
def test_steering_fidelity_rejects_bad_operator_or_budget_before_loading(args, needles, tmp_path, loads):
    result, errors = _cli(["steering-fidelity", *TINY, *args, "--out", tmp_path / "sf"])
    _assert_one_line(result, errors, *needles)
    assert not loads
