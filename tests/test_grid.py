"""The grid on tiny models: a local Ray cluster gives the sequential run's records and summary, also
when a worker dies mid-cell; resubmission recomputes nothing; bad input fails before any work; the
sequential path works without Ray; resource sizing, the across-cell CI and bf16 extraction."""

import json
import sys
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from xsteer.grid import GridSpec, mean_ci, run_grid
from xsteer.grid.faults import ENV as FAULT_ENV
from xsteer.grid.resources import GiB, Resources, check_fits, estimate_params, task_resources
from xsteer.pipeline import TransferConfig

PARENTS = ["tiny:llama:2:32:0", "tiny:gemma2:2:32:1"]
CHILDREN = ["tiny:qwen3:2:32:2", "tiny:phi3:3:32:3"]
BASE = TransferConfig(
    k_shot=0, n_pairs=8, n_anchors=16, lambdas=[0.5, 4.0], n_val=3, n_test=4, n_random=0,
    batch_size=4, device="cpu", self_consistency=False, child_own=False, task_mode="loglik",
)


@pytest.fixture(scope="module", autouse=True)
def no_png(tmp_path_factory):
    """PNG export starts a Chrome per figure (~5 s); point kaleido at nothing (HTML is still written).
    Set before Ray starts so its workers inherit it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BROWSER_PATH", str(tmp_path_factory.mktemp("nochrome") / "none"))
    yield
    mp.undo()


def _spec():
    return GridSpec(PARENTS, CHILDREN, ["arith"], BASE)


def _records(folder):
    return [json.loads(l) for l in (folder / "records" / "records.jsonl").read_text().splitlines()]


def _key(r):
    return (r["split"], r["condition"], r["example_id"], r["lam"], r["sample"])


def _numbers(x):
    """Every number in a JSON value, in order (strings holding JSON are opened)."""
    if isinstance(x, str):
        try:
            x = json.loads(x)
        except ValueError:
            return []
    if isinstance(x, bool) or x is None:
        return []
    if isinstance(x, (int, float)):
        return [float(x)]
    items = x.values() if isinstance(x, dict) else x if isinstance(x, list) else []
    return [n for v in items for n in _numbers(v)]


def _same(a, b, floats=("output", "meta", "diagnostics")):
    """Equal, except that the fields in ``floats`` (scores, R², norms) may differ by float noise:
    Ray's workers run torch on one thread, so sums are reduced in another order."""
    assert {k: v for k, v in a.items() if k not in floats} == {k: v for k, v in b.items() if k not in floats}
    for k in floats:
        assert np.allclose(_numbers(a.get(k)), _numbers(b.get(k)), rtol=1e-4, atol=1e-5), k


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The sequential grid, run with Ray made unimportable."""
    out = tmp_path_factory.mktemp("seq")
    mp = pytest.MonkeyPatch()
    mp.setitem(sys.modules, "ray", None)
    try:
        result = run_grid(_spec(), out, progress=False)
        with pytest.raises(ModuleNotFoundError, match=r"xsteer\[ray\]"):
            run_grid(_spec(), out, ray="auto", progress=False)
    finally:
        mp.undo()
    return out, result


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def on_ray(cluster, sequential, tmp_path_factory):
    """The same grid on Ray, with the worker of one cell killed after its 2nd batch of records."""
    out = tmp_path_factory.mktemp("ray")
    flag = out / "fault-fired"
    victim = _spec().cells(out)[1].name
    mp = pytest.MonkeyPatch()
    mp.setenv(FAULT_ENV, f"{flag}:{victim}:2")
    try:
        result = run_grid(_spec(), out, ray="auto", max_retries=2, progress=False)
    finally:
        mp.undo()
    return out, result, flag, victim


def test_ray_grid_equals_sequential_despite_a_killed_worker(sequential, on_ray):
    seq_out, seq = sequential
    out, result, flag, victim = on_ray
    assert flag.exists(), "the fault injector never fired"
    assert [o.status for o in result.outcomes] == ["done"] * 4 == [o.status for o in seq.outcomes]
    for a, b in zip(_spec().cells(seq_out), _spec().cells(out)):
        mine, theirs = _records(b.folder), _records(a.folder)
        assert max(Counter(map(_key, mine)).values()) == 1, f"duplicate records in {b.name}"
        assert sorted(map(_key, mine)) == sorted(map(_key, theirs)), b.name
        by_key = {_key(r): r for r in theirs}
        for r in mine:
            _same(r, by_key[_key(r)])
        _same(*(json.loads((c.folder / "report.json").read_text()) for c in (a, b)))
    killed = _records(_spec().cells(out)[1].folder)
    assert len(killed) == len(_records(_spec().cells(seq_out)[1].folder))
    assert json.loads((out / "grid_summary.json").read_text()) == json.loads((seq_out / "grid_summary.json").read_text())
    assert (out / "grid_summary.md").read_text() == (seq_out / "grid_summary.md").read_text()


def test_summary_rows_match_the_cells_reports(sequential):
    out, result = sequential
    summary = json.loads((out / "grid_summary.json").read_text())
    assert summary["n_done"] == 4 and not summary["failed"]
    deltas = []
    for row, cell in zip(summary["cells"], _spec().cells(out)):
        report = json.loads((cell.folder / "report.json").read_text())
        base = np.mean(report["baseline"]["test"])
        star = report["conditions"]["transferred"]["lambda_star"]
        steered = np.mean(report["conditions"]["transferred"]["correct"]["test"][repr(star)])
        assert row["baseline"]["value"] == pytest.approx(base)
        assert row["transferred"]["delta"]["value"] == pytest.approx(steered - base)
        deltas.append(steered - base)
    assert summary["across_cells"]["arith"]["transferred"]["value"] == pytest.approx(np.mean(deltas))


def test_resubmitted_ray_grid_recomputes_nothing(on_ray):
    out, _, _, _ = on_ray
    before = {c.name: (c.folder / "records" / "records.jsonl").read_bytes() for c in _spec().cells(out)}
    result = run_grid(_spec(), out, ray="auto", progress=False)
    assert not result.failed
    assert {c.name: (c.folder / "records" / "records.jsonl").read_bytes() for c in _spec().cells(out)} == before


def test_retries_spent_are_reported_per_cell(cluster, tmp_path, monkeypatch):
    spec = GridSpec(PARENTS[:1], CHILDREN[:1], ["arith"], BASE)
    victim = spec.cells(tmp_path)[0].name
    monkeypatch.setenv(FAULT_ENV, f"{tmp_path / 'flag'}:{victim}:1")
    result = run_grid(spec, tmp_path, ray="auto", max_retries=0, progress=False)
    assert [o.status for o in result.outcomes] == ["failed"]
    assert result.outcomes[0].error
    summary = json.loads((tmp_path / "grid_summary.json").read_text())
    assert summary["failed"][0]["cell"] == victim and summary["n_done"] == 0


def test_bad_input_fails_before_any_work(cluster, tmp_path):
    with pytest.raises(ValueError, match="no-such-model"):
        GridSpec(["no-such-model"], CHILDREN, ["arith"], BASE)
    with pytest.raises(ValueError, match="Unknown grid task"):
        GridSpec(PARENTS, CHILDREN, ["nope"], BASE)
    with pytest.raises(ConnectionError, match="ray start --head"):
        run_grid(_spec(), tmp_path, ray="127.0.0.1:1", progress=False)
    with pytest.raises(ValueError, match="needs 1 GPU"):  # the local cluster has no GPU
        run_grid(_spec(), tmp_path, ray="auto", gpus_per_task=1, progress=False)
    with pytest.raises(ValueError, match="GiB of memory"):
        run_grid(_spec(), tmp_path, ray="auto", memory_gib=10_000, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_errors_are_one_line(tmp_path):
    from typer.testing import CliRunner

    from xsteer.cli import app

    for args, message in ((["--parents", "no-such-model"], "no-such-model"),
                          (["--parents", PARENTS[0], "--ray", "127.0.0.1:1"], "ray start --head")):
        res = CliRunner().invoke(app, ["grid", *args, "--children", CHILDREN[0], "--out", str(tmp_path)])
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_cli_steering_options_reach_every_cell(tmp_path, monkeypatch):
    """`grid --operator/--positions/--schedule` set every cell's config, as `run`'s do; a bad one is a
    one-line error before any work."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    import xsteer.grid
    from xsteer.cli import app

    seen = {}

    def fake_run_grid(spec, out, **_):
        seen["cells"] = spec.cells(out)
        (out / "grid_summary.md").write_text("summary")
        return SimpleNamespace(summary_path=out / "grid_summary.md", failed=[])

    monkeypatch.setattr(xsteer.grid, "run_grid", fake_run_grid)
    common = ["grid", "--parents", PARENTS[0], "--children", ",".join(CHILDREN), "--out", str(tmp_path)]
    res = CliRunner().invoke(app, [*common, "--operator", "clamp:0.5", "--positions", "last_prompt",
                                   "--schedule", "band:0:1:2", "--schedule-budget", "7"])
    assert res.exit_code == 0, res.output
    configs = [c.config for c in seen["cells"]]
    assert len(configs) == 2
    for cfg in configs:
        assert (cfg.operator, cfg.positions, cfg.schedule_budget) == ("clamp:0.5", "last_prompt", 7)
        assert cfg.schedule == {"name": "band", "start": 0, "width": 1, "strength": 2.0, "outside": 0.0}
    seen.clear()
    for bad, message in ((["--operator", "clamp"], "clamp"), (["--schedule", "band:x"], "band")):
        res = CliRunner().invoke(app, [*common, *bad])
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    assert not seen


