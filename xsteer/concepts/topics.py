"""Topic concepts held out from every fit: procedural pairs that differ in one noun (a topic noun vs.
an everyday object), each with a keyword judge that scores the share of topic words in a text.

``TOPICS`` names them (music, sport, medicine, space, cooking); ``topic_pairs(name)`` makes the
pairs, ``topic_concept(name)`` wraps them as a :class:`~xsteer.concepts.Concept`, and
``TopicJudge(name)`` scores generated text (it never sees a vector). ``topic_lexicon(name)`` is the
judge's word list, also the list that :func:`xsteer.transfer.corpus.hold_out` keeps out of a
transfer's anchors for that concept.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Sequence

import numpy as np

from xsteer.contrast import ContrastPair

from .base import Concept, concept_from_pairs

__all__ = ["NEUTRAL_NOUNS", "TOPICS", "TopicJudge", "topic_concept", "topic_lexicon", "topic_pairs", "words"]

#: Everyday objects that belong to no topic: the negative side of every topic pair.
NEUTRAL_NOUNS = (
    "stapler", "envelope", "ladder", "carpet", "drawer", "folder", "doormat", "shelf", "pencil", "mailbox",
    "cardboard box", "light switch", "hallway", "calendar", "filing cabinet", "staircase",
)

# topic -> (pair nouns, the same number as NEUTRAL_NOUNS; more topic words for the judge's lexicon)
_TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "music": (
        ("guitar", "piano", "violin", "melody", "concert", "orchestra", "drummer", "symphony", "song",
         "album", "choir", "trumpet", "saxophone", "cello", "harp", "opera"),
        ("music", "musical", "musician", "musicians", "sing", "sings", "singing", "sang", "singer", "songs",
         "melodies", "rhythm", "tune", "tunes", "chord", "chords", "lyrics", "drum", "drums", "band", "bands",
         "concerts", "guitarist", "pianist", "violinist", "composer", "compose", "composed", "harmony",
         "note", "notes", "jazz", "rock", "pop", "hip-hop", "beat", "beats", "orchestral", "instrument",
         "instruments", "flute", "bass", "rap", "playlist", "record", "records", "vinyl", "chorus", "verse",
         "track", "tracks", "listen", "listening", "radio", "tempo", "acoustic", "classical"),
    ),
    "sport": (
        ("football", "goalpost", "stadium", "goalkeeper", "marathon", "basketball", "referee",
         "championship", "footballer", "gymnast", "athlete", "tournament", "cyclist", "baseball",
         "volleyball", "sprinter"),
        ("sport", "sports", "team", "teams", "match", "matches", "game", "games", "player", "players",
         "coach", "league", "score", "scored", "scores", "goal", "goals", "win", "won", "winning", "champion",
         "champions", "olympic", "olympics", "race", "racing", "runner", "running", "athletes", "fans",
         "season", "training", "workout", "fitness", "golf", "swimming", "cycling", "boxing", "tennis",
         "hockey", "cricket", "rugby", "ball", "kick", "pitch", "court", "medal", "trophy", "sprint"),
    ),
    "medicine": (
        ("stethoscope", "hospital", "surgeon", "vaccine", "prescription", "antibiotic", "nurse", "diagnosis",
         "clinic", "syringe", "pharmacy", "x-ray", "ambulance", "bandage", "thermometer", "patient"),
        ("medicine", "medical", "medication", "medications", "doctor", "doctors", "nurses", "patients",
         "hospitals", "clinics", "surgery", "disease", "diseases", "illness", "symptom", "symptoms",
         "treatment", "treatments", "therapy", "health", "healthcare", "pill", "pills", "drug", "drugs",
         "dose", "infection", "virus", "bacteria", "vaccines", "vaccination", "cancer", "diabetes", "heart",
         "blood", "pain", "fever", "injury", "surgeons", "diagnosed", "cure", "heal", "healing", "sick",
         "physician", "pharmacist", "antibiotics", "prescribed"),
    ),
    "space": (
        ("telescope", "galaxy", "planet", "astronaut", "rocket", "comet", "asteroid", "nebula", "satellite",
         "spacecraft", "meteor", "cosmonaut", "quasar", "planetarium", "observatory", "orbit"),
        ("space", "universe", "cosmos", "cosmic", "stars", "star", "planets", "galaxies", "astronauts",
         "rockets", "nasa", "moon", "lunar", "mars", "jupiter", "saturn", "solar", "sun", "orbiting",
         "orbital", "astronomy", "astronomer", "astronomers", "telescopes", "satellites", "comets",
         "asteroids", "meteors", "gravity", "launch", "launched", "mission", "missions", "alien", "aliens",
         "spaceship", "interstellar", "light-years", "supernova", "celestial", "milky", "earth"),
    ),
    "cooking": (
        ("saucepan", "recipe", "oven", "skillet", "chef", "casserole", "whisk", "cookbook", "spatula",
         "dough", "soup", "baguette", "omelette", "pastry", "garlic", "stew"),
        ("cooking", "cook", "cooks", "cooked", "kitchen", "recipes", "bake", "baking", "baked", "fry",
         "fried", "boil", "boiled", "simmer", "chop", "chopped", "ingredient", "ingredients", "flour",
         "sugar", "butter", "salt", "pepper", "onion", "onions", "sauce", "dish", "dishes", "meal", "meals",
         "dinner", "lunch", "breakfast", "food", "delicious", "tasty", "flavor", "flavour", "spices", "spice",
         "bread", "cake", "pasta", "rice", "vegetables", "chefs", "grill", "grilled", "stove", "pan", "pot"),
    ),
}
TOPICS: tuple[str, ...] = tuple(_TOPICS)
"""Built-in topic concepts."""

_SUBJECTS = (
    "my friend", "the old man", "our neighbour", "my sister", "the student", "a stranger", "my uncle",
    "the woman next door", "my colleague", "the boy", "our guest", "my cousin",
)
_WHEN = ("yesterday", "last week", "on Sunday", "this morning", "in the evening", "after work")
_TEMPLATES = (
    "{Subj} talked about the {w} {when}.",
    "{Subj} kept thinking about the {w} {when}.",
    "{When}, {subj} wrote a long letter about the {w}.",
    "{Subj} asked me about the {w} {when}.",
    "{Subj} hung a picture of a {w} on the wall {when}.",
    "{Subj} read an article about the {w} {when}.",
)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _check(name: str) -> str:
    key = name.strip().lower()
    if key not in _TOPICS:
        raise ValueError(f"Unknown topic {name!r}; use one of {TOPICS}.")
    return key


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters, digits, inner hyphens and apostrophes)."""
    return re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", text.lower())


