
from softloc import __version__
from softloc.cli import EXPERIMENT_MODULES, build_parser, main


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
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("softloc train: error:")
    assert "dataset folder not found" in err


def test_train_bad_override_is_reported(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path), "--labels", "counts", "--out",
               str(tmp_path / "run"), "--set", "train.learning_rat=1"])
    assert rc == 1
    assert "unknown key `train.learning_rat`" in capsys.readouterr().err


def test_train_timestamp_loss_needs_onsets(tmp_path, capsys):
    from softloc.data import synthesize_drum_dataset

    synthesize_drum_dataset(tmp_path / "d", n_train_files=1, n_valid_files=0, n_test_files=0,
                            file_duration_s=2.0, sample_rate=16000)
    rc = main(["train", "--data", str(tmp_path / "d"), "--labels", "counts", "--loss",
               "softloc", "--out", str(tmp_path / "run")])
    assert rc == 1
    assert "needs timestamps; use --labels onsets" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_without_run_is_reported(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path), "--labels", "counts", "--out",
               str(tmp_path / "run"), "--resume"])
    assert rc == 1
    assert "cannot resume" in capsys.readouterr().err


def test_detect_needs_inputs(tmp_path, capsys):
    assert main(["detect", "--out", str(tmp_path)]) == 1
    assert "give audio files/folders" in capsys.readouterr().err
    assert main(["detect", "--data", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert "--data and --split go together" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "a.wav"), "--out", str(tmp_path / "o")]) == 1
    assert "no such audio file" in capsys.readouterr().err


def test_detect_bad_model_path(tmp_path, capsys):
    (tmp_path / "a.wav").write_bytes(b"")
    assert main(["detect", str(tmp_path / "a.wav"), "--model", str(tmp_path / "run"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "no such run folder or model file" in capsys.readouterr().err


def test_evaluate_reports_missing_folders_and_bad_lines(tmp_path, capsys):
    assert main(["evaluate", "--ref", str(tmp_path / "r"), "--est", str(tmp_path)]) == 1
    assert "folder not found" in capsys.readouterr().err
    (tmp_path / "ref").mkdir()
    (tmp_path / "est").mkdir()
    (tmp_path / "ref" / "a.txt").write_text("0.5\tKD\n")
    (tmp_path / "est" / "a.txt").write_text("0,5 KD\n")
    assert main(["evaluate", "--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "est")]) == 1
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
    # never overwrites what is there
    assert main(["data", "synth-drums", "--out", str(out)]) == 1
    assert "softloc data synth-drums: error:" in capsys.readouterr().err


def test_demo_refuses_foreign_non_empty_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path), "--overwrite"]) == 1
    assert "only replaces a folder written by softloc" in capsys.readouterr().err
    # a folder written by an earlier demo is replaced (make demo can run twice)
    from softloc.experiments.drums import _prepare_out

    earlier = tmp_path / "earlier"
    _prepare_out(earlier, overwrite=False)
    (earlier / "metrics.json").write_text("{}")
    _prepare_out(earlier, overwrite=False)
    assert not (earlier / "metrics.json").exists()
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_experiment_modules_register_their_subcommands():
    parser = build_parser()
    text = parser.format_help()
    assert "experiment" in text
    assert EXPERIMENT_MODULES[0] == "softloc.experiments.drums"
    assert main(["experiment", "drums", "--help"]) == 0
