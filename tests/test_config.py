import math
from dataclasses import replace

import pytest
import yaml

from softloc.config import (
    LOSS_NAMES,
    RunConfig,
    SupervisionConfig,
    apply_overrides,
    available_presets,
    config_from_dict,
    config_to_dict,
    load_config,
    load_preset,
    parse_devices,
    save_config,
)


def test_presets_ship_drums_and_piano_variants():
    assert {"drums", "demo", "piano-loco", "piano-softloc"} <= set(available_presets())


def test_drums_preset_has_paper_front_end_and_model_sizes():
    cfg = load_preset("drums")
    f = cfg.features
    assert (f.sample_rate, f.n_fft, f.win_length, f.hop_length, f.n_mels) == (
        44100, 4096, 1102, 220, 72
    )
    assert cfg.model.conv_filters == (8, 16, 16, 16, 16, 16)
    assert cfg.model.pool_sizes == (2, 2, 2, 2, 3, 3)
    assert (cfg.model.lstm_units, cfg.model.hidden_units) == (24, 16)
    assert cfg.loss.k_max == 22  # 23 count bins
    assert cfg.inference.threshold == 0.4
    assert cfg.train.grad_clip_norm == 10.0


def test_piano_presets_have_paper_sizes():
    loco, soft = load_preset("piano-loco-paper"), load_preset("piano-softloc-paper")
    assert loco.model.conv_filters == (16, 16, 32, 32, 64, 64, 64, 64, 64)
    assert (loco.model.lstm_units, loco.model.hidden_units, loco.model.prior_omega) == (64, 32, 0.8)
    assert soft.model.conv_filters == (32, 32, 64, 64, 64, 64, 64, 128, 128)
    assert (soft.model.lstm_units, soft.model.hidden_units) == (128, 96)
    assert soft.loss.name == "softloc"
    # 768 features pooled to one bin: 3 * 2**8 = 768
    assert 3 * 2**8 == 2 * loco.features.n_mels


