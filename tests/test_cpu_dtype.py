"""--cpu-dtype: float32 or bfloat16 weights on CPU, chosen by a flag, refused with the valid names
otherwise, and reported on the page with whether this CPU has native bfloat16."""

import pytest
import torch

from app import parse_args
from pllava_demo.network.checkpoint import load_pllava
from pllava_demo.network.device_policy import cpu_has_bf16
from pllava_demo.chat.engine import Engine
from pllava_demo.errors import CheckpointError
from pllava_demo.studio.model_holder import ModelHolder, server_status


@pytest.mark.parametrize("choice, dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_cpu_dtype_flag_sets_the_weights_and_the_page_says_it(tiny_official, choice, dtype):
    eng = Engine(load_pllava(tiny_official, device="cpu", quantization="none", cpu_dtype=choice))
    assert eng.model.dtype == dtype
    assert eng.model.language_model.get_input_embeddings().weight.dtype == dtype
    holder = ModelHolder.ready(eng)
    assert server_status(holder)["dtype"] == choice
    # the page says what the other choice would do only where it is better
    said = {("float32", True): "CPU in float32, native bfloat16 available (--cpu-dtype bfloat16 reads prompts",
            ("float32", False): "CPU in float32, no native bfloat16 (float32 is the fast choice)",
            ("bfloat16", True): "CPU in bfloat16, native on this CPU.",
            ("bfloat16", False): "CPU in bfloat16, emulated on this CPU (float32 is the fast choice)"}
    assert said[choice, cpu_has_bf16()] in holder.status_markdown()


def test_bad_cpu_dtype_names_the_valid_ones(tiny_official):
    with pytest.raises(CheckpointError, match="cpu_dtype must be one of auto, float32, bfloat16, got 'half'"):
        load_pllava(tiny_official, device="cpu", quantization="none", cpu_dtype="half")
    assert parse_args(["--cpu-dtype", "bfloat16"]).cpu_dtype == "bfloat16"
    with pytest.raises(SystemExit):
        parse_args(["--cpu-dtype", "half"])
