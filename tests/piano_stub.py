"""A SoundFont renderer stand-in for the piano tests (no SoundFont, no synthesizer needed)."""

from __future__ import annotations

import numpy as np


class SineStub:
    """Decaying sines at each note's pitch, sounding 3 ms after the note-on (a known answer)."""

    cache_id = None

    def programs(self, soundfont):
        return {p: f"program {p}" for p in range(8)}

    def render(self, notes, *, instrument, duration_s, sample_rate):
        out = np.zeros(int(round(duration_s * sample_rate)), dtype=np.float32)
        for n in notes:
            start = int(round((n.onset_s + 0.003) * sample_rate))
            stop = min(out.size, max(start, int(round(n.offset_s * sample_rate))) + 800)
            k = np.arange(stop - start) / sample_rate
            hz = 440.0 * 2 ** ((n.pitch - 69) / 12)
            tone = np.sin(2 * np.pi * hz * k) * np.exp(-k / 0.3)
            out[start:stop] += (0.1 * (n.velocity or 80) / 127 * tone).astype(np.float32)
        return out

