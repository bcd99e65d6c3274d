"""Readout fidelity: vectorised AUROC against sklearn, pair-bootstrap CIs, and a planted case where
the exact parent -> child map is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from xsteer.concepts import concept_from_pairs
from xsteer.fidelity import ConceptActs, auroc, auroc_ci
from xsteer.fidelity import readout_from_activations, random_null
from xsteer.transfer import ModelInfo, Transfer


def test_auroc_matches_sklearn_per_column_with_ties():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, (30, 7)).astype(float), rng.integers(0, 4, (25, 7)).astype(float)
    got = auroc(pos, neg)
    labels = np.r_[np.ones(30), np.zeros(25)]
    want = [roc_auc_score(labels, np.r_[pos[:, k], neg[:, k]]) for k in range(7)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert auroc(pos[:, 0], neg[:, 0]) == pytest.approx(want[0])


def test_auroc_ci_point_is_auroc_and_bootstrap_matches_index_resampling():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(0.6, 1, 40), rng.normal(0, 1, 40)
    est = auroc_ci(pos, neg, n_boot=2000, seed=3)
    assert est.value == pytest.approx(roc_auc_score(np.r_[np.ones(40), np.zeros(40)], np.r_[pos, neg]))
    # Reference: resample pair indices explicitly and score with sklearn.
    idx = np.random.default_rng(7).integers(0, 40, (400, 40))
    ref = [roc_auc_score(np.r_[np.ones(40), np.zeros(40)], np.r_[pos[i], neg[i]]) for i in idx]
    lo, hi = np.quantile(ref, [0.025, 0.975])
    assert est.low == pytest.approx(lo, abs=0.03) and est.high == pytest.approx(hi, abs=0.03)
    assert est.low < est.value < est.high


def _planted(seed=0, dp=128, dc=96, n_layers=3, n_pairs=120, n_anchor=800, delta=5.0, noise=0.05):
    """Parent rows x; child rows x @ A_l + small noise: the exact map is A_l at every layer."""
    rng = np.random.default_rng(seed)
    A = {l: rng.standard_normal((dp, dc)) / np.sqrt(dp) for l in range(n_layers)}
    u = rng.standard_normal(dp)
    u /= np.linalg.norm(u)

    def child_of(x, l):
        return x @ A[l] + noise * rng.standard_normal((len(x), dc))

    def side(sign, n):
        base = rng.standard_normal((n, dp))
        return base + sign * (delta / 2) * u

    anchors_p = {l: rng.standard_normal((n_anchor, dp)) for l in range(n_layers)}
    anchors_c = {l: child_of(anchors_p[l], l) for l in range(n_layers)}
    parts_p, parts_c = [], []
    for n in (int(n_pairs * 0.75), n_pairs - int(n_pairs * 0.75)):
        shared = rng.standard_normal((n, dp))  # the pair's shared content
        pos = {l: shared + side(+1, n) * 0.5 for l in range(n_layers)}
        neg = {l: shared + side(-1, n) * 0.5 for l in range(n_layers)}
        parts_p += [pos, neg]
        parts_c += [{l: child_of(pos[l], l) for l in pos}, {l: child_of(neg[l], l) for l in neg}]
    t = lambda d: {l: torch.tensor(v, dtype=torch.float32) for l, v in d.items()}
    pa = ConceptActs(*[t(p) for p in parts_p])
    ca = ConceptActs(*[t(p) for p in parts_c])
    pinfo, cinfo = ModelInfo("planted-parent", dp, n_layers), ModelInfo("planted-child", dc, n_layers)
    return pa, ca, t(anchors_p), t(anchors_c), pinfo, cinfo, A, u


def _concept(n_pairs=120):
    pairs = [(f"pos {i}", f"neg {i}") for i in range(n_pairs)]
    return concept_from_pairs("planted", pairs, held_out=0.25)


def test_planted_map_transferred_readout_recovers_child_own():
    pa, ca, ap, ac, pinfo, cinfo, A, u = _planted()
    transfers = {
        ("greedy", ad): Transfer("greedy", ad).fit_activations(ap, ac, pinfo, cinfo) for ad in ("ridge",)
    }
    out = readout_from_activations(_concept(), pa, ca, transfers, parent_info=pinfo, n_random=300, n_boot=500)
    assert out.parent.holds and out.child.holds
    own = {r.layer: r for r in out.child_layers}
    assert len(out.transferred) == 3
    for t in out.transferred:
        assert t.child_layer == t.parent_layer
        # direction recovered: the transferred vector is the child-own vector
        assert t.cos_child_own > 0.98
        assert t.auroc.value == pytest.approx(own[t.child_layer].child_own.value, abs=0.03)
        assert t.auroc.value > 0.85 and t.above_random
        assert t.r2 > 0.9  # the ridge adapter found the planted map
    for r in out.child_layers:
        assert abs(r.random.p50 - 0.5) < 0.1 and r.random.p95 < r.child_own.low


def test_wrong_map_scores_near_random():
    """A map fitted on unrelated anchor pairs (child rows shuffled) carries no concept."""
    pa, ca, ap, ac, pinfo, cinfo, A, u = _planted(seed=1)
    perm = torch.randperm(ac[0].shape[0], generator=torch.Generator().manual_seed(0))
    shuffled = {l: x[perm] for l, x in ac.items()}
    tr = Transfer("greedy", "ridge").fit_activations(ap, shuffled, pinfo, cinfo)
    out = readout_from_activations(_concept(), pa, ca, {("greedy", "ridge"): tr}, parent_info=pinfo, n_random=300, n_boot=500)
    own = {r.layer: r.child_own.value for r in out.child_layers}
    for t in out.transferred:
        assert abs(t.cos_child_own) < 0.6
        assert t.auroc.value < own[t.child_layer] - 0.05


def test_random_null_vectorised_equals_per_direction_loop():
    pa, ca, *_ = _planted(seed=2)
    null = random_null(ca, 1, n=50, seed=4)
    # Reference: the same seeded directions one at a time through sklearn.
    d = ca.test_pos[1].shape[1]
    r = np.random.default_rng([4, 1]).standard_normal((d, 50))
    r /= np.linalg.norm(r, axis=0, keepdims=True)
    labels = np.r_[np.ones(len(ca.test_pos[1])), np.zeros(len(ca.test_neg[1]))]
    ref = []
    for k in range(50):
        v = r[:, k]
        margin = (ca.train_pos[1].double().numpy() - ca.train_neg[1].double().numpy()) @ v
        if (margin > 0).mean() < 0.5 or ((margin > 0).mean() == 0.5 and margin.mean() < 0):
            v = -v
        ref.append(roc_auc_score(labels, np.r_[ca.test_pos[1].double().numpy() @ v, ca.test_neg[1].double().numpy() @ v]))
    assert null.mean == pytest.approx(np.mean(ref), abs=1e-9)
    assert null.p95 == pytest.approx(np.quantile(ref, 0.95), abs=1e-9)


def _result(delta):
    from xsteer.fidelity import FidelityResult

    pa, ca, ap, ac, pinfo, cinfo, *_ = _planted(seed=3, delta=delta)
    trs = {(lm, ad): Transfer(lm, ad).fit_activations(ap, ac, pinfo, cinfo) for lm, ad in (("greedy", "procrustes"), ("proportional", "truncate_pad"))}
    ro = readout_from_activations(_concept(), pa, ca, trs, parent_info=pinfo, n_random=100, n_boot=200)
    return FidelityResult("planted-parent", "planted-child", [ro], {"n_texts": 800}, {"n_random": 100})


def test_report_flags_a_concept_the_parent_does_not_hold(tmp_path):
    from xsteer.figures import readout_figure
    from xsteer.fidelity import write_report

    held, not_held = _result(5.0), _result(0.0)
    assert held.flags == [] and len(not_held.flags) == 1 and "does NOT hold 'planted'" in not_held.flags[0]
    table = held.table()
    assert len(table) == 2 and set(table["adapter"]) == {"procrustes", "truncate_pad"}
    # the summary row reads the layer chosen on train pairs, never on test pairs
    for row in table.to_dict("records"):
        ts = [t for t in held.concepts[0].transferred if (t.layer_map, t.adapter) == (row["layer_map"], row["adapter"])]
        assert row["child_layer"] == max(ts, key=lambda t: t.train_auroc).child_layer
    paths = write_report(not_held, tmp_path)
    md = paths["markdown"].read_text()
    assert "does NOT hold" in md and "| planted-parent → planted-child | planted | **NO**" in md
    import json

    data = json.loads(paths["json"].read_text())
    assert data["flags"] and data["concepts"][0]["parent"]["holds"] is False
    fig = readout_figure(held, "planted")
    names = [t.name for t in fig.data]
    assert "child_own" in names and sum(n.startswith("transferred") for n in names if n) == 2
    assert len({t.line.dash for t in fig.data if t.name and t.name.startswith("transferred")}) == 2  # greyscale-readable
    assert held.plot().to_dict() == fig.to_dict()
    assert "<table" in held._repr_html_() and "does NOT hold" in not_held._repr_html_()


@pytest.mark.real
def test_readout_fidelity_gemma_to_smollm2_matches_sklearn(gemma, smollm2):
    from xsteer.concepts import load_concept
    from xsteer.activations import collect_activations
    from xsteer.extract import extract_vectors
    from xsteer.fidelity import readout_fidelity

    concept = load_concept("sentiment", n=48, seed=0)
    res = readout_fidelity(gemma, smollm2, [concept], layer_maps=["greedy"], adapters=["ridge"],
                           anchor_texts=concept.texts("train"), anchor_mode="shared", n_random=100, n_boot=200)
    ro = res.concepts[0]
    assert [t.child_layer for t in ro.transferred] == list(range(18))
    assert all(t.parent_layer == t.child_layer for t in ro.transferred)
    # child-own AUROC at one layer, recomputed independently with extract_vectors + sklearn
    own = extract_vectors(smollm2, concept.train, "mean_diff", [9], held_out=0.0)
    acts = collect_activations(smollm2, concept.texts("test"), [9])[9].double() @ own[9].double()
    m = len(concept.test)
    want = roc_auc_score(np.r_[np.ones(m), np.zeros(m)], acts.numpy())
    assert ro.child_layers[9].child_own.value == pytest.approx(want, abs=1e-4)
    assert len(res.table()) == 1 and res.timing["readout_rows_per_s"] > 0
    print("\n" + res.table().to_string())


def test_cached_activations_serve_both_directions_on_tiny_models(tmp_path):
    from xsteer.concepts import load_concept
    from xsteer.fidelity import cached_model_acts, fidelity_from_acts
    from xsteer.models import tiny_model

    p, c = tiny_model("llama", n_layers=2, d_model=32, seed=0), tiny_model("qwen2", n_layers=3, d_model=48, seed=1)
    cs = [load_concept("language", n=32)]
    anchors = cs[0].texts("train")
    acts = [cached_model_acts(m, cs, anchors, cache_dir=tmp_path) for m in (p, c)]
    again = cached_model_acts(p.cfg.model_name, cs, anchors, cache_dir=tmp_path)  # from disk, no model needed
    assert all(torch.equal(again.last[l], acts[0].last[l]) for l in again.last)
    with pytest.raises(ValueError, match="not cached"):
        cached_model_acts("other-model", cs, anchors, cache_dir=tmp_path)
    kw = dict(layer_maps=["greedy"], adapters=["procrustes"], anchor_texts=anchors, anchor_mode="shared", n_random=50, n_boot=100)
    fwd = fidelity_from_acts(acts[0], acts[1], cs, **kw)
    rev = fidelity_from_acts(acts[1], acts[0], cs, **kw)
    assert [t.child_layer for t in fwd.concepts[0].transferred] == [0, 1]
    assert [t.child_layer for t in rev.concepts[0].transferred] == [0, 1]
    assert (fwd.parent, fwd.child) == (rev.child, rev.parent)
    # the child's own readout in one direction is the parent's strength in the other
    assert [s.auroc for s in rev.concepts[0].parent.layers] == [r.child_own for r in fwd.concepts[0].child_layers]


def test_leave_concept_out_fits_each_concept_without_its_own_texts():
    from xsteer.concepts import load_concept
    from xsteer.fidelity import collect_model_acts, concept_anchor_texts, fidelity_from_acts, fit_transfers
    from xsteer.models import tiny_model

    p, c = tiny_model("llama", n_layers=2, d_model=32, seed=0), tiny_model("qwen3", n_layers=2, d_model=48, seed=1)
    cs = [load_concept("language", n=40), load_concept("sentiment", n=40)]
    anchors = [t for x in cs for t in x.texts("train")]
    acts = [collect_model_acts(m, cs, anchors) for m in (p, c)]
    res = fidelity_from_acts(acts[0], acts[1], cs, layer_maps=["greedy"], adapters=["ridge"], anchor_texts=anchors,
                             n_random=20, n_boot=50)
    assert res.anchors["mode"] == "leave_concept_out"
    for concept, readout in zip(cs, res.concepts):
        kept = concept_anchor_texts(anchors, concept)
        assert not set(kept) & set(concept.texts("all")) and len(kept) == len(set(anchors)) - 2 * len(concept.train)
        assert res.anchors["rows"][concept.name] == 2 * len(kept)
        # the same readout from a transfer fitted by hand on exactly those anchors
        by_hand = readout_from_activations(concept, acts[0].concept(concept), acts[1].concept(concept),
                                           fit_transfers(acts[0], acts[1], kept, ["greedy"], ["ridge"]),
                                           parent_info=acts[0].info, n_random=20, n_boot=50)
        assert [t.auroc.value for t in readout.transferred] == [t.auroc.value for t in by_hand.transferred]
        assert [t.cos_child_own for t in readout.transferred] == [t.cos_child_own for t in by_hand.transferred]
    shared = fidelity_from_acts(acts[0], acts[1], cs, layer_maps=["greedy"], adapters=["ridge"], anchor_texts=anchors,
                                anchor_mode="shared", n_random=20, n_boot=50)
    assert shared.anchors["rows"] == {x.name: 2 * len(set(anchors)) for x in cs}
    with pytest.raises(ValueError, match="anchor texts remain"):
        fidelity_from_acts(acts[0], acts[1], cs[:1], anchor_texts=cs[0].texts("train"), n_random=5)
    with pytest.raises(ValueError, match="Unknown anchor mode"):
        fidelity_from_acts(acts[0], acts[1], cs, anchor_texts=anchors, anchor_mode="nope")


def test_cached_activations_of_a_loaded_model_with_other_weights_are_collected_again(tmp_path):
    """The cache is keyed by name; a loaded model of that name with other weights is not served the
    old model's rows (issue 26: no cached state from another model)."""
    from xsteer.activations import collect_activations
    from xsteer.concepts import load_concept
    from xsteer.fidelity import cached_model_acts
    from xsteer.models import tiny_model

    model = tiny_model("llama", n_layers=2, d_model=32, seed=0)
    cs = [load_concept("language", n=16)]
    anchors = cs[0].texts("train")[:6]
    before = cached_model_acts(model, cs, anchors, cache_dir=tmp_path)
    torch.manual_seed(0)
    with torch.no_grad():  # other weights (a rescaling would be the same model to the fingerprint)
        for param in model.original_model.parameters():
            param.add_(torch.randn_like(param) * param.std())
    after = cached_model_acts(model, cs, anchors, cache_dir=tmp_path)
    fresh = collect_activations(model, after.last_texts, None, pooling="last")
    assert not torch.allclose(after.last[1], before.last[1])
    torch.testing.assert_close(after.last[1], fresh[1], rtol=1e-4, atol=1e-5)


