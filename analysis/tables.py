"""Rendering a table of display strings as Markdown or LaTeX (booktabs), without extra packages."""

from __future__ import annotations

import pandas as pd

__all__ = ["to_latex", "to_markdown"]

# Unicode used in display strings, written as LaTeX that pdflatex accepts.
_LATEX_SYMBOLS = {
    "λ": r"$\lambda$",
    "Δ": r"$\Delta$",
    "→": r"$\to$",
    "←": r"$\leftarrow$",
    "±": r"$\pm$",
    "–": "--",
    "—": "---",
    "−": "$-$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
}
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown pipe table of ``df`` (index dropped), one row per line."""

    def cell(value: object) -> str:
        return str(value).replace("|", r"\|").replace("\n", " ")

    header = [cell(c) for c in df.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, *, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``table`` of ``df`` (index dropped) with LaTeX special characters escaped."""
    columns = "l" * df.shape[1]
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def latex_escape(value: object) -> str:
    """``value`` as LaTeX text: special characters escaped, Greek and arrows as math."""
    text = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(value))
    return "".join(_LATEX_SYMBOLS.get(ch, ch) for ch in text)
