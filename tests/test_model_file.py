import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from softloc.config import apply_overrides, config_to_dict, load_preset
from softloc.inference import (
    FORMAT,
    FORMAT_VERSION,
    MODEL_FILE,
    Detector,
    load_model_file,
    read_model_file,
    resolve_model_path,
    save_model_file,
)
from softloc.models import build_model, model_from_config, model_spec

SMALL = [
    "features.n_fft=1024",
    "features.win_length=1024",
    "features.hop_length=441",
    "features.n_mels=16",
    "model.conv_filters=[4, 4]",
    "model.pool_sizes=[4, 8]",
    "model.lstm_units=6",
    "model.hidden_units=4",
    "classes=[HH, KD, SD]",
]


def small_config(*extra):
    return apply_overrides(load_preset("drums"), SMALL + list(extra))


def _same_outputs(a, b):
    x = torch.rand(2, 16, 40) + 0.01
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_round_trip_rebuilds_identical_model_config_and_extra(tmp_path):
    cfg = small_config()
    model = model_from_config(cfg)
    save_model_file(tmp_path / MODEL_FILE, model, cfg, extra={"note": "x", "n": [1, 2]})
    again, cfg2, extra = load_model_file(tmp_path / MODEL_FILE)
    assert cfg2 == cfg
    assert extra == {"note": "x", "n": [1, 2]}
    assert _same_outputs(model, again)
    assert model_spec(again) == model_spec(model)


def test_file_is_plain_data_readable_with_weights_only(tmp_path):
    cfg = small_config("model.per_class=true")
    save_model_file(tmp_path / "m.pt", model_from_config(cfg), cfg)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format"] == FORMAT and payload["format_version"] == FORMAT_VERSION
    assert payload["model"]["name"] == "per-class-crnn"
    assert payload["model"]["args"]["n_classes"] == 3
    assert payload["input_kind"] == "audio"
    assert payload["config"] == config_to_dict(cfg)


def test_format_1_files_still_load(tmp_path):
    """A softloc 0.1 file: format 'softloc-model/1', config + weights, no model name."""
    cfg = small_config()
    model = model_from_config(cfg)
    old = {
        "format": "softloc-model/1",
        "softloc_version": "0.1.0",
        "config": config_to_dict(cfg),
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
    }
    torch.save(old, tmp_path / "old.pt")
    mf = read_model_file(tmp_path / "old.pt")
    assert mf.format_version == 1 and mf.model_name == "crnn" and mf.input_kind == "audio"
    assert mf.config == cfg
    assert _same_outputs(model, mf.model)


