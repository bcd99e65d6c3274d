"""Command line: ``xsteer run / extract / sweep / report / models``."""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

_DEBUG = typer.Option(False, "--debug", help="Show full tracebacks.")

#: Config fields whose command-line form differs from the field: (option name, CLI type, to field).
_CLI_FORMS = {
    "task_mode": ("--mode", Optional[str], None),
    "data_dir": (None, Optional[Path], lambda v: None if v is None else str(v)),
    "lambdas": (None, str, lambda v: _lambdas(v)),
    "fidelity": (None, str, lambda v: [c.strip() for c in v.split(",") if c.strip()]),
    "schedule": (None, Optional[str], None),
}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "int | None": Optional[int],
          "str | None": Optional[str], "float | None": Optional[float]}


def _cli_default(name: str, value):
    """A config default as the command line writes it."""
    from xsteer.evaluate import PAPER_LAMBDAS

    if name == "lambdas":
        return "paper" if list(value) == list(PAPER_LAMBDAS) else ",".join(f"{x:g}" for x in value)
    if name == "fidelity":
        return ",".join(value)
    return value


def _config_parameters(exclude: tuple[str, ...] = ()) -> list:
    """One keyword parameter per ``TransferConfig`` field (its default and its line of
    ``OPTION_HELP``): the single definition of the options that ``run`` and ``grid`` share."""
    import inspect
    from dataclasses import MISSING, fields

    from xsteer.pipeline import OPTION_HELP, TransferConfig

    params = []
    for f in fields(TransferConfig):
        if f.name in exclude:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        flag, cli_type, _ = _CLI_FORMS[f.name] if f.name in _CLI_FORMS else (None, _TYPES[str(f.type)], None)
        decls = [flag] if flag else []
        if cli_type is bool:
            dashed = f.name.replace("_", "-")
            decls = [f"--{dashed}/--no-{dashed}"]
        option = typer.Option(_cli_default(f.name, default), *decls, help=OPTION_HELP[f.name])
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=cli_type))
    return params


def _with_config_options(exclude: tuple[str, ...] = ()):
    """Give a command every ``TransferConfig`` option (less ``exclude``); the command receives them
    converted to field values in its ``config`` keyword (a dict)."""
    import inspect

    def decorate(fn):
        own = inspect.signature(fn)
        names = [p.name for p in _config_parameters(exclude)]

        @functools.wraps(fn)
        def wrapper(**kwargs):
            config = {}
            for name in names:
                value = kwargs.pop(name)
                convert = _CLI_FORMS.get(name, (None, None, None))[2]
                config[name] = convert(value) if convert else value
            return fn(config=config, **kwargs)

        kept = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values() if p.name != "config"]
        wrapper.__signature__ = own.replace(parameters=[*_config_parameters(exclude), *kept])
        return wrapper

    return decorate


