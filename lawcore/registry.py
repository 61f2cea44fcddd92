"""Law names for `--law NAME`, and rebuilding a law from its JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from precsim.lawcore.base import JSON_FORMAT, Law
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
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LawInputError(f"law JSON is malformed: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT:
        raise LawInputError(f"not a PrecSim law JSON: expected \"format\": \"{JSON_FORMAT}\"")
    cls = LAW_CLASSES.get(doc.get("law"))
    if cls is None:
        raise LawInputError(f"law JSON: unknown law class {doc.get('law')!r}; known: "
                            f"{', '.join(LAW_CLASSES)}")
    params = doc.get("params")
    if not isinstance(params, dict):
        raise LawInputError("law JSON: 'params' must be an object")
    try:
        law = cls(**params)
    except TypeError as exc:
        raise LawInputError(f"law JSON: bad params: {exc}") from None
    fit = doc.get("fit")
    if fit is not None:
        if not isinstance(fit, dict):
            raise LawInputError("law JSON: 'fit' must be an object or null")
        law._restore_fit(fit)
    return law
