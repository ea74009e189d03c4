"""interp's transcoder files in SAELens: every architecture loads with SAELens' own loaders and
computes what interp computes; a TopK file is never run with another k."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from interp.errors import StoreError, TranscoderLoadError
from interp.transcoders import formats, registry

HOOK_IN, HOOK_OUT = "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out"
D, D_SAE, K = 8, 48, 3  # d_sae above 32, SAELens TopK default, so a default k would run


def inputs(seed: int = 1) -> torch.Tensor:
    return 3 * torch.randn(200, D, generator=torch.Generator().manual_seed(seed)) + 1


def assert_same_function(sae, tc, x):
    """SAELens' ``sae`` and interp's ``tc`` agree on encode, decode and forward (to 1e-5)."""
    with torch.no_grad():
        acts = tc.encode(x)
        assert (acts > 0).any(), "a planted transcoder with no active latent tests nothing"
        torch.testing.assert_close(sae.encode(x), acts, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae.decode(acts), tc.decode(acts), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae(x), tc(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae.forward_with_activations(x)[0], tc(x), rtol=1e-5, atol=1e-5)


@pytest.fixture
def planted(planted_transcoder):
    """``planted(name, layer=0)``: a random transcoder of ``name`` with this file's shapes."""
    return lambda name, layer=0: planted_transcoder(name, D, D_SAE, k=K, layer=layer)


@pytest.fixture(scope="module")
def saelens():
    import interp.transcoders.saelens as module

    return module


