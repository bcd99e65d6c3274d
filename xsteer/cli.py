"""Command line: ``xsteer run / extract / sweep / report / models``."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

_DEBUG = typer.Option(False, "--debug", help="Show full tracebacks.")


def _friendly(fn):
    """Turn exceptions into one line that names the problem (full traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs.get("debug"):
            return fn(*args, **kwargs)
        logging.getLogger("transformers").setLevel(logging.ERROR)
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError, OSError, KeyError, RuntimeError, ModuleNotFoundError) as err:
            typer.secho(f"error: {err}", fg="red", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _lambdas(text: str) -> list[float]:
    from xsteer.evaluate import PAPER_LAMBDAS

    if text == "paper":
        return list(PAPER_LAMBDAS)
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--lambdas must be 'paper' or comma-separated numbers like 0.01,0.1,1, not {text!r}.")


def _summary_table(vectors) -> str:
    rows = ["layer  PC1-EVR  sign-agreement"]
    for l in vectors.layers:
        rows.append(f"{l:>5}  {vectors.explained_variance.get(l, float('nan')):7.3f}  {vectors.sign_agreement.get(l, float('nan')):14.2f}")
    return "\n".join(rows)


@app.command()
@_friendly
def run(
    parent: str = typer.Option("gemma-3-270m", help="Parent model: embedded name, .gguf, folder or hub id."),
    child: str = typer.Option("smollm2-135m", help="Child model (same forms as --parent)."),
    task: str = typer.Option("arith", help="arith (offline), gsm8k, math, math500, arc-challenge, arc-easy."),
    data_dir: Optional[Path] = typer.Option(None, help="Benchmark data folder (else $XSTEER_DATA_DIR)."),
    mode: Optional[str] = typer.Option(None, help="Task mode: generate or loglik (default: the task's)."),
    method: str = typer.Option("pca", help="pca (RepE), mean_diff (CAA) or random."),
    n_pairs: int = typer.Option(64, help="Contrast pairs for extraction."),
    layer_map: str = typer.Option("greedy", help="greedy (paper), proportional, cka."),
    adapter: str = typer.Option("ridge", help="ridge, procrustes, identity, truncate_pad, random_projection."),
    n_anchors: int = typer.Option(256, help="Anchor texts for fitting the transfer."),
    scale: str = typer.Option("absolute", help="absolute (paper: λ·v) or relative (λ·median‖h‖·v)."),
    lambdas: str = typer.Option("paper", help="'paper' = {0.01..0.09} ∪ {0.1..1.0}, or e.g. 0.05,0.1,0.5."),
    n_val: int = typer.Option(20, help="Validation items for choosing λ*."),
    n_test: int = typer.Option(40, help="Test items."),
    n_random: int = typer.Option(2, help="Random-direction controls (use >= 20 for claims; each costs a full sweep)."),
    k_shot: int = typer.Option(0, help="Few-shot examples in the prompt."),
    batch_size: int = typer.Option(32, help="Rows (item × λ) per forward pass."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Generation budget (default: the task's)."),
    seed: int = typer.Option(0),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 … (default: cuda when visible)."),
    out: Path = typer.Option(Path("runs/default"), help="Run folder; an interrupted run resumes from it."),
    debug: bool = _DEBUG,
):
    """Extract in the parent, transfer to the child, choose λ, test at λ* and by ITS, with controls."""
    from xsteer.pipeline import TransferConfig, run_transfer
    from xsteer.vectors import SteeringVectors

    cfg = TransferConfig(
        parent=parent, child=child, task=task, data_dir=str(data_dir) if data_dir else None,
        task_mode=mode, k_shot=k_shot, method=method, n_pairs=n_pairs, layer_map=layer_map,
        adapter=adapter, n_anchors=n_anchors, scale=scale, lambdas=_lambdas(lambdas), n_val=n_val,
        n_test=n_test, n_random=n_random, batch_size=batch_size, max_new_tokens=max_new_tokens, seed=seed,
        device=device,
    )
    typer.echo(f"xsteer run: {parent} → {child} on {task}; run folder {out}")
    run_transfer(cfg, out)
    vectors = SteeringVectors.load(out / "vectors" / "parent")
    typer.echo(f"\nParent {parent}: {vectors.method} vectors ({len(vectors)} layers) in {out / 'vectors'}")
    typer.echo(_summary_table(vectors))
    typer.echo("\n" + (out / "report.md").read_text().split("## Random")[0].strip())
    typer.echo(f"\nReport: {out / 'report.md'}  (figures in {out / 'figures'})")


@app.command()
@_friendly
def extract(
    model: str = typer.Option("gemma-3-270m", help="Model to extract from."),
    task: str = typer.Option("builtin", help="'builtin' (true vs. false arithmetic statements) or a task name."),
    data_dir: Optional[Path] = typer.Option(None),
    method: str = typer.Option("pca"),
    n_pairs: int = typer.Option(64),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/vectors/parent"), help="Path stem for .safetensors + .json."),
    debug: bool = _DEBUG,
):
    """Extract per-layer steering vectors and print PC1 explained variance and sign agreement."""
    from xsteer.contrast import arithmetic_pairs, from_task
    from xsteer.extract import extract_vectors
    from xsteer.models import load_model
    from xsteer.tasks import load_task

    if task == "builtin":
        pairs = arithmetic_pairs(n_pairs, seed)
    else:
        pairs = from_task(load_task(task, data_dir=data_dir, seed=seed), n_pairs, seed)
    vectors = extract_vectors(load_model(model), pairs, method, seed=seed, progress=True)
    path = vectors.save(out)
    typer.echo(_summary_table(vectors))
    typer.echo(f"Saved {len(vectors)} layers to {path} (+ .json)")


@app.command()
@_friendly
def sweep(
    vectors: Path = typer.Option(..., help="Vectors file (in the child's space)."),
    model: str = typer.Option("smollm2-135m"),
    task: str = typer.Option("arith"),
    data_dir: Optional[Path] = typer.Option(None),
    split: str = typer.Option("test"),
    n: int = typer.Option(50, help="Items."),
    scale: str = typer.Option("absolute"),
    lambdas: str = typer.Option("paper"),
    batch_size: int = typer.Option(32),
    records: Optional[Path] = typer.Option(None, help="JSONL file to keep (and resume) records."),
    debug: bool = _DEBUG,
):
    """Accuracy of one model under one set of vectors across a λ grid (plus the λ = 0 baseline)."""
    from xsteer.evaluate import Evaluator, check_lambdas
    from xsteer.models import load_model
    from xsteer.records import RecordStore
    from xsteer.stats import accuracy_ci
    from xsteer.tasks import load_task
    from xsteer.vectors import SteeringVectors

    bridge = load_model(model)
    vecs = SteeringVectors.load(vectors, model=bridge)
    the_task = load_task(task, data_dir=data_dir)
    examples = the_task.split(split)[:n]
    ev = Evaluator(bridge, the_task, scale=scale, batch_size=batch_size, store=RecordStore(records))
    grid = [0.0] + check_lambdas(_lambdas(lambdas))
    by_lam = ev.sweep(examples, split, "sweep", vecs, grid)
    typer.echo("λ        accuracy [95% CI]")
    for lam, recs in by_lam.items():
        typer.echo(f"{lam:<8g} {accuracy_ci([r.correct for r in recs])}")


@app.command()
@_friendly
def report(run_dir: Path = typer.Argument(..., help="A run folder made by `xsteer run`."), debug: bool = _DEBUG):
    """Re-render report.md and figures from a saved run, without loading any model."""
    from xsteer.report import write_report
    from xsteer.results import TransferResult

    path = write_report(TransferResult.load(run_dir), run_dir)
    typer.echo(f"Report: {path}")


# ---- end of commands ----


@app.command()
@_friendly
def models(
    fetch: bool = typer.Option(False, "--fetch", help="Convert the embedded GGUFs now (once)."),
    debug: bool = _DEBUG,
):
    """List the embedded default models (and convert them with --fetch)."""
    from xsteer.models import EMBEDDED, load_model

    for name, m in EMBEDDED.items():
        typer.echo(f"{name:14} {m.role:6} {m.description}")
        if fetch:
            bridge = load_model(name)
            typer.echo(f"{'':14} ready: {bridge.cfg.n_layers} layers, width {bridge.cfg.d_model}")
