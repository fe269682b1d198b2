"""The drum experiment (LoCo §6, SoftLoc §5.1.2) on generated drums, and ``softloc demo``.

One pipeline, five stages, each a public function of its own module:

1. data: :func:`softloc.data.synthesize_drum_dataset`: recorded kits found on the machine
   (Debian's ``hydrogen-drumkits`` / ``fluid-soundfont-gm``, ``kits``) split by family, plus
   synthetic kits; valid and test kits are never heard in training;
2. evaluation sets of kits the model never heard (:func:`evaluation_sets`): the test split, and
   recorded kits rendered on purpose: the recorded kits of the generator's test split
   (``heldout-recorded``) and the user's own ``eval_kits`` (``eval-kits``; excluded from the
   training data by name);
3. training: :func:`softloc.training.train` from counts (LoCo) or timestamps (SoftLoc / BCE);
4. detection: :class:`softloc.inference.Detector` with each decoding of ``decodings``
   (:data:`DECODINGS`: the calibrated threshold decoder, the cleaning decoder, test-time
   augmentation averaged or Nadaraya–Watson ensembled; ``softloc.inference.ensemble``);
5. evaluation: :func:`softloc.metrics.evaluate` (mir_eval matching, +-50 ms).

:func:`run_experiment` runs them and writes ``OUT/{data,eval,run,detections}``,
``OUT/metrics.json`` and ``OUT/demo.png``; :func:`run_demo` is ``softloc demo`` (= ``make
demo``): counts only, the ``demo`` preset, a data size that fits the 10-minute CPU budget; its
printed F1 is on recorded kits never heard in training when any are installed, else on the
synthetic test kits.

The model shipped in ``softloc/pretrained/drums.pt`` is trained by the command in
``softloc/pretrained/README.md``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from softloc._io import atomic_write_bytes, atomic_write_text
from softloc.config import apply_overrides, load_preset
from softloc.data import synthesize_drum_dataset
from softloc.data.formats import (
    read_annotation_file,
    write_annotation_file,
    write_split_file,
    write_wav,
)
from softloc.data.generators.drums import render_drum_track
from softloc.data.generators.kits import KitSource, discover_kits, load_kits, split_kits
from softloc.inference import MODEL_FILE, Detector, collect_audio_inputs, detect_to_folder
from softloc.metrics import evaluate, format_table, results_to_json
from softloc.training import train

__all__ = ["DECODINGS", "DEMO_SIZE", "DemoSize", "TTA_FACTORS", "evaluation_sets",
           "run_demo", "run_experiment"]


@dataclass(frozen=True)
class DemoSize:
    """Size of the generated data (files x seconds per split) and of the held-out kit sets.

    Attributes:
        n_train_files, n_valid_files, n_test_files: files per split of the generated dataset.
        file_duration_s: seconds per file.
        n_eval_files_per_kit: files rendered per held-out recorded kit (``heldout-recorded``,
            ``eval-kits``); 0 = no such sets.
        backing_music: probability of music under the drums, per generated file.
        scattered: probability per generated training file of random strokes instead of a
            groove (``synthesize_drum_dataset(scattered=...)``).
        vary_kits: probability per generated training file that its instruments are retuned
            and recoloured (``synthesize_drum_dataset(vary_kits=...)``).
        mix_kits: probability per generated training file that its roles are played by
            instruments of several training kits (``synthesize_drum_dataset(mix_kits=...)``).
    """

    # 40 (20 min) overfitted: validation count loss rose from step 250 on while the training
    # loss fell; 160 removed that and scored higher on held-out kits (docs/results.md).
    n_train_files: int = 160
    n_valid_files: int = 6
    n_test_files: int = 10
    file_duration_s: float = 30.0
    # 3 per kit left 6 files per run on this machine's two held-out kits: too few to tell runs
    # a few points apart (docs/results.md); rendering and scoring 10 costs seconds.
    n_eval_files_per_kit: int = 10
    backing_music: float = 0.2
    scattered: float = 0.0
    vary_kits: float = 0.0
    mix_kits: float = 0.0


#: The demo's data: 80 min of training audio, 10 x 30 s of test audio on other kits.
DEMO_SIZE = DemoSize()

#: Test-time rate factors besides 1 (the original drums: 6 draws from U[7/8, 9/8)).
TTA_FACTORS = (0.875, 0.917, 0.958, 1.042, 1.083, 1.125)

#: Decoding variants scored by the experiment: name -> ``Detector.with_settings`` arguments.
DECODINGS: dict[str, dict[str, Any]] = {
    "threshold": {},
    "clean": {"decoder": "clean"},
    "tta-mean": {"tta_factors": TTA_FACTORS, "tta_ensemble": "mean"},
    "tta-nw": {"tta_factors": TTA_FACTORS, "tta_ensemble": "nw"},
    "tta-nw-clean": {"tta_factors": TTA_FACTORS, "tta_ensemble": "nw", "decoder": "clean"},
}

_MARKER = ".softloc-experiment"
_OUTPUTS = ("data", "eval", "run", "detections", "metrics.json", "demo.png")


def _prepare_out(out: Path, overwrite: bool, *, keep: Path | None = None) -> None:
    """Create ``out``. A folder that holds files already is used only with ``overwrite`` and
    only when an earlier demo/experiment wrote it (its marker file): then that run's outputs are
    replaced, but never ``keep`` (an input dataset inside ``out``), and never a folder that
    softloc did not write."""
    if out.exists() and any(out.iterdir()):
        if not (out / _MARKER).is_file():
            if overwrite:
                raise FileExistsError(
                    f"{out}: --overwrite only replaces a folder written by softloc demo/experiment"
                )
            raise FileExistsError(
                f"{out}: folder exists and is not empty; choose another --out"
            )
        if not overwrite:
            raise FileExistsError(
                f"{out}: holds the outputs of an earlier softloc demo/experiment; pass "
                "--overwrite to replace them, or choose another --out"
            )
        if keep is not None and keep.exists():
            for name in _OUTPUTS:
                target = (out / name).resolve()
                if keep.resolve() == target or keep.resolve().is_relative_to(target):
                    raise ValueError(
                        f"{keep}: the input dataset lies in {out / name}, which --overwrite "
                        "would delete; move it out of --out or choose another --out"
                    )
        for name in _OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / _MARKER, "written by softloc demo / softloc experiment drums\n")


# ------------------------------------------------------------------------ evaluation sets


def _heldout_recorded(data_root: Path) -> list[KitSource]:
    """The recorded kits of a generated dataset's test split: the generator's family split
    (``split_kits`` with its seed) of the kits it found, whether its test files played them or
    not."""
    path = data_root / "synth_drums.json"
    if not path.is_file():
        return []
    settings = json.loads(path.read_text())
    sources = discover_kits(settings.get("kit_paths", []),
                            system=bool(settings.get("system_kits", True)),
                            exclude=settings.get("exclude_kits", []))
    return split_kits(sources, seed=int(settings["seed"]))["test"]


def _render_set(out: Path, sources: Sequence[KitSource], *, n_per_kit: int, seed: int,
                size: DemoSize, sample_rate: int) -> list[str]:
    """Render ``n_per_kit`` files per kit into ``out/{audio,annotations}``; the kit names."""
    kits = load_kits(sources, sample_rate=sample_rate)
    stems = []
    for k, kit in enumerate(kits):
        for i in range(n_per_kit):
            audio, events = render_drum_track(
                seed=1_000_003 * (seed + 1) + 1000 * k + i, kit=kit,
                duration_s=size.file_duration_s, sample_rate=sample_rate,
                backing_music=size.backing_music)
            stem = f"eval_{k:02d}_{i:02d}"
            write_wav(out / "audio" / f"{stem}.wav", audio, sample_rate)
            write_annotation_file(out / "annotations" / f"{stem}.txt", events, overwrite=True)
            stems.append(stem)
    write_split_file(out / "splits" / "test.txt", stems, overwrite=True)
    atomic_write_text(out / "kits.json", json.dumps(
        {"kits": [{"name": kit.name, "kind": kit.kind, "family": kit.family,
                   "source": kit.source} for kit in kits], "files_per_kit": n_per_kit}, indent=1))
    return [kit.name for kit in kits]


def evaluation_sets(out_dir: str | Path, data_root: str | Path, *, seed: int, size: DemoSize,
                    sample_rate: int, eval_kits: Sequence[str | Path] = ()
                    ) -> dict[str, dict[str, Any]]:
    """The sets the detector is scored on: name -> ``{"root", "stems", "kits"}``.

    * ``test``: the test split of ``data_root``;
    * ``heldout-recorded``: ``size.n_eval_files_per_kit`` files on each recorded kit of the
      generated test split (kits split by family, never heard in training); only for data from
      :func:`~softloc.data.synthesize_drum_dataset` with recorded kits;
    * ``eval-kits``: the same on the kits found in ``eval_kits`` (Hydrogen / SFZ / SF2 / one-shot
      folders; the training data must exclude them, as :func:`run_experiment` does).

    Rendered sets (``OUT/eval/<name>``) play the generator's grooves through its recording
    chain, with music under ``size.backing_music`` of the files.

    Raises:
        ValueError: ``eval_kits`` holds no usable kit.
    """
    out, data_root = Path(out_dir), Path(data_root)
    test_stems = [p.stem for p in collect_audio_inputs([], data_root=data_root, split="test")]
    sets: dict[str, dict[str, Any]] = {"test": {"root": data_root, "stems": test_stems,
                                                "kits": []}}
    if size.n_eval_files_per_kit <= 0:
        return sets
    wanted = [("heldout-recorded", _heldout_recorded(data_root))]
    if eval_kits:
        own = discover_kits(eval_kits, system=False)
        if not own:
            raise ValueError(f"experiment drums: no drum kit found in --eval-kits "
                             f"{list(eval_kits)}")
        wanted.append(("eval-kits", own))
    for name, sources in wanted:
        if not sources:
            continue
        root = out / name
        kits = _render_set(root, sources, n_per_kit=size.n_eval_files_per_kit, seed=seed,
                           size=size, sample_rate=sample_rate)
        if kits:
            stems = [p.stem for p in collect_audio_inputs([], data_root=root, split="test")]
            sets[name] = {"root": root, "stems": stems, "kits": kits}
    return sets


def _score(detector: Detector, root: Path, stems: Sequence[str]) -> dict[str, Any]:
    classes = detector.classes
    ref, est = {}, {}
    for stem in stems:
        ref[stem] = read_annotation_file(root / "annotations" / f"{stem}.txt")
        found = detector.detect(root / "audio" / f"{stem}.wav")
        est[stem] = [(t, lab) for t, lab, _ in found]
    return evaluate(ref, est, tolerance_s=0.05, classes=classes)


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    return {"overall": {k: results["overall"][k] for k in ("f1", "precision", "recall")},
            "per_class": {c: {k: v[k] for k in ("f1", "precision", "recall")}
                          for c, v in results["per_class"].items()}}


# ------------------------------------------------------------------------ experiment


def run_experiment(
    out_dir: str | Path,
    *,
    preset: str = "drums",
    labels: str = "counts",
    loss: str | None = None,
    label_noise: str | None = None,
    data_root: str | Path | None = None,
    size: DemoSize = DEMO_SIZE,
    seed: int = 0,
    eval_seed: int | None = None,
    max_steps: int | None = None,
    overrides: tuple[str, ...] = (),
    overwrite: bool = False,
    export: str | Path | None = None,
    kits: Sequence[str | Path] = (),
    eval_kits: Sequence[str | Path] = (),
    system_kits: bool = True,
    decodings: Sequence[str] = ("threshold",),
    progress: bool = True,
    verbose: bool = True,
) -> dict:
    """Generate (or use ``data_root``), train, detect on kits never heard, evaluate, plot.

    Args:
        out_dir: output folder (``data/``, ``eval/``, ``run/``, ``detections/``,
            ``metrics.json``, ``demo.png``).
        preset: configuration preset (``drums``, ``demo``).
        labels: ``counts`` or ``onsets``.
        loss: loss name (default: the preset's).
        label_noise: perturb training timestamps (``softloc.noise`` spec, e.g. ``normal:50ms``).
        data_root: use this dataset instead of generating one.
        size: generated data size and held-out set size.
        seed: seed of the data and of training.
        eval_seed: seed of the rendered held-out sets (default ``seed``); fix it to score runs
            of several training seeds on the same files.
        max_steps: training steps (default: the preset's).
        overrides: extra ``dotted.key=value`` config overrides.
        overwrite: replace the outputs of an earlier demo/experiment in ``out_dir`` (a folder
            holding its marker file; never a folder softloc did not write, never ``data_root``).
            Without it a non-empty ``out_dir`` is refused before any work.
        export: also copy the trained ``model.pt`` here (e.g. ``softloc/pretrained/drums.pt``).
        kits: more recorded kits for the generator (``synthesize_drum_dataset(kits=...)``).
        eval_kits: your own evaluation kits: excluded from the generated data (by name) and
            rendered into the ``eval-kits`` set.
        system_kits: let the generator use the kits installed on the system.
        decodings: names of :data:`DECODINGS` to score (the first one also writes
            ``detections/`` and sets the printed F1).
        progress: show the training progress bar.
        verbose: print the stages and the result table.

    Returns:
        the content written to ``metrics.json``: ``"overall"`` / ``"per_class"`` of the test
        split with the first decoding (as before), ``"sets"``: set -> decoding -> scores,
        ``"headline"``: the set the printed F1 is on.

    Raises:
        ValueError: an unknown decoding, or ``eval_kits`` without a usable kit.
    """
    unknown = [d for d in decodings if d not in DECODINGS]
    if unknown or not decodings:
        raise ValueError(f"run_experiment: `decodings` must be names of {sorted(DECODINGS)}, "
                         f"got {list(decodings)}")
    t0 = time.perf_counter()
    out = Path(out_dir)
    _prepare_out(out, overwrite, keep=None if data_root is None else Path(data_root))
    say = print if verbose else (lambda *a, **k: None)
    extra = list(overrides) + [f"train.seed={seed}"]
    extra += [] if loss is None else [f"loss.name={loss}"]
    extra += [] if max_steps is None else [f"train.max_steps={max_steps}"]
    config = apply_overrides(load_preset(preset), extra)
    sr = config.features.sample_rate

    timings: dict[str, float] = {}
    if data_root is None:
        say(f"[1/5] generating drum data in {out / 'data'} ...", flush=True)
        data_root = _generate(out / "data", seed=seed, size=size, kits=kits, eval_kits=eval_kits,
                              system_kits=system_kits, sample_rate=sr,
                              count_window=(config.data.window_s, config.data.hop_s))
    data_root = Path(data_root)
    say("[2/5] rendering the held-out kit sets ...", flush=True)
    sets = evaluation_sets(out / "eval", data_root, seed=seed if eval_seed is None else eval_seed,
                           size=size, sample_rate=sr, eval_kits=eval_kits)
    timings["data_s"] = time.perf_counter() - t0

    say(f"[3/5] training ({config.loss.name} from {labels}, preset {preset}, "
        f"{config.train.max_steps} steps) ...", flush=True)
    t1 = time.perf_counter()
    result = train(config, data_root=data_root, out_dir=out / "run", labels=labels,
                   label_noise=label_noise, progress=progress)
    timings["train_s"] = time.perf_counter() - t1

    say(f"[4/5] detecting ({', '.join(decodings)}) on {', '.join(sets)} ...", flush=True)
    t2 = time.perf_counter()
    detector = Detector.load(out / "run")
    paths = [data_root / "audio" / f"{s}.wav" for s in sets["test"]["stems"]]
    detect_to_folder(detector.with_settings(**DECODINGS[decodings[0]]), paths,
                     out / "detections")
    timings["detect_s"] = time.perf_counter() - t2

    say("[5/5] evaluating (+-50 ms) ...", flush=True)
    t3 = time.perf_counter()
    scores, full = _score_sets(detector, sets, decodings)
    timings["evaluate_s"] = time.perf_counter() - t3
    _plot(detector, paths[0], data_root, out)
    timings["total_s"] = time.perf_counter() - t0
    summary = _summarise(scores, full, sets, timings, paths, result.metrics, preset=preset,
                         labels=labels, loss=config.loss.name, label_noise=label_noise,
                         decodings=decodings)
    atomic_write_text(out / "metrics.json", results_to_json(summary) + "\n")
    if export is not None:
        atomic_write_bytes(export, (out / "run" / MODEL_FILE).read_bytes())
    if verbose:
        _report(say, summary, full[summary["headline"]], labels, timings, out)
    return json.loads(results_to_json(summary))


def _generate(root: Path, *, seed: int, size: DemoSize, kits, eval_kits, system_kits: bool,
              sample_rate: int, count_window: tuple[float, float]) -> Path:
    """Stage 1: the generated dataset, without the families of the user's ``eval_kits``;
    counts.csv holds counts of ``count_window = (window_s, hop_s)`` windows (the preset's
    ``data.window_s`` / ``data.hop_s``)."""
    exclude = sorted({s.family for s in discover_kits(eval_kits, system=False)}) \
        if eval_kits else []
    # Written at the model's sample rate, so that no resampling is needed when loading.
    synthesize_drum_dataset(
        root, seed=seed, kits=kits, system_kits=system_kits, exclude_kits=exclude,
        n_train_files=size.n_train_files, n_valid_files=size.n_valid_files,
        n_test_files=size.n_test_files, file_duration_s=size.file_duration_s,
        backing_music=size.backing_music, scattered=size.scattered,
        vary_kits=size.vary_kits, mix_kits=size.mix_kits, sample_rate=sample_rate,
        window_s=count_window[0], hop_s=count_window[1],
    )
    return root


def _score_sets(detector: Detector, sets: dict, decodings: Sequence[str]):
    """Stage 5: set -> {kits, files, decoding -> summary}, and set -> the first decoding's full
    results."""
    scores: dict[str, dict[str, Any]] = {}
    full: dict[str, Any] = {}
    for name, s in sets.items():
        scores[name] = {"kits": s["kits"], "files": len(s["stems"])}
        for dec in decodings:
            res = _score(detector.with_settings(**DECODINGS[dec]), Path(s["root"]), s["stems"])
            scores[name][dec] = _summary(res)
            if dec == decodings[0]:
                full[name] = res
    return scores, full


def _summarise(scores: dict, full: dict, sets: dict, timings: dict, paths: list[Path],
               train_metrics: dict, *, preset: str, labels: str, loss: str,
               label_noise: str | None, decodings: Sequence[str]) -> dict[str, Any]:
    """The content of ``metrics.json``."""
    headline = next((n for n in ("eval-kits", "heldout-recorded") if n in sets), "test")
    audio_s = sum(float(sf.info(str(p)).duration) for p in paths)
    return {
        **_summary(full["test"]),
        "headline": headline,
        "headline_f1": scores[headline][decodings[0]]["overall"]["f1"],
        "sets": scores,
        "preset": preset, "labels": labels, "loss": loss,
        "label_noise": label_noise, "decodings": list(decodings),
        "train_steps": train_metrics.get("steps"),
        "calibration": train_metrics.get("calibration"),
        "test_files": len(paths), "test_audio_s": round(audio_s, 1),
        "detect_x_real_time": round(audio_s / max(timings["detect_s"], 1e-9), 1),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "evaluation": full["test"],
        "evaluation_headline": full[headline],
    }


def _plot(detector: Detector, path: Path, data_root: Path, out: Path) -> None:
    try:
        from softloc.plots import plot_detection

        plot_detection(detector, path, out / "demo.png",
                       annotations=data_root / "annotations" / f"{path.stem}.txt",
                       start_s=2.0, duration_s=4.0)
    except ImportError:  # plots are optional for the numbers
        pass


_SET_NAMES = {"test": "the test split (kits never heard in training)",
              "heldout-recorded": "recorded kits never heard in training",
              "eval-kits": "your --eval-kits (never heard in training)"}


def _report(say, summary: dict, headline_results: dict, labels: str, timings: dict,
            out: Path) -> None:
    say(format_table(headline_results))
    for name, by_dec in summary["sets"].items():
        row = ", ".join(f"{d} {by_dec[d]['overall']['f1']:.3f}" for d in summary["decodings"])
        kits = f"; kits: {', '.join(by_dec['kits'])}" if by_dec["kits"] else ""
        say(f"  {name} ({by_dec['files']} files{kits}): F1 {row}")
    head = summary["sets"][summary["headline"]][summary["decodings"][0]]
    per_class = ", ".join(f"{c} {v['f1']:.3f}" for c, v in head["per_class"].items())
    say(f"F1 at +-50 ms on {_SET_NAMES[summary['headline']]}: overall "
        f"{head['overall']['f1']:.3f} ({per_class})"
        + ("; trained from counts only" if labels == "counts" else ""))
    say(f"total {timings['total_s']:.0f} s (data {timings['data_s']:.0f} s, train "
        f"{timings['train_s']:.0f} s, detect+evaluate "
        f"{timings['detect_s'] + timings['evaluate_s']:.0f} s); wrote {out / 'metrics.json'} "
        f"and {out / 'demo.png'}")


def run_demo(
    out_dir: str | Path = "demo_out",
    *,
    seed: int = 0,
    max_steps: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = True,
) -> dict:
    """``softloc demo``: generated drums, LoCo from counts only, ``demo`` preset; see the module."""
    return run_experiment(out_dir, preset="demo", labels="counts", loss="loco", seed=seed,
                          max_steps=max_steps, overwrite=overwrite, progress=progress,
                          verbose=verbose)