def test_yaml_round_trip_is_lossless(tmp_path):
    cfg = apply_overrides(load_preset("drums"), ["classes=[HH, KD, SD]", "train.seed=7"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert config_to_dict(again) == yaml.safe_load((tmp_path / "c.yaml").read_text())


def test_missing_keys_take_defaults():
    cfg = config_from_dict({"train": {"max_steps": 5}})
    assert cfg.train.max_steps == 5
    assert cfg.model == RunConfig().model


def test_unknown_key_is_an_error_naming_the_dotted_path():
    with pytest.raises(ValueError, match=r"unknown key `train.learning_rat`"):
        config_from_dict({"train": {"learning_rat": 1e-3}})
    with pytest.raises(ValueError, match=r"unknown key `optimizer`"):
        config_from_dict({"optimizer": {}})


def test_wrong_value_types_are_errors_naming_the_key():
    with pytest.raises(ValueError, match=r"`train.max_steps` must be an integer"):
        config_from_dict({"train": {"max_steps": "many"}})
    with pytest.raises(ValueError, match=r"`model.per_class` must be true or false"):
        config_from_dict({"model": {"per_class": "yes"}})
    with pytest.raises(ValueError, match=r"`train.keep_freed_memory` must be true or false"):
        config_from_dict({"train": {"keep_freed_memory": "yes"}})
    with pytest.raises(ValueError, match=r"`data.rate_factors` must be a list"):
        config_from_dict({"data": {"rate_factors": 1.0}})


def test_invalid_front_end_value_is_reported_with_its_section():
    with pytest.raises(ValueError, match="features"):
        config_from_dict({"features": {"n_mels": 0}})


def test_unknown_loss_name_is_rejected():
    with pytest.raises(ValueError, match="loss.name"):
        config_from_dict({"loss": {"name": "mse"}})


def test_loss_names_are_the_registry_table_in_hyphenated_spelling():
    from softloc.losses import registry

    assert LOSS_NAMES == tuple(registry.LOSS_NAMES)
    assert all("_" not in name for name in LOSS_NAMES)


def test_underscored_loss_names_are_stored_hyphenated():
    cfg = config_from_dict({"loss": {"name": "smoothed_bce"}})
    assert cfg.loss.name == "smoothed-bce"
    assert apply_overrides(cfg, ["loss.name=One_Sided"]).loss.name == "one-sided"


def test_supervision_settings_are_part_of_the_run_config(tmp_path):
    cfg = apply_overrides(load_preset("drums"), [
        "supervision.labels=mixed", "supervision.annotations=[expert:20, crowd]",
        "supervision.label_noise=normal:50ms",
    ])
    assert cfg.supervision == SupervisionConfig(labels="mixed", annotations=("expert:20", "crowd"),
                                                label_noise="normal:50ms")
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml").supervision == cfg.supervision
    # files written before the section existed take its defaults
    assert config_from_dict({}).supervision == SupervisionConfig()
    assert load_preset("piano-softloc").supervision.labels == "onsets"


def test_bad_supervision_values_are_rejected():
    with pytest.raises(ValueError, match="`labels` must be one of"):
        config_from_dict({"supervision": {"labels": "frames"}})
    with pytest.raises(ValueError, match="`annotations` is empty"):
        config_from_dict({"supervision": {"annotations": []}})


def test_overrides_by_dotted_path_parse_yaml_values():
    cfg = apply_overrides(
        load_preset("drums"),
        ["train.learning_rate=1e-3", "data.rate_factors=[1.0]", "features.f_max_hz=8000"],
    )
    assert cfg.train.learning_rate == 1e-3
    assert cfg.data.rate_factors == (1.0,)
    assert cfg.features.f_max_hz == 8000.0


def test_bad_overrides_are_rejected():
    cfg = load_preset("drums")
    with pytest.raises(ValueError, match="expected 'dotted.key=value'"):
        apply_overrides(cfg, ["train.max_steps"])
    with pytest.raises(ValueError, match="unknown key `train.nope`"):
        apply_overrides(cfg, ["train.nope=1"])
    with pytest.raises(ValueError, match="unknown key `nope`"):
        apply_overrides(cfg, ["nope.x=1"])


def test_load_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_step: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown key `train.max_step`"):
        load_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        load_config(broken)


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: .*drums"):
        load_preset("guitar")


def test_save_config_never_leaves_temp_files(tmp_path):
    save_config(load_preset("drums"), tmp_path / "run" / "config.yaml")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["config.yaml"]


def test_dataclass_defaults_are_the_drums_preset():
    assert RunConfig() == load_preset("drums")
    assert config_from_dict({}) == load_preset("drums")


@pytest.mark.parametrize(("override", "key"), [
    ("data.batch_size=0", "data.batch_size"),
    ("train.learning_rate=-1", "train.learning_rate"),
    ("train.learning_rate=.nan", "train.learning_rate"),
    ("train.learning_rate=.inf", "train.learning_rate"),
    ("data.window_s=0", "data.window_s"),
    ("model.conv_filters=[]", "model.conv_filters"),
    ("model.pool_sizes=[2]", "model.pool_sizes"),
    ("loss.k_max=0", "loss.k_max"),
    ("train.precision=bogus", "train.precision"),
    ("train.devices=foo", "train.devices"),
    ("train.devices=0", "train.devices"),
    ("loss.softness_ms=-5", "loss.softness_ms"),
    ("loss.softness_ms=.nan", "loss.softness_ms"),
    ("train.max_steps=0", "train.max_steps"),
    ("inference.threshold=2", "inference.threshold"),
    ("inference.threshold=0", "inference.threshold"),
    ("loss.alpha_min=0.95", "loss.alpha_min"),
    ("loss.alpha_ramp_fraction=0", "loss.alpha_ramp_fraction"),
    ("loss.distance=cosine", "loss.distance"),
    ("train.optimizer=sgd", "train.optimizer"),
    ("train.select_checkpoint=middle", "train.select_checkpoint"),
    ("train.warmup_steps=-1", "train.warmup_steps"),
    ("model.prior_omega=1", "model.prior_omega"),
    ("data.valid_fraction=0.9", "data.valid_fraction"),
    ("inference.snap_radius_s=-0.1", "inference.snap_radius_s"),
    ("inference.snap_radius_s=.inf", "inference.snap_radius_s"),
    ("inference.snap_smooth_s=0", "inference.snap_smooth_s"),
    ("inference.snap_direction=left", "inference.snap_direction"),
    ("inference.snap_channel=-1", "inference.snap_channel"),
])
def test_out_of_range_values_are_errors_naming_the_key(override, key):
    with pytest.raises(ValueError, match=f"`{key}` must be"):
        apply_overrides(load_preset("drums"), [override])


def test_devices_parse_to_lightning_values():
    assert [parse_devices(d) for d in ("1", "4", "-1", "auto", "0,1", " 2 ")] == [
        1, 4, -1, "auto", [0, 1], 2]


def test_softness_limits_log_distance_and_relative_alpha_are_configurable(tmp_path):
    cfg = apply_overrides(load_preset("drums"), ["loss.softness_ms=inf", "loss.distance=log"])
    assert math.isinf(cfg.loss.softness_ms) and cfg.loss.distance == "log"
    (tmp_path / "c.yaml").write_text("loss:\n  softness_ms: .inf\n  alpha_start_fraction: null\n")
    loaded = load_config(tmp_path / "c.yaml")
    assert math.isinf(loaded.loss.softness_ms) and loaded.loss.alpha_start_fraction is None
    save_config(loaded, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml") == loaded
    assert apply_overrides(cfg, ["loss.softness_ms=0"]).loss.softness_ms == 0.0


def test_drums_alpha_ramp_is_the_papers_schedule_relative_to_the_run():
    from softloc.losses.registry import build_loss

    cfg = load_preset("drums")
    # the paper: 30k start and 100k ramp of 150k steps; alpha 0.2 to a third, 0.9 from 4/5
    assert (cfg.loss.alpha_start_step, cfg.loss.alpha_ramp_steps) == (30000, 100000)
    for steps in (1200, 150_000):
        loss = build_loss(replace(cfg.loss, name="softloc"), frame_rate=100.0, max_steps=steps)
        assert loss.alpha(round(steps / 3) - 1) == pytest.approx(0.2, abs=2e-3)
        assert loss.alpha(steps // 2) == pytest.approx(0.2 + 0.7 * (0.5 - 1 / 3) / 0.4667,
                                                       abs=5e-3)
        assert loss.alpha(round(0.8 * steps) + 1) == pytest.approx(0.9, abs=1e-3)
    absolute = apply_overrides(cfg, ["loss.alpha_start_fraction=null",
                                     "loss.alpha_ramp_fraction=null"])
    loss = build_loss(replace(absolute.loss, name="softloc"), frame_rate=100.0, max_steps=1200)
    assert loss.alpha(1200) == 0.2  # the absolute ramp starts long after a short run ends
    assert loss.alpha(80_000) == pytest.approx(0.5)


def test_a_partial_config_file_layers_on_a_preset(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("train:\n  max_steps: 7\nloss:\n  name: softloc\n")
    demo = load_preset("demo")
    cfg = load_config(path, base="demo")
    assert cfg.train.max_steps == 7 and cfg.loss.name == "softloc"
    assert cfg.train.learning_rate == demo.train.learning_rate
    assert cfg.features == demo.features and cfg.model == demo.model
    drums = load_config(path)  # default base: the dataclass defaults = drums
    assert drums.features == load_preset("drums").features
    assert drums.train.lr_schedule == load_preset("drums").train.lr_schedule
    assert load_config(path, base=demo) == cfg
    path.write_text("train:\n  max_step: 7\n")
    with pytest.raises(ValueError, match=r"partial.yaml: unknown key `train.max_step`"):
        load_config(path, base="demo")


def test_piano_softloc_runs_on_the_piano_loco_network_front_end_and_schedule():
    # piano-softloc's header promises piano-loco's network, front end, augmentation and schedule;
    # only the loss and the supervision may differ
    loco, soft = load_preset("piano-loco"), load_preset("piano-softloc")
    for section in ("features", "model", "data", "train"):
        assert getattr(soft, section) == getattr(loco, section), section
    assert soft.classes == loco.classes
    assert (soft.loss.name, loco.loss.name) == ("softloc", "loco")


def test_piano_softloc_count_term_peaks_while_the_learning_rate_is_still_high():
    # the study's SoftLoc cell (piano-loco + loss softloc) and piano-softloc train the same α
    # schedule, and α reaches its ceiling before the cosine learning rate falls under half its
    # peak (the drums ramp reached it at 4/5 of the run, lr x 0.15: p(t) stayed flat under noise)
    from softloc.experiments.noise_study import cell_config
    from softloc.losses import build_loss
    from softloc.training import cosine_factor

    soft = load_preset("piano-softloc")
    cell = cell_config(load_preset("piano-loco"), "softloc", seed=0)
    n = soft.train.max_steps
    assert cell.train.max_steps == n
    assert cell.train.lr_schedule == soft.train.lr_schedule == "cosine"
    a = build_loss(soft.loss, frame_rate=soft.features.frame_rate, max_steps=n).alpha
    b = build_loss(cell.loss, frame_rate=cell.features.frame_rate, max_steps=n).alpha
    assert [a(s) for s in range(0, n + 1, 50)] == [b(s) for s in range(0, n + 1, 50)]
    first_max = next(s for s in range(n + 1) if a(s) >= soft.loss.alpha_max - 1e-9)
    assert a(0) == pytest.approx(soft.loss.alpha_min)
    assert cosine_factor(first_max, n) >= 0.5
