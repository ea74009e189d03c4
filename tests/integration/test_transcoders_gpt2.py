"""GPT-2 small: a short TopK run on one layer explains most of its MLP and recovers most of the CE gap."""

from __future__ import annotations

import pytest

from interp.transcoders import EvalConfig, TrainConfig, evaluate, train


def reference_text(path, n_docs: int = 4000) -> str:
    from interp.reference.corpus import CorpusGenerator

    lines = []
    for _, doc in zip(range(n_docs), CorpusGenerator(seed=0)):
        lines.append("".join(doc.tokens).replace("\u2581", " ").strip())
    path.write_text("\n\n".join(lines), encoding="utf-8")
    return str(path)


@pytest.mark.gpt2
@pytest.mark.slow
def test_gpt2_layer_transcoder(tmp_path, gpt2_model):
    text = reference_text(tmp_path / "corpus.txt")
    cfg = TrainConfig(
        model="gpt2", layers="6", arch="topk", k=32, expansion=4, tokens="96k", batch_size=1024, ctx_len=128,
        dataset=text, out=str(tmp_path / "tc"), progress=False, device="cpu", checkpoint_every=None,
    )
    cfg.optim.lr = 2e-3
    result = train(cfg, model=gpt2_model)
    assert result.final["layer_6"]["FVU"] < 0.5
    report = evaluate(str(tmp_path / "tc"), EvalConfig(run=str(tmp_path / "tc"), tokens="4k", dataset=text, device="cpu"), model=gpt2_model)
    layer = report.layers[0]
    assert layer.l0 <= 32
    assert layer.fvu < 0.6
    assert layer.recovered_vs_zero > 0.5, report.table()
