#!/usr/bin/env python3
"""GPU check: generation tokens/s and reward/DPO/PPO step time and peak memory, one table.

Made for a GPU machine with only PyTorch and transformers installed and no network: no Django, no
TRL, no download (the model is a random-init Qwen2-like config of the 0.5B class: 24 layers,
hidden 896, GQA 14/2 heads, vocabulary 151,936). Runs in a few minutes on one modern GPU
(budget: under 8 minutes).

    python bench/gpu_check.py            # on the GPU machine (bf16)
    python bench/gpu_check.py --tiny     # a tiny config on CPU, seconds (what the tests run)

Rows:
* ``generate bN``: the transformers path the generation backend uses (``model.generate`` with every
  sampling setting explicit, temperature 1, no top-k/top-p cut), N prompts of 128 tokens, a fixed
  number of new tokens each (EOS suppressed by min_new_tokens): new tokens per second.
* ``reward``: one optimiser step of a sequence-classification reward model on N chosen/rejected
  pairs (Bradley-Terry loss), fp32 master weights under bf16 autocast (as the runners train).
* ``dpo``: one DPO step (policy fp32 masters + bf16 autocast, frozen bf16 reference).
* ``ppo``: one PPO iteration: rollout (generate), reference/reward scoring, and one clipped-loss
  update of the policy and a value head.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext


def _need() -> tuple[object, object]:
    missing = []
    try:
        import torch
    except ImportError:
        torch = None
        missing.append("torch")
    try:
        import transformers
    except ImportError:
        transformers = None
        missing.append("transformers")
    if missing:
        print(
            f"gpu_check needs {' and '.join(missing)} (nothing else: no Django, TRL or network). "
            "Bring the wheels along and install them offline: "
            "python -m pip install --no-index --find-links WHEELS_DIR torch transformers "
            "(transformers also needs its own small dependencies: tokenizers, safetensors, "
            "huggingface_hub, numpy, packaging, pyyaml, regex, tqdm).",
            file=sys.stderr,
        )
        sys.exit(2)
    return torch, transformers


SIZES = {
    "0.5b": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=4096,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        max_position_embeddings=512,
    ),
}


class Bench:
    def __init__(self, tiny: bool, device: str | None) -> None:
        self.torch, self.transformers = _need()
        torch = self.torch
        self.tiny = tiny
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = self.device.startswith("cuda")
        self.bf16 = self.cuda and torch.cuda.is_bf16_supported()
        self.dtype = torch.bfloat16 if self.bf16 else torch.float32
        cfg = self.transformers.Qwen2Config(
            **SIZES["tiny" if tiny else "0.5b"], pad_token_id=0, eos_token_id=1, bos_token_id=None
        )
        cfg.tie_word_embeddings = True
        self.config = cfg
        self.prompt_len = 16 if tiny else 128
        self.new_tokens = 8 if tiny else 128
        self.train_len = 32 if tiny else 512
        self.rows: list[tuple[str, str, str, str, str]] = []
        torch.manual_seed(0)

    # -- helpers -----------------------------------------------------------------------------------
    def model(self, kind: str = "lm", *, trainable: bool):
        t = self.transformers
        cls = t.Qwen2ForCausalLM if kind == "lm" else t.Qwen2ForSequenceClassification
        cfg = self.config
        if kind == "rm":
            cfg = self.transformers.Qwen2Config(**cfg.to_dict())
            cfg.num_labels = 1
        model = cls(cfg)
        # Trainable: fp32 master weights (bf16 autocast in the step); frozen: bf16 where supported.
        model.to(device=self.device, dtype=self.torch.float32 if trainable else self.dtype)
        model.train(trainable)
        model.requires_grad_(trainable)
        return model

    def autocast(self):
        if self.bf16:
            return self.torch.autocast("cuda", dtype=self.torch.bfloat16)
        return nullcontext()

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak(self) -> str:
        if not self.cuda:
            return "n/a (CPU)"
        return f"{self.torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"

    def ids(self, batch: int, length: int):
        return self.torch.randint(2, self.config.vocab_size, (batch, length), device=self.device)

    def timed(self, fn, *, repeat: int = 2) -> float:
        fn()  # warm-up (kernels, allocator)
        self.sync()
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        self.sync()
        return (time.perf_counter() - start) / repeat

    @staticmethod
    def update(opt, loss) -> None:
        """One optimiser step on ``loss``: backward, step, gradients dropped."""
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def gen_kwargs(self, new_tokens: int) -> dict:
        return dict(
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            min_p=0.0,
            typical_p=1.0,
            repetition_penalty=1.0,
            num_beams=1,
            pad_token_id=0,
            eos_token_id=1,
        )

    # -- checks ------------------------------------------------------------------------------------
    def generation(self, batches: list[int]) -> None:
        torch = self.torch
        model = self.model(trainable=False).eval()
        for batch in batches:
            self.reset_peak()
            prompt = self.ids(batch, self.prompt_len)
            mask = torch.ones_like(prompt)

            def run(prompt=prompt, mask=mask):
                with torch.inference_mode():
                    model.generate(input_ids=prompt, attention_mask=mask, **self.gen_kwargs(self.new_tokens))

            seconds = self.timed(run, repeat=1)
            self.rows.append(
                (
                    f"generate b{batch}",
                    f"{self.prompt_len}+{self.new_tokens}",
                    f"{seconds:.2f} s",
                    f"{batch * self.new_tokens / seconds:,.0f} tok/s",
                    self.peak(),
                )
            )

    def reward(self, batch: int) -> None:
        torch = self.torch
        self.reset_peak()
        model = self.model("rm", trainable=True)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        chosen, rejected = self.ids(batch, self.train_len), self.ids(batch, self.train_len)

        def step():
            with self.autocast():
                scores = model(input_ids=torch.cat([chosen, rejected])).logits.float().squeeze(-1)
            loss = -torch.nn.functional.logsigmoid(scores[:batch] - scores[batch:]).mean()
            self.update(opt, loss)

        seconds = self.timed(step)
        self.rows.append(self._train_row("reward", batch, seconds))

    def _logps(self, model, ids, start: int):
        logits = model(input_ids=ids).logits[:, start - 1 : -1].float()
        return torch_gather_logp(self.torch, logits, ids[:, start:])

    def dpo(self, batch: int) -> None:
        torch = self.torch
        self.reset_peak()
        policy, reference = self.model(trainable=True), self.model(trainable=False)
        opt = torch.optim.AdamW(policy.parameters(), lr=1e-6)
        start = self.train_len // 2
        chosen, rejected = self.ids(batch, self.train_len), self.ids(batch, self.train_len)
        both = torch.cat([chosen, rejected])

        def step():
            with torch.no_grad(), self.autocast():
                ref = self._logps(reference, both, start).sum(-1)
            with self.autocast():
                pol = self._logps(policy, both, start).sum(-1)
            margin = (pol[:batch] - ref[:batch]) - (pol[batch:] - ref[batch:])
            loss = -torch.nn.functional.logsigmoid(0.1 * margin).mean()
            self.update(opt, loss)

        seconds = self.timed(step)
        self.rows.append(self._train_row("dpo", batch, seconds))

    def ppo(self, batch: int) -> None:
        torch = self.torch
        self.reset_peak()
        policy, reference = self.model(trainable=True), self.model(trainable=False)
        reward_model = self.model("rm", trainable=False)
        value_head = torch.nn.Linear(self.config.hidden_size, 1, device=self.device)
        opt = torch.optim.AdamW([*policy.parameters(), *value_head.parameters()], lr=1e-6)
        prompt = self.ids(batch, self.prompt_len)
        new = self.new_tokens

        def step():
            with torch.no_grad(), self.autocast():
                seq = policy.generate(
                    input_ids=prompt, attention_mask=torch.ones_like(prompt), **self.gen_kwargs(new)
                )
                old = self._logps(policy, seq, self.prompt_len)
                ref = self._logps(reference, seq, self.prompt_len)
                score = reward_model(input_ids=seq).logits.float().squeeze(-1)
            rewards = -0.05 * (old - ref)
            rewards[:, -1] += score
            with self.autocast():
                out = policy(input_ids=seq, output_hidden_states=True)
                values = value_head(out.hidden_states[-1][:, self.prompt_len - 1 : -1].float()).squeeze(-1)
            logits = out.logits[:, self.prompt_len - 1 : -1].float()
            logp = torch_gather_logp(torch, logits, seq[:, self.prompt_len :])
            returns = rewards.flip(-1).cumsum(-1).flip(-1)
            adv = (returns - values.detach()).detach()
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            ratio = (logp - old).exp()
            pg = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
            loss = pg + 0.1 * ((values - returns) ** 2).mean()
            self.update(opt, loss)

        seconds = self.timed(step, repeat=1)
        self.rows.append(
            (
                "ppo",
                f"b{batch} {self.prompt_len}+{new}",
                f"{seconds:.2f} s/iter",
                f"{batch * new / seconds:,.0f} rollout tok/s",
                self.peak(),
            )
        )

    def _train_row(self, name: str, batch: int, seconds: float) -> tuple[str, str, str, str, str]:
        tokens = 2 * batch * self.train_len
        return (
            name,
            f"b{batch}x2 len {self.train_len}",
            f"{seconds:.2f} s/step",
            f"{tokens / seconds:,.0f} tok/s",
            self.peak(),
        )

    def table(self) -> str:
        head = ("check", "shape", "time", "throughput", "peak memory")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(5)]
        line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
        return "\n".join([line(head), line(tuple("-" * w for w in widths)), *(line(r) for r in self.rows)])


def torch_gather_logp(torch, logits, targets):
    """log softmax(logits)[target] without materialising the full fp32 log-softmax twice."""
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny config (CPU, seconds): the tests' run")
    parser.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available)")
    parser.add_argument(
        "--train-batch", type=int, default=None, help="pairs per reward/DPO step, prompts per PPO iteration"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    bench = Bench(args.tiny, args.device)
    torch = bench.torch
    if not bench.cuda and not args.tiny:
        print(
            "!! no CUDA GPU here: the full-size check is meant for a GPU; use --tiny on CPU.", file=sys.stderr
        )
    name = "tiny Qwen2-like" if args.tiny else "random-init Qwen2-like 0.5B-class"
    params = sum(p.numel() for p in bench.model(trainable=False).parameters())
    gpu = torch.cuda.get_device_name(bench.device) if bench.cuda else "CPU"
    print(
        f"# {name} ({params / 1e6:.1f} M parameters), {'bf16' if bench.bf16 else 'fp32'} on {gpu}; "
        f"torch {torch.__version__}, transformers {bench.transformers.__version__}"
    )
    train_batch = args.train_batch or (2 if args.tiny else 8)
    bench.generation([1, 8, 64])
    bench.reward(train_batch)
    bench.dpo(train_batch)
    bench.ppo(train_batch)
    print(bench.table())
    print(f"# total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
