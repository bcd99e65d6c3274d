"""What a grid is: parents × children × tasks on one base configuration, checked before any work."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from xsteer.models import check_model_spec, load_model
from xsteer.pipeline import TransferConfig
from xsteer.tasks.registry import TASKS

__all__ = ["Cell", "GridSpec", "slug"]

# Fields of TransferConfig that change the parent's vectors (everything else only touches the cells).
EXTRACTION_FIELDS = ("task", "data_dir", "task_mode", "k_shot", "method", "n_pairs", "seed")


def slug(spec: str) -> str:
    """A model spec as one folder name (``owner/name`` → ``owner--name``)."""
    return str(spec).replace("/", "--").replace(":", "_")


def _task_key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class Cell:
    """One parent → child transfer on one task, with its run folder and the parent-vector folder it
    shares with every other child of the same parent and task."""

    parent: str
    child: str
    task: str
    config: TransferConfig
    folder: Path
    vectors: Path  # stem of the parent's vectors (``.safetensors`` + ``.json``)

    @property
    def name(self) -> str:
        return f"{self.task}/{slug(self.parent)}__{slug(self.child)}"


@dataclass
class GridSpec:
    """Every parent × child × task cell on the base configuration ``base``.

    The parent, child and task fields of ``base`` are ignored; each cell sets its own; models load in
    ``dtype``. Construction
    validates names (models via ``check_model_spec``, tasks via the task registry) and loads nothing.
    """

    parents: list[str]
    children: list[str]
    tasks: list[str]
    base: TransferConfig = field(default_factory=TransferConfig)
    dtype: str = "float32"  # weights of every model the grid loads, e.g. "bfloat16" on GPUs

    def __post_init__(self) -> None:
        if not isinstance(getattr(torch, self.dtype, None), torch.dtype):
            raise ValueError(f"Unknown dtype {self.dtype!r}; use float32, bfloat16 or float16.")
        self.parents, self.children, self.tasks = (list(x) for x in (self.parents, self.children, self.tasks))
        for what, names in (("parents", self.parents), ("children", self.children), ("tasks", self.tasks)):
            if not names:
                raise ValueError(f"A grid needs at least one of {what}; e.g. --{what} a,b.")
            if len(set(names)) != len(names):
                raise ValueError(f"The grid's {what} repeat a name ({names}); list each once.")
        for spec in self.parents + self.children:
            try:
                check_model_spec(spec)
            except (ValueError, FileNotFoundError) as err:
                raise ValueError(f"Grid model {spec!r}: {err}") from None
        unknown = [t for t in self.tasks if _task_key(t) not in TASKS]
        if unknown:
            raise ValueError(f"Unknown grid task(s) {unknown}; choose from {sorted(TASKS)}.")

    def load(self, name: str):
        """Load one of the grid's models on the base device in the grid's dtype."""
        return load_model(name, device=self.base.device, dtype=getattr(torch, self.dtype))

    def cell_config(self, parent: str, child: str, task: str) -> TransferConfig:
        return TransferConfig(**{**asdict(self.base), "parent": parent, "child": child, "task": task})

    def cells(self, out_dir: str | Path) -> list[Cell]:
        """The cells in run order (task, then parent, then child), with folders under ``out_dir``:
        ``<task>/<parent>__<child>`` per cell, ``parents/<parent>/<task>/vectors/parent`` per parent."""
        out = Path(out_dir)
        return [
            Cell(p, c, t, self.cell_config(p, c, t), out / t / f"{slug(p)}__{slug(c)}",
                 out / "parents" / slug(p) / t / "vectors" / "parent")
            for t in self.tasks for p in self.parents for c in self.children
        ]

    def extraction_config(self, parent: str, task: str) -> dict:
        """The configuration fields that determine one parent's vectors on one task."""
        cfg = asdict(self.cell_config(parent, self.children[0], task))
        return {"parent": parent, "dtype": self.dtype, **{k: cfg[k] for k in EXTRACTION_FIELDS}}
