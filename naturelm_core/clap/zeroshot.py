"""Zero-shot label sets and prompts for CLAP: which texts are compared with the audio.

- A label is a species (or any sound class) the user names: a common name ("Eurasian Wren"), a
  scientific name, or a BirdNET label ("Troglodytes troglodytes_Eurasian Wren"). Names that match
  a BirdNET species exactly (case-, accent- and punctuation-insensitive) get both names filled in.
- A template turns a label into a prompt: ``{common_name}`` and ``{scientific_name}`` are
  replaced ("This is a sound of {common_name}." -> "This is a sound of Eurasian Wren.").
- `detect` compares "animal vocalising" prompts with background prompts: P(animal) is the softmax
  mass of the animal prompts among all of them.

Every text that changes answers enters `PromptSet.settings()`, and so the run's fingerprint,
with a digest of the label set.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from naturelm_core.labels import SpeciesIndex, normalise_name, split_birdnet_label

TEMPLATE_FIELDS = ("common_name", "scientific_name")
#: "Genus species[ subspecies]_Common name", as BirdNET writes its labels.
_BIRDNET_LABEL = re.compile(r"^[A-Z][a-z-]+ [a-z-]+(?: [a-z-]+)?_[^_]+$")

#: Each family's evaluated wording. MS-CLAP 2023's ESC-50 example (93.9 %) uses "this is the
#: sound of <class>"; transformers' zero-shot pipeline (LAION) uses "This is a sound of {}.".
DEFAULT_TEMPLATES = {
    "msclap-2023": "this is the sound of {common_name}",
    "transformers": "This is a sound of {common_name}.",
}
#: Phrases put in the family's template for `detect` (animal vs background).
DETECT_PHRASES: tuple[str, ...] = (
    "a bird singing",
    "a bird calling",
    "an animal calling",
    "a frog calling",
    "an insect chirping",
    "a bat echolocating",
)
BACKGROUND_PHRASES: tuple[str, ...] = (
    "wind",
    "rain",
    "silence",
    "background noise",
    "traffic",
    "people talking",
)


@dataclass(frozen=True)
class Label:
    """One entry of a label set."""

    name: str  # as the user wrote it; the `answer_text` of predictions
    common_name: str
    scientific_name: str | None  # None when the name is no known species


def check_template(template: str) -> None:
    """ValueError unless `template` uses only {common_name} / {scientific_name}, at least one."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"template {template!r}: {exc}") from None
    unknown = sorted(set(fields) - set(TEMPLATE_FIELDS))
    if unknown or not fields:
        raise ValueError(
            f"template {template!r} must contain {{common_name}} or {{scientific_name}} and nothing else "
            f"in braces; found {fields or 'no fields'}"
        )


def render(template: str, label: Label) -> str:
    if "{scientific_name}" in template and label.scientific_name is None:
        raise ValueError(f"label {label.name!r} has no known scientific name for template {template!r}")
    return template.format(common_name=label.common_name, scientific_name=label.scientific_name or "")


def resolve_label(name: str, species: SpeciesIndex | None) -> Label:
    """A label from a user's name: BirdNET-style, a known species, or a free name."""
    text = " ".join(str(name).split())
    if not text:
        raise ValueError("empty label name")
    if _BIRDNET_LABEL.match(text):
        parsed = split_birdnet_label(text)
        return Label(text, parsed.common_name, parsed.scientific_name)
    if species is not None:
        found = species.lookup(text)
        key = normalise_name(text)
        if found is not None and key in (normalise_name(found.common_name), normalise_name(found.scientific_name)):
            return Label(text, found.common_name, found.scientific_name)
    return Label(text, text, None)


def read_labels_file(path: str | Path) -> list[str]:
    """One label per line; blank lines and lines starting with # are ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"labels file {path}: cannot read: {exc}") from None
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise ValueError(f"labels file {path}: no labels")
    return names


def build_label_set(names: Iterable[str], species: SpeciesIndex | None) -> tuple[Label, ...]:
    labels = [resolve_label(n, species) for n in names]
    seen: dict[str, str] = {}
    for label in labels:
        key = normalise_name(label.common_name)
        if key in seen:
            raise ValueError(f"labels {seen[key]!r} and {label.name!r} name the same class")
        seen[key] = label.name
    if not labels:
        raise ValueError("the label set is empty")
    return tuple(labels)


def digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class PromptSet:
    """The texts one backend instance compares with audio."""

    template: str
    labels: tuple[Label, ...] | None  # None: no label set (classify needs per-call candidates)
    detect_prompts: tuple[str, ...]
    background_prompts: tuple[str, ...]

    def __post_init__(self) -> None:
        check_template(self.template)
        if not self.detect_prompts or not self.background_prompts:
            raise ValueError("detect needs at least one animal prompt and one background prompt")
        overlap = set(self.detect_prompts) & set(self.background_prompts)
        if overlap:
            raise ValueError(f"prompts both animal and background: {sorted(overlap)}")
        if self.labels is not None:
            for label in self.labels:
                render(self.template, label)  # fails early on a missing scientific name

    def label_prompts(self, labels: Sequence[Label] | None = None) -> list[str]:
        chosen = self.labels if labels is None else labels
        return [render(self.template, label) for label in chosen or ()]

    @property
    def labels_sha256(self) -> str | None:
        if self.labels is None:
            return None
        return digest([[l.name, l.common_name, l.scientific_name] for l in self.labels])

    @property
    def classify_prompt_id(self) -> str:
        return f"clap-classify:{digest([self.template, self.labels_sha256])[:12]}"

    @property
    def candidates_prompt_id(self) -> str:
        return f"clap-candidates:{digest(self.template)[:12]}"

    @property
    def detect_prompt_id(self) -> str:
        return f"clap-detect:{digest([self.detect_prompts, self.background_prompts])[:12]}"

    def settings(self) -> dict:
        return {
            "template": self.template,
            "labels": [l.name for l in self.labels] if self.labels is not None else None,
            "labels_sha256": self.labels_sha256,
            "detect_prompts": list(self.detect_prompts),
            "background_prompts": list(self.background_prompts),
        }


def default_detect_prompts(family: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(animal prompts, background prompts) in `family`'s default template wording."""
    template = DEFAULT_TEMPLATES[family]
    fill = lambda phrase: template.format(common_name=phrase)  # noqa: E731
    return tuple(map(fill, DETECT_PHRASES)), tuple(map(fill, BACKGROUND_PHRASES))
