"""A randomised recording chain for generated audio: room, microphone, bus, noise, level, music.

Each stage is a pure function of a mono float array (and of an explicit ``numpy.random.Generator``
where it draws noise), so it can serve the generator and training augmentation alike:

* :func:`synthetic_rir` / :func:`apply_reverb`: a room as exponentially decaying noise with a
  random RT60 (60 dB of decay in ``rt60_s``), highs decaying faster than lows, after a direct
  sound and a pre-delay;
* :func:`colour_eq`: microphone / preamp colour as a cascade of RBJ biquads (high-pass, low and
  high shelves, a peak, an optional low-pass);
* :func:`compress`: a feed-forward bus compressor (threshold, ratio, attack, release);
* :func:`noise_floor`: white / pink / brown noise with optional mains hum;
* :func:`backing_music`: synthesised harmonic music (pad chords, a bass line, a plucked
  arpeggio) to put under the drums; no external material;
* :func:`draw_recording_chain` + :func:`apply_recording_chain`: all of it with random settings.

Levels are in dB; ``sample_rate`` in Hz; arrays are ``(samples,)`` float.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage, signal

from softloc._checks import check_int, check_real

__all__ = [
    "RecordingChain",
    "apply_recording_chain",
    "apply_reverb",
    "backing_music",
    "colour_eq",
    "compress",
    "draw_recording_chain",
    "mix_at_ratio",
    "noise_floor",
    "rms_db",
    "synthetic_rir",
]


def rms_db(x: np.ndarray) -> float:
    """RMS level of ``x`` in dB re full scale 1.0 (silence gives -300 dB)."""
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-30))


def _mono(fn: str, audio: object) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{fn}: `audio` must be a 1-D float array (samples,), got "
                         f"shape {x.shape} dtype {x.dtype}")
    return x


# ----------------------------------------------------------------------------- room

def synthetic_rir(*, rng: np.random.Generator, sample_rate: int, rt60_s: float,
                  predelay_ms: float = 5.0, hf_rt60_ratio: float = 0.5,
                  direct_to_reverb_db: float = 6.0) -> np.ndarray:
    """A room impulse response: a unit direct sound, then exponentially decaying noise.

    The tail is Gaussian noise under the envelope ``10 ** (-3 t / rt60_s)`` (60 dB of decay in
    ``rt60_s``), split at 2 kHz into a low band with that RT60 and a high band with
    ``hf_rt60_ratio x rt60_s`` (air and walls absorb highs faster), starting ``predelay_ms`` after
    the direct sound, scaled so that direct / reverberant energy is ``direct_to_reverb_db``.

    Returns:
        ``(samples,)`` float64, ``rt60_s + predelay`` long, ``rir[0] == 1``.
    """
    fn = "synthetic_rir"
    sample_rate = check_int(fn, "sample_rate", sample_rate, minimum=1000)
    rt60_s = check_real(fn, "rt60_s", rt60_s, positive=True, unit=" (seconds)")
    pre = int(round(check_real(fn, "predelay_ms", predelay_ms, minimum=0.0) * sample_rate / 1000))
    n = max(2, int(rt60_s * sample_rate))
    t = np.arange(n) / sample_rate
    sos = signal.butter(2, 2000.0 / (sample_rate / 2), output="sos")
    noise = rng.standard_normal(n)
    low = signal.sosfilt(sos, noise)
    high = noise - low
    tail = low * 10 ** (-3 * t / rt60_s) + high * 10 ** (-3 * t / (hf_rt60_ratio * rt60_s))
    tail *= 10 ** (-direct_to_reverb_db / 20) / np.sqrt(np.sum(tail ** 2) + 1e-30)
    rir = np.zeros(pre + 1 + n)
    rir[0] = 1.0
    rir[pre + 1:] = tail
    return rir


def apply_reverb(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``audio`` convolved with ``rir``, cut to the length of ``audio`` (same dtype)."""
    x = _mono("apply_reverb", audio)
    return signal.oaconvolve(x, np.asarray(rir, dtype=x.dtype))[: x.size].astype(x.dtype)


