"""Trace the benchmark prompt with circuit-tracer on the same reference model and
transcoders, to compare timings with benchmarks/circuits_trace.py.

Run it with a separate interpreter that has circuit-tracer (it pins transformers<=4.57.3
and huggingface-hub<1.0, older than interp's), e.g.:

    python -m venv --system-site-packages /tmp/ct-venv
    /tmp/ct-venv/bin/pip install --no-deps circuit-tracer "huggingface_hub<1.0" "transformers==4.57.3" "tokenizers==0.22.1"
    /tmp/ct-venv/bin/python benchmarks/circuit_tracer_compare.py --transcoders runs/tc_circuits

Our TopK transcoders are given to circuit-tracer's SingleLayerTranscoder with a TopK
activation function; circuit-tracer loads the model unfolded (fold_ln=False), as it does
for its own models.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
PROMPT = "The war lasted from the year 1745 to the year 1789 . Ann saw a red fox near the river"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transcoders", default="runs/tc_circuits")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from circuit_tracer import ReplacementModel, attribute
    from circuit_tracer.transcoder.single_layer_transcoder import SingleLayerTranscoder, TranscoderSet
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformerConfig

    from interp.reference.model import weights_dir
    from interp.reference.tokenizer import load_tokenizer
    from interp.transcoders import load_run

    config = json.loads((weights_dir() / "config.json").read_text())
    ours = {layer: tc.folded() for layer, tc in load_run(args.transcoders).items()}  # weights on raw activations
    k = ours[0].cfg.k

    def topk(pre):
        values, idx = torch.topk(pre, k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, idx, torch.relu(values))

    sets = {}
    for layer, tc in ours.items():
        sets[layer] = SingleLayerTranscoder(
            config["d_model"], tc.W_enc.shape[1], topk, layer, device=torch.device("cpu"), dtype=torch.float32
        )
    transcoders = TranscoderSet(sets, feature_input_hook="ln2.hook_normalized", feature_output_hook="hook_mlp_out", scan="interp-reference")
    cfg = HookedTransformerConfig(**config)
    model = ReplacementModel.from_config(cfg, transcoders, tokenizer=load_tokenizer(weights_dir()))
    state = load_file(str(weights_dir() / "model.safetensors"))
    # circuit-tracer wraps each MLP (and the unembedding) in a module holding the original
    for key in list(state):
        for part, wrapped in ((".mlp.", ".mlp.old_mlp."), ("unembed.", "unembed.old_unembed.")):
            new = key.replace(part, wrapped, 1)
            if part in key and new in model.state_dict() and key not in model.state_dict():
                state[new] = state.pop(key)
    model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False)
    with torch.no_grad():  # after the state dict, which zero-fills the transcoders it does not hold
        for layer, tc in ours.items():
            slt = model.transcoders.transcoders[layer]
            slt.W_enc.copy_(tc.W_enc.T)
            slt.W_dec.copy_(tc.W_dec)
            slt.b_enc.copy_(tc.b_enc)
            slt.b_dec.copy_(tc.b_dec)
    tokens = model.to_tokens(PROMPT)[0][:20]
    with torch.no_grad():  # check: the same model as interp's (logits agree)
        from interp.models import load_model

        reference = load_model("reference", device="cpu")
        centred = model(tokens[None]) - model(tokens[None]).mean(-1, keepdim=True)
        centred_ref = reference(tokens[None]) - reference(tokens[None]).mean(-1, keepdim=True)
        logit_gap = (centred - centred_ref).abs().max().item()
    attribute(tokens, model, max_n_logits=1, batch_size=64)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        graph = attribute(tokens, model, max_n_logits=1, batch_size=64)
        times.append(time.perf_counter() - start)
    print(json.dumps({"threads": args.threads, "times": times, "median": sorted(times)[len(times) // 2],
                      "active_features": int(graph.active_features.shape[0]), "max_centred_logit_gap_vs_interp": logit_gap, "adjacency": list(graph.adjacency_matrix.shape)}))


if __name__ == "__main__":
    main()
