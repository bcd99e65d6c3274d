"""Running a grid: parent vectors once per (parent, task), then every cell as a resumable run folder,
in this process one after another, or as Ray tasks (one per extraction, one per cell depending on it)."""

from __future__ import annotations

import json
import logging
import os
import socket
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from xsteer.contrast import from_task
from xsteer.extract import extract_vectors
from xsteer.grid.faults import ENV as FAULT_ENV, kill_after_batches
from xsteer.grid.resources import Resources, check_fits, task_resources
from xsteer.grid.spec import Cell, GridSpec
from xsteer.grid.summary import write_summary
from xsteer.models import ModelCache
from xsteer.pipeline import run_transfer
from xsteer.results import TransferResult
from xsteer.storage import atomic_write_bytes, pair_exists
from xsteer.tasks import load_task
from xsteer.vectors import SteeringVectors

__all__ = ["CellOutcome", "GridResult", "extract_parent", "run_cell", "run_grid"]

log = logging.getLogger(__name__)


@dataclass
class CellOutcome:
    """How one cell ended: "done" with its result, or "failed" with the last error."""

    cell: str
    status: str
    result: TransferResult | None = None
    error: str | None = None


@dataclass
class GridResult:
    """Every cell's outcome (in the grid's order) and where the grid summary was written."""

    outcomes: list[CellOutcome]
    summary: dict[str, Any] = field(default_factory=dict)
    summary_path: Path | None = None

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status != "done"]


# --------------------------------------------------------------------------- one extraction, one cell


def _vectors_saved(stem: Path) -> bool:
    return pair_exists(stem)


def extract_parent(spec: GridSpec, cell: Cell, model=None, *, progress: bool = False) -> SteeringVectors:
    """The parent vectors of ``cell``'s (parent, task), computed once and kept in ``cell.vectors``
    (with ``extraction.json`` beside it; a folder made with other extraction settings is refused)."""
    wanted = spec.extraction_config(cell.parent, cell.task)
    marker = cell.vectors.parent / "extraction.json"
    if marker.exists() and json.loads(marker.read_text()) != wanted:
        raise ValueError(
            f"{cell.vectors.parent} holds vectors made with other settings ({marker}); "
            "use a new --out folder or delete that folder."
        )
    if _vectors_saved(cell.vectors):
        return SteeringVectors.load(cell.vectors)
    cfg = cell.config
    task = load_task(cfg.task, data_dir=cfg.data_dir, k_shot=cfg.k_shot, seed=cfg.seed, mode=cfg.task_mode)
    pairs = from_task(task, cfg.n_pairs, cfg.seed)
    model = model if model is not None else spec.load(cfg.parent)
    vectors = extract_vectors(model, pairs, cfg.method, seed=cfg.seed, progress=progress)
    vectors.save(cell.vectors)  # atomic pair: a kill leaves nothing or the whole pair
    atomic_write_bytes(marker, json.dumps(wanted, indent=1).encode())
    return vectors


def _needs_parent(cell: Cell) -> bool:
    """Whether the cell still has a transfer to fit (else it resumes with the child alone)."""
    return not (cell.folder / "transfer.json").exists()


def run_cell(cell: Cell, vectors: SteeringVectors, models: dict[str, Any] | None = None,
             *, progress: bool = False) -> TransferResult:
    """One cell through ``run_transfer``, resuming from its folder."""
    return run_transfer(cell.config, cell.folder, models=models, progress=progress, parent_vectors=vectors)


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0][:500]


# --------------------------------------------------------------------------- sequential


def _run_sequential(spec: GridSpec, cells: list[Cell], models: dict[str, Any] | None,
                    progress: bool) -> list[CellOutcome]:
    cache = ModelCache(models, device=spec.base.device, dtype=getattr(torch, spec.dtype))

    def get(name: str, keep: tuple[str, ...]):
        """A model by spec; loaded models other than ``keep`` are let go (one parent and one child
        in memory at a time, as large models need)."""
        cache.release(keep)
        return cache(name)

    outcomes, vectors = [], {}
    for cell in cells:
        key, keep = (cell.parent, cell.task), (cell.parent, cell.child)
        try:
            if key not in vectors:
                parent = None if _vectors_saved(cell.vectors) else get(cell.parent, keep)
                vectors[key] = extract_parent(spec, cell, parent, progress=progress)
            held = {cell.child: get(cell.child, keep)}
            if _needs_parent(cell) or cell.parent in cache:
                held[cell.parent] = get(cell.parent, keep)
            result = run_cell(cell, vectors[key], held, progress=progress)
            outcomes.append(CellOutcome(cell.name, "done", result))
        except Exception as err:  # reported per cell; the other cells still run
            log.error("cell %s failed:\n%s", cell.name, traceback.format_exc())
            outcomes.append(CellOutcome(cell.name, "failed", error=_error(err)))
    return outcomes

# --------------------------------------------------------------------------- Ray


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ModuleNotFoundError(
            "--ray needs Ray, an optional extra: pip install 'xsteer[ray]' (or pip install ray); "
            "without --ray the grid runs in this process."
        ) from None
    return ray


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast on an address nothing listens on (Ray itself retries for minutes)."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray {address!r} is not 'auto', 'local' or HOST:PORT (e.g. 10.0.0.1:6379).")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(
            f"No Ray cluster reachable at {address} ({err}); start one with `ray start --head` "
            "and pass its address, or use --ray auto on a cluster node."
        ) from None


