"""Procedural English/French parallel sentences, composed from a small bilingual lexicon.

Sentences are "<subject> <verb> the <object> <colour> [<time>]." with French verb conjugation,
gender agreement of article and colour, post-nominal colour adjectives and elision (j'aime).
"""

from __future__ import annotations

import itertools
import random

from xsteer.contrast import ContrastPair

__all__ = ["language_pairs"]

# (English, French, person) with person one of 1s 2p 3s 1p 3p (2p = "you"/"vous").
_SUBJECTS = (
    ("I", "Je", "1s"), ("We", "Nous", "1p"), ("You", "Vous", "2p"), ("He", "Il", "3s"), ("She", "Elle", "3s"),
    ("They", "Ils", "3p"), ("My brother", "Mon frère", "3s"), ("My sister", "Ma sœur", "3s"),
    ("The teacher", "Le professeur", "3s"), ("The child", "L'enfant", "3s"),
    ("Our neighbours", "Nos voisins", "3p"), ("The students", "Les étudiants", "3p"),
)
# English (base, 3rd singular); French forms for 1s 3s 1p 2p 3p.
_VERBS = (
    (("see", "sees"), ("vois", "voit", "voyons", "voyez", "voient")),
    (("buy", "buys"), ("achète", "achète", "achetons", "achetez", "achètent")),
    (("want", "wants"), ("veux", "veut", "voulons", "voulez", "veulent")),
    (("like", "likes"), ("aime", "aime", "aimons", "aimez", "aiment")),
    (("find", "finds"), ("trouve", "trouve", "trouvons", "trouvez", "trouvent")),
    (("wash", "washes"), ("lave", "lave", "lavons", "lavez", "lavent")),
    (("open", "opens"), ("ouvre", "ouvre", "ouvrons", "ouvrez", "ouvrent")),
    (("paint", "paints"), ("peins", "peint", "peignons", "peignez", "peignent")),
    (("clean", "cleans"), ("nettoie", "nettoie", "nettoyons", "nettoyez", "nettoient")),
    (("sell", "sells"), ("vends", "vend", "vendons", "vendez", "vendent")),
    (("look at", "looks at"), ("regarde", "regarde", "regardons", "regardez", "regardent")),
)
_PERSON_INDEX = {"1s": 0, "3s": 1, "1p": 2, "2p": 3, "3p": 4}
# (English noun, French noun, gender)
_OBJECTS = (
    ("car", "voiture", "f"), ("book", "livre", "m"), ("table", "table", "f"), ("chair", "chaise", "f"),
    ("bicycle", "vélo", "m"), ("door", "porte", "f"), ("house", "maison", "f"), ("box", "boîte", "f"),
    ("hat", "chapeau", "m"), ("coat", "manteau", "m"), ("bag", "sac", "m"), ("cup", "tasse", "f"),
    ("window", "fenêtre", "f"), ("boat", "bateau", "m"),
)
# English, French masculine, French feminine
_COLOURS = (
    ("red", "rouge", "rouge"), ("black", "noir", "noire"), ("green", "vert", "verte"),
    ("blue", "bleu", "bleue"), ("white", "blanc", "blanche"), ("grey", "gris", "grise"),
)
_TIMES = (
    ("", ""), (" today", " aujourd'hui"), (" every morning", " chaque matin"),
    (" in the evening", " le soir"), (" every day", " tous les jours"), (" again", " de nouveau"),
)
_VOWELS = set("aeiouhéèêàâîôû")


def _french(subj: str, person: str, verb_forms: tuple[str, ...], noun: str, gender: str, colour: tuple, time: str) -> str:
    verb = verb_forms[_PERSON_INDEX[person]]
    if subj == "Je" and verb[0] in _VOWELS:
        subject_verb = f"J'{verb}"
    else:
        subject_verb = f"{subj} {verb}"
    article = "le" if gender == "m" else "la"
    adj = colour[1] if gender == "m" else colour[2]
    return f"{subject_verb} {article} {noun} {adj}{time}."


def _english(subj: str, person: str, verb: tuple[str, str], noun: str, colour: str, time: str) -> str:
    form = verb[1] if person == "3s" else verb[0]
    return f"{subj} {form} the {colour} {noun}{time}."


def language_pairs(n: int = 256, seed: int = 0) -> list[ContrastPair]:
    """``n`` distinct parallel pairs: French (positive) vs. the same sentence in English (negative)."""
    slots = list(itertools.product(range(len(_SUBJECTS)), range(len(_VERBS)), range(len(_OBJECTS)),
                                   range(len(_COLOURS)), range(len(_TIMES))))
    if not 1 <= n <= len(slots):
        raise ValueError(f"language_pairs can make 1..{len(slots)} distinct pairs, not {n}.")
    pairs = []
    for s, v, o, c, t in random.Random(seed).sample(slots, n):
        en_s, fr_s, person = _SUBJECTS[s]
        en_v, fr_v = _VERBS[v]
        en_o, fr_o, gender = _OBJECTS[o]
        colour = _COLOURS[c]
        en_t, fr_t = _TIMES[t]
        fr = _french(fr_s, person, fr_v, fr_o, gender, colour, fr_t)
        en = _english(en_s, person, en_v, en_o, colour[0], en_t)
        pairs.append(ContrastPair(fr, en, {"positive": "fr", "negative": "en"}))
    return pairs
