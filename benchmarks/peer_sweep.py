"""Peers on the same sweep: the λ grid of ``sweep_generate`` / ``sweep_loglik`` (benchmarks/__main__.py)
run through `repeng` and `steering-vectors`, each in its own virtual environment (they pin older
transformers / numpy than xsteer), one λ at a time as their APIs allow, next to xsteer's per-row-λ
``Evaluator.sweep`` on the same rows and prompt tokens, in one run.

Set-up once: ``bash benchmarks/peer_runner/setup.sh`` (creates .venv-repeng and
.venv-steering-vectors in the repo root). A tiny run::

    from xsteer.contrast import arithmetic_pairs
    from xsteer.extract import extract_vectors
    from xsteer.models import load_model
    from benchmarks.peer_sweep import peers

    model = load_model("smollm2-135m")
    vectors = extract_vectors(model, arithmetic_pairs(32), "pca")
    print(peers(model, vectors, n_gen=1, n_ll=2, max_new_tokens=16))

The host writes the prompt token ids (and, for log-likelihood, the continuation ids and choice
labels), the vectors and the grid to a temporary job; ``peer_runner/run_peer.py`` runs the sweep in
the peer's venv and returns generated token ids / choice scores, which are decoded and turned into
answers here with the task's own ``extract`` / argmax. ``peer_s`` is timed inside the peer process
with the model already loaded and warmed by one unsteered forward (``load_s`` and ``warmup_s`` are
reported apart); ``ours_s`` is ``Evaluator.sweep`` on the already loaded model, same batch sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from xsteer.evaluate import PAPER_LAMBDAS, Evaluator
from xsteer.models import EMBEDDED, _convert_gguf
from xsteer.tasks import load_task

__all__ = ["PEERS", "peers"]

#: Peer name -> virtual environment (relative to the repo root) made by peer_runner/setup.sh.
PEERS = {"repeng": ".venv-repeng", "steering-vectors": ".venv-steering-vectors"}
ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "peer_runner" / "run_peer.py"
SKIPPED = {"skipped": "run benchmarks/peer_runner/setup.sh"}
GEN_BATCH, LL_BATCH = 32, 64  # as sweep_generate / sweep_loglik


def model_folder(model) -> Path:
    """The plain Hugging Face folder ``model`` was loaded from (what any transformers can read)."""
    path = Path(str(getattr(model.original_model, "name_or_path", "") or ""))
    if (path / "config.json").exists() and (path / "model.safetensors").exists():
        return path
    name = getattr(model.cfg, "model_name", None)
    if name in EMBEDDED:
        return _convert_gguf(EMBEDDED[name].locate())
    raise ValueError(f"Cannot find the Hugging Face folder of {name!r}; pass model_dir=.")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _generate_part(model, vectors, n: int, max_new_tokens: int, grid):
    """Items and prompt ids exactly as ``sweep_generate`` feeds them, and our timed sweep."""
    task = load_task("arith", mode="generate", k_shot=2)
    examples = task.split("test")[:n]
    engine = Evaluator(model, task, batch_size=GEN_BATCH, max_new_tokens=max_new_tokens, progress=False)
    items = []
    for ex in examples:
        _, prefix, suffix = engine._prompt_ids(ex, chat=True)  # chat template, prefix + suffix
        items.append({"id": ex.id, "prompt_ids": prefix + suffix})
    ours_s, by_lam = _timed(lambda: engine.sweep(examples, "test", "bench", vectors, grid))
    ours = {(r.example_id, lam): (r.prediction, r.output) for lam, recs in by_lam.items() for r in recs}
    sweep = {"mode": "generate", "batch_size": GEN_BATCH, "max_new_tokens": engine.max_new_tokens,
             "stop_strings": task.stop_strings() or None, "items": items}
    return task, sweep, ours_s, ours


def _loglik_part(model, vectors, n: int, grid):
    """Items, context and continuation ids exactly as ``sweep_loglik``, and our timed sweep."""
    task = load_task("arith", mode="loglik", k_shot=3)
    examples = task.split("test")[:n]
    tok = model.tokenizer
    engine = Evaluator(model, task, batch_size=LL_BATCH, progress=False)
    items = []
    for ex in examples:
        _, prefix, suffix = engine._prompt_ids(ex, chat=False)  # plain format, prefix + suffix
        items.append({"id": ex.id, "prompt_ids": prefix + suffix,
                      "continuations": [tok(c, add_special_tokens=False)["input_ids"] for c in task.continuations(ex)],
                      "labels": [label for label, _ in ex.choices]})
    ours_s, by_lam = _timed(lambda: engine.sweep(examples, "test", "bench", vectors, grid))
    ours = {(r.example_id, lam): (r.prediction, r.meta["sum"]) for lam, recs in by_lam.items() for r in recs}
    return task, {"mode": "loglik", "batch_size": LL_BATCH, "items": items}, ours_s, ours


def _run_peer(name: str, job: dict, tmp: Path, timeout_s: float | None) -> dict:
    python = ROOT / PEERS[name] / "bin" / "python"
    if not python.exists():
        return dict(SKIPPED)
    job_path, out_path = tmp / f"job-{name}.json", tmp / f"out-{name}.json"
    job_path.write_text(json.dumps({**job, "peer": name}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONNOUSERSITE="1")
    start = time.perf_counter()
    try:
        proc = subprocess.run([str(python), str(RUNNER), str(job_path), str(out_path)], cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s} s"}
    process_s = time.perf_counter() - start
    if proc.returncode != 0 or not out_path.exists():
        return {"error": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
    result = json.loads(out_path.read_text())
    result["process_s"] = process_s
    return result


def _compare(mode: str, task, sweep_out: dict, ours: dict, ours_s: float, items: list[dict], decode) -> dict:
    """Peer rows vs ours: answers via the task's extract (generate) or argmax of scores (loglik)."""
    labels = {it["id"]: it.get("labels") for it in items}
    same, same_text, diffs, mismatches = 0, 0, [], []
    for row in sweep_out["rows"]:
        key = (row["id"], float(row["lam"]))
        ours_pred, ours_raw = ours[key]
        if mode == "generate":
            text = decode(row["new_tokens"])
            pred = task.extract(text)
            same_text += text == ours_raw
        else:
            scores = row["scores"]
            pred = labels[row["id"]][max(range(len(scores)), key=scores.__getitem__)]
            diffs.append(max(abs(a - b) for a, b in zip(scores, ours_raw)))
        same += pred == ours_pred
        if pred != ours_pred and len(mismatches) < 5:
            mismatches.append({"id": row["id"], "lam": row["lam"], "ours": ours_pred, "peer": pred,
                               **({"ours_text": ours_raw, "peer_text": text} if mode == "generate" else
                                  {"ours_scores": ours_raw, "peer_scores": row["scores"]})})
    n = len(sweep_out["rows"])
    per_lam = list(sweep_out["per_lambda_s"].values())
    out = {"rows": n, "peer_s": sweep_out["sweep_s"], "ours_s": ours_s, "speedup": sweep_out["sweep_s"] / ours_s,
           "same_answers": same / n, "peer_peak_rss_mb": sweep_out["peak_rss_mb"],
           "peer_s_per_lambda": {"min": min(per_lam), "max": max(per_lam)}}
    if "peak_gpu_mb" in sweep_out:
        out["peer_peak_gpu_mb"] = sweep_out["peak_gpu_mb"]
    # how far steering itself moved our outputs from λ = 0: the scale that the agreement is read on
    base = {k[0]: raw for k, (_, raw) in ours.items() if k[1] == 0.0}
    steered = [(k[0], raw) for k, (_, raw) in ours.items() if k[1] != 0.0 and k[0] in base]
    if mode == "generate":
        out["same_text"] = same_text / n
        if steered:
            out["ours_text_changed_by_steering"] = sum(raw != base[i] for i, raw in steered) / len(steered)
    else:
        out["max_abs_score_diff"] = max(diffs)
        if steered:
            out["ours_max_score_shift_by_steering"] = max(
                abs(a - b) for i, raw in steered for a, b in zip(raw, base[i]))
    if mismatches:
        out["mismatches"] = mismatches
    return out


