"""The standard figures and table of one saved transfer run."""

from __future__ import annotations

from pathlib import Path

from analysis.export import save_figure
from analysis.robustness import gains_figure, results_table, write_results_table
from xsteer.figures import accuracy_vs_lambda, relative_perturbation_figure
from xsteer.results import TransferResult

__all__ = ["write_run_figures"]


def write_run_figures(result: TransferResult, out_dir: str | Path) -> list[Path]:
    """Accuracy vs λ, gains over baseline, relative perturbation and the results table; p-values
    Holm-adjusted over the run's own family, as in its report.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kinds = tuple(k for k in ("transferred", "child_own") if any(c.kind == k for c in result.conditions.values()))
    written = []
    written += save_figure(accuracy_vs_lambda([result], kinds=kinds), out / "accuracy_vs_lambda")
    written += save_figure(gains_figure([result]), out / "gains")
    written += save_figure(relative_perturbation_figure(result), out / "relative_perturbation")
    written += write_results_table(results_table([result], kinds=kinds, family="report"), out / "results_table")
    return written
