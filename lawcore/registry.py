"""Law names for `--law NAME`, and rebuilding a law from its JSON."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from precsim.lawcore.base import Law, read_law_json
from precsim.lawcore.chinchilla import ChinchillaLaw
from precsim.lawcore.errors import LawInputError
from precsim.lawcore.ouyang import OuyangPTQLaw
from precsim.lawcore.lowbit import LowBitLaw
from precsim.lawcore.precision import PrecisionLaw
from precsim.lawcore.sun import FloatQuantLaw

LAW_CLASSES: dict[str, type[Law]] = {cls.__name__: cls for cls in (
    ChinchillaLaw, PrecisionLaw, OuyangPTQLaw, LowBitLaw, FloatQuantLaw)}


@dataclass(frozen=True)
class LawEntry:
    """A registered law: class and preset, with a one-line description."""

    name: str
    cls: type[Law]
    preset: str

    @property
    def description(self) -> str:
        return self.cls.PRESET_NOTES[self.preset]

    def make(self, **params: Any) -> Law:
        return self.cls(preset=self.preset, **params)


LAWS: dict[str, LawEntry] = {e.name: e for e in (
    LawEntry("kumar2024", PrecisionLaw, "kumar2024"),
    LawEntry("kumar2024-fp", PrecisionLaw, "kumar2024-fp"),
    LawEntry("kumar2024-b", PrecisionLaw, "kumar2024-b"),
    LawEntry("lowbit-qat", LowBitLaw, "lowbit-qat"),
    LawEntry("sun2025", FloatQuantLaw, "sun2025"),
    LawEntry("ouyang2024", OuyangPTQLaw, "ouyang2024"),
    LawEntry("chinchilla", ChinchillaLaw, "chinchilla"),
    LawEntry("epoch2024", ChinchillaLaw, "epoch2024"),
)}
DEFAULT_LAW = "kumar2024"


def get_law(name: str = DEFAULT_LAW, **params: Any) -> Law:
    """A fresh law by registry name; `params` override constants or fit settings."""
    try:
        entry = LAWS[name]
    except KeyError:
        raise LawInputError(f"unknown law {name!r}; known: {', '.join(LAWS)}") from None
    return entry.make(**params)


def law_from_json(text: str) -> Law:
    """Rebuild a law, fitted state included, from `Law.to_json()` output."""
    doc = read_law_json(text)
    cls = LAW_CLASSES.get(doc.get("law"))
    if cls is None:
        raise LawInputError(f"law JSON: unknown law class {doc.get('law')!r}; known: "
                            f"{', '.join(LAW_CLASSES)}")
    return cls._from_doc(doc)