def test_readout_by_default_reads_each_concept_through_transfer_fitted_without_it(tmp_path, monkeypatch):
    """readout_fidelity with no transfer named reads each concept through the library's Transfer()
    fitted with that concept held out: the same numbers as fitting that by hand; a grid named beside
    prefitted transfers reads through both."""
    from xsteer.concepts import load_concept
    from xsteer.fidelity import collect_model_acts, fidelity_from_acts, readout_fidelity
    from xsteer.models import tiny_model
    from xsteer.transfer import Transfer

    monkeypatch.setenv("XSTEER_CACHE", str(tmp_path))
    p, c = tiny_model("llama", n_layers=2, d_model=32, seed=0), tiny_model("qwen3", n_layers=2, d_model=48, seed=1)
    cs = [load_concept("sentiment", n=32), load_concept("music", n=32)]
    res = readout_fidelity(p, c, cs, n_random=20, n_boot=50, n_mapped_random=2)
    acts = [collect_model_acts(m, cs, []) for m in (p, c)]
    for concept, readout in zip(cs, res.concepts):
        by_hand = readout_from_activations(concept, acts[0].concept(concept), acts[1].concept(concept),
                                           {("proportional", "difference"): Transfer().fit(p, c, hold_out=concept,
                                                                                        progress=False)},
                                           parent_info=acts[0].info, n_random=20, n_boot=50, n_mapped_random=2)
        assert [(t.layer_map, t.adapter) for t in readout.transferred] == [("proportional", "difference")] * 2
        assert [t.auroc.value for t in readout.transferred] == pytest.approx([t.auroc.value for t in by_hand.transferred])
    fits = res.anchors["prefitted"]
    assert set(fits) == {"sentiment", "music"} and fits["sentiment"] != fits["music"]  # each fit held its concept out
    anchors = [f"A plain sentence about item {i}." for i in range(40)]
    own = {x.name: Transfer().fit(p, c, hold_out=x, progress=False) for x in cs}
    both = fidelity_from_acts(*[collect_model_acts(m, cs, anchors) for m in (p, c)], cs, layer_maps=["greedy"],
                              adapters=["ridge"], anchor_texts=anchors, transfers=own, n_random=20, n_boot=50)
    assert {(t.layer_map, t.adapter) for t in both.concepts[0].transferred} == {("proportional", "difference"),
                                                                               ("greedy", "ridge")}
    with pytest.raises(ValueError, match="per concept but not for"):
        fidelity_from_acts(acts[0], acts[1], cs, transfers={"sentiment": own["sentiment"]}, n_random=5)


