"""Tests for softloc._io: atomic writes keep the umask, never tear or clobber, clean up after
themselves; provenance reports versions without importing anything."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import pytest
import torch

from softloc import __version__, _io


@pytest.fixture
def umask():
    """Set the process umask for a test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _plain_open_mode(tmp_path, name: str) -> int:
    """What a plain open() gives under the current umask: the reference for every writer."""
    ref = tmp_path / name
    with open(ref, "w") as f:
        f.write("x")
    return _mode(ref)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_files_get_the_mode_a_plain_open_would_give(tmp_path, umask, mask):
    umask(mask)
    assert _io.current_umask() == mask
    target = tmp_path / "sub" / "config.yaml"  # the folder is created
    _io.atomic_write_text(target, "a: 1\n")
    assert target.read_text() == "a: 1\n"
    assert _mode(target) == _plain_open_mode(tmp_path, f"ref{mask:o}")
    _io.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert _mode(tmp_path / "b.bin") == _plain_open_mode(tmp_path, f"refb{mask:o}")


def test_file_mode_argument_is_masked_too(tmp_path, umask):
    umask(0o022)
    with _io.atomic_write(tmp_path / "run.sh", file_mode=0o777) as f:
        f.write("#!/bin/sh\n")
    assert _mode(tmp_path / "run.sh") == 0o755


def test_no_temporary_file_is_left_and_text_is_written_as_given(tmp_path):
    _io.atomic_write_text(tmp_path / "a.csv", "x,y\r\n1,2\n")
    assert (tmp_path / "a.csv").read_bytes() == b"x,y\r\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with _io.atomic_write(target) as f:
            f.write("half a fi")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_overwrite_false_refuses_and_names_the_file(tmp_path):
    target = tmp_path / "counts.csv"
    target.write_text("keep")
    with pytest.raises(FileExistsError, match=r"counts\.csv: already exists; not overwriting"):
        _io.atomic_write_text(target, "new", overwrite=False)
    assert target.read_text() == "keep"
    _io.atomic_write_text(tmp_path / "fresh.csv", "new", overwrite=False)
    assert (tmp_path / "fresh.csv").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.csv", "fresh.csv"]


def test_racing_writers_without_overwrite_exactly_one_wins(tmp_path):
    target = tmp_path / "split.txt"
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            with _io.atomic_write(target, overwrite=False) as f:
                f.write(f"writer {i}")
            outcomes.append("won")
        except FileExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 1 and outcomes.count("refused") == 7
    assert target.read_text().startswith("writer ")
    assert [p.name for p in tmp_path.iterdir()] == ["split.txt"]


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)
    _io.atomic_write_text(link, "new")
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and link.read_text() == "new"


def test_atomic_save_round_trips_a_torch_file(tmp_path):
    obj = {"w": torch.arange(5.0)}
    _io.atomic_save(tmp_path / "model.pt", lambda f: torch.save(obj, f))
    back = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.testing.assert_close(back["w"], obj["w"])


def test_bad_mode_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="atomic_write: mode must be 'w' or 'wb', got 'a'"):
        with _io.atomic_write(tmp_path / "x", "a"):
            pass


def test_save_figure_writes_the_format_of_the_suffix(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    out = _io.save_figure(fig, tmp_path / "fig.png")
    plt.close(fig)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig, _ = plt.subplots()
    _io.save_figure(fig, tmp_path / "fig.pdf")
    plt.close(fig)
    assert (tmp_path / "fig.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png"]


def test_provenance_reports_versions_and_imports_nothing():
    code = (
        "import sys, json; from softloc._io import provenance; p = provenance(); "
        "print(json.dumps([p, 'torch' in sys.modules, 'sklearn' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    import json

    prov, torch_loaded, sklearn_loaded = json.loads(out)
    assert prov["softloc"] == __version__
    assert prov["python"] == ".".join(map(str, sys.version_info[:3]))
    assert not torch_loaded and not sklearn_loaded and "torch" not in prov
    in_process = _io.provenance()
    assert in_process["torch"] == torch.__version__  # already imported here


def test_disk_full_names_the_target_and_leaves_no_temp(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "out.txt"
    target.write_text("old\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as info, _io.atomic_write(target) as f:
        monkeypatch.setattr(f, "write", full)
        f.write("new\n")
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(target)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
        ({"LOCAL_RANK": "1"}, False),  # Lightning's launcher re-running the command for rank 1
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),  # first process of the second node
        ({"RANK": "3", "LOCAL_RANK": "1"}, False),  # torchrun
        ({"SLURM_PROCID": "2"}, False),  # srun
        ({"SLURM_PROCID": "0"}, True),  # sbatch with one task
        ({"RANK": "x"}, True),  # not a rank: ignored
    ],
)
def test_rank_zero_follows_every_launchers_variables(monkeypatch, env, expected):
    for name in _io._RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _io.is_rank_zero() is expected


def test_folder_lock_refuses_a_second_holder_and_is_released(tmp_path):
    out = tmp_path / "detections"
    with _io.folder_lock(out, command="softloc detect") as lock:
        assert lock.parent == tmp_path and lock.is_file()
        assert not out.exists()  # the lock sits beside the folder, not in it
        with pytest.raises(_io.FolderLockedError, match="another softloc command.*softloc detect"):
            with _io.folder_lock(out):
                pass
    assert not lock.exists()
    with _io.folder_lock(out):  # free again
        pass


def test_folder_lock_of_a_dead_process_is_taken_over(tmp_path):
    import socket

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(proc.stdout)
    out = tmp_path / "run"
    lock = tmp_path / ".run.softloc-lock"
    lock.write_text(f"{dead_pid} {socket.gethostname()} softloc train\n")
    with _io.folder_lock(out):
        assert lock.read_text().split()[0] == str(os.getpid())


def test_folder_lock_held_in_another_process_stops_this_one(tmp_path):
    out = tmp_path / "x"
    code = (
        "import sys, time; from softloc import _io\n"
        f"with _io.folder_lock({str(out)!r}, command='holder'):\n"
        "    print('held', flush=True); sys.stdin.readline()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(_io.FolderLockedError, match="holder"), _io.folder_lock(out):
            pass
    finally:
        holder.communicate("\n", timeout=60)
    with _io.folder_lock(out):
        pass
