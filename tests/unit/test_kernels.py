"""The top-k kernels against a dense reference, for every backend.

The Triton backend runs on CUDA tensors when a GPU is present; otherwise on CPU tensors
under Triton's interpreter. ``TRITON_INTERPRET=1`` is read when a kernel is decorated, so it
is set here, before this file imports ``interp.kernels.triton_backend`` (it only affects
Triton, and nothing else in the suite uses Triton). The Triton cases are skipped, with the
reason, when triton is not installed.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from interp.kernels import (  # noqa: E402
    KernelBackend,
    KernelInputError,
    backend_names,
    get_backend,
    sparse_decode,
    topk_activation,
    triton_importable,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _backend(name: str) -> str:
    if name == "triton" and not triton_importable():
        pytest.skip("triton is not installed: pip install 'interp-toolkit[triton]' (or triton --no-deps)")
    try:
        get_backend(name, DEVICE)
    except KernelInputError as e:
        pytest.skip(str(e))
    return name


@pytest.fixture(params=backend_names())
def backend(request) -> str:
    return _backend(request.param)


# (batch, d_sae, d_out, k): small, batch 1, k = d_sae, non-power-of-two sizes, k over one tile
SHAPES = [(8, 64, 16, 4), (1, 32, 8, 5), (5, 12, 7, 12), (3, 100, 130, 40), (16, 256, 64, 16)]


def _dense_reference(pre: torch.Tensor, k: int, W_dec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoded output and the dense latent code, built without any kernel."""
    values, indices = torch.topk(pre, k, dim=1)
    code = torch.zeros_like(pre).scatter(1, indices, values.relu())
    return code @ W_dec, code


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_and_gradients_equal_dense_reference(backend, shape, dtype):
    B, N, D, k = shape
    gen = torch.Generator().manual_seed(B * 1000 + N)
    pre0 = torch.randn(B, N, generator=gen, dtype=dtype).to(DEVICE)
    W0 = torch.randn(N, D, generator=gen, dtype=dtype).to(DEVICE)
    grad_out = torch.randn(B, D, generator=gen, dtype=dtype).to(DEVICE)

    pre, W = pre0.clone().requires_grad_(), W0.clone().requires_grad_()
    values, indices = topk_activation(pre, k, backend=backend)
    values.retain_grad()
    out = sparse_decode(values, indices, W, backend=backend)
    out.backward(grad_out)

    ref_pre, ref_W = pre0.clone().requires_grad_(), W0.clone().requires_grad_()
    ref_out, ref_code = _dense_reference(ref_pre, k, ref_W)
    ref_code.retain_grad()
    ref_out.backward(grad_out)

    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    ref_values, ref_indices = torch.topk(pre0, k, dim=1)
    assert torch.equal(indices.cpu(), ref_indices.cpu())
    torch.testing.assert_close(values, ref_values.relu(), **tol)
    torch.testing.assert_close(out, ref_out, **tol)
    torch.testing.assert_close(W.grad, ref_W.grad, **tol)
    torch.testing.assert_close(values.grad, ref_code.grad.gather(1, indices), **tol)
    torch.testing.assert_close(pre.grad, ref_pre.grad, **tol)
    # only the k selected, positive entries of pre get gradient
    assert int((pre.grad != 0).sum(1).max()) <= k
    assert torch.all(pre.grad.gather(1, indices)[values <= 0] == 0)


def test_values_indices_equal_topk_relu(backend):
    pre = torch.randn(32, 200, device=DEVICE)
    pre[:, :150] -= 3.0  # some rows have negative entries among their top k
    values, indices = topk_activation(pre, 64, backend=backend)
    ref_values, ref_indices = pre.topk(64, dim=1)
    assert torch.equal(indices, ref_indices)
    assert torch.equal(values, ref_values.relu())
    assert indices.dtype == torch.int64 and values.shape == (32, 64)
    assert (values == 0).any(), "the test should exercise the ReLU"


def test_decode_accepts_int32_indices_and_duplicates(backend):
    """Arbitrary codes, not only top-k output: int32 indices and a latent repeated within a row."""
    W = torch.randn(10, 6, device=DEVICE, requires_grad=True)
    values = torch.randn(3, 4, device=DEVICE, requires_grad=True)
    indices = torch.tensor([[1, 1, 2, 9], [0, 3, 3, 3], [9, 8, 7, 6]], device=DEVICE, dtype=torch.int32)
    out = sparse_decode(values, indices, W, backend=backend)
    out.square().sum().backward()
    rows = torch.arange(3, device=DEVICE)[:, None].expand(3, 4)
    code = torch.zeros(3, 10, device=DEVICE).index_put((rows, indices.long()), values.detach(), accumulate=True)
    W_ref = W.detach().clone().requires_grad_()
    (code @ W_ref).square().sum().backward()
    torch.testing.assert_close(out, code @ W.detach())
    torch.testing.assert_close(W.grad, W_ref.grad)


