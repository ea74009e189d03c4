"""interp transcoders in SAELens: its classes for interp's TopK transcoders, conversions,
and splicing into SAELens' ``HookedSAETransformer``.

SAELens 6 has transcoder classes for ReLU, skip and JumpReLU transcoders, which load
interp's files as they are (see :mod:`interp.transcoders.formats`), but none for TopK.
Importing this module registers two with SAELens' own registry
(``sae_lens.register_sae_class``), so that afterwards ``sae_lens.SAE.load_from_disk``,
``SAE.from_dict`` and ``SAE.from_pretrained`` load interp's TopK files::

    import interp.transcoders.saelens  # registers interp_topk_transcoder, interp_skip_topk_transcoder
    from sae_lens import SAE
    sae = SAE.load_from_disk("runs/tc/layer_0")

- ``interp_topk_transcoder``: :class:`TopKTranscoder`, ``TopK_k(ReLU(x W_enc + b_enc)) W_dec + b_dec``
- ``interp_skip_topk_transcoder``: :class:`SkipTopKTranscoder`, the same plus ``x W_skip.T``

SAELens has no plugin mechanism (no entry points), so nothing registers them before this
import; until then SAELens refuses these files with ``KeyError: 'interp_topk_transcoder'``
(and each such ``cfg.json`` says in ``metadata.loading`` what to import). Registration has
no other effect, and importing the module twice registers once.

``k`` is a required field of these configs, read from the top level of ``cfg.json`` like
every SAELens config field: a file without it is refused, never run with a default ``k``.

:func:`to_saelens` turns an interp transcoder into the matching SAELens object,
:func:`hooked_sae_transformer` turns interp's ``HookedTransformer`` into a
``HookedSAETransformer`` with the same weights, and :func:`skip_connection_hooks` adds the
skip path that ``HookedSAETransformer`` leaves out when it splices a skip transcoder (it
calls ``encode`` then ``decode``, and SAELens' ``decode`` has no skip term)::

    hst = hooked_sae_transformer(model)
    saes = [to_saelens(tc) for tc in load_run("runs/tc").values()]
    logits = hst.run_with_hooks_with_saes(tokens, saes=saes, fwd_hooks=skip_connection_hooks(saes))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, no_type_check

import torch
from sae_lens import SAE, HookedSAETransformer, register_sae_class
from sae_lens.registry import SAE_CLASS_REGISTRY
from sae_lens.saes.sae import SAEMetadata
from sae_lens.saes.topk_sae import TopK
from sae_lens.saes.transcoder import SkipTranscoder, SkipTranscoderConfig, Transcoder, TranscoderConfig
from sae_lens.util import filter_valid_dataclass_fields

from interp.errors import TranscoderLoadError
from interp.transcoders import formats
from interp.transcoders.base import Transcoder as InterpTranscoder


def _check_k(cfg: TopKTranscoderConfig) -> None:
    if cfg.k is None:
        raise ValueError(
            f"{cfg.architecture()} needs k (active latents per token) at the top level of cfg.json; "
            "this file has none, and a TopK transcoder run with any other k computes something else"
        )
    if isinstance(cfg.k, bool) or not isinstance(cfg.k, int) or not 1 <= cfg.k <= cfg.d_sae:
        raise ValueError(f"{cfg.architecture()}: k must be an integer between 1 and d_sae={cfg.d_sae}, got {cfg.k!r}")


# no_type_check: SAELens' SAEConfig.from_dict passes ``metadata`` to the constructor as a dict
# (then replaces it), which the test suite's run-time type checks would refuse.
@no_type_check
@dataclass
class TopKTranscoderConfig(TranscoderConfig):
    """SAELens config of interp's TopK transcoder."""

    k: int | None = None
    """Active latents per token; required (None is refused, so a missing k is an error, not a default)."""

    @classmethod
    def architecture(cls) -> str:
        return formats.saelens_architecture("topk")

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any]) -> TopKTranscoderConfig:
        res = cls(**filter_valid_dataclass_fields(config_dict, cls))
        if "metadata" in config_dict:
            res.metadata = SAEMetadata(**config_dict["metadata"])
        return res

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_k(self)


@no_type_check
@dataclass
class SkipTopKTranscoderConfig(TopKTranscoderConfig, SkipTranscoderConfig):
    """SAELens config of interp's skip-TopK transcoder."""

    @classmethod
    def architecture(cls) -> str:
        return formats.saelens_architecture("skip_topk")


