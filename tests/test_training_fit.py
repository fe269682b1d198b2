import json
import math
import os
import shutil
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from softloc.config import apply_overrides, load_config, load_preset
from softloc.data import synthesize_drum_dataset
from softloc.inference import MODEL_FILE, Detector
from softloc.training import fit, parse_devices, train

TINY = [
    "features.sample_rate=16000",
    "features.n_fft=512",
    "features.win_length=400",
    "features.hop_length=160",
    "features.n_mels=16",
    "model.conv_filters=[4,4]",
    "model.pool_sizes=[4,8]",
    "model.lstm_units=6",
    "model.hidden_units=4",
    "data.batch_size=4",
    "data.rate_factors=[1.0]",
    "train.max_steps=2",
    "train.val_every_n_steps=2",
    "train.num_threads=1",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit") / "d"
    synthesize_drum_dataset(root, n_train_files=2, n_valid_files=1, n_test_files=0,
                            file_duration_s=3.0, sample_rate=16000)
    return root


def test_parse_devices():
    assert parse_devices("1") == 1
    assert parse_devices("auto") == "auto"
    assert parse_devices("0,1") == [0, 1]
    assert parse_devices("-1") == -1


def test_argument_errors_come_before_any_work(tmp_path):
    cfg = load_preset("drums")
    with pytest.raises(ValueError, match="`labels` must be one of"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "r", labels="frames")
    with pytest.raises(ValueError, match="needs timestamps"):
        train(apply_overrides(cfg, ["loss.name=bce"]), data_root=tmp_path,
              out_dir=tmp_path / "r", labels="counts")
    with pytest.raises(ValueError, match="needs labels='onsets'"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "r", label_noise="normal:50ms")
    with pytest.raises(ValueError, match="`annotations` is empty"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "r", annotations=[])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "full")
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(cfg, data_root=tmp_path, out_dir=tmp_path / "new", resume=True)
    assert not (tmp_path / "r").exists() and not (tmp_path / "new").exists()


def test_fit_writes_a_run_folder_that_holds_its_supervision(data_root, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sys.modules["softloc.training.fit"], "keep_freed_memory",
                        lambda: calls.append(1))
    cfg = apply_overrides(load_preset("drums"), TINY + ["supervision.labels=onsets",
                                                        "loss.name=softloc"])
    result = fit(cfg, data_root=data_root, out_dir=tmp_path / "run", progress=False)
    assert calls == [1]  # train.keep_freed_memory is on by default
    run = result.run_dir
    saved = load_config(run / "config.yaml")
    assert saved.supervision == cfg.supervision
    assert saved == result.config
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["labels"], metrics["loss"], metrics["steps"]) == ("onsets", "softloc", 2)
    assert metrics["versions"]["torch"] == torch.__version__
    payload = torch.load(run / MODEL_FILE, weights_only=True)
    assert payload["format_version"] == 2 and payload["model"]["name"] == "crnn"
    det = Detector.load(run)
    assert det.config == result.config
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.yaml", "metrics.json", MODEL_FILE):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~umask, name
    assert not (run / "cache").exists()


def test_resume_checks_the_saved_supervision_and_accepts_old_run_folders(data_root, tmp_path):
    cfg = apply_overrides(load_preset("drums"), TINY + ["supervision.labels=counts"])
    run = tmp_path / "run"
    train(cfg, data_root=data_root, out_dir=run, progress=False)
    with pytest.raises(ValueError, match="--resume needs the run's saved configuration"):
        train(cfg, data_root=data_root, out_dir=run, labels="onsets", resume=True)
    with pytest.raises(ValueError, match="--resume needs the run's saved configuration"):
        train(apply_overrides(cfg, ["train.learning_rate=0.5"]), data_root=data_root,
              out_dir=run, resume=True)
    # a softloc 0.1 run folder: config.yaml without the supervision section
    data = yaml.safe_load((run / "config.yaml").read_text())
    del data["supervision"]
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    more = apply_overrides(cfg, ["train.max_steps=3"])
    result = train(more, data_root=data_root, out_dir=run, resume=True, progress=False)
    assert result.metrics["steps"] == 3
    assert load_config(run / "config.yaml").supervision.labels == "counts"


