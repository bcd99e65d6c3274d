"""Run one steering sweep through a peer library, inside that library's own virtual environment.

    <venv>/bin/python benchmarks/peer_runner/run_peer.py JOB.json OUT.json

Written for ``benchmarks.peer_sweep`` (the host side); needs only torch, transformers, numpy,
safetensors and the peer library, never xsteer (which needs transformers>=5.9 while the peers pin
older releases).

The job (JSON) names the peer (``"repeng"`` or ``"steering-vectors"``), the model folder (plain
Hugging Face: config.json, model.safetensors, tokenizer.json), the steering vectors (``.safetensors``
with one tensor per layer under ``"layer.{l}"``/``"{l}"``, or ``.npy`` of shape (len(layers), d_model)
in the order of ``"layers"``), the λ grid, optional ``"threads"``, and ``"sweeps"``: a list of

    {"mode": "generate", "batch_size": 32, "max_new_tokens": 16, "stop_strings": [...] | null,
     "items": [{"id": ..., "prompt_ids": [...]}]}
    {"mode": "loglik", "batch_size": 64,
     "items": [{"id": ..., "prompt_ids": [...], "continuations": [[...], ...], "labels": [...]}]}

(a job may also be one such sweep at top level), and ``"device"`` (default ``"cpu"``; "cuda" needs a
CUDA torch in the peer's venv). Prompt token ids come from the host, so both sides
feed the model the very same tokens; the answers are extracted on the host.

Steering is the peer's own API, one λ at a time, with the items of that λ batched (left padding,
greedy decoding):

* repeng: ``ControlModel(model, layers)`` + ``ControlVector(model_type, directions)``, then
  ``set_control(vector, coeff=λ)`` (``normalize=False``, operator ``+``: the default). repeng adds
  ``coeff·v`` to the output of decoder layer l at every position except left padding, which it
  finds from ``position_ids``;
* steering-vectors: ``SteeringVector(layer_activations, layer_type="decoder_block")`` and
  ``with vec.apply(model, multiplier=λ, min_token_index=0)``: adds ``multiplier·v`` to the output of
  decoder layer l at every position, padding included.

Both equal xsteer's ``steer`` (λ·v added to ``blocks.{l}.hook_resid_post``, i.e. decoder layer l's
output, at every position, unit vectors, no normalisation) on every real token: padding is masked
out of attention, so what is added there never reaches a real token.

The result (JSON): versions, ``load_s`` (model load + peer set-up), ``warmup_s`` (one unsteered
forward, untimed in the sweep), and per sweep ``sweep_s`` (all λ, model already loaded),
``per_lambda_s``, ``peak_rss_mb`` (the process's high-water mark during that sweep alone, reset
before it through /proc/self/clear_refs where Linux allows) and rows of ``{"id", "lam",
"new_tokens", "text"}`` (generate: the generated token ids and the peer tokenizer's decoding) or
``{"id", "lam", "scores"}`` (loglik: summed log-probability of each continuation).
"""

from __future__ import annotations

import contextlib
import json
import platform
import resource
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM

PEERS = {"repeng": "repeng", "steering-vectors": "steering_vectors"}


# --------------------------------------------------------------------------- memory


def _status_mb(field: str) -> float | None:
    """A field of /proc/self/status (VmHWM, VmRSS) in MB, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the resident-set high-water mark (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- model and vectors


def load_model(folder: str):
    """The model in float32, with its config read right by older transformers too."""
    config = AutoConfig.from_pretrained(folder)
    raw = json.loads((Path(folder) / "config.json").read_text())
    rope = raw.get("rope_parameters")
    # transformers 5 writes RoPE settings as `rope_parameters`; 4.x reads `rope_theta` and
    # `rope_scaling` instead and would silently fall back to its default θ (10000).
    if rope and "rope_theta" not in raw and getattr(config, "rope_theta", None) != rope.get("rope_theta"):
        config.rope_theta = rope["rope_theta"]
        if rope.get("rope_type", "default") != "default":
            config.rope_scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, config=config, dtype=torch.float32)
    except TypeError:  # transformers older than 4.56 names it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(folder, config=config, torch_dtype=torch.float32)
    return model.eval()


def load_tokenizer(folder: str):
    """A fast tokenizer straight from tokenizer.json (the saved tokenizer_config.json may name a
    class that an older transformers lacks). Only stop strings and the returned text use it."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(Path(folder) / "tokenizer.json"))


