"""Where a checkpoint's files are: a local folder as given, or a Hugging Face Hub repo id downloaded
(weights, configs and tokenizer files only) into the standard Hub cache.

It knows paths and huggingface_hub; it does not open the files (checkpoint_config.py reads them) and
downloads no pickle weights (they would be refused anyway).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError
from ..settings import is_hub_id

WEIGHT_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.txt"]


def resolve_source(source: str | os.PathLike) -> Path:
    """A local folder, or a Hub repo id downloaded (with a progress bar) into the standard cache."""
    path = Path(os.path.expanduser(str(source)))
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"'{source}' is a file; give the folder that holds config.json and the weights.")
    if not is_hub_id(source):
        raise CheckpointError(f"No folder '{source}' and it is not a Hub repo id like 'ermu2001/pllava-7b'.")
    return _download(str(source))


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=WEIGHT_PATTERNS))
    except LocalEntryNotFoundError as e:
        why = "downloads are off (HF_HUB_OFFLINE=1)" if offline else "the Hub could not be reached"
        raise CheckpointError(f"Model '{repo_id}' is not in the local cache and {why}.") from e
    except RepositoryNotFoundError as e:
        raise CheckpointError(f"Model '{repo_id}' was not found on the Hugging Face Hub (or it is private).") from e
    except Exception as e:  # network errors come in many types; the user needs one line
        raise CheckpointError(f"Could not download '{repo_id}': {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
