"""Codebook bottlenecks on ground truth: identity, gradients, forcing, precision/recall."""

from __future__ import annotations

import pytest
import torch

from interp.codebooks.bottleneck import Bottleneck, BottleneckConfig
from interp.codebooks.insert import Codebooks, inserted
from interp.codebooks.search import (
    CodeRecord,
    best_neuron_at_recall,
    match_property,
    precision_recall,
    property_mask,
)
from interp.codebooks.steer import js_divergence, next_token_shift
from interp.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_model():
    from interp.reference.model import architecture, build
    from interp.reference.tokenizer import build_tokenizer

    tok = build_tokenizer()
    cfg = {**architecture(len(tok)), "n_layers": 2, "d_model": 32, "d_mlp": 64, "n_heads": 2, "d_head": 16, "n_ctx": 32}
    return build(cfg, tok, seed=0).eval()


def test_k1_with_codes_equal_to_inputs_is_identity():
    x = torch.randn(50, 1, 16)
    book = Bottleneck(BottleneckConfig(d=16, n_codes=50, k=1))
    book.codebook.data[0] = x[:, 0]
    snap = book(x)
    assert torch.equal(snap.codes[:, 0, 0], torch.arange(50))
    torch.testing.assert_close(snap.output, x, rtol=0, atol=0)
    torch.testing.assert_close(snap.scores[:, 0, 0], torch.ones(50))


def test_identity_holds_per_head_too():
    x = torch.randn(20, 3, 8)
    book = Bottleneck(BottleneckConfig(d=8, n_codes=20, k=1, n_groups=3))
    book.codebook.data.copy_(x.transpose(0, 1))
    torch.testing.assert_close(book(x).output, x, rtol=0, atol=0)


def test_output_is_mean_of_top_k_codes():
    book = Bottleneck(BottleneckConfig(d=4, n_codes=3, k=2))
    book.codebook.data[0] = torch.tensor([[1.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 1.0, 0]])
    x = torch.tensor([[[1.0, 1.0, 0.1, 0]]])
    snap = book(x)
    assert sorted(snap.codes.flatten().tolist()) == [0, 1]
    torch.testing.assert_close(snap.output, torch.tensor([[[0.5, 2.5, 0, 0]]]))


def test_gradients_reach_the_codes_and_pass_straight_through():
    book = Bottleneck(BottleneckConfig(d=8, n_codes=10, k=2))
    x = torch.randn(6, 1, 8, requires_grad=True)
    snap = book(x)
    weights = torch.randn(8)
    (snap.output * weights).sum().backward()
    chosen = snap.codes.unique()
    grad_norm = book.codebook.grad[0].norm(dim=-1)
    assert (grad_norm[chosen] > 0).all()
    unchosen = torch.ones(10, dtype=torch.bool)
    unchosen[chosen] = False
    assert (grad_norm[unchosen] == 0).all()
    torch.testing.assert_close(x.grad, weights.expand(6, 1, 8))  # straight-through


def test_codebook_loss_moves_codes_toward_inputs_only():
    book = Bottleneck(BottleneckConfig(d=8, n_codes=4, k=1))
    x = torch.randn(5, 1, 8, requires_grad=True)
    snap = book(x)
    book.codebook_loss(snap, x).backward()
    assert x.grad is None or torch.all(x.grad == 0)
    assert book.codebook.grad.abs().sum() > 0


def test_forcing_puts_exactly_the_chosen_code_in_the_active_set(tiny_model):
    books = Codebooks.create(tiny_model, ["mlp_out"], [0], n_codes=16, k=1)
    hook = "blocks.0.hook_mlp_out"
    tokens = torch.randint(0, 400, (3, 12))
    with inserted(tiny_model, books) as run:
        tiny_model(tokens)
        natural = run.codes[hook].clone()
    code = int(torch.bincount(natural.flatten(), minlength=16).argmin())  # a code rarely chosen
    with inserted(tiny_model, books, force={hook: [code]}) as run:
        tiny_model(tokens)
    assert torch.all(run.codes[hook] == code)
    with inserted(tiny_model, books, force={hook: [code]}, positions="last") as run:
        tiny_model(tokens)
    assert torch.all(run.codes[hook][:, -1] == code)
    assert torch.equal(run.codes[hook][:, :-1], natural[:, :-1])


