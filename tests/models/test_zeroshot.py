"""Zero-shot teachers from CLIP and CLAP: tiny random models built here, saved with save_pretrained,
loaded through the same code path as a hub id."""

import json

import numpy as np
import pytest
import torch

from edgemm.data import PreprocessConfig
from edgemm.models.zeroshot import ZeroShotConfig, ZeroShotTeacher, label_prompts

LABELS = ["dog_bark", "door_knock", "siren"]
WORDS = ["a", "photo", "of", "the", "sound", "dog", "bark", "door", "knock", "siren"]


def _tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[BOS]", "[EOS]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # As CLIP's tokenizer does: the text tower pools at the end-of-text token.
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]",
                            eos_token="[EOS]").save_pretrained(path)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, CLIPConfig, CLIPModel

    root = tmp_path_factory.mktemp("foundation")
    text = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=64,
                max_position_embeddings=32, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(text_config=text, projection_dim=16, vision_config=dict(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8)))
    clip.save_pretrained(root / "clip")
    _tokenizer(root / "clip")
    (root / "clip" / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.25] * 3}))
    clap = ClapModel(ClapConfig(text_config={**text, "projection_dim": 16}, projection_dim=16, audio_config=dict(
        spec_size=128, window_size=4, num_mel_bins=64, hidden_size=32, patch_embeds_hidden_size=16, depths=[1, 1],
        num_attention_heads=[2, 2], projection_dim=16, patch_stride=[4, 4], patch_size=4, enable_fusion=False)))
    clap.save_pretrained(root / "clap")
    _tokenizer(root / "clap")
    ClapFeatureExtractor(feature_size=64, sampling_rate=48000, hop_length=480, max_length_s=1, fft_window_size=1024,
                         truncation="rand_trunc", padding="repeatpad").save_pretrained(root / "clap")
    return root / "clip", root / "clap"


def _pre():
    return PreprocessConfig.from_dict({"image": {"size": 48}, "audio": {"sample_rate": 16000, "clip_seconds": 1.0}})


def test_config_parses_what_teacher_takes():
    cfg = ZeroShotConfig.parse("clip=openai/clip-vit-base-patch32,clap=laion/clap-htsat-unfused")
    assert (cfg.clip, cfg.clap) == ("openai/clip-vit-base-patch32", "laion/clap-htsat-unfused")
    assert ZeroShotConfig.looks_like("clap=x") and not ZeroShotConfig.looks_like("runs/t/best.pt")
    assert label_prompts(cfg, ["dog_bark"]) == {"image": ["a photo of a dog bark"], "audio": ["the sound of a dog bark"]}
    with pytest.raises(ValueError, match=r"expected clip=MODEL,clap=MODEL"):
        ZeroShotConfig.parse("clip=a,whisper=b")
    with pytest.raises(ValueError, match="needs clip=MODEL, clap=MODEL or both"):
        ZeroShotConfig()
    with pytest.raises(ValueError, match=r"image_prompt must contain \{label\}"):
        ZeroShotConfig(clip="x", image_prompt="a photo")


def test_an_uncached_hub_id_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from edgemm.models.pretrained import WeightsNotFound

    with pytest.raises(WeightsNotFound, match="nobody/no-such-clip"):
        ZeroShotTeacher(LABELS, _pre(), ZeroShotConfig(clip="nobody/no-such-clip"))


def test_teacher_scores_each_class_with_each_modality_and_drops_absent_ones(tiny_models):
    clip, clap = tiny_models
    teacher = ZeroShotTeacher(LABELS, _pre(), ZeroShotConfig(clip=str(clip), clap=str(clap))).eval()
    assert teacher.image_text.shape == (3, 16) and teacher.audio_text.shape == (3, 16)
    torch.testing.assert_close(teacher.clip_mean.flatten(), torch.full((3,), 0.5))  # from preprocessor_config.json
    image, audio, _, _ = teacher.example_inputs(4)
    image, audio = torch.randn_like(image), 0.1 * torch.randn_like(audio)
    ones, zeros = torch.ones(4), torch.zeros(4)
    si, sa = teacher.similarities(image, audio)
    assert si.shape == sa.shape == (4, 3) and si.abs().max() <= 1 + 1e-5
    scale = teacher.log_scale.exp()
    torch.testing.assert_close(teacher(image, audio, ones, zeros), scale * si)  # muted microphone: CLIP alone
    torch.testing.assert_close(teacher(image, audio, zeros, ones), scale * sa)  # covered camera: CLAP alone
    torch.testing.assert_close(teacher(image, audio), scale * (si + sa))


def test_calibration_fits_weights_and_temperature_on_a_few_labels(tiny_models):
    clip, _ = tiny_models
    teacher = ZeroShotTeacher(LABELS, _pre(), ZeroShotConfig(clip=str(clip)))
    rng = np.random.default_rng(0)
    # Three classes a random CLIP tells apart by colour: the calibrated combination should separate them.
    colours = np.array([[1.5, -1.0, -1.0], [-1.0, 1.5, -1.0], [-1.0, -1.0, 1.5]], np.float32)
    items = [{"image": (colours[k][:, None, None] + 0.3 * rng.standard_normal((3, 48, 48))).astype(np.float32),
              "audio": np.zeros(16000, np.float32), "label": k} for k in range(3) for _ in range(8)]
    result = teacher.calibrate(items)
    assert result["samples"] == 24 and result["accuracy_after"] >= result["accuracy_before"]
    assert result["scale"] != pytest.approx(100.0)  # the temperature moved


@pytest.mark.slow
def test_compress_distils_from_a_zero_shot_teacher(tiny_models, small_manifest, tmp_path, capsys):
    from edgemm.cli import main

    clip, clap = tiny_models
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("student: test_gated\nstages:\n  - {type: distill, epochs: 1, batch_size: 8}\n")
    out = tmp_path / "out"
    assert main(["compress", "--teacher", f"clip={clip},clap={clap}", "--data", str(small_manifest), "--recipe",
                 str(recipe), "--out", str(out), "--device", "cpu", "--no-baseline", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    teacher = report["teacher"]
    assert teacher["path"] == f"<zero-shot clip={clip},clap={clap}>" and not teacher["trained_now"]
    calibration = teacher["zero_shot"]["calibration"]
    assert calibration["samples"] == sum(1 for line in small_manifest.read_text().splitlines() if ",train," in line)
    assert [r["name"] for r in report["stages"]] == ["distill"]


def test_a_recipe_names_a_zero_shot_teacher_and_trained_teacher_caches_ignore_it():
    from edgemm.compress.recipe import parse_recipe
    from edgemm.compress.teachers import teacher_cache_key

    plain = parse_recipe({"stages": [{"type": "distill"}]})
    zs = parse_recipe({"teacher": {"clip": "org/clip", "audio_prompt": "a {label} sound"}, "stages": [{"type": "distill"}]})
    assert zs.teacher.zero_shot() == ZeroShotConfig(clip="org/clip", audio_prompt="a {label} sound")
    assert plain.teacher.zero_shot() is None
    assert teacher_cache_key(plain, "default") == teacher_cache_key(zs, "default")
    with pytest.raises(ValueError, match=r"audio_prompt must contain \{label\}"):
        parse_recipe({"teacher": {"clap": "org/clap", "audio_prompt": "noise"}, "stages": [{"type": "distill"}]})