def test_backends_agree_with_each_other():
    if not triton_importable():
        pytest.skip("triton is not installed: pip install 'interp-toolkit[triton]' (or triton --no-deps)")
    _backend("triton")
    pre = torch.randn(64, 512, device=DEVICE)
    W = torch.randn(512, 96, device=DEVICE)
    outs = [sparse_decode(*topk_activation(pre, 32, backend=b), W, backend=b) for b in ("torch", "triton")]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)


def test_every_backend_meets_the_contract(backend):
    impl = get_backend(backend, DEVICE)
    assert isinstance(impl, KernelBackend) and impl.name == backend
    assert set(backend_names()) == {"torch", "triton"}


def test_auto_picks_torch_on_cpu():
    assert get_backend("auto", "cpu").name == "torch"


def test_triton_on_cpu_without_interpreter_is_refused_clearly(monkeypatch):
    if not triton_importable():
        pytest.skip("triton is not installed")
    from interp.kernels import triton_backend

    monkeypatch.setattr(triton_backend, "_decode_fwd_kernel", object())
    with pytest.raises(KernelInputError, match="TRITON_INTERPRET=1"):
        get_backend("triton", "cpu")


# --- bad input -------------------------------------------------------------------------------


def test_topk_k_out_of_range(backend):
    with pytest.raises(KernelInputError, match=r"1 <= k <= d_sae = 8, got k = 9"):
        topk_activation(torch.randn(4, 8, device=DEVICE), 9, backend=backend)
    with pytest.raises(KernelInputError, match=r"1 <= k <= d_sae = 8, got k = 0"):
        topk_activation(torch.randn(4, 8, device=DEVICE), 0, backend=backend)


@pytest.mark.parametrize(
    ("pre", "k", "match"),
    [
        (torch.randn(2, 4, 8), 2, r"must be 2-D .*reshape"),
        (torch.randint(0, 5, (4, 8)), 2, r"floating-point"),
        (torch.randn(4, 8), 2.0, r"k must be a Python int"),
        (torch.randn(4, 8), True, r"k must be a Python int"),
    ],
)
def test_topk_bad_input(pre, k, match):
    # The checks are called directly: under the suite's jaxtyping hook the annotated public
    # function rejects a wrong rank or dtype first, with a less specific message.
    from interp.kernels.backend import check_topk_args

    with pytest.raises(KernelInputError, match=match):
        check_topk_args(pre, k)


def test_unknown_backend():
    with pytest.raises(KernelInputError, match=r"unknown kernel backend 'cuda'; choose one of auto, torch, triton"):
        get_backend("cuda", "cpu")


def _decode_args(**over):
    args = dict(values=torch.randn(4, 3), indices=torch.randint(0, 10, (4, 3)), W_dec=torch.randn(10, 5))
    args.update(over)
    return args


@pytest.mark.parametrize(
    ("over", "match"),
    [
        (dict(indices=torch.rand(4, 3)), r"indices must be an integer tensor"),
        (dict(indices=torch.randint(0, 10, (4, 2))), r"same shape \(batch, k\)"),
        (dict(W_dec=torch.randn(2, 5)), r"k = 3 selected latents per row, but W_dec has only d_sae = 2 rows"),
        (dict(indices=torch.full((4, 3), 10)), r"indices must lie in \[0, d_sae = 10\)"),
        (dict(W_dec=torch.randn(5, 10), indices=torch.full((4, 3), 7)), r"did you pass its transpose"),
        (dict(W_dec=torch.randn(10, 5, dtype=torch.float64)), r"same dtype"),
        (dict(W_dec=torch.randn(10)), r"W_dec must be 2-D \(d_sae, d_out\)"),
        (dict(values=torch.randn(4, 3, 1)), r"values must be 2-D"),
    ],
)
def test_decode_bad_input(over, match):
    from interp.kernels.backend import check_decode_args

    with pytest.raises(KernelInputError, match=match):
        check_decode_args(**_decode_args(**over))


