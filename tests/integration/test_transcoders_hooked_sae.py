"""interp's transcoders spliced into SAELens' HookedSAETransformer give the logits of interp's own
splice (interp.transcoders.splice) on the reference model, for every architecture."""

from __future__ import annotations

import pytest
import torch

from interp.transcoders import formats, registry
from interp.transcoders.data import layer_hooks
from interp.transcoders.evaluation import splice

LAYERS = (1, 2)
D_SAE = 256


@pytest.fixture(scope="module")
def hst(reference_model):
    from interp.transcoders.saelens import hooked_sae_transformer

    return hooked_sae_transformer(reference_model)


@pytest.fixture(scope="module")
def tokens(reference_model):
    return torch.randint(0, reference_model.cfg.d_vocab, (2, 24), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def mlp_acts(reference_model, tokens):
    hooks = [h for layer in LAYERS for h in layer_hooks(layer)]
    with torch.no_grad():
        _, cache = reference_model.run_with_cache(tokens, names_filter=lambda n: n in hooks)
    d = reference_model.cfg.d_model
    return {h: cache[h].reshape(-1, d) for h in hooks}


@pytest.fixture
def planted(planted_transcoder, mlp_acts, reference_model):
    """``planted(name, layer)``: a random transcoder normalised on the layer's real MLP input and
    output, so its prediction has the MLP's scale and moves the logits."""

    def make(name: str, layer: int):
        hin, hout = layer_hooks(layer)
        d = reference_model.cfg.d_model
        return planted_transcoder(name, d, D_SAE, k=16, layer=layer, x=mlp_acts[hin], y=mlp_acts[hout])

    return make


def test_hooked_sae_transformer_is_the_same_model(reference_model, hst, tokens):
    with torch.no_grad():
        assert torch.equal(hst(tokens), reference_model(tokens))


@pytest.mark.parametrize("name", registry.names(cross_layer=False))
def test_saelens_splice_equals_interp_splice(tmp_path, reference_model, hst, tokens, planted, name):
    """Files interp saved, loaded with SAE.load_from_disk, attached with HookedSAETransformer."""
    from sae_lens import SAE

    from interp.transcoders.saelens import skip_connection_hooks

    tcs = {layer: planted(name, layer) for layer in LAYERS}
    for layer, tc in tcs.items():
        formats.save(tc, tmp_path / f"layer_{layer}", hook_name=tc.hook_name, hook_name_out=tc.hook_name_out)
    saes = [SAE.load_from_disk(str(tmp_path / f"layer_{layer}")) for layer in LAYERS]
    with torch.no_grad():
        clean = reference_model(tokens)
        with splice(reference_model, tcs):
            ours = reference_model(tokens)
        theirs = hst.run_with_hooks_with_saes(tokens, saes=saes, fwd_hooks=skip_connection_hooks(saes))
        assert hst.acts_to_saes == {}  # SAELens detached them again
        torch.testing.assert_close(hst(tokens), clean)
    assert (ours - clean).abs().max() > 1.0, "the splice must change the logits for the comparison to mean anything"
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)
    if registry.get(name).transcoder.has_skip:
        # HookedSAETransformer alone leaves the skip path out (it calls encode, then decode);
        # when SAELens adds it, skip_connection_hooks would count it twice and must go.
        with torch.no_grad():
            without = hst.run_with_saes(tokens, saes=saes)
        assert (without - ours).abs().max() > 1.0


def test_to_saelens_objects_splice_directly(reference_model, hst, tokens, planted):
    """Transcoders in memory (no file) converted with to_saelens splice the same way."""
    from interp.transcoders.saelens import to_saelens

    tcs = {layer: planted("topk", layer) for layer in LAYERS}
    with torch.no_grad():
        with splice(reference_model, tcs):
            ours = reference_model(tokens)
        theirs = hst.run_with_saes(tokens, saes=[to_saelens(tc) for tc in tcs.values()])
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)
