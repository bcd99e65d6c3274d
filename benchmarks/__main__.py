"""Benchmarks: every ratio is measured side by side in one run on the same model and inputs.

    python -m benchmarks [--quick] [--device cuda] [--out benchmarks/results.json]

1. sweep: the paper's loop (one λ at a time, one example at a time, ``TransformerBridge.generate``
   / one full forward per choice) vs xsteer's per-row-λ batched engine, same answers checked;
2. steering overhead: steered vs unsteered batched generation at batch 1, 8, 32 (the engine's
   decoding on the plain view; the bridge's generate for context), with the default add operator
   and with directional projection (``Project``) as one operator other than add;
3. extraction: ``collect_activations`` vs a bare Hugging Face forward with all hidden states, and
   load + 64-pair extraction time of both embedded models;
4. peers: the same sweeps through `repeng` and `steering-vectors` in their own venvs
   (``bash benchmarks/peer_runner/setup.sh`` first; skipped with a note when missing);
5. peak resident memory of the process after each part (and peak GPU memory on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch

from benchmarks.peer_sweep import peers
from xsteer.contrast import arithmetic_pairs
from xsteer.decode import Group, decode
from xsteer.evaluate import PAPER_LAMBDAS, Evaluator, _grid_rows
from xsteer.activations import collect_activations
from xsteer.extract import extract_vectors
from xsteer.models import load_model
from xsteer.operators import Project
from xsteer.plain import plain_view
from xsteer.steer import steer, steering_hooks
from xsteer.tasks import load_task


def _peak_mb() -> dict:
    peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        peak["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn):
    _sync()
    start = time.perf_counter()
    out = fn()
    _sync()
    return time.perf_counter() - start, out


def _engine_answers(engine: Evaluator, examples, vectors, grid) -> dict:
    by_lam = engine.sweep(examples, "test", "bench", vectors, grid)
    return {(r.example_id, lam): r.prediction for lam, recs in by_lam.items() for r in recs}


def _versus(paper_loop, ours) -> dict:
    """Time the paper's loop and xsteer's engine one after the other; compare their answers."""
    t_paper, a_paper = _timed(paper_loop)
    t_ours, a_ours = _timed(ours)
    same = sum(a_paper[k] == a_ours[k] for k in a_paper) / len(a_paper)
    return {"rows": len(a_paper), "paper_s": t_paper, "ours_s": t_ours, "speedup": t_paper / t_ours,
            "same_answers": same}


def sweep_generate(model, vectors, n_items: int, max_new_tokens: int) -> dict:
    """GSM8K-style generation over baseline + the 19-value grid."""
    task = load_task("arith", mode="generate", k_shot=2)
    examples = task.split("test")[:n_items]
    grid = [0.0, *PAPER_LAMBDAS]

    engine = Evaluator(model, task, batch_size=32, max_new_tokens=max_new_tokens, progress=False)

    def paper_loop():
        answers = {}
        for lam in grid:
            for ex in examples:  # the same prompt tokens as the engine (chat template, prefix + suffix)
                _, prefix, suffix = engine._prompt_ids(ex, chat=True)
                ids = torch.tensor([prefix + suffix], device=model.cfg.device)
                with steer(model, vectors, lam):
                    out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, verbose=False,
                                         stop_at_eos=True)
                answers[(ex.id, lam)] = task.extract(model.tokenizer.decode(out[0, ids.shape[1]:]))
        return answers

    return _versus(paper_loop, lambda: _engine_answers(engine, examples, vectors, grid))


def sweep_loglik(model, vectors, n_items: int) -> dict:
    """ARC-style multiple choice by log-likelihood over baseline + the grid."""
    task = load_task("arith", mode="loglik", k_shot=3)
    examples = task.split("test")[:n_items]
    grid = [0.0, *PAPER_LAMBDAS]

    engine = Evaluator(model, task, batch_size=64, progress=False)

    def paper_loop():
        preds = {}
        tok = model.tokenizer
        for lam in grid:
            for ex in examples:
                _, prefix, suffix = engine._prompt_ids(ex, chat=False)  # the engine's prompt tokens
                ctx = prefix + suffix
                scores = []
                for cont in task.continuations(ex):
                    ids = tok(cont, add_special_tokens=False)["input_ids"]
                    with torch.inference_mode(), steer(model, vectors, lam):
                        logits = model(torch.tensor([ctx + ids], device=model.cfg.device))
                    lp = torch.log_softmax(logits[0].float(), -1)
                    scores.append(sum(float(lp[len(ctx) - 1 + t, i]) for t, i in enumerate(ids)))
                preds[(ex.id, lam)] = ex.choices[max(range(len(scores)), key=scores.__getitem__)][0]
        return preds

    return _versus(paper_loop, lambda: _engine_answers(engine, examples, vectors, grid))


def prefix_reuse(model, n_items: int = 50, batch_size: int = 32, k_shot: int = 5) -> dict:
    """Prompt tokens computed per example for a 5-shot GSM8K grid sweep, with the engine's batches
    (λ-major rows, one prefix KV cache per distinct λ of a batch) vs every row computing its whole
    prompt. Counts tokens; needs $XSTEER_DATA_DIR."""
    if not os.environ.get("XSTEER_DATA_DIR"):
        return {"skipped": "set XSTEER_DATA_DIR to the benchmark data folder"}
    task = load_task("gsm8k", k_shot=k_shot)
    engine = Evaluator(model, task, batch_size=batch_size, progress=False)
    examples = task.split("test")[:n_items]
    grid = [0.0, *PAPER_LAMBDAS]
    ids = {ex.id: engine._prompt_ids(ex, chat=True)[1:] for ex in examples}
    rows = _grid_rows(examples, grid)
    groups = [part[i : i + batch_size] for part in engine._parts(rows, greedy=True)  # the engine's groups
              for i in range(0, len(part), batch_size)]
    full = reused = 0
    for group in groups:
        batch = [(r.example.id, r.lam) for r in group]
        full += sum(len(ids[e][0]) + len(ids[e][1]) for e, _ in batch)
        reused += len({lam for _, lam in batch}) * len(ids[batch[0][0]][0]) + sum(len(ids[e][1]) for e, _ in batch)
    return {"rows": len(rows), "prefix_tokens": len(ids[examples[0].id][0]),
            "tokens_per_row_full": full / len(rows), "tokens_per_row_reused": reused / len(rows),
            "ratio": full / reused}


def steering_overhead(model, vectors, batch_sizes=(1, 8, 32), new_tokens: int = 32) -> dict:
    """Steered vs unsteered greedy generation of a fixed number of tokens on the engine's path
    (``decode`` on the plain view), same batch; and, unsteered, for context: Hugging Face generate
    on the same modules and through the bridge."""
    view = plain_view(model)
    prompts = ["Question: What is 12 plus 30?\nAnswer:"]
    out = {}
    for b in batch_sizes:
        enc = model.tokenizer(prompts * b, return_tensors="pt", padding=True).to(model.cfg.device)
        lams = torch.full((b,), 0.5)

        def run(hooks_for):
            group = Group(list(range(b)), enc["input_ids"], enc["attention_mask"])
            list(decode(view, [group], hooks_for=hooks_for, max_new_tokens=new_tokens, finished=lambda tokens: None))

        def plain():
            run(lambda keys: [])

        def steered():
            run(lambda keys: steering_hooks(model, vectors, lams[keys]))

        def projected():
            run(lambda keys: steering_hooks(model, vectors, lams[keys], operator=Project()))

        def generate(hf):  # Hugging Face generate, unsteered
            with torch.inference_mode():
                hf.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                            pad_token_id=model.tokenizer.pad_token_id)

        plain()  # warm-up
        times = {"plain": [], "steered": [], "project": []}
        for _ in range(5):  # interleaved repeats, best of five
            times["plain"].append(_timed(plain)[0])
            times["steered"].append(_timed(steered)[0])
            times["project"].append(_timed(projected)[0])
        p, s, j = min(times["plain"]), min(times["steered"]), min(times["project"])
        out[str(b)] = {"plain_tok_s": b * new_tokens / p, "steered_tok_s": b * new_tokens / s,
                       "overhead": s / p - 1, "project_tok_s": b * new_tokens / j, "project_overhead": j / p - 1,
                       "hf_generate_tok_s": b * new_tokens / _timed(lambda: generate(view.model))[0],
                       "bridge_generate_tok_s": b * new_tokens / _timed(lambda: generate(model.original_model))[0]}
    return out


def extraction(model, n_pairs: int) -> dict:
    """Activation collection (all layers, last real token) vs a bare HF forward with hidden states."""
    pairs = arithmetic_pairs(n_pairs)
    texts = [p.positive for p in pairs] + [p.negative for p in pairs]

    def bare():
        with torch.inference_mode():
            for i in range(0, len(texts), 16):
                enc = model.tokenizer(texts[i:i + 16], return_tensors="pt", padding=True).to(model.cfg.device)
                model.original_model(**enc, output_hidden_states=True)

    bare()
    t_bare, _ = _timed(bare)
    t_ours, _ = _timed(lambda: collect_activations(model, texts, batch_size=16))
    t_extract, _ = _timed(lambda: extract_vectors(model, pairs, "pca"))
    return {"texts": len(texts), "bare_hf_s": t_bare, "collect_s": t_ours, "ratio": t_bare / t_ours,
            "extract_pca_s": t_extract}


def loading_and_extraction(device: str | None, n_pairs: int = 64, names=("gemma-3-270m", "smollm2-135m")) -> dict:
    """Load time of each embedded model (converted folder cached) and extraction of ``n_pairs`` pairs."""
    out = {}
    for name in names:
        t_load, model = _timed(lambda: load_model(name, device=device))
        t_extract, _ = _timed(lambda: extract_vectors(model, arithmetic_pairs(n_pairs), "pca"))
        out[name] = {"load_cached_s": t_load, f"extract_{n_pairs}_pairs_s": t_extract}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer items (a smoke run).")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when visible).")
    parser.add_argument("--n-gen", type=int, default=None, help="Items of the generation sweep (default 4).")
    parser.add_argument("--child-only", action="store_true", help="Load and time only the child model.")
    parser.add_argument("--no-peers", action="store_true", help="Skip repeng / steering-vectors.")
    parser.add_argument("--only", default=None,
                        help="Comma-separated parts to run (default: all); other parts already in --out are kept.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.json"))
    args = parser.parse_args()
    n_gen, n_ll, tokens = (2, 3, 24) if args.quick else (4, 8, 48)
    n_gen = args.n_gen or n_gen
    torch.manual_seed(0)
    model = load_model("smollm2-135m", device=args.device)
    vectors = extract_vectors(model, arithmetic_pairs(32), "pca")
    machine = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "device": str(model.cfg.device)}
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name()
    results = {"machine": machine}
    if args.only and args.out.exists():  # rerun some parts: keep the file's others
        results = {**json.loads(args.out.read_text()), **results}
    names = ("smollm2-135m",) if args.child_only else ("gemma-3-270m", "smollm2-135m")
    for name, fn in [
        ("loading_and_extraction", lambda: loading_and_extraction(args.device, names=names)),
        ("extraction", lambda: extraction(model, 32)),
        ("prefix_reuse", lambda: prefix_reuse(model)),
        ("steering_overhead", lambda: steering_overhead(model, vectors)),
        ("sweep_loglik", lambda: sweep_loglik(model, vectors, n_ll)),
        ("sweep_generate", lambda: sweep_generate(model, vectors, n_gen, tokens)),
        *([] if args.no_peers else [("peers", lambda: peers(model, vectors, n_gen, n_ll, tokens))]),
    ]:
        if args.only and name not in args.only.split(","):
            continue
        results[name] = fn()
        results[name].update(_peak_mb())
        print(name, json.dumps(results[name], indent=1), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))  # after every part: survives a kill
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
