"""Distributed training from the command line, for real: `softloc train --devices 2 --strategy ddp
--accelerator cpu` runs two processes (gloo) through Lightning's launcher; only rank 0 writes the
run folder, and the result equals one process with the global batch (docs/distributed.md); so
does the multi-node launch, simulated with two "nodes" on localhost.
Also: resuming never deletes a cache folder it did not create."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
STEPS = 2


def _softloc(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "softloc", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def _common(data: Path) -> list[str]:
    return ["train", "--data", str(data), "--labels", "counts", "--preset", "demo",
            "--max-steps", str(STEPS), "--set", f"train.val_every_n_steps={STEPS}",
            "--accelerator", "cpu", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def data_and_single_run(tmp_path_factory):
    from softloc.data import synthesize_drum_dataset

    root = tmp_path_factory.mktemp("ddp")
    synthesize_drum_dataset(root / "data", n_train_files=2, n_valid_files=1, n_test_files=0,
                            file_duration_s=4.0, sample_rate=22050, system_kits=False,
                            n_train_kits=1, n_valid_kits=1, n_test_kits=1,
                            window_s=0.5, hop_s=0.25)  # the demo preset's count windows
    single = _softloc(*_common(root / "data"), "--set", "data.batch_size=4", "--out", "single",
                      cwd=root)
    assert single.returncode == 0, single.stderr
    return root


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)["state_dict"]


def test_ddp_on_cpu_with_two_processes_equals_one_process_with_the_global_batch(
        data_and_single_run):
    root = data_and_single_run
    ddp = _softloc(*_common(root / "data"), "--set", "data.batch_size=2", "--devices", "2",
                   "--strategy", "ddp", "--out", "ddp", cwd=root)
    assert ddp.returncode == 0, ddp.stderr
    # rank 0 alone prints, writes and locks: one summary, one log, no second rank's traces
    assert ddp.stdout.count("run ddp:") == 1, ddp.stdout
    assert "run folder exists" not in ddp.stderr
    files = sorted(str(p.relative_to(root / "ddp")) for p in (root / "ddp").rglob("*")
                   if p.is_file() and "tensorboard" not in p.parts)
    assert files == ["checkpoints/best.ckpt", "checkpoints/last.ckpt", "config.yaml",
                     "logs/csv/metrics.csv", "metrics.json", "model.pt"]
    assert not (root / ".ddp.softloc-lock").exists()
    # no third-party chatter in a normal run
    for chatter in ("Tip:", "Initializing distributed", "GPU available", "Grad strides"):
        assert chatter not in ddp.stderr + ddp.stdout, chatter
    # 2 processes x batch 2 == 1 process x batch 4 (DDP averages the gradients)
    a, b = _weights(root / "ddp"), _weights(root / "single")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    steps = torch.load(root / "ddp" / "checkpoints" / "last.ckpt", weights_only=True)
    assert steps["global_step"] == STEPS
    saved = yaml.safe_load((root / "ddp" / "config.yaml").read_text())
    assert saved["train"]["devices"] == "2" and saved["train"]["strategy"] == "ddp"


def test_two_nodes_on_one_machine_train_as_one_process_with_the_global_batch(
        data_and_single_run):
    """The multi-node path of docs/distributed.md (Lightning's launcher: the same command on every
    node with its NODE_RANK), with two "nodes" of one process each on localhost: node 1 writes
    and prints nothing, and the weights equal one process with the global batch."""
    root = data_and_single_run
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "softloc", *_common(root / "data"), "--set",
            "data.batch_size=2", "--devices", "1", "--num-nodes", "2", "--strategy", "ddp",
            "--out", "nodes"]
    procs = []
    for node in (0, 1):
        env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NODE_RANK": str(node),
               "HOME": os.environ.get("HOME", str(root))}
        procs.append(subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    assert outs[0][0].count("run nodes:") == 1 and "run nodes:" not in outs[1][0]
    a, b = _weights(root / "nodes"), _weights(root / "single")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    saved = yaml.safe_load((root / "nodes" / "config.yaml").read_text())
    assert saved["train"]["num_nodes"] == 2


def test_resume_keeps_a_cache_folder_it_did_not_create(data_and_single_run):
    root = data_and_single_run
    mine = root / "single" / "cache" / "mine.txt"
    mine.parent.mkdir(exist_ok=True)
    mine.write_text("keep me")
    done = _softloc("train", "--data", str(root / "data"), "--labels", "counts", "--resume",
                    "--out", "single", "--max-steps", str(STEPS + 1), "--no-progress",
                    cwd=root)
    assert done.returncode == 0, done.stderr
    assert mine.read_text() == "keep me"