def _friendly(fn):
    """Turn exceptions into one line that names the problem (full traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs.get("debug"):
            return fn(*args, **kwargs)
        logging.getLogger("transformers").setLevel(logging.ERROR)
        warnings.showwarning = _one_line_warning
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except (ValueError, FileNotFoundError, OSError, KeyError, RuntimeError, ModuleNotFoundError) as err:
            text = err.args[0] if isinstance(err, KeyError) and err.args else err
            typer.secho(f"error: {' '.join(str(text).split())}", fg="red", err=True)
            raise typer.Exit(2) from None
        except Exception as err:  # anything else still gets one line; --debug shows where
            typer.secho(
                f"error: {type(err).__name__}: {' '.join(str(err).split())} (rerun with --debug for the traceback)",
                fg="red", err=True,
            )
            raise typer.Exit(2) from None

    return wrapper


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings on the command line: one line, without the source location."""
    typer.secho(f"warning: {' '.join(str(message).split())}", fg="yellow", err=True)


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
@_with_config_options()
def run(
    config: dict,
    out: Path = typer.Option(Path("runs/default"), help="Run folder; an interrupted run resumes from it."),
    force: bool = typer.Option(False, "--force", help="Start the run folder over when it holds a different run."),
    debug: bool = _DEBUG,
):
    """Concept fidelity first (readout, and steering for concepts with a judge; --fidelity), then the
    protocol: extract in the parent, transfer to the child, choose λ, test at λ* and by ITS, with
    controls. The report opens with what was found."""
    from analysis import write_run_figures
    from xsteer.pipeline import TransferConfig, run_transfer
    from xsteer.vectors import SteeringVectors

    cfg = TransferConfig(**config)
    typer.echo(f"xsteer run: {cfg.parent} → {cfg.child} on {cfg.task}; run folder {out}")
    result = run_transfer(cfg, out, force=force)
    write_run_figures(result, out / "figures")
    vectors = SteeringVectors.load(out / "vectors" / "parent")
    typer.echo(f"\nParent {cfg.parent}: {vectors.method} vectors ({len(vectors)} layers) in {out / 'vectors'}")
    typer.echo(_summary_table(vectors))
    typer.echo("\n" + (out / "report.md").read_text().split("## Random")[0].strip())
    typer.echo(f"\nReport: {out / 'report.md'}  (figures in {out / 'figures'}"
               + (f"; concept fidelity in {out / 'fidelity'})" if cfg.fidelity else ")"))


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
    from xsteer.checks import check_choice, check_int, check_task_name
    from xsteer.contrast import arithmetic_pairs, from_task
    from xsteer.extract import METHODS, extract_vectors
    from xsteer.models import check_model_spec, load_model
    from xsteer.runfolder import check_out_dir
    from xsteer.tasks import load_task

    check_model_spec(model)
    check_choice("method", method, METHODS)
    check_int("--n-pairs", n_pairs, 2)
    check_int("--seed", seed, 0)
    if task != "builtin":
        check_task_name(task)
    check_out_dir(out.parent)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; it must be a path stem like runs/vectors/parent.")
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
    import hashlib
    import json

    from xsteer.checks import check_choice, check_int, check_lambda_values
    from xsteer.evaluate import Evaluator, check_lambdas
    from xsteer.models import check_model_spec, load_model
    from xsteer.records import RecordStore
    from xsteer.stats import accuracy_ci
    from xsteer.storage import file_sha256
    from xsteer.tasks import load_task
    from xsteer.vectors import SteeringVectors

    check_model_spec(model)
    check_int("--n", n, 1)
    check_int("--batch-size", batch_size, 1)
    check_choice("scale", scale, ("absolute", "relative"))
    check_choice("split", split, ("train", "validation", "test"))
    grid = _lambdas(lambdas)
    check_lambda_values(grid)
    grid = [0.0] + check_lambdas(grid)
    vecs = SteeringVectors.load(vectors)  # a corrupt file fails here, before the model loads
    the_task = load_task(task, data_dir=data_dir)
    examples = the_task.split(split)[:n]
    key = None
    if records is not None:
        setting = [model, task, str(data_dir), split, scale, file_sha256(vectors.with_suffix(".safetensors"))]
        key = hashlib.sha256(json.dumps(setting).encode()).hexdigest()
    store = RecordStore(records, fingerprint=key)
    bridge = load_model(model)
    vecs.check_compatible(bridge)
    ev = Evaluator(bridge, the_task, scale=scale, batch_size=batch_size, store=store)
    by_lam = ev.sweep(examples, split, "sweep", vecs, grid)
    typer.echo("λ        accuracy [95% CI]")
    for lam, recs in by_lam.items():
        typer.echo(f"{lam:<8g} {accuracy_ci([r.correct for r in recs])}")


@app.command()
@_friendly
def report(run_dir: Path = typer.Argument(..., help="A run folder made by `xsteer run`."), debug: bool = _DEBUG):
    """Re-render report.md and figures from a saved run, without loading any model."""
    from analysis import write_run_figures
    from xsteer.report import write_report
    from xsteer.results import TransferResult

    result = TransferResult.load(run_dir)
    path = write_report(result, run_dir)
    write_run_figures(result, run_dir / "figures")
    typer.echo(f"Report: {path}")


