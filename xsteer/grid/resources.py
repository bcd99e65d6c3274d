"""How much a grid task needs: parameter counts of known models, memory and GPUs per task, and the
check that the cluster can hold each task before any is submitted (Ray would wait for ever)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from xsteer.models import _parse_tiny

__all__ = ["Resources", "check_fits", "estimate_params", "task_resources"]

GiB = 1024**3

# Parameter counts (billions) of the paper's models and the embedded defaults.
KNOWN_PARAMS_B: dict[str, float] = {
    "gemma-3-270m": 0.268,
    "smollm2-135m": 0.135,
    "microsoft/phi-4": 14.66,
    "Qwen/Qwen2.5-14B-Instruct": 14.77,
    "mistralai/Mistral-7B-Instruct-v0.3": 7.25,
    "Qwen/Qwen3-0.6B": 0.60,
    "meta-llama/Llama-3.2-1B-Instruct": 1.24,
    "meta-llama/Llama-3.2-3B-Instruct": 3.21,
    "meta-llama/Llama-3.1-8B-Instruct": 8.03,
    "google/gemma-2-2b-it": 2.61,
    "google/gemma-2-9b-it": 9.24,
    "Qwen/Qwen2-7B-Instruct": 7.62,
}
_SIZE_IN_NAME = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)


def _params_from_config(cfg: dict) -> float | None:
    """Approximate parameters of a decoder from a Hugging Face config.json."""
    d, layers, vocab = cfg.get("hidden_size"), cfg.get("num_hidden_layers"), cfg.get("vocab_size")
    if not (d and layers and vocab):
        return None
    ffn = cfg.get("intermediate_size") or 4 * d
    heads = cfg.get("num_attention_heads") or 1
    head_dim = cfg.get("head_dim") or d // heads
    kv = (cfg.get("num_key_value_heads") or heads) * head_dim
    attn = d * heads * head_dim * 2 + d * kv * 2
    embed = vocab * d * (1 if cfg.get("tie_word_embeddings") else 2)
    return float(layers * (attn + 3 * d * ffn) + embed)


def estimate_params(spec: str) -> float | None:
    """Parameter count of a model spec without loading it: the known table, a ``tiny:`` spec, a local
    folder's config.json, or a size written in the name ("…-14B-…", "…-135M"); None when unknown."""
    spec = str(spec)
    if spec in KNOWN_PARAMS_B:
        return KNOWN_PARAMS_B[spec] * 1e9
    if spec.startswith("tiny:"):
        _, layers, width, _ = _parse_tiny(spec)
        return float(layers * 12 * width**2 + 2 * 260 * width)
    path = Path(spec).expanduser()
    if (path / "config.json").is_file():
        return _params_from_config(json.loads((path / "config.json").read_text()))
    if path.suffix == ".gguf" and path.is_file():
        return path.stat().st_size * 8 / 4.5  # ~4.5 bits per weight in the common quantizations
    sizes = _SIZE_IN_NAME.findall(spec.split("/")[-1])
    if sizes:
        num, unit = sizes[-1]
        return float(num) * (1e9 if unit.lower() == "b" else 1e6)
    return None


@dataclass(frozen=True)
class Resources:
    """What one Ray task asks for: GPUs and memory (bytes)."""

    num_gpus: float
    memory: int

    def describe(self) -> str:
        return f"{self.num_gpus:g} GPU(s), {self.memory / GiB:.1f} GiB"


def task_resources(
    specs: list[str],
    *,
    on_gpu: bool,
    gpus_per_task: float | None = None,
    memory_gib: float | None = None,
    gpu_memory_gib: float = 80.0,
) -> Resources:
    """Resources for a task holding the models ``specs`` at once: weights (bf16 on GPUs, fp32 on the
    CPU) plus 20% and 1 GiB for activations and the runtime. Flags win over the estimate; a model of
    unknown size needs the flags (one-line error)."""
    need = gpus_per_task is None or memory_gib is None
    weights = 0.0
    if need:
        for spec in specs:
            n = estimate_params(spec)
            if n is None:
                raise ValueError(
                    f"Cannot tell the size of model {spec!r}; pass --gpus-per-task and --memory (GiB)."
                )
            weights += n * (2 if on_gpu else 4)
    estimate = weights * 1.2 + GiB
    memory = int(memory_gib * GiB) if memory_gib is not None else int(estimate)
    if gpus_per_task is not None:
        gpus = float(gpus_per_task)
    else:
        gpus = float(max(1, math.ceil(estimate / (gpu_memory_gib * GiB)))) if on_gpu else 0.0
    return Resources(gpus, memory)


def check_fits(name: str, res: Resources, nodes: list[dict[str, float]]) -> None:
    """Raise a one-line ValueError unless one node of the cluster (``ray.nodes()`` resources) offers
    the task's GPUs and memory; a task that fits nowhere would wait for ever."""
    gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    mem = max((n.get("memory", 0.0) for n in nodes), default=0.0)
    if res.num_gpus > gpus:
        raise ValueError(
            f"{name} needs {res.num_gpus:g} GPU(s) but the largest node of the Ray cluster has {gpus:g}; "
            "add GPU workers (`ray start --address … --num-gpus N`) or lower --gpus-per-task."
        )
    if res.memory > mem:
        raise ValueError(
            f"{name} needs ~{res.memory / GiB:.1f} GiB of memory but the largest node of the Ray cluster "
            f"offers {mem / GiB:.1f} GiB; add larger workers or set --memory (GiB)."
        )
