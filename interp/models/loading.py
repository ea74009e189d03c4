"""``load_model``: a model spec (a name, a directory, or a model object) to a ``HookedTransformer``."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from interp.errors import ModelLoadError
from interp.models import convert, hub

logger = logging.getLogger(__name__)

GPT2_PATH_VARIABLE = "INTERP_GPT2_PATH"
"""An environment variable naming a local GPT-2 small checkpoint directory, read for ``gpt2``."""


@contextlib.contextmanager
def quiet_transformer_lens() -> Iterator[None]:
    """Send what transformer-lens prints while loading to the debug log (the library never prints)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    if buffer.getvalue().strip():
        logger.debug("transformer-lens: %s", buffer.getvalue().strip())


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _is_hooked_transformer(obj) -> bool:
    if isinstance(obj, (str, os.PathLike)):
        return False
    from transformer_lens import HookedTransformer

    return isinstance(obj, HookedTransformer)


def load_model(
    spec,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
):
    """Load a model as a transformer-lens ``HookedTransformer``.

    Args:
        spec: one of
            - ``"reference"``: the bundled offline model;
            - a name ``HookedTransformer.from_pretrained`` knows (an official name such as
              ``"meta-llama/Llama-3.2-1B"`` or an alias such as ``"gpt2-small"``, any case),
              read from the local Hugging Face cache (offline), else downloaded from the hub
              when it is reachable and ``HF_HUB_OFFLINE`` is not set; for ``gpt2`` the
              directory in ``INTERP_GPT2_PATH`` comes first. Another repository id is read from
              the cache when it is there;
            - a local directory: a Hugging Face checkpoint of any architecture TransformerLens
              converts (``config.json``, weights, tokenizer files), or a directory written by
              interp (``interp reference train``);
            - a ``HookedTransformer``: returned as it is (``device``, ``dtype`` and the
              processing flags do not apply to it).
        device: defaults to CUDA when available, else CPU.
        dtype: e.g. ``torch.float32`` or ``"bfloat16"``; defaults to float32.
        fold_ln: fold each norm's weights into the next weights (transformer-lens
            processing, on by default as in ``from_pretrained``; off where TransformerLens
            cannot fold, e.g. post-norm architectures).
        center_writing_weights: centre the weights that write to the residual stream
            (LayerNorm models only: a following RMSNorm does not remove the mean).
        center_unembed: centre the unembedding (logits shift by a constant per position;
            off for models with logit soft-capping).

    Raises:
        ModelLoadError: the model could not be loaded; the one-sentence message says what
            was tried and what to pass instead.
    """
    if _is_hooked_transformer(spec):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ModelLoadError(
            f"load_model takes a model name, a checkpoint directory or a HookedTransformer, not a {type(spec).__name__}"
        )
    processing = {
        "fold_ln": fold_ln,
        "center_writing_weights": center_writing_weights,
        "center_unembed": center_unembed,
    }
    device = str(device) if device is not None else default_device()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    with quiet_transformer_lens():
        return _load(os.fspath(spec), device, dtype or torch.float32, processing)


def _load(spec: str, device: str, dtype: torch.dtype, processing: dict):
    if spec == "reference":
        from interp.reference.model import load

        return load(device=device, dtype=dtype, **processing)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _load_directory(path, device, dtype, processing)
    official = hub.official_name(spec)
    if official is not None:
        return _load_by_name(spec, official, device, dtype, processing)
    if _looks_like_path(spec):
        raise ModelLoadError(
            f"no directory {spec}: pass an existing checkpoint directory, a model name, or 'reference'"
        )
    settings = hub.hub_settings()
    cached = hub.cached_model(spec, settings)
    if cached is not None and cached.is_hf_checkpoint:
        logger.info("%s is not a name TransformerLens knows; converting its cached checkpoint by architecture", spec)
        return convert.from_hf(str(cached.snapshot), None, settings, device, dtype, processing)
    close = hub.close_names(spec)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ModelLoadError(
        f"unknown model {spec!r}: it is not 'reference', an existing directory, a name TransformerLens knows, "
        f"or a checkpoint in the Hugging Face cache at {settings.cache_dir}.{hint}"
    )