@pytest.mark.parametrize("name", registry.names(cross_layer=False))
def test_every_architecture_loads_with_saelens_and_agrees(tmp_path, saelens, name, planted):
    from sae_lens import SAE

    tc = planted(name)
    formats.save(tc, tmp_path, hook_name=HOOK_IN, hook_name_out=HOOK_OUT)
    sae = SAE.load_from_disk(str(tmp_path))
    assert sae.cfg.architecture() == formats.saelens_architecture(name)
    assert (sae.cfg.metadata.hook_name, sae.cfg.metadata.hook_name_out) == (HOOK_IN, HOOK_OUT)
    assert sae.cfg.d_out == D
    x = inputs()
    assert_same_function(sae, tc, x)  # against the transcoder as trained (normalisation not folded)
    assert_same_function(sae, formats.load(tmp_path), x)
    # from_pretrained-style dict loading: SAE.from_dict on the file's config, then its weights
    from_dict = SAE.from_dict(json.loads((tmp_path / "cfg.json").read_text()))
    assert type(from_dict) is type(sae)
    from_dict.load_state_dict(sae.state_dict())
    assert_same_function(from_dict, tc, x)
    back = formats.from_saelens(sae)
    assert back.arch == name and dataclasses.asdict(back.cfg)["d_sae"] == D_SAE
    with torch.no_grad():
        torch.testing.assert_close(back(x), tc(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", registry.names(cross_layer=False))
def test_to_saelens_computes_the_same_function(saelens, name, planted):
    tc = planted(name, layer=3)
    sae = saelens.to_saelens(tc)
    assert sae.cfg.architecture() == formats.saelens_architecture(name)
    assert_same_function(sae, tc, inputs(4))
    back = formats.as_transcoder(sae)  # what for_model does with a SAELens object, interp's TopK classes included
    assert back.arch == name and back.hook_name == tc.hook_name
    with torch.no_grad():
        torch.testing.assert_close(back(inputs(4)), tc(inputs(4)), rtol=1e-5, atol=1e-5)


def test_to_saelens_needs_hook_points(saelens, planted):
    tc = planted("relu")
    tc.hook_name = None
    with pytest.raises(TranscoderLoadError, match="hook_name="):
        saelens.to_saelens(tc)
    sae = saelens.to_saelens(tc, hook_name="blocks.3.ln2.hook_normalized", hook_name_out="blocks.3.hook_mlp_out")
    assert sae.cfg.metadata.hook_name == "blocks.3.ln2.hook_normalized"


def test_from_pretrained_loads_a_topk_repo(tmp_path, monkeypatch, saelens, planted):
    """``SAE.from_pretrained`` on a hub repo of interp's files (the hub's downloads answered from disk)."""
    from sae_lens import SAE
    from sae_lens.loading import pretrained_sae_loaders as loaders

    tc = planted("skip_topk")
    formats.save(tc, tmp_path / "layer_0", hook_name=HOOK_IN, hook_name_out=HOOK_OUT)

    def hub_download(repo_id, filename, **_):
        assert repo_id == "someone/interp-transcoders"
        if not (tmp_path / filename).is_file():
            raise loaders.EntryNotFoundError(f"{filename} is not in {repo_id}")
        return str(tmp_path / filename)

    monkeypatch.setattr(loaders, "hf_hub_download", hub_download)
    sae = SAE.from_pretrained("someone/interp-transcoders", "layer_0")
    assert type(sae) is saelens.SkipTopKTranscoder and sae.cfg.k == K
    assert_same_function(sae, tc, inputs())


def test_settings_saelens_reads_are_at_the_top_level(tmp_path, saelens, planted):
    """Every field of the registered SAELens configs beyond SAELens' own TranscoderConfig is one
    of formats.SAELENS_SETTINGS, and save writes each at cfg.json's top level with its value."""
    from sae_lens.saes.transcoder import TranscoderConfig

    base = {f.name for f in dataclasses.fields(TranscoderConfig)}
    for arch_name, (_, config) in saelens.CLASSES.items():
        extra = {f.name for f in dataclasses.fields(config)} - base
        assert extra and extra <= set(formats.SAELENS_SETTINGS), (arch_name, extra)
        name = formats.interp_architecture(arch_name)
        tc = planted(name)
        formats.save(tc, tmp_path / name, hook_name=HOOK_IN, hook_name_out=HOOK_OUT)
        cfg = json.loads((tmp_path / name / "cfg.json").read_text())
        for setting in extra:
            assert cfg[setting] == getattr(tc.cfg, setting) == cfg["interp"]["config"][setting]


def test_saelens_runs_the_files_k_never_a_default(tmp_path, saelens, planted):
    """The failure this replaces: SAELens ran interp's TopK file with k=32 (its default) instead
    of the file's k. Now the file's k is what runs, and a file without one is refused."""
    from sae_lens import SAE

    tc = planted("topk")
    formats.save(tc, tmp_path / "ok", hook_name=HOOK_IN, hook_name_out=HOOK_OUT)
    sae = SAE.load_from_disk(str(tmp_path / "ok"))
    x = inputs()
    with torch.no_grad():
        active = (sae.encode(x) != 0).sum(-1)
    assert sae.cfg.k == K and int(active.max()) == K  # the file's 3 latents per row, not a default 32

    # a TopK file without k at the top level (as interp wrote before): refused, not defaulted
    cfg = json.loads((tmp_path / "ok" / "cfg.json").read_text())
    del cfg["k"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "old" / formats.WEIGHTS_FILE).write_bytes((tmp_path / "ok" / formats.WEIGHTS_FILE).read_bytes())
    with pytest.raises(ValueError, match="needs k"):
        SAE.load_from_disk(str(tmp_path / "old"))
    assert formats.load(tmp_path / "old").cfg.k == K  # interp still reads its own record
    with pytest.raises(ValueError, match="needs k"):
        saelens.TopKTranscoderConfig(d_in=D, d_sae=D_SAE, d_out=D, apply_b_dec_to_input=False)

    # a top-level k edited away from the interp record: interp refuses the file
    cfg["k"] = K + 1
    (tmp_path / "old" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(StoreError, match="k=4 at its top level"):
        formats.load(tmp_path / "old")
    # a file SAELens wrote (top-level fields only, no interp record) loads in interp with its k
    sae.save_model(tmp_path / "from_saelens")
    loaded = formats.load(tmp_path / "from_saelens")
    assert loaded.arch == "topk" and loaded.cfg.k == K
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tc(x), rtol=1e-5, atol=1e-5)


def test_saelens_alone_refuses_topk_until_interp_registers_it(tmp_path, planted):
    """In a fresh process: importing interp (and saving) registers nothing; SAELens refuses the
    file naming its architecture; after ``import interp.transcoders.saelens`` it loads."""
    formats.save(planted("topk"), tmp_path, hook_name=HOOK_IN, hook_name_out=HOOK_OUT)
    code = textwrap.dedent(f"""
        import json
        import interp, interp.transcoders, interp.transcoders.formats
        from sae_lens import SAE
        from sae_lens.registry import SAE_CLASS_REGISTRY
        assert "interp_topk_transcoder" not in SAE_CLASS_REGISTRY
        try:
            SAE.load_from_disk({str(tmp_path)!r})
        except KeyError as err:
            refused = str(err)
        print(json.dumps({{"refused": refused}}))
        import interp.transcoders.saelens
        import interp.transcoders.saelens  # twice: registers once
        print(json.dumps({{"k": SAE.load_from_disk({str(tmp_path)!r}).cfg.k}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=os.environ, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines == [{"refused": "'interp_topk_transcoder'"}, {"k": K}]
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert "import interp.transcoders.saelens" in cfg["metadata"]["loading"]
