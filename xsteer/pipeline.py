"""One call for the paper's protocol: extract in the parent (Algorithm 1), transfer to the child,
choose λ on validation (Algorithm 2), test at λ* and by inference-time scaling (Algorithm 3),
with controls on the same grid and items."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from xsteer.checks import check_choice, check_device, check_finite, check_int, check_lambda_values, check_task_name
from xsteer.contrast import from_task
from xsteer.evaluate import PAPER_LAMBDAS, Evaluator, check_lambdas, its_vote
from xsteer.activations import collect_activations
from xsteer.concepts import CONCEPTS, load_concept
from xsteer.extract import METHODS, extract_vectors, random_vectors
from xsteer.fidelity import NEUTRAL_PROMPTS, SteeringFidelity, readout_fidelity, steer_concept
from xsteer.fidelity import write_report as write_fidelity_report
from xsteer import models as models_module
from xsteer.models import ModelCache
from xsteer.operators import operator_from_spec
from xsteer.positions import check_positions
from xsteer.records import RecordStore, prompt_hash
from xsteer.report import write_report
from xsteer.results import ConceptArrival, ConditionResult, TransferResult
from xsteer.runfolder import RESUMABLE_FIELDS, RunFolder
from xsteer.schedules import Band, Schedule, check_depth, schedule_from_dict, schedule_from_spec, search_band
from xsteer.steer import relative_size, residual_norms
from xsteer.tasks import TASKS, load_task
from xsteer.transfer import ADAPTERS, LAYER_MAPS, Transfer, accessibility_profile, accessible_band, cosine_to_reference
from xsteer.transfer.corpus import generated_corpus
from xsteer.vectors import SteeringVectors

__all__ = ["OPTION_HELP", "SCHEDULE_FILE", "TransferConfig", "run_transfer", "select_lambda"]

#: The searched schedule of a run folder (``schedule="search"``): band, score and search history.
SCHEDULE_FILE = "schedule.json"

log = logging.getLogger(__name__)


@dataclass
class TransferConfig:
    """Everything that defines a run; saved as config.json in the run folder.

    Every field is checked on construction (see ``_CHECKS``), before any data or model loads; a
    new field gets its entry there.

    How, where and how strongly the vector enters the child (every steered condition alike: the
    transferred vector, the child's own vector and the random directions):

    - ``operator``: "add" (the paper: h + λ·v), "project" (remove λ × the component along v),
      "clamp:VALUE" (set the component along v̂ to VALUE·‖v‖, at λ = 1 exactly) or
      "norm_preserving" (add, then rescale to ‖h‖); see ``xsteer.operators``. Stored as its canonical
      spec (an ``Operator`` object is accepted too).
    - ``positions``: "all", "prompt", "generated" (generate mode only) or "last_prompt".
    - ``schedule``: a per-layer multiplier s_l of λ (``xsteer.schedules``): None (s_l = 1), a
      ``Schedule`` or its ``to_dict()``, a spec such as "band:START:WIDTH[:STRENGTH]",
      "ramp:FIRST:LAST" or a JSON file's path (all stored as the dict), or "search". The steering
      at layer l is then λ·s_l·c_l·v_l (c_l from ``scale``); λ* and the ITS vote run over the grid
      as usual. A schedule naming blocks the child lacks fails before any model loads where the
      child's depth is known from its spec, else right after the child loads (before the parent).
    - ``schedule="search"`` finds a band on the VALIDATION split before anything else is steered:
      ``search_band`` coordinate ascent over the band's start, width and strength, where a band's
      "strength" is a λ of the grid (the band itself multiplies by 1), and the objective is the
      transferred vector's validation accuracy with ``Band(start, width)`` at that λ. Each of at
      most ``schedule_budget`` evaluations is one validation pass at one λ (records under condition
      ``search:band:START:WIDTH``); the test split is never read. The best band, with strength 1, is
      then the schedule of every condition over the whole λ grid, and λ* is chosen on validation
      again with it (so λ* and the band are chosen jointly, on validation only). The result goes to
      ``schedule.json`` in the run folder and a resume reuses it. The search covers child blocks
      0 … (last layer with a vector); its first round spends len(lambdas) − 1 evaluations on λ, so
      give a budget of several times that.
    """

    parent: str = "gemma-3-270m"
    child: str = "smollm2-135m"
    task: str = "arith"
    data_dir: str | None = None
    task_mode: str | None = None
    k_shot: int = 5
    method: str = "pca"
    n_pairs: int = 64
    layer_map: str = "proportional"
    adapter: str = "difference"
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
    source: str = "local"  # benchmark data: "local" folder or the Hugging Face "hub"
    # Concepts (xsteer.concepts) whose fidelity is measured before the accuracy protocol: readout, and
    # steering for concepts with a judge, through the run's layer map and adapter (the concept held out).
    fidelity: list[str] = field(default_factory=list)
    # How (xsteer.operators), where (xsteer.positions) and with what per-layer strength
    # (xsteer.schedules, or "search" on validation) every steered condition is applied.
    operator: str = "add"
    positions: str = "all"
    schedule: dict[str, Any] | str | None = None
    schedule_budget: int = 30

    def __post_init__(self) -> None:
        self._validate()

    def __setattr__(self, name: str, value: Any) -> None:
        """A field changed after construction is checked (and normalised) as on construction; a bad
        value is refused and leaves the config as it was."""
        names = [f.name for f in fields(self)]
        if name not in names and not name.startswith("_"):
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise AttributeError(f"TransferConfig has no field {name!r}; setting it would change nothing.{hint}")
        if name not in names or name not in self.__dict__:  # first assignment, inside __init__
            object.__setattr__(self, name, value)
            return
        old = self.__dict__[name]
        object.__setattr__(self, name, value)
        try:
            self._validate()
        except BaseException:
            object.__setattr__(self, name, old)
            raise

    def _validate(self) -> None:
        """Check every field (``_CHECKS``) and their combinations; store the canonical forms."""
        for name, check in _CHECKS.items():
            check(getattr(self, name))
        object.__setattr__(self, "lambdas", check_lambdas(self.lambdas))
        object.__setattr__(self, "operator", _operator_spec(operator_from_spec(self.operator)))
        if self.schedule is not None and self.schedule != "search":
            object.__setattr__(self, "schedule", schedule_from_spec(self.schedule).to_dict())
        _check_positions_for_mode(self.positions, self.task, self.task_mode)
        if self.scale == "relative" and max(self.lambdas) > 10:
            warnings.warn(
                f"λ = {max(self.lambdas):g} with scale='relative' adds {max(self.lambdas):g}× the "
                "residual stream's norm; outputs will degenerate. Fix: keep relative λ <= 1.",
                UserWarning, stacklevel=3,
            )


#: What each ``TransferConfig`` field means, in a line: the command line's help text (``xsteer run`` and
#: ``xsteer grid`` build their options from the fields, their defaults and these lines).
OPTION_HELP: dict[str, str] = {
    "parent": "Parent model: embedded name, .gguf, Hugging Face folder or hub id.",
    "child": "Child model (same forms as the parent).",
    "task": "arith (offline), gsm8k, math, math500, arc-challenge, arc-easy.",
    "data_dir": "Benchmark data folder (else $XSTEER_DATA_DIR).",
    "task_mode": "Task mode: generate or loglik (default: the task's).",
    "k_shot": "Few-shot examples in the prompt.",
    "method": "pca (RepE), mean_diff (CAA) or random.",
    "n_pairs": "Contrast pairs for extraction.",
    "layer_map": "Child layer <- parent layer: proportional (every child layer), greedy (the paper), cka, fit.",
    "adapter": "d_parent -> d_child map: difference (fitted on concept-free contrasts, docs/results.md), ridge "
               "(the previous default), ridge_std, vocab, procrustes, identity, truncate_pad, random_projection.",
    "n_anchors": "Anchor texts for fitting the transfer.",
    "scale": "absolute (the paper: λ·v) or relative (λ·median‖h_l‖·v: λ is a fraction of the stream).",
    "lambdas": "'paper' = {0.01..0.09} ∪ {0.1..1.0}, or e.g. 0.02,0.05,0.1.",
    "n_val": "Validation items for choosing λ*.",
    "n_test": "Test items.",
    "n_random": "Random-direction controls (each costs a full sweep; >= 20 for claims).",
    "child_own": "Also steer with the child's own vector from the same pairs.",
    "self_consistency": "Also run the equal-compute self-consistency vote.",
    "sc_temperature": "Sampling temperature of self-consistency.",
    "batch_size": "Rows (item × λ) per forward pass.",
    "max_new_tokens": "Generation budget (default: the task's).",
    "loglik_norm": "Score choices by per-token (not summed) log-likelihood.",
    "seed": "Seed of every random choice.",
    "device": "cpu, cuda, cuda:1 … (default: cuda when visible).",
    "source": "Benchmark data: local (--data-dir / $XSTEER_DATA_DIR) or hub (download).",
    "fidelity": "Concepts whose fidelity (readout; steering when they have a judge) is measured first, e.g. "
                "sentiment ('' for none).",
    "operator": "How the vector enters the stream: add, project, clamp:VALUE, norm_preserving.",
    "positions": "Steered positions: all, prompt, generated (generate mode), last_prompt.",
    "schedule": "Per-layer multiplier of λ: band:START:WIDTH[:STRENGTH], ramp:FIRST:LAST, a JSON file, "
                "or 'search' (a band searched on validation; λ* chosen with it).",
    "schedule_budget": "Most (band, λ) validation passes of --schedule search.",
}


def _checks() -> dict[str, Callable[[Any], None]]:
    def is_str(name):
        def check(v):
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{name} must be a non-empty string, not {v!r}.")
        return check

    return {
        "parent": is_str("parent"),
        "child": is_str("child"),
        "task": check_task_name,
        "task_mode": lambda v: v is None or check_choice("task mode", v, ("generate", "loglik")),
        "k_shot": lambda v: check_int("k_shot", v, 0),
        "method": lambda v: check_choice("method", v, METHODS),
        "n_pairs": lambda v: check_int("n_pairs", v, 2),
        "layer_map": lambda v: check_choice("layer map", v, LAYER_MAPS),
        "adapter": lambda v: check_choice("adapter", v, ADAPTERS),
        "n_anchors": lambda v: check_int("n_anchors", v, 2),
        "scale": lambda v: check_choice("scale", v, ("absolute", "relative")),
        "lambdas": check_lambda_values,
        "n_val": lambda v: check_int("n_val", v, 1, optional=True),
        "n_test": lambda v: check_int("n_test", v, 1, optional=True),
        "n_random": lambda v: check_int("n_random", v, 0),
        "sc_temperature": lambda v: check_finite("sc_temperature", v, positive=True),
        "batch_size": lambda v: check_int("batch_size", v, 1),
        "max_new_tokens": lambda v: check_int("max_new_tokens", v, 1, optional=True),
        "seed": lambda v: check_int("seed", v, 0),
        "device": check_device,
        "source": lambda v: check_choice("source", v, ("local", "hub")),
        "fidelity": _check_concepts,
        "operator": operator_from_spec,
        "positions": check_positions,
        "schedule": lambda v: v is None or v == "search" or schedule_from_spec(v),
        "schedule_budget": lambda v: check_int("schedule_budget", v, 1),
    }


def _operator_spec(op) -> str:
    """The canonical spec of an operator ("clamp:0.5", "project", ...)."""
    return f"clamp:{op.value!r}" if op.name == "clamp" else op.name


def _check_positions_for_mode(positions: str, task: str, task_mode: str | None) -> None:
    """positions that mean nothing in the task's mode (e.g. "generated" when scoring choices)."""
    cls = TASKS.get(task.strip().lower().replace("_", "-"))
    mode = task_mode or (cls.modes[0] if cls is not None else None)
    try:
        check_positions(positions, mode)
    except ValueError as err:
        other = " Or use task_mode='generate' (--mode generate)." if cls is not None and "generate" in cls.modes else ""
        raise ValueError(f"{err}{other}") from None


def _check_concepts(names) -> None:
    if not isinstance(names, (list, tuple)):
        raise ValueError(f"fidelity must be a list of concept names, not {names!r}.")
    for name in names:
        if not isinstance(name, str) or not (name in CONCEPTS or name.startswith("task:") or name.endswith(".jsonl")):
            raise ValueError(
                f"Unknown fidelity concept {name!r}; use one of {list(CONCEPTS)}, 'task:<task>' or a .jsonl file."
            )


_CHECKS = _checks()


def select_lambda(accuracy: dict[float, float]) -> float:
    """λ* = argmax validation accuracy; ties go to the smaller λ."""
    best = max(accuracy.values())
    return min(lam for lam, acc in accuracy.items() if acc == best)


def _subset(examples, n):
    return examples if n is None else examples[:n]


def _check_unique_ids(task, split: str, examples) -> None:
    counts = Counter(ex.id for ex in examples)
    dup = {i: c for i, c in counts.items() if c > 1}
    if dup:
        shown = ", ".join(f"{i!r} ({c}×)" for i, c in list(dup.items())[:3])
        raise ValueError(
            f"Items of the {split} split of {task.name} share ids: {shown}; each item needs its own id "
            "(records are kept per id). Fix: give the duplicated rows of the data file distinct ids, or drop them."
        )


def _data_hash(pairs, anchors, splits: dict[str, list]) -> str:
    """SHA-256 of every text and gold answer the run reads."""
    blob = {
        "pairs": [(p.positive, p.negative) for p in pairs],
        "anchors": anchors,
        **{s: [(e.id, e.question, e.answer, e.choices) for e in exs] for s, exs in splits.items()},
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def _config_key(cfg: TransferConfig) -> str:
    """Hash of the config fields that decide what a record holds (not the resumable ones)."""
    defaults = asdict(TransferConfig())  # fields at their default are left out, so new fields keep old keys
    contract = {k: v for k, v in asdict(cfg).items() if k not in RESUMABLE_FIELDS and v != defaults.get(k)}
    return hashlib.sha256(json.dumps(contract, sort_keys=True).encode()).hexdigest()


def _check_prompts(child, task, splits: dict[str, list], store: RecordStore | None) -> None:
    """Warn about prompts longer than the child's context; refuse stored records of other prompts."""
    tokenizer = child.tokenizer
    n_ctx = int(getattr(child.cfg, "n_ctx", 0) or 0)
    too_long = []
    derived = prompt_hash("")  # records derived from other records (log-likelihood self-consistency)
    for split, examples in splits.items():
        expected = {}
        for ex in examples:
            texts = {task.prompt(ex, tokenizer).text, task.prompt(ex, None).text}
            expected[ex.id] = ({prompt_hash(t) for t in texts} | {derived}, ex.answer)
            if n_ctx:
                longest = max(len(tokenizer(t)["input_ids"]) for t in texts)
                if longest > n_ctx:
                    too_long.append((split, ex.id, longest))
        if store is not None:
            store.check_prompts(split, expected)
    if too_long:
        split, ident, n = too_long[0]
        warnings.warn(
            f"{len(too_long)} prompts are longer than {child.cfg.model_name}'s context of {n_ctx} tokens "
            f"(e.g. {split} item {ident!r}: {n} tokens); they are scored beyond the trained context. "
            "Fix: fewer --k-shot examples.",
            UserWarning, stacklevel=3,
        )


def _warn_large_lambda(child, vectors: SteeringVectors, cfg: TransferConfig, schedule: Schedule | None = None) -> None:
    lam = max(cfg.lambdas)
    size = relative_size(child, vectors, lam, scale=cfg.scale, schedule=schedule)
    if not any(size.values()):
        warnings.warn(
            f"The schedule {cfg.schedule} steers none of the layers that have vectors ({vectors.layers}); "
            "every steered condition equals the baseline. Fix: a schedule over those layers.",
            UserWarning, stacklevel=3,
        )
        return
    layer, ratio = max(size.items(), key=lambda kv: kv[1])
    if ratio > 10:
        warnings.warn(
            f"λ = {lam:g} moves the child's residual stream by {ratio:.0f}× its median norm (layer "
            f"{layer}); outputs will degenerate. Fix: a smaller λ grid (e.g. 'paper'), or --scale relative.",
            UserWarning, stacklevel=3,
        )


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
    size = relative_size(ev.model, vectors, star, scale=cfg.scale, schedule=ev.schedule)
    return ConditionResult(name, kind, correct, star, its, size)


def _search_condition(band: Band) -> str:
    return f"search:band:{band.start}:{band.width}"


def _search_schedule(cfg: TransferConfig, folder: RunFolder | None, make_ev, vectors: SteeringVectors,
                     val) -> tuple[Band, dict[str, Any]]:
    """The band schedule searched on the validation split (see ``TransferConfig``), or the one this
    run folder saved in ``schedule.json``."""
    saved = folder.saved_json(SCHEDULE_FILE) if folder is not None else None
    if saved is not None:
        return schedule_from_dict(saved["schedule"]), saved

    def objective(band: Band) -> float:
        lam = float(band.strength)
        ev = make_ev(Band(band.start, band.width))
        recs = ev.sweep(val, "validation", _search_condition(band), vectors, [lam])[lam]
        return sum(r.correct for r in recs) / len(recs)

    found = search_band(objective, max(vectors.layers) + 1, strengths=cfg.lambdas, budget=cfg.schedule_budget)
    schedule = Band(found.best.start, found.best.width)
    band = lambda b: {"start": b.start, "width": b.width, "lam": b.strength}  # noqa: E731
    info = {
        "schedule": schedule.to_dict(),
        "best": band(found.best),
        "score": found.score,
        "history": [{**band(b), "accuracy": score} for b, score in found.history],
        "budget": cfg.schedule_budget,
        "split": "validation",
        "item_ids": [ex.id for ex in val],
        "objective": "validation accuracy of the transferred vector with Band(start, width) at λ = lam",
    }
    if folder is not None:
        folder.save_json(SCHEDULE_FILE, info)
    return schedule, info


def run_transfer(
    config: TransferConfig | None = None,
    out_dir: str | Path | None = None,
    *,
    models: dict[str, Any] | ModelCache | None = None,
    progress: bool = True,
    parent_vectors: SteeringVectors | None = None,
    force: bool = False,
) -> TransferResult:
    """Run extraction, transfer, λ search, test, ITS and controls; save everything under ``out_dir``.

    ``models`` may hold already-loaded bridges by spec. ``out_dir`` is a run folder (see
    ``xsteer.runfolder``): one run at a time; a folder holding the same run resumes where it stopped
    (only ``RESUMABLE_FIELDS`` such as ``n_random`` may differ), a different one is refused unless
    ``force=True`` starts it over. The parent is loaded only when its vectors or the transfer still
    have to be computed, so a run folder carrying both runs where only the child fits.
    """
    cfg = TransferConfig() if config is None else config
    _check_run(cfg, models, parent_vectors)
    cache = models if isinstance(models, ModelCache) else ModelCache(models, device=cfg.device)
    if out_dir is None:
        return _Run(cfg, None, cache, progress, parent_vectors).result()
    defaults = asdict(TransferConfig())
    with RunFolder(out_dir, asdict(cfg), defaults, force=force) as folder:
        return _Run(cfg, folder, cache, progress, parent_vectors).result()


def _check_run(cfg: TransferConfig, models, parent_vectors) -> None:
    """run_transfer's inputs, before anything loads: the config once more (a field may have been
    changed in place, e.g. ``cfg.lambdas.append(...)``), loaded models that are the models their
    specs name, and parent vectors of the config's parent."""
    if not isinstance(cfg, TransferConfig):
        raise TypeError(f"run_transfer needs a TransferConfig, not {type(cfg).__name__}. Fix: TransferConfig(**settings).")
    cfg._validate()
    if models is not None and not isinstance(models, (dict, ModelCache)):
        raise TypeError(f"models must be a dict spec -> loaded model, not {type(models).__name__}.")
    given = models._given if isinstance(models, ModelCache) else dict(models or {})
    for role, spec in (("parent", cfg.parent), ("child", cfg.child)):
        expected, model = models_module.spec_name(spec), given.get(spec)
        if model is None:
            continue
        models_module.check_bridge(model, f"models[{spec!r}]")
        if expected is not None and model.cfg.model_name != expected:
            raise ValueError(
                f"models[{spec!r}] holds {model.cfg.model_name!r}, but the {role} spec {spec!r} names "
                f"{expected!r}; the run folder would name one model and hold results of another. Fix: key each "
                "loaded model by the spec that loads it, or leave it out of models= so that run_transfer loads it."
            )
    if parent_vectors is None:
        return
    if not isinstance(parent_vectors, SteeringVectors):
        raise TypeError(f"parent_vectors must be SteeringVectors, not {type(parent_vectors).__name__}.")
    parent, expected = given.get(cfg.parent), models_module.spec_name(cfg.parent)
    mine = parent_vectors.fingerprint
    if parent is not None:
        theirs = models_module.model_fingerprint(parent)
        shape = (models_module.d_model(parent), models_module.n_layers(parent))
        wrong = (parent_vectors.d_model, parent_vectors.n_layers) != shape or (
            mine is not None and theirs is not None and not mine.matches(theirs))
        parent_id = f"{parent.cfg.model_name!r} (width {shape[0]}, {shape[1]} layers, fingerprint {theirs})"
    else:
        wrong = expected is not None and parent_vectors.model_name != expected
        parent_id = repr(expected)
    if wrong:
        raise ValueError(
            f"parent_vectors are not of the config's parent {cfg.parent!r}: they belong to "
            f"{parent_vectors.model_name!r} (width {parent_vectors.d_model}, {parent_vectors.n_layers} layers, "
            f"fingerprint {mine}), the parent is {parent_id}. Fix: pass the vectors extracted from that parent, "
            "or set TransferConfig(parent=...) to their model."
        )


class _Run:
    """The protocol as named stages, each computed once and resumed from the run folder where it
    left its output: plan (no model) → models → parent vectors → transfer → transferred vectors →
    baseline → schedule → conditions → diagnostics → report."""

    def __init__(self, cfg: TransferConfig, folder: RunFolder | None, models: ModelCache, progress: bool,
                 parent_vectors: SteeringVectors | None):
        self.cfg, self.folder, self.models, self.progress = cfg, folder, models, progress
        self.out = folder.path if folder is not None else None
        self.given_vectors = parent_vectors

    def result(self) -> TransferResult:
        """Every stage in order; the run's result (also written to the folder's report)."""
        self.plan()
        self.load_models()
        fidelity = _concept_fidelity(self.cfg, self.models, self.out, self.progress) if self.cfg.fidelity else {}
        self.parent_vectors = self.extract_parent()
        self.transfer = self.fit_transfer()
        self.transferred = self.saved("transferred", self.transfer_vectors)
        self.baseline = self.evaluate_baseline()
        self.schedule, self.search = self.choose_schedule()
        conditions = self.evaluate_conditions()
        result = TransferResult(
            config=asdict(self.cfg),
            item_ids={"validation": [e.id for e in self.val], "test": [e.id for e in self.test]},
            baseline=self.baseline,
            conditions=conditions,
            diagnostics=self.diagnostics(conditions),
            fidelity=fidelity,
        )
        if self.out is not None:
            write_report(result, self.out)
        return result

    # ------------------------------------------------------------------ stages

    def plan(self) -> None:
        """Everything that needs no model: the task and its splits, pairs, anchors, operator, schedule."""
        cfg = self.cfg
        self.task = load_task(cfg.task, data_dir=cfg.data_dir, source=cfg.source, k_shot=cfg.k_shot, seed=cfg.seed,
                              mode=cfg.task_mode)
        self.val = _subset(self.task.split("validation"), cfg.n_val)
        self.test = _subset(self.task.split("test"), cfg.n_test)
        for split, examples in (("validation", self.val), ("test", self.test)):
            _check_unique_ids(self.task, split, examples)
        self.pairs = from_task(self.task, cfg.n_pairs, cfg.seed)
        self.anchors = [ex.question for ex in self.task.split("train")[: cfg.n_anchors]]
        self.operator = operator_from_spec(cfg.operator)
        check_positions(cfg.positions, self.task.mode)
        self.fixed = schedule_from_dict(cfg.schedule) if isinstance(cfg.schedule, dict) else None

    def has(self, name: str) -> bool:
        return self.folder is not None and self.folder.has(name)

    def load_models(self) -> None:
        """The child, and the parent only when its vectors or the transfer are still to be computed;
        a schedule the child cannot take fails before anything loads where its depth is known."""
        cfg, models = self.cfg, self.models
        need_parent = not ((self.given_vectors is not None or self.has("vectors/parent")) and self.has("transfer"))
        models.check(cfg.child)
        if need_parent:
            models.check(cfg.parent)
        depth = models.depth(cfg.child)
        if self.fixed is not None and depth is not None:
            _check_schedule_depth(self.fixed, depth, cfg.child)
        self.child = models(cfg.child)
        if self.fixed is not None:
            _check_schedule_depth(self.fixed, models_module.n_layers(self.child), cfg.child)
        self.parent = models(cfg.parent) if need_parent else None
        splits = {"validation": self.val, "test": self.test}
        records = self.out / "records" / "records.jsonl" if self.out is not None else None
        key = _config_key(cfg)
        reusing = self.folder is not None and self.folder.reusing
        store = RecordStore(records, fingerprint=key) if reusing else None
        _check_prompts(self.child, self.task, splits, store)
        if self.folder is not None:
            self.folder.start(_data_hash(self.pairs, self.anchors, splits))
        self.store = store or RecordStore(records, fingerprint=key if records is not None else None)

    def saved(self, name: str, make: Callable[[], SteeringVectors]) -> SteeringVectors:
        """Vectors ``name`` from the run folder, else made and saved there."""
        if self.folder is None:
            return make()
        if self.has(f"vectors/{name}"):
            return SteeringVectors.load(self.out / "vectors" / name)
        vectors = make()
        vectors.save(self.out / "vectors" / name)
        self.folder.saved_artifact(f"vectors/{name}")
        return vectors

    def extract_parent(self) -> SteeringVectors:
        """Algorithm 1 in the parent (or the vectors the caller gave, saved with the run)."""
        cfg = self.cfg
        if self.given_vectors is None:
            return self.saved("parent", lambda: extract_vectors(
                self.parent, self.pairs, cfg.method, seed=cfg.seed, progress=self.progress))
        return self.saved("parent", lambda: self.given_vectors)

    def fit_transfer(self) -> Transfer:
        """The layer map and adapters, fitted on the anchors (or the transfer the folder holds)."""
        if self.has("transfer"):
            return Transfer.load(self.out / "transfer")
        transfer = Transfer(self.cfg.layer_map, self.cfg.adapter)
        # A state-fitted adapter reads last-token rows only: steering vectors live at the last token, and
        # mean-pooled rows add an easy-to-predict pooling offset that inflates its R². A difference-fitted
        # one learns from group contrasts at both, as Transfer() was measured (docs/results.md).
        pooling = ("last", "mean") if transfer.adapter.source == "differences" else "last"
        transfer.fit(self.parent, self.child, self.anchors, pooling=pooling, batch_size=self.cfg.batch_size,
                     progress=self.progress)
        if self.folder is not None:
            transfer.save(self.out / "transfer")
            self.folder.saved_artifact("transfer")
        return transfer

    def transfer_vectors(self) -> SteeringVectors:
        """The parent vectors carried into the child, signed on the child's activations of the pairs."""
        child_pos = collect_activations(self.child, [p.positive for p in self.pairs], progress=self.progress)
        child_neg = collect_activations(self.child, [p.negative for p in self.pairs], progress=self.progress)
        return self.transfer.apply(self.parent_vectors, (child_pos, child_neg))

    def evaluator(self, schedule: Schedule | None) -> Evaluator:
        cfg = self.cfg
        return Evaluator(
            self.child, self.task, scale=cfg.scale, batch_size=cfg.batch_size, store=self.store,
            loglik_norm=cfg.loglik_norm, max_new_tokens=cfg.max_new_tokens, progress=self.progress,
            operator=self.operator, positions=cfg.positions, schedule=schedule,
        )

    def evaluate_baseline(self) -> dict[str, list[bool]]:
        """Per-item correctness of the unsteered child on validation and test."""
        ev = self.evaluator(None)
        return {
            split: [r.correct for r in ev.sweep(exs, split, "baseline", None, [0.0])[0.0]]
            for split, exs in (("validation", self.val), ("test", self.test))
        }

    def choose_schedule(self) -> tuple[Schedule | None, dict[str, Any] | None]:
        """The fixed schedule, or the band searched on validation (saved in schedule.json)."""
        if self.cfg.schedule != "search":
            return self.fixed, None
        return _search_schedule(self.cfg, self.folder, self.evaluator, self.transferred, self.val)

    def evaluate_conditions(self) -> dict[str, ConditionResult]:
        """The transferred vector and every control over the λ grid on validation and test."""
        cfg, val, test = self.cfg, self.val, self.test
        _warn_large_lambda(self.child, self.transferred, cfg, self.schedule)
        ev = self.evaluator(self.schedule)
        conditions = {"transferred": _condition(ev, "transferred", "transferred", self.transferred, cfg, val, test)}
        if cfg.child_own:
            self.own = self.saved(
                "child_own",
                lambda: extract_vectors(self.child, self.pairs, cfg.method, self.transferred.layers, seed=cfg.seed),
            )
            conditions["child_own"] = _condition(ev, "child_own", "child_own", self.own, cfg, val, test)
        for i in range(cfg.n_random):
            name = f"random[{i}]"
            vec = random_vectors(self.transferred, seed=cfg.seed * 1000 + i)
            conditions[name] = _condition(ev, name, "random", vec, cfg, val, test)
        if cfg.self_consistency:
            samples = ev.sample(test, "test", len(cfg.lambdas), temperature=cfg.sc_temperature, seed=cfg.seed)
            its = []
            for ex, recs in zip(test, samples):
                vote = its_vote({float(s): r.prediction for s, r in enumerate(recs)})
                its.append(bool(self.task.is_correct(vote, ex)))
            conditions["self_consistency"] = ConditionResult("self_consistency", "self_consistency", its_correct=its)
        return conditions

    def diagnostics(self, conditions: dict[str, ConditionResult]) -> dict[str, Any]:
        """Parent vector quality, the layer map and R², residual norms, steering settings, cosines."""
        cfg, transfer, schedule = self.cfg, self.transfer, self.schedule
        out: dict[str, Any] = {
            "parent": _vector_summary(self.parent_vectors),
            "transfer": {
                "layer_map": {str(c): p for c, p in transfer.layer_map_.mapping_.items()},
                "r2": {str(c): r for c, r in transfer.r2_.items()},
                "repr": repr(transfer),
            },
            "residual_norms": {str(l): v for l, v in residual_norms(self.child).items()},
            "n_pairs": len(self.pairs),
            "n_anchors": len(self.anchors),
            "anchor_rows": transfer.n_anchors_,
            "steering": {
                "operator": self.operator.to_dict(),
                "positions": cfg.positions,
                "schedule": None if schedule is None else schedule.report(self.child, self.transferred.layers),
                "search": None if self.search is None else {k: v for k, v in self.search.items() if k != "schedule"},
            },
        }
        if "child_own" in conditions:
            diag = cosine_to_reference(self.transferred, self.own, seed=cfg.seed)
            out["cosine_to_child_own"] = {
                "cosine": {str(l): c for l, c in diag.cosine.items()},
                "null_mean": diag.null_mean,
                "null_p95": diag.null_p95,
            }
        return out


def _check_schedule_depth(schedule: Schedule, depth: int, child: str) -> None:
    try:
        check_depth(schedule, depth)
    except ValueError as err:
        raise ValueError(f"Child {child}: {err}") from None


#: Where the run keeps its concept-fidelity stage: readout and steering reports, and their summary.
FIDELITY_DIR = "fidelity"
#: The NLL increase (nats/token) at which the stage compares steering: the largest one both vectors
#: reach lands where the child's text has degenerated and a topic judge's shift collapses (docs/results.md).
FIDELITY_BUDGET = 1.0


def _concept_fidelity(cfg: TransferConfig, models: ModelCache, out: Path | None,
                      progress: bool) -> dict[str, ConceptArrival]:
    """Does each concept of ``cfg.fidelity`` arrive in the child? For every concept: the run's transfer
    (``cfg.layer_map`` × ``cfg.adapter``) fitted on the built-in anchors with that concept held out,
    its readout over all child layers beside the child's own vector and random directions, and, for a
    concept with a judge, its dose-response at the child's accessible band (found from the child
    alone: where its logit lens starts to read the next token, ``xsteer.transfer.accessible_band``),
    beside the child's own vector and random and mapped-random directions, compared at
    ``FIDELITY_BUDGET`` nats/token of NLL (``out/fidelity``). Returns
    the summary the report opens with (read back from the folder on resume)."""
    folder = out / FIDELITY_DIR if out is not None else None
    saved = folder / "summary.json" if folder is not None else None
    done = ({name: ConceptArrival.from_dict(f) for name, f in json.loads(saved.read_text()).items()}
            if saved is not None and saved.exists() else {})
    todo = [name for name in cfg.fidelity if name not in done]
    if not todo:
        return {name: done[name] for name in cfg.fidelity}
    parent, child = models(cfg.parent), models(cfg.child)
    summary: dict[str, ConceptArrival] = dict(done)
    readouts, doses, band = [], [], None
    for name in todo:
        concept = load_concept(name, n=64, seed=cfg.seed, data_dir=cfg.data_dir)
        transfer = Transfer(cfg.layer_map, cfg.adapter).fit(
            parent, child, hold_out=concept, data_dir=cfg.data_dir, batch_size=cfg.batch_size, progress=progress)
        readout = readout_fidelity(parent, child, [concept], transfers=transfer, n_random=100, n_boot=500,
                                   n_mapped_random=5, seed=cfg.seed, batch_size=cfg.batch_size)
        for flag in readout.flags:
            log.warning(flag)
        readouts.append(readout)
        (row,) = readout.concepts[0].summary()
        efficiency, layers = None, ()
        if concept.judge is not None:
            if band is None:  # where the child steers, from the child alone (docs/results.md)
                band = accessible_band(accessibility_profile(child, list(generated_corpus().sample(64, seed=cfg.seed).texts)))
            dose, _ = steer_concept(parent, child, concept, transfer, band, lambdas=(0.04, 0.08, 0.16, 0.32),
                                    prompts=NEUTRAL_PROMPTS[:8], n_random=3, n_mapped_random=3, k_pairs=(),
                                    prompting=False, max_new_tokens=16, seed=cfg.seed, batch_size=cfg.batch_size,
                                    budget=FIDELITY_BUDGET)
            doses.append(dose)
            eff = dose.efficiency
            finite = eff is not None and all(math.isfinite(x) for x in (eff.value, eff.low, eff.high))
            efficiency, layers = (eff if finite else None), tuple(dose.layers)
        summary[concept.name] = ConceptArrival(row["transferred_all_layers"], row["child_own_all_layers"],
                                               row["random_p95_all_layers"], bool(row["parent_holds"]),
                                               efficiency, layers)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for readout in readouts:
            write_fidelity_report(readout, folder / readout.concepts[0].concept.name.replace(":", "_"))
        if doses:
            steering = SteeringFidelity(parent=str(parent.cfg.model_name), child=str(child.cfg.model_name),
                                        results=doses, where={}, transfer={}, settings={"operator": {"name": "add"}})
            steering.write(folder, "steering-" + "-".join(d.concept for d in doses))
        saved.write_text(json.dumps({name: f.to_dict() for name, f in summary.items()}, indent=1))
    return {name: summary[name] for name in cfg.fidelity}


def _vector_summary(vectors: SteeringVectors) -> dict[str, Any]:
    return {
        "model": vectors.model_name,
        "method": vectors.method,
        "explained_variance": {str(l): v for l, v in vectors.explained_variance.items()},
        "sign_agreement": {str(l): v for l, v in vectors.sign_agreement.items()},
    }
