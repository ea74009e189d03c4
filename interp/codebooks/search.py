"""Code search: where each code fires, how often, what it writes, and which property it tracks.

A :class:`CodeRecord` holds the tokens of a set of contexts and, per bottleneck, the flat
ids of the codes active at every position (:func:`collect_codes`). From it:

- :meth:`CodeRecord.frequency`: the fraction of positions where each code is active;
- :meth:`CodeRecord.top_contexts`: the positions where a code fired with the highest
  cosine similarity, with the text that led there;
- :func:`code_top_tokens`: the tokens a code promotes through the unembedding (via
  ``W_O`` of its head at ``z``);
- :func:`property_mask` builds a boolean per position from a regex over the context, a
  token class, or a label per position, and :func:`match_property` ranks the codes by how
  well they predict it (precision = P(property | code active), recall = P(code active |
  property), F1);
- :func:`best_neuron_at_recall` finds the single neuron that, thresholded to reach the
  same recall as a code, has the highest precision: the baseline a code should beat.

:func:`run` is what ``interp codebook search`` runs: it loads a trained run, records its
codes on contexts of ``--data`` (the reference corpus by default, labelled for any tokenizer)
and ranks them for one property (:class:`CodeSearchConfig` in, :class:`CodeSearchResult` out).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.codebooks.insert import Codebooks, inserted
from interp.config import check_ctx_len, check_positive
from interp.errors import ConfigError
from interp.results import Result


@dataclass
class LabelledTokens:
    """Contexts of token ids with the corpus label of every token (None where unlabelled)."""

    tokens: Int[Tensor, "n ctx"]
    labels: list[list[str | None]]

    def __repr__(self) -> str:
        labelled = sum(lab is not None for row in self.labels for lab in row)
        n, ctx = self.tokens.shape
        return f"LabelledTokens({n} contexts x {ctx} tokens, {labelled:,} labelled)"


def labelled_contexts(
    tokenizer, n_contexts: int, ctx_len: int, seed: int = 0, mixture: dict[str, float] | None = None
) -> LabelledTokens:
    """Reference-corpus documents packed into BOS-led contexts, keeping each token's label.

    Any tokenizer: with another vocabulary than the reference one, each token takes the label
    of the corpus word it ends in (:func:`interp.data.labelled_reference_documents`).
    """
    from itertools import islice

    from interp.data import labelled_reference_documents
    from interp.packing import pack_labelled

    check_positive(n_contexts=n_contexts)
    docs = labelled_reference_documents(tokenizer, seed=seed, mixture=mixture)
    rows, labels = zip(*islice(pack_labelled(docs, ctx_len, tokenizer.bos_token_id), n_contexts))
    return LabelledTokens(torch.tensor(rows, dtype=torch.long), list(labels))


@dataclass
class CodeRecord:
    """Active codes at every position of a set of contexts."""

    tokens: Int[Tensor, "n ctx"]
    codes: dict[str, Tensor]
    """hook -> flat code ids ``[n, ctx, slots]`` (slots = groups x k)."""
    scores: dict[str, Tensor]
    """hook -> cosine similarity of each active code ``[n, ctx, slots]``."""
    n_flat: dict[str, int]
    """hook -> number of flat code ids."""

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        n, ctx = self.tokens.shape
        lines = [f"{hook}: {int((self.frequency(hook) > 0).sum())}/{self.n_flat[hook]} codes active" for hook in self.codes]
        return plain_repr("CodeRecord", f"{n} contexts x {ctx} tokens, {len(self.codes)} bottleneck(s)", lines)

    def _repr_html_(self) -> str:
        from interp.reports import line_svg, summary_html, table

        n, ctx = self.tokens.shape
        rows = [("positions", f"{n * ctx:,} ({n} contexts x {ctx} tokens)"), ("bottlenecks", len(self.codes))]
        stats = []
        for hook in self.codes:
            freq = self.frequency(hook)
            stats.append([hook, int((freq > 0).sum()), self.n_flat[hook], float(freq.max()) if freq.numel() else 0.0])
        shown = table(["hook", "active codes", "codes", "top frequency"], stats, ".4f", max_rows=16)
        chart = None
        if self.codes:
            hook = next(iter(self.codes))
            freq = self.frequency(hook).sort(descending=True).values
            chart = line_svg(freq[freq > 0].tolist(), title=f"{hook}: code frequency by rank", x_label="rank", log_y=True)
        return summary_html("Code record", rows, chart or None, table=shown)

    def flat_codes(self, hook: str) -> Int[Tensor, "positions slots"]:
        return self.codes[hook].flatten(0, 1)

    def frequency(self, hook: str) -> Float[Tensor, " codes"]:
        """Fraction of positions at which each code is active."""
        codes = self.flat_codes(hook)
        counts = torch.bincount(codes.flatten(), minlength=self.n_flat[hook])
        return counts.float() / codes.shape[0]

    def fires(self, hook: str, code: int) -> Bool[Tensor, "n ctx"]:
        return (self.codes[hook] == code).any(-1)

    def top_contexts(self, hook: str, code: int, tokenizer, n: int = 10, window: int = 8) -> list[dict]:
        """The ``n`` positions where ``code`` fired most strongly: the text of up to ``window`` tokens
        before it (``context``) and of the token (``token``), cut from the window decoded as a whole,
        so the token keeps its leading space (:func:`interp.reports.token_pieces`)."""
        from interp.reports import token_pieces

        hit = self.codes[hook] == code
        score = torch.where(hit, self.scores[hook], torch.full_like(self.scores[hook], -2.0)).amax(-1)
        flat = score.flatten()
        n_hits = int((flat > -2).sum())
        out = []
        ctx = self.tokens.shape[1]
        for index in flat.topk(min(n, n_hits)).indices.tolist():
            row, pos = divmod(index, ctx)
            pieces = token_pieces(tokenizer, self.tokens[row, max(0, pos - window) : pos + 1].tolist())
            out.append(
                {
                    "row": row,
                    "pos": pos,
                    "score": float(flat[index]),
                    "context": "".join(pieces[:-1]),
                    "token": pieces[-1],
                }
            )
        return out


@torch.no_grad()
def collect_codes(model, codebooks: Codebooks, tokens: Int[Tensor, "n ctx"], batch_size: int = 32) -> CodeRecord:
    """Run ``tokens`` through ``model`` with its bottlenecks and record the active codes.

    The forward stops after the deepest bottleneck's block: nothing later changes the codes.
    """
    from interp.hooks import last_layer

    codes: dict[str, list[Tensor]] = {h: [] for h in codebooks.hooks}
    scores: dict[str, list[Tensor]] = {h: [] for h in codebooks.hooks}
    last = last_layer(codebooks.hooks)
    stop = None if last is None else last + 1
    with inserted(model, codebooks) as run:
        for start in range(0, tokens.shape[0], batch_size):
            model(tokens[start : start + batch_size].to(model.cfg.device), return_type=None, stop_at_layer=stop)
            for hook in codebooks.hooks:
                codes[hook].append(run.codes[hook].flatten(2).cpu())
                scores[hook].append(run.scores[hook].flatten(2).cpu())
    return CodeRecord(
        tokens=tokens.cpu(),
        codes={h: torch.cat(v) for h, v in codes.items()},
        scores={h: torch.cat(v) for h, v in scores.items()},
        n_flat={h: b.n_flat for h, b in codebooks.items()},
    )


@torch.no_grad()
def collect_activations(model, tokens: Int[Tensor, "n ctx"], hook: str, batch_size: int = 32) -> Float[Tensor, "n ctx d"]:
    """A hook point's activations (e.g. ``blocks.L.mlp.hook_post`` neurons) for every position."""
    from interp.hooks import validate

    validate(model, [hook])
    parts = []
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size].to(model.cfg.device), names_filter=[hook])
        parts.append(cache[hook].flatten(2).cpu())
    return torch.cat(parts)


