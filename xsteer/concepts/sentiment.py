"""Procedural sentiment pairs: the same sentence with a positive vs. a negative word."""

from __future__ import annotations

import itertools
import random

from xsteer.contrast import ContrastPair

__all__ = ["sentiment_pairs"]

_SUBJECTS = (
    "my friend", "the critic", "our guests", "my grandmother", "the customer", "everyone", "the reviewer",
    "my colleague", "Anna", "Tom", "the children", "my neighbour", "the tourists", "our teacher",
)
_THINGS = (
    "meal", "film", "concert", "hotel room", "service", "coffee", "show", "book", "trip", "game",
    "museum tour", "new phone", "class", "party", "haircut", "flight", "album", "garden", "lecture", "pizza",
)
_WHEN = ("yesterday", "last week", "on Friday", "this morning", "last night", "over the weekend")
# Each positive word is paired with one negative word, so a pair differs in that word only.
_ADJECTIVES = (
    ("wonderful", "terrible"), ("delightful", "awful"), ("excellent", "horrible"), ("lovely", "dreadful"),
    ("fantastic", "miserable"), ("pleasant", "unpleasant"), ("superb", "disappointing"),
    ("amazing", "appalling"), ("great", "bad"), ("charming", "annoying"),
)
_VERBS = (
    ("loved", "hated"), ("enjoyed", "disliked"), ("adored", "despised"), ("praised", "criticised"),
    ("was thrilled by", "was upset by"), ("was impressed by", "was disgusted by"),
)
_TEMPLATES = {
    "thought": ("adj", "{Subj} thought the {thing} {when} was {w}."),
    "experience": ("adj", "{Subj} had a {w} experience with the {thing} {when}."),
    "according": ("adj", "According to {subj}, the {thing} {when} was {w}."),
    "verb": ("verb", "{Subj} {w} the {thing} {when}."),
    "said": ("verb", "People say that {subj} {w} the {thing} {when}."),
}


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _all_slots():
    for (tid, (kind, tpl)), subj, thing, when in itertools.product(_TEMPLATES.items(), _SUBJECTS, _THINGS, _WHEN):
        words = _ADJECTIVES if kind == "adj" else _VERBS
        for pos, neg in words:
            yield tid, tpl, subj, thing, when, pos, neg


def sentiment_pairs(n: int = 256, seed: int = 0) -> list[ContrastPair]:
    """``n`` distinct pairs, positive sentiment first ("... was wonderful." vs "... was terrible.")."""
    slots = list(_all_slots())
    if not 1 <= n <= len(slots):
        raise ValueError(f"sentiment_pairs can make 1..{len(slots)} distinct pairs, not {n}.")
    pairs = []
    for tid, tpl, subj, thing, when, pos, neg in random.Random(seed).sample(slots, n):
        fill = {"Subj": _cap(subj), "subj": subj, "thing": thing, "when": when}
        pairs.append(
            ContrastPair(tpl.format(w=pos, **fill), tpl.format(w=neg, **fill), {"template": tid, "words": [pos, neg]})
        )
    return pairs