def _looks_like_path(spec: str) -> bool:
    """A spec that can only be a path: absolute, relative with ./ or ~, or with more than one '/' (hub ids have one)."""
    return os.path.isabs(spec) or spec.startswith((".", "~")) or spec.count("/") > 1 or "\\" in spec


def _load_directory(path: Path, device: str, dtype: torch.dtype, processing: dict):
    from interp.io import require_complete

    require_complete(path)  # a directory interp is still writing, or whose writer was killed
    config = path / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"{path} has no config.json; it is not a model checkpoint directory")
    try:
        content = json.loads(config.read_text())
    except ValueError as err:
        raise ModelLoadError(f"{config} is not valid JSON ({err})") from err
    if "d_model" in content and "n_layers" in content:
        from interp.reference.model import load

        return load(path, device=device, dtype=dtype, **processing)
    return convert.from_hf(str(path), None, hub.hub_settings(), device, dtype, processing)


def _load_by_name(spec: str, official: str, device: str, dtype: torch.dtype, processing: dict):
    settings = hub.hub_settings()
    tried = []
    if official == "gpt2":
        local = os.environ.get(GPT2_PATH_VARIABLE)
        if local and Path(local).expanduser().is_dir():
            return _load_directory(Path(local).expanduser(), device, dtype, processing)
        tried.append(f"{GPT2_PATH_VARIABLE}={local} (not a directory)" if local else f"{GPT2_PATH_VARIABLE} (unset)")
    cached = hub.cached_model(official, settings)
    if cached is not None and cached.is_hf_checkpoint:
        logger.info("loading %s from the Hugging Face cache at %s", official, cached.snapshot)
        return convert.from_hf(str(cached.snapshot), official, settings, device, dtype, processing)
    where = " or ".join(hub.repo_ids(official))
    if cached is None:
        tried.append(f"the Hugging Face cache at {settings.cache_dir} (no {where})")
    else:
        tried.append(
            f"the cached copy at {cached.snapshot} (no transformers weights: incomplete, "
            "or a TransformerLens-native model only the hub serves)"
        )
    if settings.offline:
        hub_note = "; the hub was not contacted, since HF_HUB_OFFLINE is set"
    elif not hub.hub_reachable(settings):
        hub_note = f" and the hub at {settings.host} (unreachable within {hub.HUB_PROBE_TIMEOUT_S:.0f} s)"
    else:
        return _download(official, settings, device, dtype, processing)
    gpt2 = f", set {GPT2_PATH_VARIABLE} to a checkpoint directory" if official == "gpt2" else ""
    raise ModelLoadError(
        f"could not load {spec!r} ({official}): tried {', '.join(tried)}{hub_note}; pass a checkpoint directory{gpt2}, "
        f"point HF_HOME (or HF_HUB_CACHE) at a cache that holds {where}, run once where the hub is reachable, "
        "or use load_model('reference')"
    )


def _download(official: str, settings: hub.HubSettings, device: str, dtype: torch.dtype, processing: dict):
    """Fetch ``official`` from the hub into the cache and convert it (TransformerLens-native ones via from_pretrained)."""
    logger.info("downloading %s from the Hugging Face hub into %s", official, settings.cache_dir)
    try:
        fetched = hub.download(official, settings)
    except Exception as err:
        raise ModelLoadError(
            f"could not download {official} from the hub ({type(err).__name__}: {convert.first_line(err)}); "
            "for a gated model, accept its licence on the hub and set HF_TOKEN"
        ) from err
    if fetched is not None:
        return convert.from_hf(str(fetched.snapshot), official, settings, device, dtype, processing)
    from transformer_lens import HookedTransformer

    model = HookedTransformer.from_pretrained(
        official, device=device, dtype=dtype, cache_dir=str(settings.cache_dir), **processing
    )
    return model.eval()


def gpt2_available() -> bool:
    """True when GPT-2 small's weights are on this machine (``INTERP_GPT2_PATH`` or the cache)."""
    local = os.environ.get(GPT2_PATH_VARIABLE)
    if local and Path(local).expanduser().is_dir():
        return True
    cached = hub.cached_model("gpt2", hub.hub_settings())
    return cached is not None and cached.is_hf_checkpoint
