"""Time-series signals: CSV and NumPy readers, one dispatcher, per-channel normalisation.

A *signal* is a float32 array ``(channel, time)`` sampled at ``rate_hz`` with a name per channel
(:class:`Signal`). It comes from

* a WFDB record (PhysioNet's format, any number of channels and any sampling rate):
  :func:`softloc.data.physionet.read_wfdb`, its annotations with
  :func:`softloc.data.physionet.read_wfdb_events`;
* a CSV file with a header row of channel names and an optional time column
  (:func:`read_csv_signal`);
* a NumPy ``.npy`` file ``(channel, time)`` with a JSON sidecar ``<stem>.json`` holding
  ``rate_hz`` and ``channels``, or a ``.npz`` with arrays ``signal``, ``rate_hz`` and optionally
  ``channels`` (:func:`read_npy_signal`). :func:`write_signal` writes the ``.npy`` + ``.json`` pair,
  the form the generic dataset layout stores (``ROOT/signals/<stem>.npy``).

:func:`read_signal` picks the reader by suffix. Subjects, per-subject splits and
leave-one-subject-out folds are in :mod:`softloc.data.subjects`; framing, windows in seconds and
the training store in :mod:`softloc.data.signal_store`.

Conventions:
    * Arrays are ``(channel, time)``, float32, physical units (mV for ECG) before normalisation.
    * Time is in seconds from the first sample: sample ``i`` lies at ``i / rate_hz``. A CSV time
      column only sets (and checks) the rate; its origin is dropped.

Errors name the file or record and the field (``x.csv:5: column 'ecg' is not a number``,
``x.json: rate mismatch in field 'rate_hz' ...``); they are :class:`SignalError` (a
``ValueError``) or ``FileNotFoundError``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softloc._io import atomic_save, atomic_write_text

__all__ = [
    "NORMALIZATIONS",
    "SIGNAL_SUFFIXES",
    "TIME_COLUMN_NAMES",
    "Signal",
    "SignalError",
    "channel_stats",
    "find_signals",
    "normalize_channels",
    "read_csv_signal",
    "read_npy_signal",
    "read_signal",
    "read_utf8",
    "signal_info",
    "write_signal",
]

#: Column names recognised as the time column of a CSV signal (case-insensitive).
TIME_COLUMN_NAMES: tuple[str, ...] = ("time", "time_s", "t", "seconds", "timestamp")
#: Suffixes :func:`read_signal` understands.
SIGNAL_SUFFIXES: tuple[str, ...] = (".hea", ".csv", ".npy", ".npz")
#: Per-channel normalisations of :func:`channel_stats`.
NORMALIZATIONS: tuple[str, ...] = ("zscore", "robust", "none")

# A CSV time column whose steps differ from their median by more than this fraction is not uniform.
_RATE_TOLERANCE = 0.01


class SignalError(ValueError):
    """A malformed signal or annotation file; the message starts with the file or record."""


@dataclass(frozen=True)
class Signal:
    """A multichannel time series.

    Attributes:
        data: float32 array ``(channel, time)``.
        rate_hz: sampling rate in Hz (> 0).
        channels: one name per channel.
        units: one unit per channel (``""`` when unknown).
        source: the file or record it was read from (``""`` when built in memory).
    """

    data: np.ndarray
    rate_hz: float
    channels: tuple[str, ...]
    units: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        fn = "Signal"
        if not isinstance(self.data, np.ndarray) or self.data.ndim != 2:
            raise ValueError(f"{fn}: `data` must be a 2-D array (channel, time), got "
                             f"{getattr(self.data, 'shape', type(self.data).__name__)}")
        if not (isinstance(self.rate_hz, (int, float)) and math.isfinite(self.rate_hz)
                and self.rate_hz > 0):
            raise ValueError(f"{fn}: `rate_hz` must be a finite number > 0, got {self.rate_hz!r}")
        if len(self.channels) != self.data.shape[0]:
            raise ValueError(f"{fn}: `channels` must name each of the {self.data.shape[0]} "
                             f"channels, got {len(self.channels)} names")
        if self.units and len(self.units) != self.data.shape[0]:
            raise ValueError(f"{fn}: `units` must have one entry per channel "
                             f"({self.data.shape[0]}), got {len(self.units)}")

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate_hz

    def select(self, channels: Sequence[str | int]) -> Signal:
        """The signal restricted to ``channels`` (names or indices), in the order given."""
        idx = [_channel_index(self, c) for c in channels]
        units = tuple(self.units[i] for i in idx) if self.units else ()
        return Signal(self.data[idx], self.rate_hz, tuple(self.channels[i] for i in idx), units,
                      self.source)


def _channel_index(sig: Signal, c: str | int) -> int:
    if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
        if not 0 <= int(c) < sig.n_channels:
            raise ValueError(f"Signal.select: channel index {c} out of range for "
                             f"{sig.n_channels} channels of {sig.source or 'the signal'}")
        return int(c)
    if c not in sig.channels:
        raise ValueError(f"Signal.select: no channel {c!r} in {sig.source or 'the signal'}; "
                         f"expected one of {list(sig.channels)}")
    return sig.channels.index(c)


def _check_rate(fn: str, rate_hz: object) -> float | None:
    if rate_hz is None:
        return None
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float)) \
            or not math.isfinite(rate_hz) or rate_hz <= 0:
        raise ValueError(f"{fn}: `rate_hz` must be a finite number > 0 or None, got {rate_hz!r}")
    return float(rate_hz)


def _same_rate(a: float, b: float) -> bool:
    return abs(a - b) <= _RATE_TOLERANCE * max(a, b)


# ----------------------------------------------------------------------------- CSV / NumPy

def _parse_float(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SignalError(f"{path}:{line}: column {column!r} is not a number, got "
                          f"{text!r}") from None
    if not math.isfinite(value):
        raise SignalError(f"{path}:{line}: column {column!r} is not finite, got {text!r}")
    return value


def _rate_from_times(times: np.ndarray, lines: list[int], path: Path, column: str) -> float:
    steps = np.diff(times)
    if steps.size == 0:
        raise SignalError(f"{path}: one row only; the time column {column!r} cannot give a rate "
                          "(pass rate_hz)")
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        raise SignalError(f"{path}:{lines[bad[0] + 1]}: column {column!r} must increase, got "
                          f"{times[bad[0] + 1]!r} after {times[bad[0]]!r}")
    step = float(np.median(steps))
    off = np.flatnonzero(np.abs(steps - step) > _RATE_TOLERANCE * step)
    if off.size:
        k = int(off[0])
        raise SignalError(f"{path}:{lines[k + 1]}: column {column!r} is not uniformly sampled: "
                          f"step {steps[k]:g} s, median step {step:g} s; expected a constant rate")
    return 1.0 / step


def read_utf8(path: Path, expected: str) -> str:
    """The text of ``path`` (UTF-8, a BOM skipped); a SignalError naming ``path:line`` and the
    offending byte otherwise."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SignalError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); "
                          f"expected {expected}") from None


