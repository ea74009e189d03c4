"""``interp transcoder export`` / ``import``: folders in SAELens' and sparsify's layouts and back,
with the same function; what a format cannot hold is refused before anything is written.
(sparsify's own loader is run on these folders in tests/integration/test_transcoders_sparsify.py.)"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from interp.cli import main
from interp.errors import ConfigError, StoreError, TranscoderLoadError
from interp.io import write_marker
from interp.transcoders import formats, load_run, registry, sparsify
from interp.transcoders.data import layer_hooks
from interp.transcoders.interop import ExportConfig, ImportConfig, export, import_transcoders

D, D_SAE = 8, 40


@pytest.fixture
def planted(planted_transcoder):
    return lambda name, layer: planted_transcoder(name, D, D_SAE, k=4, layer=layer)


def saved_run(planted, path, names: list[str]) -> dict[int, object]:
    """A folder of saved transcoders (what load_run reads), layer i of architecture names[i]."""
    tcs = {layer: planted(name, layer) for layer, name in enumerate(names)}
    for layer, tc in tcs.items():
        formats.save(tc, path / f"layer_{layer}", hook_name=tc.hook_name, hook_name_out=tc.hook_name_out)
    return tcs


def x_in(seed: int = 9) -> torch.Tensor:
    return 2 * torch.randn(300, D, generator=torch.Generator().manual_seed(seed)) + 1


def sparsify_forward(folder) -> tuple[dict, callable]:
    """sparsify's SparseCoder.forward for a transcoder, written out from its cfg.json and tensors:
    TopK_k(ReLU(x @ encoder.weight.T + encoder.bias)) @ W_dec + b_dec (+ x @ W_skip.T)."""
    cfg = json.loads((folder / "cfg.json").read_text())
    t = load_file(str(folder / "sae.safetensors"))

    def forward(x):
        pre = torch.relu(x @ t["encoder.weight"].T + t["encoder.bias"])
        values, indices = pre.topk(cfg["k"], dim=-1)
        acts = torch.zeros_like(pre).scatter_(-1, indices, values)
        out = acts @ t["W_dec"] + t["b_dec"]
        return out + x @ t["W_skip"].T if cfg["skip_connection"] else out

    return cfg, forward


def test_sparsify_export_round_trip(planted, tmp_path, capsys):
    names = list(sparsify.EXPORTABLE)
    tcs = saved_run(planted, tmp_path / "run", names)
    assert main(["transcoder", "export", str(tmp_path / "run"), "--format", "sparsify", "--out", str(tmp_path / "sp")]) == 0
    assert "SparseCoder.load_many" in capsys.readouterr().out
    folders = sorted(p.name for p in (tmp_path / "sp").iterdir() if p.is_dir())  # beside interp's .interp.json/.lock
    assert folders == [f"blocks.{layer}.mlp" for layer in range(len(names))]
    x = x_in()
    for layer, tc in tcs.items():
        cfg, forward = sparsify_forward(tmp_path / "sp" / f"blocks.{layer}.mlp")
        assert cfg["transcode"] is True and cfg["activation"] == "topk" and cfg["d_in"] == D
        assert cfg["k"] == (4 if registry.get(tc.arch).sparse_k else D_SAE)  # relu: TopK over all latents
        assert cfg["skip_connection"] is tc.has_skip
        with torch.no_grad():
            torch.testing.assert_close(forward(x), tc(x), rtol=1e-5, atol=1e-5)
    assert main(["transcoder", "import", str(tmp_path / "sp"), "--format", "sparsify", "--out", str(tmp_path / "back")]) == 0
    back = load_run(tmp_path / "back")
    assert sorted(back) == sorted(tcs)
    for layer, tc in tcs.items():
        assert back[layer].arch == tc.arch and back[layer].cfg == tc.cfg  # the interp record restores the architecture
        assert (back[layer].hook_name, back[layer].hook_name_out) == layer_hooks(layer)
        with torch.no_grad():
            torch.testing.assert_close(back[layer](x), tc(x), rtol=1e-5, atol=1e-5)


def test_sparsify_folder_without_interp_record_imports_as_topk(planted, tmp_path):
    """A folder sparsify itself wrote has no interp key: its TopK settings and hookpoint name say it all."""
    tcs = saved_run(planted, tmp_path / "run", ["relu", "skip_topk"])
    sparsify.save_run(tcs, tmp_path / "sp")
    for folder in (tmp_path / "sp").iterdir():
        cfg = json.loads((folder / "cfg.json").read_text())
        del cfg["interp"]
        (folder / "cfg.json").write_text(json.dumps(cfg))
    back = sparsify.load_run(tmp_path / "sp")
    assert [back[0].arch, back[1].arch] == ["topk", "skip_topk"] and back[0].cfg.k == D_SAE and back[1].cfg.k == 4
    x = x_in()
    for layer in (0, 1):
        _, forward = sparsify_forward(tmp_path / "sp" / f"blocks.{layer}.mlp")
        assert back[layer].hook_name == layer_hooks(layer)[0]
        with torch.no_grad():
            torch.testing.assert_close(back[layer](x), forward(x), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(back[layer](x), tcs[layer](x), rtol=1e-5, atol=1e-5)


def test_sparsify_refuses_what_it_cannot_hold(planted, tmp_path):
    saved_run(planted, tmp_path / "run", ["topk", "jumprelu"])
    with pytest.raises(StoreError, match="sparsify has no jumprelu transcoder"):
        export(ExportConfig(run=str(tmp_path / "run"), format="sparsify", out=str(tmp_path / "sp")))
    assert not (tmp_path / "sp").exists()  # nothing written, not even the topk layer
    # a coder sparsify trained on a Hugging Face module reads another input: refused, with the reason
    tcs = saved_run(planted, tmp_path / "run2", ["topk"])
    sparsify.save(tcs[0], tmp_path / "hf" / "h.0.mlp")
    cfg = json.loads((tmp_path / "hf" / "h.0.mlp" / "cfg.json").read_text())
    del cfg["interp"]
    (tmp_path / "hf" / "h.0.mlp" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(TranscoderLoadError, match="LayerNorm's output with its weight and bias"):
        sparsify.load_run(tmp_path / "hf")
    cfg["transcode"] = False
    (tmp_path / "hf" / "h.0.mlp" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(TranscoderLoadError, match="sparse autoencoder"):
        sparsify.load_run(tmp_path / "hf")
    # a post-norm model's transcoder reads resid_mid and predicts hook_mlp_out, after ln2: blocks.L.mlp is not that
    olmo = planted("topk", 0)
    olmo.hook_name, olmo.hook_name_out = layer_hooks(0, "resid_mid")
    with pytest.raises(TranscoderLoadError, match="post-norm block"):
        sparsify.save_run({0: olmo}, tmp_path / "olmo")


def test_saelens_export_writes_top_level_settings_and_import_reads_saelens_folders(planted, tmp_path):
    tcs = saved_run(planted, tmp_path / "run", ["topk", "skip"])
    # a TopK file as an older interp wrote it: k only in the interp record
    cfg_path = tmp_path / "run" / "layer_0" / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["k"]
    cfg_path.write_text(json.dumps(cfg))
    result = export(ExportConfig(run=str(tmp_path / "run"), format="saelens", out=str(tmp_path / "sl")))
    assert result.architectures == {0: "topk", 1: "skip"}
    assert json.loads((tmp_path / "sl" / "layer_0" / "cfg.json").read_text())["k"] == 4
    imported = import_transcoders(ImportConfig(source=str(tmp_path / "sl"), format="saelens", out=str(tmp_path / "back")))
    assert imported.folders == {0: str(tmp_path / "back" / "layer_0"), 1: str(tmp_path / "back" / "layer_1")}
    back, x = load_run(tmp_path / "back"), x_in()
    with torch.no_grad():
        for layer, tc in tcs.items():
            torch.testing.assert_close(back[layer](x), tc(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(StoreError, match="already holds a folder of transcoders; pass --overwrite true"):
        export(ExportConfig(run=str(tmp_path / "run"), format="saelens", out=str(tmp_path / "sl")))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(StoreError, match="not empty .*notes.txt.* not written by interp"):
        export(ExportConfig(run=str(tmp_path / "run"), format="saelens", out=str(tmp_path / "mine")))
    write_marker(tmp_path / "store", {"kind": "activation-store", "what": "an activation store", "complete": True})
    with pytest.raises(StoreError, match="holds an activation store, not a folder of transcoders"):
        export(ExportConfig(run=str(tmp_path / "run"), format="saelens", out=str(tmp_path / "store"), overwrite=True))
    with pytest.raises(ConfigError, match="--out must name the folder"):
        ExportConfig(run="r", format="sparsify", out="")
