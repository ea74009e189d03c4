"""Held-out task prompts for the reference model, and the metrics it must meet.

Each task builds prompts as token-id tensors straight from the corpus vocabulary (no
text round trip), from a seed different from the training corpus, and measures:

- greater-than: mean probability on valid years (ZZ > YY) and on invalid ones (ZZ <= YY)
  after "The <noun> lasted from the year CCYY to the year CC";
- facts: top-1 accuracy of "<subject> was born in" -> place and "<subject> works as a" -> job;
- induction: argmax accuracy on a random segment's first occurrence and on its repeat
  (positions after the first token of each copy);
- fsm: mean probability on the current state's legal successors.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

from interp.config import check_positive
from interp.reference import vocab as V
from interp.reference.corpus import GT_MAX_YY, GT_MIN_YY, INDUCTION_POOL, World
from interp.results import Result

TARGETS: dict[str, tuple[str, float]] = {
    "greater_than_valid_prob": (">=", 0.80),
    "greater_than_invalid_prob": ("<=", 0.10),
    "facts_top1": (">=", 0.95),
    "induction_repeat_acc": (">=", 0.90),
    "induction_first_acc": ("<=", 0.20),
    "fsm_legal_prob": (">=", 0.95),
}
"""Each metric's target: (comparison, threshold), from the reference model's issue."""

EVAL_SEED = 1_000_003
INDUCTION_LENGTH = 10


class TokenIds:
    """Maps corpus words to token ids of a tokenizer."""

    def __init__(self, tokenizer) -> None:
        self._vocab = tokenizer.get_vocab()
        self.bos = self._vocab[V.BOS]

    def word(self, word: str) -> int:
        """A word token (with its leading space marker) or a punctuation token."""
        return self._vocab[word if word in V.PUNCTUATION else V.SPACE + word]

    def year(self, yy: int) -> int:
        """The two-digit token that ends a year ("32" in " 1732")."""
        return self._vocab[f"{yy:02d}"]

    def words(self, words: list[str]) -> list[int]:
        return [self.word(w) for w in words]

    def two_digit(self) -> list[int]:
        return [self._vocab[t] for t in V.TWO_DIGITS]


def greater_than_prompts(ids: TokenIds, n: int, seed: int = EVAL_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` prompts "The <noun> lasted from the year CCYY to the year CC" and their YY."""
    rng = random.Random(seed)
    rows, yys = [], []
    for _ in range(n):
        noun = rng.choice(V.GT_NOUNS)
        century = rng.choice(V.CENTURIES)
        yy = rng.randint(GT_MIN_YY, GT_MAX_YY)
        head = ids.words(["The", noun, "lasted", "from", "the", "year", century])
        tail = ids.words(["to", "the", "year", century])
        rows.append([ids.bos, *head, ids.year(yy), *tail])
        yys.append(yy)
    return torch.tensor(rows), torch.tensor(yys)


def fact_prompts(ids: TokenIds, world: World) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """One prompt per (subject, relation); returns tokens, answer ids, relation names."""
    rows, answers, relations = [], [], []
    stems = {"born_in": ["was", "born", "in"], "works_as": ["works", "as", "a"]}
    for relation, stem in stems.items():
        for subject, attribute in world.relation(relation).items():
            rows.append([ids.bos] + ids.words([subject, *stem]))
            answers.append(ids.word(attribute))
            relations.append(relation)
    return torch.tensor(rows), torch.tensor(answers), relations


def induction_prompts(ids: TokenIds, n: int, length: int = INDUCTION_LENGTH, seed: int = EVAL_SEED) -> torch.Tensor:
    """``n`` rows of BOS + a random segment (no word twice) + the same segment again."""
    rng = random.Random(seed + 1)
    rows = []
    for _ in range(n):
        segment = ids.words(rng.sample(INDUCTION_POOL, k=length))
        rows.append([ids.bos] + segment + segment)
    return torch.tensor(rows)


def fsm_prompts(ids: TokenIds, world: World, n: int, length: int = 24, seed: int = EVAL_SEED) -> tuple[torch.Tensor, list[list[str]]]:
    """``n`` FSM traces "trace : S.. S.." and their state sequences."""
    rng = random.Random(seed + 2)
    rows, traces = [], []
    for _ in range(n):
        state = rng.choice(V.FSM_STATES)
        trace = []
        for _ in range(length):
            trace.append(state)
            state = rng.choice(world.fsm[state])
        rows.append([ids.bos] + ids.words(["trace", ":"] + trace))
        traces.append(trace)
    return torch.tensor(rows), traces


@dataclass
class ReferenceEvalConfig:
    """Measure the reference model's task metrics on held-out prompts."""

    model: str = "reference"
    """'reference' (the bundled weights) or a directory written by `interp reference train`."""
    n_prompts: int = 512
    """Prompts per task."""
    out: str | None = None
    """Also write the metrics into this directory (metrics.json)."""

    def __post_init__(self) -> None:
        check_positive(n_prompts=self.n_prompts)


