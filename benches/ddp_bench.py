"""The Python side of `examples/bench_ddp.rs`: the same wide MLP, data and SGD step trained data-parallel with
PyTorch's own DistributedDataParallel (launched by torchrun, Gloo) and with Lightning's strategy="ddp".

Rank 0 writes {"per_step_ms": ...} to --out: the wall time from the start of batch --warmup to the end of
training, divided by the steps in between.

    python -m torch.distributed.run --nproc-per-node 2 benches/ddp_bench.py --mode torch --out r.json
    python benches/ddp_bench.py --mode lightning --procs 2 --out r.json
"""

import argparse
import os
import time

from wide_common import lightning_parts, network, write_ms


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["torch", "lightning"], required=True)
    parser.add_argument("--procs", type=int, default=2, help="lightning: processes (torch: torchrun's)")
    parser.add_argument("--no-sync", action="store_true", help="torch: skip gradient averaging (DDP's no_sync)")
    parser.add_argument("--global-batch", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", required=True)
    return parser.parse_args()


def data(torch, args, rank, world):
    """This process's share: every world-th sample, as DistributedSampler without shuffling gives it."""
    generator = torch.Generator().manual_seed(0)
    n = args.global_batch * args.steps
    x = torch.rand(n, args.width, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    return x[rank::world], y[rank::world]


def run_torch(args):
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(1)
    model = torch.nn.parallel.DistributedDataParallel(network(torch, args.width, args.depth))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = data(torch, args, rank, world)
    per = args.global_batch // world
    start = None
    for step in range(args.steps):
        if step == args.warmup:
            start = time.perf_counter()
        xb, yb = x[step * per:(step + 1) * per], y[step * per:(step + 1) * per]
        optimizer.zero_grad(set_to_none=True)
        if args.no_sync:
            with model.no_sync():
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                loss.backward()
        else:
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
        optimizer.step()
    if rank == 0:
        write_ms(args.out, time.perf_counter() - start, args.steps, args.warmup)
    dist.destroy_process_group()


def run_lightning(args):
    import torch
    import lightning as L

    Wide, Timer = lightning_parts(torch, L, args, lambda parameters: torch.optim.SGD(parameters, lr=0.01))

    x, y = data(torch, args, 0, 1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=args.global_batch // args.procs, shuffle=False
    )
    trainer = L.Trainer(
        accelerator="cpu", devices=args.procs, strategy="ddp", max_steps=args.steps, callbacks=[Timer()],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Wide(), loader)


def main():
    args = parse_args()
    # One intra-op thread per process, as torchrun sets for several processes per machine.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.mode == "torch":
        run_torch(args)
    else:
        run_lightning(args)


if __name__ == "__main__":
    main()