def property_mask(
    tokens: Int[Tensor, "n ctx"],
    tokenizer=None,
    regex: str | None = None,
    token_class: Collection[str] | Collection[int] | None = None,
    labels: Sequence[Sequence[str | None]] | Tensor | None = None,
    label: str | None = None,
    window: int = 8,
) -> Bool[Tensor, "n ctx"]:
    """Where a property holds: give exactly one of ``regex``, ``token_class`` or ``labels``.

    - ``regex``: ``re.search`` over the decoded text of up to ``window`` tokens ending at
      (and including) the position; anchor with ``$`` to test the current token.
    - ``token_class``: the position's token is one of these (strings or ids).
    - ``labels``: a boolean tensor per position, or per-position label strings with
      ``label`` naming the one that counts.
    """
    given = [x is not None for x in (regex, token_class, labels)]
    if sum(given) != 1:
        raise ConfigError("describe the property with exactly one of regex=, token_class= or labels=")
    if regex is not None:
        if tokenizer is None:
            raise ConfigError("a regex property needs the tokenizer to decode contexts")
        pattern = re.compile(regex)
        rows = tokens.tolist()
        mask = torch.zeros(tokens.shape, dtype=torch.bool)
        for i, row in enumerate(rows):
            for j in range(len(row)):
                text = tokenizer.decode(row[max(0, j - window + 1) : j + 1])
                mask[i, j] = pattern.search(text) is not None
        return mask
    if token_class is not None:
        items = list(token_class)
        if items and isinstance(items[0], str):
            if tokenizer is None:
                raise ConfigError("a token class given as strings needs the tokenizer")
            vocab = tokenizer.get_vocab()
            missing = [t for t in items if t not in vocab]
            if missing:
                raise ConfigError(f"tokens not in the vocabulary: {missing[:5]}")
            items = [vocab[t] for t in items]
        return torch.isin(tokens, torch.tensor(items, dtype=tokens.dtype))
    if isinstance(labels, Tensor):
        if labels.shape != tokens.shape:
            raise ConfigError(f"labels shape {tuple(labels.shape)} differs from tokens {tuple(tokens.shape)}")
        return labels.bool()
    if label is None:
        raise ConfigError("with string labels, pass label= to say which label marks the property")
    mask = torch.tensor([[lab == label for lab in row] for row in labels], dtype=torch.bool)
    if mask.shape != tokens.shape:
        raise ConfigError(f"labels shape {tuple(mask.shape)} differs from tokens {tuple(tokens.shape)}")
    return mask


