"""Cross-layer transcoders on a tiny model of every family (tests/support/families.py).

Ground truth per family: a CLT over every layer, trained from the model streamed, explains
more of each output layer than at initialisation, its replacement model (every MLP replaced)
runs and evaluation reports one row per layer. Parallel-block families (attention and MLP both
read ``resid_pre``) have no ``resid_mid``: asking for it is refused in one sentence, and the
CLT reads the normalised MLP input (``--input-site ln2_normalized``) there. Post-norm blocks
(OLMo) read ``resid_mid``, which is the MLP's own input there.
"""

from __future__ import annotations

import pytest
import torch
from support.families import family_params

MATRIX = family_params(extra=True)


def parallel(model) -> bool:
    return bool(getattr(model.cfg, "parallel_attn_mlp", False))


@pytest.mark.slow
@pytest.mark.parametrize("family", MATRIX)
def test_clt_trains_and_replaces_every_mlp(family, family_models, tmp_path):
    from interp.cache import StreamingActivations
    from interp.errors import UnknownHookError
    from interp.transcoders import OptimConfig, TrainConfig, evaluate, load_run, registry, train
    from interp.transcoders.data import required_hooks
    from interp.transcoders.evaluation import EvalConfig

    model = family_models[family]
    torch.set_num_threads(1)
    tokens = torch.randint(1, model.cfg.d_vocab, (32, 16), generator=torch.Generator().manual_seed(1))
    tokens[:, 0] = model.tokenizer.bos_token_id if model.tokenizer.bos_token_id is not None else 0
    site = "ln2_normalized" if parallel(model) else "resid_mid"
    cfg = TrainConfig(model="unused", layers="all", arch="clt", k=8, expansion=2, tokens="8k", batch_size=128, input_site=site,
                      out=str(tmp_path / "run"), checkpoint_every=None, progress=False, device="cpu", optim=OptimConfig(lr=1e-2))
    wirings = cfg.wirings(list(range(model.cfg.n_layers)))
    if parallel(model):
        with pytest.raises(UnknownHookError, match="in parallel"):
            StreamingActivations(model, required_hooks(TrainConfig(arch="clt").wirings([0])), tokens)
    train(cfg, model=model, source=StreamingActivations(model, required_hooks(wirings), tokens, forward_batch=16))
    eval_cfg = EvalConfig(run=str(tmp_path / "run"), batch_size=8, n_features=1, progress=False, device="cpu")
    trained = evaluate(str(tmp_path / "run"), eval_cfg, model=model, tokens=tokens[:8])
    assert trained.kind == "cross-layer" and [r.layer for r in trained.layers] == list(range(model.cfg.n_layers))
    assert torch.isfinite(torch.tensor(trained.ce_all_spliced))
    arch = registry.get("clt")
    init = arch.transcoder(cfg.arch_config(model.cfg.d_model, model.cfg.d_model, model.cfg.n_layers), seed=cfg.seed * 1000)
    init.wire(wirings[0])
    before = evaluate(init, eval_cfg, model=model, tokens=tokens[:8])
    for now, then in zip(trained.layers, before.layers):
        assert now.fvu < min(0.8, 0.6 * then.fvu), f"layer {now.layer}: FVU {now.fvu:.3f} after training, {then.fvu:.3f} before"
    assert load_run(tmp_path / "run").hook_names_in == list(wirings[0].hooks_in)