# ----------------------------------------------------------------------------- microphone

def _biquad(kind: str, f0: float, sample_rate: int, *, gain_db: float = 0.0,
            q: float = 0.707) -> np.ndarray:
    """One RBJ-cookbook biquad as an ``sos`` row."""
    f0 = min(f0, 0.45 * sample_rate)
    w0 = 2 * np.pi * f0 / sample_rate
    a = 10 ** (gain_db / 40)
    cw, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    elif kind in ("lowshelf", "highshelf"):
        s = 1 if kind == "lowshelf" else -1
        sq = 2 * np.sqrt(a) * alpha
        b = [a * ((a + 1) - s * (a - 1) * cw + sq), s * 2 * a * ((a - 1) - s * (a + 1) * cw),
             a * ((a + 1) - s * (a - 1) * cw - sq)]
        den = [(a + 1) + s * (a - 1) * cw + sq, -s * 2 * ((a - 1) + s * (a + 1) * cw),
               (a + 1) + s * (a - 1) * cw - sq]
    elif kind == "highpass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        den = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "lowpass":
        b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
        den = [1 + alpha, -2 * cw, 1 - alpha]
    else:
        raise ValueError(f"_biquad: unknown kind {kind!r}")
    return np.concatenate([np.array(b) / den[0], np.array(den) / den[0]])


def colour_eq(audio: np.ndarray, *, sample_rate: int, highpass_hz: float = 20.0,
              low_shelf_db: float = 0.0, low_shelf_hz: float = 200.0, peak_db: float = 0.0,
              peak_hz: float = 1000.0, peak_q: float = 1.0, high_shelf_db: float = 0.0,
              high_shelf_hz: float = 6000.0, lowpass_hz: float | None = None) -> np.ndarray:
    """Microphone / preamp colour: high-pass, low shelf, peak, high shelf, optional low-pass.

    With every gain 0 dB, ``highpass_hz`` low and ``lowpass_hz`` None it is (nearly) the
    identity. Returns an array of the dtype of ``audio``.
    """
    x = _mono("colour_eq", audio)
    sos = [_biquad("highpass", highpass_hz, sample_rate),
           _biquad("lowshelf", low_shelf_hz, sample_rate, gain_db=low_shelf_db),
           _biquad("peak", peak_hz, sample_rate, gain_db=peak_db, q=peak_q),
           _biquad("highshelf", high_shelf_hz, sample_rate, gain_db=high_shelf_db)]
    if lowpass_hz is not None:
        sos.append(_biquad("lowpass", lowpass_hz, sample_rate))
    return signal.sosfilt(np.stack(sos), x).astype(x.dtype)


# ----------------------------------------------------------------------------- bus