# ------------------------------------------------------------------ determinism, limits, resume


def _weights(path):
    """The network weights of a model file or a Lightning checkpoint."""
    payload = torch.load(path, weights_only=True)
    state = payload["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if not k.startswith("loss.")}


def _assert_same_weights(a, b, **tol):
    assert a.keys() == b.keys()
    for k in a:
        if tol:
            torch.testing.assert_close(a[k], b[k], **tol, msg=k)
        else:
            assert torch.equal(a[k], b[k]), k


def _differ(a, b, atol):
    return any(not torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


STEPS4 = ["train.max_steps=4", "train.val_every_n_steps=2", "train.warmup_steps=2"]


def test_keep_freed_memory_false_leaves_malloc_alone(data_root, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sys.modules["softloc.training.fit"], "keep_freed_memory",
                        lambda: calls.append(1))
    cfg = apply_overrides(load_preset("drums"), TINY + ["train.keep_freed_memory=false"])
    result = fit(cfg, data_root=data_root, out_dir=tmp_path / "run", progress=False)
    assert calls == []
    assert load_config(result.run_dir / "config.yaml").train.keep_freed_memory is False


def test_same_seed_and_data_give_the_same_model_on_cpu(data_root, tmp_path):
    cfg = apply_overrides(load_preset("drums"), TINY + STEPS4)
    runs = [fit(apply_overrides(cfg, [f"train.seed={seed}"]), data_root=data_root,
                out_dir=tmp_path / f"r{i}", progress=False).run_dir
            for i, seed in enumerate((0, 0, 1))]
    a, b, c = (_weights(r / MODEL_FILE) for r in runs)
    _assert_same_weights(a, b)
    assert _differ(a, c, atol=1e-6)


ONSETS = ["supervision.labels=onsets"]


def test_softness_zero_log_distance_alpha_zero_trains_as_frame_cross_entropy(data_root, tmp_path):
    """SoftLoc eq. 5 through the training path: same weights as the `bce` loss."""
    base = apply_overrides(load_preset("drums"), TINY + STEPS4 + ONSETS)
    limit = apply_overrides(base, ["loss.name=softloc", "loss.softness_ms=0", "loss.distance=log",
                                   "loss.alpha_min=0", "loss.alpha_max=0"])
    soft = apply_overrides(limit, ["loss.softness_ms=50"])
    runs = {name: fit(cfg, data_root=data_root, out_dir=tmp_path / name, progress=False).run_dir
            for name, cfg in (("limit", limit), ("bce", apply_overrides(base, ["loss.name=bce"])),
                              ("soft", soft))}
    w = {name: _weights(run / MODEL_FILE) for name, run in runs.items()}
    _assert_same_weights(w["limit"], w["bce"], atol=1e-5, rtol=1e-4)
    assert _differ(w["soft"], w["bce"], atol=1e-4)  # a softness > 0 is another loss


def test_infinite_softness_with_alpha_one_trains_as_loco(data_root, tmp_path):
    """SoftLoc eq. 6 through the training path (YAML `.inf`): same weights as `loco`."""
    base = apply_overrides(load_preset("drums"), TINY + STEPS4 + ONSETS)
    (tmp_path / "inf.yaml").write_text(
        "loss:\n  name: softloc\n  softness_ms: .inf\n  alpha_min: 1.0\n  alpha_max: 1.0\n")
    limit = replace(base, loss=load_config(tmp_path / "inf.yaml", base=base).loss)
    assert math.isinf(limit.loss.softness_ms)
    finite = apply_overrides(limit, ["loss.softness_ms=100", "loss.alpha_min=0.5",
                                     "loss.alpha_max=0.5"])
    runs = {name: fit(cfg, data_root=data_root, out_dir=tmp_path / name, progress=False).run_dir
            for name, cfg in (("limit", limit),
                              ("loco", apply_overrides(base, ["loss.name=loco"])),
                              ("finite", finite))}
    w = {name: _weights(run / MODEL_FILE) for name, run in runs.items()}
    _assert_same_weights(w["limit"], w["loco"], atol=1e-6, rtol=1e-5)
    assert _differ(w["finite"], w["loco"], atol=1e-4)


RESUMABLE = TINY + ["train.val_every_n_steps=3", "train.warmup_steps=2",
                    "train.lr_schedule=constant"]


def test_resume_after_a_stop_reproduces_the_uninterrupted_run(data_root, tmp_path):
    cfg = apply_overrides(load_preset("drums"), RESUMABLE + ["train.max_steps=6"])
    whole = fit(cfg, data_root=data_root, out_dir=tmp_path / "whole", progress=False).run_dir
    part = apply_overrides(cfg, ["train.max_steps=3"])
    fit(part, data_root=data_root, out_dir=tmp_path / "part", progress=False)
    result = fit(cfg, data_root=data_root, out_dir=tmp_path / "part", resume=True,
                 progress=False)
    assert result.metrics["steps"] == 6
    _assert_same_weights(_weights(whole / "checkpoints" / "last.ckpt"),
                         _weights(tmp_path / "part" / "checkpoints" / "last.ckpt"))


def test_resume_refuses_max_steps_that_would_not_train_and_leaves_outputs(data_root, tmp_path):
    cfg = apply_overrides(load_preset("drums"), TINY + STEPS4)
    run = fit(cfg, data_root=data_root, out_dir=tmp_path / "run", progress=False).run_dir
    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    for steps in (4, 2):
        with pytest.raises(ValueError, match=r"has done 4 steps .* --max-steps N with N > 4"):
            fit(apply_overrides(cfg, [f"train.max_steps={steps}"]), data_root=data_root,
                out_dir=run, resume=True, progress=False)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == stamps


def test_last_checkpoint_is_written_at_every_validation_and_at_the_last_step(
        data_root, tmp_path, monkeypatch):
    from softloc.training.run_folder import LastCheckpoint
    saved = []
    original = LastCheckpoint._save_checkpoint

    def record(self, trainer, filepath):
        saved.append((trainer.global_step, Path(filepath).name))
        original(self, trainer, filepath)

    monkeypatch.setattr(LastCheckpoint, "_save_checkpoint", record)
    cfg = apply_overrides(load_preset("drums"), TINY + ["train.max_steps=5",
                                                        "train.val_every_n_steps=2"])
    run = fit(cfg, data_root=data_root, out_dir=tmp_path / "run", progress=False).run_dir
    assert saved == [(2, "last.ckpt"), (4, "last.ckpt"), (5, "last.ckpt")]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5


@pytest.mark.parametrize("select", ["best", "last"])
def test_select_checkpoint_decides_which_weights_the_model_file_holds(select, data_root,
                                                                      tmp_path):
    # Validation at steps 2 and 4, the last step is 5: best.ckpt and last.ckpt always differ.
    cfg = apply_overrides(load_preset("drums"), TINY + [
        "train.max_steps=5", "train.val_every_n_steps=2", f"train.select_checkpoint={select}"])
    run = fit(cfg, data_root=data_root, out_dir=tmp_path / "run", progress=False).run_dir
    kept = _weights(run / MODEL_FILE)
    chosen, other = (("best", "last") if select == "best" else ("last", "best"))
    _assert_same_weights(kept, _weights(run / "checkpoints" / f"{chosen}.ckpt"))
    assert _differ(kept, _weights(run / "checkpoints" / f"{other}.ckpt"), atol=0)
    assert json.loads((run / "metrics.json").read_text())["best_checkpoint"] == f"{chosen}.ckpt"
    assert load_config(run / "config.yaml").train.select_checkpoint == select


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["SOFTLOC_TEST_MARKER"]),))


