"""The Python side of `examples/bench_precision.rs`: the same wide MLP, data and Adam step in fp32, bf16-mixed
and 16-mixed, as a hand-written PyTorch loop (torch.autocast, and torch.amp.GradScaler for 16-mixed) and as
Lightning's Trainer(precision=...). Writes {"per_step_ms": ...}: the wall time from the start of batch --warmup
to the end, divided by the steps in between.

    python benches/precision_bench.py --mode torch --precision bf16-mixed --device cpu --out r.json
"""

import argparse
import time

from wide_common import lightning_parts, network, write_ms


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["torch", "lightning"], required=True)
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed", "16-mixed"], required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", required=True)
    return parser.parse_args()


def data(torch, args):
    generator = torch.Generator().manual_seed(0)
    n = args.batch * args.steps
    return torch.rand(n, args.width, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def synchronize(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_torch(args):
    import torch

    torch.manual_seed(1)
    device = torch.device(args.device)
    model = network(torch, args.width, args.depth).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x, y = data(torch, args)
    x, y = x.to(device), y.to(device)
    mixed = args.precision != "32-true"
    dtype = torch.bfloat16 if args.precision == "bf16-mixed" else torch.float16
    scaler = torch.amp.GradScaler(args.device, enabled=args.precision == "16-mixed")
    start = None
    for step in range(args.steps):
        if step == args.warmup:
            synchronize(torch, args.device)
            start = time.perf_counter()
        xb, yb = x[step * args.batch:(step + 1) * args.batch], y[step * args.batch:(step + 1) * args.batch]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=args.device, dtype=dtype, enabled=mixed):
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronize(torch, args.device)
    write_ms(args.out, time.perf_counter() - start, args.steps, args.warmup)


def run_lightning(args):
    import torch
    import lightning as L

    adam = lambda parameters: torch.optim.Adam(parameters, lr=1e-3, fused=True)  # noqa: E731
    Wide, Timer = lightning_parts(torch, L, args, adam, lambda: synchronize(torch, args.device))

    x, y = data(torch, args)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=args.batch)
    trainer = L.Trainer(
        accelerator=args.device, devices=1, precision=args.precision, max_steps=args.steps, callbacks=[Timer()],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Wide(), loader)


def main():
    args = parse_args()
    if args.mode == "torch":
        run_torch(args)
    else:
        run_lightning(args)


if __name__ == "__main__":
    main()