_JUDGE = typer.Option(
    None, "--judge", help="A user judge for the concepts (repeatable): [CONCEPT=]module:NAME or "
                          "[CONCEPT=]path/to/file.py:NAME, NAME an object with .score(texts), a function texts -> "
                          "scores, or a class; without CONCEPT= it judges every concept that has no judge.")
_INSTRUCTION = typer.Option(
    None, help="Prompting baseline for concepts without one: an instruction appended to each neutral prompt, "
               "e.g. 'Answer formally.'")


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in _split(text)]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated numbers like 0.02,0.08,0.32, not {text!r}.") from None


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(x) for x in _split(text)]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated integers like 4,16, not {text!r}.") from None


def _concepts_with_judges(concepts: str, judges: Optional[list[str]], instruction: Optional[str], *, n: int,
                          seed: int, data_dir) -> list:
    """Concepts of a comma list, each with its judge: a built-in's own, or a user judge from --judge."""
    from xsteer.concepts import load_concept, load_judge

    names = _split(concepts)
    if not names:
        raise ValueError("--concepts is empty; give e.g. sentiment,language or a .jsonl file.")
    default, per = None, {}
    for spec in judges or []:
        target, sep, what = spec.partition("=")
        if sep:
            if target not in names and target not in [Path(x).stem for x in names]:
                raise ValueError(f"--judge {spec!r} names concept {target!r}, which is not in --concepts {names}.")
            per[target] = load_judge(what)
        elif default is None:
            default = load_judge(spec)
        else:
            raise ValueError("Give one --judge without CONCEPT= (it judges every concept without a judge), and "
                             "CONCEPT=SPEC for the others.")
    out = []
    for name in names:
        c = load_concept(name, n=n, seed=seed, data_dir=data_dir, judge=per.get(name) or per.get(Path(name).stem),
                         instruction=None)
        if c.judge is None and default is not None:
            c = load_concept(name, n=n, seed=seed, data_dir=data_dir, judge=default, instruction=instruction)
        elif instruction and c.instruction is None:
            c = load_concept(name, n=n, seed=seed, data_dir=data_dir, judge=c.judge, instruction=instruction)
        out.append(c)
    return out