@dataclass
class CodeMatch:
    """How well one code predicts a property."""

    hook: str
    code: int
    precision: float
    recall: float
    f1: float
    fired: int
    """Positions where the code is active."""


def precision_recall(
    codes: Int[Tensor, "positions slots"], mask: Bool[Tensor, " positions"], n_codes: int
) -> tuple[Float[Tensor, " codes"], Float[Tensor, " codes"], Int[Tensor, " codes"]]:
    """Per code: precision P(property | active), recall P(active | property), times active.

    A code never active has precision 0.
    """
    fired = torch.bincount(codes.flatten(), minlength=n_codes)
    hits = torch.bincount(codes[mask].flatten(), minlength=n_codes)
    precision = hits.float() / fired.clamp(min=1)
    recall = hits.float() / max(int(mask.sum()), 1)
    return precision, recall, fired


def match_property(record: CodeRecord, hook: str, mask: Bool[Tensor, "n ctx"], top: int = 5) -> list[CodeMatch]:
    """The ``top`` codes at ``hook`` ranked by F1 for the property ``mask``."""
    if mask.shape != record.tokens.shape:
        raise ConfigError(f"mask shape {tuple(mask.shape)} differs from the record's {tuple(record.tokens.shape)}")
    precision, recall, fired = precision_recall(record.flat_codes(hook), mask.flatten(), record.n_flat[hook])
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    order = torch.argsort(f1, descending=True)[:top]
    return [
        CodeMatch(hook, int(c), float(precision[c]), float(recall[c]), float(f1[c]), int(fired[c])) for c in order
    ]


@dataclass
class NeuronMatch:
    """The best single neuron for a property at a fixed recall."""

    neuron: int
    precision: float
    recall: float
    threshold: float


