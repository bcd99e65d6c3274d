"""The vocabulary two models share: words both tokenizers write as one token after a space, and
those tokens' embedding rows in each model (the rows of the vocabulary bridge, EMB2EMB)."""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["embedding_rows", "shared_words", "single_token_words"]

MIN_LETTERS = 3


def single_token_words(tokenizer) -> dict[str, int]:
    """Lower-case ASCII words (>= 3 letters) that ``tokenizer`` writes as one token after a space:
    word -> that token's id."""
    vocab = tokenizer.get_vocab()
    out = {}
    for piece, idx in vocab.items():
        text = tokenizer.convert_tokens_to_string([piece])
        word = text[1:]
        if text[:1] == " " and len(word) >= MIN_LETTERS and word.isascii() and word.isalpha() and word.islower():
            out[word] = idx
    return out


def shared_words(tokenizer_a, tokenizer_b) -> list[str]:
    """Sorted words that both tokenizers write as one token after a space."""
    a, b = single_token_words(tokenizer_a), single_token_words(tokenizer_b)
    return sorted(a.keys() & b.keys())


def _embeddings(model) -> torch.Tensor:
    return model.original_model.get_input_embeddings().weight.detach().to("cpu", torch.float32)


def embedding_rows(parent, child, words: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Input-embedding rows (n_words, d_parent) and (n_words, d_child) of the shared one-token
    ``words`` (default: all of :func:`shared_words`), same order in both."""
    ids_p, ids_c = single_token_words(parent.tokenizer), single_token_words(child.tokenizer)
    words = sorted(ids_p.keys() & ids_c.keys()) if words is None else list(words)
    missing = [w for w in words if w not in ids_p or w not in ids_c]
    if missing:
        raise ValueError(f"{len(missing)} words are not one token in both vocabularies (e.g. {missing[0]!r}); "
                         "take them from shared_words(parent.tokenizer, child.tokenizer).")
    if len(words) < 2:
        raise ValueError("The two vocabularies share fewer than 2 one-token words; the vocabulary bridge needs many.")
    idx_p = torch.tensor([ids_p[w] for w in words])
    idx_c = torch.tensor([ids_c[w] for w in words])
    return _embeddings(parent)[idx_p], _embeddings(child)[idx_c]