@app.command()
@_friendly
def fidelity(
    parent: str = typer.Option("gemma-3-270m", help="Parent model (same forms as `run`)."),
    child: str = typer.Option("smollm2-135m", help="Child model."),
    concepts: str = typer.Option(
        "sentiment,language,arith_truth", help="Comma list: built-in names, task:<task>, or .jsonl paths."
    ),
    judge: Optional[list[str]] = _JUDGE,
    default_transfer: bool = typer.Option(True, "--default-transfer/--no-default-transfer",
                                          help="Read through the library's Transfer() (built-in corpus, each concept held "
                                               "out of its fit)."),
    layer_maps: str = typer.Option("greedy,proportional", help="Comma list: greedy, proportional, cka; compared "
                                   "beside the default, each with every adapter ('' for none)."),
    adapters: str = typer.Option("ridge,procrustes", help="Comma list: ridge, procrustes, identity, ... (fitted on "
                                 "the anchor states: task questions and the other concepts' texts)."),
    n: int = typer.Option(256, help="Pairs per concept (a quarter held out)."),
    method: str = typer.Option("mean_diff", help="Vector per layer: mean_diff or pca."),
    n_random: int = typer.Option(200, help="Random child directions for the null."),
    n_mapped_random: int = typer.Option(20, help="Random parent directions carried by each transfer (control)."),
    k_pairs: str = typer.Option("4,16", help="Pair counts of the child_own-on-k-pairs control."),
    steering: bool = typer.Option(False, "--steering/--no-steering", help="Also run the behavioural dose-response."),
    reverse: bool = typer.Option(False, "--reverse", help="Also child -> parent, from the same activations."),
    anchor_questions: int = typer.Option(256, help="ARC-Easy train questions added to the anchors (0: none)."),
    anchors_mode: str = typer.Option("leave_concept_out", "--anchors", help="leave_concept_out: each concept's "
                                     "transfer is fitted without its own texts; shared: with them."),
    out: Path = typer.Option(Path("runs/fidelity"), help="Folder for report.md, report.json and figures."),
    cache: Optional[Path] = typer.Option(None, help="Activation cache (default OUT/cache): an interrupted run resumes."),
    seed: int = typer.Option(0),
    data_dir: Optional[Path] = typer.Option(None, help="Benchmark data (task concepts, anchor questions)."),
    debug: bool = _DEBUG,
):
    """Readout fidelity: held-out AUROC of transferred vs. child-own, random, mapped-random,
    wrong-concept and few-pair child-own directions, per concept and child layer, through Transfer()
    and each layer map × adapter compared beside it, averaged over all child layers; flags concepts
    the parent does not hold."""
    from analysis.export import save_figure
    from xsteer.figures import readout_figure
    from xsteer.fidelity import (cached_model_acts, default_anchor_texts, fidelity_from_acts, fit_default_transfers,
                                 write_report)
    from xsteer.fidelity.readout import check_anchor_mode
    from xsteer.fidelity.report import format_summary_table
    from xsteer.fidelity.steering import steering_fidelity
    from xsteer.models import load_model

    check_anchor_mode(anchors_mode)
    ks = _ints(k_pairs, "--k-pairs")
    the_concepts = _concepts_with_judges(concepts, judge, None, n=n, seed=seed, data_dir=data_dir)
    anchors, about = default_anchor_texts(the_concepts, data_dir=data_dir, n_task=anchor_questions, seed=seed)
    models: dict = {}

    def get(spec: str):
        if spec not in models:
            models[spec] = load_model(spec)
        return models[spec]

    acts = {
        name: cached_model_acts(name, the_concepts, anchors, cache_dir=cache or out / "cache", load=get, progress=True)
        for name in (parent, child)
    }
    directions = [(parent, child)] + ([(child, parent)] if reverse else [])
    if not default_transfer and not (_split(layer_maps) and _split(adapters)):
        raise ValueError("Nothing to read through: --no-default-transfer with no layer map or adapter. Fix: drop "
                         "--no-default-transfer, or name --layer-maps and --adapters.")
    for p_name, c_name in directions:
        fitted = fit_default_transfers(get(p_name), get(c_name), the_concepts, data_dir=data_dir,
                                       progress=True) if default_transfer else None
        result = fidelity_from_acts(acts[p_name], acts[c_name], the_concepts, layer_maps=_split(layer_maps),
                                    adapters=_split(adapters), transfers=fitted, anchor_texts=anchors, anchors=about,
                                    anchor_mode=anchors_mode, method=method, n_random=n_random,
                                    n_mapped_random=n_mapped_random, k_pairs=ks, seed=seed)
        if steering:  # the behavioural half (it fills result.steering)
            result.steering = steering_fidelity(get(p_name), get(c_name), result, anchor_mode=anchors_mode, seed=seed,
                                                data_dir=data_dir)
        where = out if len(directions) == 1 else out / f"{p_name}_to_{c_name}".replace("/", "_")
        paths = write_report(result, where)
        for c in result.concepts:
            save_figure(readout_figure(result, c.concept.name), where / "figures" / f"readout_{c.concept.name.replace(':', '_')}")
        for flag in result.flags:
            typer.secho(f"warning: {flag}", fg="yellow")
        typer.echo(format_summary_table([result]))
        typer.echo(f"\nReport: {paths['markdown']}")