def best_neuron_at_recall(
    acts: Float[Tensor, "positions neurons"], mask: Bool[Tensor, " positions"], recall: float
) -> NeuronMatch:
    """Threshold every neuron so that it is on at ``recall`` of the property's positions.

    A neuron is "on" where its activation is >= its threshold, the ``1 - recall``
    quantile of its activations on the positive positions; the best neuron is the one
    whose "on" positions have the highest precision.
    """
    if not 0 < recall <= 1:
        raise ConfigError(f"recall must be in (0, 1], got {recall}")
    if not mask.any():
        raise ConfigError("the property holds nowhere; no neuron can reach a recall")
    acts = acts.float()
    positives = acts[mask]
    n_pos = positives.shape[0]
    rank = max(1, int(round(recall * n_pos)))
    thresholds = positives.topk(rank, dim=0).values[-1]
    on = acts >= thresholds
    hits = on[mask].sum(0).float()
    precision = hits / on.sum(0).clamp(min=1).float()
    best = int(precision.argmax())
    return NeuronMatch(best, float(precision[best]), float(hits[best] / n_pos), float(thresholds[best]))


@torch.no_grad()
def code_top_tokens(model, codebooks: Codebooks, hook: str, code: int, n: int = 10) -> list[tuple[str, float]]:
    """Tokens whose logits the code raises most, read directly through the unembedding.

    A code at ``z`` is first written through its head's ``W_O`` (and the linear part of
    a norm on the attention output, Gemma 2's ``ln1_post``); the direction then goes through
    the final norm's weight and centring and ``W_U``, as a neuron's write vector does
    (:func:`interp.neurons.unembedding`).
    """
    from interp.neurons.decoding import unembedding

    book = codebooks[hook]
    group, index = book.split(code)[0]
    vector = book.codebook[group, index]
    if hook.endswith("attn.hook_z"):
        from interp.hooks import layer_of, write_directions

        layer = layer_of(hook)
        vector = write_directions(model, layer, "attn", vector @ model.W_O[layer, group])
    W, centre = unembedding(model)
    vector = vector.to(W.dtype)
    if centre:
        vector = vector - vector.mean()
    logits = vector @ W
    top = logits.topk(n)
    return [(model.tokenizer.decode([int(i)]), float(v)) for v, i in zip(top.values, top.indices)]


def ranked_codes(record: CodeRecord, hook: str, limit: int | None = None) -> list[int]:
    """Codes at ``hook`` that fired at least once, most frequent first."""
    freq = record.frequency(hook)
    order = [int(c) for c in torch.argsort(freq, descending=True) if freq[c] > 0]
    return order[:limit] if limit is not None else order



def record_run(
    run: str | Path, n_contexts: int, seed: int = 1, device: str | None = None, data: str = "reference", *, force: bool = False,
    ctx_len: int | None = None,
) -> tuple[object, Codebooks, LabelledTokens, CodeRecord]:
    """Load a run written by ``interp codebook train`` and record its codes on ``n_contexts``
    contexts of ``data``: ``(model, codebooks, contexts, record)``. The reference corpus comes
    with its labels (for any tokenizer); other data has none (every label None). Contexts are
    ``ctx_len`` tokens long (None: the length the codebooks were trained on; a length beyond
    the model's context is refused)."""
    from interp.codebooks.training import load_trained
    from interp.data import REFERENCE, load_contexts
    from interp.models import check_context

    model, books = load_trained(run, device=device, force=force)
    ctx_len = ctx_len or getattr(books, "trained_ctx_len", None) or model.cfg.n_ctx
    check_context(model, ctx_len)
    if data == REFERENCE:
        contexts = labelled_contexts(model.tokenizer, n_contexts, ctx_len, seed=seed)
    else:
        tokens = load_contexts(data, model.tokenizer, n_contexts, ctx_len, seed=seed)
        contexts = LabelledTokens(tokens, [[None] * ctx_len for _ in range(n_contexts)])
    return model, books, contexts, collect_codes(model, books, contexts.tokens)


