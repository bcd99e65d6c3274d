"""Where a large parent's weights go: a ``max_memory`` map for Hugging Face's ``device_map="auto"``
over the fewest GPUs that hold them, and how many of its blocks an extraction needs."""

from __future__ import annotations

__all__ = ["blocks_needed", "max_memory_map"]


def max_memory_map(
    weight_bytes: float, gpu_bytes: list[int], *, headroom: float = 0.85, cpu_bytes: int | None = None
) -> dict[int | str, int]:
    """``max_memory`` for ``from_pretrained(device_map="auto", max_memory=...)``: the fewest GPUs
    (in order) whose ``headroom`` share (the rest is left for activations and the KV cache) holds the
    weights, each capped at that share; with ``cpu_bytes``, what does not fit spills to "cpu",
    otherwise a one-line error names the fix."""
    if weight_bytes <= 0 or not 0 < headroom <= 1:
        raise ValueError("weight_bytes must be > 0 and headroom in (0, 1].")
    caps = [int(b * headroom) for b in gpu_bytes]
    plan: dict[int | str, int] = {}
    left = weight_bytes
    for i, cap in enumerate(caps):
        if left <= 0:
            break
        plan[i] = cap
        left -= cap
    if left > 0:
        if cpu_bytes is None or cpu_bytes < left:
            raise ValueError(
                f"The weights ({weight_bytes / 2**30:.1f} GiB) do not fit in {len(gpu_bytes)} GPU(s) at "
                f"{headroom:.0%} of their memory ({sum(caps) / 2**30:.1f} GiB); use more GPUs, bf16, or allow "
                "CPU offload (cpu_bytes)."
            )
        plan["cpu"] = int(cpu_bytes)
    return plan


def blocks_needed(parent_layers: int, child_layers: list[int], layer_map: str = "greedy") -> int:
    """Blocks of the parent an extraction for these children reads: the greedy map (layer i → i)
    uses only the first min(parent, deepest child) blocks; other maps may use any block."""
    if parent_layers < 1 or not child_layers:
        raise ValueError("blocks_needed needs parent_layers >= 1 and at least one child.")
    return min(parent_layers, max(child_layers)) if layer_map == "greedy" else parent_layers
