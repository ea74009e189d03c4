"""A model's architecture and the hook points interp uses, as one object (``interp info``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelInfo:
    """A model's architecture and the hook points interp uses."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int | None
    d_vocab: int
    n_ctx: int
    act_fn: str | None
    normalization: str | None
    n_params: int
    sites: dict[str, list[str]]
    gated: dict[str, str] = field(default_factory=dict)
    """Sites TransformerLens computes only behind a config flag that is off: site -> flag."""

    def describe(self) -> str:
        lines = [
            (
                f"{self.name}: {self.n_layers} layers, d_model {self.d_model}, {self.n_heads} heads x "
                f"d_head {self.d_head}, d_mlp {self.d_mlp}, vocabulary {self.d_vocab}, context {self.n_ctx}"
            ),
            f"activation {self.act_fn}, normalization {self.normalization}, {self.n_params:,} parameters",
            "hook points (site, in TransformerLens' names: layer 0 ... last layer):",
        ]
        for site, names in self.sites.items():
            if names:
                shown = names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"
                lines.append(f"  {site:15s} {shown}")
        if self.gated:
            flags = ", ".join(f"{site} ({flag})" for site, flag in self.gated.items())
            lines.append(f"computed only with a flag, off now (a cache turns it on for what it is asked; for mlp_in ask for hook_mlp_in): {flags}")
        return "\n".join(lines)


def model_info(model) -> ModelInfo:
    """Describe a HookedTransformer: its shape and its validated hook points per site."""
    from interp.hooks import all_sites, gated_sites

    cfg = model.cfg
    return ModelInfo(
        name=cfg.model_name,
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        n_ctx=cfg.n_ctx,
        act_fn=cfg.act_fn,
        normalization=cfg.normalization_type,
        n_params=sum(p.numel() for p in model.parameters()),
        sites=all_sites(model),
        gated=gated_sites(model),
    )
