"""A synthetic drum dataset, generated in numpy (no downloads), in the generic layout.

Each *kit* is a random draw of synthesis parameters:

* **KD** (kick): sine sweeping down from 110-200 Hz to 40-62 Hz in 15-45 ms, decay time constant
  60-200 ms, a band-passed click of variable strength, optional soft saturation.
* **SD** (snare): two damped tones at 165-260 Hz (ratio 1.45-1.75) plus band-passed noise
  ("wires") centred at 1.5-5 kHz, tone/noise balance per kit.
* **HH** (hi-hat, closed and open, both labelled HH): six square waves at inharmonic "808" ratios
  plus noise, high-passed at 5.5-9 kHz; closed 15-50 ms, open 200-500 ms (choked by the next hat).
* Unlabelled distractors: three **toms** (sweeps settling at 90-300 Hz, no click, long decay),
  **crash** (broad bright noise, 1-2 s) and **ride** (bell partials + bright noise, 0.8-1.6 s).

Every instrument has four velocity layers (louder is brighter) and two round-robin variants.
Tracks are grooves on a straight (16ths) or shuffled (triplet) grid at 70-180 BPM: kick patterns
from rock / funk / four-on-the-floor / half-time styles with random variation, backbeat snares with
ghost notes, hi-hats in quarters, 8ths or 16ths with accents and open hats, ride sections, fills on
snare and toms every 4 or 8 bars followed by crash + kick, occasional breaks and intros. Timing is
humanised (per-file tightness 3-12 ms, per-instrument lag, slow tempo drift) and velocities are
jittered. The mix gets per-kit gains, a light synthetic room reverb and background noise.

The test and validation kits are different parameter draws from the training kits, so a score on
the test split measures generalisation to unseen kits. Everything is deterministic per ``seed``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from softloc.data.layout import (
    DatasetIndex,
    count_windows,
    load_dataset,
    write_annotation_file,
    write_counts_csv,
    write_split_file,
)

__all__ = ["DRUM_CLASSES", "render_drum_track", "synthesize_drum_dataset"]

#: The labelled classes, in the canonical order (same as IDMT-SMT-Drums).
DRUM_CLASSES = ("HH", "KD", "SD")

_VELOCITY_LAYERS = (0.35, 0.55, 0.75, 1.0)
_N_VARIANTS = 2
# Instrument -> annotation label (None: unlabelled distractor).
_LABELS = {"KD": "KD", "SD": "SD", "HHc": "HH", "HHo": "HH",
           "T1": None, "T2": None, "T3": None, "CR": None, "RD": None}
# Kit ids are offset per split so that train / valid / test kits never coincide.
_KIT_OFFSET = {"train": 0, "valid": 10_000, "test": 20_000}


# ----------------------------------------------------------------------------- instruments

def _sos(kind: str, freqs, sr: int, order: int = 2):
    nyq = sr / 2
    if kind == "band":
        lo, hi = freqs
        return signal.butter(order, [max(lo, 20.0) / nyq, min(hi, 0.95 * nyq) / nyq],
                             btype="bandpass", output="sos")
    return signal.butter(order, min(freqs, 0.95 * nyq) / nyq, btype=kind, output="sos")


def _noise(rng, n: int) -> np.ndarray:
    return rng.standard_normal(n, dtype=np.float32)


def _kick(sr, p, v, rng):
    n = int(sr * min(0.9, 5 * p["decay"]))
    t = np.arange(n) / sr
    f_start = p["f_start"] * (0.85 + 0.25 * v)
    freq = p["f_end"] + (f_start - p["f_end"]) * np.exp(-t / p["sweep"])
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / p["decay"])
    if p["drive"] > 1:
        body = np.tanh(p["drive"] * body) / math.tanh(p["drive"])
    m = int(0.012 * sr)
    click = signal.sosfilt(_sos("band", (p["click_lo"], p["click_lo"] * 4), sr), _noise(rng, m))
    click *= np.exp(-np.arange(m) / sr / p["click_decay"]) / (np.abs(click).max() + 1e-9)
    body[:m] += p["click"] * (0.4 + 0.6 * v) * click
    return body


def _snare(sr, p, v, rng):
    n = int(sr * min(0.8, 4 * p["noise_decay"]))
    t = np.arange(n) / sr
    f0 = p["f0"] * (1 + 0.04 * np.exp(-t / 0.01))
    tone = (np.sin(2 * np.pi * np.cumsum(f0) / sr)
            + p["mode2"] * np.sin(2 * np.pi * np.cumsum(f0 * p["ratio"]) / sr))
    tone *= np.exp(-t / p["tone_decay"])
    hi = p["noise_hi"] * (0.7 + 0.5 * v)
    wires = signal.sosfilt(_sos("band", (p["noise_lo"], hi), sr), _noise(rng, n))
    wires *= np.exp(-t / p["noise_decay"]) / (np.abs(wires).max() + 1e-9)
    out = (1 - p["noise_mix"]) * tone / 1.5 + p["noise_mix"] * 2.5 * wires
    return out


def _metal(sr, p, n, rng):
    # Six square waves at the inharmonic "808" ratios are computed once per kit (in `p`), and each
    # hit takes a random slice of them: the same timbre, different phases, a fraction of the cost.
    bank = p.get("_bank")
    if bank is None or len(bank) < n + sr // 2:
        t = np.arange(n + sr, dtype=np.float64) / sr
        bank = sum(np.sign(np.sin(2 * np.pi * p["base"] * r * t + rng.uniform(0, 2 * np.pi)))
                   for r in (1.0, 1.4471, 1.6170, 1.9265, 2.5028, 2.6637)) / 6
        p["_bank"] = bank = bank.astype(np.float32)
    i = int(rng.integers(len(bank) - n))
    return bank[i:i + n] + p["noise"] * _noise(rng, n)


def _hihat(sr, p, v, rng, open_):
    decay = p["open_decay"] if open_ else p["closed_decay"]
    n = int(sr * min(1.5, 5 * decay))
    t = np.arange(n) / sr
    x = signal.sosfilt(_sos("highpass", p["hp"] * (1.1 - 0.2 * v), sr, order=4),
                       _metal(sr, p, n, rng))
    env = np.exp(-t / decay)
    if open_:
        env = np.minimum(1.0, t / 0.003) * env
    x *= env
    return x / (np.abs(x).max() + 1e-9)


def _tom(sr, p, v, rng, f0):
    n = int(sr * min(1.0, 4 * p["decay"]))
    t = np.arange(n) / sr
    freq = f0 * (1 + 0.35 * (0.7 + 0.3 * v) * np.exp(-t / p["sweep"]))
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / p["decay"])
    m = int(0.02 * sr)
    stick = signal.sosfilt(_sos("band", (f0 * 3, f0 * 12), sr), _noise(rng, m))
    stick *= np.exp(-np.arange(m) / sr / 0.004) / (np.abs(stick).max() + 1e-9)
    body[:m] += p["stick"] * stick
    return body


def _crash(sr, p, v, rng):
    n = int(sr * min(2.5, 2.5 * p["decay"]))
    t = np.arange(n) / sr
    x = signal.sosfilt(_sos("band", (p["lo"], 15000.0), sr), _noise(rng, n))
    x += 0.5 * signal.sosfilt(_sos("highpass", p["lo"], sr), _metal(sr, p, n, rng))
    x *= np.minimum(1.0, t / 0.004) * np.exp(-t / (p["decay"] * (0.8 + 0.3 * v)))
    return x / (np.abs(x).max() + 1e-9)


def _ride(sr, p, v, rng):
    n = int(sr * min(2.0, 2.5 * p["decay"]))
    t = np.arange(n) / sr
    bell = sum(np.sin(2 * np.pi * p["bell"] * r * t) * np.exp(-t / (0.6 * p["decay"] / r))
               for r in (1.0, 1.5, 2.33, 2.76))
    wash = signal.sosfilt(_sos("band", (4000.0, 12000.0), sr), _noise(rng, n))
    wash *= np.exp(-t / p["decay"]) / (np.abs(wash).max() + 1e-9)
    ping = signal.sosfilt(_sos("highpass", 3000.0, sr), _noise(rng, n)) * np.exp(-t / 0.01)
    x = p["bell_mix"] * bell / 4 + wash + 0.3 * v * ping / (np.abs(ping).max() + 1e-9)
    return x / (np.abs(x).max() + 1e-9)


@dataclass
class _Kit:
    kit_id: int
    samples: dict  # instrument -> [layer][variant] -> float32 array
    gains: dict  # instrument -> gain
    params: dict


def _make_kit(seed: int, kit_id: int, sr: int) -> _Kit:
    rng = np.random.default_rng([seed, kit_id, 1])
    u = rng.uniform
    params = {
        "KD": {"f_start": u(110, 200), "f_end": u(40, 62), "sweep": u(0.015, 0.045),
               "decay": u(0.06, 0.2), "click": u(0.1, 0.6), "click_lo": u(1000, 3000),
               "click_decay": u(0.001, 0.004), "drive": u(0.5, 3.0)},
        "SD": {"f0": u(165, 260), "ratio": u(1.45, 1.75), "mode2": u(0.2, 0.7),
               "tone_decay": u(0.03, 0.1), "noise_lo": u(800, 2500), "noise_hi": u(5000, 11000),
               "noise_decay": u(0.05, 0.15), "noise_mix": u(0.35, 0.75)},
        "HH": {"base": u(280, 560), "noise": u(0.2, 1.0), "hp": u(5500, 9000),
               "closed_decay": u(0.015, 0.05), "open_decay": u(0.2, 0.5)},
        "T": {"f_low": u(90, 130), "spread": u(1.35, 1.7), "sweep": u(0.03, 0.09),
              "decay": u(0.12, 0.35), "stick": u(0.05, 0.3)},
        "CR": {"lo": u(1500, 4000), "decay": u(1.0, 2.0), "base": u(350, 600), "noise": 1.0},
        "RD": {"bell": u(450, 900), "decay": u(0.8, 1.6), "bell_mix": u(0.2, 0.8)},
    }
    gains = {"KD": u(0.8, 1.0), "SD": u(0.6, 0.9), "HHc": u(0.18, 0.4),
             "T1": u(0.5, 0.8), "T2": u(0.5, 0.8), "T3": u(0.5, 0.8),
             "CR": u(0.15, 0.3), "RD": u(0.12, 0.25)}
    gains["HHo"] = gains["HHc"] * u(0.9, 1.3)
    tom_f = [params["T"]["f_low"] * params["T"]["spread"] ** i for i in range(3)]
    makers = {
        "KD": lambda v, r: _kick(sr, params["KD"], v, r),
        "SD": lambda v, r: _snare(sr, params["SD"], v, r),
        "HHc": lambda v, r: _hihat(sr, params["HH"], v, r, open_=False),
        "HHo": lambda v, r: _hihat(sr, params["HH"], v, r, open_=True),
        "T1": lambda v, r: _tom(sr, params["T"], v, r, tom_f[2]),
        "T2": lambda v, r: _tom(sr, params["T"], v, r, tom_f[1]),
        "T3": lambda v, r: _tom(sr, params["T"], v, r, tom_f[0]),
        "CR": lambda v, r: _crash(sr, params["CR"], v, r),
        "RD": lambda v, r: _ride(sr, params["RD"], v, r),
    }
    samples = {}
    for name, make in makers.items():
        layers = []
        for v in _VELOCITY_LAYERS:
            variants: list[np.ndarray] = []
            for j in range(_N_VARIANTS):
                if j and name in ("CR", "RD"):  # long cymbals: one variant (saves time)
                    variants.append(variants[0])
                    continue
                x = make(v, rng)
                x = x / (np.abs(x).max() + 1e-9) * (0.25 + 0.75 * v)
                fade = min(len(x), int(0.005 * sr))
                x[-fade:] *= np.linspace(1, 0, fade)
                variants.append(x.astype(np.float32))
            layers.append(variants)
        samples[name] = layers
    return _Kit(kit_id, samples, gains, params)


# ----------------------------------------------------------------------------- grooves

_KICK_PATTERNS_16 = [
    [0, 8], [0, 8, 10], [0, 3, 8, 10], [0, 6, 8], [0, 4, 8, 12], [0, 10], [0, 3, 6, 10, 11],
    [0, 7, 8], [0, 2, 8, 11], [0, 6, 10], [0, 8, 9, 14],
]
_KICK_PATTERNS_12 = [[0, 6], [0, 5, 6], [0, 8, 9], [0, 3, 6, 9], [0, 11, 6], [0, 6, 8]]


def _groove(rng, duration_s: float):
    """Hits ``(time_s, instrument, velocity)`` of one track (before humanisation)."""
    bpm = rng.uniform(70, 180)
    shuffle = rng.random() < 0.3
    steps = 12 if shuffle else 16
    step_s = 60.0 / bpm * 4 / steps
    bar_s = step_s * steps
    if shuffle:
        hat_steps = [0, 2, 3, 5, 6, 8, 9, 11] if bpm < 140 or rng.random() < 0.3 else [0, 3, 6, 9]
        kick_base = list(_KICK_PATTERNS_12[rng.integers(len(_KICK_PATTERNS_12))])
        snare_base = [3, 9]
    else:
        sub = rng.choice([1, 2, 4], p=[0.15, 0.6, 0.25] if bpm < 125 else [0.3, 0.7, 0.0])
        hat_steps = list(range(0, 16, 4 // sub))
        kick_base = list(_KICK_PATTERNS_16[rng.integers(len(_KICK_PATTERNS_16))])
        snare_base = [8] if rng.random() < 0.15 else [4, 12]
    beat_steps = steps // 4
    phrase = int(rng.choice([4, 8]))
    open_step = int(rng.choice([s for s in hat_steps if s % beat_steps]) if rng.random() < 0.6
                    else -1) if any(s % beat_steps for s in hat_steps) else -1
    lead_s = rng.uniform(0.0, 1.0)
    hits: list[tuple[float, str, float]] = []
    t_bar = lead_s
    bar = 0
    ride = False
    tempo = 1.0
    while t_bar < duration_s:
        if bar % phrase == 0:
            ride = rng.random() < 0.15
            if bar > 0 or rng.random() < 0.5:
                hits.append((t_bar, "CR", rng.uniform(0.7, 1.0)))
        kind = rng.random()
        intro = bar == 0 and kind < 0.2
        brk = bar > 0 and kind < 0.05
        fill = (bar % phrase == phrase - 1) and rng.random() < 0.75
        fill_from = steps - beat_steps * int(rng.choice([1, 2])) if fill else steps
        kick = [s for s in kick_base if rng.random() > 0.08]
        if rng.random() < 0.25:
            kick.append(int(rng.integers(steps)))
        bar_hits = []
        for s in range(steps):
            if s >= fill_from:
                continue
            if s in hat_steps and not brk:
                if ride:
                    bar_hits.append((s, "RD", 0.75 if s % beat_steps == 0 else 0.55))
                else:
                    accent = 0.85 if s % beat_steps == 0 else 0.6
                    inst = "HHo" if s == open_step and rng.random() < 0.7 else "HHc"
                    bar_hits.append((s, inst, accent))
            if intro or brk:
                continue
            if s in kick:
                bar_hits.append((s, "KD", rng.uniform(0.75, 1.0)))
            if s in snare_base:
                bar_hits.append((s, "SD", rng.uniform(0.8, 1.0)))
            elif s % 2 == 1 and not shuffle and rng.random() < 0.06:
                bar_hits.append((s, "SD", rng.uniform(0.3, 0.45)))  # ghost note
        if fill:
            fill_sub = 2 if bpm > 150 else 1
            toms = ["SD", "T1", "T2", "T3"]
            n_fill = (steps - fill_from) // fill_sub
            for i, s in enumerate(range(fill_from, steps, fill_sub)):
                if rng.random() < 0.15:
                    continue
                inst = toms[min(3, int(4 * i / max(1, n_fill)))] if rng.random() < 0.8 \
                    else str(rng.choice(toms))
                bar_hits.append((s, inst, 0.55 + 0.45 * i / max(1, n_fill)))
                if rng.random() < 0.2:
                    bar_hits.append((s, "KD", 0.8))
        for s, inst, vel in bar_hits:
            hits.append((t_bar + s * step_s * tempo, inst, vel))
        t_bar += bar_s * tempo
        tempo = float(np.clip(tempo * (1 + rng.normal(0, 0.006)), 0.97, 1.03))
        bar += 1
    return hits, bpm


def _humanise(rng, hits, duration_s):
    tight = rng.uniform(0.003, 0.012)
    lag = {"KD": rng.normal(0, 0.004), "SD": rng.normal(0.003, 0.004),
           "HHc": rng.normal(0, 0.003)}
    out = []
    for t, inst, vel in hits:
        t = t + lag.get("HHc" if inst.startswith("HH") else inst, 0.0) + rng.normal(0, tight)
        vel = float(np.clip(vel + rng.normal(0, 0.07), 0.2, 1.0))
        if 0.0 <= t < duration_s - 0.02:
            out.append((t, inst, vel))
    out.sort(key=lambda h: h[0])
    # One labelled class cannot sound twice within 30 ms (a drummer's limit, and the evaluation
    # tolerance would merge them): keep the louder of a pair.
    kept: list[tuple[float, str, float]] = []
    last: dict[str, int] = {}
    for h in out:
        label = _LABELS[h[1]]
        if label is not None and label in last and h[0] - kept[last[label]][0] < 0.03:
            j = last[label]
            if h[2] > kept[j][2]:
                kept[j] = h
            continue
        if label is not None:
            last[label] = len(kept)
        kept.append(h)
    return kept


def _render(rng, kit: _Kit, hits, duration_s: float, sr: int) -> np.ndarray:
    n = int(round(duration_s * sr))
    out = np.zeros(n + 3 * sr, dtype=np.float32)
    hh_times = [t for t, inst, _ in hits if inst.startswith("HH")]
    for t, inst, vel in hits:
        layer = int(np.argmin([abs(v - vel) for v in _VELOCITY_LAYERS]))
        x = kit.samples[inst][layer][int(rng.integers(_N_VARIANTS))]
        gain = kit.gains[inst] * vel / _VELOCITY_LAYERS[layer]
        i = int(round(t * sr))
        if inst == "HHo":  # choked by the next hi-hat hit
            nxt = next((u for u in hh_times if u > t + 1e-4), None)
            if nxt is not None:
                m = min(len(x), int((nxt - t) * sr) + int(0.01 * sr))
                x = x[:m] * np.concatenate([np.ones(max(0, m - int(0.01 * sr))),
                                            np.linspace(1, 0, min(m, int(0.01 * sr)))])
        out[i:i + len(x)] += gain * x
    # Light room: exponentially decaying, low-passed noise impulse response.
    rt60 = rng.uniform(0.15, 0.6)
    m = int(rt60 * sr)
    ir = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / m)
    ir = signal.sosfilt(_sos("lowpass", rng.uniform(3000, 9000), sr), ir)
    ir *= rng.uniform(0.05, 0.2) / np.sqrt(np.sum(ir ** 2))
    wet = signal.oaconvolve(out, ir.astype(np.float32))[: len(out)]
    mix = (out + wet)[:n]
    peak = np.abs(mix).max() + 1e-9
    mix = mix / peak
    noise_db = rng.uniform(-62, -45)
    colour = signal.sosfilt(_sos("lowpass", rng.uniform(2000, 16000), sr), rng.standard_normal(n))
    mix += 10 ** (noise_db / 20) * colour / (np.std(colour) + 1e-9)
    return (mix / (np.abs(mix).max() + 1e-9) * rng.uniform(0.5, 0.95)).astype(np.float32)


def render_drum_track(*, seed: int, kit_id: int, duration_s: float = 30.0,
                      sample_rate: int = 44100) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Render one synthetic drum track and its KD / SD / HH onsets.

    Args:
        seed: seed of the track (groove, humanisation, mix).
        kit_id: the kit (a deterministic parameter draw; different ids are different kits).
        duration_s: length in seconds (default 30).
        sample_rate: in Hz (default 44100).

    Returns:
        ``(audio, events)``: float32 mono ``(samples,)`` and sorted ``(onset_s, label)`` of the
        labelled hits (toms and cymbals are not in ``events``).
    """
    if not duration_s > 0:
        raise ValueError(f"render_drum_track: `duration_s` must be > 0, got {duration_s}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 8000:
        raise ValueError(f"render_drum_track: `sample_rate` must be an int >= 8000, "
                         f"got {sample_rate!r}")
    kit = _make_kit(seed, kit_id, sample_rate)
    return _render_track(seed, kit, duration_s, sample_rate)


def _render_track(seed, kit, duration_s, sr):
    rng = np.random.default_rng([seed, kit.kit_id, 2])
    hits, _ = _groove(rng, duration_s)
    hits = _humanise(rng, hits, duration_s)
    audio = _render(rng, kit, hits, duration_s, sr)
    events = [(round(t, 6), _LABELS[inst]) for t, inst, _ in hits if _LABELS[inst] is not None]
    return audio, events


def synthesize_drum_dataset(out_dir: str | os.PathLike, *, seed: int = 0,
                            n_train_files: int = 40, n_valid_files: int = 6,
                            n_test_files: int = 10, file_duration_s: float = 30.0,
                            n_train_kits: int = 10, n_valid_kits: int = 3, n_test_kits: int = 5,
                            sample_rate: int = 44100, window_s: float = 1.5,
                            hop_s: float = 0.5, overwrite: bool = False) -> DatasetIndex:
    """Write a synthetic KD / SD / HH drum dataset in the generic layout and return its index.

    Writes ``out_dir/audio/*.wav`` (16-bit mono), ``annotations/*.txt`` (exact onsets),
    ``counts.csv`` (counts per class in ``window_s`` windows at ``hop_s`` steps, for every file),
    ``splits/{train,valid,test}.txt`` and ``synth_drums.json`` (the generator settings). The
    default size is 20 min of training audio (40 x 30 s) on 10 kits, 3 min of validation audio on
    3 other kits, 5 min of test audio on 5 further kits.

    Args:
        out_dir: target folder; must be absent or empty unless ``overwrite``.
        seed: everything is a deterministic function of it (default 0).
        n_train_files, n_valid_files, n_test_files: files per split.
        file_duration_s: length of each file in seconds (default 30).
        n_train_kits, n_valid_kits, n_test_kits: kits per split; files cycle through them.
        sample_rate: in Hz (default 44100).
        window_s, hop_s: counts.csv windows (default 1.5 s every 0.5 s, as in the paper).
        overwrite: allow writing into a non-empty folder (files of the same names are replaced).

    Returns:
        the :class:`~softloc.data.layout.DatasetIndex` of the written dataset (read back and
        validated with :func:`~softloc.data.layout.load_dataset`).

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
        ValueError: a bad size or rate.
    """
    fn = "synthesize_drum_dataset"
    for name, value, lo in (("n_train_files", n_train_files, 1),
                            ("n_valid_files", n_valid_files, 0),
                            ("n_test_files", n_test_files, 0), ("n_train_kits", n_train_kits, 1),
                            ("n_valid_kits", n_valid_kits, 1), ("n_test_kits", n_test_kits, 1),
                            ("sample_rate", sample_rate, 8000)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{fn}: `{name}` must be an int >= {lo}, got {value!r}")
    if not file_duration_s >= window_s > 0 or not hop_s > 0:
        raise ValueError(f"{fn}: need file_duration_s >= window_s > 0 and hop_s > 0, got "
                         f"file_duration_s={file_duration_s}, window_s={window_s}, hop_s={hop_s}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty; choose a new folder or pass "
                              "overwrite=True")
    t0 = time.perf_counter()
    (out / "audio").mkdir(parents=True, exist_ok=True)
    sizes = {"train": (n_train_files, n_train_kits), "valid": (n_valid_files, n_valid_kits),
             "test": (n_test_files, n_test_kits)}
    splits: dict[str, list[str]] = {}
    windows = []
    manifest = []
    for split, (n_files, n_kits) in sizes.items():
        kits = [_make_kit(seed, _KIT_OFFSET[split] + k, sample_rate) for k in range(n_kits)]
        splits[split] = []
        for i in range(n_files):
            kit = kits[i % n_kits]
            stem = f"{split}_{i:03d}_kit{kit.kit_id:05d}"
            audio, events = _render_track(seed * 1_000_003 + _KIT_OFFSET[split] + i, kit,
                                          file_duration_s, sample_rate)
            _write_wav(out / "audio" / f"{stem}.wav", audio, sample_rate, overwrite)
            write_annotation_file(out / "annotations" / f"{stem}.txt", events,
                                  overwrite=overwrite)
            windows += count_windows(stem, events, file_duration_s, window_s=window_s,
                                     hop_s=hop_s, classes=DRUM_CLASSES)
            splits[split].append(stem)
            manifest.append({"stem": stem, "split": split, "kit_id": kit.kit_id,
                             "n_events": {c: sum(1 for _, lab in events if lab == c)
                                          for c in DRUM_CLASSES}})
    write_counts_csv(out / "counts.csv", windows, classes=DRUM_CLASSES, overwrite=overwrite)
    for split, stems in splits.items():
        write_split_file(out / "splits" / f"{split}.txt", stems, overwrite=overwrite)
    settings = {"generator": "softloc.data.generators.drums", "seed": seed,
                "file_duration_s": file_duration_s, "sample_rate": sample_rate,
                "window_s": window_s, "hop_s": hop_s, "classes": list(DRUM_CLASSES),
                "sizes": {k: {"files": v[0], "kits": v[1]} for k, v in sizes.items()},
                "seconds_to_generate": round(time.perf_counter() - t0, 2), "files": manifest}
    tmp = out / ".synth_drums.json.tmp"
    tmp.write_text(json.dumps(settings, indent=1))
    os.replace(tmp, out / "synth_drums.json")
    return load_dataset(out, labels=DRUM_CLASSES)


def _write_wav(path: Path, audio: np.ndarray, sr: int, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; not overwriting it")
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, audio, sr, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