@app.command()
@_friendly
@_with_config_options(exclude=("parent", "child", "task", "fidelity"))
def grid(
    config: dict,
    parents: str = typer.Option(..., help="Comma list of parent models (same forms as `run --parent`)."),
    children: str = typer.Option(..., help="Comma list of child models."),
    tasks: str = typer.Option("arith", help="Comma list of tasks."),
    ray: Optional[str] = typer.Option(None, help="auto (running cluster), local (start one here) or HOST:PORT; "
                                                 "without it the cells run one after another here."),
    gpus_per_task: Optional[float] = typer.Option(None, help="GPUs per Ray task (default: from model sizes)."),
    memory: Optional[float] = typer.Option(None, help="GiB of memory per Ray task (default: from model sizes)."),
    gpu_memory: float = typer.Option(80.0, help="GiB per GPU, for sizing tasks from model sizes."),
    max_retries: int = typer.Option(2, help="Retries of a failed or lost task before its cell is reported failed."),
    dtype: str = typer.Option("float32", help="Model weights: float32, or bfloat16 on GPUs (large parents)."),
    out: Path = typer.Option(Path("runs/grid"), help="Grid folder: <task>/<parent>__<child> per cell."),
    debug: bool = _DEBUG,
):
    """Every parent × child × task cell (run folders that resume), in this process or on Ray; writes
    grid_summary.md (Table 1 with CIs)."""
    from xsteer.grid import GridSpec, run_grid
    from xsteer.pipeline import TransferConfig

    split = lambda s: [x.strip() for x in s.split(",") if x.strip()]
    base = TransferConfig(**config)
    spec = GridSpec(split(parents), split(children), split(tasks), base, dtype=dtype)
    typer.echo(f"xsteer grid: {len(spec.parents)} parents × {len(spec.children)} children × "
               f"{len(spec.tasks)} tasks {'on Ray ' + ray if ray else 'in this process'}; folder {out}")
    result = run_grid(spec, out, ray=ray, gpus_per_task=gpus_per_task, memory_gib=memory,
                      gpu_memory_gib=gpu_memory, max_retries=max_retries)
    typer.echo("\n" + result.summary_path.read_text())
    if result.failed:
        typer.secho(f"error: {len(result.failed)} cell(s) failed; rerun the same command to retry them "
                    "(finished work is kept).", fg="red", err=True)
        raise typer.Exit(1)


def _band(layers: Optional[str]) -> Optional[list[int]]:
    if not layers:
        return None
    lo, _, hi = layers.partition("-")
    try:
        return list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"--layers must be a band like 24-28 or one layer like 25, not {layers!r}.") from None


