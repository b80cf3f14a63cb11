"""Loading is exact or loud: missing / unexpected weights, pickles, absent folders and the Hub
path (offline, up to the network boundary) all give one clear CheckpointError."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from pllava_demo import CheckpointError, load_pllava
from pllava_demo.network.families import family_of

ROOT = Path(__file__).resolve().parents[1]


def canonical_key(key: str) -> str:
    """A stored key as the model's module path, read by the family its own prefix points to."""
    return family_of({}, [key]).canonical(key)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _shard_with(ckpt: Path, needle: str) -> tuple[Path, dict, str]:
    """The shard holding the first key that contains needle, its tensors, and that key."""
    for shard in sorted(ckpt.glob("model-0000*.safetensors")):
        sd = load_file(str(shard))
        key = next((k for k in sorted(sd) if needle in k), None)
        if key:
            return shard, sd, key
    raise AssertionError(f"no key with {needle!r}")


def test_missing_weight_is_named(tiny_official, tmp_path):
    ckpt = _copy(tiny_official, tmp_path / "c")
    shard, sd, victim = _shard_with(ckpt, "lora_B")
    del sd[victim]
    save_file(sd, str(shard))
    with pytest.raises(CheckpointError, match="1 missing weights") as e:
        load_pllava(ckpt, device="cpu", quantization="none")
    assert canonical_key(victim) in str(e.value)


def test_unexpected_weight_is_named(tiny_official, tmp_path):
    ckpt = _copy(tiny_official, tmp_path / "c")
    shard = ckpt / "model-00001-of-00002.safetensors"
    sd = load_file(str(shard))
    sd["language_model.base_model.model.model.layers.0.self_attn.q_proj.lora_C.default.weight"] = sd[next(iter(sd))].clone()
    save_file(sd, str(shard))
    with pytest.raises(CheckpointError, match="1 unexpected weights.*lora_C"):
        load_pllava(ckpt, device="cpu", quantization="none")


def test_wrong_shape_is_named(tiny_official, tmp_path):
    ckpt = _copy(tiny_official, tmp_path / "c")
    shard, sd, key = _shard_with(ckpt, "linear_1.bias")
    sd[key] = sd[key][:-1].clone()
    save_file(sd, str(shard))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_pllava(ckpt, device="cpu", quantization="none")


def test_pickle_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(CheckpointError, match="only .safetensors are loaded"):
        load_pllava(tmp_path, device="cpu")


def test_missing_shard_and_bad_sources_say_so_in_one_line(tiny_official, tmp_path):
    ckpt = _copy(tiny_official, tmp_path / "c")
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing weight shards"):
        load_pllava(ckpt, device="cpu")
    with pytest.raises(CheckpointError, match="not a Hub repo id"):
        load_pllava(tmp_path / "no" / "such" / "dir", device="cpu")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_pllava(tmp_path, device="cpu")


def test_key_layouts_map_to_one_name():
    want = "language_model.model.layers.3.self_attn.q_proj.base.weight"
    assert canonical_key("language_model.base_model.model.model.layers.3.self_attn.q_proj.base_layer.weight") == want
    assert canonical_key("model.language_model.layers.3.self_attn.q_proj.weight") == want.replace(".base", "")
    assert canonical_key("language_model.model.layers.3.self_attn.q_proj.weight") == want.replace(".base", "")
    assert canonical_key("lm_head.weight") == "language_model.lm_head.weight"
    assert canonical_key("language_model.base_model.model.lm_head.weight") == "language_model.lm_head.weight"
    assert canonical_key("vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight") == "vision_tower.encoder.layers.0.mlp.fc1.weight"
    assert canonical_key("model.vision_tower.encoder.layers.0.mlp.fc1.weight") == "vision_tower.encoder.layers.0.mlp.fc1.weight"
    assert canonical_key("language_model.base_model.model.model.layers.0.self_attn.v_proj.lora_A.default.weight") == \
        "language_model.model.layers.0.self_attn.v_proj.lora_A.weight"


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_hub_repo_offline_and_not_cached_is_one_clear_line(tmp_path):
    code = ("from pllava_demo import load_pllava, CheckpointError\n"
            "try:\n    load_pllava('ermu2001/pllava-7b', device='cpu')\n"
            "except CheckpointError as e:\n    print('ERR', e)\n")
    out = _run(code, {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("ERR Model 'ermu2001/pllava-7b' is not in the local cache and downloads are off "
                                  "(HF_HUB_OFFLINE=1).")


def test_hub_repo_id_loads_from_the_standard_cache_offline(tiny_official, tmp_path):
    """Goes through huggingface_hub.snapshot_download with a cache laid out as the Hub client writes it."""
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = cache / "models--someone--tiny-pllava" / "snapshots" / commit
    shutil.copytree(tiny_official, snap)
    (cache / "models--someone--tiny-pllava" / "refs").mkdir()
    (cache / "models--someone--tiny-pllava" / "refs" / "main").write_text(commit)
    code = ("from pllava_demo import load_pllava\n"
            "m = load_pllava('someone/tiny-pllava', device='cpu', quantization='none')\n"
            "print('OK', m.describe(), m.path.name)\n")
    out = _run(code, {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK someone/tiny-pllava on cpu") and commit in out.stdout


def test_image_token_mismatch_between_tokenizer_and_config(tiny_official, tmp_path):
    ckpt = _copy(tiny_official, tmp_path / "c")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["image_token_index"] += 1
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="image_token_index"):
        load_pllava(ckpt, device="cpu", quantization="none")


def test_checkpoint_without_tokenizer_still_runs_the_network(tiny_official, tmp_path):
    import torch

    from pllava_demo.chat.engine import Engine

    ckpt = _copy(tiny_official, tmp_path / "c")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (ckpt / name).unlink(missing_ok=True)
    loaded = load_pllava(ckpt, device="cpu", quantization="none")
    assert loaded.tokenizer is None and any("no tokenizer" in n for n in loaded.notes)
    ids = torch.tensor([[1, 5, loaded.spec.image_token_index, 7, 9]])
    out = loaded.model(input_ids=ids, pixel_values=torch.randn(2, 3, 336, 336), pooling_shape=(2, 3, 3))
    assert out.logits.shape[1] == 5 - 1 + 18
    with pytest.raises(CheckpointError, match="no tokenizer"):
        Engine(loaded)
