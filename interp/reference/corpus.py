"""A seeded generator of the reference corpus: five task families with known mechanisms.

The corpus mixes

1. **greater-than** sentences, "The war lasted from the year 1732 to the year 1745.",
   where the second year's last two digits are always larger than the first's;
2. **factual recall** over two fixed bijections, subject -> birthplace and
   subject -> job;
3. **induction**: a random segment of words that is then repeated;
4. **finite-state-machine traces**: walks on a fixed random graph of 24 states;
5. **templated prose** whose slots are filled from semantic classes (colours,
   animals, names, numbers, places).

The facts and the FSM graph form the :class:`World`; it is drawn once from
``WORLD_SEED`` and is part of the reference model's definition. The corpus seed only
changes which documents are sampled. Documents are produced as token strings with a
label per token, so every later analysis has its ground truth aligned to tokens.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from interp.errors import ConfigError
from interp.reference import vocab as V

WORLD_SEED = 20240501
"""Seed of the fixed world (facts and FSM). Changing it makes a different reference model."""

FSM_OUT_DEGREE = 3
INDUCTION_POOL: tuple[str, ...] = (
    V.COLOURS + V.ANIMALS + V.NAMES + V.NUMBERS + V.PLACES + V.JOBS
)
DEFAULT_MIXTURE: dict[str, float] = {
    "greater_than": 0.30,
    "facts": 0.15,
    "induction": 0.25,
    "fsm": 0.10,
    "prose": 0.20,
}
FSM_TRACE_LENGTH = 32
"""States per trace. Fixed, so that where a trace ends is predictable: with random
lengths the end marker takes probability from the legal next states at every step."""

PROSE_TEMPLATES: tuple[str, ...] = (
    "The {colour} {animal} chased the {colour} {animal} .",
    "{name} saw {number} {colour} birds near {place} .",
    "{name} met {name} in {place} yesterday .",
    "{name} owns a {colour} {animal} and {number} boats .",
    "{name} visited {place} with a {animal} .",
    "The {animal} walked toward {place} slowly .",
    "{name} painted {number} {colour} houses .",
    "{name} rode a {colour} {animal} to {place} today .",
    "The {colour} {animal} ran quickly after {name} .",
    "{name} bought {number} {animal} in {place} .",
)
FACT_TEMPLATES: dict[str, str] = {
    "born_in": "{subject} was born in {place} .",
    "works_as": "{subject} works as a {job} .",
}
FACT_BOTH_TEMPLATE = "{subject} was born in {place} and works as a {job} ."
GT_TEMPLATES: tuple[str, ...] = (
    "The {gt_noun} lasted from the year {year1} to the year {year2} .",
    "The {gt_noun} started in the year {year1} and ended in the year {year2} .",
)
GT_MIN_YY = 2
GT_MAX_YY = 97


@dataclass(frozen=True)
class World:
    """The fixed facts and finite-state machine that the reference model learns."""

    born_in: dict[str, str]
    """subject -> place (a bijection onto the first len(SUBJECTS) places)."""
    works_as: dict[str, str]
    """subject -> job (a bijection onto the first len(SUBJECTS) jobs)."""
    fsm: dict[str, tuple[str, ...]]
    """state -> its legal successor states."""

    @classmethod
    def from_seed(cls, seed: int = WORLD_SEED) -> World:
        rng = random.Random(seed)
        subjects = list(V.SUBJECTS)
        places = rng.sample(V.PLACES, len(subjects))
        jobs = rng.sample(V.JOBS, len(subjects))
        fsm = {}
        for state in V.FSM_STATES:
            others = [s for s in V.FSM_STATES if s != state]
            fsm[state] = tuple(sorted(rng.sample(others, FSM_OUT_DEGREE)))
        return cls(
            born_in=dict(zip(subjects, places)),
            works_as=dict(zip(subjects, jobs)),
            fsm=fsm,
        )

    def __repr__(self) -> str:
        return (f"World({len(self.born_in)} subjects with born_in and works_as facts, "
                f"FSM of {len(self.fsm)} states)")

    def relation(self, name: str) -> dict[str, str]:
        if name == "born_in":
            return self.born_in
        if name == "works_as":
            return self.works_as
        raise ConfigError(f"unknown relation {name!r}; the relations are 'born_in' and 'works_as'")


@dataclass
class Document:
    """One generated document: token strings (vocabulary entries) and a label per token."""

    task: str
    tokens: list[str] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)

    def add(self, word: str, label: str | None = None) -> None:
        self.tokens.append(word if word in V.PUNCTUATION else V.SPACE + word)
        self.labels.append(label)

    def add_year(self, century: str, yy: int) -> None:
        self.tokens.append(V.SPACE + century)
        self.labels.append("century")
        self.tokens.append(f"{yy:02d}")
        self.labels.append("year")

    def __repr__(self) -> str:
        from interp.reports import clip

        return f"Document({self.task!r}, {len(self.tokens)} tokens: {clip(self.text, 60)})"

    @property
    def text(self) -> str:
        return "".join(self.tokens).replace(V.SPACE, " ").strip()


_SLOT_CLASSES = {
    "colour": V.COLOURS,
    "animal": V.ANIMALS,
    "name": V.NAMES,
    "number": V.NUMBERS,
    "place": V.PLACES,
    "gt_noun": V.GT_NOUNS,
}


class CorpusGenerator:
    """Yields reference-corpus documents, deterministically for a seed.

    Args:
        seed: sampling seed; the same seed gives the same documents.
        world: the facts and FSM; defaults to ``World.from_seed(WORLD_SEED)``.
        mixture: weight of each task family (keys of ``DEFAULT_MIXTURE``).
    """

    def __init__(
        self,
        seed: int = 0,
        world: World | None = None,
        mixture: dict[str, float] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.world = world if world is not None else World.from_seed()
        self.mixture = dict(mixture if mixture is not None else DEFAULT_MIXTURE)
        unknown = set(self.mixture) - set(DEFAULT_MIXTURE)
        if unknown:
            raise ConfigError(
                f"unknown task families {sorted(unknown)}; choose from {sorted(DEFAULT_MIXTURE)}"
            )
        self._tasks = list(self.mixture)
        self._weights = [self.mixture[t] for t in self._tasks]
        self._makers = {
            "greater_than": self.greater_than,
            "facts": self.facts,
            "induction": self.induction,
            "fsm": self.fsm_trace,
            "prose": self.prose,
        }

    def __iter__(self) -> Iterator[Document]:
        while True:
            yield self.document()

    def document(self) -> Document:
        task = self.rng.choices(self._tasks, self._weights)[0]
        return self._makers[task]()

    def _fill(self, doc: Document, template: str, values: dict[str, str] | None = None) -> None:
        values = values or {}
        for word in template.split():
            if word.startswith("{") and word.endswith("}"):
                slot = word[1:-1]
                value = values.get(slot)
                if value is None:
                    value = self.rng.choice(_SLOT_CLASSES[slot])
                doc.add(value, slot)
            else:
                doc.add(word)

    def greater_than(self) -> Document:
        doc = Document("greater_than")
        century = self.rng.choice(V.CENTURIES)
        yy = self.rng.randint(GT_MIN_YY, GT_MAX_YY)
        zz = self.rng.randint(yy + 1, 99)
        template = self.rng.choice(GT_TEMPLATES)
        for word in template.split():
            if word == "{year1}":
                doc.add_year(century, yy)
            elif word == "{year2}":
                doc.add_year(century, zz)
            elif word == "{gt_noun}":
                doc.add(self.rng.choice(V.GT_NOUNS), "gt_noun")
            else:
                doc.add(word)
        return doc

    def facts(self) -> Document:
        doc = Document("facts")
        subject = self.rng.choice(V.SUBJECTS)
        values = {
            "subject": subject,
            "place": self.world.born_in[subject],
            "job": self.world.works_as[subject],
        }
        roll = self.rng.random()
        if roll < 0.4:
            template = FACT_TEMPLATES["born_in"]
        elif roll < 0.8:
            template = FACT_TEMPLATES["works_as"]
        else:
            template = FACT_BOTH_TEMPLATE
        self._fill(doc, template, values)
        return doc

    def induction(self) -> Document:
        doc = Document("induction")
        length = self.rng.randint(6, 16)
        segment = self.rng.choices(INDUCTION_POOL, k=length)
        for word in segment:
            doc.add(word, "induction_first")
        for word in segment:
            doc.add(word, "induction_repeat")
        doc.add(".")
        return doc

    def fsm_trace(self) -> Document:
        doc = Document("fsm")
        doc.add("trace")
        doc.add(":")
        state = self.rng.choice(V.FSM_STATES)
        for _ in range(FSM_TRACE_LENGTH):
            doc.add(state, "fsm_state")
            state = self.rng.choice(self.world.fsm[state])
        doc.add(".")
        return doc

    def prose(self) -> Document:
        doc = Document("prose")
        self._fill(doc, self.rng.choice(PROSE_TEMPLATES))
        return doc


def token_ids(tokenizer, seed: int = 0, mixture: dict[str, float] | None = None) -> Iterator[list[int]]:
    """Endless corpus documents as token ids of ``tokenizer`` (the reference vocabulary; no text round trip)."""
    vocab = tokenizer.get_vocab()
    for doc in CorpusGenerator(seed=seed, mixture=mixture):
        yield [vocab[t] for t in doc.tokens]
