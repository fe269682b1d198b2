"""Drum performances as lists of hits: grooves of several styles, fills, ghost notes, flams,
open and pedal hi-hats, ride sections, crashes, toms and percussion, humanised.

A performance is a list of :class:`Hit` ``(time_s, role, velocity, slot)`` where ``role`` is an
instrument role of :data:`softloc.data.generators.kit_formats.ROLE_LABELS` and ``slot`` picks one
of several instruments of that role (tom 0 = high ... 2 = low; crash 0 / 1). Times are where each
sound starts; velocities are in (0, 1].

Styles (:data:`STYLES`): rock, funk, hiphop, disco, electronic, halftime, shuffle, jazz, ballad,
reggae (one drop), breakbeat, metal. Every bar varies its pattern (dropped / added kicks, ghost
notes, flams, open hats); phrases of 4 or 8 bars end in fills on snare and toms (sometimes a
whole bar) and start with a crash; some sections move the time-keeping to the ride (jazz: always,
with the hi-hat pedal on 2 and 4) or add percussion; a few tracks open with hats alone or stop
for a break. Humanising: per-track timing spread (2-15 ms), per-instrument lag (snare laid back),
swing, slow tempo drift, velocity jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SCATTERED", "STYLES", "Hit", "perform"]


@dataclass(frozen=True)
class Hit:
    """One stroke: when its sound starts (s), the role played, velocity in (0, 1], slot."""

    time_s: float
    role: str
    velocity: float
    slot: int = 0


# grid: steps per bar; bpm: range; hats: steps of the time-keeper; kicks: kick patterns;
# snare: backbeat steps; ghost: probability of a ghost note per free off-step; swing: max swing;
# opens: probability per bar of an open hat on an off-beat; backbeat: role of the backbeat.
STYLES: dict[str, dict] = {
    "rock": dict(grid=16, bpm=(80, 150), hats=range(0, 16, 2), snare=(4, 12), ghost=0.04,
                 kicks=((0, 8), (0, 8, 10), (0, 3, 8, 10), (0, 6, 8), (0, 10), (0, 7, 8))),
    "funk": dict(grid=16, bpm=(85, 115), hats=range(16), snare=(4, 12), ghost=0.3, swing=0.1,
                 kicks=((0, 3, 6, 10), (0, 2, 7, 10), (0, 6, 9, 14), (0, 3, 10, 11))),
    "hiphop": dict(grid=16, bpm=(80, 100), hats=range(0, 16, 2), snare=(4, 12), ghost=0.1,
                   swing=0.25, kicks=((0, 7, 10), (0, 3, 8, 11), (0, 9, 10), (0, 6, 10, 13))),
    "disco": dict(grid=16, bpm=(110, 130), hats=range(0, 16, 2), snare=(4, 12), ghost=0.02,
                  opens=1.0, open_steps=(2, 6, 10, 14), kicks=((0, 4, 8, 12),)),
    "electronic": dict(grid=16, bpm=(118, 140), hats=range(16), snare=(4, 12), ghost=0.0,
                       opens=1.0, open_steps=(2, 6, 10, 14), kicks=((0, 4, 8, 12),),
                       backbeat="snare_alt"),
    "halftime": dict(grid=16, bpm=(60, 90), hats=range(0, 16, 2), snare=(8,), ghost=0.08,
                     kicks=((0, 10), (0, 3, 10), (0, 6, 14), (0, 11))),
    "shuffle": dict(grid=12, bpm=(90, 150), hats=(0, 2, 3, 5, 6, 8, 9, 11), snare=(3, 9),
                    ghost=0.05, kicks=((0, 6), (0, 5, 6), (0, 8, 9), (0, 6, 11))),
    "jazz": dict(grid=12, bpm=(100, 220), hats=(0, 3, 5, 6, 9, 11), snare=(), ghost=0.12,
                 ride=1.0, pedal=(3, 9), kicks=((), (0,), (8,), (11,))),
    "ballad": dict(grid=16, bpm=(60, 85), hats=range(0, 16, 2), snare=(4, 12), ghost=0.0,
                   kicks=((0, 10), (0, 8), (0, 6, 10)), backbeat="snare_alt"),
    "reggae": dict(grid=12, bpm=(70, 90), hats=(0, 2, 3, 5, 6, 8, 9, 11), snare=(6,), ghost=0.0,
                   kicks=((6,),), backbeat="snare_alt"),
    "breakbeat": dict(grid=16, bpm=(160, 178), hats=range(0, 16, 2), snare=(4, 12),
                      ghost=0.12, kicks=((0, 10), (0, 2, 10), (0, 10, 11), (0, 7, 10))),
    "metal": dict(grid=16, bpm=(140, 200), hats=range(0, 16, 4), snare=(4, 12), ghost=0.0,
                  kicks=(tuple(range(16)), tuple(range(0, 16, 2))), cymbal="ride"),
}
#: A performance that is not music: every role struck at random times (a Poisson process per
#: role with its own rate, on no grid), velocities uniform. In grooves the number of snares or
#: hi-hats in a window follows from the tempo, so a model trained from counts can predict them
#: without hearing the instrument; here each count says only how often that sound occurred.
SCATTERED = "scattered"
# Events per second of each role in a scattered performance: rate ~ U(lo, hi) per track.
_SCATTER_RATES = {"kick": (0.3, 3.0), "snare": (0.3, 3.0), "hihat_closed": (0.3, 6.0),
                  "hihat_open": (0.0, 0.5), "tom": (0.0, 1.0), "crash": (0.0, 0.3),
                  "ride": (0.0, 1.0), "perc": (0.0, 0.5)}
# What plays a role, in order of preference, when a kit lacks it (none available: dropped).
_SUBSTITUTES = {
    "kick": ("kick",), "snare": ("snare", "snare_alt"), "snare_alt": ("snare_alt", "snare"),
    "hihat_closed": ("hihat_closed", "hihat_pedal", "hihat_open"),
    "hihat_open": ("hihat_open", "hihat_closed", "hihat_pedal"),
    "hihat_pedal": ("hihat_pedal", "hihat_closed", "hihat_open"),
    "ride": ("ride", "hihat_closed", "hihat_pedal", "hihat_open"), "crash": ("crash", "ride"),
    "tom": ("tom", "snare", "snare_alt"), "perc": ("perc",),
}


def _fill(rng, bar_hits, *, steps: int, beat: int, n_toms: int, whole: bool, fast: bool) -> int:
    """Append a fill over the last beats of the bar; returns its first step."""
    start = 0 if whole else steps - beat * int(rng.choice([1, 2]))
    sub = 2 if fast else 1
    names = ["snare"] + [f"tom{k}" for k in range(n_toms)]
    n = (steps - start) // sub
    for i, s in enumerate(range(start, steps, sub)):
        if rng.random() < 0.12:
            continue
        pick = names[min(len(names) - 1, int(len(names) * i / max(1, n)))] \
            if rng.random() < 0.8 else str(rng.choice(names))
        vel = 0.55 + 0.45 * i / max(1, n)
        if pick == "snare":
            bar_hits.append((s, "snare", vel, 0))
        else:
            bar_hits.append((s, "tom", vel, int(pick[3:])))
        if rng.random() < 0.15:
            bar_hits.append((s, "kick", 0.8, 0))
    return start


def _bar(rng, style: dict, *, kick: list[int], ride: bool, perc: bool, open_step: int,
         mute_hats: bool, silent: bool) -> list[tuple[int, str, float, int]]:
    steps = style["grid"]
    beat = steps // 4
    out: list[tuple[int, str, float, int]] = []
    keeper = "ride" if ride else "hihat_closed"
    for s in range(steps):
        if s in style["hats"] and not mute_hats:
            accent = 0.85 if s % beat == 0 else (0.6 if s % (beat // 2 or 1) == 0 else 0.45)
            role = "hihat_open" if s == open_step and not ride else keeper
            out.append((s, role, accent + float(rng.normal(0, 0.05)), 0))
        if ride and s in style.get("pedal", (beat, 3 * beat)):
            out.append((s, "hihat_pedal", 0.5, 0))
        if perc and s % (beat // 2 or 1) == 0:
            out.append((s, "perc", 0.4 + 0.3 * (s % beat == 0), 0))
        if silent:
            continue
        if s in kick:
            out.append((s, "kick", float(rng.uniform(0.7, 1.0)), 0))
        if s in style["snare"]:
            role = style.get("backbeat", "snare")
            out.append((s, role, float(rng.uniform(0.8, 1.0)), 0))
        elif s % 2 == 1 and rng.random() < style["ghost"]:
            out.append((s, "snare", float(rng.uniform(0.12, 0.35)), 0))  # ghost note
    return out


def perform(rng: np.random.Generator, duration_s: float, *, available: frozenset[str] | set[str],
            style: str | None = None) -> tuple[list[Hit], dict]:
    """A humanised performance of ``duration_s`` seconds on a kit that has the roles
    ``available`` (missing roles are played by a substitute or dropped).

    ``style``: one of :data:`STYLES`, :data:`SCATTERED` (random strokes, no music), or None (a
    random style of :data:`STYLES`).

    Returns:
        ``(hits, info)``: hits sorted by time within ``[0, duration_s - 0.02)``, and
        ``{"style", "bpm"}`` (bpm 120 for a scattered performance: the recording chain's
        delays use it).
    """
    if style == SCATTERED:
        return _scattered(rng, duration_s, available), {"style": SCATTERED, "bpm": 120.0}
    name = style if style is not None else str(rng.choice(sorted(STYLES)))
    st = STYLES[name]
    bpm = float(rng.uniform(*st["bpm"]))
    steps, beat = st["grid"], st["grid"] // 4
    step_s = 60.0 / bpm / beat
    swing = float(rng.uniform(0, st.get("swing", 0.0)))
    phrase = int(rng.choice([4, 8]))
    base_kick = list(st["kicks"][int(rng.integers(len(st["kicks"])))])
    n_toms = int(rng.integers(1, 4))
    raw: list[tuple[float, str, float, int]] = []
    t_bar, bar, tempo = float(rng.uniform(0.0, 1.0)), 0, 1.0
    ride = perc = False
    while t_bar < duration_s:
        if bar % phrase == 0:
            ride = st.get("ride", 0.0) == 1.0 or rng.random() < 0.15
            perc = rng.random() < 0.12
            if bar > 0 or rng.random() < 0.5:
                raw.append((t_bar, "crash", float(rng.uniform(0.7, 1.0)), int(rng.integers(2))))
                raw.append((t_bar, "kick", 0.9, 0))
        kind = rng.random()
        intro, brk = bar == 0 and kind < 0.2, bar > 0 and kind < 0.04
        fill = bar % phrase == phrase - 1 and rng.random() < 0.75
        kick = [s for s in base_kick if rng.random() > 0.08]
        if rng.random() < 0.25:
            kick.append(int(rng.integers(steps)))
        off = [s for s in st["hats"] if s % beat]
        open_step = int(rng.choice(st.get("open_steps", off))) if off and (
            rng.random() < st.get("opens", 0.35)) else -1
        bar_hits = _bar(rng, st, kick=kick, ride=ride, perc=perc, open_step=open_step,
                        mute_hats=brk, silent=intro or brk)
        if st.get("open_steps") and open_step >= 0:  # every off-beat open (disco, electronic)
            bar_hits = [(s, "hihat_open" if r == "hihat_closed" and s in st["open_steps"] else r,
                         v, k) for s, r, v, k in bar_hits]
        if fill:
            whole = rng.random() < 0.15
            fill_hits: list = []
            start = _fill(rng, fill_hits, steps=steps, beat=beat, n_toms=n_toms, whole=whole,
                          fast=bpm < 150)
            bar_hits = [h for h in bar_hits if h[0] < start or h[1] == "kick"] + fill_hits
        if st.get("cymbal") == "ride" and not brk:
            bar_hits += [(s, "ride", 0.7, 0) for s in range(0, steps, beat)]
        for s, role, vel, slot in bar_hits:
            t = t_bar + (s + (swing if s % 2 else 0.0)) * step_s * tempo
            raw.append((t, role, vel, slot))
            if role in ("snare", "tom") and vel > 0.6 and rng.random() < 0.04:  # flam
                raw.append((t - float(rng.uniform(0.015, 0.04)), role, 0.3 * vel, slot))
        t_bar += steps * step_s * tempo
        tempo = float(np.clip(tempo * (1 + rng.normal(0, 0.005)), 0.97, 1.03))
        bar += 1
    return _humanise(rng, raw, duration_s, available, loose=name == "jazz"), {"style": name,
                                                                              "bpm": bpm}


def _scattered(rng, duration_s: float, available) -> list[Hit]:
    raw = []
    for role, (lo, hi) in _SCATTER_RATES.items():
        n = int(rng.poisson(float(rng.uniform(lo, hi)) * duration_s))
        times = rng.uniform(0.0, duration_s, n)
        slots = rng.integers(0, 3, n)
        raw += [(float(t), role, float(rng.uniform(0.2, 1.0)), int(k))
                for t, k in zip(times, slots, strict=True)]
    return _humanise(rng, raw, duration_s, available, loose=False)


def _humanise(rng, raw, duration_s: float, available, *, loose: bool) -> list[Hit]:
    tight = float(rng.uniform(0.002, 0.015 if loose else 0.01))
    lag = {"kick": rng.normal(0, 0.004), "snare": rng.normal(0.003, 0.004),
           "hihat": rng.normal(0, 0.003)}
    hits = []
    for t, role, vel, slot in raw:
        role = next((r for r in _SUBSTITUTES[role] if r in available), None)
        if role is None:
            continue
        group = "hihat" if role.startswith("hihat") else role.replace("_alt", "")
        t = t + float(lag.get(group, 0.0)) + float(rng.normal(0, tight))
        vel = float(np.clip(vel + rng.normal(0, 0.06), 0.08, 1.0))
        if 0.0 <= t < duration_s - 0.02:
            hits.append(Hit(t, role, vel, slot))
    hits.sort(key=lambda h: h.time_s)
    return hits