def test_public_decode_rejects_float_indices():
    with pytest.raises(Exception, match=r"indices|Int|dtype"):
        sparse_decode(torch.randn(4, 3), torch.rand(4, 3), torch.randn(10, 5))


def test_deterministic_mode_gives_the_same_gradients(backend):
    """Under torch.use_deterministic_algorithms the Triton W_dec gradient avoids atomics; same result."""
    pre = torch.randn(16, 64, device=DEVICE)
    W = torch.randn(64, 24, device=DEVICE)
    grads = []
    for deterministic in (False, True):
        W_ = W.clone().requires_grad_()
        torch.use_deterministic_algorithms(deterministic)
        try:
            sparse_decode(*topk_activation(pre, 8, backend=backend), W_, backend=backend).sum().backward()
        finally:
            torch.use_deterministic_algorithms(False)
        grads.append(W_.grad)
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


_COMPILE_CHECK = r"""
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from interp.kernels import triton_backend as tb

target = GPUTarget("cuda", 90, 32)  # H100; compiling needs no GPU, only the ptxas bundled with triton
common = {"K": "i32", "D": "i32", "BLOCK_K": "constexpr", "BLOCK_D": "constexpr", "ACC": "constexpr"}
for dt, acc in (("fp32", tl.float32), ("bf16", tl.float32), ("fp64", tl.float64)):
    gw = "fp64" if dt == "fp64" else "fp32"
    specs = {
        tb._decode_fwd_kernel: dict(out_ptr=f"*{dt}", idx_ptr="*i64", val_ptr=f"*{dt}", w_ptr=f"*{dt}"),
        tb._decode_bwd_values_kernel: dict(gval_ptr=f"*{dt}", idx_ptr="*i32", w_ptr=f"*{dt}", gout_ptr=f"*{dt}"),
        tb._decode_bwd_weight_kernel: dict(gw_ptr=f"*{gw}", idx_ptr="*i64", val_ptr=f"*{dt}", gout_ptr=f"*{dt}"),
    }
    for fn, sig in specs.items():
        k = triton.compile(ASTSource(fn, {**sig, **common}, {"BLOCK_K": 32, "BLOCK_D": 128, "ACC": acc}), target=target)
        assert "cubin" in k.asm, fn
    sig = dict(gpre_ptr=f"*{dt}", idx_ptr="*i64", val_ptr=f"*{dt}", gval_ptr=f"*{dt}")
    sig.update(K="i32", N="i32", BLOCK_K="constexpr")
    assert "cubin" in triton.compile(ASTSource(tb._topk_bwd_kernel, sig, {"BLOCK_K": 32}), target=target).asm
print("compiled")
"""


@pytest.mark.slow
def test_triton_kernels_compile_for_an_h100():
    """The interpreter does not lower kernels; this compiles each one to a cubin for sm_90 (no GPU needed)."""
    if not triton_importable():
        pytest.skip("triton is not installed: pip install 'interp-toolkit[triton]' (or triton --no-deps)")
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    proc = subprocess.run([sys.executable, "-c", _COMPILE_CHECK], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "ptxas" in proc.stderr and "not found" in proc.stderr.lower():
        pytest.skip("this triton install has no ptxas to compile with")
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-3000:]


# --- the fused TopK encoder (sparse backward) --------------------------------------------


