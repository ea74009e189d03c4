"""Cross-layer transcoders (Ameisen et al. 2025, "Circuit Tracing"): one sparse dictionary over several MLPs.

A CLT over model layers ``layers[0] < ... < layers[L-1]`` has ``d_sae`` latents per layer.
Latent ``f`` of layer index ``i`` reads the residual stream at ``layers[i]``
(``blocks.l.hook_resid_mid`` by default, or the normalised MLP input ``blocks.l.ln2.hook_normalized``)
and writes, with its own decoder vector per output, to the MLP output of that layer and of
every later one (``blocks.m.hook_mlp_out``)::

    x_n[i] = (x[i] - in_mean[i]) / in_scale[i]
    a[i]   = act(x_n[i] @ W_enc[i] + b_enc[i])                                  [d_sae]
    y_n[m] = sum over i <= m of a[i] @ W_dec[i -> m]  +  b_dec[m]  (+ x_n[m] @ W_skip[m].T)
    y[m]   = y_n[m] * out_scale[m] + out_mean[m]

Weights: ``W_enc [L, d_in, d_sae]`` (each layer's encoder in the per-layer transcoders'
``[d_in, d_sae]`` layout), ``b_enc [L, d_sae]``, ``W_dec`` the pair table of
:mod:`interp.kernels.cross_layer` (``[d_sae * L * (L + 1) / 2, d_out]``, output-major: the
decoder into output ``m`` is one contiguous block), ``b_dec [L, d_out]``, optional
``W_skip [L, d_out, d_in]`` (same-layer skip, SAELens' orientation), ``threshold [L, d_sae]``
for JumpReLU. Latent ids over the whole CLT are ``i * d_sae + f``.

Activations (``cfg.activation``): ``relu``; ``jumprelu`` (``z * (z > threshold)``); ``topk``
with ``cfg.topk_over = "layer"`` (the top ``k`` of each layer: causal, each layer's latents
depend on its own input only) or ``"all"`` (the top ``k`` over all layers' latents, a budget
the layers share). A top-k over all layers needs every layer's input at once, which a model
with its MLPs replaced does not have when it reaches layer ``i``; so that selection is the
*training* rule, and every inference method (:meth:`encode`, :meth:`encode_layer`,
:meth:`forward`, the replacement model) uses the rule it approximates, a JumpReLU with one
threshold, ``topk_threshold``: the running mean, over training, of each row's ``k``-th largest
pre-activation (Bussmann et al. 2024 do the same for BatchTopK). That keeps the CLT causal, and
it is exactly what circuit-tracer's ``jump_relu`` CLT computes.

For attribution (the replacement model and graph edges) on a :meth:`folded` CLT, whose
weights act on raw activations:

- :meth:`layer_pre_activation` ``(x, layer)``: the encoder pre-activations of one layer's
  latents, linear (affine) in that layer's read hook; :meth:`encode_layer` applies the activation;
- :meth:`decoder_vectors` ``(layer, features)``: ``[n, L - i, d_out]``, a latent's decoder
  row into each output layer from its own on (:meth:`output_layers`); :meth:`total_write` sums
  them over the output layers; :meth:`decode_output` is one output layer's reconstruction;
- :meth:`skip_layer` (linear in the read hook) and ``b_dec[i]``: the parts of layer ``i``'s
  output that are not latents.

``W_dec`` may live on disk instead (:meth:`attach_lazy_decoder`, what
:func:`interp.transcoders.clt_format.load_clt` does with ``lazy_decoder=True``): then only the
rows of active latents are read, per call, from circuit-tracer's source-major files.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from interp.errors import ConfigError
from interp.hooks import MlpInputSite
from interp.kernels import cross_layer_decode, decoder_block, n_pairs, pair_offset, sparse_decode
from interp.transcoders.base import TranscoderModule
from interp.transcoders.data import Wiring, check_clt_input, cross_layer_wiring

if TYPE_CHECKING:
    from interp.transcoders.architectures.clt import CLTConfig
    from interp.transcoders.clt_format import LazyDecoder


class CrossLayerTranscoder(TranscoderModule):
    """A cross-layer transcoder: weights, normalisation, inference; see the module docstring.

    The registered architecture (:mod:`interp.transcoders.architectures.clt`) adds the loss.
    """

    cross_layer = True
    cfg: CLTConfig

    def __init__(self, cfg: CLTConfig, seed: int | None = None, *, lazy: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        L, d_in, d_out, F = cfg.n_layers, cfg.d_in, cfg.d_out, cfg.d_sae
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if lazy:  # weights come from files; the decoder stays there (never allocated)
            self.W_enc = nn.Parameter(torch.zeros(L, d_in, F))
        else:
            w_enc, pairs = _initial_weights(cfg, generator)
            self.W_enc = nn.Parameter(w_enc)
            self.W_dec = nn.Parameter(pairs)
        self.b_enc = nn.Parameter(torch.zeros(L, F))
        self._lazy: LazyDecoder | None = None
        self.b_dec = nn.Parameter(torch.zeros(L, d_out))
        if cfg.skip_connection:
            self.W_skip = nn.Parameter(torch.zeros(L, d_out, d_in))
        if cfg.activation == "jumprelu":
            self.threshold = nn.Parameter(torch.full((L, F), float(cfg.initial_threshold)))
        self.register_buffer("topk_threshold", torch.zeros(()))
        self.register_buffer("in_mean", torch.zeros(L, d_in))
        self.register_buffer("in_scale", torch.ones(L, 1))
        self.register_buffer("out_mean", torch.zeros(L, d_out))
        self.register_buffer("out_scale", torch.ones(L, 1))
        self.layers: list[int] = list(range(L))
        """The model layers, ascending (set by :meth:`wire`; 0..L-1 until then)."""

    # --- wiring ----------------------------------------------------------------------

    @classmethod
    def wirings(cls, layers: list[int], settings: dict, mlp_input: MlpInputSite = "ln2_normalized") -> list[Wiring]:
        """One module over all ``layers``, reading ``settings['input_site']`` (default ``resid_mid``;
        ``ln2_normalized`` is refused on post-norm models, whose MLPs read ``mlp_input`` = ``resid_mid``)."""
        site = settings.get("input_site") or "resid_mid"
        check_clt_input(site, mlp_input)
        return [cross_layer_wiring(layers, site)]

    def wire(self, wiring: Wiring) -> None:
        if len(wiring.layers) != self.cfg.n_layers or wiring != cross_layer_wiring(wiring.layers, self.cfg.input_site):
            raise ConfigError(f"a {self.cfg.n_layers}-layer CLT reading {self.cfg.input_site} cannot sit at {wiring}")
        self.layers = list(wiring.layers)

    @property
    def wiring(self) -> Wiring:
        return cross_layer_wiring(self.layers, self.cfg.input_site)

    @property
    def hook_names_in(self) -> list[str]:
        """The hook read at each layer."""
        return list(self.wiring.hooks_in)

    @property
    def hook_names_out(self) -> list[str]:
        """The hook predicted at each layer (``hook_mlp_out``)."""
        return list(self.wiring.hooks_out)

    @property
    def n_layers(self) -> int:
        return self.cfg.n_layers

    @property
    def n_latents(self) -> int:
        return self.cfg.n_layers * self.cfg.d_sae

    def index(self, layer: int) -> int:
        """The position of model layer ``layer`` among the CLT's layers."""
        if layer not in self.layers:
            raise ConfigError(f"layer {layer} is not one of this CLT's layers {self.layers}")
        return self.layers.index(layer)

    def output_layers(self, layer: int) -> list[int]:
        """The model layers a latent of ``layer`` writes to: ``layer`` and every later CLT layer."""
        return self.layers[self.index(layer) :]

    def _empty_like(self) -> CrossLayerTranscoder:
        from interp.transcoders import registry

        arch = registry.get(self.arch)
        copy = arch.transcoder(arch.config(**{f.name: getattr(self.cfg, f.name) for f in fields(self.cfg)}), lazy=self.lazy)
        copy.layers = list(self.layers)
        copy.model_fingerprint = self.model_fingerprint
        if self._lazy is not None:
            copy.attach_lazy_decoder(self._lazy)
        return copy

    # --- the decoder, in memory or on disk -------------------------------------------

    @property
    def lazy(self) -> bool:
        """True when the decoder is read from disk on demand (no ``W_dec`` parameter)."""
        return self._lazy is not None or not hasattr(self, "W_dec")

    def attach_lazy_decoder(self, reader: LazyDecoder) -> None:
        """Read decoder rows from ``reader`` from now on and drop the in-memory ``W_dec``."""
        if reader.shape != (self.n_layers, self.d_sae, self.d_out):
            raise ConfigError(f"the decoder files hold {reader.shape}, not (n_layers, d_sae, d_out) of this CLT")
        if "W_dec" in self._parameters:
            del self._parameters["W_dec"]
        self._lazy = reader

    def decoder_vectors(self, layer: int, features: Int[Tensor, " n"] | None = None) -> Float[Tensor, "n n_out d_out"]:
        """The decoder rows of ``layer``'s latents ``features`` (all when None) into each output
        layer from ``layer`` on: ``[n, L - i, d_out]``, in the normalised output space of each
        layer (raw space on a folded CLT)."""
        i, F = self.index(layer), self.d_sae
        if self._lazy is not None:
            return self._lazy.rows(i, features).to(self.b_enc.device, self.b_enc.dtype)
        pick = slice(None) if features is None else features.to(self.W_dec.device)
        return torch.stack([decoder_block(self.W_dec, m, F)[i * F : (i + 1) * F][pick] for m in range(i, self.n_layers)], 1)

    def total_write(self, layer: int, features: Int[Tensor, " n"] | None = None) -> Float[Tensor, "n d_out"]:
        """What each latent writes in all, summed over its output layers (raw space on a folded
        CLT): the direction a latent adds to the residual stream by the CLT's last layer."""
        return self.decoder_vectors(layer, features).sum(1)

    def decoder_norms(self) -> Float[Tensor, "n_layers d_sae"]:
        """Each latent's decoder norm: the norm of its decoder rows into all its output layers,
        concatenated (the norm the sparsity penalty of Ameisen et al. weights activations by)."""
        if self._lazy is not None:
            return torch.stack([self.decoder_vectors(layer).flatten(1).norm(dim=1) for layer in self.layers])
        sq = self.W_dec.pow(2).sum(-1)
        total = sq.new_zeros(self.n_layers, self.d_sae)
        for m in range(self.n_layers):
            total[: m + 1] += decoder_block(sq[:, None], m, self.d_sae).view(m + 1, self.d_sae)
        return total.sqrt()

    # --- normalisation ---------------------------------------------------------------

    def _fold(self, mu_in: Tensor, s_in: Tensor, mu_out: Tensor, s_out: Tensor) -> None:
        """Per layer (``mu [L, d]``, ``s [L, 1]``); each output's decoder block is scaled by its
        own output scale. The function and the pre-activations are unchanged."""
        if self._lazy is not None:
            raise ConfigError("a CLT whose decoder is read from disk is already folded; it cannot be re-normalised")
        w_enc = self.W_enc / s_in[:, :, None]
        self.b_enc.sub_(torch.einsum("ld,ldf->lf", mu_in, w_enc))
        self.W_enc.copy_(w_enc)
        for m in range(self.n_layers):
            decoder_block(self.W_dec, m, self.d_sae).mul_(s_out[m])
        b_dec = self.b_dec * s_out + mu_out
        if self.cfg.skip_connection:
            w_skip = self.W_skip * (s_out / s_in)[:, :, None]
            b_dec = b_dec - torch.einsum("li,loi->lo", mu_in, w_skip)
            self.W_skip.copy_(w_skip)
        self.b_dec.copy_(b_dec)

    # --- encoding ----------------------------------------------------------------------

    def pre_acts(self, x_n: Float[Tensor, "batch n_layers d_in"]) -> Float[Tensor, "batch n_layers d_sae"]:
        """Pre-activations of normalised inputs, every layer at once."""
        return torch.baddbmm(self.b_enc[:, None, :], x_n.transpose(0, 1), self.W_enc).transpose(0, 1)

    def activation(self, pre: Float[Tensor, "batch n_layers d_sae"]) -> Float[Tensor, "batch n_layers d_sae"]:
        """The inference activation (see the module docstring for TopK over all layers)."""
        return torch.stack([self._layer_activation(pre[:, i], i) for i in range(self.n_layers)], 1)

    def _layer_activation(self, pre: Float[Tensor, "batch d_sae"], i: int) -> Float[Tensor, "batch d_sae"]:
        cfg = self.cfg
        if cfg.activation == "relu":
            return torch.relu(pre)
        if cfg.activation == "jumprelu":
            return pre * (pre > self.threshold[i])
        if cfg.topk_over == "all":
            return pre * (pre > self.topk_threshold.clamp_min(0))
        from interp.kernels import topk_activation

        values, indices = topk_activation(pre, min(cfg.k, self.d_sae))
        return torch.zeros_like(pre).scatter_(-1, indices, values)

    def pre_activation(self, x: Float[Tensor, "*batch n_layers d_in"]) -> Float[Tensor, "*batch n_layers d_sae"]:
        """Every layer's pre-activations of raw inputs (linear in ``x``)."""
        lead = x.shape[:-2]
        flat = x.reshape(-1, self.n_layers, self.d_in)
        return self.pre_acts(self.normalise_in(flat)).reshape(*lead, self.n_layers, self.d_sae)

    def encode(self, x: Float[Tensor, "*batch n_layers d_in"]) -> Float[Tensor, "*batch n_layers d_sae"]:
        """Latent activations of raw inputs, every layer at once (any leading shape)."""
        lead = x.shape[:-2]
        acts = self.activation(self.pre_acts(self.normalise_in(x.reshape(-1, self.n_layers, self.d_in))))
        return acts.reshape(*lead, self.n_layers, self.d_sae)

    def layer_pre_activation(self, x: Float[Tensor, "*batch d_in"], layer: int) -> Float[Tensor, "*batch d_sae"]:
        """The pre-activations of ``layer``'s latents from that layer's read hook, affine in ``x``
        (what an attribution edge into one of these latents targets)."""
        i = self.index(layer)
        return ((x - self.in_mean[i]) / self.in_scale[i]) @ self.W_enc[i] + self.b_enc[i]

    def encode_layer(self, x: Float[Tensor, "*batch d_in"], layer: int) -> Float[Tensor, "*batch d_sae"]:
        """The activations of ``layer``'s latents from that layer's read hook alone."""
        lead = x.shape[:-1]
        pre = self.layer_pre_activation(x.reshape(-1, self.d_in), layer)
        return self._layer_activation(pre, self.index(layer)).reshape(*lead, self.d_sae)

    # --- decoding ----------------------------------------------------------------------

    def decode(self, acts: Float[Tensor, "*batch n_layers d_sae"]) -> Float[Tensor, "*batch n_layers d_out"]:
        """What the latents write to every output layer, with ``b_dec`` of the folded CLT, in raw
        space. The skip path is not included: add :meth:`skip`. As for per-layer transcoders,
        both are the same before and after folding (the skip path's constant term belongs to
        ``b_dec``)."""
        lead = acts.shape[:-2]
        flat = acts.reshape(-1, self.n_layers, self.d_sae)
        if self._lazy is not None:
            y_n = torch.stack([self._lazy_output(flat, m) for m in range(self.n_layers)], 1)
        else:
            values, indices = sparse_code(flat.reshape(flat.shape[0], -1))
            y_n = cross_layer_decode(values, indices, self.W_dec, self.n_layers)
        y = self.denormalise_out(y_n + self.b_dec) - self._skip_constant()
        return y.reshape(*lead, self.n_layers, self.d_out)

    def decode_output(self, acts: Float[Tensor, "batch sources d_sae"], layer: int) -> Float[Tensor, "batch d_out"]:
        """Output ``layer``'s reconstruction (with ``b_dec``, raw space, no skip) from the
        activations of the CLT's layers up to and including it, ``[batch, i + 1, d_sae]``."""
        m = self.index(layer)
        if acts.shape[1] != m + 1:
            raise ConfigError(f"output layer {layer} reads the latents of {m + 1} layers, got {acts.shape[1]}")
        if self._lazy is not None:
            y_n = self._lazy_output(acts, m)
        else:
            values, indices = sparse_code(acts.reshape(acts.shape[0], -1))
            y_n = sparse_decode(values, indices, decoder_block(self.W_dec, m, self.d_sae))
        return (y_n + self.b_dec[m]) * self.out_scale[m] + self.out_mean[m] - self._skip_constant()[m]

    def _lazy_output(self, acts: Float[Tensor, "batch sources d_sae"], m: int) -> Float[Tensor, "batch d_out"]:
        """Output ``m`` (normalised, no bias) reading only the active latents' rows from disk."""
        out = acts.new_zeros(acts.shape[0], self.d_out)
        for i in range(m + 1):
            active = (acts[:, i] != 0).any(0).nonzero().flatten()
            if len(active):
                rows = self.decoder_vectors(self.layers[i], active)[:, m - i]
                out = out + acts[:, i, active] @ rows
        return out

    def _skip_constant(self) -> Float[Tensor, "n_layers d_out"]:
        """The constant term of the skip path (from the input means), which folding puts in ``b_dec``."""
        if not self.cfg.skip_connection:
            return self.b_dec.new_zeros(self.n_layers, self.d_out)
        return torch.einsum("li,loi->lo", self.in_mean / self.in_scale, self.W_skip) * self.out_scale

    def skip(self, x: Float[Tensor, "*batch n_layers d_in"]) -> Float[Tensor, "*batch n_layers d_out"]:
        """The same-layer skip path of the folded CLT in raw space, linear in ``x`` (zeros without one)."""
        if not self.cfg.skip_connection:
            return x.new_zeros(*x.shape[:-1], self.d_out)
        return torch.einsum("...li,loi->...lo", x / self.in_scale, self.W_skip) * self.out_scale

    def skip_layer(self, x: Float[Tensor, "*batch d_in"], layer: int) -> Float[Tensor, "*batch d_out"]:
        """Layer ``layer``'s skip path from its read hook, raw space, linear in ``x`` (zeros without one)."""
        if not self.cfg.skip_connection:
            return x.new_zeros(*x.shape[:-1], self.d_out)
        i = self.index(layer)
        return ((x / self.in_scale[i]) @ self.W_skip[i].T) * self.out_scale[i]

    def forward(self, x: Float[Tensor, "*batch n_layers d_in"]) -> Float[Tensor, "*batch n_layers d_out"]:
        """Every layer's predicted MLP output from every layer's raw input (clean inputs)."""
        return self.decode(self.encode(x)) + self.skip(x)

    def forward_with_activations(
        self, x: Float[Tensor, "batch n_layers d_in"]
    ) -> tuple[Float[Tensor, "batch n_layers d_out"], Float[Tensor, "batch n_layers d_sae"]]:
        """``(outputs, latent activations)`` for raw inputs."""
        acts = self.encode(x)
        return self.decode(acts) + self.skip(x), acts

    # --- building one by hand -------------------------------------------------------------

    @classmethod
    def from_weights(
        cls,
        W_enc: Float[Tensor, "n_layers d_in d_sae"],
        b_enc: Float[Tensor, "n_layers d_sae"],
        W_dec: list[Tensor],
        b_dec: Float[Tensor, "n_layers d_out"] | None = None,
        *,
        layers: list[int] | None = None,
        W_skip: Float[Tensor, "n_layers d_out d_in"] | None = None,
        threshold: Float[Tensor, "n_layers d_sae"] | None = None,
        **settings,
    ) -> CrossLayerTranscoder:
        """A CLT with the given weights (raw space), e.g. one planted by hand in a test.

        ``W_dec[i]`` is layer ``i``'s decoder, ``[d_sae, L - i, d_out]`` (circuit-tracer's
        source-major layout); ``settings`` go to the config (``input_site``, ``k``, ...). The
        activation is ReLU unless ``threshold`` (JumpReLU) or ``activation`` says otherwise.
        """
        from interp.transcoders import registry

        arch = registry.get("clt")
        L, d_in, F = W_enc.shape
        d_out = W_dec[0].shape[-1]
        if W_skip is not None:
            settings["skip_connection"] = True
        settings.setdefault("activation", "jumprelu" if threshold is not None else "relu")
        clt = arch.transcoder(arch.config(d_in=d_in, d_out=d_out, d_sae=F, n_layers=L, **settings))
        if layers is not None:
            clt.wire(cross_layer_wiring(layers, clt.cfg.input_site))
        with torch.no_grad():
            clt.W_enc.copy_(W_enc)
            clt.b_enc.copy_(b_enc)
            clt.W_dec.copy_(pairs_from_sources(list(W_dec)))
            clt.b_dec.copy_(b_dec if b_dec is not None else torch.zeros(L, d_out))
            if W_skip is not None:
                clt.W_skip.copy_(W_skip)
            if threshold is not None:
                clt.threshold.copy_(threshold)
        return clt.eval()


