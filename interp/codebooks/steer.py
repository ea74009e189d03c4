"""Steering with codes: force chosen codes into the active set and measure what changes.

:func:`generate_with_codes` generates text with the bottlenecks inserted and chosen codes
forced into their active sets (at every position, or only at the newest one).
:func:`next_token_shift` compares the next-token distribution with and without forcing,
and, given a target distribution, how far each is from it. Divergences are
Jensen-Shannon in bits (0 = identical, 1 = disjoint supports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.codebooks.insert import Codebooks, Positions, inserted


def js_divergence(p: Float[Tensor, "... vocab"], q: Float[Tensor, "... vocab"]) -> Float[Tensor, "..."]:
    """Jensen-Shannon divergence in bits between probability vectors (last axis)."""
    m = 0.5 * (p + q)

    def kl(a: Tensor, b: Tensor) -> Tensor:
        return torch.where(a > 0, a * (torch.log2(a.clamp(min=1e-30)) - torch.log2(b.clamp(min=1e-30))), 0.0).sum(-1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def _tokens(model, prompt: str | Int[Tensor, "batch pos"] | Sequence[int]) -> Tensor:
    if isinstance(prompt, str):
        return model.to_tokens(prompt)
    tokens = torch.as_tensor(prompt, dtype=torch.long)
    return tokens[None] if tokens.ndim == 1 else tokens


@torch.no_grad()
def generate_with_codes(
    model,
    codebooks: Codebooks,
    prompt: str | Int[Tensor, "batch pos"] | Sequence[int],
    force: Mapping[str, Sequence[int]] | None = None,
    max_new_tokens: int = 20,
    positions: Positions = "all",
    temperature: float = 0.0,
    seed: int | None = None,
) -> Int[Tensor, "batch total"]:
    """Generate ``max_new_tokens`` with the bottlenecks inserted and ``force`` applied.

    Args:
        force: hook -> flat code ids forced into the active set (None: plain codebook model).
        positions: ``"all"`` forces at every position, ``"last"`` only at the newest one.
        temperature: 0 for greedy decoding, else sampling at this temperature.
    Returns the prompt followed by the generated tokens (without the KV cache, so every
    step re-runs the bottlenecks over the whole context).
    """
    tokens = _tokens(model, prompt).to(model.cfg.device)
    gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    with inserted(model, codebooks, force=force, positions=positions):
        for _ in range(max_new_tokens):
            window = tokens[:, -model.cfg.n_ctx :]
            logits = model(window, return_type="logits")[:, -1].float().cpu()
            if temperature <= 0:
                nxt = logits.argmax(-1)
            else:
                nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen)[:, 0]
            tokens = torch.cat([tokens, nxt[:, None].to(tokens.device)], dim=1)
    return tokens


@dataclass
class Shift:
    """Next-token distributions at the last position, without and with the forced codes."""

    before: Float[Tensor, "batch vocab"]
    after: Float[Tensor, "batch vocab"]
    js: Float[Tensor, " batch"]
    """JS(before, after) in bits."""
    js_before_target: Float[Tensor, " batch"] | None = None
    """JS(before, target) when a target was given."""
    js_after_target: Float[Tensor, " batch"] | None = None
    """JS(after, target) when a target was given."""

    def __repr__(self) -> str:
        head = f"{self.before.shape[0]} prompt(s): mean JS(before, after) {self.js.mean().item():.4f} bits"
        if self.js_before_target is not None and self.js_after_target is not None:
            head += (f"; JS to target {self.js_before_target.mean().item():.4f} -> "
                     f"{self.js_after_target.mean().item():.4f} bits")
        return f"Shift({head})"

    def _repr_html_(self) -> str:
        from interp.reports import summary_html

        rows = [("prompts", self.before.shape[0]), ("mean JS(before, after), bits", self.js.mean().item())]
        if self.js_before_target is not None and self.js_after_target is not None:
            rows += [("mean JS(before, target), bits", self.js_before_target.mean().item()),
                     ("mean JS(after, target), bits", self.js_after_target.mean().item())]
        return summary_html("Next-token shift from forced codes", rows)


@torch.no_grad()
def next_token_shift(
    model,
    codebooks: Codebooks,
    prompt: str | Int[Tensor, "batch pos"] | Sequence[int],
    force: Mapping[str, Sequence[int]],
    positions: Positions = "last",
    target: Float[Tensor, "batch vocab"] | Float[Tensor, " vocab"] | None = None,
) -> Shift:
    """How forcing ``force`` (at ``positions``) moves the next-token distribution.

    Both distributions are taken with the bottlenecks inserted, so the change is due to
    the forced codes alone.
    """
    tokens = _tokens(model, prompt).to(model.cfg.device)
    with inserted(model, codebooks):
        before = torch.softmax(model(tokens, return_type="logits")[:, -1].float(), -1).cpu()
    with inserted(model, codebooks, force=force, positions=positions):
        after = torch.softmax(model(tokens, return_type="logits")[:, -1].float(), -1).cpu()
    shift = Shift(before=before, after=after, js=js_divergence(before, after))
    if target is not None:
        target = target.float().cpu().expand_as(before)
        shift.js_before_target = js_divergence(before, target)
        shift.js_after_target = js_divergence(after, target)
    return shift
