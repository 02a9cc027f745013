"""Find model weights: a local directory, the Hugging Face cache, or the hub.

Offline, ``from_pretrained("BAAI/bge-reranker-v2-m3")`` spends ~50 s in retries
before failing. Services start faster and fall back sooner when the answer is known
in milliseconds: a local path exists or not; a hub id is in the cache or not; the
hub host accepts a TCP connection or not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

#: Files a sequence-classification cross-encoder needs; skips duplicate .bin/ONNX weights in hub repos.
_WANTED_FILES = ["*.json", "*.safetensors", "*.model", "*.txt"]


#: The production reranker. Any single-logit sequence-classification cross-encoder works.
DEFAULT_MODEL = "BAAI/bge-reranker-v2-m3"


class ModelUnavailableError(RuntimeError):
    """The weights are not here and cannot be fetched now (offline, missing directory)."""


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    path: Path
    model_id: str
    revision: str


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a directory."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name or name.endswith("/")


def directory_fingerprint(path: Path) -> str:
    """Stands in for a commit hash for local directories: changes whenever the files do."""
    digest = hashlib.sha1(usedforsecurity=False)  # a change detector, not a security hash
    for file in sorted(path.iterdir()):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    config = path / "config.json"
    if config.exists():
        digest.update(config.read_bytes())
    return "local-" + digest.hexdigest()[:12]


def _hub_reachable(timeout: float) -> bool:
    if any(os.environ.get(var) for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # cannot tell through a proxy; let the download try
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model(name_or_path: str, allow_download: bool = True, probe_timeout: float = 3.0) -> ResolvedModel:
    """Local directory first, then the HF cache, then (if allowed and reachable) the hub."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        if not (candidate / "config.json").is_file():
            raise ModelUnavailableError(f"model directory {candidate} has no config.json")
        return ResolvedModel(candidate.resolve(), name_or_path, directory_fingerprint(candidate))
    if _looks_like_path(name_or_path):
        raise ModelUnavailableError(f"model directory {name_or_path} does not exist")

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(name_or_path, allow_patterns=_WANTED_FILES, local_files_only=True))  # nosec B615 - cache lookup only
    except LocalEntryNotFoundError:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        if not allow_download or offline:
            raise ModelUnavailableError(
                f"{name_or_path} is not in the local Hugging Face cache and downloads are disabled"
            ) from None
        if not _hub_reachable(probe_timeout):
            raise ModelUnavailableError(
                f"{name_or_path} is not cached and the Hugging Face hub is unreachable (offline?)"
            ) from None
        log.info("downloading %s from the Hugging Face hub", name_or_path)
        try:
            # The operator picks the model id; the snapshot's commit hash is kept as the model's revision.
            path = Path(snapshot_download(name_or_path, allow_patterns=_WANTED_FILES))  # nosec B615 - operator's choice
        except Exception as exc:  # network errors come in many types across hub versions
            raise ModelUnavailableError(f"download of {name_or_path} failed: {exc}") from exc
    return ResolvedModel(path, name_or_path, path.name)  # snapshot folders are named by commit hash
