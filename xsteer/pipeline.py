"""One call for the paper's protocol: extract in the parent (Algorithm 1), transfer to the child,
choose λ on validation (Algorithm 2), test at λ* and by inference-time scaling (Algorithm 3),
with controls on the same grid and items."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from xsteer.contrast import from_task
from xsteer.evaluate import PAPER_LAMBDAS, Evaluator, check_lambdas, its_vote
from xsteer.extract import collect_activations, extract_vectors, random_vectors
from xsteer.models import load_model
from xsteer.records import RecordStore
from xsteer.results import ConditionResult, TransferResult
from xsteer.steer import relative_size, residual_norms
from xsteer.tasks import load_task
from xsteer.transfer import Transfer, cosine_to_reference
from xsteer.vectors import SteeringVectors

__all__ = ["TransferConfig", "run_grid", "run_transfer", "select_lambda"]

log = logging.getLogger(__name__)


@dataclass
class TransferConfig:
    """Everything that defines a run; saved as config.json in the run folder."""

    parent: str = "gemma-3-270m"
    child: str = "smollm2-135m"
    task: str = "arith"
    data_dir: str | None = None
    task_mode: str | None = None
    k_shot: int = 5
    method: str = "pca"
    n_pairs: int = 64
    layer_map: str = "greedy"
    adapter: str = "ridge"
    n_anchors: int = 256
    scale: str = "absolute"
    lambdas: list[float] = field(default_factory=lambda: list(PAPER_LAMBDAS))
    n_val: int | None = 50
    n_test: int | None = 100
    n_random: int = 20
    child_own: bool = True
    self_consistency: bool = True
    sc_temperature: float = 0.7
    batch_size: int = 16
    max_new_tokens: int | None = None
    loglik_norm: bool = False
    seed: int = 0
    device: str | None = None  # None: "cuda" when visible, else "cpu"

    def __post_init__(self) -> None:
        self.lambdas = check_lambdas(self.lambdas)
        if self.n_random < 0:
            raise ValueError("n_random must be >= 0.")


def select_lambda(accuracy: dict[float, float]) -> float:
    """λ* = argmax validation accuracy; ties go to the smaller λ."""
    best = max(accuracy.values())
    return min(lam for lam, acc in accuracy.items() if acc == best)


class _Models:
    """Loads each model once and keeps it for every run that needs it."""

    def __init__(self, preloaded: dict[str, Any] | None = None, device: str | None = None):
        self._cache = dict(preloaded or {})
        self.device = device

    def __call__(self, spec: str):
        if spec not in self._cache:
            self._cache[spec] = load_model(spec, device=self.device)
        return self._cache[spec]


def _subset(examples, n):
    return examples if n is None else examples[:n]


def _cached_vectors(path: Path, make) -> SteeringVectors:
    """Load vectors saved by an earlier (interrupted) run, else compute and save them."""
    if path.with_suffix(".safetensors").exists():
        return SteeringVectors.load(path)
    vectors = make()
    vectors.save(path)
    return vectors


def _condition(ev: Evaluator, name, kind, vectors, cfg, val, test) -> ConditionResult:
    """Sweep the grid on validation and test; λ* from validation; ITS vote on test."""
    correct = {}
    preds = {}
    for split, examples in (("validation", val), ("test", test)):
        by_lam = ev.sweep(examples, split, name, vectors, cfg.lambdas)
        correct[split] = {lam: [r.correct for r in recs] for lam, recs in by_lam.items()}
        preds[split] = by_lam
    val_acc = {lam: sum(c) / len(c) for lam, c in correct["validation"].items()}
    star = select_lambda(val_acc)
    its = []
    for i, ex in enumerate(test):
        vote = its_vote({lam: preds["test"][lam][i].prediction for lam in cfg.lambdas})
        its.append(bool(ev.task.is_correct(vote, ex)))
    size = relative_size(ev.model, vectors, star, scale=cfg.scale)
    return ConditionResult(name, kind, correct, star, its, size)


def run_transfer(
    config: TransferConfig | None = None,
    out_dir: str | Path | None = None,
    *,
    models: dict[str, Any] | None = None,
    progress: bool = True,
    parent_vectors: SteeringVectors | None = None,
) -> TransferResult:
    """Run extraction, transfer, λ search, test, ITS and controls; save everything under ``out_dir``.

    ``models`` may hold already-loaded bridges by spec; a run folder that already holds records
    resumes where it stopped. The parent is loaded only when its vectors or the transfer still
    have to be computed, so a run folder carrying both runs where only the child fits.
    """
    cfg = config or TransferConfig()
    get = models if isinstance(models, _Models) else _Models(models, cfg.device)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    task = load_task(cfg.task, data_dir=cfg.data_dir, k_shot=cfg.k_shot, seed=cfg.seed, mode=cfg.task_mode)
    pairs = from_task(task, cfg.n_pairs, cfg.seed)
    saved_parent = out is not None and (out / "vectors" / "parent.safetensors").exists()
    has_vectors = parent_vectors is not None or saved_parent
    has_transfer = out is not None and (out / "transfer.json").exists()
    parent = None if has_vectors and has_transfer else get(cfg.parent)
    child = get(cfg.child)

    def saved(name, make):
        return make() if out is None else _cached_vectors(out / "vectors" / name, make)

    if parent_vectors is None:
        parent_vectors = saved(
            "parent",
            lambda: extract_vectors(parent, pairs, cfg.method, seed=cfg.seed, progress=progress),
        )
    elif out is not None:
        parent_vectors.save(out / "vectors" / "parent")
    anchors = [ex.question for ex in task.split("train")[: cfg.n_anchors]]
    if has_transfer:  # resume: the transfer the vectors came from
        transfer = Transfer.load(out / "transfer")
    else:
        # Last-token rows only: steering vectors live at the last token, and mixing in mean-pooled
        # rows adds an easy-to-predict pooling offset that inflates the adapters' R².
        transfer = Transfer(cfg.layer_map, cfg.adapter).fit(
            parent, child, anchors, pooling="last", batch_size=cfg.batch_size, progress=progress
        )
        if out is not None:
            transfer.save(out / "transfer")
    child_pos = collect_activations(child, [p.positive for p in pairs])
    child_neg = collect_activations(child, [p.negative for p in pairs])
    transferred = saved("transferred", lambda: transfer.apply(parent_vectors, (child_pos, child_neg)))

    store = RecordStore(out / "records" / "records.jsonl" if out is not None else None)
    ev = Evaluator(
        child, task, scale=cfg.scale, batch_size=cfg.batch_size, store=store,
        loglik_norm=cfg.loglik_norm, max_new_tokens=cfg.max_new_tokens, progress=progress,
    )
    val = _subset(task.split("validation"), cfg.n_val)
    test = _subset(task.split("test"), cfg.n_test)
    baseline = {
        split: [r.correct for r in ev.sweep(exs, split, "baseline", None, [0.0])[0.0]]
        for split, exs in (("validation", val), ("test", test))
    }

    conditions = {"transfer": _condition(ev, "transfer", "steered", transferred, cfg, val, test)}
    if cfg.child_own:
        own = saved(
            "child_own",
            lambda: extract_vectors(child, pairs, cfg.method, transferred.layers, seed=cfg.seed),
        )
        conditions["child_own"] = _condition(ev, "child_own", "child_own", own, cfg, val, test)
    for i in range(cfg.n_random):
        name = f"random[{i}]"
        vec = random_vectors(transferred, seed=cfg.seed * 1000 + i)
        conditions[name] = _condition(ev, name, "random", vec, cfg, val, test)
    if cfg.self_consistency:
        samples = ev.sample(test, "test", len(cfg.lambdas), temperature=cfg.sc_temperature, seed=cfg.seed)
        its = []
        for ex, recs in zip(test, samples):
            vote = its_vote({float(s): r.prediction for s, r in enumerate(recs)})
            its.append(bool(task.is_correct(vote, ex)))
        conditions["self_consistency"] = ConditionResult("self_consistency", "self_consistency", its_correct=its)

    diagnostics: dict[str, Any] = {
        "parent": _vector_summary(parent_vectors),
        "transfer": {
            "layer_map": {str(c): p for c, p in transfer.layer_map_.mapping_.items()},
            "r2": {str(c): r for c, r in transfer.r2_.items()},
            "repr": repr(transfer),
        },
        "residual_norms": {str(l): v for l, v in residual_norms(child).items()},
        "n_pairs": len(pairs),
        "n_anchors": len(anchors),
    }
    if cfg.child_own:
        diag = cosine_to_reference(transferred, own, seed=cfg.seed)
        diagnostics["cosine_to_child_own"] = {
            "cosine": {str(l): c for l, c in diag.cosine.items()},
            "null_mean": diag.null_mean,
            "null_p95": diag.null_p95,
        }
    result = TransferResult(
        config=asdict(cfg),
        item_ids={"validation": [e.id for e in val], "test": [e.id for e in test]},
        baseline=baseline,
        conditions=conditions,
        diagnostics=diagnostics,
    )
    if out is not None:
        from xsteer.report import write_report

        write_report(result, out)
    return result


def _vector_summary(vectors: SteeringVectors) -> dict[str, Any]:
    return {
        "model": vectors.model_name,
        "method": vectors.method,
        "explained_variance": {str(l): v for l, v in vectors.explained_variance.items()},
        "sign_agreement": {str(l): v for l, v in vectors.sign_agreement.items()},
    }


def run_grid(
    parents: Sequence[str],
    children: Sequence[str],
    config: TransferConfig | None = None,
    out_dir: str | Path = "runs/grid",
    *,
    progress: bool = True,
) -> list[TransferResult]:
    """Every parent × child on one task; each model is loaded once and each parent extracted once.

    Each cell is saved in ``out_dir/<parent>__<child>`` and resumes from there.
    """
    base = config or TransferConfig()
    models = _Models(device=base.device)
    results = []
    for parent in parents:
        vectors = None
        for child in children:
            cfg = TransferConfig(**{**asdict(base), "parent": parent, "child": child})
            cell = Path(out_dir) / f"{_slug(parent)}__{_slug(child)}"
            result = run_transfer(cfg, cell, models=models, progress=progress, parent_vectors=vectors)
            vectors = vectors or SteeringVectors.load(cell / "vectors" / "parent")
            results.append(result)
    return results


def _slug(spec: str) -> str:
    return spec.replace("/", "--")
