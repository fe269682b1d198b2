"""Synthetic drum kits: every kit a random draw of synthesis parameters (no samples needed).

The fallback when no recorded kit is installed, and extra variety besides recorded kits.

* **kick**: sine sweeping down from 110-200 Hz to 40-62 Hz in 15-45 ms, decay time constant
  60-200 ms, a band-passed click of variable strength, optional soft saturation.
* **snare**: two damped tones at 165-260 Hz (ratio 1.45-1.75) plus band-passed noise ("wires")
  centred at 1.5-5 kHz, tone/noise balance per kit.
* **hi-hat** (closed and open): six square waves at inharmonic "808" ratios plus noise,
  high-passed at 5.5-9 kHz; closed 15-50 ms, open 200-500 ms.
* unlabelled distractors: three **toms** (sweeps settling at 90-300 Hz, no click, long decay),
  **crash** (broad bright noise, 1-2 s) and **ride** (bell partials + bright noise, 0.8-1.6 s).

Every instrument has four velocity layers (louder is brighter) and two round-robin variants; the
sound of every one-shot starts at its first sample. A kit is a deterministic function of
``(seed, kit_id)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import signal

from softloc.data.generators.kit_formats import KitInstrument, OneShot, SampleKit

__all__ = ["make_synthetic_kit"]

_VELOCITY_LAYERS = (0.35, 0.55, 0.75, 1.0)
_N_VARIANTS = 2


# ----------------------------------------------------------------------------- instruments

@functools.lru_cache(maxsize=256)
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


@functools.lru_cache(maxsize=24)
def make_synthetic_kit(*, seed: int, kit_id: int, sample_rate: int) -> SampleKit:
    """The synthetic kit ``kit_id`` of ``seed`` (different ids are different kits); the last 24
    kits made are cached.

    Returns:
        a :class:`~softloc.data.generators.kit_formats.SampleKit` of kind ``"synthetic"``, its
        own family ``synthetic-<kit_id>``, named ``synthetic <kit_id>`` (5 digits).
    """
    sr = int(sample_rate)
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
    tom_f = [params["T"]["f_low"] * params["T"]["spread"] ** i for i in range(3)]
    makers = {
        ("KD", "kick"): lambda v, r: _kick(sr, params["KD"], v, r),
        ("SD", "snare"): lambda v, r: _snare(sr, params["SD"], v, r),
        ("HHc", "hihat_closed"): lambda v, r: _hihat(sr, params["HH"], v, r, open_=False),
        ("HHo", "hihat_open"): lambda v, r: _hihat(sr, params["HH"], v, r, open_=True),
        ("T1", "tom"): lambda v, r: _tom(sr, params["T"], v, r, tom_f[2]),
        ("T2", "tom"): lambda v, r: _tom(sr, params["T"], v, r, tom_f[1]),
        ("T3", "tom"): lambda v, r: _tom(sr, params["T"], v, r, tom_f[0]),
        ("CR", "crash"): lambda v, r: _crash(sr, params["CR"], v, r),
        ("RD", "ride"): lambda v, r: _ride(sr, params["RD"], v, r),
    }
    edges = np.concatenate([[0.0], np.add(_VELOCITY_LAYERS[1:], _VELOCITY_LAYERS[:-1]) / 2, [1]])
    instruments = []
    for (name, role), make in makers.items():
        shots: list[OneShot] = []
        for j, v in enumerate(_VELOCITY_LAYERS):
            first = None
            for k in range(_N_VARIANTS):
                if k and role in ("crash", "ride"):  # long cymbals: one variant (saves time)
                    x = first
                else:
                    x = make(v, rng)
                    x = x / (np.abs(x).max() + 1e-9) * (0.25 + 0.75 * v)
                    fade = min(len(x), int(0.005 * sr))
                    x[-fade:] *= np.linspace(1, 0, fade)
                    x = x.astype(np.float32)
                    x.setflags(write=False)
                    first = x
                shots.append(OneShot(x, 0.0, float(edges[j]), float(edges[j + 1]), 1.0,
                                     f"synthetic {kit_id} {name} layer {j} variant {k}"))
        instruments.append(KitInstrument(name, role, tuple(shots)))
    return SampleKit(f"synthetic {kit_id:05d}", f"synthetic-{kit_id}", "synthetic", sr,
                     tuple(instruments), f"seed {seed}")
