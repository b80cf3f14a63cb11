"""The network and its checkpoint families: the PLLaVA model top to bottom (model.py), LoRA with a
live strength (lora.py), loading files into it (checkpoint.py, with what each on-disk family knows
in families/), and tiny random checkpoints (tiny.py). Knows tensors and files; no text, no UI."""
