"""run_transfer / `xsteer run` with an operator, steered positions and a per-layer schedule: a band
schedule against the Evaluator by hand, the validation-only band search (saved, reused on resume,
never reading test items), operators other than add end to end, and bad input refused before any
model loads."""

import json
import math

import pytest
from typer.testing import CliRunner

from xsteer import pipeline
from xsteer.cli import app
from xsteer.evaluate import Evaluator
from xsteer.extract import random_vectors
from xsteer.models import tiny_model
from xsteer.operators import Clamp
from xsteer.pipeline import SCHEDULE_FILE, TransferConfig, run_transfer
from xsteer.schedules import Band
from xsteer.steer import relative_size
from xsteer.tasks import load_task
from xsteer.vectors import SteeringVectors

LAMS = [0.5, 4.0]
SMALL = dict(parent="p", child="c", task="arith", k_shot=0, n_pairs=8, n_anchors=16, adapter="procrustes", lambdas=LAMS,
             n_val=3, n_test=4, batch_size=16)
TINY = ["--parent", "tiny:llama:3:64:0", "--child", "tiny:qwen3:4:48:1"]


@pytest.fixture(scope="module")
def models():
    return {"p": tiny_model("llama", 3, 32, 0), "c": tiny_model("qwen3", 4, 32, 1)}


@pytest.fixture(autouse=True)
def _no_png(monkeypatch):
    monkeypatch.setenv("XSTEER_PNG", "0")


