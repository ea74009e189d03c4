"""Hook sites: names, validation against the model, and helpful errors."""

from __future__ import annotations

import pytest
import torch

from interp import hooks
from interp.errors import ConfigError, UnknownHookError
from interp.planted import noop_model


@pytest.fixture(scope="module")
def model():
    return noop_model(n_layers=3)


def transformer_lens_name(site: str, layer: int) -> str:
    """What TransformerLens' own ``get_act_name`` calls ``site`` (``ln2_normalized`` is its ``("normalized", L, "ln2")``)."""
    from transformer_lens.utilities import get_act_name

    if site.startswith(("ln1_", "ln2_")):
        norm, kind = site.split("_")
        return get_act_name(kind, layer, norm)
    return get_act_name(site, layer)


@pytest.mark.parametrize("site", [*hooks.SITES, *(a for a in hooks.ALIASES if a not in ("attn_z", "attn_pattern"))])
def test_every_site_and_alias_is_the_hook_transformer_lens_names(site):
    for layer in (0, 7):
        assert hooks.hook_name(site, layer) == transformer_lens_name(site, layer)


def test_interp_names_that_changed_meaning_or_spelling():
    assert hooks.hook_name("mlp_in", 2) == "blocks.2.hook_mlp_in"  # TransformerLens' meaning: before ln2
    assert hooks.hook_name("ln2_normalized", 2) == "blocks.2.ln2.hook_normalized"  # interp's old mlp_in
    assert hooks.hook_name("attn_z", 1) == hooks.hook_name("z", 1) == "blocks.1.attn.hook_z"
    assert hooks.hook_name("attn_pattern", 1) == "blocks.1.attn.hook_pattern"
    assert hooks.hook_name("hook_mlp_out", 3) == "blocks.3.hook_mlp_out"  # a hook name inside the block
    assert hooks.site_of("blocks.3.ln2.hook_normalized") == ("ln2_normalized", 3)
    assert hooks.site_of("hook_embed") is None and hooks.site_of("blocks.3.ln2_post.hook_normalized") is None
    with pytest.raises(ValueError, match="full hook name"):
        hooks.hook_name("blocks.0.hook_mlp_out", 1)


def test_every_site_that_fires_exists_in_a_transformer_lens_model(model):
    sites = hooks.all_sites(model)
    for site, names in sites.items():
        assert names == ([] if not names else hooks.resolve(model, site)), site
        assert all(name in model.hook_dict for name in names)
    assert {site for site, names in sites.items() if names} >= {"resid_pre", "z", "pattern", "ln2_normalized", "pre",
                                                                "post", "mlp_out", "resid_post"}
    assert hooks.gated_sites(model) == {"attn_in": "use_attn_in", "q_input": "use_split_qkv_input",
                                        "k_input": "use_split_qkv_input", "v_input": "use_split_qkv_input",
                                        "result": "use_attn_result", "mlp_in": "use_hook_mlp_in"}
    assert sites["mlp_in"] == [] and sites["result"] == []


def test_mlp_in_on_a_model_that_does_not_compute_it_names_both_choices(model):
    with pytest.raises(ConfigError) as err:
        hooks.resolve(model, "mlp_in", 0)
    message = str(err.value)
    assert "use_hook_mlp_in" in message and "hook_mlp_in" in message and "ln2_normalized" in message
    assert hooks.resolve(model, "hook_mlp_in", 0) == ["blocks.0.hook_mlp_in"]  # by its hook name: turned on when used
    assert hooks.resolve(model, "blocks.1.hook_mlp_in") == ["blocks.1.hook_mlp_in"]
    on = noop_model(n_layers=2)
    on.set_use_hook_mlp_in(True)
    assert hooks.resolve(on, "mlp_in") == ["blocks.0.hook_mlp_in", "blocks.1.hook_mlp_in"]


def test_opened_turns_the_flags_on_for_the_block_only(model):
    tokens = torch.zeros(1, 4, dtype=torch.long)
    names = ["blocks.0.hook_mlp_in", "blocks.1.attn.hook_result", "blocks.0.hook_mlp_out"]
    assert [hooks.gate(n) for n in names] == ["use_hook_mlp_in", "use_attn_result", None]
    seen = []
    with hooks.opened(model, names), model.hooks(fwd_hooks=[(n, lambda act, hook: seen.append(hook.name)) for n in names]):
        assert model.cfg.use_hook_mlp_in and model.cfg.use_attn_result
        model(tokens)
    assert seen == ["blocks.0.hook_mlp_in", "blocks.0.hook_mlp_out", "blocks.1.attn.hook_result"]
    with pytest.raises(RuntimeError, match="inside"), hooks.opened(model, names):
        raise RuntimeError("inside")
    assert not model.cfg.use_hook_mlp_in and not model.cfg.use_attn_result


def test_hook_names_in_place_of_sites(model):
    assert hooks.resolve(model, "ln2.hook_normalized", [0, 2]) == ["blocks.0.ln2.hook_normalized", "blocks.2.ln2.hook_normalized"]
    assert hooks.resolve(model, "hook_embed", [1]) == ["hook_embed"]
    assert hooks.expand(model, ["z", "attn_z", "blocks.2.hook_resid_post"], [1]) == ["blocks.1.attn.hook_z", "blocks.2.hook_resid_post"]
    with pytest.raises(UnknownHookError, match="Close matches: hook_mlp_out"):
        hooks.resolve(model, "hook_mlp_outt")
    with pytest.raises(UnknownHookError, match="Close matches: blocks.1.hook_mlp_out"):
        hooks.resolve(model, "blocks.1.hook_mlp_outt")


def test_the_mlp_input_is_ln2_normalized_except_in_post_norm_blocks(model):
    assert hooks.mlp_input(model, 1) == "blocks.1.ln2.hook_normalized"
    assert hooks.mlp_input_site("Gemma2ForCausalLM") == "ln2_normalized"
    for architecture in ("Olmo2ForCausalLM", "Olmo3ForCausalLM"):
        assert hooks.is_post_norm(architecture) and hooks.mlp_input_site(architecture) == "resid_mid"


@pytest.mark.parametrize("parallel", [False, True])
def test_without_norms_the_mlp_input_is_the_residual_stream_the_mlp_reads(parallel):
    """No ``ln2.hook_normalized`` exists in a norm-less block: the hook named must hold exactly
    the tensor the MLP module is called with."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_ctx=8, d_head=4, n_heads=4, d_mlp=32, d_vocab=20,
                                  act_fn="gelu", normalization_type=None, parallel_attn_mlp=parallel, seed=0)
    model = HookedTransformer(cfg)
    seen = {}
    handle = model.blocks[1].mlp.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    try:
        _, cache = model.run_with_cache(torch.randint(0, 20, (1, 8)))
    finally:
        handle.remove()
    name = hooks.mlp_input(model, 1)
    assert name == ("blocks.1.hook_resid_pre" if parallel else "blocks.1.hook_resid_mid")
    assert torch.equal(cache[name], seen["x"])


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
        hooks.resolve(model, "ln2_normalized", [3])


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