def test_cli_fidelity_reads_through_the_default_transfer_and_the_grid_beside_it(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from xsteer.cli import app
    from xsteer.fidelity import readout_fidelity
    from xsteer.models import load_model

    monkeypatch.setenv("XSTEER_CACHE", str(tmp_path / "cache"))
    models = ["tiny:llama:2:32:0", "tiny:qwen3:2:48:1"]
    args = ["fidelity", "--parent", models[0], "--child", models[1], "--concepts", "sentiment,music", "--n", "32",
            "--n-random", "20", "--n-mapped-random", "2", "--anchor-questions", "0", "--layer-maps", "greedy",
            "--adapters", "ridge"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    got = {(t["layer_map"], t["adapter"]) for c in saved["concepts"] for t in c["transferred"]}
    assert got == {("proportional", "difference"), ("greedy", "ridge")}
    by_python = readout_fidelity(*[load_model(m) for m in models], ["sentiment", "music"], n=32, n_random=20,
                                 n_mapped_random=2)
    for c, want in zip(saved["concepts"], by_python.concepts):
        cli = [t["auroc"]["value"] for t in c["transferred"] if t["adapter"] == "difference"]
        assert cli == pytest.approx([t.auroc.value for t in want.transferred])
    nothing = CliRunner().invoke(app, [*args[:-4], "--layer-maps", "", "--no-default-transfer", "--out", str(tmp_path / "x")])
    assert nothing.exit_code == 2 and "Nothing to read through" in nothing.output