def test_shipped_drum_model_loads_and_detects():
    det = Detector.load()
    assert det.classes == ("HH", "KD", "SD")
    assert det.input_stage.kind == "audio"
    audio = torch.rand(22050).numpy() * 0.1
    probs = det.probabilities((audio, 22050))
    assert probs.shape == (3, 1 + 22050 // det.config.features.hop_length)
    assert ((probs > 0) & (probs < 1)).all()


def test_the_model_shipped_by_softloc_0_1_still_loads_and_detects():
    # tests/data/drums_softloc_0.1_format1.pt is softloc/pretrained/drums.pt as shipped until
    # 2026-12-01 (format 'softloc-model/1', written by softloc 0.1.0): users' copies must load.
    path = Path(__file__).parent / "data" / "drums_softloc_0.1_format1.pt"
    mf = read_model_file(path)
    assert mf.format_version == 1 and mf.model_name == "crnn" and mf.input_kind == "audio"
    det = Detector.load(path)
    assert det.classes == ("HH", "KD", "SD")
    audio = torch.rand(22050).numpy() * 0.1
    probs = det.probabilities((audio, 22050))
    assert probs.shape == (3, 1 + 22050 // det.config.features.hop_length)
    assert ((probs > 0) & (probs < 1)).all()


def test_rejects_missing_foreign_newer_and_mismatched_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        read_model_file(tmp_path / "none.pt")
    torch.save({"hello": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="x.pt: not a softloc model file"):
        read_model_file(tmp_path / "x.pt")
    cfg = small_config()
    save_model_file(tmp_path / "m.pt", model_from_config(cfg), cfg)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    torch.save({**payload, "format_version": 3}, tmp_path / "new.pt")
    with pytest.raises(ValueError, match="format_version 3"):
        read_model_file(tmp_path / "new.pt")
    torch.save({k: v for k, v in payload.items() if k != "state_dict"}, tmp_path / "nw.pt")
    with pytest.raises(ValueError, match="no 'state_dict' entry"):
        read_model_file(tmp_path / "nw.pt")
    args = {**payload["model"]["args"], "lstm_units": 7}
    torch.save({**payload, "model": {"name": "crnn", "args": args}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: the weights do not fit model 'crnn'"):
        read_model_file(tmp_path / "bad.pt")
    torch.save({**payload, "model": {"name": "nope", "args": {}}}, tmp_path / "nn.pt")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        read_model_file(tmp_path / "nn.pt")


def test_pickled_objects_are_refused_on_loading(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    cfg = small_config()
    save_model_file(tmp_path / "m.pt", model_from_config(cfg), cfg)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    torch.save({**payload, "extra": {"x": Evil()}}, tmp_path / "evil.pt", pickle_module=pickle)
    with pytest.raises(ValueError, match="evil.pt: not a softloc model file: it holds Python "
                       "objects that cannot be loaded safely") as info:
        read_model_file(tmp_path / "evil.pt")
    assert "\n" not in str(info.value) and "weights_only=False" not in str(info.value)


def test_errors_are_one_line_naming_the_file(tmp_path):
    (tmp_path / "text.pt").write_text("not a model at all\n")
    with pytest.raises(ValueError, match="text.pt: not a softloc model file") as info:
        read_model_file(tmp_path / "text.pt")
    assert "\n" not in str(info.value)
    cfg = small_config()
    save_model_file(tmp_path / "m.pt", model_from_config(cfg), cfg)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    # arguments that do not match the weights: size mismatch, in one line
    torch.save({**payload, "model": {"name": "crnn", "args": {**payload["model"]["args"],
                                                                "hidden_units": 5}}},
               tmp_path / "mm.pt")
    with pytest.raises(ValueError, match="mm.pt: the weights do not fit model 'crnn'") as info:
        read_model_file(tmp_path / "mm.pt")
    assert "\n" not in str(info.value) and "size mismatch" in str(info.value)
    # format 1 without its entries: a ValueError, not a KeyError
    torch.save({"format": "softloc-model/1"}, tmp_path / "v1.pt")
    with pytest.raises(ValueError, match="v1.pt: .*no 'config' entry"):
        read_model_file(tmp_path / "v1.pt")


def test_save_refuses_models_it_cannot_rebuild_and_non_plain_extra(tmp_path):
    cfg = small_config()
    with pytest.raises(ValueError, match="not built by softloc.models.build_model"):
        save_model_file(tmp_path / "m.pt", torch.nn.Linear(2, 2), cfg)
    with pytest.raises(TypeError, match="`extra.t` must be plain data"):
        save_model_file(tmp_path / "m.pt", model_from_config(cfg), cfg,
                        extra={"t": torch.zeros(1)})
    with pytest.raises(TypeError, match="`config` must be a RunConfig"):
        save_model_file(tmp_path / "m.pt", model_from_config(cfg), config_to_dict(cfg))
    assert not (tmp_path / "m.pt").exists()


def test_save_does_not_overwrite_unless_asked(tmp_path):
    cfg = small_config()
    model = model_from_config(cfg)
    save_model_file(tmp_path / "m.pt", model, cfg)
    with pytest.raises(FileExistsError, match="already exists"):
        save_model_file(tmp_path / "m.pt", model, cfg, overwrite=False)


def test_any_registered_network_round_trips(tmp_path):
    net = build_model("crnn", n_mels=16, n_classes=2, conv_filters=(4,), pool_sizes=(32,),
                      lstm_units=3, hidden_units=2, output_bias=-3.0)
    cfg = replace(small_config(), classes=("A", "B"))
    save_model_file(tmp_path / "m.pt", net, cfg, input_kind="audio")
    mf = read_model_file(tmp_path / "m.pt")
    assert mf.model_args["conv_filters"] == [4]
    assert _same_outputs(net, mf.model)


def test_resolve_model_path_accepts_run_folders_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        resolve_model_path(tmp_path / "nope")
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="has no model.pt"):
        resolve_model_path(tmp_path / "run")
    (tmp_path / "run" / MODEL_FILE).write_bytes(b"")
    assert resolve_model_path(tmp_path / "run") == tmp_path / "run" / MODEL_FILE
    assert resolve_model_path(tmp_path / "run" / MODEL_FILE) == tmp_path / "run" / MODEL_FILE


def test_loading_a_run_imports_neither_training_nor_lightning():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from softloc.inference import Detector\n"
        "Detector.load()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')"
        " or m.startswith('softloc.training')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
