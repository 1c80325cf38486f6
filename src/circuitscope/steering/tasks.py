"""In-context-learning tasks for function vectors: input -> output word pairs, written out here."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ICL_TASKS", "IclTask"]


@dataclass(frozen=True)
class IclTask:
    name: str
    pairs: list[tuple[str, str]]
    """(input, output) examples."""

    def __post_init__(self) -> None:
        if len(self.pairs) < 4:
            raise ValueError(f"task {self.name!r} needs at least 4 pairs, got {len(self.pairs)}")


_ANTONYMS = (
    "hot cold|big small|up down|fast slow|happy sad|light dark|old young|rich poor|hard soft|open closed|"
    "high low|early late|good bad|strong weak|long short|wet dry|full empty|clean dirty|loud quiet|"
    "thick thin|heavy light|true false|win lose|day night|love hate|buy sell|push pull|first last|"
    "inside outside|begin end|accept reject|increase decrease|above below|friend enemy|safe dangerous|"
    "cheap expensive|deep shallow|near far|narrow wide|sweet sour"
)
_CAPITALS = (
    "France Paris|Germany Berlin|Italy Rome|Spain Madrid|Japan Tokyo|China Beijing|Russia Moscow|"
    "Egypt Cairo|Greece Athens|Norway Oslo|Sweden Stockholm|Finland Helsinki|Poland Warsaw|Austria Vienna|"
    "Ireland Dublin|Portugal Lisbon|Canada Ottawa|Mexico Mexico City|Peru Lima|Chile Santiago|"
    "Argentina Buenos Aires|Kenya Nairobi|India New Delhi|Thailand Bangkok|Vietnam Hanoi|Iran Tehran|"
    "Iraq Baghdad|Turkey Ankara|Cuba Havana|Hungary Budapest|Denmark Copenhagen|Belgium Brussels|"
    "Netherlands Amsterdam|Switzerland Bern|Australia Canberra|Brazil Brasilia|Colombia Bogota|"
    "Indonesia Jakarta|Philippines Manila|South Korea Seoul"
)
_WORDS = (
    "dog cat house tree river book table apple water green music paper window garden light stone "
    "money horse bread chair phone sugar cloud train bird glass smile dance night world"
)


def _pairs(spec: str, two_word_first: bool = False) -> list[tuple[str, str]]:
    out = []
    for item in spec.split("|"):
        words = item.split()
        if two_word_first and len(words) == 3 and item.startswith("South"):
            out.append((" ".join(words[:2]), words[2]))
        else:
            out.append((words[0], " ".join(words[1:])))
    return out


ICL_TASKS: dict[str, IclTask] = {
    "antonym": IclTask("antonym", _pairs(_ANTONYMS)),
    "country_capital": IclTask("country_capital", _pairs(_CAPITALS, two_word_first=True)),
    "uppercase": IclTask("uppercase", [(w, w.upper()) for w in _WORDS.split()]),
}