def compress(audio: np.ndarray, *, sample_rate: int, threshold_db: float, ratio: float,
             attack_ms: float = 5.0, release_ms: float = 100.0,
             makeup_db: float = 0.0) -> np.ndarray:
    """A feed-forward compressor: above ``threshold_db`` the level rises ``1 / ratio`` dB per dB.

    The level is the RMS over the last ``attack_ms`` (causal); the gain reduction follows a rise
    at once and recovers with a one-pole release of ``release_ms`` (the smaller of the instant
    and the released reduction is applied, i.e. fast attack, slow release).
    """
    x = _mono("compress", audio)
    ratio = check_real("compress", "ratio", ratio, minimum=1.0)
    win = max(1, int(attack_ms * sample_rate / 1000))
    # causal: the mean over the last `win` samples (no look-ahead)
    power = ndimage.uniform_filter1d(np.square(x, dtype=np.float64), win, origin=(win - 1) // 2)
    level = 10 * np.log10(np.maximum(power, 0.0) + 1e-20)  # the running sum can dip below 0
    gr = np.minimum(0.0, (threshold_db - level) * (1 - 1 / ratio))  # <= 0 dB
    a = 1 - np.exp(-1.0 / max(1.0, release_ms * sample_rate / 1000))
    released = signal.lfilter([a], [1, -(1 - a)], gr)
    gain_db = np.minimum(gr, released) + makeup_db
    return (x * 10 ** (gain_db / 20)).astype(x.dtype)


def _fft_len(n: int) -> int:
    """``n`` when its FFT is fast (no prime factor above 11: the lengths of whole seconds at the
    usual sample rates, so those outputs never change), else the next fast length. Lengths of
    rate-changed renditions often have a large prime factor, where numpy's FFT falls back to
    Bluestein's algorithm, several times slower (it dominated the demo's set-up)."""
    k = n
    for p in (2, 3, 5, 7, 11):
        while k % p == 0:
            k //= p
    return n if k == 1 else int(sp_fft.next_fast_len(n, real=True))


def noise_floor(n_samples: int, *, rng: np.random.Generator, sample_rate: int,
                colour: str = "pink", hum_hz: float | None = None,
                hum_db: float = -20.0) -> np.ndarray:
    """Unit-RMS background noise: ``colour`` white / pink (1/f power) / brown (1/f^2), plus
    mains hum at ``hum_hz`` (and 3 harmonics) ``hum_db`` under the noise when given."""
    if colour not in ("white", "pink", "brown"):
        raise ValueError(f"noise_floor: `colour` must be 'white', 'pink' or 'brown', "
                         f"got {colour!r}")
    n = check_int("noise_floor", "n_samples", n_samples, minimum=1)
    m = _fft_len(n)
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m, 1 / sample_rate)
    power = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spec *= np.maximum(f, 20.0) ** (-power / 2)
    x = np.fft.irfft(spec, m)[:n]
    x /= np.sqrt(np.mean(x ** 2)) + 1e-30
    if hum_hz is not None:
        t = np.arange(n) / sample_rate
        hum = sum(np.sin(2 * np.pi * hum_hz * k * t + rng.uniform(0, 2 * np.pi)) / k
                  for k in range(1, 5))
        x += 10 ** (hum_db / 20) * hum / np.sqrt(np.mean(hum ** 2))
    return x


# ----------------------------------------------------------------------------- music

def _note_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _tone(n: int, f0: float, sr: int, *, harmonics: int, rolloff: float, attack_s: float,
          decay_s: float, rng: np.random.Generator) -> np.ndarray:
    """A note: harmonics ``k <= harmonics`` (below 0.45 sr) of amplitude ``k ** -rolloff`` with
    random phases, read from a one-period wavetable, under an attack / exponential decay."""
    table_n = 2048
    k = np.arange(1, harmonics + 1)
    k = k[f0 * k < 0.45 * sr]
    phase = 2 * np.pi * np.arange(table_n) / table_n
    table = (np.sin(np.outer(phase, k) + rng.uniform(0, 2 * np.pi, k.size)) / k ** rolloff).sum(1)
    t = np.arange(n) / sr
    idx = (np.arange(n) * (f0 * table_n / sr)).astype(np.int64) % table_n
    env = np.minimum(1.0, t / max(attack_s, 1e-4)) * np.exp(-t / decay_s)
    return table[idx] * env


_PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4), (0, 4, 5, 3), (1, 4, 0, 0))
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def backing_music(n_samples: int, *, rng: np.random.Generator, sample_rate: int,
                  bpm: float | None = None) -> np.ndarray:
    """Synthesised harmonic backing music, unit RMS: chords on a pad, a bass line, an arpeggio.

    A random key and mode, a four-chord progression one chord per bar (4/4 at ``bpm``, random in
    [70, 160) when None), pad chords with slow attacks, a plucked bass on every beat or every
    other beat, and a plucked arpeggio in eighths on half of the draws: pitched, partly
    percussive sounds a drum detector must learn to ignore.
    """
    n = check_int("backing_music", "n_samples", n_samples, minimum=1)
    sr = sample_rate
    bpm = float(rng.uniform(70, 160)) if bpm is None else float(bpm)
    beat = int(60.0 / bpm * sr)
    scale = _MAJOR if rng.random() < 0.6 else _MINOR
    root = 48 + int(rng.integers(12))  # C3..B3
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    out = np.zeros(n + 6 * beat)  # the last bar's notes ring past the end
    bass_every = int(rng.choice([1, 2]))
    arp = rng.random() < 0.5
    pad_h, pad_roll = int(rng.integers(4, 10)), float(rng.uniform(1.0, 2.0))
    for bar, start in enumerate(range(0, n, 4 * beat)):
        degree = prog[bar % 4]
        chord = [root + scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]
        for m in chord:
            out[start:start + 4 * beat] += 0.25 * _tone(
                4 * beat, _note_hz(m), sr, harmonics=pad_h, rolloff=pad_roll,
                attack_s=rng.uniform(0.05, 0.3), decay_s=rng.uniform(1.0, 4.0), rng=rng)
        for b in range(0, 4, bass_every):
            i = start + b * beat
            out[i:i + beat * bass_every] += 0.6 * _tone(
                beat * bass_every, _note_hz(chord[0] - 24), sr, harmonics=3, rolloff=1.5,
                attack_s=0.005, decay_s=rng.uniform(0.15, 0.5), rng=rng)
        if arp:
            for e in range(8):
                i = start + e * beat // 2
                m = chord[int(rng.integers(3))] + 12
                out[i:i + beat] += 0.2 * _tone(beat, _note_hz(m), sr, harmonics=6, rolloff=1.2,
                                               attack_s=0.002, decay_s=0.2, rng=rng)
    out = out[:n]
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-30)


def mix_at_ratio(foreground: np.ndarray, background: np.ndarray, *,
                 ratio_db: float) -> np.ndarray:
    """``foreground + g * background`` with ``g`` such that the RMS of the foreground is
    ``ratio_db`` above that of the scaled background."""
    fg, bg = _mono("mix_at_ratio", foreground), _mono("mix_at_ratio", background)
    if fg.shape != bg.shape:
        raise ValueError(f"mix_at_ratio: `foreground` and `background` must have one shape, got "
                         f"{fg.shape} and {bg.shape}")
    g = 10 ** ((rms_db(fg) - ratio_db - rms_db(bg)) / 20)
    return (fg + g * bg).astype(fg.dtype)


# ----------------------------------------------------------------------------- chain

