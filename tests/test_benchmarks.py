import pytest

from benchmarks.drum_model import MARK_BEGIN, MARK_END, write_block


def test_write_block_replaces_only_the_marked_text(tmp_path):
    doc = tmp_path / "bench.md"
    doc.write_text(f"# Title\nkept above\n{MARK_BEGIN}\nold table\n{MARK_END}\nkept below\n")
    write_block(doc, "new table\n")
    assert doc.read_text() == (
        f"# Title\nkept above\n{MARK_BEGIN}\nnew table\n{MARK_END}\nkept below\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["bench.md"]  # no temp file left


def test_write_block_without_markers_fails_and_leaves_the_file(tmp_path):
    doc = tmp_path / "bench.md"
    doc.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="expected one"):
        write_block(doc, "x\n")
    assert doc.read_text() == "no markers here\n"


def test_count_loss_baseline_computes_the_same_loss_as_the_library():
    # The per-step loop is only a fair contender if it computes the same thing.
    import torch

    from benchmarks.count_loss import make_inputs, per_step_log_likelihood
    from softloc.counting import count_log_likelihood

    probs, counts = make_inputs((4, 3, 60, 9), torch.float64, torch.device("cpu"))
    want = count_log_likelihood(probs, counts, 9, backend="reference")
    torch.testing.assert_close(per_step_log_likelihood(probs, counts, 9), want)


def test_count_loss_table_rows_have_the_header_columns():
    import torch

    from benchmarks.count_loss import HEADER, format_row, run

    rows = run([(2, 2, 30, 5)], [torch.float64], torch.device("cpu"), 1, 0, False)
    n_columns = HEADER.splitlines()[0].count("|")
    assert format_row(rows[0]).count("|") == n_columns
    assert rows[0]["err_loss"] < 1e-12 and rows[0]["t_loco"] > 0


def test_segmentation_speed_prints_both_networks_and_their_ratio(capsys):
    from benchmarks.segmentation_speed import main

    assert main(["--features", "16", "--frames", "24", "--videos", "2", "--batch-size", "2",
                 "--classes", "3", "--projection", "4", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [ln for ln in lines if ln.startswith("| plain") or ln.startswith("| input_")]
    assert [r.split(" | ")[0] for r in rows] == ["| plain (Lea et al.)", "| input_projection=4"]
    for row in rows:  # s / epoch, min at 60 epochs (= s / epoch), min at 120 epochs
        epoch, at60, at120 = (float(c) for c in row.strip("| ").split(" | ")[1:])
        assert epoch >= 0 and at60 == epoch and at120 == pytest.approx(2 * epoch, abs=0.11)
    assert lines[-1].startswith("plain / projected: ") and lines[-1].endswith("x")


def test_onset_alignment_prints_a_row_per_split_and_compression_near_zero_on_drums(tmp_path,
                                                                                    capsys):
    from benchmarks.onset_alignment import main
    from softloc.data import synthesize_drum_dataset

    synthesize_drum_dataset(tmp_path / "d", n_train_files=2, n_valid_files=0, n_test_files=1,
                            file_duration_s=4.0, sample_rate=22050)
    assert main(["--data", str(tmp_path / "d"), "--preset", "demo", "--splits", "train,test",
                 "--compressions", "0.01,1"]) == 0
    rows = [ln.split(" | ") for ln in capsys.readouterr().out.splitlines()
            if ln.startswith(("train |", "test |"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("train", "0.01", "2"), ("train", "1", "2"),
                                                 ("test", "0.01", "1"), ("test", "1", "1")]
    # labelled onsets fed in as detections: the offset found is a few ms at most
    assert all(abs(float(r[3])) < 10 for r in rows)
