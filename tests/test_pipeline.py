"""The one-call pipeline on tiny models: files, λ* and ITS recomputed from the records, resume,
report regeneration without models, and one-line CLI errors."""

import json
from collections import defaultdict

import pytest
from typer.testing import CliRunner

from xsteer.cli import app
from xsteer.evaluate import its_vote
from xsteer.models import tiny_model
from xsteer.pipeline import TransferConfig, run_transfer, select_lambda
from xsteer.report import render_markdown
from xsteer.results import TransferResult

LAMS = [0.5, 4.0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    models = {"p": tiny_model("llama", 3, 64, 0), "c": tiny_model("qwen3", 4, 48, 1)}
    cfg = TransferConfig(
        parent="p", child="c", task="arith", k_shot=0, n_pairs=8, n_anchors=24, lambdas=LAMS,
        n_val=4, n_test=6, n_random=2, batch_size=16,
    )
    result = run_transfer(cfg, out, models=models, progress=False)
    return out, result, models, cfg


def _records(out):
    return [json.loads(l) for l in (out / "records" / "records.jsonl").read_text().splitlines()]


def test_run_folder_contents(run):
    out, result, _, _ = run
    for name in ("config.json", "report.json", "report.md", "transfer.json", "transfer.safetensors",
                 "vectors/parent.safetensors", "vectors/transferred.json", "vectors/child_own.json"):
        assert (out / name).exists(), name
    assert not (out / "figures").exists()  # the library writes data; front ends draw
    assert set(result.conditions) == {"transferred", "child_own", "random[0]", "random[1]", "self_consistency"}
    assert TransferResult.load(out).to_dict() == result.to_dict()


def test_lambda_star_and_its_from_records(run):
    out, result, _, _ = run
    recs = _records(out)
    by = defaultdict(dict)
    for r in recs:
        by[(r["split"], r["condition"])][(r["example_id"], r["lam"], r["sample"])] = r
    base = by[("test", "baseline")]
    assert result.baseline["test"] == [base[(i, 0.0, 0)]["correct"] for i in result.item_ids["test"]]
    for name in ("transferred", "child_own", "random[1]"):
        val = by[("validation", name)]
        acc = {lam: sum(val[(i, lam, 0)]["correct"] for i in result.item_ids["validation"]) for lam in LAMS}
        best = max(acc.values())
        assert result.conditions[name].lambda_star == min(l for l in LAMS if acc[l] == best)
        test = by[("test", name)]
        for k, item in enumerate(result.item_ids["test"]):
            votes = {lam: test[(item, lam, 0)]["prediction"] for lam in LAMS}
            gold = test[(item, LAMS[0], 0)]["gold"]
            assert result.conditions[name].its_correct[k] == (its_vote(votes) == gold)


def test_rerun_resumes_without_new_records(run):
    out, result, models, cfg = run
    n = len(_records(out))
    again = run_transfer(cfg, out, models=models, progress=False)
    assert len(_records(out)) == n
    assert again.baseline == result.baseline
    assert {k: c.its_correct for k, c in again.conditions.items()} == {
        k: c.its_correct for k, c in result.conditions.items()
    }


def test_resume_with_saved_vectors_needs_no_parent(run):
    """A folder with parent vectors and the transfer resumes (here: more random controls) with only
    the child at hand; the parent spec ("p", which no loader knows) is never loaded."""
    out, result, models, cfg = run
    cfg2 = TransferConfig(**{**cfg.__dict__, "n_random": 3})
    again = run_transfer(cfg2, out, models={"c": models["c"]}, progress=False)
    assert again.conditions["transferred"].its_correct == result.conditions["transferred"].its_correct
    assert "random[2]" in again.conditions
    run_transfer(cfg, out, models=models, progress=False)  # restore the folder for later tests


def test_report_regenerates_identically_without_models(run):
    out, _, _, _ = run
    loaded = TransferResult.load(out)
    assert render_markdown(loaded) == (out / "report.md").read_text()
    assert set(loaded.statistics.comparisons) >= {("transferred", "lambda_star"), ("transferred", "its"),
                                                  ("self_consistency", "its")}
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0 and "report.md" in result.output
    for name in ("figures/accuracy_vs_lambda.html", "figures/gains.html", "figures/results_table.md"):
        assert (out / name).exists(), name


def test_select_lambda_tie_goes_to_smaller():
    assert select_lambda({0.1: 0.5, 0.05: 0.5, 0.2: 0.4}) == 0.05


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--task", "nope"], "Unknown task"),
        (["run", "--lambdas", "0.1,-1"], ">= 0"),
        (["run", "--lambdas", "a,b"], "--lambdas"),
        (["run", "--parent", "no-such-model"], "embedded defaults"),
        (["run", "--task", "gsm8k", "--data-dir", "/nonexistent/folder"], "/nonexistent/folder"),
        (["report", "/nonexistent/run"], "No report"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path):
    if args[0] == "run":
        args = [*args, "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_run_with_fidelity_opens_the_report_with_it_and_does_not_redo_it(tmp_path):
    """run_transfer(fidelity=[...]): the concept's numbers open report.md (read from the stage's
    summary), and a resume reads the summary back instead of measuring again."""
    models = {"p": tiny_model("llama", 2, 32, 0), "c": tiny_model("qwen3", 2, 32, 1)}
    cfg = TransferConfig(
        parent="p", child="c", task="arith", k_shot=0, n_pairs=8, n_anchors=24, lambdas=[0.5],
        n_val=2, n_test=2, n_random=0, self_consistency=False, layer_map="proportional",
        fidelity=["sentiment"],
    )
    result = run_transfer(cfg, tmp_path, models=models, progress=False)
    summary_file = tmp_path / "fidelity" / "summary.json"
    summary = json.loads(summary_file.read_text())
    assert {name: f.to_dict() for name, f in result.fidelity.items()} == summary
    assert TransferResult.load(tmp_path).fidelity == result.fidelity  # typed, through report.json
    found = (tmp_path / "report.md").read_text().split("## Setup")[0]
    assert f"readout over all child layers {summary['sentiment']['transferred']:.2f}" in found
    before = summary_file.stat().st_mtime_ns
    run_transfer(cfg, tmp_path, models=models, progress=False)
    assert summary_file.stat().st_mtime_ns == before


def test_unknown_fidelity_concept_fails_on_construction():
    with pytest.raises(ValueError, match="Unknown fidelity concept 'nope'"):
        TransferConfig(fidelity=["nope"])


def test_concept_fidelity_stage_reports_readout_and_steering_and_resumes(tmp_path):
    """--fidelity: the concept's readout through the run's transfer (fitted with the concept held out)
    and its dose-response, summarised for the report; a resume reads the summary back, loading nothing."""
    from xsteer.models import ModelCache
    from xsteer.pipeline import _concept_fidelity

    models = ModelCache({"p": tiny_model("llama", 3, 64, 0), "c": tiny_model("qwen3", 4, 48, 1)})
    cfg = TransferConfig(parent="p", child="c", fidelity=["sentiment"], batch_size=32)
    summary = _concept_fidelity(cfg, models, tmp_path, progress=False)
    entry = summary["sentiment"]
    assert 0 <= entry.transferred <= 1 and 0 <= entry.child_own <= 1 and entry.layers
    saved = json.loads((tmp_path / "fidelity" / "sentiment" / "report.json").read_text())
    (row,) = saved["concepts"][0]["summary"]
    assert row["transferred_all_layers"] == entry.transferred
    assert (tmp_path / "fidelity" / "steering-sentiment.md").exists()
    again = _concept_fidelity(cfg, ModelCache({}), tmp_path, progress=False)  # an empty cache: nothing may load
    assert again == summary
