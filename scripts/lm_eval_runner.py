"""Run lm-evaluation-harness itself (in .venv-lm-eval) and write its per-item results as JSON.

Used by tests/test_lm_eval_parity.py; runs nothing of xsteer. Usage::

    .venv-lm-eval/bin/python scripts/lm_eval_runner.py SPEC.json

SPEC.json::

    {"model_dir": "<HF folder>", "tasks_dir": "<folder of task YAMLs>", "out": "<result .json>",
     "runs": [{"name": "base", "tasks": ["t1", ...]},
              {"name": "steered", "tasks": [...], "steer_path": "<lm-eval steered .pt>"}],
     "batch_size": 1}

A run with ``steer_path`` uses lm-eval's ``steered`` model, one without it ``hf``; both load the
folder in float32 on the CPU, zero-shot, with ``log_samples``. The output maps run → task → the
logged samples (doc_id, arguments, resps, filtered_resps), plus the versions used.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version


def main(spec_path: str) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    spec = json.loads(open(spec_path).read())
    manager = TaskManager(include_path=spec["tasks_dir"])
    out: dict = {"versions": {p: version(p) for p in ("lm-eval", "torch", "transformers", "tokenizers")}, "runs": {}}
    for run in spec["runs"]:
        args = {"pretrained": spec["model_dir"], "dtype": "float32"}
        if run.get("steer_path"):
            args["steer_path"] = run["steer_path"]
        start = time.perf_counter()
        results = lm_eval.simple_evaluate(
            model="steered" if run.get("steer_path") else "hf",
            model_args=args,
            tasks=run["tasks"],
            task_manager=manager,
            num_fewshot=0,
            batch_size=spec.get("batch_size", 1),
            device="cpu",
            log_samples=True,
        )
        samples = {
            task: [
                {k: s[k] for k in ("doc_id", "arguments", "resps", "filtered_resps", "target") if k in s}
                for s in rows
            ]
            for task, rows in results["samples"].items()
        }
        out["runs"][run["name"]] = {"samples": samples, "seconds": time.perf_counter() - start}
    with open(spec["out"], "w") as f:
        json.dump(out, f, default=str)


if __name__ == "__main__":
    main(sys.argv[1])
