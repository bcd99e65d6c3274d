"""The paper's grid on a GPU: 3 parents x 7 children x {GSM8K, MATH-500, ARC-Challenge}.

    python examples/paper_grid.py --out runs/paper [--data-dir ../shared/data] [--n-random 20]

Every (task, parent, child) cell is a run folder; a killed run resumes cell by cell (finished
cells are skipped, a half-done cell resumes from its records). One parent and one child are held
in memory at a time; parent vectors are extracted once per task and reused for every child.
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

import torch

from xsteer.models import load_model
from xsteer.pipeline import TransferConfig, run_transfer
from xsteer.vectors import SteeringVectors

PARENTS = ["microsoft/phi-4", "Qwen/Qwen2.5-14B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3"]
CHILDREN = [
    "Qwen/Qwen3-0.6B",
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "meta-llama/Llama-3.1-8B-Instruct",
    "google/gemma-2-2b-it",
    "google/gemma-2-9b-it",
    "Qwen/Qwen2-7B-Instruct",
]
TASKS = {"gsm8k": "generate", "math500": "generate", "arc-challenge": "generate"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/paper"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-random", type=int, default=20)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    for task, mode in TASKS.items():
        for parent_name in PARENTS:
            parent, vectors = None, None
            for child_name in CHILDREN:
                cell = args.out / task / f"{parent_name.replace('/', '--')}__{child_name.replace('/', '--')}"
                if (cell / "report.json").exists():
                    continue
                parent = parent or load_model(parent_name, device=args.device, dtype=dtype)
                child = load_model(child_name, device=args.device, dtype=dtype)
                cfg = TransferConfig(
                    parent=parent_name, child=child_name, task=task, task_mode=mode, data_dir=args.data_dir,
                    n_val=None, n_test=None, n_random=args.n_random, batch_size=64,
                )
                run_transfer(cfg, cell, models={parent_name: parent, child_name: child}, parent_vectors=vectors)
                vectors = SteeringVectors.load(cell / "vectors" / "parent")
                print(f"done {cell}")
                del child
                gc.collect()
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