@pytest.mark.parametrize("needs_x", [False, True])
def test_topk_encode_equals_dense_encoder(needs_x):
    from interp.kernels import topk_encode

    g = torch.Generator().manual_seed(3)
    n, d, m, k = 64, 12, 48, 5
    x = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=needs_x)
    W = torch.randn(d, m, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(m, generator=g, dtype=torch.float64).sub(4.0).requires_grad_()
    upstream = torch.randn(n, k, generator=g, dtype=torch.float64)

    values, indices = topk_encode(x, W, b, k)
    (values * upstream).sum().backward()
    grads = [t.grad.clone() for t in (W, b) + ((x,) if needs_x else ())]
    for t in (x, W, b):
        t.grad = None

    top = (x @ W + b).topk(k, dim=1)
    ref_values = top.values.relu()
    (ref_values * upstream).sum().backward()
    ref_grads = [t.grad for t in (W, b) + ((x,) if needs_x else ())]

    assert torch.equal(indices, top.indices)
    torch.testing.assert_close(values, ref_values)
    assert (ref_values == 0).any(), "the case should include rows whose ReLU zeroes a selected latent"
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_topk_encode_gradients_are_deterministic():
    from interp.kernels import topk_encode

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    runs = []
    for _ in range(2):
        W = torch.randn(16, 64, generator=torch.Generator().manual_seed(1), requires_grad=True)
        b = torch.zeros(64, requires_grad=True)
        values, _ = topk_encode(x, W, b, 8)
        values.square().sum().backward()
        runs.append((W.grad, b.grad))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_blocked_topk_equals_torch_topk():
    """Long rows take the top-k through block maxima (encoder._topk_rows): same values and indices."""
    from interp.kernels.encoder import _BLOCK, _topk_rows

    g = torch.Generator().manual_seed(5)
    for rows, n, k in ((64, 8 * 32 * _BLOCK, 32), (33, 8 * 4 * _BLOCK, 4), (7, 100 * _BLOCK, 1)):
        pre = torch.randn(rows, n, generator=g)
        pre[0, :k] = 50.0 + torch.arange(k, dtype=pre.dtype)  # a row whose top-k all sit in the first block
        pre[1] = -pre[1].abs()  # a row with no positive value
        values, indices = _topk_rows(pre, k)
        want = pre.topk(k, dim=1, sorted=True)
        assert torch.equal(values, want.values) and torch.equal(indices, want.indices)


def test_blocked_topk_ties_pick_an_equally_large_latent():
    from interp.kernels.encoder import _BLOCK, _topk_rows

    k, n = 4, 64 * _BLOCK
    pre = torch.full((3, n), -1.0)
    pre[:, 5 * _BLOCK + 3] = 9.0
    pre[:, [7, 3 * _BLOCK, 10 * _BLOCK + 1, 20 * _BLOCK, 40 * _BLOCK + 2, n - 1]] = 2.0  # six tie for 3 places
    values, indices = _topk_rows(pre, k)
    assert torch.equal(values, pre.topk(k, dim=1).values)
    assert torch.equal(pre.gather(1, indices), values)  # every index points at a value it claims
    assert all(len(set(row.tolist())) == k for row in indices)
    assert torch.equal(indices, _topk_rows(pre, k)[1]) and (indices[0] == indices[1]).all()  # deterministic


def test_short_or_uneven_rows_use_torch_topk():
    from interp.kernels.encoder import _BLOCK, _topk_rows

    for n in (8 * 4 * _BLOCK + 1, 4 * _BLOCK):
        pre = torch.randn(5, n)
        assert torch.equal(_topk_rows(pre, 4)[1], pre.topk(4, dim=1).indices)


@pytest.mark.parametrize("n_latents", [50, 70_000])  # 16-bit radix-sorted keys, and int64 keys
def test_per_latent_sums_transposed_layout(monkeypatch, n_latents):
    """The encoder-layout sums, block by block (blocks of 7 here), equal the latent-major sums transposed."""
    from interp.kernels import torch_backend

    monkeypatch.setattr(torch_backend, "_LATENT_BLOCK", 7)
    g = torch.Generator().manual_seed(2)
    indices = torch.randint(0, min(n_latents, 40), (30, 3), generator=g)  # latents 40.. are never selected
    indices[0, 0] = n_latents - 1
    weights, table = torch.randn(30, 3, generator=g), torch.randn(30, 6, generator=g)
    rows = torch_backend.per_latent_sums(indices, weights, table, n_latents)
    cols = torch_backend.per_latent_sums(indices, weights, table, n_latents, transposed=True)
    assert rows.shape == (n_latents, 6) and cols.shape == (6, n_latents) and cols.is_contiguous()
    assert torch.equal(cols, rows.t())
    dense = torch.zeros(30, n_latents).scatter_add_(1, indices, weights)
    torch.testing.assert_close(rows, dense.t() @ table)


def test_topk_encode_weight_gradient_is_in_the_weights_layout():
    """dW_enc comes out contiguous (d_in, d_sae), so autograd keeps it as W_enc.grad without a copy."""
    from interp.kernels import topk_encode

    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 6, generator=g)
    W = torch.randn(6, 30, generator=g, requires_grad=True)
    values, _ = topk_encode(x, W, torch.zeros(30, requires_grad=True), 3)
    values.sum().backward()
    assert W.grad.is_contiguous() and W.grad.stride() == W.stride()