def topic_lexicon(name: str) -> frozenset[str]:
    """Every word of the topic: its pair nouns (each word of a two-word noun) and its judge words."""
    nouns, extra = _TOPICS[_check(name)]
    return frozenset(w for phrase in (*nouns, *extra) for w in words(phrase))


def topic_pairs(name: str, n: int = 256, seed: int = 0) -> list[ContrastPair]:
    """``n`` distinct pairs: a sentence about a topic noun (positive) vs. the same sentence about an
    everyday object (negative); each topic noun always meets the same object, so a pair differs in
    that noun only."""
    nouns, _ = _TOPICS[_check(name)]
    slots = list(itertools.product(range(len(_TEMPLATES)), _SUBJECTS, _WHEN, range(len(nouns))))
    if not 1 <= n <= len(slots):
        raise ValueError(f"topic_pairs can make 1..{len(slots)} distinct pairs, not {n}.")
    pairs = []
    for t, subj, when, k in random.Random(seed).sample(slots, n):
        fill = {"Subj": _cap(subj), "subj": subj, "when": when, "When": _cap(when)}
        pos, neg = nouns[k], NEUTRAL_NOUNS[k]
        pairs.append(ContrastPair(_TEMPLATES[t].format(w=pos, **fill), _TEMPLATES[t].format(w=neg, **fill),
                                  {"topic": name, "words": [pos, neg]}))
    return pairs


def topic_concept(name: str, *, n: int = 256, seed: int = 0, held_out: float = 0.25, judge=None,
                  instruction: str | None = None) -> Concept:
    """The topic as a concept, judged by its keyword share (``TopicJudge``) unless ``judge`` is given;
    ``load_concept(name)`` returns it."""
    key = _check(name)
    return concept_from_pairs(key, topic_pairs(key, n, seed), held_out=held_out, seed=seed,
                              judge=judge or TopicJudge(key), instruction=instruction or f"Talk about {key}.",
                              description=f"a sentence about a {key} noun vs. the same sentence about an everyday object")


class TopicJudge:
    """Share of a text's words that belong to the topic's lexicon, in [0, 1]; an empty text scores 0."""

    def __init__(self, topic: str):
        self.topic = _check(topic)
        self.name = f"topic:{self.topic}"
        self.lexicon = topic_lexicon(self.topic)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TopicJudge) and other.topic == self.topic

    def __hash__(self) -> int:
        return hash(("TopicJudge", self.topic))

    def __repr__(self) -> str:
        return f"TopicJudge({self.topic!r})"

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Topic-word share per text."""
        out = []
        for t in texts:
            ws = words(t)
            out.append(sum(w in self.lexicon or (w.endswith("s") and w[:-1] in self.lexicon) for w in ws) / len(ws)
                       if ws else 0.0)
        return np.array(out, dtype=float)
