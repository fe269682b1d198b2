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
