"""``interp circuit trace``: a prompt to an attribution graph (JSON, GraphML, HTML)."""

from __future__ import annotations

from dataclasses import dataclass

from interp.commands import command
from interp.errors import ConfigError


@dataclass
class CircuitTraceConfig:
    """Trace a prompt through transcoders into an attribution graph and write it as
    Neuronpedia JSON, GraphML and a self-contained HTML report."""

    prompt: str | None = None
    """The prompt to trace (required)."""
    model: str = "reference"
    """'reference', 'gpt2', or a local checkpoint directory."""
    transcoders: str = "runs/tc"
    """Run directory written by `interp transcoder train` (or one saved transcoder)."""
    target: str | None = None
    """Token whose logit is explained, e.g. ' 45' (default: the most probable next token)."""
    out: str = "graph"
    """Directory for graph.json, graph.graphml, graph.html and graph.pt."""
    node_threshold: float = 0.8
    """Keep nodes until their cumulative influence reaches this fraction."""
    edge_threshold: float = 0.98
    """Keep edges until their cumulative influence reaches this fraction."""
    batch_size: int = 64
    """Targets per backward pass."""
    heads: bool = True
    """Split kept edges over the attention heads that carry them."""
    contexts: int = 64
    """Sequences of --dataset scanned for each feature's top activating contexts (0: none)."""
    dataset: str = "reference"
    """Token source for the contexts: 'reference', a local text file, or a Hugging Face dataset."""
    device: str = "cpu"
    """Device to run on."""

    def __post_init__(self) -> None:
        if self.contexts < 0:
            raise ConfigError(f"contexts must be >= 0, got {self.contexts}")


def context_tokens(model, dataset: str, n: int, ctx_len: int = 64):
    """``n`` sequences of ``ctx_len`` tokens from ``dataset`` (None when n is 0)."""
    if n == 0 or getattr(model, "tokenizer", None) is None:
        return None
    from interp.data import token_batches

    return next(iter(token_batches(dataset, model.tokenizer, ctx_len=min(ctx_len, model.cfg.n_ctx), batch_size=n, seed=0)))


@command("circuit", "trace", help="trace a prompt into an attribution graph (JSON, GraphML, HTML)", config=CircuitTraceConfig)
def _trace(cfg: CircuitTraceConfig) -> int:
    from interp.circuits.export import write_all
    from interp.circuits.tracing import TraceConfig, trace
    from interp.errors import InterpError
    from interp.models import load_model
    from interp.transcoders.loading import load_run

    if not cfg.prompt:
        raise InterpError('give the prompt to trace: --prompt "The war lasted from the year 1745 to the year 17"')
    model = load_model(cfg.model, device=cfg.device)
    transcoders = load_run(cfg.transcoders, device=cfg.device)
    tcfg = TraceConfig(
        node_threshold=cfg.node_threshold, edge_threshold=cfg.edge_threshold, batch_size=cfg.batch_size, heads=cfg.heads
    )
    graph = trace(
        model, transcoders, cfg.prompt, target=cfg.target, cfg=tcfg,
        context_tokens=context_tokens(model, cfg.dataset, cfg.contexts), model_name=cfg.model,
    )
    paths = write_all(graph, cfg.out)
    print(graph.summary())
    print(f"attribution (edge matrix) took {graph.seconds:.2f} s")
    for kind, path in paths.items():
        print(f"  {kind:8s} {path}")
    return 0
