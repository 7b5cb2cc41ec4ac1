"""Reaching the Hugging Face hub before a hub model or dataset is fetched.

Without network, transformers and datasets each retry the hub for ~25 s and then raise an
error that does not say the network is missing. One TCP connection to the hub's endpoint,
a few seconds at most, tells first; with ``HF_HUB_OFFLINE=1`` the libraries read their cache
only and fail at once, and the message says that the copy is not in the cache.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from geobench.errors import ConfigError

_CONNECT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: the libraries use their cache only."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.upper() in _TRUE


def _reachable(endpoint: str) -> bool:
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=_CONNECT_S).close()
    except OSError:
        return False
    return True


def fix(name: str, option: str) -> str:
    """How to run ``name`` without network, for every hub message: a local copy, or the cache."""
    if option == "--dataset":
        fetch = f"save it with datasets' save_to_disk on a machine with network and pass {option} THAT_FOLDER"
    else:
        fetch = f"download it on a machine with network (`hf download {name} --local-dir DIR`) and pass {option} DIR"
    return f"{fetch}, or with {name!r} already in the hub cache set HF_HUB_OFFLINE=1"


def require_hub(name: str, option: str) -> None:
    """Return if ``name`` (a hub id given to ``option``) can be fetched or is to come from the cache;
    else one line, at once, saying the hub is unreachable and how to run without it."""
    from huggingface_hub import constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:  # no hub id (a missing local path, say): the load itself names it
        return
    if offline_mode():
        return

    if not _reachable(constants.ENDPOINT):
        why = f"the hub ({constants.ENDPOINT}) is unreachable (offline?)"
        raise ConfigError(f"{option} {name}: {why}; {fix(name, option)}")


def offline_miss(name: str, option: str) -> str | None:
    """The message for a hub load that failed in offline mode (the copy is not in the cache), else None."""
    if not offline_mode():
        return None
    why = f"offline (HF_HUB_OFFLINE is set) and {name!r} is not in the local cache"
    return f"{option} {name}: {why}; {fix(name, option)}"