def connect(address: str):
    """Join a Ray cluster ("auto": the running one; "local": start one in this process; HOST:PORT)."""
    ray = _import_ray()
    if address not in ("auto", "local"):
        _check_reachable(address)
    if ray.is_initialized():
        return ray
    if address == "local":
        ray.init(include_dashboard=False, log_to_driver=False)
        return ray
    try:
        ray.init(address=address, log_to_driver=False)
    except ConnectionError as err:
        raise ConnectionError(
            f"Could not join the Ray cluster at {address!r} ({str(err).splitlines()[0]}); "
            "start one with `ray start --head`, or pass --ray local to start one here."
        ) from None
    return ray


def _extract_task(spec: GridSpec, cell: Cell) -> SteeringVectors:
    return extract_parent(spec, cell, None if _vectors_saved(cell.vectors) else spec.load(cell.parent))


def _cell_task(spec: GridSpec, cell: Cell, vectors: SteeringVectors, fault: str | None) -> dict[str, Any]:
    models = {cell.child: spec.load(cell.child)}
    if _needs_parent(cell):
        models[cell.parent] = spec.load(cell.parent)
    with kill_after_batches(fault, cell.name):
        return run_cell(cell, vectors, models).to_dict()


def plan(spec: GridSpec, cells: list[Cell], *, on_gpu: bool, gpus_per_task: float | None,
         memory_gib: float | None, gpu_memory_gib: float) -> tuple[dict, dict]:
    """Resources per extraction task (by (parent, task)) and per cell (by name)."""
    kw = dict(on_gpu=on_gpu, gpus_per_task=gpus_per_task, memory_gib=memory_gib, gpu_memory_gib=gpu_memory_gib)
    extract = {(c.parent, c.task): task_resources([c.parent], **kw) for c in cells}
    per_cell = {
        c.name: task_resources([c.parent, c.child] if _needs_parent(c) else [c.child], **kw) for c in cells
    }
    return extract, per_cell


def _run_ray(spec: GridSpec, cells: list[Cell], *, address: str, gpus_per_task, memory_gib, gpu_memory_gib,
             max_retries: int, progress: bool) -> list[CellOutcome]:
    ray = connect(address)
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    on_gpu = spec.base.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
    extract_res, cell_res = plan(spec, cells, on_gpu=on_gpu, gpus_per_task=gpus_per_task,
                                 memory_gib=memory_gib, gpu_memory_gib=gpu_memory_gib)
    for (parent, task), res in extract_res.items():
        check_fits(f"Extraction of {parent} on {task}", res, nodes)
    for name, res in cell_res.items():
        check_fits(f"Cell {name}", res, nodes)

    def opts(res: Resources, name: str) -> dict:
        return dict(num_gpus=res.num_gpus, memory=res.memory, max_retries=max_retries,
                    retry_exceptions=True, name=name)

    extract_fn, cell_fn = ray.remote(_extract_task), ray.remote(_cell_task)
    fault = os.environ.get(FAULT_ENV)
    extractions, pending = {}, {}
    for cell in cells:
        key = (cell.parent, cell.task)
        if key not in extractions:
            first = next(c for c in cells if (c.parent, c.task) == key)
            extractions[key] = extract_fn.options(**opts(extract_res[key], f"extract {key[0]} {key[1]}")).remote(spec, first)
        ref = cell_fn.options(**opts(cell_res[cell.name], cell.name)).remote(spec, cell, extractions[key], fault)
        pending[ref] = cell
    results: dict[str, CellOutcome] = {}
    bar = _bar(len(cells), progress)
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        cell = pending.pop(ref)
        try:
            results[cell.name] = CellOutcome(cell.name, "done", TransferResult.from_dict(ray.get(ref)))
        except Exception as err:  # RayTaskError (retries spent) or a worker that died every time
            cause = getattr(err, "cause", None) or err
            log.error("cell %s failed after %d retries: %s", cell.name, max_retries, _error(cause))
            results[cell.name] = CellOutcome(cell.name, "failed", error=_error(cause))
        bar.update(1)
        bar.set_postfix(failed=sum(o.status != "done" for o in results.values()))
    bar.close()
    return [results[c.name] for c in cells]


def _bar(total: int, enabled: bool):
    return tqdm(total=total, desc="grid cells", unit="cell", disable=not enabled)


# --------------------------------------------------------------------------- entry point


def run_grid(
    spec: GridSpec,
    out_dir: str | Path,
    *,
    ray: str | None = None,
    models: dict[str, Any] | None = None,
    gpus_per_task: float | None = None,
    memory_gib: float | None = None,
    gpu_memory_gib: float = 80.0,
    max_retries: int = 2,
    progress: bool = True,
) -> GridResult:
    """Run every cell of ``spec`` under ``out_dir`` and write ``grid_summary.{json,md}`` there.

    ``ray=None`` runs the cells in this process (``models`` may hold loaded bridges by spec);
    ``ray="auto" | "local" | "HOST:PORT"`` submits one Ray task per parent extraction and one per
    cell depending on it, each asking for ``gpus_per_task`` / ``memory_gib`` (estimated from the
    model sizes when not given) and retried up to ``max_retries`` times. Finished work is never
    redone: each cell resumes from its run folder. Failed cells are reported, not raised.
    """
    if max_retries < 0:
        raise ValueError("max_retries must be >= 0.")
    cells = spec.cells(out_dir)
    if ray is None:
        outcomes = _run_sequential(spec, cells, models, progress)
    else:
        if models:
            raise ValueError("models= holds bridges of this process; Ray workers load their own. Drop it with ray=.")
        outcomes = _run_ray(spec, cells, address=ray, gpus_per_task=gpus_per_task, memory_gib=memory_gib,
                            gpu_memory_gib=gpu_memory_gib, max_retries=max_retries, progress=progress)
    summary, path = write_summary(outcomes, out_dir)
    return GridResult(outcomes, summary, path)