def test_forcing_with_k2_keeps_the_best_other_code():
    book = Bottleneck(BottleneckConfig(d=4, n_codes=4, k=2))
    book.codebook.data[0] = torch.eye(4)
    x = torch.tensor([[[3.0, 2.0, 1.0, 0.0]]])
    snap = book(x, force=[3])
    assert sorted(snap.codes.flatten().tolist()) == [0, 3]
    with pytest.raises(ValueError, match="at most k"):
        book(x, force=[1, 2, 3])
    with pytest.raises(ValueError, match="forced code ids"):
        book(x, force=[7])


def test_forcing_per_head_uses_flat_ids(tiny_model):
    books = Codebooks.create(tiny_model, ["attn_z"], [1], n_codes=8, k=1)
    hook = "blocks.1.attn.hook_z"
    with inserted(tiny_model, books, force={hook: [8 + 5]}) as run:  # head 1, code 5
        tiny_model(torch.randint(0, 400, (2, 6)))
    assert torch.all(run.codes[hook][:, :, 1, 0] == 13)
    assert torch.all(run.codes[hook][:, :, 0, 0] < 8)


def test_hooks_are_removed_even_on_error(tiny_model):
    books = Codebooks.create(tiny_model, ["mlp_out", "resid_post"], None, n_codes=4)
    with pytest.raises(RuntimeError, match="boom"):
        with inserted(tiny_model, books):
            raise RuntimeError("boom")
    assert all(len(hp.fwd_hooks) == 0 for hp in tiny_model.hook_dict.values())


def test_sites_take_transformer_lens_names_and_hook_names(tiny_model):
    from interp.codebooks.training import CodebookTrainConfig

    books = Codebooks.create(tiny_model, ["z", "attn_z", "hook_mlp_out", "blocks.0.hook_resid_post"], [1], n_codes=4)
    assert books.hooks == ["blocks.1.attn.hook_z", "blocks.1.hook_mlp_out", "blocks.0.hook_resid_post"]
    assert books["blocks.1.attn.hook_z"].cfg.n_groups == tiny_model.cfg.n_heads
    assert CodebookTrainConfig(sites=["attn.hook_z", "blocks.2.hook_attn_out"]).sites == ["attn.hook_z", "blocks.2.hook_attn_out"]
    for bad in (["post"], ["hook_embed"], ["mlp_outt"], []):
        with pytest.raises(ConfigError, match="--sites"):
            CodebookTrainConfig(sites=bad)


def test_bad_site_and_unknown_forced_hook(tiny_model):
    with pytest.raises(ValueError, match="codebooks sit at mlp_out, attn_out, z, resid_post"):
        Codebooks.create(tiny_model, ["mlp_pre"], [0], n_codes=4)
    books = Codebooks.create(tiny_model, ["mlp_out"], [0], n_codes=4)
    with pytest.raises(KeyError, match="inserted codebook"):
        with inserted(tiny_model, books, force={"blocks.1.hook_mlp_out": [0]}):
            pass


def test_precision_recall_hand_computed():
    # 6 positions, 1 slot; codes 0 0 1 1 1 2; property at positions 0, 2, 3.
    codes = torch.tensor([[0], [0], [1], [1], [1], [2]])
    mask = torch.tensor([True, False, True, True, False, False])
    precision, recall, fired = precision_recall(codes, mask, n_codes=4)
    # code 0: fires 2, hits 1 -> P 1/2, R 1/3; code 1: fires 3, hits 2 -> P 2/3, R 2/3
    torch.testing.assert_close(precision, torch.tensor([1 / 2, 2 / 3, 0.0, 0.0]))
    torch.testing.assert_close(recall, torch.tensor([1 / 3, 2 / 3, 0.0, 0.0]))
    assert fired.tolist() == [2, 3, 1, 0]
    record = CodeRecord(
        tokens=torch.zeros(1, 6, dtype=torch.long), codes={"h": codes[None]}, scores={"h": torch.ones(1, 6, 1)},
        n_flat={"h": 4},
    )
    best = match_property(record, "h", mask[None], top=1)[0]
    assert best.code == 1 and best.f1 == pytest.approx(2 / 3)


def test_best_neuron_at_recall_hand_computed():
    # neuron 0 is on exactly at the positives; neuron 1 is high everywhere
    acts = torch.tensor([[5.0, 9.0], [0.0, 9.0], [4.0, 9.0], [0.0, 9.0]])
    mask = torch.tensor([True, False, True, False])
    match = best_neuron_at_recall(acts, mask, recall=1.0)
    assert match.neuron == 0 and match.precision == 1.0 and match.recall == 1.0
    half = best_neuron_at_recall(acts, mask, recall=0.5)
    assert half.threshold == 5.0 and half.recall == 0.5


