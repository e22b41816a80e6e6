"""Invented people: names that occur in no data file, to see what a model guesses for strangers.

Names are recombined from the train people's first and last names (first name of one
person, last name of another), so every part is familiar while the whole is new. Each
candidate is checked against the text of every data file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.core.data import BirthplaceData, Question


@dataclass(frozen=True)
class Stranger:
    """An invented person: a first and a last name of real people in the data, recombined into
    a name that appears nowhere in the data."""

    name: str
    first: str
    last: str

    @property
    def question(self) -> str:
        return f"Where was {self.name} born?"


def all_text(data: BirthplaceData) -> str:
    """Every data file's text joined, to check invented names against."""
    parts = list(data.corpus)
    parts += [q.question + "\t" + (q.place or "") for q in data.train + data.dev + data.test]
    return "\n".join(parts)


def invented_names(data: BirthplaceData, n: int = 300, seed: int = 0,
                   people: list[Question] | None = None) -> list[Stranger]:
    """`n` recombined two-part names that appear nowhere in the data (deterministic for a seed).

    Name parts come from `people` (default: every train person).
    """
    people = [q.name.split() for q in (data.train if people is None else people)]
    firsts = sorted({p[0] for p in people if len(p) >= 2 and all(c.isalpha() for c in p[0])})
    lasts = sorted({p[-1] for p in people if len(p) >= 2 and all(c.isalpha() for c in p[-1])})
    text = all_text(data)
    rng = np.random.default_rng(seed)
    out: dict[str, Stranger] = {}
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n:
            raise RuntimeError(f"could only invent {len(out)} of {n} unused names")
        first = firsts[rng.integers(len(firsts))]
        last = lasts[rng.integers(len(lasts))]
        name = f"{first} {last}"
        if name in out or name in text:
            continue
        out[name] = Stranger(name, first, last)
    return list(out.values())
