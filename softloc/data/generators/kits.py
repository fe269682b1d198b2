"""Recorded drum kits for the drum generator: discovery, the evaluation hold-out, loading, splits.

* :func:`discover_kits` finds kits in the folders Debian installs them to
  (:data:`SYSTEM_KIT_DIRS`: ``hydrogen-drumkits``, ``fluid-soundfont-gm``) and in any path a user
  passes: a Hydrogen kit folder, an ``.sfz`` file, an ``.sf2`` / ``.sf3`` file (one kit per
  General-MIDI drum preset), a folder holding any of these, or a folder of one-shots.
* :func:`load_kits` reads them (:mod:`~softloc.data.generators.kit_formats`,
  :mod:`~softloc.data.generators.soundfont`), once per process, and
  keeps the kits that can play all of KD, SD and HH.
* :func:`split_kits` assigns whole *families* (kits that share recordings, e.g. the presets of one
  SoundFont) to train / valid / test, so that test kits are never heard in training.

**Evaluation hold-out.** Some freely available kits are reserved for independent evaluation of
the drum detector (issue 12): they must never be trained on, tuned on or shipped. Discovery never
returns them, whatever path is given. Following the team rule, their names are not written in the
code: :data:`EVALUATION_HOLDOUT` holds the SHA-256 prefix of a normalised fragment of each name
(lower case, letters and digits only), and a kit is held out when any of its names (folder and
file names along its path, its kit or preset name) contains one. This is the one place that
defines the hold-out; check a name with :func:`is_evaluation_holdout`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from softloc.data.generators.kit_formats import (
    AUDIO_SUFFIXES,
    ROLE_LABELS,
    SampleKit,
    classify_instrument,
    read_folder_kit,
    read_hydrogen_kit,
    read_sfz_kit,
)
from softloc.data.generators.soundfont import read_sf2_kits, sf2_drum_presets

__all__ = [
    "EVALUATION_HOLDOUT",
    "SYSTEM_KIT_DIRS",
    "KitSource",
    "discover_kits",
    "is_evaluation_holdout",
    "load_kits",
    "split_kits",
]

log = logging.getLogger(__name__)

#: Where Debian's ``hydrogen-drumkits`` and ``fluid-soundfont-gm`` packages put their kits.
SYSTEM_KIT_DIRS: tuple[str, ...] = ("/usr/share/hydrogen/data/drumkits", "/usr/share/sounds/sf2")

#: The evaluation hold-out: ``(length, sha256 hex prefix)`` of normalised name fragments of the
#: kits reserved for evaluation (three Hydrogen kits, the AVL drum kits and two GM SoundFonts).
EVALUATION_HOLDOUT: frozenset[tuple[int, str]] = frozenset({
    (12, "6c33b73150416d49"), (10, "98cb60970d325ce2"), (9, "7e64ff29858c65d6"),
    (8, "16d6baff8555ae7f"), (10, "f87f2641c631bbd3"), (11, "0ed489d0f85c5691"),
    (7, "dbd951aaa00a3f10"), (16, "ab9bc5dc604e232c"), (8, "92447e591eda62e8"),
})
_K = TypeVar("_K", "KitSource", SampleKit)
_SF_SUFFIXES = (".sf2", ".sf3")


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_evaluation_holdout(*names: str) -> bool:
    """True when any of ``names`` contains a fragment of :data:`EVALUATION_HOLDOUT`.

    Names are compared lower-cased with everything but letters and digits removed, so spaces,
    dots and underscores do not matter.
    """
    # read at each call, so that a test (or a user) can extend the set
    lengths = sorted({n for n, _ in EVALUATION_HOLDOUT})
    for name in names:
        s = _squash(name)
        for n in lengths:
            for i in range(len(s) - n + 1):
                if (n, hashlib.sha256(s[i:i + n].encode()).hexdigest()[:16]) in EVALUATION_HOLDOUT:
                    return True
    return False


@dataclass(frozen=True)
class KitSource:
    """A kit found on disk, not read yet.

    Attributes:
        kind: ``"hydrogen"``, ``"sfz"``, ``"sf2"`` or ``"folder"``.
        path: the kit folder or file (resolved).
        name: a readable name.
        family: kits of one family share recordings (the presets of one SoundFont).
        program: the SF2 drum preset (bank 128); None for other kinds.
    """

    kind: str
    path: str
    name: str
    family: str
    program: int | None = None


def _hydrogen_name(folder: Path) -> str:
    head = (folder / "drumkit.xml").read_text(errors="replace")[:4000]
    m = re.search(r"<name>([^<]*)</name>", head)
    return m.group(1).strip() if m and m.group(1).strip() else folder.name


def _hydrogen_plays_all_classes(folder: Path) -> bool:
    """Whether the instrument names of a Hydrogen kit cover KD, SD and HH (no audio read)."""
    try:
        root = ET.parse(folder / "drumkit.xml").getroot()
    except ET.ParseError:
        return True  # let the reader report it with its line
    names = [child.text or "" for inst in root.iter() if inst.tag.endswith("instrument")
             for child in inst if child.tag.rsplit("}", 1)[-1] == "name"]
    labels = {ROLE_LABELS.get(classify_instrument(n) or "", None) for n in names}
    return {"HH", "KD", "SD"} <= labels


def _sources_in(path: Path, *, folder_kit: bool) -> list[KitSource]:
    """Kits at ``path``; a folder with no kit file inside is a folder kit when ``folder_kit``."""
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in _SF_SUFFIXES:
            return [KitSource("sf2", str(path), f"{path.stem} {name}", path.stem, program)
                    for program, name in sf2_drum_presets(path)]
        if suffix == ".sfz":
            return [KitSource("sfz", str(path), path.stem, path.stem)]
        return []
    if (path / "drumkit.xml").is_file():
        if not _hydrogen_plays_all_classes(path):
            log.info("drum kit %s skipped: its instruments do not cover KD, SD and HH", path)
            return []
        return [KitSource("hydrogen", str(path), _hydrogen_name(path), path.name)]
    found: list[KitSource] = []
    has_audio = False
    for root, dirs, files in os.walk(path):
        root_p = Path(root)
        if "drumkit.xml" in files and root_p != path:
            found += _sources_in(root_p, folder_kit=False)
            dirs[:] = []
            continue
        dirs.sort()
        for f in sorted(files):
            if f.lower().endswith(_SF_SUFFIXES + (".sfz",)):
                found += _sources_in(root_p / f, folder_kit=False)
            has_audio = has_audio or f.lower().endswith(AUDIO_SUFFIXES)
    if not found and has_audio and folder_kit:
        found.append(KitSource("folder", str(path), path.name, path.name))
    return found


def discover_kits(paths: Iterable[str | os.PathLike] = (), *, system: bool = True,
                  exclude: Sequence[str] = ()) -> list[KitSource]:
    """Find drum kits on disk, never the :data:`EVALUATION_HOLDOUT`.

    Args:
        paths: kits to use besides the system ones: Hydrogen kit folders, ``.sfz`` / ``.sf2`` /
            ``.sf3`` files, folders holding such kits (searched recursively), or a folder of
            one-shots (when no kit file is inside it).
        system: also search :data:`SYSTEM_KIT_DIRS` (those that exist).
        exclude: more names to leave out (same matching as the hold-out: a kit is left out when
            one of its names contains one of these, ignoring case and punctuation).

    Returns:
        the kits found, each once (by resolved path and preset), sorted by family and name.

    Raises:
        FileNotFoundError: a path in ``paths`` does not exist.
    """
    roots: list[tuple[Path, bool]] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"discover_kits: kit path {p} does not exist")
        roots.append((p, True))
    if system:
        roots += [(Path(d), False) for d in SYSTEM_KIT_DIRS if Path(d).is_dir()]
    squashed_excludes = [_squash(e) for e in exclude if _squash(e)]
    seen: set[tuple[str, int | None]] = set()
    out: list[KitSource] = []
    for root, user in roots:
        for src in _sources_in(root, folder_kit=user):
            real = os.path.realpath(src.path)
            names = (*Path(src.path).parts, *Path(real).parts, src.name)
            if is_evaluation_holdout(*names):
                log.info("discover_kits: %s is reserved for evaluation; not used", src.path)
                continue
            if any(e in _squash(n) for n in names for e in squashed_excludes):
                continue
            key = (real, src.program)
            if key not in seen:
                seen.add(key)
                out.append(KitSource(src.kind, real, src.name, src.family, src.program))
    return sorted(out, key=lambda s: (s.family, s.name, s.program or 0))


@functools.lru_cache(maxsize=64)
def _read_source(source: KitSource, sample_rate: int) -> SampleKit:
    if source.kind == "hydrogen":
        return read_hydrogen_kit(source.path, sample_rate=sample_rate, name=source.name)
    if source.kind == "sfz":
        return read_sfz_kit(source.path, sample_rate=sample_rate)
    if source.kind == "folder":
        return read_folder_kit(source.path, sample_rate=sample_rate)
    (kit,) = read_sf2_kits(source.path, programs=[source.program], sample_rate=sample_rate)
    return kit


def load_kits(sources: Iterable[KitSource], *, sample_rate: int) -> list[SampleKit]:
    """Read kits (cached per process), keeping those that can play KD, SD and HH.

    A kit that cannot be read (an SF2 without tinysoundfont installed, a broken file) or lacks a
    labelled class is skipped with a logged warning naming it and the reason.
    """
    kits = []
    for src in sources:
        try:
            kit = _read_source(src, int(sample_rate))
        except (ImportError, ValueError, OSError) as e:
            log.warning("drum kit %s (%s) skipped: %s", src.name, src.path, e)
            continue
        missing = kit.missing_labels()
        if missing:
            log.info("drum kit %s (%s) skipped: no instrument for %s", src.name, src.path,
                     "/".join(missing))
            continue
        kits.append(kit)
    return kits


def split_kits(kits: Sequence[_K], *, seed: int, valid_fraction: float = 0.15,
               test_fraction: float = 0.15) -> dict[str, list[_K]]:
    """Assign whole kit families to ``train`` / ``valid`` / ``test`` (disjoint families).

    ``kits`` are :class:`KitSource` or loaded kits (anything with a ``family``), so that kits
    can be split before they are read.

    Families are shuffled with ``seed``; test and valid get ``round(fraction x families)`` of them
    (at least one each when there are three families or more), train the rest. With two
    families, one goes to train and one to test; with one, it goes to train.

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}`` (lists may be empty).
    """
    for name, frac in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"split_kits: `{name}` must lie in [0, 1), got {frac}")
    families = sorted({k.family for k in kits})
    order = [families[i] for i in np.random.default_rng([seed, 7]).permutation(len(families))]
    n = len(order)
    if n >= 3:
        n_test = max(1, round(test_fraction * n))
        n_valid = max(1, round(valid_fraction * n))
        while n_test + n_valid > n - 1:
            n_valid, n_test = (n_valid - 1, n_test) if n_valid >= n_test else (n_valid, n_test - 1)
    else:
        n_test, n_valid = (1 if n == 2 else 0), 0
    split_of = {f: "test" for f in order[:n_test]}
    split_of.update({f: "valid" for f in order[n_test:n_test + n_valid]})
    out: dict[str, list[_K]] = {"train": [], "valid": [], "test": []}
    for kit in kits:
        out[split_of.get(kit.family, "train")].append(kit)
    return out