class TopKTranscoder(Transcoder):
    """``TopK_k(ReLU(x W_enc + b_enc)) W_dec + b_dec`` as a SAELens transcoder (SAELens' own ``TopK``)."""

    cfg: TopKTranscoderConfig
    config_class: type[TopKTranscoderConfig] = TopKTranscoderConfig

    def get_activation_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return TopK(self.cfg.k)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any]) -> TopKTranscoder:
        return cls(cls.config_class.from_dict(config_dict))


class SkipTopKTranscoder(TopKTranscoder, SkipTranscoder):
    """:class:`TopKTranscoder` plus SAELens' skip path ``x W_skip.T`` (in ``forward``)."""

    cfg: SkipTopKTranscoderConfig
    config_class = SkipTopKTranscoderConfig


CLASSES: dict[str, tuple[type, type]] = {
    TopKTranscoderConfig.architecture(): (TopKTranscoder, TopKTranscoderConfig),
    SkipTopKTranscoderConfig.architecture(): (SkipTopKTranscoder, SkipTopKTranscoderConfig),
}
"""The SAELens classes this module registers, by architecture name."""

for _name, (_sae, _config) in CLASSES.items():
    if _name not in SAE_CLASS_REGISTRY:
        register_sae_class(_name, _sae, _config)


def to_saelens(tc: InterpTranscoder, *, hook_name: str | None = None, hook_name_out: str | None = None) -> SAE:
    """``tc`` as a SAELens transcoder (normalisation folded) computing the same function, on
    ``tc``'s device; the hooks default to the ones ``tc`` was trained on."""
    hook_name = hook_name or tc.hook_name
    hook_name_out = hook_name_out or tc.hook_name_out
    if hook_name is None or hook_name_out is None:
        raise TranscoderLoadError(
            "this transcoder does not know its hook points (it was not loaded from a run or file): pass "
            "hook_name= and hook_name_out=, e.g. interp.transcoders.data.layer_hooks(layer)"
        )
    sae = SAE.from_dict(formats.saelens_config(tc, hook_name=hook_name, hook_name_out=hook_name_out))
    sae.load_state_dict(formats.saelens_tensors(tc))
    return sae.to(tc.W_enc.device).eval()


def hooked_sae_transformer(model) -> HookedSAETransformer:
    """A ``HookedSAETransformer`` with ``model``'s config, weights and tokenizer (``model`` is a
    transformer-lens ``HookedTransformer``, e.g. from :func:`interp.models.load_model`); built
    offline, no download."""
    from interp.models import quiet_transformer_lens

    with quiet_transformer_lens():
        hst = HookedSAETransformer(model.cfg, tokenizer=model.tokenizer)
    hst.load_state_dict(model.state_dict())
    return hst.to(model.cfg.device).eval()


def skip_connection_hooks(saes: Iterable[SAE]) -> list[tuple[str, Callable]]:
    """Forward hooks that add the skip path ``x @ W_skip.T`` of each skip transcoder in
    ``saes`` once it is spliced into a ``HookedSAETransformer`` (which leaves it out; see the
    module docstring). Pass them with the SAEs::

        hst.run_with_hooks_with_saes(tokens, saes=saes, fwd_hooks=skip_connection_hooks(saes))

    The hooks read the transcoder's input at ``<hook_name_out>.hook_sae_input`` and add to its
    output at ``<hook_name_out>.hook_sae_output``. Splice without ``use_error_term``: with it,
    SAELens already returns the model's own activation there."""
    hooks: list[tuple[str, Callable]] = []
    for sae in saes:
        if getattr(sae, "W_skip", None) is None:
            continue
        site = sae.cfg.metadata.hook_name_out or sae.cfg.metadata.hook_name
        stash: dict[str, torch.Tensor] = {}

        def read(x, hook, stash=stash):
            stash["x"] = x

        def add(y, hook, stash=stash, sae=sae):
            return y + stash.pop("x") @ sae.W_skip.T.to(y.dtype)

        hooks += [(f"{site}.hook_sae_input", read), (f"{site}.hook_sae_output", add)]
    return hooks


__all__ = [
    "CLASSES",
    "SkipTopKTranscoder",
    "SkipTopKTranscoderConfig",
    "TopKTranscoder",
    "TopKTranscoderConfig",
    "hooked_sae_transformer",
    "skip_connection_hooks",
    "to_saelens",
]