@dataclass
class ReferenceMetrics(Result):
    """The reference model's task metrics, measured on held-out prompts."""

    stem: ClassVar[str] = "metrics"
    title: ClassVar[str] = "Reference-model task metrics"

    greater_than_valid_prob: float
    greater_than_invalid_prob: float
    facts_top1: float
    induction_repeat_acc: float
    induction_first_acc: float
    fsm_legal_prob: float

    def passed(self) -> dict[str, bool]:
        out = {}
        for name, (op, threshold) in TARGETS.items():
            value = getattr(self, name)
            out[name] = value >= threshold if op == ">=" else value <= threshold
        return out

    def all_passed(self) -> bool:
        return all(self.passed().values())

    def metrics(self) -> dict[str, float]:
        """The metrics by name (without the file's kind and version)."""
        return asdict(self)

    def summary(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        passed = self.passed()
        lines = [f"{name} {getattr(self, name):.4f}{'' if ok else '  BELOW TARGET'}" for name, ok in passed.items()]
        return plain_repr("ReferenceMetrics", f"{sum(passed.values())}/{len(passed)} targets met", lines)

    def _repr_html_(self) -> str:
        from interp.reports import summary_html, table

        passed = self.passed()
        rows = [[name, getattr(self, name), f"{TARGETS[name][0]} {TARGETS[name][1]:.2f}", ok] for name, ok in passed.items()]
        return summary_html("Reference-model task metrics", [("targets met", f"{sum(passed.values())}/{len(passed)}")],
                            table=table(["metric", "value", "target", "met"], rows))

    def table(self) -> str:
        lines = [f"{'metric':28s} {'value':>8s}  target   ok"]
        for name, ok in self.passed().items():
            op, threshold = TARGETS[name]
            lines.append(f"{name:28s} {getattr(self, name):8.4f}  {op} {threshold:.2f}  {'yes' if ok else 'NO'}")
        return "\n".join(lines)


def run(cfg: ReferenceEvalConfig) -> ReferenceMetrics:
    """What ``interp reference eval`` runs: load ``cfg.model`` and measure every task metric."""
    from interp.reference.model import load

    return evaluate(load(None if cfg.model == "reference" else cfg.model, device="cpu"), n_prompts=cfg.n_prompts)


@torch.no_grad()
def evaluate(model, n_prompts: int = 512, world: World | None = None) -> ReferenceMetrics:
    """Measure every task metric of ``model`` (a HookedTransformer with the reference tokenizer)."""
    world = world if world is not None else World.from_seed()
    ids = TokenIds(model.tokenizer)
    device = model.cfg.device

    def last_probs(tokens: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(tokens.to(device))[:, -1].float(), dim=-1).cpu()

    tokens, yys = greater_than_prompts(ids, n_prompts)
    probs = last_probs(tokens)[:, ids.two_digit()]
    zz = torch.arange(100)
    valid = zz[None, :] > yys[:, None]
    gt_valid = (probs * valid).sum(-1).mean().item()
    gt_invalid = (probs * ~valid).sum(-1).mean().item()

    tokens, answers, _ = fact_prompts(ids, world)
    facts_top1 = (model(tokens.to(device))[:, -1].argmax(-1).cpu() == answers).float().mean().item()

    tokens = induction_prompts(ids, n_prompts)
    length = (tokens.shape[1] - 1) // 2
    preds = model(tokens.to(device)).argmax(-1).cpu()
    # preds[:, p] predicts tokens[:, p + 1]; first copy spans positions 1..length.
    first = preds[:, 1:length] == tokens[:, 2 : length + 1]
    repeat = preds[:, length + 1 : 2 * length] == tokens[:, length + 2 :]
    ind_first = first.float().mean().item()
    ind_repeat = repeat.float().mean().item()

    tokens, traces = fsm_prompts(ids, world, n_prompts // 4)
    probs = torch.softmax(model(tokens.to(device)).float(), dim=-1).cpu()
    legal_mass = []
    for row, trace in enumerate(traces):
        for i, state in enumerate(trace):
            position = 3 + i  # BOS, "trace", ":" come first
            legal = ids.words(list(world.fsm[state]))
            legal_mass.append(probs[row, position, legal].sum().item())
    fsm_legal = sum(legal_mass) / len(legal_mass)

    return ReferenceMetrics(
        greater_than_valid_prob=gt_valid,
        greater_than_invalid_prob=gt_invalid,
        facts_top1=facts_top1,
        induction_repeat_acc=ind_repeat,
        induction_first_acc=ind_first,
        fsm_legal_prob=fsm_legal,
    )