def load_vectors(path: str, layers: list[int]) -> dict[int, np.ndarray]:
    """Layer -> float32 vector from a .safetensors (keys "layer.{l}" or "{l}") or .npy file."""
    if path.endswith(".npy"):
        arr = np.load(path).astype(np.float32)
        if arr.shape[0] != len(layers):
            raise ValueError(f"{path} has {arr.shape[0]} rows for {len(layers)} layers.")
        return {l: arr[i] for i, l in enumerate(layers)}
    from safetensors.numpy import load_file

    tensors = load_file(path)
    out = {}
    for l in layers:
        key = f"layer.{l}" if f"layer.{l}" in tensors else str(l)
        out[l] = tensors[key].astype(np.float32)
    return out


class Peer:
    """One peer library's way of steering: ``with peer.at(λ): model(...)``."""

    def __init__(self, name: str, model, vectors: dict[int, np.ndarray]):
        self.name, self.model = name, model
        layers = sorted(vectors)
        if name == "repeng":
            from repeng import ControlModel, ControlVector

            self.control = ControlModel(model, layers)  # wraps model.model.layers[l] in place
            self.vector = ControlVector(model_type=model.config.model_type, directions=vectors)
            self.runner = self.control  # forward / generate go through the wrapped model
        elif name == "steering-vectors":
            from steering_vectors import SteeringVector

            self.vector = SteeringVector(
                layer_activations={l: torch.from_numpy(v.copy()) for l, v in vectors.items()},
                layer_type="decoder_block",
            )
            # explicit, so that no guess can pick another module list
            self.layer_config = {"decoder_block": "model.layers.{num}"}
            self.runner = model
        else:
            raise ValueError(f"Unknown peer {name!r}; one of {sorted(PEERS)}.")

    def at(self, lam: float):
        if self.name == "repeng":

            @contextlib.contextmanager
            def ctx():
                # default operator (+) and normalize=False: h + λ·v
                self.control.set_control(self.vector, coeff=float(lam))
                try:
                    yield
                finally:
                    self.control.reset()

            return ctx()
        # min_token_index=0: every position (the library's default for apply, spelled out)
        return self.vector.apply(
            self.model, layer_config=self.layer_config, multiplier=float(lam), min_token_index=0
        )


# --------------------------------------------------------------------------- sweeps


def _left_pad(seqs: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, seqs))
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=device)
    return ids, mask


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.inference_mode()
def run_generate(peer: Peer, sweep: dict, lambdas, pad: int, tokenizer, device) -> tuple[list[dict], dict]:
    items, bs = sweep["items"], sweep.get("batch_size") or len(sweep["items"])
    kwargs = {"max_new_tokens": int(sweep["max_new_tokens"]), "do_sample": False, "num_beams": 1,
              "pad_token_id": pad}
    if sweep.get("stop_strings"):
        kwargs.update(stop_strings=list(sweep["stop_strings"]), tokenizer=tokenizer)
    rows, per_lam = [], {}
    for lam in lambdas:
        start = time.perf_counter()
        for b in range(0, len(items), bs):
            chunk = items[b : b + bs]
            ids, mask = _left_pad([it["prompt_ids"] for it in chunk], pad, device)
            with peer.at(lam):
                out = peer.runner.generate(input_ids=ids, attention_mask=mask, **kwargs)
            new = out[:, ids.shape[1] :].tolist()
            for it, toks in zip(chunk, new):
                rows.append({"id": it["id"], "lam": lam, "new_tokens": toks,
                             "text": tokenizer.decode(toks, skip_special_tokens=True)})
        _sync(device)
        per_lam[str(lam)] = time.perf_counter() - start
    return rows, per_lam


