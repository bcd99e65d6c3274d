"""Interop check, peer side: load a vector file that xsteer exported with the peer library's own
loader and steer with it; then make a vector with the peer library, save it in the peer's own way and
steer with that. Runs inside the peer's venv (never imports xsteer).

    <venv>/bin/python benchmarks/peer_runner/interop_check.py JOB.json

JOB: {"peer": "repeng" | "steering-vectors", "model_dir": HF folder, "import_file": xsteer's export
(repeng: a control-vector GGUF for ``ControlVector.import_gguf``; steering-vectors: a ``.pt`` of
``SteeringVector`` fields), "export_file": where to save the peer's own vector, "export_layers":
[...], "export_seed": int, "export_norm": float, "prompts": [[token ids], ...], "out": .npz path}.

Writes OUT (.npz): per prompt ``base_{i}``, ``imported_{i}`` (steered by the imported file at
the peer's strength 1) and ``own_{i}`` (steered by the peer's own vector, strength 1) logits
(positions × vocab); ``read_{l}``: the vectors the peer read from the import file; ``made_{l}``: the
peer's own vectors as it holds them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_peer import load_model  # noqa: E402  (same folder; reads transformers-5 configs right)


@torch.inference_mode()
def _logits(runner, prompts) -> list[np.ndarray]:
    return [runner(input_ids=torch.tensor([p])).logits[0].float().numpy() for p in prompts]


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    torch.set_num_threads(1)
    model = load_model(job["model_dir"])
    prompts = job["prompts"]
    g = torch.Generator().manual_seed(int(job["export_seed"]))
    d = model.config.hidden_size
    made = {}
    for l in job["export_layers"]:
        v = torch.randn(d, generator=g)
        made[int(l)] = (v / v.norm() * float(job["export_norm"])).float()
    out: dict[str, np.ndarray] = {}
    for i, x in enumerate(_logits(model, prompts)):
        out[f"base_{i}"] = x

    if job["peer"] == "repeng":
        from repeng import ControlModel, ControlVector

        vec = ControlVector.import_gguf(job["import_file"])
        read = {l: np.asarray(v, dtype=np.float32) for l, v in vec.directions.items()}
        control = ControlModel(model, sorted(vec.directions))
        control.set_control(vec, coeff=1.0)  # operator +, normalize=False: h + directions[l]
        imported = _logits(control, prompts)
        model = control.unwrap()
        own = ControlVector(model_type=model.config.model_type, directions={l: v.numpy() for l, v in made.items()})
        own.export_gguf(job["export_file"])
        control = ControlModel(model, sorted(own.directions))
        control.set_control(own, coeff=1.0)
        own_logits = _logits(control, prompts)
        held = own.directions
    elif job["peer"] == "steering-vectors":
        from steering_vectors import SteeringVector

        vec = SteeringVector(**torch.load(job["import_file"], weights_only=True))
        read = {l: v.float().numpy() for l, v in vec.layer_activations.items()}
        with vec.apply(model):  # multiplier 1, every position
            imported = _logits(model, prompts)
        own = SteeringVector(layer_activations=made, layer_type="decoder_block")
        torch.save(dataclasses.asdict(own), job["export_file"])
        with own.apply(model):
            own_logits = _logits(model, prompts)
        held = {l: v.numpy() for l, v in own.layer_activations.items()}
    else:
        raise SystemExit(f"unknown peer {job['peer']!r}")

    for i, (a, b) in enumerate(zip(imported, own_logits)):
        out[f"imported_{i}"], out[f"own_{i}"] = a, b
    for l, v in read.items():
        out[f"read_{l}"] = v
    for l, v in held.items():
        out[f"made_{l}"] = np.asarray(v, dtype=np.float32)
    np.savez(job["out"], **out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} JOB.json")
    main(sys.argv[1])
