"""Every family loads as a directory and by name from an offline Hugging Face cache, with the
logits of the ``transformers`` model it came from.

Tolerance: loaded with TransformerLens' default processing, the model's log-probabilities
must equal the ``transformers`` model's within ``ATOL`` = 1e-4 (log-probabilities, not
logits, because centring the unembedding shifts each position's logits by a constant);
loaded without processing, its logits must equal them within the same bound. Log-probs here
are of size ~6 (a 384-token vocabulary), so 1e-4 is ~2e-5 relative, about 150 float32 ulps:
room for the different order of operations (folded norms, fused attention kernels), while
the smallest error a wrong conversion makes on these models is over 0.3
(``test_each_family_exercises_what_it_claims``). The largest difference measured is 4e-6.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time

import pytest
import torch
from support.families import FAMILIES, PROMPTS, family_params, hooked_model, install_in_cache, save_checkpoint

from interp.errors import ModelLoadError
from interp.models import load_model

ATOL = 1e-4
HF_FAMILIES = family_params(hf_only=True, extra=True)


@pytest.fixture(scope="module")
def hf_models(family_dirs):
    """The ``transformers`` model of each family, read back from its directory."""
    from transformers import AutoModelForCausalLM

    return {
        key: AutoModelForCausalLM.from_pretrained(family_dirs[key]).eval() for key, f in FAMILIES.items() if f.is_hf
    }


def max_differences(model, hf_model) -> tuple[float, float]:
    """Largest |difference| of log-probabilities and of logits over :data:`PROMPTS`."""
    log_probs = logits = 0.0
    for prompt in PROMPTS:
        tokens = model.to_tokens(prompt)
        with torch.no_grad():
            ours, theirs = model(tokens), hf_model(tokens).logits
        log_probs = max(log_probs, (ours.log_softmax(-1) - theirs.log_softmax(-1)).abs().max().item())
        logits = max(logits, (ours - theirs).abs().max().item())
    return log_probs, logits


@pytest.mark.parametrize("family", HF_FAMILIES)
def test_directory_loads_with_the_transformers_models_logits(family, family_dirs, hf_models):
    model = load_model(family_dirs[family], device="cpu")
    assert model.cfg.original_architecture == hf_models[family].config.architectures[0]
    log_probs, _ = max_differences(model, hf_models[family])
    assert log_probs < ATOL

    raw = load_model(
        family_dirs[family], device="cpu", fold_ln=False, center_writing_weights=False, center_unembed=False
    )
    assert max_differences(raw, hf_models[family])[1] < ATOL


@pytest.mark.parametrize("family", HF_FAMILIES)
def test_name_loads_from_an_offline_cache(family, hf_cache, hf_models):
    name = hf_cache.install(family)
    start = time.perf_counter()
    model = load_model(name, device="cpu")
    assert time.perf_counter() - start < 20
    assert model.cfg.model_name == name.rsplit("/", 1)[-1]
    assert max_differences(model, hf_models[family])[0] < ATOL


@pytest.mark.parametrize(
    ("alias", "family"),
    [("gpt2-small", "gpt2"), ("tiny-stories-1M", "gpt-neo"), ("PYTHIA-14M", "pythia"), ("qwen2.5-0.5b", "qwen2")],
)
def test_aliases_and_any_case_resolve_through_transformer_lens(alias, family, hf_cache, hf_models):
    hf_cache.install(family)
    assert max_differences(load_model(alias, device="cpu"), hf_models[family])[0] < ATOL


def test_gpt2_found_under_its_new_hub_id(hf_cache, hf_models):
    hf_cache.install("gpt2", name="openai-community/gpt2")
    assert max_differences(load_model("gpt2", device="cpu"), hf_models["gpt2"])[0] < ATOL


def test_cached_repository_transformer_lens_does_not_know_loads_by_architecture(hf_cache, hf_models):
    name = hf_cache.install("llama", name="someone/tiny-llama-finetune")
    model = load_model(name, device="cpu")
    assert model.cfg.original_architecture == "LlamaForCausalLM"
    assert max_differences(model, hf_models["llama"])[0] < ATOL


@pytest.mark.parametrize(
    ("family", "directory"), [("llama", "tiny-llama"), ("gemma2", "tiny-gemma"), ("qwen2", "Llama-3.1-8B")]
)
def test_directory_name_does_not_choose_the_architecture(family, directory, family_dirs, tmp_path, hf_models):
    """TransformerLens picks Llama or Gemma (and even their published sizes) from a path's name."""
    path = shutil.copytree(family_dirs[family], tmp_path / directory)
    model = load_model(path, device="cpu")
    assert model.cfg.original_architecture == hf_models[family].config.architectures[0]
    assert max_differences(model, hf_models[family])[0] < ATOL


