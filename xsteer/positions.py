"""Which positions of a forward pass steering acts on.

Under KV-cached decoding a hook sees only the positions of the current pass, so it cannot tell
prompt from generated tokens by itself. Whoever runs the forward pass (the evaluation engine, or
a user with ``layout(...)``) says it: a ``Layout`` holds (batch, seq) bool masks of the pass's
prompt positions and of its last prompt position; the steering hooks read it with ``current()``.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import torch
from jaxtyping import Bool

__all__ = ["POSITIONS", "Layout", "Positions", "check_positions", "current", "layout", "position_mask"]

Positions = Literal["all", "prompt", "generated", "last_prompt"]
POSITIONS: tuple[str, ...] = ("all", "prompt", "generated", "last_prompt")


@dataclass(frozen=True)
class Layout:
    """``prompt[b, t]``: position t of row b in this pass is a prompt token (padding: False);
    ``last_prompt[b, t]``: it is the prompt's last token. Other real positions are generated."""

    prompt: Bool[torch.Tensor, "batch seq"]
    last_prompt: Bool[torch.Tensor, "batch seq"]

    @classmethod
    def of(cls, prompt_cols: torch.Tensor, generated: int, *, ends_prompt: bool = True) -> "Layout":
        """A pass of prompt columns (``prompt_cols``: a (batch, n) 0/1 mask, left-padded, so that
        its last column is the prompt's last token when ``ends_prompt``) followed by
        ``generated`` generated positions."""
        if not isinstance(prompt_cols, torch.Tensor) or prompt_cols.ndim != 2:
            raise ValueError("Layout.of needs prompt_cols as a (batch, n) 0/1 tensor (the prompt's attention mask).")
        if isinstance(generated, bool) or not isinstance(generated, int) or generated < 0:
            raise ValueError(f"Layout.of needs generated >= 0 positions, not {generated!r}.")
        prompt_cols = prompt_cols.bool()
        tail = torch.zeros(prompt_cols.shape[0], generated, dtype=torch.bool, device=prompt_cols.device)
        last = torch.zeros_like(prompt_cols)
        if ends_prompt and prompt_cols.shape[1]:
            last[:, -1] = prompt_cols[:, -1]
        return cls(torch.cat([prompt_cols, tail], 1), torch.cat([last, tail], 1))


_CURRENT: contextvars.ContextVar[Callable[[], Layout] | None] = contextvars.ContextVar("xsteer_layout", default=None)


@contextlib.contextmanager
def layout(make: Layout | Callable[[], Layout]) -> Iterator[None]:
    """Forward passes inside have this layout (``make`` may be a function, called at most once,
    only if a hook asks)."""
    if not isinstance(make, Layout) and not callable(make):
        raise TypeError(f"layout needs a Layout or a function returning one, not {type(make).__name__}.")
    if isinstance(make, Layout):
        fixed = make
        make = lambda: fixed  # noqa: E731
    memo: list[Layout] = []

    def get() -> Layout:
        if not memo:
            memo.append(make())
        return memo[0]

    token = _CURRENT.set(get)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> Layout | None:
    """The layout of the forward pass now running, if its runner set one."""
    get = _CURRENT.get()
    return None if get is None else get()


def check_positions(positions: str, mode: str | None = None) -> str:
    """``positions`` validated, for a task ``mode`` ("generate" / "loglik") if given."""
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, not {positions!r}.")
    if mode == "loglik" and positions == "generated":
        raise ValueError(
            "positions='generated' means nothing for log-likelihood scoring (no token is generated); "
            "use 'all', 'prompt' or 'last_prompt'."
        )
    return positions


def position_mask(positions: str, x: torch.Tensor) -> torch.Tensor | None:
    """(batch, seq) bool mask of the positions of ``x`` (batch, seq, d) to steer; None: all."""
    if positions == "all":
        return None
    found = current()
    if found is None:
        raise ValueError(
            f"positions={positions!r} needs to know which positions are prompt tokens: run under the "
            "Evaluator, or wrap the forward pass in xsteer.positions.layout(Layout(...))."
        )
    if tuple(found.prompt.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"The position layout is {tuple(found.prompt.shape)} but the pass is {tuple(x.shape[:2])}; "
            "set one layout per forward pass."
        )
    if positions == "prompt":
        return found.prompt
    if positions == "last_prompt":
        return found.last_prompt
    return ~found.prompt  # generated (padding positions are masked from attention either way)