def test_resume_never_unpickles_code_and_reads_only_its_own_folder(data_root, tmp_path,
                                                                  monkeypatch):
    cfg = apply_overrides(load_preset("drums"), TINY + STEPS4)
    first = fit(cfg, data_root=data_root, out_dir=tmp_path / "a", progress=False).run_dir
    # a copied run folder resumes from its own checkpoints, even when the original's are junk
    shutil.copytree(first, tmp_path / "b")
    for ckpt in (first / "checkpoints").iterdir():
        ckpt.write_bytes(b"junk")
    more = apply_overrides(cfg, ["train.max_steps=6"])
    result = fit(more, data_root=data_root, out_dir=tmp_path / "b", resume=True, progress=False)
    assert result.metrics["steps"] == 6
    # a checkpoint holding a pickled payload is refused, and the payload never runs
    marker = tmp_path / "ran"
    monkeypatch.setenv("SOFTLOC_TEST_MARKER", str(marker))
    torch.save({"global_step": 1, "x": _Payload()}, tmp_path / "b" / "checkpoints" / "last.ckpt")
    with pytest.raises(ValueError, match="last.ckpt: not a softloc checkpoint .*weights_only"):
        fit(apply_overrides(cfg, ["train.max_steps=9"]), data_root=data_root,
            out_dir=tmp_path / "b", resume=True, progress=False)
    assert not marker.exists()