def test_gpt2_config_without_n_ctx_loads(family_dirs, tmp_path, hf_models):
    path = shutil.copytree(family_dirs["gpt2"], tmp_path / "gpt2")
    config = json.loads((path / "config.json").read_text())
    config.pop("n_ctx", None)  # transformers 5 writes n_positions only
    (path / "config.json").write_text(json.dumps(config))
    model = load_model(path, device="cpu")
    assert model.cfg.n_ctx == config["n_positions"]
    assert max_differences(model, hf_models["gpt2"])[0] < ATOL


def test_processing_follows_transformer_lens_rules(family_models):
    """LayerNorm models: folded and centred; RMSNorm: folded, not centred; soft-capped logits: unembedding not centred.

    (``solu`` is an object, passed through as it was built: its LayerNorms keep their weights.)
    """
    assert family_models["solu"].cfg.normalization_type == "LN"
    for key in ("gpt2", "pythia", "gpt-neo"):
        model = family_models[key]
        assert model.cfg.normalization_type == "LNPre"
        assert model.W_U.mean(-1).abs().max() < 1e-6
        assert model.W_out.mean(-1).abs().max() < 1e-6
    for key in ("llama", "qwen2", "mistral", "gemma2"):
        assert family_models[key].cfg.normalization_type == "RMSPre"
        assert family_models[key].W_out.mean(-1).abs().max() > 1e-4
    assert family_models["llama"].W_U.mean(-1).abs().max() < 1e-6
    assert family_models["gemma2"].W_U.mean(-1).abs().max() > 1e-4


def test_gemma2_logits_are_not_shifted(family_models, hf_models):
    """With logit soft-capping the unembedding stays as it is, so logits (not only log-probs) match."""
    assert max_differences(family_models["gemma2"], hf_models["gemma2"])[1] < ATOL


@pytest.mark.parametrize(
    ("family", "change"),
    [
        ("gemma2", {"attn_scores_soft_cap": -1.0}),
        ("gemma2", {"output_logits_soft_cap": -1.0}),
        ("gemma2", {"use_local_attn": False}),
        ("gemma2", {"attn_scale": 4.0}),
        ("mistral", {"use_local_attn": False}),
        ("gpt-neo", {"use_local_attn": False}),
        ("llama", {"use_NTK_by_parts_rope": False}),
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(v),
)
def test_each_family_exercises_what_it_claims(family, change, family_dirs, hf_models):
    """A conversion that ignored the feature would be caught: the logits move by far more than ATOL."""
    from transformer_lens import HookedTransformer

    model = load_model(
        family_dirs[family], device="cpu", fold_ln=False, center_writing_weights=False, center_unembed=False
    )
    wrong = HookedTransformer(dataclasses.replace(model.cfg, **change), model.tokenizer)
    weights = {k: v for k, v in model.state_dict().items() if "rotary" not in k}  # rotary tables follow the config
    wrong.load_state_dict(weights, strict=False)
    assert max_differences(wrong, hf_models[family])[0] > 1000 * ATOL


def test_hooked_transformer_passes_through():
    model = hooked_model("solu")
    assert load_model(model) is model
    assert load_model(model, device="cpu", dtype="float64", fold_ln=False) is model
    assert model.cfg.act_fn == "solu_ln"


def test_other_objects_are_refused_in_one_sentence(hf_models):
    with pytest.raises(ModelLoadError, match="not a GPT2LMHeadModel"):
        load_model(hf_models["gpt2"])


@pytest.mark.parametrize(
    ("spec", "suggested"),
    [
        ("gpt5", "gpt2"),
        ("llama-3.2-1b", "meta-llama/Llama-3.2-1B"),
        ("EleutherAI/pythia-14", "EleutherAI/pythia-14m"),
        ("Qwen/Qwen2.5-0.5", "Qwen/Qwen2.5-0.5B"),
        ("mistral-7b-v0.1", "mistralai/Mistral-7B-v0.1"),
    ],
)
def test_unknown_name_suggests_the_closest_known_names(spec, suggested, hf_cache):
    with pytest.raises(ModelLoadError) as err:
        load_model(spec)
    message = str(err.value)
    assert f"unknown model {spec!r}" in message and suggested in message.split("Did you mean:")[1]
    assert "\n" not in message


def test_uncached_name_offline_fails_fast_saying_what_was_tried(hf_cache):
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as err:
        load_model("EleutherAI/pythia-70m")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert str(hf_cache.hub) in message and "HF_HUB_OFFLINE" in message and "EleutherAI/pythia-70m" in message
    assert "load_model('reference')" in message and "\n" not in message


def test_unreachable_hub_is_probed_not_waited_for(hf_cache, monkeypatch):
    from interp.models import hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ModelLoadError, match=r"the hub at 127\.0\.0\.1 \(unreachable within 3 s\)"):
        load_model("EleutherAI/pythia-70m")
    assert not hub.hub_reachable(hub.hub_settings(), timeout=0.5)


