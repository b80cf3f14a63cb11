"""Frames in: decoding a video into sampled frames (video.py), the official pixel preprocessing
(preprocess.py) and the visual-token strategies that turn CLIP features into the tokens that
replace <image>. Knows pixels and feature tensors; nothing of prompts, sessions or the UI."""
