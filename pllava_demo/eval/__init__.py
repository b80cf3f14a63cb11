"""Benchmarks with the official PLLaVA protocols (MVBench, multiple choice, VCG / ActivityNet-QA), swept
over LoRA alphas and visual-token strategies with each video decoded and CLIP-encoded once.

One job per module: datasets.py reads the layouts, sampling.py / media.py pick and load the frames,
protocols.py builds the official prompts and cuts the answers, matching.py is the official answer rule,
judge.py scores open-ended answers through an OpenAI-compatible endpoint, runner.py runs the sweep,
results.py keeps the resumable rows, summary.py and plot.py report them, on_ray.py spreads clips over Ray
actors, cli.py is the command.
"""