@app.command("steering-fidelity")
@_friendly
def steering_fidelity_cmd(
    parent: str = typer.Option("gemma-3-270m", help="Parent model (same forms as `run`)."),
    child: str = typer.Option("smollm2-135m", help="Child model."),
    concepts: str = typer.Option("sentiment,language", help="Comma list of concepts with a judge (built-in names or "
                                                              ".jsonl files with --judge)."),
    judge: Optional[list[str]] = _JUDGE,
    instruction: Optional[str] = _INSTRUCTION,
    lambdas: str = typer.Option("0.02,0.04,0.08,0.16,0.32", help="λ grid: fractions of the child's median residual norm."),
    layers: Optional[str] = typer.Option(None, help="Steered child layers, e.g. 8-13 (default: the most steerable band)."),
    prompts: int = typer.Option(16, help="Neutral prompts (of the built-in 24)."),
    n_random: int = typer.Option(10, help="Random child directions of equal norm."),
    n_mapped_random: Optional[int] = typer.Option(None, help="Random parent directions carried by the transfer "
                                                             "(default: --n-random)."),
    k_pairs: str = typer.Option("4,16", help="Pair counts of the child_own-on-k-pairs control (the exchange rate)."),
    prompting: bool = typer.Option(True, "--prompting/--no-prompting", help="The prompting baseline (the concept's "
                                                                          "instruction)."),
    side_effect_items: int = typer.Option(0, help="ARC-Easy items scored at each vector's operating λ (0: skip)."),
    tokens: int = typer.Option(32, help="New tokens per generation (greedy)."),
    where_prompts: int = typer.Option(8, help="Prompts for the where-to-steer band search."),
    where_lambdas: str = typer.Option("0.08,0.32", help="λ values for the band search."),
    out: Path = typer.Option(Path("runs/steering-fidelity"), help="Folder for steering.md, steering.json, figures."),
    seed: int = typer.Option(0),
    data_dir: Optional[Path] = typer.Option(None, help="Benchmark data (extra anchor questions, ARC-Easy)."),
    anchors_mode: str = typer.Option("leave_concept_out", "--anchors", help="leave_concept_out: each concept's "
                                     "transfer is fitted without its own texts; shared: with them."),
    reverse: bool = typer.Option(False, "--reverse", help="Swap the roles: the child's vectors into the parent."),
    operator: str = typer.Option("add", help="How every vector enters the stream (λ is its strength): add, project, "
                                 "clamp:VALUE, norm_preserving."),
    budget: Optional[float] = typer.Option(None, help="NLL increase (nats/token) at which shifts are compared "
                                           "(default: the largest both transferred and child_own reach)."),
    debug: bool = _DEBUG,
):
    """Behavioural steering fidelity: dose-response of transferred vs child_own, random, mapped_random,
    wrong_concept, few-pair child_own and prompting on neutral prompts, scored by judges that never
    see a vector (VADER, lingua, or yours via --judge) with the child's NLL as fluency cost."""
    from xsteer.figures import dose_response_figure
    from analysis.export import save_figure
    from xsteer.fidelity.dose import check_budget, check_lambda_grid
    from xsteer.fidelity.readout import check_anchor_mode
    from xsteer.fidelity.steering import format_markdown, steering_fidelity
    from xsteer.models import load_model
    from xsteer.operators import operator_from_spec

    check_anchor_mode(anchors_mode)
    operator_from_spec(operator)  # bad options fail before any model loads
    check_budget(budget)
    grid, where_grid, ks, band = (check_lambda_grid(_floats(lambdas, "--lambdas")),
                                  check_lambda_grid(_floats(where_lambdas, "--where-lambdas")),
                                  _ints(k_pairs, "--k-pairs"), _band(layers))
    the_concepts = _concepts_with_judges(concepts, judge, instruction, n=256, seed=seed, data_dir=data_dir)
    p, c = load_model(parent), load_model(child)
    if reverse:
        p, c = c, p
    result = steering_fidelity(
        p, c, the_concepts, lambdas=grid, layers=band, n_prompts=prompts, n_random=n_random,
        n_mapped_random=n_mapped_random, k_pairs=ks, prompting=prompting, side_effect_items=side_effect_items,
        max_new_tokens=tokens, where_prompts=where_prompts, where_lambdas=where_grid, anchor_mode=anchors_mode,
        seed=seed, data_dir=data_dir, operator=operator, budget=budget,
    )
    result.write(out)
    for r in result.results:
        for y in ("shift", "nll_increase"):
            save_figure(dose_response_figure(r, y), out / "figures" / f"dose_{r.concept}_{y}")
    typer.echo(format_markdown(result).split("\n## ")[0])
    typer.echo(f"\nReport: {out / 'steering.md'}")