# --------------------------------------------------------------------------- sizing, statistics, dtype


def test_parameter_estimate_from_a_config_matches_the_model(tmp_path):
    from xsteer.models import tiny_model

    model = tiny_model("qwen2", 3, 64, 0)
    hf = model.original_model
    hf.config.save_pretrained(tmp_path)
    true = sum(p.numel() for p in hf.parameters())
    assert estimate_params(str(tmp_path)) == pytest.approx(true, rel=0.02)
    assert estimate_params("Qwen/Qwen2.5-14B-Instruct") == pytest.approx(14.77e9)
    assert estimate_params("someone/Model-1.5B-chat") == 1.5e9
    assert estimate_params("someone/model") is None


def test_task_resources_and_fit():
    phi = task_resources(["microsoft/phi-4"], on_gpu=True)  # 14.66e9 × 2 bytes × 1.2 + 1 GiB
    assert phi.memory == int(14.66e9 * 2 * 1.2 + GiB) and phi.num_gpus == 1
    big = task_resources(["microsoft/phi-4", "Qwen/Qwen2.5-14B-Instruct"], on_gpu=True, gpu_memory_gib=40)
    assert big.num_gpus == 2
    assert task_resources(["microsoft/phi-4"], on_gpu=False).num_gpus == 0
    assert task_resources(["x/y"], on_gpu=True, gpus_per_task=0.5, memory_gib=3) == Resources(0.5, 3 * GiB)
    with pytest.raises(ValueError, match="--gpus-per-task"):
        task_resources(["x/y"], on_gpu=True)
    nodes = [{"CPU": 8, "GPU": 2, "memory": 100 * GiB}, {"CPU": 8, "memory": 200 * GiB}]
    check_fits("ok", Resources(2, 90 * GiB), nodes)
    with pytest.raises(ValueError, match="needs 4 GPU"):
        check_fits("cell", Resources(4, GiB), nodes)


