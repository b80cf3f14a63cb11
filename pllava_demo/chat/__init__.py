"""The chat engine: sessions and their caches (engine.py), the one decode loop that batches every
answer in flight (scheduler.py) over one sampler (generate.py), prompts (prompt.py), token ids and
streamed text (tokens.py) and the KV cache that appends in place (kvcache.py). No gradio here."""