@dataclass(frozen=True)
class RecordingChain:
    """Settings of one simulated recording (drawn by :func:`draw_recording_chain`)."""

    rt60_s: float
    predelay_ms: float
    direct_to_reverb_db: float
    hf_rt60_ratio: float
    highpass_hz: float
    low_shelf_db: float
    peak_hz: float
    peak_db: float
    peak_q: float
    high_shelf_db: float
    lowpass_hz: float | None
    music_ratio_db: float | None  # drums RMS over music RMS; None: no backing music
    threshold_db: float  # re the RMS of the mix
    ratio: float
    attack_ms: float
    release_ms: float
    noise_snr_db: float  # mix RMS over noise RMS
    noise_colour: str
    hum_hz: float | None
    peak_dbfs: float  # output peak level
    drive: float  # soft-clip drive, 0: none

    def to_dict(self) -> dict:
        """The settings as a plain dict (for manifests)."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def draw_recording_chain(*, rng: np.random.Generator,
                         backing_music_probability: float = 0.0) -> RecordingChain:
    """Random recording settings: rooms from dry booths (RT60 0.1 s) to halls (1.2 s), mild to
    strong colour, light to heavy compression, 25-70 dB SNR, -14 to -0.3 dBFS peaks, and with
    probability ``backing_music_probability`` music 0-15 dB under the drums."""
    p = check_real("draw_recording_chain", "backing_music_probability",
                   backing_music_probability, minimum=0.0)
    if p > 1:
        raise ValueError(f"draw_recording_chain: `backing_music_probability` must lie in [0, 1], "
                         f"got {p}")
    u = rng.uniform
    music = bool(rng.random() < p)
    return RecordingChain(
        rt60_s=float(np.exp(u(np.log(0.1), np.log(1.2)))), predelay_ms=u(0.0, 25.0),
        direct_to_reverb_db=u(-2.0, 15.0), hf_rt60_ratio=u(0.3, 0.9),
        highpass_hz=float(np.exp(u(np.log(20.0), np.log(150.0)))), low_shelf_db=u(-6.0, 6.0),
        peak_hz=float(np.exp(u(np.log(200.0), np.log(6000.0)))), peak_db=u(-8.0, 8.0),
        peak_q=u(0.5, 2.5), high_shelf_db=u(-10.0, 6.0),
        lowpass_hz=float(u(5000.0, 16000.0)) if rng.random() < 0.3 else None,
        music_ratio_db=float(u(0.0, 15.0)) if music else None,
        threshold_db=u(-20.0, 0.0), ratio=float(np.exp(u(0.0, np.log(8.0)))),
        attack_ms=u(1.0, 30.0), release_ms=u(30.0, 300.0), noise_snr_db=u(25.0, 70.0),
        noise_colour=str(rng.choice(["white", "pink", "brown"])),
        hum_hz=float(rng.choice([50.0, 60.0])) if rng.random() < 0.2 else None,
        peak_dbfs=u(-14.0, -0.3), drive=float(u(1.0, 4.0)) if rng.random() < 0.15 else 0.0)


def apply_recording_chain(audio: np.ndarray, chain: RecordingChain, *, rng: np.random.Generator,
                          sample_rate: int, bpm: float | None = None) -> np.ndarray:
    """Record ``audio`` (a dry drum mix) through ``chain``: room, mic colour, backing music
    (tempo ``bpm``), bus compression, noise floor, soft clipping, output level.

    Returns:
        float32 ``(samples,)`` of the input length, peak at ``chain.peak_dbfs``.
    """
    x = _mono("apply_recording_chain", audio).astype(np.float64)
    if not np.any(x):
        return x.astype(np.float32)
    rir = synthetic_rir(rng=rng, sample_rate=sample_rate, rt60_s=chain.rt60_s,
                        predelay_ms=chain.predelay_ms, hf_rt60_ratio=chain.hf_rt60_ratio,
                        direct_to_reverb_db=chain.direct_to_reverb_db)
    x = apply_reverb(x, rir)
    x = colour_eq(x, sample_rate=sample_rate, highpass_hz=chain.highpass_hz,
                  low_shelf_db=chain.low_shelf_db, peak_hz=chain.peak_hz, peak_db=chain.peak_db,
                  peak_q=chain.peak_q, high_shelf_db=chain.high_shelf_db,
                  lowpass_hz=chain.lowpass_hz)
    if chain.music_ratio_db is not None:
        music = backing_music(x.size, rng=rng, sample_rate=sample_rate, bpm=bpm)
        x = mix_at_ratio(x, music, ratio_db=chain.music_ratio_db)
    x = compress(x, sample_rate=sample_rate, threshold_db=rms_db(x) + chain.threshold_db,
                 ratio=chain.ratio, attack_ms=chain.attack_ms, release_ms=chain.release_ms)
    noise = noise_floor(x.size, rng=rng, sample_rate=sample_rate, colour=chain.noise_colour,
                        hum_hz=chain.hum_hz)
    x = x + noise * 10 ** ((rms_db(x) - chain.noise_snr_db) / 20)
    x /= np.abs(x).max() + 1e-30
    if chain.drive > 0:
        x = np.tanh(chain.drive * x) / np.tanh(chain.drive)
    return (x * 10 ** (chain.peak_dbfs / 20)).astype(np.float32)
