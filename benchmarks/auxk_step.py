"""A TopK training step at GPT-2 small's shape with dead latents: the AuxK loss in the sparse
encoder (interp now) against the dense AuxK it replaced, interleaved in one process.

768 -> 24,576 latents, k 32, aux_k 384 (d_out // 2), 4,096 synthetic tokens a step, a fraction of
the latents marked dead (``--dead``). The dense side is the previous implementation, kept here
as a subclass: the encoder pre-activations formed with autograd, ``topk_activation`` over them
for both selections, so the dense ``batch x d_sae`` gradient and a second dense matmul in the
backward. Prints one line per round and a JSON summary (``--out``)::

    python benchmarks/auxk_step.py --rounds 5 --dead 0.1 --out benchmarks/results/auxk_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def _dense_auxk_class():
    from interp.kernels import sparse_decode, topk_activation
    from interp.transcoders.architectures.topk import TopKTranscoder
    from interp.transcoders.base import LossOutput, reconstruction_stats

    class DenseAuxK(TopKTranscoder):
        """The AuxK step as interp computed it before 2026-11-30 (dense pre-activations)."""

        def normalised_loss(self, x_n, y_n, *, progress, dead):
            pre = self.pre_acts(x_n)
            values, indices = topk_activation(pre, self.cfg.k)
            y_hat_n = self.decode_sparse(values, indices, x_n)
            mse, fvu = reconstruction_stats(y_hat_n, y_n)
            residual = (y_n - y_hat_n).detach()
            aux_values, aux_indices = topk_activation(pre.masked_fill(~dead, float("-inf")), self.aux_k_for(dead))
            recon = sparse_decode(aux_values, aux_indices, self.W_dec)
            variance = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
            aux = (recon - residual).pow(2).sum(-1).mean() / variance
            active = values.detach() > 0
            hits = torch.zeros(self.cfg.d_sae).index_add_(0, indices.reshape(-1), active.reshape(-1).float())
            return LossOutput(mse + self.cfg.aux_coefficient * aux, {"mse": mse.detach(), "auxk": aux.detach()},
                              hits > 0, active.sum(-1).float().mean(), fvu)

    return DenseAuxK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    parser.add_argument("--dead", type=float, default=0.1, help="fraction of the latents marked dead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from interp.transcoders.architectures.topk import TopKConfig, TopKTranscoder
    from interp.transcoders.trainer import OptimConfig, Trainer

    d, batch = 768, 4096
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4 * batch, d, generator=g)
    y = x @ torch.randn(d, d, generator=g) / 30 + 0.1 * torch.randn(4 * batch, d, generator=g)
    cfg = TopKConfig(d_in=d, d_out=d, d_sae=32 * d, k=32)
    sides = {"sparse AuxK (interp)": TopKTranscoder(cfg, seed=0), "dense AuxK (before)": _dense_auxk_class()(cfg, seed=0)}
    trainers = {name: Trainer({"l": tc}, OptimConfig(), total_steps=10**6, tokens_per_step=batch) for name, tc in sides.items()}
    n_dead = int(args.dead * cfg.d_sae)

    def run(name: str, n: int) -> float:
        trainer = trainers[name]
        start = time.perf_counter()
        for i in range(n):
            trainer.since_fired["l"][:n_dead] = 10**9
            s = (i % 4) * batch
            metrics = trainer.step({"l": (x[s : s + batch], y[s : s + batch])})
            assert "auxk" in metrics.parts["l"]
        return (time.perf_counter() - start) / n

    for name in sides:
        run(name, 1)  # warm-up
    rounds: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            rounds[name].append(run(name, args.steps))
        print(f"round {r + 1}: " + ", ".join(f"{name} {rounds[name][-1]:.2f} s/step" for name in sides), flush=True)
    sparse, dense = rounds["sparse AuxK (interp)"], rounds["dense AuxK (before)"]
    result = {
        "command": "python benchmarks/auxk_step.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads, "
                   f"load {os.getloadavg()[0]:.2f} at the end",
        "shape": {"d_in": d, "d_sae": cfg.d_sae, "k": cfg.k, "aux_k": d // 2, "tokens_per_step": batch, "dead": n_dead},
        "seconds_per_step_rounds": rounds,
        "median_seconds_per_step": {name: statistics.median(v) for name, v in rounds.items()},
        "speedup_per_round": [b / a for a, b in zip(sparse, dense)],
    }
    print(json.dumps({k: result[k] for k in ("median_seconds_per_step", "speedup_per_round")}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
