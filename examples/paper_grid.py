"""The paper's grid on GPUs: 3 parents x 7 children x {GSM8K, MATH-500, ARC-Challenge} = 63 cells.

    python examples/paper_grid.py --out runs/paper [--data-dir ../shared/data] [--n-random 20] [--ray auto]

Every (task, parent, child) cell is a run folder (``<out>/<task>/<parent>__<child>``); a killed run
resumes cell by cell from its records. Parent vectors are extracted once per (parent, task). Without
--ray one parent and one child are in memory at a time; with --ray each extraction and each cell is a
Ray task sized from the models (see docs/gpu.md). ``<out>/grid_summary.md`` is Table 1 with CIs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xsteer.grid import GridSpec, run_grid
from xsteer.pipeline import TransferConfig

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
TASKS = ["gsm8k", "math500", "arc-challenge"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/paper"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-random", type=int, default=20)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--ray", default=None, help="auto, local or HOST:PORT (default: one process)")
    args = parser.parse_args()
    base = TransferConfig(
        task_mode="generate", data_dir=args.data_dir, n_val=None, n_test=None, n_random=args.n_random,
        batch_size=64, device=args.device,
    )
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    result = run_grid(GridSpec(PARENTS, CHILDREN, TASKS, base, dtype=dtype), args.out, ray=args.ray)
    print(result.summary_path.read_text())
    for failed in result.failed:
        print(f"FAILED {failed.cell}: {failed.error}")


if __name__ == "__main__":
    main()
