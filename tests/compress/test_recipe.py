import pytest
import yaml

from edgemm.compress.recipe import Importance, StageType, default_recipe_text, load_recipe, parse_recipe


def test_default_recipe_ships_and_round_trips():
    r = load_recipe()
    assert [s.type for s in r.stages] == [StageType.DISTILL, StageType.PRUNE, StageType.PTQ]
    assert r.stages[1].config.importance is Importance.MAGNITUDE
    assert parse_recipe(r.to_dict()) == r
    assert parse_recipe(yaml.safe_load(default_recipe_text())) == r


@pytest.mark.parametrize(
    "data, match",
    [
        ({"stages": [{"type": "distil"}]}, r"stages\[0\].type: unknown compress stage 'distil'; registered: distill, prune, ptq, qat"),
        ({"stages": [{"type": "prune", "importance": "l1"}]},
         r"stages\[0\] \(prune\): prune.importance: 'l1' is not one of \['magnitude', 'taylor', 'bn_scale'\]"),
        ({"stages": [{"type": "qat", "epoch": 2}]}, r"stages\[0\] \(qat\): unknown key\(s\) \['epoch'\]; valid keys are \['epochs'"),
        ({"stages": [{"type": "prune", "ratio": 1.5}]}, r"prune.ratio must be in \[0, 1\)"),
        ({"stages": [{"type": "distill", "mixup": -0.2}]}, r"distill.mixup must be >= 0 \(0 turns it off\), got -0.2"),
        ({"stages": [{"type": "qat"}, {"type": "distill"}]}, r"at most one quantizing stage \(qat given\), and it must be the last stage"),
        ({"stages": [{"type": "ptq"}, {"type": "qat"}]}, r"at most one quantizing stage \(ptq, qat given\)"),
        ({"stages": []}, "at least one stage"),
        # issue 18: values of the wrong type name the key instead of passing or failing minutes later
        ({"stages": [{"type": "prune", "global_pruning": "false"}]},
         r"stages\[0\] \(prune\): prune.global_pruning: expected true or false, got 'false'"),
        ({"stages": [{"type": "distill", "epochs": 2.5}]}, r"distill.epochs: expected a whole number, got 2.5"),
        ({"stages": [{"type": "distill", "epochs": "three"}]}, r"distill.epochs: expected a whole number, got 'three'"),
        ({"stages": [{"type": "distill", "lr": float("inf")}]}, r"distill.lr: expected a finite number, got inf"),
        ({"teacher": {"lr": float("nan")}, "stages": [{"type": "ptq"}]}, r"teacher.lr: expected a finite number or null, got nan"),
        ({"teacher": {"clip": 3}, "stages": [{"type": "ptq"}]}, r"teacher.clip: expected a string or null, got 3"),
        ({"stage": []}, r"unknown key\(s\) \['stage'\]; valid keys are \['student', 'teacher', 'stages'\]"),
        ({"stages": [{"epochs": 3}]}, "each stage needs a 'type'"),
        ({"teacher": {"modell": "x"}, "stages": [{"type": "ptq"}]}, r"teacher: unknown key\(s\) \['modell'\]"),
    ],
)
def test_bad_recipes_are_rejected_with_the_valid_choices(data, match):
    with pytest.raises(ValueError, match=match):
        parse_recipe(data)