def read_csv_signal(path: str | os.PathLike, *, rate_hz: float | None = None,
                    time_column: str | None = None) -> Signal:
    """Read a CSV signal: a header row of channel names, then one row per sample.

    Args:
        path: the CSV file (comma-separated; ``#`` lines and blank lines are skipped).
        rate_hz: sampling rate in Hz. Required without a time column; with one, it must agree
            with the column's rate (within 1 %) or the read fails with a rate mismatch.
        time_column: the name of the time column in seconds; default: the first column named
            one of :data:`TIME_COLUMN_NAMES` (case-insensitive), if any. Its origin is dropped.

    Returns:
        a :class:`Signal` with every other column as a channel.

    Raises:
        FileNotFoundError: no such file.
        SignalError: no header, duplicate or empty channel names, a row of the wrong length, a
            value that is not a finite number, a time column that does not increase uniformly,
            a rate mismatch, or neither a time column nor ``rate_hz`` (field ``rate_hz``).
    """
    fn = "read_csv_signal"
    rate = _check_rate(fn, rate_hz)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CSV signal file not found")
    text = read_utf8(path, "a UTF-8 CSV file")
    try:
        rows = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
                if r and any(f.strip() for f in r) and not r[0].lstrip().startswith("#")]
    except csv.Error as err:
        raise SignalError(f"{path}: not valid CSV ({err})") from None
    if not rows:
        raise SignalError(f"{path}: empty file; expected a header row of channel names")
    header_line, header = rows[0]
    names = [h.strip() for h in header]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise SignalError(f"{path}:{header_line}: bad header; expected distinct, non-empty "
                          f"column names, got {','.join(header)!r}")
    if all(_is_number(n) for n in names):
        raise SignalError(f"{path}:{header_line}: bad header; expected a row of channel names, "
                          f"got numbers {','.join(header)!r}")
    if time_column is None:
        t_idx = next((i for i, n in enumerate(names) if n.lower() in TIME_COLUMN_NAMES), None)
    elif time_column in names:
        t_idx = names.index(time_column)
    else:
        raise SignalError(f"{path}:{header_line}: no time column {time_column!r}; columns are "
                          f"{names}")
    if len(rows) < 2:
        raise SignalError(f"{path}: no data rows after the header")
    values = np.empty((len(rows) - 1, len(names)), dtype=np.float64)
    for r, (lineno, fields_) in enumerate(rows[1:]):
        if len(fields_) != len(names):
            raise SignalError(f"{path}:{lineno}: expected {len(names)} fields ({','.join(names)}),"
                              f" found {len(fields_)}")
        for c, f in enumerate(fields_):
            values[r, c] = _parse_float(f.strip(), path, lineno, names[c])
    if t_idx is not None:
        col_rate = _rate_from_times(values[:, t_idx], [n for n, _ in rows[1:]], path,
                                    names[t_idx])
        if rate is not None and not _same_rate(rate, col_rate):
            raise SignalError(f"{path}: rate mismatch in field 'rate_hz': {rate:g} Hz given, the "
                              f"time column {names[t_idx]!r} says {col_rate:g} Hz")
        rate = rate if rate is not None else col_rate
    if rate is None:
        raise SignalError(f"{path}: unknown sampling rate (field 'rate_hz'); add a time column "
                          f"({'/'.join(TIME_COLUMN_NAMES)}) or pass rate_hz")
    keep = [i for i in range(len(names)) if i != t_idx]
    if not keep:
        raise SignalError(f"{path}:{header_line}: no signal column besides the time column")
    data = np.ascontiguousarray(values[:, keep].T, dtype=np.float32)  # (time, ch) -> (ch, time)
    return Signal(data, rate, tuple(names[i] for i in keep), ("",) * len(keep), str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sidecar(path: Path) -> dict:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SignalError(f"{side}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(meta, dict):
        raise SignalError(f"{side}: expected a JSON object with 'rate_hz' and 'channels'")
    return meta


def _meta_rate(meta_rate: object, where: Path) -> float:
    if isinstance(meta_rate, bool) or not isinstance(meta_rate, (int, float)) \
            or not math.isfinite(meta_rate) or meta_rate <= 0:
        raise SignalError(f"{where}: field 'rate_hz' must be a number > 0, got {meta_rate!r}")
    return float(meta_rate)


def read_npy_signal(path: str | os.PathLike, *, rate_hz: float | None = None) -> Signal:
    """Read a NumPy signal: ``.npy`` ``(channel, time)`` (or 1-D) or ``.npz``.

    A ``.npy`` file takes its rate, channel names and units from the sidecar ``<stem>.json``
    (``{"rate_hz": 360.0, "channels": ["MLII"], "units": ["mV"]}``); a ``.npz`` holds arrays
    ``signal`` (``(channel, time)`` or 1-D), ``rate_hz`` (scalar) and optionally ``channels``.

    Args:
        path: the ``.npy`` or ``.npz`` file.
        rate_hz: sampling rate in Hz; required when the file does not say it, and must agree
            with it (within 1 %) when it does.

    Raises:
        FileNotFoundError: no such file.
        SignalError: not a NumPy file, wrong dimensions, a non-numeric or non-finite array, a
            missing or bad ``rate_hz``, a rate mismatch, or channel names that do not fit.
    """
    fn = "read_npy_signal"
    rate = _check_rate(fn, rate_hz)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: NumPy signal file not found")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise SignalError(f"{path}: expected a .npy or .npz file, got suffix {path.suffix!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:
        raise SignalError(f"{path}: not a readable NumPy file ({type(err).__name__}: "
                          f"{err})") from None
    where = path
    if suffix == ".npz":
        with loaded:
            if "signal" not in loaded.files:
                raise SignalError(f"{path}: no array 'signal' (field 'signal'); found "
                                  f"{loaded.files}")
            arr = loaded["signal"]
            meta = {k: loaded[k].tolist() for k in ("rate_hz", "channels", "units")
                    if k in loaded.files}
    else:
        arr = loaded
        meta = _sidecar(path)
        where = path.with_suffix(".json")
    if not np.issubdtype(arr.dtype, np.number) or arr.ndim not in (1, 2) or arr.size == 0:
        raise SignalError(f"{path}: field 'signal' must be a non-empty numeric array (channel, "
                          f"time) or (time,), got dtype {arr.dtype} shape {arr.shape}")
    data = np.ascontiguousarray(np.atleast_2d(arr), dtype=np.float32)
    if not np.isfinite(data).all():
        raise SignalError(f"{path}: field 'signal' holds NaN or infinite values")
    if "rate_hz" in meta:
        file_rate = _meta_rate(meta["rate_hz"], where)
        if rate is not None and not _same_rate(rate, file_rate):
            raise SignalError(f"{where}: rate mismatch in field 'rate_hz': {rate:g} Hz given, "
                              f"the file says {file_rate:g} Hz")
        rate = file_rate
    if rate is None:
        raise SignalError(f"{where}: unknown sampling rate (field 'rate_hz'); write it to "
                          f"{path.with_suffix('.json').name if suffix == '.npy' else 'the .npz'} "
                          "or pass rate_hz")
    channels = meta.get("channels", [f"ch{i}" for i in range(data.shape[0])])
    if isinstance(channels, str):
        channels = [channels]
    if len(channels) != data.shape[0] or not all(isinstance(c, str) and c for c in channels):
        raise SignalError(f"{where}: field 'channels' must list {data.shape[0]} non-empty names, "
                          f"got {channels!r}")
    units = meta.get("units", [""] * data.shape[0])
    if isinstance(units, str):
        units = [units]
    if len(units) != data.shape[0]:
        raise SignalError(f"{where}: field 'units' must list {data.shape[0]} units, got {units!r}")
    return Signal(data, rate, tuple(channels), tuple(str(u) for u in units), str(path))


def read_signal(path: str | os.PathLike, *, rate_hz: float | None = None) -> Signal:
    """Read any supported signal file, by suffix: ``.hea`` (WFDB), ``.csv``, ``.npy``, ``.npz``.

    A path without suffix is taken as a WFDB record when ``<path>.hea`` exists.

    Raises:
        SignalError: an unknown suffix, or what the format's reader raises.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".hea", ".dat") or (suffix == "" and p.with_name(p.name + ".hea").is_file()):
        from softloc.data.physionet import read_wfdb  # local: physionet imports this module

        rate = _check_rate("read_signal", rate_hz)
        sig = read_wfdb(p)
        if rate is not None and not _same_rate(rate, sig.rate_hz):
            raise SignalError(f"{sig.source}.hea: rate mismatch in field 'fs': {rate:g} Hz "
                              f"given, the header says {sig.rate_hz:g} Hz")
        return sig
    if suffix == ".csv":
        return read_csv_signal(p, rate_hz=rate_hz)
    if suffix in (".npy", ".npz"):
        return read_npy_signal(p, rate_hz=rate_hz)
    raise SignalError(f"{p}: unknown signal format {p.suffix!r}; expected one of "
                      f"{', '.join(SIGNAL_SUFFIXES)} (or a WFDB record name)")


def signal_info(path: str | os.PathLike) -> tuple[float, int, int]:
    """``(rate_hz, n_samples, n_channels)`` of a signal file, reading as little as the format
    allows: the header of a WFDB record, the array header of a ``.npy`` (memory-mapped) and its
    sidecar; a ``.npz`` or ``.csv`` file is read whole.

    Raises:
        FileNotFoundError, SignalError: as :func:`read_signal`.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        if not p.is_file():
            raise FileNotFoundError(f"{p}: NumPy signal file not found")
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except Exception as err:
            raise SignalError(f"{p}: not a readable NumPy file ({type(err).__name__}: "
                              f"{err})") from None
        meta = _sidecar(p)
        if "rate_hz" not in meta:
            raise SignalError(f"{p.with_suffix('.json')}: unknown sampling rate (field "
                              "'rate_hz'); write it to the sidecar")
        if arr.ndim not in (1, 2) or arr.size == 0:
            raise SignalError(f"{p}: field 'signal' must be a non-empty array (channel, time) or "
                              f"(time,), got shape {arr.shape}")
        shape = (1, arr.shape[0]) if arr.ndim == 1 else arr.shape
        return _meta_rate(meta["rate_hz"], p.with_suffix(".json")), int(shape[1]), int(shape[0])
    if suffix in (".hea", "") and p.with_suffix(".hea").is_file():
        import wfdb

        from softloc.data.physionet import _quiet_wfdb  # local: physionet imports this module

        try:
            with _quiet_wfdb():
                header = wfdb.rdheader(str(p.with_suffix("")))
        except Exception as err:
            raise SignalError(f"{p.with_suffix('.hea')}: bad header ({type(err).__name__}: "
                              f"{err})") from None
        if not header.fs or not header.sig_len:
            raise SignalError(f"{p.with_suffix('.hea')}: fields 'fs' and 'sig_len' must be > 0, "
                              f"got {header.fs!r} and {header.sig_len!r}")
        return float(header.fs), int(header.sig_len), int(header.n_sig)
    sig = read_signal(p)
    return sig.rate_hz, sig.n_samples, sig.n_channels


def find_signals(folder: str | os.PathLike) -> tuple[dict[str, Path], dict[str, float]]:
    """The signal files of a dataset's ``ROOT/signals/`` and their durations in seconds.

    Files: ``<stem>.npy`` (+ ``<stem>.json``), ``.npz``, ``.csv`` (with a time column) and WFDB
    records ``<stem>.hea``; ``.json`` sidecars and WFDB signal files (``.dat`` ...) are not
    stems of their own.

    Returns:
        ``(paths, durations_s)``: stem -> file, stem -> ``n_samples / rate_hz``.

    Raises:
        SignalError: no folder, no signal file, two files sharing a stem, or what
            :func:`signal_info` raises for a file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SignalError(f"{folder}: signal folder not found; expected ROOT/signals/<stem>.npy "
                          "(+ <stem>.json), .npz, .csv or .hea files")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in SIGNAL_SUFFIXES:
            continue
        if p.stem in found:
            raise SignalError(f"{p}: two signal files share the stem {p.stem!r} "
                              f"({found[p.stem].name} and {p.name}); expected one per stem")
        found[p.stem] = p
    if not found:
        raise SignalError(f"{folder}: no signal files; expected <stem>"
                          f"{'|'.join(SIGNAL_SUFFIXES)} files")
    durations = {}
    for stem, p in found.items():
        rate, n, _ = signal_info(p)
        durations[stem] = n / rate
    return found, durations


def write_signal(path: str | os.PathLike, signal: Signal, *, overwrite: bool = False) -> Path:
    """Write ``signal`` as ``<path>.npy`` (float32 ``(channel, time)``) + ``<path>.json`` sidecar.

    ``path`` may end in ``.npy`` or have no suffix. Both files are written atomically; the
    sidecar holds ``rate_hz``, ``channels`` and ``units``.

    Returns:
        the ``.npy`` path.

    Raises:
        FileExistsError: a target exists and ``overwrite`` is False.
        TypeError: ``signal`` is not a :class:`Signal`.
    """
    if not isinstance(signal, Signal):
        raise TypeError(f"write_signal: `signal` must be a Signal, got {type(signal).__name__}")
    p = Path(path)
    npy = p if p.suffix.lower() == ".npy" else p.with_name(p.name + ".npy")
    side = npy.with_suffix(".json")
    if not overwrite:
        for target in (npy, side):
            if target.exists():
                raise FileExistsError(f"{target}: already exists; not overwriting it (pass "
                                      "overwrite=True)")
    data = np.ascontiguousarray(signal.data, dtype=np.float32)
    atomic_save(npy, lambda f: np.save(f, data, allow_pickle=False), overwrite=overwrite)
    meta = {"rate_hz": float(signal.rate_hz), "channels": list(signal.channels),
            "units": list(signal.units) if signal.units else [""] * signal.n_channels}
    atomic_write_text(side, json.dumps(meta, indent=1) + "\n", overwrite=overwrite)
    return npy


# ----------------------------------------------------------------------------- normalisation

def channel_stats(x: np.ndarray, *, method: str = "zscore") -> tuple[np.ndarray, np.ndarray]:
    """Per-channel centre and scale of ``x`` ``(channel, time)``.

    Args:
        x: the signal.
        method: ``"zscore"`` (mean, standard deviation), ``"robust"`` (median, interquartile
            range / 1.349, which equals the standard deviation of a Gaussian and ignores
            artefacts), or ``"none"`` (0, 1).

    Returns:
        ``(center, scale)``, each float32 ``(channel, 1)``; a constant channel gets scale 1.

    Raises:
        ValueError: ``x`` is not 2-D or is empty, or an unknown ``method``.
    """
    fn = "channel_stats"
    x = _check_2d(fn, x)
    if method not in NORMALIZATIONS:
        raise ValueError(f"{fn}: `method` must be one of {NORMALIZATIONS}, got {method!r}")
    xd = x.astype(np.float64)
    if method == "zscore":
        center, scale = xd.mean(axis=1), xd.std(axis=1)
    elif method == "robust":
        q25, center, q75 = np.percentile(xd, [25, 50, 75], axis=1)
        scale = (q75 - q25) / 1.349
    else:
        center, scale = np.zeros(x.shape[0]), np.ones(x.shape[0])
    scale = np.where(scale > 1e-12, scale, 1.0)
    return (center[:, None].astype(np.float32), scale[:, None].astype(np.float32))


def normalize_channels(x: np.ndarray, *, method: str = "zscore",
                       stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``(x - center) / scale`` per channel; the statistics come from ``x`` or from ``stats``.

    Args:
        x: the signal ``(channel, time)``.
        method: see :func:`channel_stats` (ignored when ``stats`` is given).
        stats: ``(center, scale)`` from :func:`channel_stats` of other data (e.g. the training
            subjects), each ``(channel, 1)``.

    Returns:
        float32 ``(channel, time)``.

    Raises:
        ValueError: bad shapes or method.
    """
    fn = "normalize_channels"
    x = _check_2d(fn, x)
    if stats is None:
        center, scale = channel_stats(x, method=method)
    else:
        center, scale = (np.asarray(s, dtype=np.float32) for s in stats)
        if center.shape != (x.shape[0], 1) or scale.shape != (x.shape[0], 1):
            raise ValueError(f"{fn}: `stats` must be two ({x.shape[0]}, 1) arrays, got "
                             f"{center.shape} and {scale.shape}")
        if not (scale > 0).all():
            raise ValueError(f"{fn}: every scale in `stats` must be > 0")
    return ((x - center) / scale).astype(np.float32)


def _check_2d(fn: str, x: object) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn}: `x` must be a numpy array (channel, time), got "
                        f"{type(x).__name__}")
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"{fn}: `x` must be a non-empty 2-D array (channel, time), got shape "
                         f"{x.shape}")
    return x