def peers(model, vectors, n_gen: int, n_ll: int, max_new_tokens: int, *,
          names=tuple(PEERS), lambdas=None, model_dir: str | os.PathLike | None = None,
          timeout_s: float | None = None) -> dict:
    """The baseline + 19-value paper grid on ``n_gen`` generation and ``n_ll`` log-likelihood items,
    through xsteer's engine and each peer in ``names``; per peer and mode: rows, peer_s, ours_s,
    speedup (peer_s / ours_s), same_answers, peer_peak_rss_mb (plus same_text or
    max_abs_score_diff, and the first mismatches if any). A peer whose venv is missing is
    ``{"skipped": ...}``; one whose process fails is ``{"error": ...}``. ``lambdas`` replaces the
    grid (a smoke run); ``names`` picks peers.
    """
    grid = [float(l) for l in lambdas] if lambdas is not None else [0.0, *PAPER_LAMBDAS]
    folder = Path(model_dir) if model_dir else model_folder(model)
    vectors.check_compatible(model)
    parts = []
    if n_gen > 0:
        parts.append(("generate", *_generate_part(model, vectors, n_gen, max_new_tokens, grid)))
    if n_ll > 0:
        parts.append(("loglik", *_loglik_part(model, vectors, n_ll, grid)))
    if not parts:
        raise ValueError("Nothing to run: n_gen and n_ll are both 0.")
    decode = lambda ids: model.tokenizer.decode(ids, skip_special_tokens=True)  # as Evaluator does

    results: dict = {"grid": grid, "model_dir": str(folder), "layers": vectors.layers, "device": str(model.cfg.device),
                     "ours": {mode: {"rows": len(ours), "ours_s": s} for mode, _, _, s, ours in parts}}
    with tempfile.TemporaryDirectory(prefix="xsteer-peers-") as tmp:
        tmp = Path(tmp)
        from safetensors.torch import save_file

        save_file({f"layer.{l}": v.contiguous().float() for l, v in vectors.directions.items()},
                  str(tmp / "vectors.safetensors"))
        job = {"model_dir": str(folder), "vectors": str(tmp / "vectors.safetensors"), "layers": vectors.layers,
               "lambdas": grid, "threads": torch.get_num_threads(), "device": str(model.cfg.device),
               "pad_token_id": model.tokenizer.pad_token_id,
               "sweeps": [sweep for _, _, sweep, _, _ in parts]}
        for name in names:
            out = _run_peer(name, job, tmp, timeout_s)
            if "sweeps" not in out:
                results[name] = out
                continue
            entry = {"versions": out["versions"], "load_s": out["load_s"], "warmup_s": out["warmup_s"],
                     "process_s": out["process_s"], "process_peak_rss_mb": out["process_peak_rss_mb"]}
            for (mode, task, sweep, ours_s, ours), sweep_out in zip(parts, out["sweeps"]):
                entry[mode] = _compare(mode, task, sweep_out, ours, ours_s, sweep["items"], decode)
            results[name] = entry
    return results


if __name__ == "__main__":  # python -m benchmarks.peer_sweep [n_gen n_ll max_new_tokens]
    from xsteer.contrast import arithmetic_pairs
    from xsteer.extract import extract_vectors
    from xsteer.models import load_model

    n_gen, n_ll, tokens = (int(a) for a in (sys.argv[1:4] if len(sys.argv) > 3 else (1, 2, 16)))
    torch.manual_seed(0)
    m = load_model("smollm2-135m")
    print(json.dumps(peers(m, extract_vectors(m, arithmetic_pairs(32), "pca"), n_gen, n_ll, tokens), indent=1))
