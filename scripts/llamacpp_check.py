"""llama.cpp runs xsteer's exported control vector as xsteer steers: an opt-in runtime check.

    bash scripts/build_llamacpp.sh && .venv/bin/python scripts/llamacpp_check.py   # or: make interop

The embedded SmolLM2-135M GGUF runs in llama.cpp (``llama-debug --save-logits`` for the next-token
logits of a prompt, ``llama-completion`` for greedy continuations), unsteered and with control
vectors written by ``xsteer.interop.to_llamacpp`` (λ folded in, loaded by llama.cpp's own
``--control-vector-scaled FILE:1``). xsteer steers the same weights, dequantized to fp32, with
``steer``. Compared over a set of prompts: the next-token log-probability *shift* (steered minus
unsteered, all vocabulary) — correlation and relative error —, top-1 agreement of the steered next
token, and how many greedy continuations match. Quantization (llama.cpp computes in Q4_1 with 8-bit
activations, xsteer in fp32) perturbs both sides alike, so the unsteered logits are compared too, as
the floor. ``--f32`` also runs an F32 copy of the GGUF (made once with ``llama-quantize
--allow-requantize``, if that tool was built) to separate the steering from quantization noise.

Two vectors: the mean-difference sentiment vector (``xsteer.concepts`` "sentiment") and a seeded
random unit direction, both on blocks BAND at λ·m_l (relative scale). The layer convention is tested
by writing each vector twice: "same" puts xsteer layer l into ``direction.{l}``, "shifted" into
``direction.{l+1}`` (the hypothesis that llama.cpp adds ``direction.{k}`` after block k-1). A probe
on the last block alone decides it sharply: under "same" its shifted file names ``direction.30``,
which a 30-block model ignores.

Writes ``<out>/results.json`` and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from xsteer.interop.llamacpp import to_llamacpp, write_control_vector  # noqa: E402
from xsteer.interop._raw import scaled  # noqa: E402
from xsteer.models import embedded_gguf_path, load_model  # noqa: E402
from xsteer.steer import steer  # noqa: E402
from xsteer.vectors import SteeringVectors  # noqa: E402

BAND = list(range(8, 20))  # blocks 8..19 of SmolLM2's 30
LAM = {"sentiment": 0.1, "random": 0.25}  # λ·m_l, relative to the median residual norm
PROBE_LAM = 1.0

PROMPTS = [
    "The movie I watched last night was",
    "My experience at the restaurant was",
    "I think the new phone is",
    "The weather today feels",
    "Honestly, the service at this hotel",
    "When I opened the present, I felt",
    "The concert last weekend was",
    "Our trip to the mountains turned out",
    "The book's ending made me",
    "Working with this team has been",
    "The food at the party tasted",
    "After reading the reviews, I decided the product",
    "Question: What is the capital of France?\nAnswer:",
    "The cat sat on the",
    "In the morning, she usually",
    "The best way to learn a language is",
]


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


class LlamaCpp:
    def __init__(self, bin_dir: Path, model: Path, threads: int):
        self.bin, self.model, self.threads = bin_dir, model, threads
        self.work = Path(tempfile.mkdtemp(prefix="xsteer-llamacpp-"))

    def _common(self, cvec: Path | None) -> list[str]:
        args = ["-m", str(self.model), "-t", str(self.threads), "-c", "512", "--no-warmup"]
        if cvec is not None:
            args += ["--control-vector-scaled", f"{cvec}:1"]
        return args

    def next_logits(self, prompt: str, cvec: Path | None) -> tuple[np.ndarray, list[int]]:
        out = self.work / "logits"
        shutil.rmtree(out, ignore_errors=True)
        sh([str(self.bin / "llama-debug"), *self._common(cvec), "-p", prompt, "--save-logits",
            "--logits-output-dir", str(out)])
        stem = f"llamacpp-{self.model.stem}"
        logits = np.fromfile(out / f"{stem}.bin", dtype=np.float32)
        tokens = np.fromfile(out / f"{stem}-tokens.bin", dtype=np.int32).tolist()
        return logits, tokens

    def greedy(self, prompt: str, n: int, cvec: Path | None) -> str:
        proc = sh([str(self.bin / "llama-completion"), *self._common(cvec), "-p", prompt, "-n", str(n),
                   "--temp", "0", "--top-k", "1", "-no-cnv", "--no-display-prompt", "--simple-io", "-s", "0"],
                  stdin=subprocess.DEVNULL)
        text = proc.stdout  # the continuation, then " [end of text]\n" at EOS, then "\n\n" at exit
        text = text[:-2] if text.endswith("\n\n") else text
        return text[: -len(" [end of text]\n")] if text.endswith(" [end of text]\n") else text


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


@torch.inference_mode()
def xsteer_logits(model, tokens: list[int]) -> np.ndarray:
    return model(torch.tensor([tokens]))[0, -1].double().numpy()


@torch.inference_mode()
def xsteer_greedy(model, tokens: list[int], n: int, eos: set[int]) -> list[int]:
    seq, new = list(tokens), []
    for _ in range(n):
        nxt = int(model(torch.tensor([seq]))[0, -1].argmax())
        if nxt in eos:
            break
        seq.append(nxt)
        new.append(nxt)
    return new


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 where one side is constant (e.g. a control vector llama.cpp ignored)."""
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def compare(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """pairs: (llama base, llama steered, xsteer base, xsteer steered) next-token logits per prompt."""
    c, rel, top1, moved, top1_base = [], [], [], [], []
    for lb, ls, xb, xs in pairs:
        dl, dx = log_softmax(ls) - log_softmax(lb), log_softmax(xs) - log_softmax(xb)
        c.append(corr(dl, dx))
        rel.append(float(np.abs(dl - dx).mean() / max(np.abs(dx).mean(), 1e-12)))
        top1.append(int(ls.argmax() == xs.argmax()))
        moved.append(int(xs.argmax() != xb.argmax()))
        top1_base.append(int(lb.argmax() == xb.argmax()))
    return {"shift_corr_mean": float(np.mean(c)), "shift_corr_min": float(np.min(c)),
            "shift_rel_err_mean": float(np.mean(rel)), "steered_top1_agree": float(np.mean(top1)),
            "xsteer_top1_changed_by_steering": float(np.mean(moved)), "n": len(pairs)}


def f32_copy(bin_dir: Path, model: Path, dest: Path) -> Path | None:
    quant = bin_dir / "llama-quantize"
    if not quant.exists():
        return None
    target = dest / f"{model.stem.split('.')[0]}.F32.gguf"
    if not target.exists():
        sh([str(quant), "--allow-requantize", str(model), str(target), "F32"])
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(REPO / ".llamacpp" / "bin"))
    ap.add_argument("--out", default=str(REPO / "runs" / "interop_llamacpp"))
    ap.add_argument("--threads", type=int, default=1,
                    help="llama.cpp threads (1 is fastest on a small, busy CPU: no spinning on barriers)")
    ap.add_argument("--pairs", type=int, default=64, help="sentiment contrast pairs for the mean difference")
    ap.add_argument("--tokens", type=int, default=16, help="greedy continuation length")
    ap.add_argument("--prompts", type=int, default=len(PROMPTS))
    ap.add_argument("--f32", action="store_true", help="also run an F32 copy of the GGUF (needs llama-quantize)")
    args = ap.parse_args()
    bin_dir, out = Path(args.bin), Path(args.out)
    for tool in ("llama-debug", "llama-completion"):
        if not (bin_dir / tool).exists():
            sys.exit(f"{bin_dir / tool} is missing; build it first: bash scripts/build_llamacpp.sh")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    prompts = PROMPTS[: args.prompts]

    gguf_q = embedded_gguf_path("smollm2-135m")
    model = load_model("smollm2-135m", device="cpu")
    depth, width = int(model.cfg.n_layers), int(model.cfg.d_model)
    tok = model.tokenizer
    eos = {i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None}

    # ---- the vectors (xsteer side), exported as llama.cpp control vectors
    from xsteer.concepts import load_concept
    from xsteer.extract import extract_vectors

    pairs = load_concept("sentiment").pairs[: args.pairs]
    say(f"extracting the sentiment vector from {len(pairs)} pairs")
    sentiment = extract_vectors(model, pairs, "mean_diff", layers=BAND, seed=0)
    g = torch.Generator().manual_seed(0)
    random_v = SteeringVectors.from_raw({l: torch.randn(width, generator=g) for l in BAND},
                                        model_name="smollm2-135m", d_model=width, n_layers=depth, method="random", seed=0)
    probe = SteeringVectors.from_raw({depth - 1: sentiment[BAND[-1]]}, model_name="smollm2-135m", d_model=width,
                                     n_layers=depth, method="probe")
    cases = {
        "sentiment": (sentiment, LAM["sentiment"]),
        "random": (random_v, LAM["random"]),
        f"probe_last_block_{depth - 1}": (probe, PROBE_LAM),
    }
    cv_dir = out / "control_vectors"
    files: dict[str, dict[str, Path]] = {}
    for name, (vec, lam) in cases.items():
        raw = scaled(vec, lam, scale="relative", model=model)
        files[name] = {
            "same": to_llamacpp(vec, cv_dir / f"{name}.same.gguf", lam, scale="relative", model=model),
            # hypothesis B: direction.{k} is added after block k-1, so xsteer's layer l goes to k = l+1
            "shifted": write_control_vector(cv_dir / f"{name}.shifted.gguf", {l + 1: v for l, v in raw.items()},
                                            "smollm2-135m"),
        }

    results: dict = {"model": str(gguf_q.name), "band": BAND, "sentiment_pairs": len(pairs), "lambda_relative": LAM, "probe_lambda": PROBE_LAM,
                     "prompts": prompts, "runs": {}}
    weights = {"Q4_1": gguf_q}
    if args.f32:
        f32 = f32_copy(bin_dir, gguf_q, out)
        if f32 is None:
            print("llama-quantize not built; skipping --f32 (TARGETS in build_llamacpp.sh)", file=sys.stderr)
        else:
            weights["F32"] = f32

    memo: dict = {}  # xsteer's side does not depend on llama.cpp's weights: computed once

    def ours(kind: str, name: str | None, toks: list[int]):
        key = (kind, name, tuple(toks))
        if key not in memo:
            vec, lam = cases[name] if name else (None, 0.0)
            fn = xsteer_logits if kind == "logits" else lambda m, t: xsteer_greedy(m, t, args.tokens, eos)
            with steer(model, vec, lam, scale="relative") if name else contextlib.nullcontext():
                memo[key] = fn(model, toks)
        return memo[key]

    for wname, wpath in weights.items():
        say(f"{wname}: next-token logits, unsteered and with {len(cases)} vectors x 2 layer mappings")
        cpp = LlamaCpp(bin_dir, wpath, args.threads)
        run: dict = {}
        t0 = time.perf_counter()
        base_l, base_x, tokens = [], [], []
        for p in prompts:
            lg, toks = cpp.next_logits(p, None)
            base_l.append(lg)
            tokens.append(toks)
            base_x.append(ours("logits", None, toks))
        hf_tokens = [tok(p, add_special_tokens=True)["input_ids"] for p in prompts]
        run["same_tokens_as_hf_tokenizer"] = float(np.mean([a == b for a, b in zip(tokens, hf_tokens)]))
        run["unsteered"] = {
            "logit_corr_mean": float(np.mean([corr(a, b) for a, b in zip(base_l, base_x)])),
            "top1_agree": float(np.mean([int(a.argmax() == b.argmax()) for a, b in zip(base_l, base_x)])),
        }
        for name in cases:
            steered_x = [ours("logits", name, toks) for toks in tokens]
            for mapping, path in files[name].items():
                steered_l = [cpp.next_logits(p, path)[0] for p in prompts]
                run[f"{name}/{mapping}"] = compare(list(zip(base_l, steered_l, base_x, steered_x)))
        run["logits_s"] = time.perf_counter() - t0

        # greedy continuations: unsteered and with the "same" files of the two band vectors
        say(f"{wname}: greedy continuations ({args.tokens} tokens)")
        t0 = time.perf_counter()
        greedy: dict = {}
        for name in (None, "sentiment", "random"):
            exact, prefix, examples = 0, [], []
            for p, toks in zip(prompts, tokens):
                text_l = cpp.greedy(p, args.tokens, files[name]["same"] if name else None)
                new_x = ours("greedy", name, toks)
                text_x = tok.decode(new_x)
                new_l = tok(text_l, add_special_tokens=False)["input_ids"]
                same = text_l == text_x
                exact += same
                k = next((i for i, (a, b) in enumerate(zip(new_l, new_x)) if a != b), min(len(new_l), len(new_x)))
                prefix.append(k if not same else len(new_x))
                if len(examples) < 3:
                    examples.append({"prompt": p, "llamacpp": text_l, "xsteer": text_x})
            greedy[name or "unsteered"] = {"exact_match": f"{exact}/{len(prompts)}",
                                           "mean_common_prefix_tokens": float(np.mean(prefix)),
                                           "examples": examples}
        run["greedy"] = greedy
        run["greedy_s"] = time.perf_counter() - t0
        results["runs"][wname] = run

    results["total_s"] = time.perf_counter() - t_start
    info = REPO / ".llamacpp" / "build-info.json"
    if info.exists():
        results["build"] = json.loads(info.read_text())
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(summary(results))
    print(f"\nwritten: {out / 'results.json'}")


