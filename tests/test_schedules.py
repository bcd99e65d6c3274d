"""Per-layer schedules against hand-worked multipliers and against selecting layers by hand; the
band search on a synthetic objective with a known optimum."""

import json

import pytest
import torch

from xsteer.models import tiny_model
from xsteer.plain import plain_view
from xsteer.schedules import (
    Band, Constant, PerLayer, Ramp, schedule_from_dict, search_band,
)
from xsteer.steer import relative_size, residual_norms, steering_hooks
from xsteer.vectors import SteeringVectors


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", n_layers=4, d_model=32, seed=0)


def _vectors(model):
    g = torch.Generator().manual_seed(0)
    return SteeringVectors.from_raw(
        {l: torch.randn(model.cfg.d_model, generator=g) for l in range(4)},
        model_name=model.cfg.model_name, d_model=model.cfg.d_model, n_layers=4, method="random",
    )


def test_multipliers_by_hand(model):
    layers = [0, 1, 2, 3]
    assert Constant(0.5).multipliers(model, layers) == {0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5}
    assert Band(1, 2, 3.0).multipliers(model, layers) == {0: 0.0, 1: 3.0, 2: 3.0, 3: 0.0}
    assert Ramp(0.0, 1.5).multipliers(model, layers) == pytest.approx({0: 0.0, 1: 0.5, 2: 1.0, 3: 1.5})
    assert PerLayer({2: 4.0}).multipliers(model, layers) == {0: 0.0, 1: 0.0, 2: 4.0, 3: 0.0}


def test_band_with_per_row_lambda_equals_hand_selected_layers(model):
    """A row's λ × the band's strength on the band's layers == those layers alone at λ·strength."""
    sv, view = _vectors(model), plain_view(model)
    ids = torch.randint(3, 250, (2, 6), generator=torch.Generator().manual_seed(1))
    lams = torch.tensor([0.5, 2.0])
    with torch.inference_mode():
        with view.hooks(steering_hooks(model, sv, lams, schedule=Band(1, 2, 3.0))):
            got = view.model(ids).logits
        with view.hooks(steering_hooks(model, sv.select([1, 2]), lams * 3.0)):
            ref = view.model(ids).logits
        plain = view.model(ids).logits
    torch.testing.assert_close(got, ref)
    assert (got - plain).abs().max() > 1e-3
    assert len(steering_hooks(model, sv, 1.0, schedule=Band(1, 2, 3.0))) == 2  # no hook where it is 0
    size = relative_size(model, sv, 0.5, schedule=Band(1, 2, 3.0))
    norms = residual_norms(model)
    assert size[0] == 0.0 and size[1] == pytest.approx(1.5 / norms[1])


def test_json_round_trip_and_report(model):
    for sched in (Constant(2.0), Band(0, 3, 1.5, 0.1), Ramp(1.0, 0.0), PerLayer({1: 2.0}, 0.5)):
        spec = json.loads(json.dumps(sched.report(model, [0, 1, 2, 3])))
        assert schedule_from_dict(spec) == sched
        assert len(spec["per_layer"]) == 4


def test_bad_input(model):
    with pytest.raises(ValueError, match="has 4 blocks"):
        Band(3, 2).multipliers(model, [0])
    with pytest.raises(ValueError, match="has 4 blocks"):
        PerLayer({7: 1.0}).multipliers(model, [0])
    with pytest.raises(ValueError, match="has 4 blocks"):
        steering_hooks(model, _vectors(model), 1.0, schedule=Band(2, 5))
    with pytest.raises(ValueError, match="Unknown schedule"):
        schedule_from_dict({"name": "cosine"})
    with pytest.raises(ValueError, match="scale='relative'"):  # the removed duplicate of scale="relative"
        schedule_from_dict({"name": "relative_norm", "value": 0.1})


def test_search_finds_known_optimum_within_budget():
    """Synthetic objective peaked at start 5, width 3, strength 0.2 on a 12-block model."""
    calls = []

    def objective(band):
        calls.append(band)
        return -abs(band.start - 5) - abs(band.width - 3) - 10 * abs(band.strength - 0.2)

    result = search_band(objective, 12, strengths=[0.05, 0.1, 0.2, 0.4], budget=60)
    assert result.best == Band(5, 3, 0.2) and result.score == 0
    assert len(calls) == len(set(calls)) == len(result.history) <= 60
    short = search_band(objective, 12, strengths=[0.05, 0.1, 0.2, 0.4], budget=5)
    assert len(short.history) == 5 and short.score == max(s for _, s in short.history)
