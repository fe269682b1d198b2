"""The softloc command line: parsing, error reports, what --help/--version import."""

import json
import subprocess
import sys

import pytest

from softloc import __version__
from softloc.cli import COMMANDS, EXPERIMENTS, build_parser, main


def test_version_and_help_exit_zero(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "detect", "evaluate", "plot", "data", "demo", "experiment"):
        assert command in out


def test_missing_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "required" in capsys.readouterr().err


def test_train_requires_labels_and_out(capsys):
    assert main(["train", "--data", "x"]) == 2
    assert "--labels" in capsys.readouterr().err


def test_train_rejects_unknown_choice(capsys):
    assert main(["train", "--data", "x", "--labels", "frames", "--out", "r"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_train_missing_dataset_is_reported(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path / "nope"), "--labels", "counts",
               "--out", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("softloc train: error:")
    assert "dataset folder not found" in err


def test_loss_names_take_either_spelling(tmp_path, capsys):
    # parsed (the error is the missing dataset, not the loss name): one spelling, hyphens
    for name in ("smoothed_bce", "Smoothed-BCE"):
        rc = main(["train", "--data", str(tmp_path / "nope"), "--labels", "onsets", "--loss",
                   name, "--out", str(tmp_path / "run")])
        assert rc == 2
        assert "dataset folder not found" in capsys.readouterr().err
    assert main(["train", "--data", "x", "--labels", "onsets", "--loss", "focal", "--out",
                 "r"]) == 2
    assert "invalid choice: 'focal'" in capsys.readouterr().err


def test_train_bad_override_is_reported(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path), "--labels", "counts", "--out",
               str(tmp_path / "run"), "--set", "train.learning_rat=1"])
    assert rc == 2
    assert "unknown key `train.learning_rat`" in capsys.readouterr().err


def test_train_timestamp_loss_needs_onsets(tmp_path, capsys):
    from softloc.data import synthesize_drum_dataset

    synthesize_drum_dataset(tmp_path / "d", n_train_files=1, n_valid_files=0, n_test_files=0,
                            file_duration_s=2.0, sample_rate=16000)
    rc = main(["train", "--data", str(tmp_path / "d"), "--labels", "counts", "--loss",
               "softloc", "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "needs timestamps; use --labels onsets" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_without_run_is_reported(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path), "--labels", "counts", "--out",
               str(tmp_path / "run"), "--resume"])
    assert rc == 2
    assert "cannot resume" in capsys.readouterr().err


