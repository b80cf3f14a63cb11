"""Shared fixtures: tiny random checkpoints written in the real on-disk layouts, and no network."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_official(tmp_path_factory):
    from pllava_demo.network.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny_official"), layout="official")


@pytest.fixture(scope="session")
def tiny_llava_hf(tmp_path_factory):
    from pllava_demo.network.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny_llava_hf"), layout="llava-hf")


@pytest.fixture(scope="session")
def tiny_chatml(tmp_path_factory):
    from pllava_demo.network.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny_chatml"), layout="official", chat_format="chatml")


@pytest.fixture(scope="session")
def engine(tiny_official):
    from pllava_demo.chat.engine import Engine

    return Engine.load(tiny_official, device="cpu", quantization="none")


@pytest.fixture(scope="session")
def legacy_tokenizer():
    """A tokenizer in the released legacy LLaMA layout (tests/legacy_tokenizer.py)."""
    from legacy_tokenizer import build_legacy_tokenizer

    return build_legacy_tokenizer()


@pytest.fixture(scope="session")
def tiny_legacy(tmp_path_factory):
    """A tiny official-layout checkpoint with the legacy LLaMA tokenizer (random answers)."""
    from legacy_tokenizer import make_legacy_tiny

    return make_legacy_tiny(tmp_path_factory.mktemp("tiny_legacy"))
