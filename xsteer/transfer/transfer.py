"""Transfer: a fitted layer map plus one dimension adapter per mapped layer pair, moving parent
steering vectors into a child model of another width and depth."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch

from xsteer.extract import sign_agreement, sign_vote
from xsteer.models import Fingerprint, d_model, model_fingerprint, n_layers
from xsteer.storage import read_pair, write_pair
from xsteer.transfer import aligned, anchors
from xsteer.transfer.adapters import DimAdapter, RidgeAdapter, make_adapter
from xsteer.transfer.anchors import MIN_ANCHORS, Pooling
from xsteer.transfer.contrasts import contrast_texts, group_contrasts
from xsteer.transfer.continued import continue_texts, openings
from xsteer.transfer.corpus import AnchorCorpus, builtin_corpus, generated_corpus, lexicon_corpus
from xsteer.transfer.corpus import hold_out as corpus_hold_out
from xsteer.transfer.vocab import embedding_rows, shared_words
from xsteer.transfer.layer_maps import CKAMap, LayerMap, make_layer_map
from xsteer.vectors import SteeringVectors

__all__ = ["ModelInfo", "Transfer"]

Acts = Mapping[int, torch.Tensor]
_FORMAT = "xsteer.transfer"


@dataclass(frozen=True)
class ModelInfo:
    """Name, width, depth and identity (``xsteer.models.Fingerprint``; None in transfers saved before
    it was kept) of a model, as recorded with a fitted transfer."""

    name: str
    d_model: int
    n_layers: int
    fingerprint: Fingerprint | None = None

    def __post_init__(self) -> None:
        if self.fingerprint is not None:
            object.__setattr__(self, "fingerprint", Fingerprint.from_dict(self.fingerprint))

    @classmethod
    def from_model(cls, model) -> ModelInfo:
        """Info of a TransformerLens bridge."""
        return cls(str(model.cfg.model_name), d_model(model), n_layers(model), model_fingerprint(model))

    def same_shape(self, other: ModelInfo) -> bool:
        """Same name, width and depth."""
        return (self.name, self.d_model, self.n_layers) == (other.name, other.d_model, other.n_layers)

    def same_model(self, other: ModelInfo) -> bool:
        """Same name, width and depth, and fingerprints that match where both are known."""
        known = self.fingerprint is not None and other.fingerprint is not None
        return self.same_shape(other) and (not known or self.fingerprint.matches(other.fingerprint))

    def __str__(self) -> str:
        return f"{self.name!r} (width {self.d_model}, {self.n_layers} layers)"


def _acts_hash(parent_acts: Acts, child_acts: Acts) -> str:
    h = hashlib.sha256()
    for acts in (parent_acts, child_acts):
        for l in sorted(acts):
            h.update(str(l).encode())
            h.update(torch.as_tensor(acts[l]).to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _check_acts(acts: Acts, info: ModelInfo, who: str) -> int:
    """Row count of ``acts`` after checking layers and widths against ``info``."""
    if not acts:
        raise ValueError(f"No {who} activations given; pass layer -> (n_anchors, d_model) tensors.")
    rows = set()
    for l, x in acts.items():
        if not 0 <= int(l) < info.n_layers:
            raise ValueError(
                f"{who} activations have layer {l}, outside {info} (0..{info.n_layers - 1}); check the info."
            )
        if x.ndim != 2 or x.shape[1] != info.d_model:
            raise ValueError(
                f"{who} activations at layer {l} have shape {tuple(x.shape)}; expected "
                f"(n_anchors, {info.d_model}) for {info}."
            )
        rows.add(int(x.shape[0]))
    if len(rows) != 1:
        raise ValueError(
            f"{who} activations have different row counts across layers: {sorted(rows)}."
        )
    return rows.pop()


class Transfer:
    """Layer map + per-pair dimension adapters between one parent and one child model.

    ``Transfer()`` is the best measured transfer (docs/results.md, "Transfer that carries the whole
    concept"): the proportional layer map (every child layer, at the parent layer of the same
    relative depth) and the difference-fitted adapter (``DifferenceAdapter``: a standardised ridge
    map fitted on concept-free group contrasts of the anchor corpus, mostly lexicon words in neutral
    sentence frames), fitted on the built-in corpus when no anchors are given:
    ``Transfer().fit(parent, child)``; pass ``hold_out=concept`` to keep a concept's topic out.

    ``layer_map``: 'proportional' (default), 'greedy' (the paper: layer i -> i, only layers both
    have), 'cka', 'fit' (``FitMap``: by held-out fit), a child -> parent dict, or a LayerMap.
    ``adapter``: 'difference' (default), 'ridge' (the previous default: plain ridge on states),
    'ridge_std', 'vocab', 'anchor_coords', 'probe_cov', 'procrustes', 'identity', the controls
    'truncate_pad' / 'random_projection', or a DimAdapter used as a template (cloned for every
    layer pair). The previous default is ``Transfer("greedy", "ridge")``.

    Fitted: ``layer_map_``, ``adapters_`` (child layer -> fitted DimAdapter), ``parent_`` /
    ``child_`` (ModelInfo), ``anchor_hash_``, ``n_anchors_`` (anchor rows: texts x poolings, or
    aligned token positions).
    """

    def __init__(
        self,
        layer_map: str | Mapping[int, int] | LayerMap = "proportional",
        adapter: str | DimAdapter = "difference",
    ):
        self.layer_map = make_layer_map(layer_map)
        self.adapter = make_adapter(adapter)

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        parent,
        child,
        anchor_texts: Sequence[str] | AnchorCorpus | None = None,
        *,
        pooling: Pooling | Literal["aligned", "continued"] | Sequence[Pooling] = ("last", "mean"),
        hold_out=None,
        data_dir=None,
        batch_size: int = 16,
        progress: bool = True,
        max_tokens: int = aligned.MAX_TOKENS,
        new_tokens: int = 32,
    ) -> Transfer:
        """Collect anchor activations of both models (every layer), then :meth:`fit_activations`.

        ``anchor_texts``: texts, an :class:`~xsteer.transfer.corpus.AnchorCorpus`, or None for the
        built-in corpus (:func:`~xsteer.transfer.corpus.builtin_corpus`: generated texts, lexicon
        anchors, and, for a fit that reads unlabelled states, task questions found in ``data_dir`` /
        ``$XSTEER_DATA_DIR``); plain texts given
        to a difference-fitted adapter get the lexicon anchors added (their word contrasts are what
        it learns from; without a state prior, on a fixed layer pairing, it reads only the texts a contrast uses). ``hold_out``: a
        Concept whose topic is removed from the anchors first (:func:`~xsteer.transfer.corpus.hold_out`),
        so the map never sees the concept it will carry. A difference-fitted adapter learns from the
        corpus's labelled groups (topic, style); the vocabulary bridge from the shared vocabulary.

        ``pooling="aligned"`` instead uses every position where both tokenizers end a token at the
        same character (texts truncated to ``max_tokens``), fitting ridge adapters from streamed
        statistics with held-out *texts* (see :mod:`xsteer.transfer.aligned`); ridge adapter only.
        ``pooling="continued"`` fits the same way at generation-time states: the child continues each
        anchor text's opening for ``new_tokens`` greedy tokens and only aligned positions inside the
        continuation are rows (:mod:`xsteer.transfer.continued`; a continuation that wanders onto the
        held-out concept is dropped).
        """
        if pooling in ("aligned", "continued") and not (isinstance(self.adapter, RidgeAdapter)
                                                        and self.adapter.source == "states"):
            raise ValueError(
                f"pooling={pooling!r} fits ridge adapters from streamed statistics; got adapter "
                f"{self.adapter.name!r}. Use adapter='ridge' or 'ridge_std', or pooling='last' / 'mean'."
            )
        if anchor_texts is None:
            corpus = builtin_corpus(parent, child, data_dir=data_dir)
        elif isinstance(anchor_texts, AnchorCorpus):
            corpus = anchor_texts
        else:
            corpus = AnchorCorpus.of(anchors.anchor_texts(anchor_texts), "user")
        if self.adapter.source == "differences" and not any(corpus.topics) and not any(corpus.styles):
            # plain texts form no labelled groups: add labelled built-in anchors (the lexicon words both
            # tokenizers share; the generated texts when they share none)
            lexicon = builtin_corpus(parent, child, generated=False, data_dir=False)
            corpus = corpus + (lexicon if len(lexicon) else generated_corpus())
        if not self.reads_states:  # only texts in a contrast reach the map (not task questions): read nothing else
            corpus = corpus.subset(contrast_texts(corpus.sources, {"topic": corpus.topics, "style": corpus.styles}))
        kept = (corpus_hold_out(corpus, hold_out) if hold_out is not None else corpus).unique()
        texts = anchors.anchor_texts(kept.texts)
        if pooling == "continued":
            cont = continue_texts(child, openings(texts), max_new_tokens=new_tokens, batch_size=batch_size,
                                  progress=progress)
            if hold_out is not None:
                clean = set(corpus_hold_out(AnchorCorpus.of(cont.texts, "continued"), hold_out).texts)
                cont = cont.subset([t in clean for t in cont.texts])
            return self._fit_aligned(parent, child, list(cont.texts), batch_size, max_tokens, progress, cont.starts)
        if pooling == "aligned":
            return self._fit_aligned(parent, child, texts, batch_size, max_tokens, progress)
        pooling = (pooling,) if isinstance(pooling, str) else tuple(pooling)
        acts = [anchors.collect_corpus_activations(m, corpus, kept, pooling, batch_size, progress)
                for m in (parent, child)]
        corpus = kept
        extra: dict[str, Any] = {}
        if self.adapter.source == "differences":
            labels = {"topic": corpus.topics * len(pooling), "style": corpus.styles * len(pooling)}
            sources = [f"{s}|{p}" for p in pooling for s in corpus.sources]
            (dp, names), (dc, _) = (group_contrasts(a, sources, labels) for a in acts)
            extra["differences"] = (dp, dc, np.unique([n.split("|", 2)[0] + n.split("|", 2)[2] for n in names],
                                                      return_inverse=True)[1])
        elif self.adapter.source == "vocab":
            words = shared_words(parent.tokenizer, child.tokenizer)
            if hold_out is not None:
                kept = set(corpus_hold_out(lexicon_corpus(words, templates=("{w}",)), hold_out).texts)
                words = [w for w in words if w in kept]
            extra["vocab"] = embedding_rows(parent, child, words)
        return self.fit_activations(
            acts[0],
            acts[1],
            ModelInfo.from_model(parent),
            ModelInfo.from_model(child),
            groups=anchors.anchor_groups(len(texts), len(pooling)),
            anchor_hash=anchors.anchor_hash(texts, pooling),
            **extra,
        )

    @property
    def reads_states(self) -> bool:
        """Whether unlabelled anchor states change the fit: a layer map that reads them, or an adapter
        fitted on states or with a state prior (a difference-fitted one without a prior reads contrasts only)."""
        return (self.layer_map.reads_states or self.adapter.source != "differences"
                or getattr(self.adapter, "prior", 0.0) > 0)

    def _fit_aligned(self, parent, child, texts, batch_size, max_tokens, progress, starts=None) -> Transfer:
        parent_info, child_info = ModelInfo.from_model(parent), ModelInfo.from_model(child)
        map_acts: tuple = (None, None)
        if isinstance(self.layer_map, CKAMap):  # the only data-driven map: last-token rows suffice
            map_acts = tuple(
                anchors.collect_anchor_activations(m, texts, None, "last", batch_size, progress)
                for m in (parent, child)
            )
        layer_map = copy.deepcopy(self.layer_map).fit(
            parent_info.n_layers, child_info.n_layers, *map_acts
        )
        self.adapters_, self.n_anchors_ = aligned.fit_aligned_ridge(
            parent, child, texts, layer_map.mapping_, self.adapter,
            batch_size=batch_size, max_tokens=max_tokens, progress=progress, starts=starts,
        )
        self.layer_map_ = layer_map
        self.parent_, self.child_ = parent_info, child_info
        self.anchor_hash_ = anchors.anchor_hash(texts, [f"{'aligned' if starts is None else 'continued'}:{max_tokens}"])
        return self

    def fit_activations(
        self,
        parent_acts: Acts,
        child_acts: Acts,
        parent_info: ModelInfo,
        child_info: ModelInfo,
        *,
        groups: Sequence[int] | torch.Tensor | None = None,
        anchor_hash: str | None = None,
        differences: tuple[Acts, Acts, Sequence[int]] | None = None,
        vocab: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Transfer:
        """Fit from precomputed paired anchor activations (layer -> (n_anchors, width), same rows in
        both); ``groups`` labels rows of one text so they are held out together. The anchor states
        pair the layers (data-driven layer maps) and fit state adapters; a difference adapter fits
        on ``differences`` = (parent contrasts, child contrasts per layer, their group labels), with
        the states as its prior; the vocabulary bridge fits one map on ``vocab`` = (parent rows,
        child rows) of shared-token embeddings and uses it at every layer pair."""
        n_p = _check_acts(parent_acts, parent_info, "parent")
        n_c = _check_acts(child_acts, child_info, "child")
        if n_p != n_c:
            raise ValueError(
                f"parent activations have {n_p} rows but child activations {n_c}; rows must be the "
                "same anchor texts in the same order."
            )
        if n_p < MIN_ANCHORS:
            raise ValueError(
                f"Need at least {MIN_ANCHORS} anchor rows, got {n_p}; collect activations of more "
                "anchor texts (a few hundred recommended)."
            )
        groups = None if groups is None else np.asarray(groups)
        map_rows = (parent_acts, child_acts)
        if differences is not None and getattr(self.layer_map, "on", "states") == "differences":
            map_rows = differences[:2]
        layer_map = copy.deepcopy(self.layer_map).fit(parent_info.n_layers, child_info.n_layers, *map_rows)
        adapters = {}
        for c, p in layer_map.mapping_.items():
            for who, layer, acts in (("parent", p, parent_acts), ("child", c, child_acts)):
                if layer not in acts:
                    raise ValueError(
                        f"The layer map pairs child layer {c} with parent layer {p}, but there are no "
                        f"{who} activations at layer {layer}; collect all layers (layers=None)."
                    )
            adapters[c] = self._fit_pair(p, c, parent_acts, child_acts, groups, differences, vocab, adapters)
        self.layer_map_ = layer_map
        self.adapters_ = adapters
        self.parent_, self.child_ = parent_info, child_info
        self.anchor_hash_ = anchor_hash or _acts_hash(parent_acts, child_acts)
        self.n_anchors_ = n_p
        return self

    def _fit_pair(self, p, c, parent_acts, child_acts, groups, differences, vocab, done) -> DimAdapter:
        source = self.adapter.source
        if source == "differences":
            if differences is None:
                raise ValueError(f"The {self.adapter.name!r} adapter fits on contrast differences; pass "
                                 "differences=(parent, child, groups) (Transfer.fit builds them from a labelled corpus).")
            dp, dc, dgroups = differences
            return self.adapter.clone().fit(dp[p], dc[c], dgroups, states=(parent_acts[p], child_acts[c]))
        if source == "vocab":
            if vocab is None:
                raise ValueError(f"The {self.adapter.name!r} adapter fits on shared-token embeddings; pass "
                                 "vocab=embedding_rows(parent, child) (Transfer.fit does).")
            return next(iter(done.values())) if done else self.adapter.clone().fit(*vocab)
        return self.adapter.clone().fit(parent_acts[p], child_acts[c], groups)

    # ------------------------------------------------------------------ use

    def _check_fitted(self) -> None:
        if not hasattr(self, "adapters_"):
            raise RuntimeError(
                "This Transfer is not fitted; call .fit(parent, child, anchor_texts) or .load(path)."
            )

    @property
    def method(self) -> str:
        """Method label given to transferred vectors."""
        return f"transfer:{self.layer_map.name}+{self.adapter.name}"

    @property
    def r2_(self) -> dict[int, float]:
        """Held-out R² of the adapter of every mapped child layer."""
        self._check_fitted()
        return {c: float(a.score_) for c, a in self.adapters_.items()}

    def _check_parent(self, vectors: SteeringVectors) -> None:
        got = ModelInfo(vectors.model_name, vectors.d_model, vectors.n_layers, vectors.fingerprint)
        if not got.same_model(self.parent_):
            raise ValueError(
                f"These vectors come from {got}, but this Transfer was fitted for parent {self.parent_} "
                f"-> child {self.child_}. Fix: fit a Transfer on the vectors' model "
                "(Transfer(...).fit(parent, child, anchor_texts)) or load the transfer saved for that pair."
            )

    def apply(
        self,
        parent_vectors: SteeringVectors,
        child_pairs_acts: tuple[Acts, Acts] | None = None,
    ) -> SteeringVectors:
        """Child-space unit vectors at every mapped child layer whose parent layer has a vector.

        With ``child_pairs_acts`` = (positive, negative) child activations of the contrast pairs
        (layer -> (n_pairs, d_child), e.g. from collect_activations), each vector is re-signed so the
        positive side projects higher, and its sign agreement is recorded.
        """
        self._check_fitted()
        if not isinstance(parent_vectors, SteeringVectors):
            raise TypeError(f"Transfer.apply needs the parent's SteeringVectors, not {type(parent_vectors).__name__}.")
        self._check_parent(parent_vectors)
        pos, neg = self._pairs_acts(child_pairs_acts)
        directions, agreement, pairs = {}, {}, {}
        for c, p in self.layer_map_.mapping_.items():
            if p not in parent_vectors.directions:
                continue
            v = self.adapters_[c].transform(parent_vectors[p])
            norm = float(v.norm())
            if not np.isfinite(norm) or norm < 1e-12:
                raise ValueError(
                    f"The {self.adapter.name} adapter maps the parent layer-{p} vector to a zero vector at "
                    f"child layer {c}; use another adapter (e.g. 'ridge')."
                )
            v = v / norm
            if c in pos and c in neg:
                for x in (pos[c], neg[c]):
                    if x.ndim != 2 or x.shape[1] != self.child_.d_model:
                        raise ValueError(
                            f"child_pairs_acts at layer {c} have shape {tuple(x.shape)}; expected "
                            f"(n_pairs, {self.child_.d_model}) activations of {self.child_}."
                        )
                diffs = (pos[c] - neg[c]).double().numpy()
                v = torch.from_numpy(sign_vote(v.double().numpy(), diffs)).float()
                agreement[c] = sign_agreement(v.double().numpy(), diffs)
            directions[c] = v
            pairs[c] = p
        if not directions:
            raise ValueError(
                f"None of the parent layers of these vectors ({parent_vectors.layers}) is mapped; this "
                f"transfer uses parent layers {sorted(self.layer_map_.inverse())}. Fix: extract vectors "
                "at those layers or fit another layer map."
            )
        return SteeringVectors(
            directions=directions,
            model_name=self.child_.name,
            d_model=self.child_.d_model,
            n_layers=self.child_.n_layers,
            method=self.method,
            seed=parent_vectors.seed,
            data_hash=parent_vectors.data_hash,
            sign_agreement=agreement,
            provenance=self._provenance(parent_vectors, pairs),
            gain=parent_vectors.gain,
            fingerprint=self.child_.fingerprint,
        )

    def _pairs_acts(self, child_pairs_acts) -> tuple[Acts, Acts]:
        """(positive, negative) child pair activations, checked: a pair of layer -> (n_pairs, d_child)
        mappings with the same layers and row counts, finite."""
        if child_pairs_acts is None:
            return {}, {}
        if not isinstance(child_pairs_acts, (tuple, list)) or len(child_pairs_acts) != 2 or not all(
            isinstance(a, Mapping) for a in child_pairs_acts
        ):
            raise TypeError(
                "child_pairs_acts must be (positive, negative): two dicts layer -> (n_pairs, d_child) activations, "
                "e.g. from collect_activations on the pairs' positive and negative texts."
            )
        pos, neg = child_pairs_acts
        if sorted(pos) != sorted(neg):
            raise ValueError(
                f"child_pairs_acts: positive activations have layers {sorted(pos)}, negative ones {sorted(neg)}; "
                "collect both sides at the same layers."
            )
        for c in pos:
            p, n = torch.as_tensor(pos[c]), torch.as_tensor(neg[c])
            if p.ndim == 2 and n.ndim == 2 and p.shape[0] != n.shape[0]:
                raise ValueError(
                    f"child_pairs_acts at layer {c}: {p.shape[0]} positive rows but {n.shape[0]} negative ones; "
                    "row i of both must be the two sides of pair i."
                )
            if not (torch.isfinite(p).all() and torch.isfinite(n).all()):
                raise ValueError(
                    f"child_pairs_acts at layer {c} hold NaN or infinite values; their sign vote would flip the "
                    "vector. Fix: collect them again (load the child in float32)."
                )
        return pos, neg

    def _provenance(self, parent_vectors: SteeringVectors, pairs: dict[int, int]) -> dict[str, Any]:
        layer_map = {k: v for k, v in self.layer_map_.to_dict().items() if k != "similarity"}
        out: dict[str, Any] = {
            "layer_map": layer_map,
            "adapter": {
                "name": self.adapter.name,
                "params": self.adapter.get_params(),
                "is_control": self.adapter.is_control,
            },
            "layer_pairs": {str(c): p for c, p in pairs.items()},
            "r2": {str(c): float(self.adapters_[c].score_) for c in pairs},
            "anchor_hash": self.anchor_hash_,
            "n_anchors": self.n_anchors_,
            "parent": {
                "model_name": parent_vectors.model_name,
                "d_model": parent_vectors.d_model,
                "n_layers": parent_vectors.n_layers,
                "method": parent_vectors.method,
                "seed": parent_vectors.seed,
                "data_hash": parent_vectors.data_hash,
            },
        }
        if all(hasattr(self.adapters_[c], "alpha_") for c in pairs):
            out["alpha"] = {str(c): float(self.adapters_[c].alpha_) for c in pairs}
        return out

    def apply_to_differences(self, parent_diffs: Acts) -> dict[int, torch.Tensor]:
        """Map parent pair differences (parent layer -> (n, d_parent)) to child layers (n, d_child),
        to extract vectors in child space afterwards."""
        self._check_fitted()
        out = {}
        for c, p in self.layer_map_.mapping_.items():
            if p in parent_diffs:
                x = torch.as_tensor(parent_diffs[p])
                if x.ndim != 2 or x.shape[1] != self.parent_.d_model:
                    raise ValueError(
                        f"Differences at parent layer {p} have shape {tuple(x.shape)}; expected "
                        f"(n, {self.parent_.d_model}) from {self.parent_}."
                    )
                out[c] = self.adapters_[c].transform(x)
        if not out:
            raise ValueError(
                f"None of the given parent layers ({sorted(parent_diffs)}) is mapped; this transfer uses "
                f"parent layers {sorted(self.layer_map_.inverse())}."
            )
        return out

    # ------------------------------------------------------------------ storage

    def save(self, path: str | Path) -> Path:
        """Write ``path.safetensors`` (adapter tensors ``layer.{child}.{name}``) and ``path.json``;
        return the ``.safetensors`` path."""
        self._check_fitted()
        tensors = {
            f"layer.{c}.{k}": t.contiguous()
            for c, a in self.adapters_.items()
            for k, t in a.tensors().items()
        }
        meta = {
            "format": _FORMAT,
            "layer_map": self.layer_map_.to_dict(),
            "adapter": self.adapter.to_dict(),
            "adapters": {str(c): a.to_dict() for c, a in self.adapters_.items()},
            "parent": asdict(self.parent_),
            "child": asdict(self.child_),
            "anchor_hash": self.anchor_hash_,
            "n_anchors": self.n_anchors_,
        }
        return write_pair(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> Transfer:
        """Read a transfer written by :meth:`save`."""
        tensors, meta = read_pair(path, "a Transfer (written by Transfer.save)")
        if meta.get("format") != _FORMAT:
            raise ValueError(
                f"{path} is not a saved Transfer (format {meta.get('format')!r})."
            )
        layer_map = LayerMap.from_dict(meta["layer_map"])
        template = {k: meta["layer_map"][k] for k in ("name", "params")}
        obj = cls(
            LayerMap.from_dict(template), DimAdapter.from_dict({**meta["adapter"], "fitted": {}})
        )
        obj.layer_map_ = layer_map
        obj.parent_, obj.child_ = ModelInfo(**meta["parent"]), ModelInfo(**meta["child"])
        obj.anchor_hash_, obj.n_anchors_ = meta["anchor_hash"], meta["n_anchors"]
        if sorted(int(c) for c in meta["adapters"]) != sorted(layer_map.mapping_):
            raise ValueError(
                f"{path} is inconsistent (adapters vs layer map); re-fit and re-save."
            )
        obj.adapters_ = {}
        for c, data in meta["adapters"].items():
            prefix = f"layer.{c}."
            own = {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}
            adapter = DimAdapter.from_dict(data, own)
            expected = (obj.parent_.d_model, obj.child_.d_model)
            if getattr(adapter, "W_", torch.empty(0)).shape != expected:
                raise ValueError(
                    f"{path} lacks a {expected} map for child layer {c}; the pair of files "
                    "is inconsistent. Re-fit and re-save the transfer."
                )
            obj.adapters_[int(c)] = adapter
        obj.adapters_ = dict(sorted(obj.adapters_.items()))
        return obj

    def __repr__(self) -> str:
        head = f"Transfer(layer_map={self.layer_map!r}, adapter={self.adapter!r})"
        if not hasattr(self, "adapters_"):
            return head
        r2 = ", ".join(f"{c}: {s:.3f}" for c, s in self.r2_.items())
        return (
            f"{head}\n  fitted {self.parent_} -> {self.child_} on {self.n_anchors_} anchor rows"
            f"\n  {self.layer_map_!r}\n  held-out R2 per child layer {{{r2}}}"
        )
