"""What the scale benchmarks' Python sides share (`ddp_bench.py`, `precision_bench.py`): the wide MLP, the
Lightning module and timing callback around it, and how a per-step time is written for the Rust harness."""

import json
import time


def network(torch, width, depth):
    """`depth` layers of `width` with ReLU, then 10 classes: the model of `examples/shared/wide.rs`."""
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def write_ms(path, elapsed, steps, warmup):
    with open(path, "w") as f:
        json.dump({"per_step_ms": elapsed * 1000 / (steps - warmup)}, f)


def lightning_parts(torch, L, args, make_optimizer, synchronize=lambda: None):
    """The Lightning module (the wide MLP, cross-entropy, `make_optimizer(parameters)`) and a callback that
    times from the start of batch `args.warmup` to the end of training; rank 0 writes the figure."""

    class Wide(L.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(1)
            self.net = network(torch, args.width, args.depth)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return make_optimizer(self.parameters())

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == args.warmup:
                synchronize()
                self.start = time.perf_counter()

        def on_train_end(self, trainer, module):
            synchronize()
            if trainer.global_rank == 0:
                write_ms(args.out, time.perf_counter() - self.start, args.steps, args.warmup)

    return Wide, Timer
