"""How strongly a model holds a concept: held-out AUROC and sign agreement of its own vector per layer.

The vector of each layer is fitted on the concept's train pairs (mean difference, or PC1 of the
pair differences); it is scored on the held-out test pairs only. AUROC ranks every positive test
text against every negative one by projection (0.5 = chance); sign agreement is the share of test
pairs whose positive text projects higher than its own negative text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Mapping

import numpy as np
import torch
from scipy.stats import rankdata

from xsteer.activations import collect_activations
from xsteer.extract import fit_direction, sign_agreement
from xsteer.figures import strength_figure
from xsteer.stats import Estimate

__all__ = [
    "HOLD_AUROC",
    "ConceptActs",
    "ConceptStrength",
    "LayerStrength",
    "auroc",
    "auroc_ci",
    "check_readable",
    "concept_acts",
    "concept_strength",
    "fit_directions",
    "model_strength",
]

HOLD_AUROC = 0.7
"""A model *holds* a concept when, at the layer whose vector scores best on the train pairs, the
held-out AUROC is at least this and its 95% bootstrap CI excludes 0.5."""

Acts = Mapping[int, torch.Tensor]
Method = Literal["mean_diff", "pca"]


@dataclass(frozen=True)
class ConceptActs:
    """One model's activations of a concept: layer -> (n_pairs, d) for each side of each split."""

    train_pos: Acts
    train_neg: Acts
    test_pos: Acts
    test_neg: Acts

    @property
    def layers(self) -> list[int]:
        """Layers present in every part."""
        return sorted(set(self.train_pos) & set(self.train_neg) & set(self.test_pos) & set(self.test_neg))


def _np(x) -> np.ndarray:
    return torch.as_tensor(x).detach().to("cpu", torch.float64).numpy()


def _check_finite(pos: np.ndarray, neg: np.ndarray) -> None:
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError(
            "Scores to rank contain NaN or inf, so an AUROC would be meaningless: the activations (or the "
            "direction) are not finite. Fix: check the model's activations of these texts (e.g. a float16 "
            "overflow) or the vectors."
        )


def auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC of positive vs. negative scores, (n_pos, k) and (n_neg, k) -> (k,); ties count half.

    Rank-based (Mann–Whitney U), vectorised over the k columns (e.g. many random directions).
    """
    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    squeeze = pos.ndim == 1
    if squeeze:
        pos, neg = pos[:, None], neg[:, None]
    n1, n0 = len(pos), len(neg)
    if n1 == 0 or n0 == 0:
        raise ValueError("auroc needs at least one positive and one negative score.")
    _check_finite(pos, neg)
    ranks = rankdata(np.concatenate([pos, neg]), axis=0)
    out = (ranks[:n1].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return out[0] if squeeze else out


def auroc_ci(pos: np.ndarray, neg: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Estimate:
    """AUROC of paired scores (pair i = ``pos[i]``, ``neg[i]``) with a percentile bootstrap CI that
    resamples pairs: every resample's AUROC is ``w C w / m²`` for pair counts ``w`` and the pairwise
    win matrix ``C``."""
    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    m = len(pos)
    if m != len(neg) or m < 2:
        raise ValueError(f"auroc_ci needs paired scores of >= 2 pairs, got {len(pos)} and {len(neg)}.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be an int >= 1 (bootstrap resamples, e.g. 1000), not {n_boot!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95, not {level!r}.")
    _check_finite(pos, neg)
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    w = np.random.default_rng(seed).multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(float)
    boots = np.einsum("bi,ij,bj->b", w, wins, w) / m**2
    a = (1 - level) / 2
    lo, hi = np.quantile(boots, [a, 1 - a])
    return Estimate(float(wins.mean()), float(lo), float(hi), m, level)


def fit_directions(pos: Acts, neg: Acts, method: Method = "mean_diff", seed: int = 0) -> dict[int, np.ndarray]:
    """:func:`xsteer.extract.fit_direction` of the train pairs at every layer."""
    return {l: fit_direction(_np(pos[l]) - _np(neg[l]), method, seed) for l in sorted(pos)}


@dataclass(frozen=True)
class LayerStrength:
    """Held-out readout of a model's own vector at one layer."""

    layer: int
    auroc: Estimate
    sign_agreement: float
    train_auroc: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {**asdict(self), "auroc": self.auroc.to_dict()}