def _forward_logits(runner, ids, mask, keep: int) -> torch.Tensor:
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    try:
        return runner(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
    except TypeError:  # transformers without logits_to_keep
        return runner(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -keep:]


@torch.inference_mode()
def run_loglik(peer: Peer, sweep: dict, lambdas, pad: int, device) -> tuple[list[dict], dict]:
    """Each (item, choice) is one left-padded row prompt + continuation; one forward per batch of
    items per λ. Score: summed log-probability of the continuation's tokens."""
    items, bs = sweep["items"], sweep.get("batch_size") or len(sweep["items"])
    rows, per_lam = [], {}
    for lam in lambdas:
        start = time.perf_counter()
        for b in range(0, len(items), bs):
            chunk = items[b : b + bs]
            seqs, conts, owner = [], [], []
            for i, it in enumerate(chunk):
                for c in it["continuations"]:
                    seqs.append(it["prompt_ids"] + c)
                    conts.append(c)
                    owner.append(i)
            ids, mask = _left_pad(seqs, pad, device)
            longest = max(map(len, conts))
            with peer.at(lam):
                logits = _forward_logits(peer.runner, ids, mask, longest + 1).float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)  # position t predicts token t + 1
            scores = [[] for _ in chunk]
            for r, c in enumerate(conts):
                tail = logp[r, longest - len(c) :]
                scores[owner[r]].append(float(tail.gather(-1, torch.tensor(c, device=device)[:, None]).sum()))
            for it, s in zip(chunk, scores):
                rows.append({"id": it["id"], "lam": lam, "scores": s})
        _sync(device)
        per_lam[str(lam)] = time.perf_counter() - start
    return rows, per_lam


def versions(peer: str) -> dict:
    out = {"python": platform.python_version()}
    for name in (peer, "torch", "transformers", "numpy"):
        try:
            out[name] = version(name)
        except ImportError:  # PackageNotFoundError
            out[name] = None
    return out


def main(job_path: str, out_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    name = job["peer"]
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    sweeps = job.get("sweeps") or [job]
    lambdas = [float(l) for l in job["lambdas"]]
    layers = [int(l) for l in job["layers"]]

    device = job.get("device") or "cpu"
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"This venv's torch {torch.__version__} has no CUDA; rebuild it with a CUDA torch "
                         "(TORCH_SPEC=torch FORCE=1 bash benchmarks/peer_runner/setup.sh) or run on cpu.")
    t0 = time.perf_counter()
    model = load_model(job["model_dir"]).to(device)
    tokenizer = load_tokenizer(job["model_dir"])
    vectors = load_vectors(job["vectors"], layers)
    d = model.config.hidden_size
    bad = [l for l, v in vectors.items() if v.shape != (d,)]
    if bad:
        raise ValueError(f"Vectors of layers {bad} are not of width {d}.")
    peer = Peer(name, model, vectors)
    load_s = time.perf_counter() - t0
    rss_after_load = _status_mb("VmRSS")
    pad = job.get("pad_token_id")
    if pad is None:
        pad = model.config.pad_token_id if model.config.pad_token_id is not None else model.config.eos_token_id

    first = sweeps[0]["items"][0]["prompt_ids"]
    t0 = time.perf_counter()
    with torch.inference_mode():  # warm-up: one unsteered forward, kept out of every timing
        peer.runner(input_ids=torch.tensor([first], device=device))
    _sync(device)
    warmup_s = time.perf_counter() - t0

    result = {"peer": name, "versions": versions(name), "device": device, "threads": torch.get_num_threads(),
              "load_s": load_s, "warmup_s": warmup_s, "rss_after_load_mb": rss_after_load,
              "load_peak_rss_mb": _peak_mb(), "sweeps": []}
    for sweep in sweeps:
        reset = _reset_peak()
        if torch.device(device).type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        _sync(device)
        t0 = time.perf_counter()
        if sweep["mode"] == "generate":
            rows, per_lam = run_generate(peer, sweep, lambdas, pad, tokenizer, device)
        elif sweep["mode"] == "loglik":
            rows, per_lam = run_loglik(peer, sweep, lambdas, pad, device)
        else:
            raise ValueError(f"mode must be generate or loglik, not {sweep['mode']!r}.")
        sweep_s = time.perf_counter() - t0
        done = {"mode": sweep["mode"], "sweep_s": sweep_s, "per_lambda_s": per_lam, "peak_rss_mb": _peak_mb(),
                "peak_is_sweep_only": reset, "rows": rows}
        if torch.device(device).type == "cuda":
            done["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["sweeps"].append(done)
    result["process_peak_rss_mb"] = max(
        [result["load_peak_rss_mb"]] + [s["peak_rss_mb"] for s in result["sweeps"]]
    )
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} JOB.json OUT.json")
    main(sys.argv[1], sys.argv[2])