def test_setup_failures_leave_no_run_folder(data_root, tmp_path):
    cfg = apply_overrides(load_preset("drums"), TINY)
    with pytest.raises(ValueError, match="pool"):  # 32 features pooled below one bin
        fit(apply_overrides(cfg, ["model.pool_sizes=[8,8]"]), data_root=data_root,
            out_dir=tmp_path / "r1")
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        fit(cfg, data_root=tmp_path / "nowhere", out_dir=tmp_path / "r2")
    with pytest.raises(FileNotFoundError, match="no-such-folder: annotation folder not found"):
        train(cfg, data_root=data_root, out_dir=tmp_path / "r3", labels="onsets",
              annotations="no-such-folder")
    assert not any((tmp_path / f"r{i}").exists() for i in (1, 2, 3))


def test_ctrl_c_raises_training_interrupted_naming_the_run(data_root, tmp_path, monkeypatch):
    import signal

    from softloc.training import EventModule, TrainingInterrupted

    original = EventModule.training_step

    def interrupt(self, batch, batch_idx):
        if self.global_step == 3:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    monkeypatch.setattr(EventModule, "training_step", interrupt)
    handler = signal.getsignal(signal.SIGINT)
    cfg = apply_overrides(load_preset("drums"), TINY + STEPS4)
    with pytest.raises(TrainingInterrupted, match="--resume --out") as info:
        fit(cfg, data_root=data_root, out_dir=tmp_path / "run", progress=False)
    assert info.value.run_dir == tmp_path / "run" and info.value.step == 2
    assert signal.getsignal(signal.SIGINT) is handler
    monkeypatch.setattr(EventModule, "training_step", original)
    result = fit(cfg, data_root=data_root, out_dir=tmp_path / "run", resume=True,
                 progress=False)
    assert result.metrics["steps"] == 4


_KILLED_RUN = """
import os, signal, sys
from softloc.config import load_config
from softloc.training import EventModule, fit

def kill_at_step_5(self, outputs, batch, batch_idx):
    if self.global_step == 5:
        os.kill(os.getpid(), signal.SIGKILL)

EventModule.on_train_batch_end = kill_at_step_5
fit(load_config(sys.argv[1]), data_root=sys.argv[2], out_dir=sys.argv[3], progress=False)
"""


@pytest.mark.slow
def test_sigkill_and_resume_reproduce_the_uninterrupted_run(data_root, tmp_path):
    """The real recipe (warm-up, cosine, exact prior, augmentation): killed by SIGKILL after
    step 5 (last.ckpt holds step 4), resumed, it ends with the uninterrupted run's weights."""
    import subprocess
    import sys

    from softloc.config import save_config

    cfg = apply_overrides(load_preset("drums"), TINY + [
        "train.max_steps=8", "train.val_every_n_steps=2", "train.warmup_steps=3",
        "data.rate_factors=[0.875,1.0]", "supervision.labels=onsets", "loss.name=softloc",
        "model.unit_variance_init=true"])
    whole = fit(cfg, data_root=data_root, out_dir=tmp_path / "whole", progress=False).run_dir
    save_config(cfg, tmp_path / "cfg.yaml")
    run = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(tmp_path / "cfg.yaml"),
                           str(data_root), str(run)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (run / MODEL_FILE).exists()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    result = fit(cfg, data_root=data_root, out_dir=run, resume=True, progress=False)
    assert result.metrics["steps"] == 8
    _assert_same_weights(_weights(whole / "checkpoints" / "last.ckpt"),
                         _weights(run / "checkpoints" / "last.ckpt"), atol=1e-6, rtol=1e-5)
