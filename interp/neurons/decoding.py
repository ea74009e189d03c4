"""Decoding MLP neurons through the unembedding: what each neuron reads and writes.

A neuron's *write vector* (its row of ``W_out``) is added to the residual stream, scaled
by its activation; projected through the final LayerNorm and the unembedding it says
which next tokens the neuron promotes (top) and suppresses (bottom) (Geva et al. 2022,
"Transformer Feed-Forward Layers Build Predictions by Promoting Concepts in the
Vocabulary Space"; "Decoding specialised feature neurons in LLMs with the final
projection layer", 2025). Its *read vector* (its column of ``W_in``) is the residual
direction that drives it; projecting it the same way names the tokens it responds to
when they are what the residual stream predicts.

The final LayerNorm is handled explicitly. ``LN(x) = (x - mean(x)) / std(x) * w + b``:

- the centring is linear, so it is applied to the neuron's vector (a no-op when
  transformer-lens' ``center_writing_weights`` already made ``W_out`` mean-zero);
- the weight ``w`` is linear, so it is folded into ``W_U`` (transformer-lens'
  ``fold_ln`` has already done this for processed models, whose final norm is ``LNPre``);
- the division by ``std(x)`` depends on the whole residual stream, not on the neuron. It
  is one positive number per position, so it rescales every token's logit alike and
  cannot change a ranking: it is skipped;
- the bias ``b`` (folded into ``b_U`` by transformer-lens) and ``b_U`` itself add the same
  per-token offset whatever the neuron, so they rank tokens by their prior, not by the
  neuron, and are left out.

transformer-lens' ``center_unembed`` subtracts each row's mean over the vocabulary from
``W_U``; that shifts every token's score for one neuron by the same constant, so rankings
are unchanged. Scores are therefore "direct logit contributions per unit activation, up
to one positive scale and one constant".

Architectures. In a gated MLP (Llama, Gemma, Qwen, Mistral) a neuron's activation
(``hook_post``) is the gated product ``act(x @ W_gate[:, n]) * (x @ W_in[:, n])``, and its
write vector is still its row of ``W_out``; it reads two residual directions, so
``side="in"`` is refused there in one sentence (:data:`GATED_IN`). Gemma 2 normalises the
MLP's output (``ln2_post``) before adding it to the residual stream: like the final norm's,
that norm's division is one positive number per position, shared by every neuron of the
layer, and its weight is linear, so the write vector is the ``W_out`` row times that weight.
Gemma 2's final logit soft-cap ``c * tanh(logit / c)`` is increasing, so it changes no
ranking. Parallel attention and MLP (Pythia) change nothing here.

The work is chunked over neurons and over the vocabulary so memory stays bounded
(``neuron_chunk * vocab_chunk`` scores at a time). ``method="certified"`` (the default)
finds candidates with a bfloat16 matmul, rescores them in float32 and proves, with a
rounding-error bound, that no other token can enter the top or bottom ``k``; rows it
cannot prove are recomputed in float32, so the answer equals ``method="exact"``.

:func:`run` is what ``interp neurons decode`` runs (decode, then sort the neurons into
semantic classes); a notebook calls the same function with a :class:`DecodeConfig`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.config import Layers, check_positive, parse_layers
from interp.errors import ConfigError
from interp.io import atomic_write, atomic_write_json
from interp.neurons.classes import SemanticClasses, classify, semantic_classes
from interp.neurons.topk import Method, topk_scores
from interp.reports.tables import layer_span, token_key
from interp.results import Result

logger = logging.getLogger(__name__)

Side = Literal["out", "in"]

# --- the vectors and the unembedding ---------------------------------------------------


def unembedding(model) -> tuple[Float[Tensor, "d_model d_vocab"], bool]:
    """The unembedding with the final norm's weight folded in, and whether to centre.

    Returns ``(W, centre)``: ``W = diag(w_ln_final) @ W_U`` (``W_U`` itself when the
    final norm has no weight, as after ``fold_ln``) and ``centre`` true when the final
    norm subtracts the mean (LayerNorm), false for RMSNorm or no norm.
    """
    norm = model.cfg.normalization_type
    W = model.W_U.detach()
    if norm in ("LN", "RMS"):
        W = model.ln_final.w.detach()[:, None] * W
    if norm not in (None, "LN", "LNPre", "RMS", "RMSPre"):
        raise ConfigError(f"unsupported final normalization {norm!r}; expected LN, LNPre, RMS, RMSPre or None")
    return W, norm in ("LN", "LNPre")


GATED_IN = (
    "side='in' is undefined for a gated MLP: a neuron's activation act(x @ W_gate[:, n]) * (x @ W_in[:, n]) reads "
    "two residual directions, not one; decode side='out' (what each neuron writes) instead"
)
"""Why read vectors are not decoded for gated MLPs (Llama, Gemma, Qwen, Mistral)."""


def neuron_vectors(model, layer: int, side: Side = "out") -> Float[Tensor, "d_mlp d_model"]:
    """Neuron vectors of ``layer`` in residual-stream space, one row per neuron.

    ``side="out"``: what each neuron writes per unit of its activation (``hook_post``; in a
    gated MLP the gated product): its row of ``W_out``, through the linear part of a norm on
    the MLP's output where the model has one (Gemma 2's ``ln2_post``: times its weight; see
    :func:`interp.hooks.write_directions`). ``side="in"``: columns of ``W_in`` times the
    weight of the MLP's own norm when it is not folded (the residual direction each neuron
    reads); undefined for gated MLPs (:data:`GATED_IN`).
    """
    from interp.hooks import input_norm, write_directions

    if side == "out":
        return write_directions(model, layer, "mlp", model.blocks[layer].mlp.W_out.detach())
    if side == "in":
        if model.cfg.gated_mlp:
            raise ConfigError(GATED_IN)
        W_in = model.blocks[layer].mlp.W_in.detach()
        norm = input_norm(model, layer, "mlp")
        if norm is not None and getattr(norm, "w", None) is not None:
            W_in = norm.w.detach()[:, None] * W_in
        return W_in.T
    raise ConfigError(f"side must be 'out' (W_out rows) or 'in' (W_in columns), got {side!r}")


# --- the table -------------------------------------------------------------------------


@dataclass
class NeuronTable(Result):
    """Top and bottom tokens of every decoded neuron: one row per (layer, neuron).

    Its tensors make JSON large, so :meth:`save` writes one ``.safetensors`` file and
    :meth:`write` adds ``neurons.json`` (one record per neuron, for reading elsewhere)
    and ``neurons.html`` (the searchable page).
    """

    stem: ClassVar[str] = "neurons"
    title: ClassVar[str] = "Decoded neurons"

    side: str
    """'out' (write vectors, rows of W_out) or 'in' (read vectors, columns of W_in)."""
    k: int
    """Tokens kept on each side."""
    model_name: str
    vocab: list[str]
    """Token string of every token id of the model."""
    layer: Int[Tensor, " n"]
    neuron: Int[Tensor, " n"]
    top_ids: Int[Tensor, "n k"]
    top_values: Float[Tensor, "n k"]
    bottom_ids: Int[Tensor, "n k"]
    bottom_values: Float[Tensor, "n k"]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.layer)

    def _headline(self) -> tuple[str, list[str]]:
        head = (f"{len(self):,} neurons of {layer_span(self.layer.tolist())}, side {self.side!r}, k {self.k}, "
                f"model {self.model_name!r}")
        lines = []
        if len(self):
            best = int(self.top_values[:, 0].argmax())
            lines.append(f"strongest top-1: L{int(self.layer[best])}N{int(self.neuron[best])} "
                         f"{self.top_tokens(best, 3)} ({float(self.top_values[best, 0]):.3f})")
        return head, lines

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        return plain_repr("NeuronTable", *self._headline())

    def summary(self) -> str:
        """How many neurons of which layers, and the strongest neuron's top tokens."""
        head, lines = self._headline()
        return "\n".join([f"decoded {head}", *(f"  {line}" for line in lines)])

    def top_tokens(self, row: int, n: int | None = None) -> list[str]:
        return [self.vocab[i] for i in self.top_ids[row, :n].tolist()]

    def bottom_tokens(self, row: int, n: int | None = None) -> list[str]:
        return [self.vocab[i] for i in self.bottom_ids[row, :n].tolist()]

    def row_of(self, layer: int, neuron: int) -> int:
        hits = ((self.layer == layer) & (self.neuron == neuron)).nonzero().flatten()
        if not len(hits):
            raise KeyError(f"neuron {neuron} of layer {layer} is not in this table (layers {sorted(set(self.layer.tolist()))})")
        return int(hits[0])

    def select(self, rows: Sequence[int] | Tensor) -> NeuronTable:
        """A table of the given rows, in that order."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return NeuronTable(
            self.side, self.k, self.model_name, self.vocab, self.layer[rows], self.neuron[rows],
            self.top_ids[rows], self.top_values[rows], self.bottom_ids[rows], self.bottom_values[rows], dict(self.meta),
        )

    def search(self, query: str | Sequence[str], within: int | None = None, where: Literal["top", "bottom"] = "top") -> NeuronTable:
        """Neurons whose top (or bottom) tokens contain any of ``query``.

        ``query`` is a token string or word, or several; matching ignores case, spaces
        and the "Ġ"/"▁" word markers. ``within`` looks only at the first that many
        tokens. Rows come back ordered by the best rank of a match, then by score.
        """
        words = [query] if isinstance(query, str) else list(query)
        wanted = {token_key(w) for w in words}
        if not wanted or "" in wanted:
            raise ConfigError("search needs at least one non-empty token or word")
        hit_ids = torch.tensor([i for i, t in enumerate(self.vocab) if token_key(t) in wanted], dtype=torch.long)
        ids = (self.top_ids if where == "top" else self.bottom_ids)[:, :within]
        values = (self.top_values if where == "top" else self.bottom_values)[:, :within]
        match = torch.isin(ids, hit_ids)
        rows = match.any(dim=1).nonzero().flatten()
        if not len(rows):
            return self.select([])
        first = match[rows].float().argmax(dim=1)
        score = values[rows].gather(1, first[:, None]).squeeze(1).abs()
        order = sorted(range(len(rows)), key=lambda i: (int(first[i]), -float(score[i])))
        return self.select(rows[order])

    def records(self, n_tokens: int | None = None) -> Iterator[dict]:
        """One dict per row (layer, neuron, top/bottom tokens and scores), for a tidy DataFrame."""
        for row in range(len(self)):
            yield {
                "layer": int(self.layer[row]),
                "neuron": int(self.neuron[row]),
                "top": self.top_tokens(row, n_tokens),
                "top_scores": [round(v, 4) for v in self.top_values[row, :n_tokens].tolist()],
                "bottom": self.bottom_tokens(row, n_tokens),
                "bottom_scores": [round(v, 4) for v in self.bottom_values[row, :n_tokens].tolist()],
            }

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.records())

    def save(self, path: str | Path) -> Path:
        """Write the table to one ``.safetensors`` file (tensors, vocabulary and settings), atomically.

        (:meth:`to_dict` still gives the whole table as plain data, for a JSON of a result
        that holds a table.)
        """
        from safetensors.torch import save_file

        tensors = {name: getattr(self, name).contiguous() for name in _TENSORS}
        header = {"side": self.side, "k": str(self.k), "model_name": self.model_name,
                  "vocab": json.dumps(self.vocab), "meta": json.dumps(self.meta)}
        with atomic_write(path) as tmp:
            save_file(tensors, str(tmp), metadata=header)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> NeuronTable:
        """Read a table written by :meth:`save` (a directory means ``directory/neurons.safetensors``)."""
        from safetensors import SafetensorError, safe_open

        from interp.errors import StoreError

        path = Path(path)
        if path.is_dir():
            path = path / f"{cls.stem}.safetensors"
        try:
            with safe_open(str(path), framework="pt") as handle:
                header = handle.metadata()
                tensors = {name: handle.get_tensor(name) for name in _TENSORS}
        except (OSError, KeyError, ValueError, SafetensorError) as err:
            raise StoreError(f"{path} is not a neuron table written by NeuronTable.save: {err}") from err
        return cls(header["side"], int(header["k"]), header["model_name"], json.loads(header["vocab"]),
                   meta=json.loads(header.get("meta", "{}")), **tensors)

    def save_records(self, path: str | Path) -> Path:
        """Write :meth:`records` (every row, all ``k`` tokens) as one JSON list, atomically."""
        return atomic_write_json(path, list(self.records()), indent=None)

    def write_data(self, directory: Path) -> dict[str, Path]:
        """``neurons.safetensors`` (:meth:`save`) and ``neurons.json`` (:meth:`records`); :meth:`write`
        adds ``neurons.html``."""
        return {"table": self.save(directory / f"{self.stem}.safetensors"),
                "records": self.save_records(directory / f"{self.stem}.json")}

    def to_html(self, max_rows: int = 5000) -> str:
        from interp.neurons.html import decode_page

        return decode_page(self, max_rows=max_rows)

    def _repr_html_(self) -> str:
        from interp.neurons.html import neuron_table_summary

        return neuron_table_summary(self)


_TENSORS = ("layer", "neuron", "top_ids", "top_values", "bottom_ids", "bottom_values")


def _vocab(model) -> list[str]:
    tokenizer = model.tokenizer
    if tokenizer is None:
        return [f"<{i}>" for i in range(model.cfg.d_vocab)]
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    return [by_id.get(i, f"<{i}>") for i in range(model.cfg.d_vocab)]


def decode(
    model,
    layers: Layers | int | Sequence[int] = None,
    side: Side = "out",
    k: int = 10,
    method: Method = "certified",
    neuron_chunk: int = 1024,
    vocab_chunk: int = 65536,
) -> NeuronTable:
    """Decode every neuron of ``layers`` through the final norm and the unembedding.

    Args:
        model: a HookedTransformer (processed or not; see the module docstring).
        layers: a layer, several, a spec such as ``'0,2'`` or ``'0-3'``, or None for all
            (:func:`interp.config.parse_layers`).
        side: "out" decodes write vectors (rows of W_out), "in" read vectors (columns of W_in).
        k: tokens kept at each end.
        method: "certified" (bfloat16 candidates, float32 proof; same answer) or "exact".
        neuron_chunk: neurons scored at once (with ``vocab_chunk``, the block of scores held in memory).
        vocab_chunk: vocabulary entries scored at once.
    """
    layer_list = parse_layers(layers, model.cfg.n_layers)
    if model.cfg.d_mlp is None or model.cfg.attn_only:
        raise ConfigError("this model has no MLP neurons to decode")
    if neuron_chunk < 1 or vocab_chunk < 1:
        raise ConfigError("neuron_chunk and vocab_chunk must be positive")
    W, centre = unembedding(model)
    # One search over every layer's vectors, so the unembedding's bfloat16 copy, transpose
    # and norms are computed once, not once per layer.
    vectors = torch.cat([neuron_vectors(model, layer, side).float() for layer in layer_list])
    if centre:
        vectors = vectors - vectors.mean(dim=1, keepdim=True)
    cat = [part.cpu() for part in topk_scores(vectors, W, k, method, neuron_chunk, vocab_chunk)]
    d_mlp = model.cfg.d_mlp
    return NeuronTable(
        side=side,
        k=k,
        model_name=model.cfg.model_name,
        vocab=_vocab(model),
        layer=torch.tensor(layer_list).repeat_interleave(d_mlp),
        neuron=torch.arange(d_mlp).repeat(len(layer_list)),
        top_values=cat[0], top_ids=cat[1], bottom_values=cat[2], bottom_ids=cat[3],
        meta={"method": method, "final_norm": str(model.cfg.normalization_type), "centred": centre},
    )



# --- the decode command's analysis -----------------------------------------------------


@dataclass
class DecodeConfig:
    """Decode every MLP neuron through the final norm and the unembedding."""

    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2', 'EleutherAI/pythia-70m'), or a local checkpoint directory."""
    layers: str | None = None
    """Layers to decode: 'all', '0,3' or '0-2' (default: all)."""
    side: Literal["out", "in"] = "out"
    """'out': what each neuron writes (rows of W_out); 'in': what it reads (columns of W_in; not for gated MLPs)."""
    k: int = 10
    """Top and bottom tokens kept per neuron."""
    method: Literal["certified", "exact"] = "certified"
    """'certified': bfloat16 candidates proven exact in float32; 'exact': float32 throughout."""
    class_top: int = 3
    """A neuron belongs to a semantic class when its first this-many top tokens all do."""
    out: str = "runs/neurons/decode"
    """Output directory: neurons.safetensors, neurons.json, classes.json, decode.html."""

    def __post_init__(self) -> None:
        check_positive(k=self.k)
        if not 1 <= self.class_top <= self.k:
            raise ConfigError(f"--class-top must be in [1, --k={self.k}], got {self.class_top}")