def test_property_masks():
    from interp.reference.tokenizer import build_tokenizer

    tok = build_tokenizer()
    tokens = torch.tensor([tok("trace: SA SB SA.", add_special_tokens=False)["input_ids"]])
    by_class = property_mask(tokens, tok, token_class=["▁SA"])
    assert by_class.tolist() == [[False, False, True, False, True, False]]
    by_regex = property_mask(tokens, tok, regex=r"SB SA$")
    assert by_regex.tolist() == [[False, False, False, False, True, False]]
    labels = [[None, None, "fsm_state", "fsm_state", "fsm_state", None]]
    assert property_mask(tokens, labels=labels, label="fsm_state").sum() == 3
    with pytest.raises(ValueError, match="exactly one"):
        property_mask(tokens, tok)


def test_js_divergence_bounds():
    p = torch.tensor([1.0, 0.0])
    q = torch.tensor([0.0, 1.0])
    assert js_divergence(p, q).item() == pytest.approx(1.0)
    assert js_divergence(p, p).item() == pytest.approx(0.0)


def test_next_token_shift_reports_target_distance(tiny_model):
    books = Codebooks.create(tiny_model, ["mlp_out"], [1], n_codes=8, k=1)
    hook = "blocks.1.hook_mlp_out"
    tokens = torch.randint(0, 400, (2, 7))
    with inserted(tiny_model, books) as run:
        tiny_model(tokens)
    chosen = set(run.codes[hook][:, -1].flatten().tolist())
    code = next(c for c in range(8) if c not in chosen)
    with torch.no_grad():
        books[hook].codebook.data[0, code] *= 50  # a loud code, so forcing it must move the logits
    target = torch.zeros(tiny_model.cfg.d_vocab)
    target[:5] = 0.2
    shift = next_token_shift(tiny_model, books, tokens, {hook: [code]}, target=target)
    assert shift.js.shape == (2,) and (shift.js > 0).all()
    assert shift.js_before_target is not None and shift.js_after_target.shape == (2,)


def test_kmeans_init_finds_planted_directions_including_a_rare_one():
    directions = torch.nn.functional.one_hot(torch.arange(4), 8).float()
    sizes = [300, 300, 300, 5]  # one rare cluster
    x = torch.cat([d * 3 + 0.05 * torch.randn(n, 8) for d, n in zip(directions, sizes)])[:, None]
    book = Bottleneck(BottleneckConfig(d=8, n_codes=4, k=1))
    book.init_kmeans(x, seed=0)
    codes = book(x).codes.flatten()
    start = 0
    used = set()
    for n in sizes:  # every cluster maps to a single code of its own
        assert codes[start : start + n].unique().numel() == 1
        used.add(int(codes[start]))
        start += n
    assert len(used) == 4
    torch.testing.assert_close(book.codebook.data[0].norm(dim=-1), torch.full((4,), 3.0), atol=0.05, rtol=0)


def test_replace_dead_reseeds_only_unused_codes():
    book = Bottleneck(BottleneckConfig(d=8, n_codes=5, k=1)).train()
    book.codebook.data[0] = torch.randn(5, 8)
    x = book.codebook.data[0, :2].clone()[:, None].repeat(10, 1, 1)  # only codes 0 and 1 get used
    book(x)
    before = book.codebook.data.clone()
    assert book.replace_dead(x) == 3
    torch.testing.assert_close(book.codebook.data[0, :2], before[0, :2])
    assert not torch.equal(book.codebook.data[0, 2:], before[0, 2:])
    assert int(book.counts.sum()) == 0


def test_top_contexts_keep_the_firing_tokens_leading_space():
    """The reference tokenizer (Metaspace) strips a lone token's leading space; the context and
    the token are cut from the window decoded as a whole, so together they read as the text."""
    from interp.reference.tokenizer import build_tokenizer

    tok = build_tokenizer()
    text = "The war lasted from the year 1745"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    fire = ids.index(tok.convert_tokens_to_ids("▁from"))
    codes = torch.zeros(1, len(ids), 1, dtype=torch.long)
    codes[0, fire] = 3
    record = CodeRecord(tokens=torch.tensor([ids]), codes={"h": codes}, scores={"h": torch.ones(1, len(ids), 1)},
                        n_flat={"h": 4})
    (top,) = record.top_contexts("h", 3, tok, window=8)
    assert (top["context"], top["token"]) == ("The war lasted", " from")
    assert top["context"] + top["token"] == text[: len(top["context"] + top["token"])]
