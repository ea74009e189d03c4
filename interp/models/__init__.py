"""Loading models: the reference model, any model TransformerLens runs, by name or from a directory.

``load_model(spec)`` returns a transformer-lens ``HookedTransformer`` with the weights
processed as ``HookedTransformer.from_pretrained`` does by default (norms folded, writing
weights and unembedding centred where the architecture allows), so that hook points mean
the same thing for every model the toolkit handles. See docs/models.md.

- :mod:`interp.models.loading`: ``load_model`` and what it accepts;
- :mod:`interp.models.hub`: the names TransformerLens knows and the Hugging Face cache;
- :mod:`interp.models.convert`: a Hugging Face checkpoint converted by TransformerLens' code;
- :mod:`interp.models.info`: ``model_info``, a model's shape and hook points;
- :mod:`interp.models.checks`: ``check_tokens`` and ``check_context``, what a model can read;
- :mod:`interp.models.fingerprint`: ``fingerprint``, what trained artefacts record about their model,
  and ``check_fingerprint``, the check that they are used on it.
"""

from __future__ import annotations

from interp.models.fingerprint import check_fingerprint, fingerprint
from interp.models.checks import check_context, check_tokens
from interp.models.info import ModelInfo, model_info
from interp.models.loading import default_device, gpt2_available, load_model, quiet_transformer_lens

__all__ = [
    "ModelInfo",
    "check_context",
    "check_fingerprint",
    "check_tokens",
    "default_device",
    "fingerprint",
    "gpt2_available",
    "load_model",
    "model_info",
    "quiet_transformer_lens",
]