@dataclass
class DecodeResult(Result):
    """What ``interp neurons decode`` computes: the decoded neurons and their semantic classes."""

    stem: ClassVar[str] = "decode"
    title: ClassVar[str] = "Neuron decoding"

    table: NeuronTable
    classes: SemanticClasses

    def summary(self) -> str:
        return f"{self.table.summary()}\n{self.classes.summary()}"

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head, lines = self.table._headline()
        classes = self.classes
        in_classes = (f"{classes.n_class_neurons:,} in one of {len(classes.counts)} semantic classes "
                      f"(top {classes.top} tokens)")
        return plain_repr("DecodeResult", head, [*lines, in_classes])

    def to_html(self) -> str:
        from interp.neurons.html import decode_page

        return decode_page(self.table, classes=self.classes)

    def _repr_html_(self) -> str:
        return self.table._repr_html_() + self.classes._repr_html_()

    def write_data(self, directory: Path) -> dict[str, Path]:
        """The table's files (``neurons.safetensors``, ``neurons.json``) and ``classes.json``;
        :meth:`write` adds ``decode.html`` (the page with both)."""
        return {**self.table.write_data(directory), "classes": self.classes.save(directory / f"{self.classes.stem}.json")}

    @classmethod
    def load(cls, path: str | Path) -> DecodeResult:
        """Read what :meth:`write` wrote into a directory, or a JSON file written by :meth:`save`."""
        path = Path(path)
        if path.is_dir():
            return cls(NeuronTable.load(path), SemanticClasses.load(path))
        return super().load(path)


def run(cfg: DecodeConfig) -> DecodeResult:
    """What ``interp neurons decode`` runs: load ``cfg.model``, :func:`decode` its neurons and
    :func:`~interp.neurons.classify` them into the semantic classes (the reference model's exact
    token classes, or the same words matched loosely for other tokenizers)."""
    from interp.models import load_model

    model = load_model(cfg.model, device="cpu")
    table = decode(model, cfg.layers, cfg.side, cfg.k, cfg.method)
    reference = cfg.model == "reference"
    classes = classify(table, semantic_classes(tokens=reference), top=cfg.class_top, exact=reference)
    return DecodeResult(table, classes)