@app.command()
@_friendly
def suite(
    parent: str = typer.Option("gemma-3-270m", help="Parent model (same forms as `run`)."),
    child: str = typer.Option("smollm2-135m", help="Child model."),
    concepts: str = typer.Option("sentiment,language", help="Comma list of concepts with a judge (built-in names or "
                                                              ".jsonl files with --judge)."),
    judge: Optional[list[str]] = _JUDGE,
    instruction: Optional[str] = _INSTRUCTION,
    estimators: str = typer.Option("default", help="Comma list of transfer estimators, each 'default' (Transfer()) "
                                                   "or LAYER_MAP+ADAPTER, e.g. proportional+ridge,greedy+procrustes."),
    quick: bool = typer.Option(False, "--quick/--full", help="Quick: a few minutes on CPU (few pairs, prompts, tokens, "
                                                             "λ); full: the table of docs/results.md."),
    directions: str = typer.Option("parent_to_child,child_to_parent", help="Comma list of directions."),
    side_effect_items: Optional[int] = typer.Option(None, help="ARC-Easy items at each operating λ (default: the mode's)."),
    out: Path = typer.Option(Path("runs/suite"), help="Folder for suite.md and suite.json."),
    seed: int = typer.Option(0),
    data_dir: Optional[Path] = typer.Option(None, help="Benchmark data (anchor questions, ARC-Easy)."),
    debug: bool = _DEBUG,
):
    """The fidelity suite: per estimator × concept × direction, readout AUROC over all child layers and
    steering efficiency at equal fluency beside every control, with anti-steerability and the ARC-Easy
    side effect; each concept held out of its transfer's anchors."""
    import json
    from dataclasses import replace

    from xsteer.fidelity.suite import DIRECTIONS, SuiteConfig, fidelity_suite
    from xsteer.models import load_model
    from xsteer.transfer import Transfer

    changes = {"seed": seed, **({"side_effect_items": side_effect_items} if side_effect_items is not None else {})}
    config = SuiteConfig.quick(**changes) if quick else replace(SuiteConfig(), **changes)
    wanted = _split(directions)
    unknown = [d for d in wanted if d not in DIRECTIONS]
    if unknown or not wanted:
        raise ValueError(f"--directions must be some of {','.join(DIRECTIONS)}, not {directions!r}.")
    specs = {}
    for name in _split(estimators):
        if name == "default":
            specs[name] = Transfer
            continue
        layer_map, sep, adapter = name.partition("+")
        if not sep:
            raise ValueError(f"Estimator {name!r} is not 'default' or LAYER_MAP+ADAPTER such as proportional+ridge.")
        specs[name] = Transfer(layer_map, adapter)  # a bad name fails here, before any model loads
    if not specs:
        raise ValueError("--estimators is empty; give e.g. default or proportional+ridge.")
    the_concepts = _concepts_with_judges(concepts, judge, instruction, n=config.n_pairs, seed=seed, data_dir=data_dir)
    result = fidelity_suite(load_model(parent), load_model(child), the_concepts, specs, config=config,
                            directions=wanted, data_dir=data_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.md").write_text(result.to_markdown(), encoding="utf-8")
    (out / "suite.json").write_text(json.dumps(result.to_dict(), indent=1, ensure_ascii=False, default=str),
                                    encoding="utf-8")
    typer.echo(result.to_markdown().split("\nSteering bands")[0])
    typer.echo(f"\nReport: {out / 'suite.md'}")


class _ExportRequest:
    """What `xsteer export` hands a format's writer: the vectors, λ and its scale, the output path,
    and the model (loaded on first use, only by formats that need it)."""

    def __init__(self, vectors, lam: float, scale: str, model_spec: Optional[str], layers, out: Path):
        self.vectors, self.lam, self.scale, self.model_spec, self.layers, self.out = (
            vectors, lam, scale, model_spec, layers, out,
        )
        self._model = None

    def model(self, why: str):
        """The model given by --model (checked against the vectors), or a one-line error saying why it is needed."""
        if self.model_spec is None:
            raise ValueError(f"{why} needs the model the vectors steer; pass --model (e.g. --model smollm2-135m).")
        if self._model is None:
            from xsteer.models import load_model

            self._model = load_model(self.model_spec)
            self.vectors.check_compatible(self._model)
        return self._model


def _export_lm_eval(req: _ExportRequest) -> tuple[Path, str]:
    from xsteer.interop.lm_eval import to_lm_eval

    model = req.model("--scale relative (λ × the median residual norm per layer)") if req.scale == "relative" else None
    if model is None and req.model_spec is not None:
        model = req.model("checking the vectors")
    path = to_lm_eval(req.vectors, req.out, req.lam, scale=req.scale, model=model, layers=req.layers)
    return path, ("lm_eval --model steered --model_args pretrained=<HF folder of the model>,"
                  f"steer_path={path} --tasks ...")


def _export_gguf(req: _ExportRequest) -> tuple[Path, str]:
    if req.scale != "absolute":
        raise ValueError(
            "--format gguf writes unit vectors that llama.cpp scales by one number for every layer; use "
            "--scale absolute (pass λ to llama.cpp), since relative λ differs per layer."
        )
    vectors = req.vectors if req.layers is None else req.vectors.select(req.layers)
    path = vectors.to_gguf(req.out)
    return path, f"llama-cli -m <model>.gguf --control-vector-scaled {path} {req.lam:g} ..."


def _export_peer(writer_name: str, usage: str):
    """An export entry for a writer of ``xsteer.interop.peers`` (λ folded into the vectors)."""

    def run(req: _ExportRequest) -> tuple[Path, str]:
        from xsteer.interop import peers

        model = req.model("--scale relative (λ × the median residual norm per layer)") if req.scale == "relative" else None
        if model is None and req.model_spec is not None:
            model = req.model("checking the vectors")
        path = getattr(peers, writer_name)(req.vectors, req.out, req.lam, scale=req.scale, model=model, layers=req.layers)
        return path, usage.format(path=path)

    return run


#: --format → writer(request) -> (path written, how to use it). Add an entry for a new format.
_EXPORT_FORMATS = {
    "lm-eval": _export_lm_eval,
    "gguf": _export_gguf,
    "repeng": _export_peer("to_repeng", "ControlModel(model, layers).set_control(ControlVector.import_gguf('{path}'), 1.0)"),
    "steering-vectors": _export_peer("to_steering_vectors", "with SteeringVector(**torch.load('{path}')).apply(model): ..."),
}


def _layer_list(text: Optional[str]) -> Optional[list[int]]:
    """'6-19' or '3,5,7' (or a mix, '1-3,8') → layers; None → every layer of the vectors."""
    if not text:
        return None
    layers: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            lo, dash, hi = part.partition("-")
            layers += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
    except ValueError:
        raise ValueError(f"--layers must look like 6-19 or 3,5,7, not {text!r}.") from None
    return sorted(set(layers))


@app.command()
@_friendly
def export(
    vectors: Path = typer.Option(..., help="xsteer vectors (.safetensors + .json, from `extract` or a run folder)."),
    format: str = typer.Option("lm-eval", "--format", help="lm-eval (the harness's `steered` model .pt), gguf (llama.cpp, unit vectors), repeng (GGUF, λ folded in) or steering-vectors (.pt)."),
    lam: float = typer.Option(1.0, help="Steering strength λ, folded into the file where the format allows."),
    scale: str = typer.Option("absolute", help="absolute (λ·v) or relative (λ·median‖h_l‖·v; needs --model)."),
    model: Optional[str] = typer.Option(None, help="The model the vectors steer (needed for --scale relative; checks width and depth)."),
    layers: Optional[str] = typer.Option(None, help="Only these layers, e.g. 6-19 or 3,5,7 (default: all)."),
    out: Path = typer.Option(..., help="File to write (.pt for lm-eval, .gguf for gguf)."),
    debug: bool = _DEBUG,
):
    """Write steering vectors at strength λ in another tool's format (lm-evaluation-harness, llama.cpp,
    repeng, steering-vectors)."""
    import math

    from xsteer.checks import check_choice
    from xsteer.models import check_model_spec
    from xsteer.vectors import SteeringVectors

    check_choice("format", format, tuple(_EXPORT_FORMATS))
    check_choice("scale", scale, ("absolute", "relative"))
    if not math.isfinite(lam):
        raise ValueError(f"--lam must be a finite number, not {lam}.")
    if model is not None:
        check_model_spec(model)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as steer.pt.")
    vecs = SteeringVectors.load(vectors)
    wanted = _layer_list(layers)
    if wanted is not None:
        missing = [l for l in wanted if l not in vecs.directions]
        if missing:
            raise ValueError(f"--layers {layers}: no vectors at layers {missing}; {vectors} has layers {vecs.layers}.")
    path, usage = _EXPORT_FORMATS[format](_ExportRequest(vecs, lam, scale, model, wanted, out))
    typer.echo(f"Wrote {format} steering file {path} ({len(wanted or vecs.layers)} layers, λ={lam:g}, scale={scale})")
    typer.echo(f"Use: {usage}")


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