def test_mean_ci_matches_scipy_bootstrap():
    from scipy.stats import bootstrap

    x = np.array([0.1, -0.05, 0.2, 0.0, 0.15, 0.05, -0.1, 0.3])
    mine = mean_ci(x, n_boot=20_000, seed=1)
    ref = bootstrap((x,), np.mean, n_resamples=20_000, method="percentile", random_state=2).confidence_interval
    assert mine.value == pytest.approx(x.mean())
    assert mine.low == pytest.approx(ref.low, abs=0.01) and mine.high == pytest.approx(ref.high, abs=0.01)


def test_max_memory_map_uses_the_fewest_gpus():
    from xsteer.grid.placement import blocks_needed, max_memory_map

    phi4_bf16 = 14.66e9 * 2  # 27.3 GiB
    assert max_memory_map(phi4_bf16, [80 * GiB, 80 * GiB]) == {0: int(80 * GiB * 0.85)}
    plan = max_memory_map(phi4_bf16, [24 * GiB] * 4)  # 20.4 GiB usable per GPU: two GPUs
    assert plan == {0: int(24 * GiB * 0.85), 1: int(24 * GiB * 0.85)}
    assert sum(plan.values()) >= phi4_bf16
    with pytest.raises(ValueError, match="do not fit"):
        max_memory_map(phi4_bf16, [16 * GiB])
    assert max_memory_map(phi4_bf16, [16 * GiB], cpu_bytes=64 * GiB)["cpu"] == 64 * GiB
    assert blocks_needed(40, [28, 16]) == 28 and blocks_needed(40, [42]) == 40
    assert blocks_needed(40, [28], layer_map="cka") == 40


def test_bf16_parent_extracts_the_fp32_vectors():
    from xsteer.contrast import arithmetic_pairs
    from xsteer.extract import extract_vectors
    from xsteer.models import tiny_model

    pairs = arithmetic_pairs(16, 0)
    fp32 = tiny_model("llama", 3, 64, 0)
    bf16 = tiny_model("llama", 3, 64, 0)
    bf16.original_model.to(torch.bfloat16)
    assert next(bf16.original_model.parameters()).dtype == torch.bfloat16
    a, b = extract_vectors(fp32, pairs, "mean_diff"), extract_vectors(bf16, pairs, "mean_diff")
    assert any(not torch.equal(a[l], b[l]) for l in a.layers), "bf16 weights were not used"
    for layer in a.layers:
        assert torch.dot(a[layer], b[layer]).item() > 0.99, layer