def test_recipe_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe not found"):
        load_recipe(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [type: distill\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_recipe(bad)


def test_print_recipe_and_cli_validation(tmp_path, capsys):
    from edgemm.cli import main

    assert main(["compress", "--print-recipe"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == yaml.safe_load(default_recipe_text())
    user = tmp_path / "r.yaml"
    user.write_text("stages:\n  - type: prune\n    ratio: 0.3\n    importance: fisher\n")
    assert main(["compress", "--print-recipe", "--recipe", str(user)]) == 1
    assert "'fisher' is not one of ['magnitude', 'taylor', 'bn_scale']" in capsys.readouterr().err


def test_teacher_cache_key_follows_the_data_and_the_teacher_recipe(tmp_path, monkeypatch):
    import edgemm.data.synthetic as synthetic
    from edgemm.compress.recipe import load_recipe
    from edgemm.compress.teachers import teacher_cache_key

    recipe = load_recipe(None)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image,audio,label\na.png,a.wav,x\n")
    key = teacher_cache_key(recipe, manifest)
    assert teacher_cache_key(recipe, manifest) == key
    manifest.write_text("image,audio,label\na.png,a.wav,y\n")  # same path, edited labels
    assert teacher_cache_key(recipe, manifest) != key

    default = teacher_cache_key(recipe, "default")
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    assert teacher_cache_key(recipe, "default") != default  # a new generator: a new teacher

    import dataclasses

    longer = dataclasses.replace(recipe, teacher=dataclasses.replace(recipe.teacher, epochs=7))
    assert teacher_cache_key(longer, manifest) != teacher_cache_key(recipe, manifest)
    # `compress --seed N` trains (and caches) its own teacher; seed 0 keeps the keys made before seeds counted.
    assert teacher_cache_key(recipe, manifest, seed=0) == teacher_cache_key(recipe, manifest)
    assert teacher_cache_key(recipe, manifest, seed=1) != teacher_cache_key(recipe, manifest)

    # The same registered name with another architecture (a new edgemm version) is another teacher.
    import edgemm.compress.teachers as teachers

    now = teacher_cache_key(recipe, manifest)
    monkeypatch.setattr(teachers, "architecture_fingerprint", lambda name: "other")
    assert teacher_cache_key(recipe, manifest) != now


def test_stage_budgets_follow_the_step_floors_on_small_sets():
    from edgemm.compress.recipe import load_recipe

    distill, prune, ptq = (s.config for s in load_recipe().stages)
    # The generated default set: 37 steps an epoch, so the floors change nothing.
    assert (distill.training_epochs(37), prune.training_epochs(37), ptq.training_epochs(37)) == (11, 6, 0)
    # 800 samples: 12 steps an epoch, so as many steps as on the default set take more epochs.
    assert (distill.training_epochs(12), prune.training_epochs(12), ptq.training_epochs(12)) == (34, 19, 0)


def test_a_student_that_starts_from_nothing_distils_as_long_as_edgemm_train_trains():
    """Warm (the teacher's own network): the recipe's floor at warm_lr. Cold: edgemm train's floor."""
    from edgemm.compress.recipe import load_recipe
    from edgemm.train import TrainConfig

    distill = load_recipe().stages[0].config
    warm, cold = distill.starting(True), distill.starting(False)
    assert (warm.lr, warm.min_steps) == (distill.warm_lr, 400)
    assert (cold.lr, cold.min_steps) == (distill.lr, TrainConfig().min_steps) == (0.005, 1500)
    assert cold.training_epochs(15) == 100  # ~1000 samples: 15 steps an epoch
    assert distill.starting(False).starting(False) == cold
    low = parse_recipe({"stages": [{"type": "distill", "min_steps": 500, "cold_min_steps": 100}]}).stages[0].config
    assert low.starting(False).min_steps == 500  # a floor, never a cap


@pytest.mark.parametrize("key, value", [("min_steps", -1), ("min_steps", 2.5), ("min_steps", "400"),
                                        ("cold_min_steps", -3)])
def test_step_floors_must_be_whole_numbers(key, value):
    from edgemm.compress.recipe import parse_recipe

    with pytest.raises(ValueError, match=rf"distill.{key}(: expected a whole number| must be a whole number >= 0), "
                                         rf"got {value!r}"):
        parse_recipe({"stages": [{"type": "distill", key: value}]})


def test_an_unknown_student_is_reported_before_the_teacher_trains(tmp_path, small_manifest):
    import subprocess
    import sys

    recipe = tmp_path / "r.yaml"
    recipe.write_text("student: av_studnet\nstages: [{type: distill}]\n")
    proc = subprocess.run([sys.executable, "-m", "edgemm.cli", "compress", "--recipe", str(recipe), "--data",
                           str(small_manifest), "--out", str(tmp_path / "o"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "edgemm compress: error: recipe student: unknown model 'av_studnet'; registered: " + proc.stderr.split(
            "registered: ")[1].strip()]
    assert "training teacher" not in proc.stderr and not (tmp_path / "o" / "stages").exists()


def test_default_teacher_is_trained_as_edgemm_train_trains():
    """The teacher compress trains when none is given uses edgemm train's defaults, field by field;
    a recipe value replaces only that field."""
    from edgemm.compress.recipe import load_recipe
    from edgemm.train import TrainConfig

    teacher = load_recipe().teacher
    assert teacher.model == "av_student"  # the student teaches itself (born-again)
    assert teacher.train_config() == TrainConfig()
    assert teacher.train_config(device="cpu", labels_fraction=0.5) == TrainConfig(device="cpu", labels_fraction=0.5)
    own = parse_recipe({"teacher": {"model": "av_teacher", "min_steps": 370, "lr": 0.001},
                        "stages": [{"type": "distill"}]}).teacher
    assert own.train_config() == TrainConfig(min_steps=370, lr=0.001)
    with pytest.raises(ValueError, match=r"teacher.min_steps: expected a whole number or null, got 1.5"):
        parse_recipe({"teacher": {"min_steps": 1.5}, "stages": [{"type": "distill"}]})
    with pytest.raises(ValueError, match=r"distill.warm_lr must be positive, got 0"):
        parse_recipe({"stages": [{"type": "distill", "warm_lr": 0}]})


def test_a_teacher_trained_by_compress_takes_its_seed(tmp_path, monkeypatch):
    """`edgemm compress --seed 3` trains its teacher as `edgemm train --seed 3` would, in its own cache entry."""
    import edgemm.train as train_module
    from edgemm.compress.recipe import load_recipe
    from edgemm.compress.teachers import load_teacher

    monkeypatch.setenv("EDGEMM_CACHE", str(tmp_path))
    seen = []

    def train(model, data, *, out, config, **kw):
        seen.append((config.seed, out.name))
        raise RuntimeError("stop here")

    monkeypatch.setattr(train_module, "train", train)
    for seed in (0, 3):
        with pytest.raises(RuntimeError, match="stop here"):
            load_teacher(load_recipe(None), None, "default", "cpu", lambda s: None, seed=seed)
    assert [s for s, _ in seen] == [0, 3] and seen[0][1] != seen[1][1]
