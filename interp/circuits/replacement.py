"""The replacement model: MLPs read through transcoders plus an error term.

For each layer with a transcoder the MLP output is written as

    mlp_out = decode(acts) + error,      error = mlp_out - decode(acts)

on the clean run, so the replacement model computes exactly what the original does. For
layers without a transcoder the whole MLP output is an error term. Attribution runs the
model *frozen*, as circuit-tracer does: attention patterns and LayerNorm scales are fixed
to their clean values, transcoder activations and error terms are inputs. Everything
between those inputs and a target (a later feature's pre-activation, a logit) is then
linear, so an edge (source activation x gradient) is exactly the change of the target
when the source is removed with everything else held fixed (see :meth:`run_frozen`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.hooks import hook_name
from interp.transcoders.loading import for_model


@dataclass
class CleanState:
    """Everything attribution needs from one clean forward pass (batch of one)."""

    tokens: Int[Tensor, " pos"]
    logits: Float[Tensor, "pos d_vocab"]
    embed: Float[Tensor, "pos d_model"]
    """``blocks.0.hook_resid_pre``: token plus position embedding, the embedding nodes."""
    x_in: dict[int, Tensor] = field(default_factory=dict)
    """MLP input (``ln2.hook_normalized``) per transcoder layer, [pos, d_model]."""
    acts: dict[int, Tensor] = field(default_factory=dict)
    """Feature activations per transcoder layer, [pos, d_sae]."""
    errors: dict[int, Tensor] = field(default_factory=dict)
    """Error term per layer, [pos, d_model]: MLP output minus the transcoder's (the whole
    MLP output where a layer has no transcoder)."""
    frozen: dict[str, Tensor] = field(default_factory=dict)
    """Clean values of the frozen hooks (attention patterns, LayerNorm scales), batch of one."""


class ReplacementModel:
    """A transformer-lens model with some (or all) MLPs replaced by transcoders.

    Args:
        model: a ``HookedTransformer``.
        transcoders: ``{layer: transcoder}``: interp transcoders or SAELens ones (converted by
            :func:`interp.transcoders.for_model`, which also folds their normalisation).
    """

    def __init__(self, model, transcoders: dict[int, object]) -> None:
        self.model = model
        self.transcoders = for_model(model, transcoders)
        self.n_layers = model.cfg.n_layers
        names = model.hook_dict
        self._frozen_names = [
            name
            for layer in range(self.n_layers)
            for name in (
                f"blocks.{layer}.ln1.hook_scale",
                f"blocks.{layer}.ln2.hook_scale",
                hook_name("attn_pattern", layer),
            )
            if name in names
        ] + [name for name in ("ln_final.hook_scale",) if name in names]

    # -- exact forward ---------------------------------------------------------------

    @contextlib.contextmanager
    def _hooks(self, hooks: Sequence[tuple[str, object]]) -> Iterator[None]:
        with self.model.hooks(fwd_hooks=list(hooks)):
            yield

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits of the replacement model: transcoder outputs plus error terms.

        The MLP output is written as ``mlp_out + (recon - recon.detach())``: its value is the
        original MLP output bit for bit (so the logits equal the original model's exactly) and
        its gradient flows through the transcoder, as ``recon + error`` would.
        """
        x_in: dict[int, Tensor] = {}

        def read_in(layer):
            def hook(x, hook):
                x_in[layer] = x
                return x

            return hook

        def write_out(layer, tc):
            def hook(out, hook):
                x = x_in[layer]
                recon = _write(tc, tc.encode(x), x)
                return out + (recon - recon.detach())

            return hook

        hooks = []
        for layer, tc in self.transcoders.items():
            hooks.append((hook_name("mlp_in", layer), read_in(layer)))
            hooks.append((hook_name("mlp_out", layer), write_out(layer, tc)))
        with self._hooks(hooks):
            return self.model(tokens)

    __call__ = forward

    @torch.no_grad()
    def clean_state(self, tokens: Int[Tensor, " pos"]) -> CleanState:
        """Run the model once and record activations, errors and the frozen hooks."""
        tokens = torch.as_tensor(tokens).reshape(-1).to(self.model.cfg.device)
        names = [hook_name("resid_pre", 0)] + self._frozen_names
        for layer in range(self.n_layers):
            names += [hook_name("mlp_in", layer), hook_name("mlp_out", layer)]
        logits, cache = self.model.run_with_cache(tokens[None], names_filter=lambda n: n in set(names))
        state = CleanState(tokens=tokens, logits=logits[0], embed=cache[hook_name("resid_pre", 0)][0])
        for name in self._frozen_names:
            state.frozen[name] = cache[name]
        for layer in range(self.n_layers):
            mlp_out = cache[hook_name("mlp_out", layer)][0]
            tc = self.transcoders.get(layer)
            if tc is None:
                state.errors[layer] = mlp_out
                continue
            x = cache[hook_name("mlp_in", layer)][0]
            acts = tc.encode(x)
            state.x_in[layer] = x
            state.acts[layer] = acts
            state.errors[layer] = mlp_out - _write(tc, acts, x)
        return state

    # -- frozen (linearised) forward -------------------------------------------------

    def frozen_forward(
        self,
        state: CleanState,
        embed: Float[Tensor, "batch pos d_model"],
        acts: dict[int, Tensor],
        errors: dict[int, Tensor],
    ) -> tuple[Float[Tensor, "batch pos d_vocab"], dict[int, Tensor], dict[int, Tensor]]:
        """Forward with frozen attention/LayerNorm and given node values.

        ``embed`` replaces ``blocks.0.hook_resid_pre``; ``acts[L]`` ([batch, pos, d_sae]) and
        ``errors[L]`` ([batch, pos, d_model]) make up layer L's MLP output. Returns the logits,
        each transcoder layer's feature pre-activations and each layer's per-head output
        ``hook_z`` ([batch, pos, head, d_head]), all still attached to the autograd graph.
        """
        batch = embed.shape[0]
        pre: dict[int, Tensor] = {}
        z: dict[int, Tensor] = {}
        x_live: dict[int, Tensor] = {}

        def frozen(name):
            value = state.frozen[name]

            def hook(x, hook):
                return value.expand(batch, *value.shape[1:])

            return hook

        def set_embed(x, hook):
            return embed

        def read_in(layer):
            tc = self.transcoders[layer]

            def hook(x, hook):
                x_live[layer] = x
                pre[layer] = tc.pre_activation(x)
                return x

            return hook

        def write_out(layer):
            tc = self.transcoders.get(layer)

            def hook(out, hook):
                if tc is None:
                    return errors[layer]
                return _write(tc, acts[layer], x_live[layer]) + errors[layer]

            return hook

        def read_z(layer):
            def hook(x, hook):
                z[layer] = x
                return x

            return hook

        hooks = [(name, frozen(name)) for name in self._frozen_names]
        hooks.append((hook_name("resid_pre", 0), set_embed))
        for layer in range(self.n_layers):
            if layer in self.transcoders:
                hooks.append((hook_name("mlp_in", layer), read_in(layer)))
            hooks.append((hook_name("mlp_out", layer), write_out(layer)))
            hooks.append((hook_name("attn_z", layer), read_z(layer)))
        tokens = state.tokens[None].expand(batch, -1)
        with self._hooks(hooks):
            logits = self.model(tokens)
        return logits, pre, z

    @torch.no_grad()
    def run_frozen(
        self,
        state: CleanState,
        acts: dict[int, Tensor] | None = None,
        errors: dict[int, Tensor] | None = None,
        embed: Tensor | None = None,
    ) -> tuple[Float[Tensor, "pos d_vocab"], dict[int, Tensor]]:
        """Intervene on the frozen model: override node values (batch of one), return
        the logits and the feature pre-activations. Unspecified values stay clean."""
        acts = {**state.acts, **(acts or {})}
        errors = {**state.errors, **(errors or {})}
        embed = state.embed if embed is None else embed
        logits, pre, _ = self.frozen_forward(
            state, embed[None], {k: v[None] for k, v in acts.items()}, {k: v[None] for k, v in errors.items()}
        )
        return logits[0], {k: v[0] for k, v in pre.items()}


