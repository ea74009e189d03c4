"""The replacement model: MLPs read through transcoders plus an error term.

For each layer with a transcoder the MLP output is written as

    mlp_out = decode(acts) + skip(x) + error,      error = mlp_out - decode(acts) - skip(x)

on the clean run, so the replacement model computes exactly what the original does. For
layers without a transcoder the whole MLP output is an error term. With a cross-layer
transcoder, ``decode`` at layer ``l'`` sums the writes of the features of ``l'`` and of every
earlier CLT layer (each feature reads at its own layer and writes to its layer and every later
one), and the error term of ``l'`` is what those summed writes miss there; see
:mod:`interp.circuits.dictionary`, the one interface over both kinds. Attribution runs the
model *frozen*, as circuit-tracer does: every normalisation scale on the residual stream
(every ``*.hook_scale`` outside attention and MLP: ln1, ln2, ln_final, and the post-sublayer
norms ``ln1_post``/``ln2_post`` of Gemma-2-style blocks) and every attention pattern (local or global, soft-capped or not)
are fixed to their clean values; transcoder activations and error terms are inputs. A
soft-capped logit ``cap * tanh(raw / cap)`` keeps its clean ratio to the raw logit, as a
norm keeps its scale. Everything between those inputs and a target (a later feature's
pre-activation, a logit) is then linear, so an edge (source activation x gradient) is
exactly the change of the target when the source is removed with everything else held
fixed (see :meth:`ReplacementModel.run_frozen`).

Attribution differentiates this frozen model through :meth:`ReplacementModel.linearised`:
one forward pass on the prompt, whose inputs are the token embedding and each layer's MLP
write, and whose outputs are each layer's read hook (its MLP input, or a CLT's read hook) and
the final residual stream. One backward pass, vmapped over a batch of seeds at those outputs,
gives the gradient of a batch of targets at every MLP write, which every source writing there
reads with one dot product.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.circuits.dictionary import Dictionary, as_dictionary
from interp.errors import TranscoderLoadError
from interp.hooks import hook_name
from interp.transcoders.clt import CrossLayerTranscoder


@dataclass
class CleanState:
    """Everything attribution needs from one clean forward pass (batch of one)."""

    tokens: Int[Tensor, " pos"]
    logits: Float[Tensor, "pos d_vocab"]
    embed: Float[Tensor, "pos d_model"]
    """``blocks.0.hook_resid_pre``: token plus position embedding, the embedding nodes."""
    x_in: dict[int, Tensor] = field(default_factory=dict)
    """The read hook per transcoder layer (the MLP input, or a CLT's read hook), [pos, d_model]."""
    acts: dict[int, Tensor] = field(default_factory=dict)
    """Feature activations per transcoder layer, [pos, d_sae]."""
    errors: dict[int, Tensor] = field(default_factory=dict)
    """Error term per layer, [pos, d_model]: MLP output minus the transcoder's (the whole
    MLP output where a layer has no transcoder)."""
    frozen: dict[str, Tensor] = field(default_factory=dict)
    """Clean values of the frozen hooks (attention patterns, normalisation scales), batch of one."""
    logit_scale: Tensor | None = None
    """[pos, d_vocab]: soft-capped logit / raw logit on the clean run, the frozen ratio of a
    model with logit soft-capping (None without it)."""

    def prefix(self, n: int) -> CleanState:
        """The state of the prompt's first ``n`` tokens. The model is causal, so the frozen
        model on a prefix computes exactly what the full one computes at those positions."""
        if n >= len(self.tokens):
            return self

        def cut(name: str, value: Tensor) -> Tensor:
            return value[..., :n, :n] if name.endswith("hook_pattern") else value[:, :n]

        return CleanState(
            tokens=self.tokens[:n], logits=self.logits[:n], embed=self.embed[:n],
            x_in={k: v[:n] for k, v in self.x_in.items()}, acts={k: v[:n] for k, v in self.acts.items()},
            errors={k: v[:n] for k, v in self.errors.items()},
            frozen={name: cut(name, v) for name, v in self.frozen.items()},
            logit_scale=None if self.logit_scale is None else self.logit_scale[:n],
        )


@dataclass
class Linearised:
    """The frozen model's autograd graph on the prompt (a batch of one).

    ``embed`` and ``writes`` are leaves holding their clean values; the gradient of any
    output with respect to them is the gradient at ``blocks.0.hook_resid_pre`` and at each
    layer's ``hook_mlp_out``. Outputs: ``reads[L]`` (layer L's read hook, what its features'
    pre-activations are linear in), ``final`` (the residual after ``ln_final``,
    what the logits are linear in) and ``z[L]`` (per-head attention outputs).
    """

    embed: Float[Tensor, "1 pos d_model"]
    writes: dict[int, Tensor]
    """Per layer, [1, pos, d_model]: what the MLP writes besides a skip path (the features'
    decoding plus the error term, or the whole MLP output)."""
    reads: dict[int, Tensor]
    """Per transcoder layer, [1, pos, d_model]: the read hook (the MLP input, or a CLT's read hook)."""
    final: Float[Tensor, "1 pos d_model"]
    """The unembedding's input: logits = final @ W_U + b_U (before any soft-cap)."""
    z: dict[int, Tensor]
    """Per layer, [1, pos, head, d_head]: ``attn.hook_z``."""

    def grad(self, outputs: Sequence[Tensor], seeds: Sequence[Tensor], inputs: Sequence[Tensor]) -> list[Tensor]:
        """Gradients of ``k`` targets at ``inputs``: ``seeds[i]`` is ``[k, *outputs[i].shape]``,
        row j the gradient of target j at ``outputs[i]``; returns ``[k, *input.shape[1:]]`` per
        input (zeros where unreachable). One backward pass for all k (vmapped over the seeds);
        the graph is kept for the next call."""
        grads = torch.autograd.grad(list(outputs), list(inputs), grad_outputs=list(seeds), retain_graph=True,
                                    allow_unused=True, is_grads_batched=True)
        k = seeds[0].shape[0]
        return [x.new_zeros(k, *x.shape[1:]) if g is None else g[:, 0] for g, x in zip(grads, inputs)]


def check_architecture(model) -> None:
    """Refuse, in one sentence, a model whose MLPs transcoders cannot replace exactly."""
    cfg = model.cfg
    if getattr(cfg, "attn_only", False):
        raise TranscoderLoadError("this model is attention-only: it has no MLPs for transcoders to replace")


class ReplacementModel:
    """A transformer-lens model with some (or all) MLPs replaced by transcoders.

    Args:
        model: a ``HookedTransformer``.
        transcoders: ``{layer: transcoder}`` (interp transcoders or SAELens ones, converted by
            :func:`interp.transcoders.for_model`, which also folds their normalisation), or one
            :class:`~interp.transcoders.clt.CrossLayerTranscoder` (what :func:`interp.transcoders.load_run`
            returns for a CLT run), or a :class:`~interp.circuits.dictionary.Dictionary`.

    Raises:
        TranscoderLoadError: the transcoders do not fit the model, or the model has no MLPs
            (attention-only).
    """

    def __init__(self, model, transcoders: Mapping[int, object] | CrossLayerTranscoder | Dictionary) -> None:
        check_architecture(model)
        self.model = model
        self.dictionary = as_dictionary(model, transcoders)
        """The features, per-layer or cross-layer, behind one interface."""
        self.transcoders = self.dictionary.transcoders
        """The folded transcoders: ``{layer: Transcoder}`` or the one CLT."""
        self.n_layers = model.cfg.n_layers
        # every normalisation scale on the residual stream (pre- and post-sublayer norms,
        # ln_final) and every attention pattern, found by name so that no norm of an
        # architecture is missed; norms inside attention (query/key norms) only shape the
        # pattern, which is frozen, and norms inside an MLP (SoLU's) are replaced with it
        self._frozen_names = [
            name for name in model.hook_dict
            if name.endswith("attn.hook_pattern")
            or (name.endswith(".hook_scale") and ".attn." not in name and ".mlp." not in name)
        ]
        self.soft_cap = float(getattr(model.cfg, "output_logits_soft_cap", -1.0) or -1.0)

    # -- exact forward ---------------------------------------------------------------

    @contextlib.contextmanager
    def _hooks(self, hooks: Sequence[tuple[str, object]]) -> Iterator[None]:
        with self.model.hooks(fwd_hooks=list(hooks)):
            yield

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits of the replacement model: transcoder outputs plus error terms.

        The MLP output is written as ``mlp_out + (recon - recon.detach())``: its value is the
        original MLP output bit for bit (so the logits equal the original model's exactly) and
        its gradient flows through the transcoders, as ``recon + error`` would.
        """
        d = self.dictionary
        x_in: dict[int, Tensor] = {}
        acts: dict[int, Tensor] = {}

        def read_in(layer):
            def hook(x, hook):
                x_in[layer] = x
                acts[layer] = d.encode(layer, x)
                return x

            return hook

        def write_out(layer):
            def hook(out, hook):
                recon = d.reconstruct(layer, acts) + d.skip(layer, x_in[layer])
                return out + (recon - recon.detach())

            return hook

        hooks = []
        for layer in d.layers:
            hooks.append((d.read_hook(layer), read_in(layer)))
            hooks.append((hook_name("mlp_out", layer), write_out(layer)))
        with self._hooks(hooks):
            return self.model(tokens)

    __call__ = forward

    @torch.no_grad()
    def clean_state(self, tokens: Int[Tensor, " pos"]) -> CleanState:
        """Run the model once and record activations, errors and the frozen hooks."""
        tokens = torch.as_tensor(tokens).reshape(-1).to(self.model.cfg.device)
        d = self.dictionary
        names = [hook_name("resid_pre", 0)] + self._frozen_names
        names += [hook_name("mlp_out", layer) for layer in range(self.n_layers)]
        names += [d.read_hook(layer) for layer in d.layers]
        if self.soft_cap > 0:
            names.append("unembed.hook_out")
        wanted = set(names)
        logits, cache = self.model.run_with_cache(tokens[None], names_filter=lambda n: n in wanted)
        state = CleanState(tokens=tokens, logits=logits[0], embed=cache[hook_name("resid_pre", 0)][0])
        if self.soft_cap > 0:
            raw = cache["unembed.hook_out"][0]
            state.logit_scale = torch.where(raw != 0, logits[0] / raw.where(raw != 0, 1.0), 1.0)
        for name in self._frozen_names:
            state.frozen[name] = cache[name]
        for layer in d.layers:
            state.x_in[layer] = x = cache[d.read_hook(layer)][0]
            state.acts[layer] = d.encode(layer, x)
        for layer in range(self.n_layers):
            mlp_out = cache[hook_name("mlp_out", layer)][0]
            if layer in state.x_in:
                mlp_out = mlp_out - d.reconstruct(layer, state.acts) - d.skip(layer, state.x_in[layer])
            state.errors[layer] = mlp_out
        return state

    # -- frozen (linearised) forward -------------------------------------------------

    def _frozen_run(
        self,
        state: CleanState,
        batch: int,
        embed: Tensor,
        fixed_write: Callable[[int], Tensor],
        logits: bool,
    ) -> tuple[Tensor, dict[int, Tensor], dict[int, Tensor], Tensor | None]:
        """The frozen forward pass: ``(final, reads, z, logits or None)``.

        ``fixed_write(L)`` is what layer L's MLP writes besides its skip path.
        ``final`` is the residual after ``ln_final``; ``logits`` (with the frozen soft-cap
        ratio) are computed only when asked for, since attribution never needs them.
        """
        model, d = self.model, self.dictionary
        reads: dict[int, Tensor] = {}
        z: dict[int, Tensor] = {}

        def frozen(value):
            def hook(x, hook):
                return value.expand(batch, *value.shape[1:])

            return hook

        def read_in(layer):
            def hook(x, hook):
                reads[layer] = x
                return x

            return hook

        def write_out(layer):
            def hook(out, hook):
                if layer not in reads:
                    return fixed_write(layer)
                return fixed_write(layer) + d.skip(layer, reads[layer])

            return hook

        def read_z(layer):
            def hook(x, hook):
                z[layer] = x
                return x

            return hook

        hooks = [(name, frozen(state.frozen[name])) for name in self._frozen_names]
        hooks.append((hook_name("resid_pre", 0), lambda x, hook: embed))
        for layer in d.layers:
            hooks.append((d.read_hook(layer), read_in(layer)))
        for layer in range(self.n_layers):
            hooks.append((hook_name("mlp_out", layer), write_out(layer)))
            hooks.append((hook_name("z", layer), read_z(layer)))
        tokens = state.tokens[None].expand(batch, -1)
        with self._hooks(hooks):
            resid = model(tokens, stop_at_layer=self.n_layers)
            final = model.ln_final(resid) if model.cfg.normalization_type is not None else resid
            out = model.unembed(final) if logits else None
        if out is not None and state.logit_scale is not None:
            out = out * state.logit_scale
        return final, reads, z, out

    def linearised(self, state: CleanState) -> Linearised:
        """The frozen model's autograd graph on the prompt (see :class:`Linearised`)."""
        def leaf(x):
            return x[None].clone().requires_grad_(True)

        embed = leaf(state.embed)
        writes = {layer: leaf(self._fixed_write(layer, state.acts, state.errors)) for layer in range(self.n_layers)}
        with torch.enable_grad():
            final, reads, z, _ = self._frozen_run(state, 1, embed, writes.__getitem__, logits=False)
        return Linearised(embed=embed, writes=writes, reads=reads, final=final, z=z)

    def frozen_forward(
        self,
        state: CleanState,
        embed: Float[Tensor, "batch pos d_model"],
        acts: dict[int, Tensor],
        errors: dict[int, Tensor],
    ) -> tuple[Float[Tensor, "batch pos d_vocab"], dict[int, Tensor], dict[int, Tensor]]:
        """Forward with frozen norms, attention and soft-cap, and given node values.

        ``embed`` replaces ``blocks.0.hook_resid_pre``; ``acts[L]`` ([batch, pos, d_sae]) and
        ``errors[L]`` ([batch, pos, d_model]) make up layer L's MLP output. Returns the logits,
        each transcoder layer's feature pre-activations and each layer's per-head output
        ``hook_z`` ([batch, pos, head, d_head]), all still attached to the autograd graph.
        """
        def fixed_write(layer):
            return self._fixed_write(layer, acts, errors)

        _, reads, z, logits = self._frozen_run(state, embed.shape[0], embed, fixed_write, logits=True)
        pre = {layer: self.dictionary.pre_activation(layer, x) for layer, x in reads.items()}
        return logits, pre, z

    def _fixed_write(self, layer: int, acts: dict[int, Tensor], errors: dict[int, Tensor]) -> Tensor:
        """Layer ``layer``'s MLP write besides its skip path: the features' reconstruction there
        (from every layer writing to it) plus the error term, or the error term alone."""
        if layer not in self.dictionary.layers:
            return errors[layer]
        return self.dictionary.reconstruct(layer, acts) + errors[layer]

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


def ablate_features(
    model,
    transcoders: Mapping[int, object] | CrossLayerTranscoder | Dictionary,
    tokens: Int[Tensor, "batch pos"],
    features: Sequence[tuple[int, int, int]],
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits of the *unfrozen* model with transcoder features removed.

    ``features`` are ``(layer, position, feature)``; each one's decoder write
    ``act * W_dec[feature]`` is subtracted from the MLP output at that position of each layer
    it writes to (its own layer; with a cross-layer transcoder, every later CLT layer too), its
    activation read live from the ablated run. The error terms and everything else stay live, so
    the ablation propagates through attention and later layers as it would in the real model.
    """
    d = as_dictionary(model, transcoders)
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for layer, pos, feat in features:
        if layer not in d.layers:
            raise KeyError(f"no transcoder at layer {layer}; layers with one: {d.layers}")
        by_layer.setdefault(layer, []).append((pos, feat))
    acts: dict[int, Tensor] = {}

    def read_in(layer):
        def hook(x, hook):
            acts[layer] = d.encode(layer, x)  # [batch, pos, d_sae]
            return x

        return hook

    def write_out(out_layer):
        def hook(out, hook):
            delta = torch.zeros_like(out)
            for layer, entries in by_layer.items():
                if out_layer not in d.output_layers(layer):
                    continue
                pos = torch.tensor([p for p, _ in entries])
                feat = torch.tensor([f for _, f in entries])
                rows = d.decoder_rows(layer, feat)[:, d.output_layers(layer).index(out_layer)]  # [n, d_model]
                a = acts[layer][:, pos, feat]  # [batch, n]
                for i in range(len(pos)):
                    delta[:, pos[i]] += a[:, i, None] * rows[i]
            return out - delta

        return hook

    hooks = [(d.read_hook(layer), read_in(layer)) for layer in by_layer]
    outputs = sorted({out for layer in by_layer for out in d.output_layers(layer)})
    hooks += [(hook_name("mlp_out", layer), write_out(layer)) for layer in outputs]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        return model(tokens)