def _initial_weights(cfg: CLTConfig, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """``(W_enc, W_dec)`` at initialisation. Each latent's decoders together (all its output
    layers) start as a random direction of norm 1 (TopK) or 0.1, shared equally over the
    outputs; its encoder starts as the transpose of its own-layer decoder (Conerly et al. 2024),
    at the same norm (a random direction when ``d_in != d_out``)."""
    L, d_in, d_out, F = cfg.n_layers, cfg.d_in, cfg.d_out, cfg.d_sae
    norm = 1.0 if cfg.activation == "topk" else 0.1
    w_enc = torch.empty(L, d_in, F)
    pairs = torch.randn(n_pairs(L, F), d_out, generator=generator)
    for i in range(L):
        blocks = [slice(pair_offset(m, F) + i * F, pair_offset(m, F) + (i + 1) * F) for m in range(i, L)]
        rows = torch.stack([pairs[b] for b in blocks], 1)
        rows = norm * rows / rows.flatten(1).norm(dim=1)[:, None, None]
        for j, b in enumerate(blocks):
            pairs[b] = rows[:, j]
        own = rows[:, 0] if d_in == d_out else torch.randn(F, d_in, generator=generator)
        w_enc[i] = (norm * own / own.norm(dim=1, keepdim=True).clamp_min(1e-12)).T
    return w_enc, pairs


def sparse_code(acts: Float[Tensor, "batch n"]) -> tuple[Float[Tensor, "batch k"], Int[Tensor, "batch k"]]:
    """``(values, indices)`` of each row's nonzero entries, padded with zeros to the busiest
    row's count (at least one), for :func:`interp.kernels.sparse_decode`; differentiable in ``acts``."""
    width = max(1, int((acts != 0).sum(-1).max())) if acts.numel() else 1
    _, indices = acts.abs().topk(min(width, acts.shape[1]), dim=-1)
    return acts.gather(-1, indices), indices


def pairs_from_sources(per_source: list[Tensor]) -> Tensor:
    """The pair table from each layer's decoder ``[d_sae, L - i, d_out]`` (source-major)."""
    L = len(per_source)
    F, d_out = per_source[0].shape[0], per_source[0].shape[-1]
    for i, block in enumerate(per_source):
        if tuple(block.shape) != (F, L - i, d_out):
            raise ConfigError(f"decoder {i} must be [d_sae, n_layers - {i}, d_out] = {[F, L - i, d_out]}, got {list(block.shape)}")
    return torch.cat([torch.cat([per_source[i][:, m - i] for i in range(m + 1)]) for m in range(L)])