def _write(tc, acts: Tensor, x: Tensor) -> Tensor:
    """What a transcoder writes to the MLP output: its latents' decoding plus its skip path."""
    return tc.decode(acts) + tc.skip(x)


def ablate_features(
    model,
    transcoders: dict[int, object],
    tokens: Int[Tensor, "batch pos"],
    features: Sequence[tuple[int, int, int]],
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits of the *unfrozen* model with transcoder features removed.

    ``features`` are ``(layer, position, feature)``; each one's decoder write
    ``act * W_dec[feature]`` is subtracted from that layer's MLP output at that position
    (the error term and everything else stay live), so the ablation propagates through
    attention and later layers as it would in the real model.
    """
    transcoders = for_model(model, transcoders)
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for layer, pos, feat in features:
        if layer not in transcoders:
            raise KeyError(f"no transcoder at layer {layer}; layers with one: {sorted(transcoders)}")
        by_layer.setdefault(layer, []).append((pos, feat))
    x_in: dict[int, Tensor] = {}

    def read_in(layer):
        def hook(x, hook):
            x_in[layer] = x
            return x

        return hook

    def write_out(layer):
        tc = transcoders[layer]
        pos = torch.tensor([p for p, _ in by_layer[layer]])
        feat = torch.tensor([f for _, f in by_layer[layer]])

        def hook(out, hook):
            acts = tc.encode(x_in[layer])  # [batch, pos, d_sae]
            a = acts[:, pos, feat]  # [batch, n]
            delta = torch.zeros_like(out)
            for i in range(len(pos)):
                delta[:, pos[i]] += a[:, i, None] * tc.W_dec[feat[i]]
            return out - delta

        return hook

    hooks = []
    for layer in by_layer:
        hooks.append((hook_name("mlp_in", layer), read_in(layer)))
        hooks.append((hook_name("mlp_out", layer), write_out(layer)))
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        return model(tokens)
