"""The GPU check: everything interp claims about a CUDA device, measured in one short run.

On one CUDA device, in under 8 minutes wall time in all (each step has its own time budget
and records how long it took):

1. ``kernels``: the kernel tests (tests/unit/test_kernels.py) on CUDA, against the dense
   reference (the tests pick CUDA when it is there);
2. ``kernel_timings``: the Triton and torch top-k encoder and sparse decoder at GPT-2
   small's transcoder shape (4,096 tokens, 768 -> 24,576 latents, k 32), forward and
   backward, with the achieved TFLOP/s against the device's measured dense-matmul peak
   (fp32, tf32 and bf16, 8192-cube products) and its listed peak where known;
3. ``training``: TopK transcoder training steps at GPT-2 small's shape through interp's
   Trainer, against EleutherAI's sparsify (``SparseCoder`` forward/backward + Adam on the
   same rows) when it imports;
4. ``cache`` and ``decode``: caching the MLP input and output of every layer of a
   GPT-2-small-shaped random model, and decoding all of its 36,864 neurons through the
   unembedding.

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out``. Without a CUDA device it
stops at once with one sentence and exit code 3 (``--allow-cpu`` runs every step on the CPU
at the ``--smoke`` shapes, which is how CI tests this script).

    bash benchmarks/gpu/run.sh [--out DIR]            # after `pip install -e ".[dev]"`
    python benchmarks/gpu/check.py --allow-cpu --smoke --out /tmp/gpu-smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXIT_NO_GPU = 3
TOTAL_BUDGET_S = 480

LISTED_PEAK_TFLOPS = {
    # dense (no sparsity) peaks from the vendors' data sheets: fp32 (CUDA cores), tf32 and bf16 (tensor cores)
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0},
}


@dataclass
class Shape:
    tokens: int
    d_in: int
    d_sae: int
    k: int
    train_steps: int
    cache_tokens: int
    model: dict


FULL = Shape(tokens=4096, d_in=768, d_sae=24_576, k=32, train_steps=60, cache_tokens=131_072,
             model=dict(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50_257, n_ctx=1024))
SMOKE = Shape(tokens=256, d_in=32, d_sae=256, k=8, train_steps=4, cache_tokens=1024,
              model=dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=128, d_vocab=512, n_ctx=64))


@dataclass
class Step:
    name: str
    ok: bool = False
    seconds: float = 0.0
    results: dict = field(default_factory=dict)
    error: str | None = None


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str, repeats: int = 10, warmup: int = 3) -> float:
    """Median seconds of ``fn`` (CUDA-synchronised), after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def device_info(device: str) -> dict:
    import torch

    info = {"device": device, "torch": torch.__version__, "python": platform.python_version(), "host": platform.node()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, capability=f"{props.major}.{props.minor}")
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            info["triton"] = None
    else:
        info.update(name=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    return info


def listed_peaks(name: str) -> dict | None:
    return next((peaks for key, peaks in LISTED_PEAK_TFLOPS.items() if key in name), None)


# --- steps -------------------------------------------------------------------------


def step_kernels(device: str, shape: Shape) -> dict:
    """The kernel test file, on CUDA when there is one (the tests choose the device themselves)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not device.startswith("cuda"):
        env.setdefault("TRITON_INTERPRET", "1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_kernels.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    if done.returncode != 0:
        raise RuntimeError(f"kernel tests failed: {tail}")
    return {"pytest": tail}


def matmul_peaks(device: str, shape: Shape) -> dict:
    """Measured dense-matmul TFLOP/s on this device (fp32, tf32, bf16), the yardstick for the kernels."""
    import torch

    n = 8192 if device.startswith("cuda") else 512
    out = {}
    for label, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)):
        if label == "tf32" and not device.startswith("cuda"):
            continue
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        seconds = timed(lambda: a @ b, device, repeats=5, warmup=2)
        out[label] = round(2 * n**3 / seconds / 1e12, 2)
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def step_kernel_timings(device: str, shape: Shape) -> dict:
    import torch

    from interp.kernels import backend_names, sparse_decode, topk_activation, triton_importable

    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(shape.tokens, shape.d_in, generator=gen).to(device)
    W_enc = (torch.randn(shape.d_in, shape.d_sae, generator=gen) / shape.d_in**0.5).to(device).requires_grad_(True)
    W_dec = (torch.randn(shape.d_sae, shape.d_in, generator=gen) / shape.d_sae**0.5).to(device).requires_grad_(True)
    grad_out = torch.randn(shape.tokens, shape.d_in, generator=gen).to(device)
    backends = [b for b in backend_names() if b == "torch" or (device.startswith("cuda") and triton_importable())]
    peaks = matmul_peaks(device, shape)
    results: dict = {"measured_matmul_tflops": peaks, "backends": {}}
    enc_flops = 2 * shape.tokens * shape.d_in * shape.d_sae
    dec_flops = 2 * shape.tokens * shape.k * shape.d_in
    for name in backends:
        pre = (x @ W_enc).detach().requires_grad_(True)

        def encode(name=name, pre=pre):
            return topk_activation(pre, shape.k, backend=name)

        values, indices = encode()
        v = values.detach().requires_grad_(True)

        def decode(name=name, v=v, indices=indices):
            return sparse_decode(v, indices, W_dec, backend=name)

        def full_step(name=name):
            p = x @ W_enc
            vals, idx = topk_activation(p, shape.k, backend=name)
            out = sparse_decode(vals, idx, W_dec, backend=name)
            out.backward(grad_out)

        t_topk = timed(encode, device)
        t_dec = timed(decode, device)
        t_dec_bwd = timed(lambda: torch.autograd.grad(decode(), [v, W_dec], grad_out), device)
        t_step = timed(full_step, device)
        step_flops = 3 * enc_flops + 3 * dec_flops  # forward + backward (two products each) of both
        results["backends"][name] = {
            "topk_ms": round(1e3 * t_topk, 3),
            "decode_forward_ms": round(1e3 * t_dec, 3),
            "decode_forward_backward_ms": round(1e3 * t_dec_bwd, 3),
            "decode_forward_gbps": round(shape.tokens * shape.k * shape.d_in * 4 / t_dec / 1e9, 1),
            "encoder_plus_decoder_step_ms": round(1e3 * t_step, 3),
            "step_tflops": round(step_flops / t_step / 1e12, 2),
            "step_fraction_of_measured_fp32_peak": round(step_flops / t_step / 1e12 / peaks["fp32"], 3),
        }
    results["encoder_matmul_ms"] = round(1e3 * timed(lambda: x @ W_enc, device), 3)
    results["encoder_matmul_tflops"] = round(enc_flops / (results["encoder_matmul_ms"] / 1e3) / 1e12, 2)
    return results


def step_training(device: str, shape: Shape) -> dict:
    import torch

    from interp.transcoders import registry
    from interp.transcoders.trainer import OptimConfig, Trainer

    gen = torch.Generator(device="cpu").manual_seed(1)
    rows = shape.tokens * 4
    x = torch.randn(rows, shape.d_in, generator=gen).to(device)
    y = torch.tanh(x @ (torch.randn(shape.d_in, shape.d_in, generator=gen).to(device) / shape.d_in**0.5))
    arch = registry.get("topk")
    tc = arch.transcoder(arch.config(d_in=shape.d_in, d_out=shape.d_in, d_sae=shape.d_sae, k=shape.k), seed=0).to(device)
    trainer = Trainer({"layer_6": tc}, OptimConfig(lr=1e-3), total_steps=shape.train_steps + 3, tokens_per_step=shape.tokens)
    batches = [(x[i : i + shape.tokens], y[i : i + shape.tokens]) for i in range(0, rows, shape.tokens)]
    for i in range(3):
        trainer.step({"layer_6": batches[i % len(batches)]})
    _sync(device)
    start = time.perf_counter()
    for i in range(shape.train_steps):
        metrics = trainer.step({"layer_6": batches[i % len(batches)]})
    _sync(device)
    seconds = time.perf_counter() - start
    out = {"interp": {"steps": shape.train_steps, "ms_per_step": round(1e3 * seconds / shape.train_steps, 3),
                      "tokens_per_s": round(shape.train_steps * shape.tokens / seconds), "final_fvu": metrics.fvu["layer_6"]}}
    out["sparsify"] = _sparsify_training(device, shape, batches)
    if "ms_per_step" in out["sparsify"]:
        out["interp_speedup"] = round(out["sparsify"]["ms_per_step"] / out["interp"]["ms_per_step"], 3)
    return out


def _sparsify_training(device: str, shape: Shape, batches) -> dict:
    """sparsify's SparseCoder (transcoder mode) forward, backward and Adam on the same rows, if it imports."""
    try:
        import torch
        from sparsify import SparseCoder, SparseCoderConfig
    except ImportError as err:
        return {"skipped": f"sparsify does not import here ({err}); pip install --no-deps eai-sparsify to compare"}
    cfg = SparseCoderConfig(num_latents=shape.d_sae, k=shape.k, transcode=True)
    coder = SparseCoder(shape.d_in, cfg, device=device, dtype=torch.float32)
    optim = torch.optim.Adam(coder.parameters(), lr=1e-3)
    try:
        return _time_sparsify(coder, optim, device, shape, batches)
    except Exception as err:  # noqa: BLE001 - e.g. its Triton decoder on a CPU; interp's numbers still stand
        return {"failed": f"{type(err).__name__}: {err}"}


def _time_sparsify(coder, optim, device: str, shape: Shape, batches) -> dict:

    def one(i: int) -> None:
        x, y = batches[i % len(batches)]
        out = coder(x, y)
        optim.zero_grad(set_to_none=True)
        out.fvu.backward()
        optim.step()

    for i in range(3):
        one(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(shape.train_steps):
        one(i)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"steps": shape.train_steps, "ms_per_step": round(1e3 * seconds / shape.train_steps, 3),
            "tokens_per_s": round(shape.train_steps * shape.tokens / seconds)}


def _gpt2_shaped_model(device: str, shape: Shape):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(**shape.model, act_fn="gelu_new", normalization_type="LN", device=device, seed=0)
    return HookedTransformer(cfg).eval()  # random weights, no tokenizer: the steps use token ids


def step_cache(device: str, shape: Shape, workdir: Path) -> dict:
    import torch

    from interp.cache import CacheConfig, cache_activations
    from interp.hooks import hook_name

    model = _gpt2_shaped_model(device, shape)
    ctx = min(128, shape.model["n_ctx"])
    n_ctx = shape.cache_tokens // ctx
    tokens = torch.randint(1, shape.model["d_vocab"], (n_ctx, ctx), generator=torch.Generator().manual_seed(2))
    names = [hook_name(site, layer) for layer in range(shape.model["n_layers"]) for site in ("mlp_in", "mlp_out")]
    batch = 32 if device.startswith("cuda") else 4
    start = time.perf_counter()
    store = cache_activations(model, names, tokens, workdir / "store", CacheConfig(batch_size=batch, progress=False))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        forward = timed(lambda: model(tokens[:batch].to(device), return_type=None), device, repeats=3, warmup=1)
    return {"tokens": store.n_tokens if hasattr(store, "n_tokens") else n_ctx * ctx, "hooks": len(names),
            "seconds": round(seconds, 2), "tokens_per_s": round(n_ctx * ctx / seconds),
            "bare_forward_tokens_per_s": round(batch * ctx / forward)}


def step_decode(device: str, shape: Shape) -> dict:
    from interp.neurons import decode

    model = _gpt2_shaped_model(device, shape)
    start = time.perf_counter()
    table = decode(model, None, "out", 10, "certified")
    _sync(device)
    seconds = time.perf_counter() - start
    return {"neurons": len(table), "vocabulary": shape.model["d_vocab"], "seconds": round(seconds, 2)}


# --- the run -----------------------------------------------------------------------


def run(out: Path, device: str, shape: Shape, steps: list[str]) -> list[Step]:
    import tempfile

    done: list[Step] = []
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        table: dict[str, Callable[[], dict]] = {
            "kernels": lambda: step_kernels(device, shape),
            "kernel_timings": lambda: step_kernel_timings(device, shape),
            "training": lambda: step_training(device, shape),
            "cache": lambda: step_cache(device, shape, work),
            "decode": lambda: step_decode(device, shape),
        }
        for name in steps:
            step = Step(name)
            if time.perf_counter() - begin > TOTAL_BUDGET_S:
                step.error = f"skipped: the {TOTAL_BUDGET_S} s budget was spent"
                done.append(step)
                continue
            start = time.perf_counter()
            try:
                step.results = table[name]()
                step.ok = True
            except Exception as err:  # noqa: BLE001 - a failed step is recorded and the others still run
                step.error = f"{type(err).__name__}: {err}"
                step.results = {"traceback": traceback.format_exc()[-2000:]}
            step.seconds = round(time.perf_counter() - start, 2)
            done.append(step)
            write(out, device, shape, done, time.perf_counter() - begin)  # after every step: a crash keeps the rest
    return done


def write(out: Path, device: str, shape: Shape, steps: list[Step], seconds: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "info": device_info(device),
              "shape": asdict(shape), "listed_peak_tflops": listed_peaks(device_info(device).get("name", "")),
              "total_seconds": round(seconds, 1), "steps": [asdict(s) for s in steps]}
    (out / "gpu_check.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "gpu_check.md").write_text(markdown(record))


def markdown(record: dict) -> str:
    info = record["info"]
    lines = [f"# GPU check, {record['date']}", "",
             f"Device: {info.get('name')} ({info['device']}), torch {info['torch']}, triton {info.get('triton')}; "
             f"total {record['total_seconds']} s; command `{record['command']}`.", "",
             "| step | ok | seconds | result |", "|---|---|---|---|"]
    for step in record["steps"]:
        result = step["error"] if not step["ok"] else json.dumps(step["results"], separators=(", ", ": "))[:600]
        lines.append(f"| {step['name']} | {'yes' if step['ok'] else 'NO'} | {step['seconds']} | {result} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/gpu", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--steps", default="kernels,kernel_timings,training,cache,decode", help="comma-separated steps")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no CUDA device (tests)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes (seconds on a CPU), to test the script")
    args = parser.parse_args(argv)
    import torch

    if torch.cuda.is_available():
        device = "cuda"
    elif args.allow_cpu:
        device = "cpu"
    else:
        print("gpu check: no CUDA device is visible (torch.cuda.is_available() is False); run it on a machine with "
              "one NVIDIA GPU, or pass --allow-cpu --smoke to test the script on a CPU", file=sys.stderr)
        return EXIT_NO_GPU
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in ("kernels", "kernel_timings", "training", "cache", "decode")]
    if unknown:
        parser.error(f"unknown steps {unknown}")
    shape = SMOKE if args.smoke else FULL
    done = run(Path(args.out), device, shape, steps)
    for step in done:
        print(f"{step.name:15s} {'ok' if step.ok else 'FAILED'} {step.seconds:7.1f} s  {step.error or ''}")
    print(f"wrote {Path(args.out) / 'gpu_check.json'} and {Path(args.out) / 'gpu_check.md'}")
    return 0 if all(s.ok for s in done) else 1


if __name__ == "__main__":
    sys.exit(main())
