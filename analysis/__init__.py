"""Figures and tables from saved xsteer results and steering vectors; no model is loaded.

``analysis.similarity``: do two models' concept directions agree (PC1 correlation, projection-score
agreement, difference CKA, layer maps). ``analysis.robustness``: accuracy vs λ, gains over the
baseline with controls, the results table, relative perturbation size. ``save_figure`` writes HTML
and, where a Chrome is available to kaleido, PNG.
"""

from analysis.export import save_figure
from analysis.robustness import format_results_table, gains_figure, results_table, write_results_table
from analysis.run_figures import write_run_figures
from analysis.similarity import (
    DifferenceCKA,
    ProjectionAgreement,
    cka_layer_map_figure,
    difference_cka,
    difference_cka_heatmap,
    pc1_correlation,
    pc1_correlation_heatmap,
    projection_agreement,
    projection_agreement_heatmap,
    random_correlation_scale,
)
from analysis.summary import RunSummary, summarise_runs
from analysis.tables import to_latex, to_markdown

__all__ = [
    "DifferenceCKA",
    "ProjectionAgreement",
    "RunSummary",
    "cka_layer_map_figure",
    "difference_cka",
    "difference_cka_heatmap",
    "format_results_table",
    "gains_figure",
    "pc1_correlation",
    "pc1_correlation_heatmap",
    "projection_agreement",
    "projection_agreement_heatmap",
    "random_correlation_scale",
    "results_table",
    "save_figure",
    "summarise_runs",
    "to_latex",
    "to_markdown",
    "write_results_table",
    "write_run_figures",
]