def _records(out):
    recs = {}
    for line in (out / "records" / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        recs[(r["split"], r["condition"], r["example_id"], r["lam"], r["sample"])] = r
    return recs


def _splits(cfg):
    task = load_task(cfg.task, k_shot=cfg.k_shot, seed=cfg.seed, mode=cfg.task_mode)
    return task, {"validation": task.split("validation")[: cfg.n_val], "test": task.split("test")[: cfg.n_test]}


# ---------------------------------------------------------------- a given band schedule


def test_band_schedule_equals_the_evaluator_by_hand(models, tmp_path):
    cfg = TransferConfig(**SMALL, n_random=1, self_consistency=False, schedule="band:1:2:2")
    assert cfg.schedule == {"name": "band", "start": 1, "width": 2, "strength": 2.0, "outside": 0.0}
    result = run_transfer(cfg, tmp_path, models=models, progress=False)
    child, band = models["c"], Band(1, 2, 2.0)
    task, splits = _splits(cfg)
    transferred = SteeringVectors.load(tmp_path / "vectors" / "transferred")
    own = SteeringVectors.load(tmp_path / "vectors" / "child_own")
    by_hand = Evaluator(child, task, batch_size=5, schedule=band, progress=False)
    plain = Evaluator(child, task, batch_size=5, progress=False)
    stored = _records(tmp_path)
    for name, vectors in (("transferred", transferred), ("child_own", own),
                          ("random[0]", random_vectors(transferred, seed=0))):
        cond = result.conditions[name]
        for split, examples in splits.items():
            got = by_hand.sweep(examples, split, name, vectors, LAMS)
            assert cond.correct[split] == {lam: [r.correct for r in recs] for lam, recs in got.items()}
            for lam, recs in got.items():
                for r in recs:
                    run_scores = stored[(split, name, r.example_id, lam, 0)]["meta"]["sum"]
                    assert run_scores == pytest.approx(r.meta["sum"], abs=1e-4)
        assert cond.relative_size == pytest.approx(
            relative_size(child, vectors, cond.lambda_star, schedule=band))
        assert cond.relative_size[0] == 0.0 and cond.relative_size[1] > 0
    # the schedule took effect: without it the same vectors score otherwise
    unscheduled = plain.sweep(splits["test"], "test", "x", transferred, [LAMS[-1]])[LAMS[-1]]
    assert any(abs(a - b) > 1e-3 for r in unscheduled
               for a, b in zip(r.meta["sum"], stored[("test", "transferred", r.example_id, LAMS[-1], 0)]["meta"]["sum"]))
    steering = json.loads((tmp_path / "report.json").read_text())["diagnostics"]["steering"]
    assert steering["schedule"]["per_layer"] == {str(l): 2.0 if l in (1, 2) else 0.0 for l in transferred.layers}
    report = (tmp_path / "report.md").read_text()
    assert "band: layers 1–2 × 2" in report and "| child layer | s_l |" in report
    assert json.loads((tmp_path / "config.json").read_text())["schedule"] == cfg.schedule


# ---------------------------------------------------------------- the searched schedule


def test_search_reads_validation_only_is_saved_and_reused(models, tmp_path, monkeypatch):
    cfg = TransferConfig(**SMALL, n_random=1, self_consistency=False, schedule="search", schedule_budget=4)
    calls, searching = [], []
    sweep, search = Evaluator.sweep, pipeline.search_band

    def spy_sweep(self, examples, split, condition, vectors, lambdas):
        calls.append((bool(searching), split, condition, [e.id for e in examples], list(lambdas)))
        return sweep(self, examples, split, condition, vectors, lambdas)

    def spy_search(objective, *a, **k):
        searching.append(True)
        try:
            return search(objective, *a, **k)
        finally:
            searching.clear()

    monkeypatch.setattr(Evaluator, "sweep", spy_sweep)
    monkeypatch.setattr(pipeline, "search_band", spy_search)
    result = run_transfer(cfg, tmp_path, models=models, progress=False)

    _, splits = _splits(cfg)
    val_ids = [e.id for e in splits["validation"]]
    during = [c for c in calls if c[0]]
    assert 1 <= len(during) <= 4
    for _, split, condition, ids, lams in during:
        assert split == "validation" and ids == val_ids and condition.startswith("search:")
        assert len(lams) == 1 and lams[0] in LAMS
    searched = [r for k, r in _records(tmp_path).items() if k[1].startswith("search:")]
    assert searched and {r["split"] for r in searched} == {"validation"}
    assert {r["example_id"] for r in searched} <= set(val_ids)

    saved = json.loads((tmp_path / SCHEDULE_FILE).read_text())
    best = saved["best"]
    assert len(saved["history"]) == len(during) and saved["score"] == max(h["accuracy"] for h in saved["history"])
    assert saved["schedule"] == Band(best["start"], best["width"]).to_dict() and saved["split"] == "validation"
    inside = set(range(best["start"], best["start"] + best["width"]))
    for name in ("transferred", "child_own", "random[0]"):  # one schedule for every steered condition
        sizes = result.conditions[name].relative_size
        assert {l for l, v in sizes.items() if v > 0} == inside & set(sizes)
    steering = result.diagnostics["steering"]
    assert steering["search"]["best"] == best and "searched on the validation split only" in (tmp_path / "report.md").read_text()

    # resume: the saved band is reused, nothing is searched or evaluated again
    n = len(_records(tmp_path))

    def refuse(*a, **k):
        raise AssertionError("searched again on resume")

    monkeypatch.setattr(pipeline, "search_band", refuse)
    again = run_transfer(cfg, tmp_path, models=models, progress=False)
    assert len(_records(tmp_path)) == n
    assert {k: c.correct for k, c in again.conditions.items()} == {k: c.correct for k, c in result.conditions.items()}

    # another operator or schedule is another run: refused with the differing fields named
    for change, field in (({"operator": "project"}, "operator: 'add' → 'project'"),
                          ({"schedule": "band:0:1"}, "schedule: 'search' → "),
                          ({"schedule_budget": 9}, "schedule_budget: 4 → 9")):
        with pytest.raises(ValueError, match=field):
            run_transfer(TransferConfig(**{**cfg.__dict__, **change}), tmp_path, models=models, progress=False)


# ---------------------------------------------------------------- operators and positions


@pytest.fixture(scope="module")
def add_run(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("add")
    cfg = TransferConfig(**SMALL, n_random=0, child_own=False, self_consistency=False)
    run_transfer(cfg, out, models=models, progress=False)
    return cfg, _records(out)


@pytest.mark.parametrize("operator, positions, canonical", [
    ("project", "all", "project"),
    ("clamp:.5", "last_prompt", "clamp:0.5"),
])
def test_operators_and_positions_run_end_to_end_and_differ_from_add(models, add_run, tmp_path, operator,
                                                                    positions, canonical):
    base_cfg, base = add_run
    cfg = TransferConfig(**{**base_cfg.__dict__, "operator": operator, "positions": positions})
    assert cfg.operator == canonical
    result = run_transfer(cfg, tmp_path, models=models, progress=False)
    recs = _records(tmp_path)
    steered = [k for k in recs if k[1] == "transferred"]
    assert set(steered) == {k for k in base if k[1] == "transferred"}
    assert all(recs[k]["meta"]["sum"] == pytest.approx(base[k]["meta"]["sum"], abs=1e-5)
               for k in recs if k[1] == "baseline")
    assert any(not all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(recs[k]["meta"]["sum"], base[k]["meta"]["sum"]))
               for k in steered)
    assert json.loads((tmp_path / "config.json").read_text())["operator"] == canonical
    assert result.diagnostics["steering"]["positions"] == positions
    if canonical.startswith("clamp"):
        assert result.diagnostics["steering"]["operator"] == Clamp(0.5).to_dict()
    if canonical != "add":
        assert f"The operator is `{canonical.split(':')[0]}`" in (tmp_path / "report.md").read_text()


# ---------------------------------------------------------------- bad input, before any model loads


@pytest.mark.parametrize("kw, message", [
    ({"operator": "clamp"}, "clamp:VALUE"),
    ({"operator": "steer"}, "Unknown steering operator 'steer'"),
    ({"operator": "kv"}, "xsteer.kv_steer"),
    ({"positions": "middle"}, "positions must be one of"),
    ({"positions": "generated"}, "--mode generate"),  # arith scores choices by default
    ({"schedule": "band:1"}, "band:START:WIDTH"),
    ({"schedule": "band:0:0"}, "width >= 1"),
    ({"schedule": {"name": "cosine"}}, "Unknown schedule"),
    ({"schedule": "missing.json"}, "does not exist"),
    ({"schedule_budget": 0}, "schedule_budget must be an integer >= 1"),
])
def test_bad_options_fail_on_construction(kw, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        TransferConfig(**kw)


def test_generated_positions_are_fine_in_generate_mode():
    assert TransferConfig(task="arith", task_mode="generate", positions="generated").positions == "generated"


def test_schedule_for_layers_the_child_lacks_fails_before_loading(loads, tmp_path):
    cfg = TransferConfig(parent="tiny:llama:3:64:0", child="tiny:qwen3:4:48:1", task="arith", k_shot=0,
                         n_pairs=8, n_anchors=16, schedule="band:3:4")
    with pytest.raises(ValueError, match=r"Child tiny:qwen3:4:48:1: The band schedule names layers \[6\].*has 4 blocks"):
        run_transfer(cfg, tmp_path / "run", progress=False)
    assert loads == [] and not (tmp_path / "run").exists()


def test_schedule_depth_unknown_until_load_fails_before_the_parent_loads(models, loads, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.ModelCache, "depth", lambda self, spec: None)
    cfg = TransferConfig(parent="tiny:llama:3:64:0", child="c", task="arith", k_shot=0, n_pairs=8,
                         n_anchors=16, schedule={"name": "per_layer", "values": {"9": 1.0}})
    with pytest.raises(ValueError, match=r"names layers \[9\].*has 4 blocks"):
        run_transfer(cfg, tmp_path / "run", models={"c": models["c"]}, progress=False)
    assert loads == []


@pytest.mark.parametrize("args, message", [
    (["--operator", "clamp"], "clamp:VALUE"),
    (["--positions", "generated"], "--mode generate"),
    (["--schedule", "band:x:2"], "band:START:WIDTH"),
    (["--schedule", "band:2:5"], "has 4 blocks"),
    (["--schedule", "search", "--schedule-budget", "0"], "schedule_budget"),
])
def test_cli_errors_are_one_line_before_loading(loads, tmp_path, args, message):
    result = CliRunner().invoke(app, ["run", *TINY, "--fidelity", "", *args, "--out", str(tmp_path / "run")])
    errors = [l for l in result.output.splitlines() if l.startswith("error:")]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and message in errors[0], result.output
    assert loads == [] and "Traceback" not in result.output


def test_cli_schedule_file(models, tmp_path, monkeypatch):
    """--schedule FILE.json (e.g. a run's schedule.json) becomes the config's schedule dict."""
    spec = tmp_path / "band.json"
    spec.write_text(json.dumps({"schedule": Band(0, 2, 0.5).to_dict(), "score": 1.0}))
    seen = {}
    monkeypatch.setattr(pipeline, "run_transfer", lambda cfg, out, **k: seen.setdefault("cfg", cfg) and 1 / 0)
    result = CliRunner().invoke(app, ["run", *TINY, "--fidelity", "", "--schedule", str(spec),
                                      "--operator", "norm_preserving", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "ZeroDivisionError" in result.output
    assert seen["cfg"].schedule == Band(0, 2, 0.5).to_dict()
    assert seen["cfg"].operator == "norm_preserving_add"


def test_objects_are_accepted_and_stored_as_specs():
    cfg = TransferConfig(operator=Clamp(0.25), schedule=Band(1, 2))
    assert cfg.operator == "clamp:0.25" and cfg.schedule == Band(1, 2).to_dict()
