"""Shared pieces of the file formats (private): errors, text decoding, event clean-up."""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path

#: Audio file suffixes: what soundfile (libsndfile >= 1.1) reads; folders are scanned for these,
#: and they are stripped from stems in counts.csv / splits.
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                  ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64", ".sph", ".voc")

Event = tuple[float, str]


class DatasetError(ValueError):
    """A malformed dataset file; the message starts with ``path:line:``."""


class DatasetWarning(UserWarning):
    """A dataset file that is readable but suspicious (duplicate lines); ``path:line:`` first."""


def _err(path, line: int | None, msg: str) -> DatasetError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DatasetError(f"{where}: {msg}")


def _parse_time(text: str, path, line: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _err(path, line, f"{what} is not a number; expected seconds as a decimal number "
                               f"like 1.25, got {text!r}") from None
    if not math.isfinite(value):
        raise _err(path, line, f"{what} is not finite; expected seconds >= 0, got {text!r}")
    if value < 0:
        raise _err(path, line, f"{what} is negative; expected seconds >= 0, got {text!r}")
    return value


def _read_text(path: Path, what: str, expected: str) -> str:
    """``path`` as UTF-8 text (a BOM is skipped); errors name the file and the line."""
    if not path.is_file():
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a folder; expected {what}")
        raise FileNotFoundError(f"{path}: {what} not found")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise _err(path, line, f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset "
                               f"{err.start}); expected {expected} in UTF-8 (re-save the file as "
                               "UTF-8)") from None


def _clean_events(path: Path, events: list[tuple[float, str, int]]) -> list[Event]:
    """Sorted ``(time, label)`` of ``(time, label, line)``: exact duplicates dropped with one
    :class:`DatasetWarning`; labels equal up to case are an error naming both."""
    seen_labels: dict[str, tuple[str, int]] = {}
    for _, label, line in events:
        key = label.casefold()
        first = seen_labels.setdefault(key, (label, line))
        if first[0] != label:
            raise _err(path, line, f"label {label!r} differs from {first[0]!r} (line {first[1]}) "
                                   "only by case; expected one spelling per class")
    out: list[Event] = []
    first_line: dict[Event, int] = {}
    dropped: list[tuple[int, int]] = []
    for t, label, line in sorted(events, key=lambda e: (e[0], e[2])):
        if (t, label) in first_line:
            dropped.append((line, first_line[(t, label)]))
            continue
        first_line[(t, label)] = line
        out.append((t, label))
    if dropped:
        where = ", ".join(f"line {a} (= line {b})" for a, b in dropped[:3])
        more = f" and {len(dropped) - 3} more" if len(dropped) > 3 else ""
        warnings.warn(f"{path}:{dropped[0][0]}: dropped {len(dropped)} exact duplicate "
                      f"event(s): {where}{more}", DatasetWarning, stacklevel=3)
    return out



def _csv_rows(path: Path, text: str):  # -> Iterator[(line, fields)]
    """CSV rows of ``text`` with their 1-based line numbers; CSV syntax errors name the line."""
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            fields_ = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise _err(path, reader.line_num, f"not valid CSV ({err})") from None
        yield reader.line_num, fields_


def _check_label(fn: str, label: object) -> None:
    if not isinstance(label, str) or not label or any(c.isspace() or c == "," for c in label):
        raise ValueError(f"{fn}: labels must be non-empty strings without whitespace or commas, "
                         f"got {label!r}")


def _stem_of(name: str) -> str:
    for suffix in AUDIO_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name

