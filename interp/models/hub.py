"""Model names and the Hugging Face cache: the names TransformerLens knows, and where their files are.

Names come from TransformerLens' own tables (``OFFICIAL_MODEL_NAMES`` and ``MODEL_ALIASES``,
resolved by ``get_official_model_name``), so every name ``HookedTransformer.from_pretrained``
takes is accepted here, and nothing else.

The cache location and offline mode are read from the environment when a model is loaded
(``HF_HUB_CACHE``, ``HF_HOME``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``), not when
``huggingface_hub`` was imported, so setting ``os.environ`` in a notebook takes effect.
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

HUB_PROBE_TIMEOUT_S = 3.0
"""How long to wait for a TCP connection to the hub before calling it unreachable."""

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""Files of which a Hugging Face checkpoint has at least one."""

MOVED_REPOS = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    "distilgpt2": "distilbert/distilgpt2",
}
"""Official names whose hub repository moved under an organisation: the cache may hold either id."""


@dataclass(frozen=True)
class HubSettings:
    """Where the Hugging Face cache is and whether the hub may be used, as of now."""

    cache_dir: Path
    """The hub cache (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    offline: bool
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: never contact the hub."""
    endpoint: str
    """The hub's address (``HF_ENDPOINT``, default https://huggingface.co)."""

    @property
    def host(self) -> str:
        """The hub's host name, probed before downloading."""
        return urlparse(self.endpoint).hostname or self.endpoint


def _true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_settings() -> HubSettings:
    """The Hugging Face settings from the environment now (falling back to ``huggingface_hub``'s)."""
    from huggingface_hub import constants

    env = os.environ
    if env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        cache = env.get("HF_HUB_CACHE") or env["HUGGINGFACE_HUB_CACHE"]
    elif env.get("HF_HOME"):
        cache = os.path.join(env["HF_HOME"], "hub")
    else:
        cache = constants.HF_HUB_CACHE
    offline = _true(env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE")) or constants.HF_HUB_OFFLINE
    endpoint = env.get("HF_ENDPOINT") or constants.ENDPOINT
    return HubSettings(Path(os.path.expandvars(os.path.expanduser(cache))), offline, endpoint)


def hub_reachable(settings: HubSettings, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to the hub opens within ``timeout`` seconds."""
    port = 80 if settings.endpoint.startswith("http://") else 443
    try:
        with socket.create_connection((settings.host, port), timeout=timeout):
            return True
    except OSError:
        return False


def official_name(spec: str) -> str | None:
    """TransformerLens' official name for ``spec`` (an official name or alias, any case), else None."""
    from transformer_lens import loading_from_pretrained as loading

    try:
        return loading.get_official_model_name(spec)
    except ValueError:
        return None


@lru_cache(maxsize=1)
def known_names() -> tuple[str, ...]:
    """Every name TransformerLens' ``from_pretrained`` takes: official names, then aliases."""
    from transformer_lens.supported_models import MODEL_ALIASES, OFFICIAL_MODEL_NAMES

    aliases = [alias for name in OFFICIAL_MODEL_NAMES for alias in MODEL_ALIASES.get(name, [])]
    return tuple(dict.fromkeys([*OFFICIAL_MODEL_NAMES, *aliases]))


def close_names(spec: str, n: int = 3) -> list[str]:
    """Up to ``n`` known names closest to ``spec``: same name under another organisation first, then difflib's."""
    names = ["reference", *known_names()]
    by_lower = {name.lower(): name for name in reversed(names)}
    base = spec.lower().rsplit("/", 1)[-1]
    same_base = [name for name in names if name.lower().rsplit("/", 1)[-1] == base]
    close = difflib.get_close_matches(spec.lower(), list(by_lower), n=n, cutoff=0.6)
    return list(dict.fromkeys([*same_base, *(by_lower[c] for c in close)]))[:n]


def repo_ids(official: str) -> list[str]:
    """The hub repositories that may hold ``official`` (its own id, and the id it moved to)."""
    return [official, MOVED_REPOS[official]] if official in MOVED_REPOS else [official]


@dataclass(frozen=True)
class CachedModel:
    """A model's files in the local Hugging Face cache."""

    repo_id: str
    """The repository id the cache holds it under."""
    snapshot: Path
    """The snapshot directory (``models--org--name/snapshots/<revision>``) that ``refs/main`` names."""

    @property
    def is_hf_checkpoint(self) -> bool:
        """True for a ``transformers`` checkpoint (config.json names its model type and weights are there)."""
        import json

        try:
            config = json.loads((self.snapshot / "config.json").read_text())
        except (OSError, ValueError):
            return False
        has_weights = any((self.snapshot / name).is_file() for name in WEIGHT_FILES)
        return has_weights and bool(config.get("model_type") or config.get("architectures"))


def cached_model(official: str, settings: HubSettings) -> CachedModel | None:
    """``official``'s snapshot in the cache (any repository id it may be under), if it has a config.json."""
    from huggingface_hub import snapshot_download

    for repo_id in repo_ids(official):
        try:
            snapshot = Path(snapshot_download(repo_id, cache_dir=settings.cache_dir, local_files_only=True))
        except Exception as err:  # noqa: BLE001 - any miss (not cached, no refs/main) means "not in the cache"
            logger.debug("%s is not in the cache at %s: %s", repo_id, settings.cache_dir, type(err).__name__)
            continue
        if (snapshot / "config.json").is_file():
            return CachedModel(repo_id, snapshot)
    return None


def download(official: str, settings: HubSettings) -> CachedModel | None:
    """Fetch ``official``'s transformers checkpoint into the cache (top-level config, tokenizer and
    weight files: safetensors when the repository has them, else ``.bin``); None when the
    repository holds no transformers checkpoint (a TransformerLens-native model)."""
    from huggingface_hub import HfApi, snapshot_download

    repo_id = repo_ids(official)[-1]
    files = [f for f in HfApi(endpoint=settings.endpoint).list_repo_files(repo_id) if "/" not in f]
    weights = [f for f in files if f.startswith(("model", "pytorch_model")) and f.endswith((".safetensors", ".bin"))]
    if "config.json" not in files or not weights:
        return None
    kind = "*.safetensors" if any(f.endswith(".safetensors") for f in weights) else "*.bin"
    snapshot = snapshot_download(
        repo_id,
        cache_dir=settings.cache_dir,
        endpoint=settings.endpoint,
        allow_patterns=["*.json", kind, "*.model", "*.txt", "*.tiktoken"],
        ignore_patterns=["*/*"],
    )
    return CachedModel(repo_id, Path(snapshot))
