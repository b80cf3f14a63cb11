"""A real CUDA out-of-memory (not injected): the GPU is filled, encoding fails with the user's message,
and once the memory is back the same engine encodes. Skipped without CUDA. Needs no av (the lent
GPU machines lack it): the frames are synthetic pixels, as the engine would pass them to CLIP."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_real_cuda_oom_while_encoding_is_a_message_and_the_next_encode_works(tiny_official):
    from pllava_demo.chat.engine import Engine
    from pllava_demo.errors import ResourceError

    eng = Engine.load(tiny_official, device="cuda", quantization="none")
    pixels = torch.zeros(32, 3, 336, 336)  # (T, 3, S, S), as clip_preprocess returns them
    torch.cuda.empty_cache()  # cached free blocks would otherwise serve the encode
    hog, chunk = [], torch.cuda.mem_get_info()[0] // 2
    while chunk >= 2**20:  # leave less than 1 MiB free
        try:
            hog.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
        except torch.OutOfMemoryError:
            chunk //= 2
    try:
        with pytest.raises(ResourceError, match=r"^The GPU ran out of memory while encoding the video; try fewer"):
            eng._guarded("encoding the video", eng._encode, pixels)
    finally:
        hog.clear()
    assert eng.stats["out_of_memory"] == 1
    assert eng._encode(pixels).shape[0] == 32  # (T, H*W, D)
