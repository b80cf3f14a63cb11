"""Long videos as chapters: scene boundaries, a caption per chapter, subtitles, retrieval and exports,
and answers from the chapters a question needs ("ask the whole video").

settings.py (the knobs), scenes.py (boundaries from frame features, numpy only), features.py (CLIP
features of a keyframe scan), captions.py (chapter captions batched through the decode loop),
subtitles.py (embedded and sidecar subtitles as plain lines), records.py (the chapter values),
cache.py, maker.py (the whole chaptering run), retrieval.py (BM25), export.py (.vtt/.srt/.json),
whole.py (ask the whole video), cli.py (the `chapters` command and `ask --scope whole`).
Nothing here imports gradio; PyAV stays in frames/.
"""
