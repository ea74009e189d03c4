"""Hook sites: names, validation against the model, and helpful errors."""

from __future__ import annotations

import pytest
import torch

from interp import hooks
from interp.errors import UnknownHookError
from interp.planted import noop_model


@pytest.fixture(scope="module")
def model():
    return noop_model(n_layers=3)


def test_mlp_input_is_the_normalized_ln2_output():
    assert hooks.hook_name("mlp_in", 2) == "blocks.2.ln2.hook_normalized"
    assert hooks.hook_name("mlp_out", 0) == "blocks.0.hook_mlp_out"


def test_every_site_exists_in_a_transformer_lens_model(model):
    for site in hooks.SITES:
        names = hooks.resolve(model, site)
        assert names == [hooks.hook_name(site, layer) for layer in range(3)]
        assert all(name in model.hook_dict for name in names)


def test_unknown_hook_lists_close_matches(model):
    with pytest.raises(UnknownHookError) as err:
        hooks.validate(model, ["blocks.1.hook_mlp_outt"])
    assert "blocks.1.hook_mlp_out" in str(err.value)
    assert "blocks.1.hook_mlp_out" in err.value.close_matches


def test_unknown_site_lists_the_sites():
    with pytest.raises(UnknownHookError, match="mlp_out"):
        hooks.hook_name("mlp_outs", 0)


def test_layer_out_of_range_names_the_valid_range(model):
    with pytest.raises(ValueError, match=r"layers 0\.\.2"):
        hooks.resolve(model, "mlp_in", [3])


def test_layer_of_and_last_layer():
    assert hooks.layer_of("blocks.7.ln2.hook_normalized") == 7
    assert hooks.layer_of("hook_embed") is None
    assert hooks.last_layer(["blocks.1.hook_mlp_out", "blocks.3.hook_resid_pre"]) == 3
    assert hooks.last_layer(["ln_final.hook_normalized"]) is None


def test_output_norms_and_write_directions_per_architecture(model, family_models):
    """Gemma 2 normalises each sublayer's output (ln1_post/ln2_post); a write direction takes
    the linear part of that norm, its weight. Pre-norm and parallel blocks write directly."""
    gemma = family_models["gemma2"]
    assert hooks.output_norm(gemma, 0, "mlp") is gemma.blocks[0].ln2_post
    assert hooks.output_norm(gemma, 1, "attn") is gemma.blocks[1].ln1_post
    vectors = torch.randn(3, gemma.cfg.d_model)
    torch.testing.assert_close(hooks.write_directions(gemma, 0, "mlp", vectors), vectors * gemma.blocks[0].ln2_post.w)
    assert hooks.output_norm(model, 0, "mlp") is None
    plain = torch.randn(3, model.cfg.d_model)
    assert hooks.write_directions(model, 0, "mlp", plain) is plain
    pythia = family_models["pythia"]
    assert hooks.output_norm(pythia, 0, "attn") is None
    with pytest.raises(UnknownHookError, match="run in parallel"):
        hooks.resolve(pythia, "resid_mid")