def summary(r: dict) -> str:
    lines = []
    for wname, run in r["runs"].items():
        lines.append(f"\n### {r['model']} run as {wname} in llama.cpp vs xsteer on fp32-dequantized weights\n")
        u = run["unsteered"]
        lines.append(f"unsteered: logit corr {u['logit_corr_mean']:.4f}, top-1 agree {u['top1_agree']:.2f}; "
                     f"prompt tokens equal to the HF tokenizer's: {run['same_tokens_as_hf_tokenizer']:.2f}\n")
        lines.append("| vector | mapping | shift corr (mean / min) | shift rel. err | steered top-1 agree | "
                     "top-1 changed by steering |")
        lines.append("|---|---|---|---|---|---|")
        for key, m in run.items():
            if "/" not in key:
                continue
            name, mapping = key.split("/")
            lines.append(f"| {name} | {mapping} | {m['shift_corr_mean']:.4f} / {m['shift_corr_min']:.4f} | "
                         f"{m['shift_rel_err_mean']:.3f} | {m['steered_top1_agree']:.2f} | "
                         f"{m['xsteer_top1_changed_by_steering']:.2f} |")
        lines.append("\n| greedy (16 tokens) | exact match | mean common prefix (tokens) |")
        lines.append("|---|---|---|")
        for name, g in run["greedy"].items():
            lines.append(f"| {name} | {g['exact_match']} | {g['mean_common_prefix_tokens']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
