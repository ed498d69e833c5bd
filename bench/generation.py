"""Generation throughput: tokens/s of the transformers backend (and vLLM where installed) at
batch sizes 1..64, through the same backend code the workers run.

    python bench/generation.py                       # CPU: a small random-init Llama, ~2 minutes
    python bench/generation.py --config qwen2-0.5b --device cuda   # Qwen2-0.5B's shapes, random weights
    python bench/generation.py --config qwen2-0.5b --device cuda --vllm

Nothing is downloaded: the tokenizer is trained locally (generation.tiny_model) and the weights
are random; only the shapes matter for timing. On a GPU the figures include the fraction of the
memory-bandwidth roofline: a decode step has to read every weight once, so at batch size B the
ceiling is B * bandwidth / weight_bytes tokens/s (bandwidth measured here with a device copy;
KV-cache traffic ignored, so the true ceiling is a little lower at large batches).

The goal checked at the end: batched generation gives at least 5x the batch-1 throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONFIGS = {
    # Small enough for a 2-core CPU run in about two minutes.
    "small": {
        "arch": "llama",
        "vocab_size": 8192,
        "hidden_size": 512,
        "intermediate_size": 1536,
        "num_hidden_layers": 6,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    },
    # Qwen/Qwen2-0.5B's config.json values (random weights, built locally).
    "qwen2-0.5b": {
        "arch": "qwen2",
        "vocab_size": 151936,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
}


def build_model(name: str, out: Path, dtype: str) -> Path:
    """A local model folder: the tiny model's tokenizer + chat template, a random-init model with
    the named config's shapes (larger vocab than the tokenizer: extra ids decode to nothing and
    make an early end-of-sequence unlikely, so every row decodes about the same number of tokens)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from generation.tiny_model import build_tiny_model

    build_tiny_model(out)
    spec = dict(CONFIGS[name])
    arch = spec.pop("arch")
    ids = json.loads((out / "config.json").read_text())
    common = {k: ids[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    config_cls, model_cls = (
        (LlamaConfig, LlamaForCausalLM) if arch == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    )
    config = config_cls(**spec, **common)
    torch.manual_seed(0)
    torch_dtype = getattr(torch, dtype) if dtype != "auto" else torch.float32
    with torch.device("cpu"):
        model = model_cls(config).to(torch_dtype)
    for name_ in ("pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(model.generation_config, name_, common[name_])
    for f in out.glob("*.safetensors"):
        f.unlink()
    model.save_pretrained(out, safe_serialization=True)
    return out


def measure_bandwidth(device: str) -> float | None:
    """Device memory bandwidth in bytes/s from a large device-to-device copy (read + write)."""
    import torch

    if not device.startswith("cuda"):
        return None
    n = 512 * 1024 * 1024  # bf16 elements: 1 GiB
    src = torch.empty(n, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    runs = 10
    start = time.perf_counter()
    for _ in range(runs):
        dst.copy_(src)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n * 2 * runs / elapsed


def conversations(count: int) -> list[list[dict]]:
    topics = [
        "sorting lists",
        "the capital of France",
        "photosynthesis",
        "a haiku about the sea",
        "email etiquette",
    ]
    return [
        [{"role": "user", "content": f"Question {i}: tell me about {topics[i % len(topics)]}."}]
        for i in range(count)
    ]


def run_backend(backend, batch_sizes, new_tokens: int, repeats: int, device: str) -> list[dict]:
    import torch

    from generation.backends.base import SamplingParams

    rows = []
    warm = SamplingParams(n=1, seed=0, max_new_tokens=4)
    backend.generate(conversations(2), warm)
    for batch in batch_sizes:
        convs = conversations(batch)
        params = SamplingParams(n=1, seed=1, temperature=1.0, max_new_tokens=new_tokens)
        backend.generate(convs, params.replace(max_new_tokens=4))  # warm this shape
        best = None
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            results = backend.generate(convs, params)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            tokens = sum(g.completion_tokens or 0 for r in results for g in r)
            if best is None or tokens / elapsed > best["tokens_per_s"]:
                best = {
                    "batch": batch,
                    "tokens": tokens,
                    "seconds": elapsed,
                    "tokens_per_s": tokens / elapsed,
                }
        rows.append(best)
        print(
            f"  batch {batch:>3}: {best['tokens']:>6} tokens in {best['seconds']:7.2f} s = {best['tokens_per_s']:9.1f} tokens/s",
            flush=True,
        )
    return rows


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--dtype", default="auto", help="auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16, float16"
    )
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument(
        "--vllm", action="store_true", help="also time the vLLM backend (GPU, vllm installed)"
    )
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = args.dtype if args.dtype != "auto" else ("float32" if device == "cpu" else "bfloat16")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(
        f"device={device} dtype={dtype} config={args.config} new_tokens={args.new_tokens} torch={torch.__version__} "
        f"threads={torch.get_num_threads()}"
    )
    if device == "cpu":
        print("No GPU here: CPU figures only (no roofline).")
        load = os.getloadavg()[0]
        if load > (os.cpu_count() or 1):
            print(
                f"Load average {load:.1f} on {os.cpu_count()} cores: other processes compete for the CPU; "
                "torch's spinning OpenMP threads suffer most (try --threads 1)."
            )

    from generation.backends.transformers import TransformersBackend

    report: dict = {"device": device, "dtype": dtype, "config": args.config, "new_tokens": args.new_tokens}
    with tempfile.TemporaryDirectory(prefix="bench-generation-") as tmp:
        path = build_model(args.config, Path(tmp) / "model", dtype)
        backend = TransformersBackend(str(path), device=device, dtype=dtype, batch_size=max(batch_sizes))
        wbytes = weight_bytes(backend.model)
        params = sum(p.numel() for p in backend.model.parameters())
        print(f"model: {params / 1e6:.1f} M parameters, {wbytes / 2**20:.1f} MiB of weights")
        bandwidth = measure_bandwidth(device)
        if bandwidth:
            print(f"measured device bandwidth: {bandwidth / 1e9:.0f} GB/s")
        print("transformers backend:")
        rows = run_backend(backend, batch_sizes, args.new_tokens, args.repeats, device)
        for row in rows:
            if bandwidth:
                roofline = row["batch"] * bandwidth / wbytes
                row["roofline_tokens_per_s"] = roofline
                row["roofline_fraction"] = row["tokens_per_s"] / roofline
        report.update(params=params, weight_bytes=wbytes, bandwidth_bytes_per_s=bandwidth, transformers=rows)
        backend.close()
        del backend

        if args.vllm:
            import importlib.util

            if importlib.util.find_spec("vllm") is None or device == "cpu":
                print("vLLM: not installed or no GPU; skipped.")
            else:
                from generation.backends.vllm import VLLMBackend

                print("vLLM backend:")
                vbackend = VLLMBackend(str(path), dtype=dtype, max_model_len=2048, gpu_memory_utilization=0.6)
                vrows = run_backend(vbackend, batch_sizes, args.new_tokens, args.repeats, device)
                for row in vrows:
                    if bandwidth:
                        row["roofline_fraction"] = row["tokens_per_s"] / (row["batch"] * bandwidth / wbytes)
                report["vllm"] = vrows

    print()
    header = f"{'batch':>5} {'tokens/s':>10} {'x batch-1':>9}"
    if bandwidth:
        header += f" {'roofline t/s':>13} {'fraction':>8}"
    for name in ("transformers", "vllm"):
        if name not in report:
            continue
        print(f"{name}:")
        print(header)
        base = report[name][0]["tokens_per_s"]
        for row in report[name]:
            line = f"{row['batch']:>5} {row['tokens_per_s']:>10.1f} {row['tokens_per_s'] / base:>9.1f}"
            if bandwidth:
                line += f" {row['batch'] * bandwidth / wbytes:>13.0f} {row['roofline_fraction']:>8.1%}"
            print(line)
    rows = report["transformers"]
    speedup = max(r["tokens_per_s"] for r in rows) / rows[0]["tokens_per_s"]
    report["batched_speedup"] = speedup
    verdict = "met" if speedup >= 5 else "NOT met"
    print(f"\nbatched transformers throughput is {speedup:.1f}x batch 1 (goal >= 5x: {verdict})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