@pytest.fixture
def online(hf_cache, monkeypatch):
    """``hf_cache`` with the hub "reachable": listing and downloading served from the families' directories."""
    import huggingface_hub

    from interp.models import hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda settings, timeout=None: True)
    by_name = {f.hub_name: key for key, f in FAMILIES.items() if f.is_hf}
    real_snapshot_download = huggingface_hub.snapshot_download

    def list_repo_files(self, repo_id, **kwargs):
        if repo_id not in by_name:
            raise OSError(f"401 Client Error: access to model {repo_id} is restricted")
        return ["config.json", "model.safetensors", "tokenizer.json", "onnx/model.onnx"]

    def snapshot_download(repo_id, local_files_only=False, **kwargs):
        if local_files_only:
            return real_snapshot_download(repo_id, local_files_only=True, **kwargs)
        assert kwargs["allow_patterns"] == ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"]
        hf_cache.install(by_name[repo_id])
        return real_snapshot_download(repo_id, local_files_only=True, cache_dir=kwargs["cache_dir"])

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return hf_cache


def test_name_not_in_the_cache_is_downloaded_then_converted(online, hf_models):
    model = load_model("mistral-7b", device="cpu")
    assert (online.hub / "models--mistralai--Mistral-7B-v0.1").is_dir()
    assert max_differences(model, hf_models["mistral"])[0] < ATOL


def test_failed_download_is_one_sentence(online):
    with pytest.raises(
        ModelLoadError, match=r"could not download google/gemma-2-9b from the hub \(OSError: 401.*HF_TOKEN"
    ):
        load_model("google/gemma-2-9b")


def test_incomplete_cached_copy_is_reported(hf_cache):
    name = hf_cache.install("pythia")
    snapshot = next((hf_cache.hub / ("models--" + name.replace("/", "--")) / "snapshots").iterdir())
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no transformers weights"):
        load_model(name)


def test_architecture_converted_only_at_published_sizes_is_refused_in_one_sentence(tmp_path):
    """TransformerLens builds Gemma 3 only from its tables of published sizes: a custom size is refused."""
    from support.families import build_tokenizer, decoder_kwargs
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    tokenizer = build_tokenizer()
    config = Gemma3TextConfig(**decoder_kwargs(tokenizer, num_key_value_heads=1, head_dim=16))
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(
        ModelLoadError, match=r"converts Gemma3ForCausalLM only for its published models \(google/gemma-3"
    ):
        load_model(tmp_path, device="cpu")


def test_directory_without_weights_is_reported(family_dirs, tmp_path):
    path = shutil.copytree(family_dirs["llama"], tmp_path / "no-weights")
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="could not read the Hugging Face checkpoint"):
        load_model(path, device="cpu")


def test_save_checkpoint_writes_a_loadable_tokenizer(tmp_path):
    path = save_checkpoint("qwen2", tmp_path / "qwen2")
    model = load_model(path, device="cpu")
    text = "Any text at all: zebra quartz 42!"
    assert model.to_string(model.to_tokens(text, prepend_bos=False)[0]) == text
    assert install_in_cache("qwen2", tmp_path / "hub", source=path) == "Qwen/Qwen2.5-0.5B"


@pytest.mark.parametrize(
    ("positions", "architecture", "soft_cap", "expected"),
    [
        ("standard", "GPT2LMHeadModel", -1.0, (True, True, True)),
        ("shortformer", "GPT2LMHeadModel", -1.0, (False, False, False)),
        ("rotary", "Olmo2ForCausalLM", -1.0, (False, False, True)),
        ("rotary", "Gemma2ForCausalLM", 30.0, (True, True, False)),
    ],
)
def test_processing_rules_are_transformer_lens_from_pretrained_rules(positions, architecture, soft_cap, expected):
    from types import SimpleNamespace

    from interp.models.convert import processing_for

    cfg = SimpleNamespace(
        positional_embedding_type=positions, original_architecture=architecture, output_logits_soft_cap=soft_cap,
        model_name="m",
    )  # fmt: skip
    got = processing_for(cfg, fold_ln=True, center_writing_weights=True, center_unembed=True)
    assert (got["fold_ln"], got["center_writing_weights"], got["center_unembed"]) == expected
    assert not any(processing_for(cfg, fold_ln=False, center_writing_weights=False, center_unembed=False).values())