def test_a_pre_activation_buffer_is_reused_and_changes_nothing():
    from interp.kernels import topk_encode
    from interp.kernels.encoder import PreActBuffer

    g = torch.Generator().manual_seed(6)
    W = torch.randn(8, 64, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(64, generator=g, dtype=torch.float64, requires_grad=True)
    xs = [torch.randn(n, 8, generator=g, dtype=torch.float64) for n in (20, 20, 12, 30)]
    upstream = torch.randn(30, 5, generator=g, dtype=torch.float64)

    def run(x):
        values, indices = topk_encode(x, W, b, 5)
        (values * upstream[: len(x)]).sum().backward()
        out = (values.detach(), indices, W.grad.clone(), b.grad.clone())
        W.grad = b.grad = None
        return out

    plain = [run(x) for x in xs]
    buffer, pointers = PreActBuffer(), []
    for x, want in zip(xs, plain):
        with buffer:
            got = run(x)
        pointers.append(buffer._tensor.data_ptr())
        assert all(torch.equal(a, b_) for a, b_ in zip(got, want))
    assert pointers[0] == pointers[1] == pointers[2] != pointers[3]  # reused; reallocated only to grow
    with buffer, buffer:  # nested: still active after the inner one ends
        pass
    from interp.kernels.encoder import _ACTIVE

    assert _ACTIVE.get() is None
    buffer.release()
    assert buffer._tensor is None


def test_sparse_decode_values_gradient_without_a_second_forward():
    """The values' gradient comes from torch's per-sample-weights kernel on the forward's bags."""
    from interp.kernels import sparse_decode

    g = torch.Generator().manual_seed(8)
    for dtype, index_dtype in ((torch.float64, torch.int64), (torch.float32, torch.int32)):
        W = torch.randn(40, 7, generator=g, dtype=dtype, requires_grad=True)
        values = torch.randn(9, 4, generator=g, dtype=dtype, requires_grad=True)
        indices = torch.randint(0, 40, (9, 4), generator=g).to(index_dtype)
        indices[0] = 3  # one row picking the same latent four times
        upstream = torch.randn(9, 7, generator=g, dtype=dtype)
        (sparse_decode(values, indices, W, backend="torch") * upstream).sum().backward()
        want = torch.einsum("bd,bkd->bk", upstream, W.detach()[indices.long()])
        torch.testing.assert_close(values.grad, want)


@pytest.mark.parametrize("needs_x", [False, True])
def test_topk_encode_aux_selection_equals_the_dense_auxk(needs_x):
    """The AuxK selection (top aux_k among masked-in latents) from the same matmul, with the same
    values, indices and gradients as topk_activation of the masked dense pre-activations."""
    from interp.kernels import topk_encode

    g = torch.Generator().manual_seed(11)
    n, d, m, k, aux_k = 48, 10, 40, 4, 6
    x = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=needs_x)
    W = torch.randn(d, m, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(m, generator=g, dtype=torch.float64).sub(1.0).requires_grad_()
    mask = torch.zeros(m, dtype=torch.bool)
    mask[::3] = True  # 14 latents may be chosen by the AuxK selection, some also by the main one
    u, v = torch.randn(n, k, generator=g, dtype=torch.float64), torch.randn(n, aux_k, generator=g, dtype=torch.float64)
    leaves = (W, b) + ((x,) if needs_x else ())

    values, indices, aux_values, aux_indices = topk_encode(x, W, b, k, aux_mask=mask, aux_k=aux_k)
    ((values * u).sum() + (aux_values * v).sum()).backward()
    got = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None

    pre = x @ W + b
    top = pre.topk(k, dim=1)
    aux = pre.masked_fill(~mask, float("-inf")).topk(aux_k, dim=1)
    ((top.values.relu() * u).sum() + (aux.values.relu() * v).sum()).backward()

    assert torch.equal(indices, top.indices) and torch.equal(aux_indices, aux.indices)
    assert mask[aux_indices].all() and (mask[indices].any() and mask[indices].logical_not().any())
    torch.testing.assert_close(aux_values, aux.values.relu())
    assert (aux.values < 0).any(), "the case should include AuxK selections that ReLU zeroes"
    for want, have in zip((t.grad for t in leaves), got):
        torch.testing.assert_close(have, want)
    # without a gradient for the AuxK values, only the main selection's flows
    W.grad = None
    values, _, aux_values, _ = topk_encode(x, W, b, k, aux_mask=mask, aux_k=aux_k)
    (values * u).sum().backward()
    main_only = W.grad.clone()
    W.grad = None
    topk_encode(x, W, b, k)[0].mul(u).sum().backward()
    torch.testing.assert_close(main_only, W.grad)


def test_topk_encode_bad_aux_arguments():
    from interp.kernels import topk_encode

    x, W, b = torch.randn(4, 8), torch.randn(8, 16), torch.zeros(16)
    mask = torch.zeros(16, dtype=torch.bool)
    mask[:3] = True
    with pytest.raises(KernelInputError, match="aux_k must be an int between 1 and the 3 latents in aux_mask, got 4"):
        topk_encode(x, W, b, 2, aux_mask=mask, aux_k=4)
    with pytest.raises(KernelInputError, match="aux_mask must be a bool tensor of shape"):
        topk_encode(x, W, b, 2, aux_mask=mask.float(), aux_k=1)


def test_topk_encode_bad_shapes():
    from interp.kernels import topk_encode

    with pytest.raises(KernelInputError, match="transpose"):
        topk_encode(torch.randn(4, 8), torch.randn(16, 8), torch.zeros(16), 2)
    with pytest.raises(KernelInputError, match="1 <= k"):
        topk_encode(torch.randn(4, 8), torch.randn(8, 16), torch.zeros(16), 17)


# --- the cross-layer decoder: (latent, output layer) pairs ---------------------------------


def _dense_cross_layer(values, indices, W_pairs, n_layers, d_sae):
    """The per-output-layer reconstruction from a dense code, block by block, without any kernel."""
    from interp.kernels import decoder_block

    batch = values.shape[0]
    rows = torch.arange(batch, device=values.device)[:, None].expand_as(indices)
    code = torch.zeros(batch, n_layers * d_sae, dtype=values.dtype, device=values.device)
    code = code.index_put((rows, indices.long()), values, accumulate=True)
    return torch.stack([code[:, : (m + 1) * d_sae] @ decoder_block(W_pairs, m, d_sae) for m in range(n_layers)], 1)


# (batch, n_layers, d_sae, d_out, k): one layer, k over a tile, non-power-of-two sizes
CROSS_SHAPES = [(6, 3, 8, 5, 4), (1, 1, 16, 7, 3), (9, 4, 10, 13, 21), (4, 5, 6, 130, 12)]


@pytest.mark.parametrize("shape", CROSS_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_layer_decode_equals_dense_reference(backend, shape, dtype):
    from interp.kernels import cross_layer_decode, n_pairs

    B, L, F, D, k = shape
    gen = torch.Generator().manual_seed(B * 100 + L)
    values0 = torch.randn(B, k, generator=gen, dtype=dtype).to(DEVICE)
    indices = torch.randint(0, L * F, (B, k), generator=gen).to(DEVICE)  # repeats within a row allowed
    W0 = torch.randn(n_pairs(L, F), D, generator=gen, dtype=dtype).to(DEVICE)
    grad_out = torch.randn(B, L, D, generator=gen, dtype=dtype).to(DEVICE)

    values, W = values0.clone().requires_grad_(), W0.clone().requires_grad_()
    out = cross_layer_decode(values, indices, W, L, backend=backend)
    out.backward(grad_out)
    ref_values, ref_W = values0.clone().requires_grad_(), W0.clone().requires_grad_()
    ref = _dense_cross_layer(ref_values, indices, ref_W, L, F)
    ref.backward(grad_out)

    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    assert out.shape == (B, L, D)
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(values.grad, ref_values.grad, **tol)
    torch.testing.assert_close(W.grad, ref_W.grad, **tol)


def test_cross_layer_decode_writes_only_at_and_after_the_source_layer():
    """A latent of layer 1 in a 3-layer table writes nothing to output 0 and its own rows to 1 and 2."""
    from interp.kernels import cross_layer_decode, n_pairs, pair_offset

    L, F, D = 3, 4, 6
    W = torch.randn(n_pairs(L, F), D)
    latent = 1 * F + 2
    out = cross_layer_decode(torch.tensor([[2.0]]), torch.tensor([[latent]]), W, L)
    assert torch.equal(out[0, 0], torch.zeros(D))
    for m in (1, 2):
        torch.testing.assert_close(out[0, m], 2.0 * W[pair_offset(m, F) + latent])


def test_cross_layer_decode_bad_input():
    from interp.kernels import cross_layer_decode

    with pytest.raises(KernelInputError, match="not a multiple of n_layers"):
        cross_layer_decode(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.randn(7, 4), 2)
    with pytest.raises(KernelInputError, match=r"\[0, n_layers \* d_sae = 8\)"):
        cross_layer_decode(torch.randn(2, 3), torch.full((2, 3), 8), torch.randn(12, 4), 2)
    with pytest.raises(KernelInputError, match="n_layers must be a positive"):
        cross_layer_decode(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.randn(12, 4), 0)
