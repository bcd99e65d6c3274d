"""Many parent × child × task cells, each a resumable run folder, in one process or as Ray tasks."""

from xsteer.grid.runner import CellOutcome, GridResult, extract_parent, run_cell, run_grid
from xsteer.grid.spec import Cell, GridSpec
from xsteer.grid.summary import mean_ci, render_summary, write_summary

__all__ = [
    "Cell", "CellOutcome", "GridResult", "GridSpec", "extract_parent", "mean_ci", "render_summary",
    "run_cell", "run_grid", "write_summary",
]