@dataclass(frozen=True)
class ConceptStrength:
    """How strongly one model holds one concept, per layer, with the holds flag."""

    concept: str
    model: str
    method: str
    layers: list[LayerStrength]

    @property
    def best(self) -> LayerStrength:
        """The layer whose vector scores best on the train pairs (chosen without the test pairs)."""
        return max(self.layers, key=lambda s: s.train_auroc)

    @property
    def holds(self) -> bool:
        """Best-layer held-out AUROC >= ``HOLD_AUROC`` with its CI above 0.5."""
        b = self.best.auroc
        return b.value >= HOLD_AUROC and b.low > 0.5

    @property
    def flag(self) -> str:
        """'' when held, else a one-line warning for reports."""
        if self.holds:
            return ""
        return (
            f"{self.model} does NOT hold {self.concept!r}: best-layer (L{self.best.layer}) held-out AUROC "
            f"{self.best.auroc} (needs >= {HOLD_AUROC} with CI above 0.5); nothing reliable to transfer."
        )

    def plot(self):
        """Held-out AUROC [CI] of the model's own vector per layer (plotly)."""
        return strength_figure(self)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{s.layer}</td><td>{s.auroc.value:.3f} [{s.auroc.low:.3f}, {s.auroc.high:.3f}]</td>"
                       f"<td>{s.sign_agreement:.2f}</td></tr>" for s in self.layers)
        verdict = "holds" if self.holds else "does NOT hold"
        return (f"<b>{self.model} {verdict} {self.concept!r}</b> (best layer on train pairs: {self.best.layer})"
                f"<table><tr><th>layer</th><th>held-out AUROC [95% CI]</th><th>sign agreement</th></tr>{rows}</table>")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields plus ``best_layer`` and ``holds``."""
        return {
            "concept": self.concept,
            "model": self.model,
            "method": self.method,
            "best_layer": self.best.layer,
            "holds": self.holds,
            "hold_auroc": HOLD_AUROC,
            "layers": [s.to_dict() for s in self.layers],
        }


def concept_strength(
    acts: ConceptActs,
    *,
    concept: str = "",
    model: str = "",
    method: Method = "mean_diff",
    n_boot: int = 1000,
    seed: int = 0,
    directions: Mapping[int, np.ndarray] | None = None,
) -> ConceptStrength:
    """Per-layer held-out AUROC (with CI) and sign agreement of the model's own train-pair vectors."""
    dirs = directions if directions is not None else fit_directions(acts.train_pos, acts.train_neg, method, seed)
    layers = []
    for l in acts.layers:
        v = dirs[l]
        test_pos, test_neg = _np(acts.test_pos[l]), _np(acts.test_neg[l])
        tp, tn = test_pos @ v, test_neg @ v
        fp, fn = _np(acts.train_pos[l]) @ v, _np(acts.train_neg[l]) @ v
        layers.append(
            LayerStrength(
                layer=l,
                auroc=auroc_ci(tp, tn, n_boot=n_boot, seed=seed + l),
                sign_agreement=sign_agreement(v, test_pos - test_neg),
                train_auroc=float(auroc(fp, fn)),
            )
        )
    if not layers:
        raise ValueError("concept_strength got no layers present in all four activation sets.")
    return ConceptStrength(concept, model, method, layers)


#: Largest share of a concept's tokens that may be the tokenizer's unknown token.
MAX_UNKNOWN = 0.5


def check_readable(model, concept) -> None:
    """A ValueError when ``model``'s tokenizer cannot tell the concept's pairs apart: every pair's two
    texts tokenize the same, or most tokens are its unknown token (pairs in a script the model does
    not read)."""
    tok = model.tokenizer
    name = getattr(model.cfg, "model_name", "the model")
    ids = [(tok(p.positive)["input_ids"], tok(p.negative)["input_ids"]) for p in concept.pairs]
    unk = getattr(tok, "unk_token_id", None)
    if unk is not None:
        flat = [t for a, b in ids for t in (*a, *b)]
        share = sum(t == unk for t in flat) / max(1, len(flat))
        if share > MAX_UNKNOWN:
            raise ValueError(
                f"{share:.0%} of the tokens of concept {concept.name!r} are unknown to {name!r}'s tokenizer: its "
                "pairs are not in a language or script this model reads. Give pairs the model can read."
            )
    if all(a == b for a, b in ids):
        raise ValueError(
            f"Every pair of concept {concept.name!r} tokenizes to the same ids under {name!r}'s tokenizer, so the "
            "model cannot see the difference. Give pairs whose texts differ in words the model reads."
        )


def concept_acts(model, concept, layers=None, *, batch_size: int = 16, progress: bool = False) -> ConceptActs:
    """Last-token ``resid_post`` activations of a concept's train and test texts (one forward pass set)."""
    check_readable(model, concept)
    n_tr, n_te = len(concept.train), len(concept.test)
    texts = concept.texts("train") + concept.texts("test")
    acts = collect_activations(model, texts, layers, batch_size=batch_size, progress=progress)
    cut = np.cumsum([0, n_tr, n_tr, n_te, n_te])
    parts = [{l: a[cut[i] : cut[i + 1]] for l, a in acts.items()} for i in range(4)]
    return ConceptActs(*parts)


def model_strength(model, concept, *, method: Method = "mean_diff", layers=None, n_boot: int = 1000, seed: int = 0) -> ConceptStrength:
    """How strongly ``model`` holds ``concept`` (a :class:`Concept`), per layer."""
    acts = concept_acts(model, concept, layers)
    return concept_strength(acts, concept=concept.name, model=str(model.cfg.model_name), method=method, n_boot=n_boot, seed=seed)