def test_detect_needs_inputs(tmp_path, capsys):
    assert main(["detect", "--out", str(tmp_path)]) == 2
    assert "give audio files/folders" in capsys.readouterr().err
    assert main(["detect", "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "--data and --split go together" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "a.wav"), "--out", str(tmp_path / "o")]) == 2
    assert "no such audio file" in capsys.readouterr().err


def test_detect_bad_model_path(tmp_path, capsys):
    (tmp_path / "a.wav").write_bytes(b"")
    assert main(["detect", str(tmp_path / "a.wav"), "--model", str(tmp_path / "run"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "no such run folder or model file" in capsys.readouterr().err


def test_evaluate_reports_missing_folders_and_bad_lines(tmp_path, capsys):
    assert main(["evaluate", "--ref", str(tmp_path / "r"), "--est", str(tmp_path)]) == 2
    assert "folder not found" in capsys.readouterr().err
    (tmp_path / "ref").mkdir()
    (tmp_path / "est").mkdir()
    (tmp_path / "ref" / "a.txt").write_text("0.5\tKD\n")
    (tmp_path / "est" / "a.txt").write_text("0,5 KD\n")
    assert main(["evaluate", "--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "est")]) == 2
    assert "a.txt:1" in capsys.readouterr().err


def test_evaluate_prints_table_and_writes_json(tmp_path, capsys):
    import json

    (tmp_path / "ref").mkdir()
    (tmp_path / "est").mkdir()
    (tmp_path / "ref" / "a.txt").write_text("0.5\tKD\n1.0\tSD\n")
    (tmp_path / "est" / "a.txt").write_text("0.52\tKD\n")
    assert main(["evaluate", "--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "est"),
                 "--json", str(tmp_path / "s.json")]) == 0
    assert "KD" in capsys.readouterr().out
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["overall"]["precision"] == 1.0
    assert scores["overall"]["recall"] == 0.5
    assert scores["per_class"]["KD"]["f1"] == 1.0


def test_data_synth_drums_writes_layout(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["data", "synth-drums", "--out", str(out), "--n-train-files", "1",
                 "--n-valid-files", "1", "--n-test-files", "1", "--file-duration", "2"]) == 0
    assert (out / "counts.csv").is_file()
    assert len(list((out / "audio").iterdir())) == 3
    assert "wrote 3 files" in capsys.readouterr().out
    # never overwrites what is there, unless asked
    assert main(["data", "synth-drums", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "softloc data synth-drums: error:" in err and "not empty" in err and "overwrite" in err
    (out / "notes.txt").write_text("keep")  # not the generator's
    assert main(["data", "synth-drums", "--out", str(out), "--n-train-files", "2",
                 "--n-valid-files", "1", "--n-test-files", "1", "--file-duration", "2",
                 "--no-system-kits", "--overwrite"]) == 0
    # the earlier run's files are gone (a smaller rerun leaves none behind), the user's stays
    assert len(list((out / "audio").iterdir())) == 4
    assert (out / "notes.txt").read_text() == "keep"
    assert len(list((out / "annotations").iterdir())) == 4


def test_data_synth_drums_passes_kit_variation_and_rejects_bad_shares(tmp_path, capsys):
    out = tmp_path / "d"
    args = ["data", "synth-drums", "--n-train-files", "1", "--n-valid-files", "0",
            "--n-test-files", "1", "--file-duration", "2", "--no-system-kits"]
    assert main([*args, "--out", str(out), "--vary-kits", "1", "--mix-kits", "0.5"]) == 0
    meta = json.loads((out / "synth_drums.json").read_text())
    assert (meta["vary_kits"], meta["mix_kits"]) == (1.0, 0.5)
    assert [f["varied_kit"] for f in meta["files"]] == [True, False]  # train, test
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "e"), "--vary-kits", "2"]) == 2
    assert "`vary_kits` must lie in [0, 1]" in capsys.readouterr().err


def test_experiment_drums_threads_reach_the_training_config(tmp_path, monkeypatch):
    import softloc.experiments.drums as drums

    seen = {}
    monkeypatch.setattr(drums, "run_experiment", lambda out, **kw: seen.update(kw))
    assert main(["experiment", "drums", "--out", str(tmp_path / "x"), "--threads", "2",
                 "--set", "train.max_steps=3", "--no-progress"]) == 0
    assert seen["overrides"] == ("train.max_steps=3", "train.num_threads=2")
    assert seen["progress"] is False and seen["verbose"] is True
    assert main(["experiment", "drums", "--out", str(tmp_path / "y")]) == 0
    assert seen["overrides"] == ()  # the preset's threads


def test_calibrate_passes_its_arguments_and_reports_a_used_output_folder(tmp_path, monkeypatch,
                                                                         capsys):
    import softloc.training.recalibrate as recal

    seen = {}

    def fake(run, **kw):
        seen.update(kw, run=run)
        return {"valid_files": ["a", "b"],
                "calibration": {"source": "validation counts", "onset_offset_s": -0.02}}

    monkeypatch.setattr(recal, "recalibrate_run", fake)
    assert main(["calibrate", "--model", "R", "--data", "D", "--out", str(tmp_path / "n"),
                 "--set", "inference.align_to_onsets=pooled", "--split", "valid"]) == 0
    assert seen["overrides"] == ["inference.align_to_onsets=pooled"]
    assert (str(seen["run"]), str(seen["data_root"]), seen["split"]) == ("R", "D", "valid")
    assert "calibrated on 2 files" in capsys.readouterr().out
    monkeypatch.undo()
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    assert main(["calibrate", "--model", str(tmp_path), "--data", str(tmp_path),
                 "--out", str(used), "--set", "train.max_steps=3"]) == 2
    assert "only inference settings" in capsys.readouterr().err


def test_experiment_drums_data_size_defaults_to_the_demos_and_takes_overrides(tmp_path,
                                                                           monkeypatch):
    import softloc.experiments.drums as drums

    seen = []
    monkeypatch.setattr(drums, "run_experiment", lambda out, **kw: seen.append(kw["size"]))
    assert main(["experiment", "drums", "--out", str(tmp_path / "a")]) == 0
    assert main(["experiment", "drums", "--out", str(tmp_path / "b"), "--n-train-files", "7",
                 "--scattered", "0.5", "--vary-kits", "0.25", "--mix-kits", "0.75"]) == 0
    assert seen[0] == drums.DEMO_SIZE
    assert (seen[1].n_train_files, seen[1].scattered) == (7, 0.5)
    assert (seen[1].vary_kits, seen[1].mix_kits) == (0.25, 0.75)
    assert seen[1].n_valid_files == drums.DEMO_SIZE.n_valid_files


def test_demo_passes_no_progress_and_quiet_on(tmp_path, monkeypatch):
    import softloc.experiments.drums as drums

    seen = []
    monkeypatch.setattr(drums, "run_experiment", lambda out, **kw: seen.append(kw))
    assert main(["demo", "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert main(["demo", "--out", str(tmp_path / "b"), "-q"]) == 0
    assert (seen[0]["progress"], seen[0]["verbose"]) == (False, True)
    assert (seen[1]["progress"], seen[1]["verbose"]) == (False, False)
    assert seen[0]["preset"] == "demo" and seen[0]["labels"] == "counts"


def test_experiment_piano_takes_progress_and_no_progress(tmp_path, monkeypatch):
    import softloc.experiments.piano as piano

    seen = []
    monkeypatch.setattr(piano, "run_piano", lambda out, **kw: seen.append(kw["progress"]))
    for flag in ("--progress", "--no-progress"):
        assert main(["experiment", "piano", "--out", str(tmp_path / "p"), flag]) == 0
    assert seen == [True, False]


def test_demo_refuses_foreign_non_empty_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path), "--overwrite"]) == 2
    assert "only replaces a folder written by softloc" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_every_command_and_experiment_has_help(capsys):
    text = build_parser().format_help()
    for name in COMMANDS:
        assert name in text
    for name in COMMANDS:
        assert main([name, "--help"]) == 0
        assert f"usage: softloc {name}" in capsys.readouterr().out
    for name in EXPERIMENTS:
        assert main(["experiment", name, "--help"]) == 0
        out = capsys.readouterr().out
        assert f"usage: softloc experiment {name}" in out and "--out" in out
    assert main(["experiment", "robustness", "--help"]) == 0
    assert "--loss-set" in capsys.readouterr().out
    assert main(["experiment", "nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def _modules_loaded_by(argv: list[str]) -> set[str]:
    """Heavy modules in ``sys.modules`` after ``softloc ARGV`` in a fresh interpreter."""
    code = (
        "import sys\n"
        "from softloc.cli import main\n"
        f"rc = main({argv!r})\n"
        "heavy = ('torch', 'numpy', 'scipy', 'mir_eval', 'lightning', 'matplotlib', 'yaml')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    return set(done.stdout.split("\n")[-2].split())


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["evaluate", "--help"],
                                  ["experiment", "--help"]])
def test_version_and_help_do_not_import_torch(argv):
    # `evaluate --help` also shows that only the named command's arguments are built: the
    # others (train's loss names, the experiments' tables) import torch.
    assert _modules_loaded_by(argv) == set()


def test_version_runs_as_a_module_without_torch():
    code = ("import runpy, sys\n"
            "sys.argv = ['softloc', '--version']\n"
            "try:\n    runpy.run_module('softloc', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("softloc ")


# --- the command lines of the docs ----------------------------------------------------------

_DOC_FILES = ("README.md", "docs/results.md", "docs/benchmarks.md", "docs/data.md",
              "docs/distributed.md")


def _documented_command_lines(text: str) -> list[str]:
    """The ``softloc ...`` command lines in the shell code blocks of a Markdown text, with
    backslash continuations joined and trailing comments cut; lines that elide arguments
    (``...``) are left out."""
    import re

    out = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("#") or "..." in line:
                continue
            line = line.split(" # ")[0]
            m = re.search(r"(?:^|;|&&|\bdo\b)\s*(?:[A-Z_]+=\S+\s+)*(softloc\s[^;&|]*)", line)
            if m:
                out.append(" ".join(m.group(1).split()))
    return out


def _placeholders_filled(line: str) -> list[str]:
    """The arguments of a documented command line, with shell substitutions (``$(...)``,
    ``$VAR``) and the docs' one-letter placeholders (``--seed S``) filled with 0."""
    import re
    import shlex

    line = re.sub(r"\$\([^)]*\)|\$\{?\w+\}?", "0", line)
    return ["0" if re.fullmatch(r"[A-Z]", a) else a for a in shlex.split(line)[1:]]


def test_command_lines_in_docs_are_found_joined_and_filled():
    text = ("text softloc train --no\n```bash\n# softloc comment\nOMP_NUM_THREADS=1 softloc "
            "train --data d \\\n    --out r  # why\nfor s in 1; do softloc detect --model $m "
            "a --out det_$(basename $m .pt); done\nsoftloc train ... --out r\n```\n")
    lines = _documented_command_lines(text)
    assert lines == ["softloc train --data d --out r",
                     "softloc detect --model $m a --out det_$(basename $m .pt)"]
    assert _placeholders_filled("softloc x --seed S --out run$F${S} det_$(basename $m .pt) SD") \
        == ["x", "--seed", "0", "--out", "run00", "det_0", "SD"]


def test_every_documented_command_line_parses_and_its_overrides_exist():
    """Every ``softloc`` command in README.md and docs/ parses with today's options, and each
    ``--set KEY=VALUE`` names a configuration key of the right type: a renamed flag or key
    must not leave a documented command that fails."""
    from pathlib import Path

    from softloc.config import RunConfig, apply_overrides

    root = Path(__file__).resolve().parents[1]
    failures, n = [], 0
    for name in _DOC_FILES:
        for line in _documented_command_lines((root / name).read_text(encoding="utf-8")):
            argv = _placeholders_filled(line)
            n += 1
            try:
                args = build_parser(argv).parse_args(argv)
                if getattr(args, "set", None):
                    apply_overrides(RunConfig(), list(args.set))
            except SystemExit:
                failures.append(f"{name}: {line}")
            except ValueError as err:
                failures.append(f"{name}: {line}: {err}")
    assert n > 50, f"only {n} command lines found: the extraction broke"
    assert not failures, "\n".join(failures)
