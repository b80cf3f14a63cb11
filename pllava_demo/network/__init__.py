"""The network and its checkpoint families: the PLLaVA model top to bottom (model.py), LoRA with a
live strength (lora.py), loading files into it (checkpoint.py's load_pllava, each step in its own
module: hub.py, checkpoint_config.py, device_policy.py, weights.py, tokenizer.py; what each on-disk
family knows in families/), and tiny random checkpoints (tiny.py). Knows tensors and files; no text, no UI."""