@dataclass
class CodeSearchConfig:
    """Rank a run's codes by how well they predict a property (precision, recall, F1)."""

    run: str
    """Directory written by `interp codebook train`."""
    regex: str | None = None
    """Property: a regex searched in the text of the last `window` tokens (anchor with $)."""
    tokens: list[str] | None = None
    """Property: the position's token is one of these vocabulary entries."""
    label: str | None = None
    """Property: the reference corpus labels the position with this label (e.g. fsm_state; needs --data reference)."""
    window: int = 8
    """Tokens of context the regex sees."""
    top: int = 5
    """Codes listed per bottleneck."""
    n_contexts: int = 64
    """Contexts of --data to search."""
    data: str = "reference"
    """Token source: 'reference' (the corpus, with its labels, for any tokenizer), a .txt/.jsonl path, or a Hugging Face dataset name."""
    seed: int = 1
    """Seed of the token sample."""
    ctx_len: int | None = None
    """Tokens per context (default: the length the codebooks were trained on; at most the model's context)."""
    json: bool = False
    """Print the result as JSON instead of a table."""
    out: str | None = None
    """Directory to write search.json into (default: nothing is written)."""
    device: str | None = None
    """'cpu' or 'cuda'."""
    force: bool = False
    """Use the run's codebooks even when the model loaded under its recorded name is another model (its fingerprint differs)."""

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.regex, self.tokens, self.label)) != 1:
            raise ConfigError("give exactly one property: --regex, --tokens or --label")
        if self.label is not None and self.data != "reference":
            raise ConfigError("--label needs --data reference (only the reference corpus labels its tokens); use --regex or --tokens with other data")
        check_positive(window=self.window, top=self.top, n_contexts=self.n_contexts)
        check_ctx_len(self.ctx_len)
        if self.regex is not None:
            import re

            try:
                re.compile(self.regex)
            except re.error as err:
                raise ConfigError(f"--regex {self.regex!r} is not a valid regular expression ({err})") from err

    def describe_property(self) -> str:
        if self.label is not None:
            return f"label {self.label}"
        if self.regex is not None:
            return f"regex {self.regex!r} over {self.window} tokens"
        return f"token in {self.tokens}"


@dataclass
class CodeSearchResult(Result):
    """The codes of every bottleneck that best predict one property, ranked by F1."""

    stem: ClassVar[str] = "search"
    title: ClassVar[str] = "Code search"

    run: str
    property: str
    """The property, as the search was given it."""
    n_positions: int
    n_positive: int
    """Positions where the property holds."""
    matches: dict[str, list[CodeMatch]]
    """hook -> best codes, highest F1 first."""
    codebooks_forced: dict | None = None
    """Set when ``--force`` used the codebooks on another model than they were trained on (both fingerprints)."""

    def summary(self) -> str:
        lines = [f"{self.property}: holds at {self.n_positive} of {self.n_positions} positions"]
        for hook, found in self.matches.items():
            lines.append(hook)
            lines += [f"  code {m.code:5d}  precision {m.precision:.3f}  recall {m.recall:.3f}  F1 {m.f1:.3f}  fired {m.fired}"
                      for m in found]
        return "\n".join(lines)

    def _best(self) -> dict[str, str]:
        """hook -> its best code and that code's F1."""
        return {hook: f"code {found[0].code}, F1 {found[0].f1:.3f}" for hook, found in self.matches.items() if found}

    def headline(self) -> list[tuple[str, object]]:
        rows: list[tuple[str, object]] = [("property", self.property), ("positive positions", f"{self.n_positive} / {self.n_positions}")]
        return rows + list(self._best().items())

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head = f"{self.property}: holds at {self.n_positive:,} of {self.n_positions:,} positions"
        return plain_repr("CodeSearchResult", head, [f"{hook}: {best}" for hook, best in self._best().items()])


def run(cfg: CodeSearchConfig) -> CodeSearchResult:
    """What ``interp codebook search`` runs: record the run's codes and rank them for the property."""
    model, books, data, record = record_run(cfg.run, cfg.n_contexts, seed=cfg.seed, device=cfg.device, data=cfg.data,
                                            force=cfg.force, ctx_len=cfg.ctx_len)
    if cfg.label is not None:
        mask = property_mask(data.tokens, labels=data.labels, label=cfg.label)
    else:
        mask = property_mask(data.tokens, model.tokenizer, regex=cfg.regex, token_class=cfg.tokens, window=cfg.window)
    return CodeSearchResult(
        run=str(cfg.run), property=cfg.describe_property(), n_positions=mask.numel(), n_positive=int(mask.sum()),
        matches={hook: match_property(record, hook, mask, top=cfg.top) for hook in books.hooks},
        codebooks_forced=books.forced,
    )
