"""Batch captioning: many videos in, one JSON line out per video (captioner.py), its input lists and
output files (records.py), and the optional Ray Data pipeline (on_ray.py)."""
