"""The PyTorch side of `examples/bench/`: the same model, data, optimizer and step count, trained by a hand-written
PyTorch loop (`raw`), by PyTorch Lightning with its defaults on (`defaults`), or with its optional extras off
(`minimal`). Prints one line of JSON to stdout and nothing else; logs, warnings and the progress bar go to stderr.

    python benches/lightning_bench.py --model {mlp,wide} --setting {raw,defaults,minimal} \
        --steps N --reps R --device {cpu,cuda} [--width W --depth D --batch B] [--batches K]

Output: {"framework", "model", "setting", "device", "steps", "reps", "per_step_ms": [one per repetition],
"median_ms"}, the per-step time being the wall time of the timed part divided by `steps`.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

# The mlp's shape is fixed, and matches the Rust side's: 32 inputs, one hidden layer of 64, batches of 64.
MLP = {"inputs": 32, "width": 64, "depth": 1, "batch": 64}
# How many batches the fixed data set holds when --batches is not given.
DEFAULT_BATCHES = {"mlp": 100, "wide": 20}
# Steps trained, untimed, before each timed run (see `run_lightning` for why it is a whole separate fit).
WARMUP_STEPS = 50


def reserve_stdout():
    """Points file descriptor 1 (and sys.stdout) at stderr, returning a file on the real stdout for the JSON.

    Lightning's tqdm progress bar writes to sys.stdout, and a library or extension may write to fd 1 directly, so
    redirecting sys.stdout alone would not keep stdout clean; moving the descriptor catches everything.
    """
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return json_out


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "wide"], required=True)
    parser.add_argument("--setting", choices=["raw", "defaults", "minimal"], required=True)
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps per timed run")
    parser.add_argument("--reps", type=int, required=True, help="timed repetitions")
    parser.add_argument("--device", choices=["cpu", "cuda"], required=True)
    parser.add_argument("--width", type=int, help="wide: layer width and input size (default 512); mlp: must be 64")
    parser.add_argument("--depth", type=int, help="wide: hidden layers (default 4); mlp: must be 1")
    parser.add_argument("--batch", type=int, help="wide: batch size (default 256); mlp: must be 64")
    parser.add_argument("--batches", type=int, help="batches in the data set, one epoch (default mlp 100, wide 20)")
    args = parser.parse_args()

    if args.model == "mlp":
        # The Rust side passes its mlp's shape explicitly; a different one would compare two different models.
        for name in ("width", "depth", "batch"):
            given = getattr(args, name)
            if given is not None and given != MLP[name]:
                parser.error(f"--model mlp has a fixed {name} of {MLP[name]}, not {given}")
        shape = dict(MLP)
    else:
        width = 512 if args.width is None else args.width
        shape = {
            "inputs": width,
            "width": width,
            "depth": 4 if args.depth is None else args.depth,
            "batch": 256 if args.batch is None else args.batch,
        }
    shape["batches"] = DEFAULT_BATCHES[args.model] if args.batches is None else args.batches
    for name, value in [("steps", args.steps), ("reps", args.reps), *shape.items()]:
        least = 0 if name == "depth" else 1  # depth 0 is a plain linear model
        if value < least:
            parser.error(f"{name} must be at least {least}, not {value}")
    return args, shape


def main():
    json_out = reserve_stdout()
    args, shape = parse_args()

    # Imported after the redirect so that nothing they print at import time can reach stdout.
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("lightning_bench.py: --device cuda, but torch sees no CUDA device")

    # Seeded through torch's global generator, as the Rust side seeds tch's: the same libtorch CPU generator, so
    # both sides train on the very same numbers.
    torch.manual_seed(0)
    x = torch.rand(shape["batch"] * shape["batches"], shape["inputs"])
    y = x.mean(dim=1, keepdim=True)  # for the mlp, the same as the sum over its 32 features / 32

    per_step_ms = []
    for _ in range(args.reps):
        if args.setting == "raw":
            elapsed = run_raw(args, shape, x, y)
        else:
            elapsed = run_lightning(args, shape, x, y)
        per_step_ms.append(elapsed * 1e3 / args.steps)

    result = {
        "framework": "pytorch" if args.setting == "raw" else "pytorch-lightning",
        "model": args.model,
        "setting": args.setting,
        "device": args.device,
        "steps": args.steps,
        "reps": args.reps,
        "per_step_ms": per_step_ms,
        "median_ms": statistics.median(per_step_ms),
    }
    json_out.write(json.dumps(result) + "\n")
    json_out.flush()


def network(shape):
    """`depth` Linear+ReLU layers of `width`, then one output; built on the CPU, as Lightning expects."""
    import torch.nn as nn

    layers, inputs = [], shape["inputs"]
    for _ in range(shape["depth"]):
        layers += [nn.Linear(inputs, shape["width"]), nn.ReLU()]
        inputs = shape["width"]
    layers.append(nn.Linear(inputs, 1))
    return nn.Sequential(*layers)


def loader(shape, x, y):
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(x, y), batch_size=shape["batch"], shuffle=False, num_workers=0)


def synchronize(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def run_raw(args, shape, x, y):
    """The loop a PyTorch user writes by hand; returns the seconds the timed `args.steps` steps took."""
    import torch
    import torch.nn.functional as F

    def prepare():
        # Outside the timed part, as Lightning's is timed from `on_train_start` (after it moved the module and
        # called `configure_optimizers`) and ours from the same hook.
        model = network(shape).to(args.device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3), loader(shape, x, y)

    def train(steps, model, optimizer, data):
        done = 0
        while done < steps:  # as many epochs as it takes, like Lightning's max_steps
            for bx, by in data:
                bx, by = bx.to(args.device), by.to(args.device)
                optimizer.zero_grad()
                loss = F.mse_loss(model(bx), by)
                loss.backward()
                optimizer.step()
                done += 1
                if done == steps:
                    break

    torch.manual_seed(0)
    train(WARMUP_STEPS, *prepare())  # a separate model, as for Lightning: the timed one starts fresh
    torch.manual_seed(0)
    timed = prepare()
    synchronize(args.device)
    start = time.perf_counter()
    train(args.steps, *timed)
    synchronize(args.device)
    return time.perf_counter() - start


def run_lightning(args, shape, x, y):
    """One repetition through `lightning.Trainer`; returns the seconds from `on_train_start` to `on_train_end`."""
    import lightning
    import torch
    import torch.nn.functional as F

    defaults = args.setting == "defaults"

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = network(shape)

        def forward(self, inputs):
            return self.net(inputs)

        def training_step(self, batch, batch_idx):
            bx, by = batch
            loss = F.mse_loss(self(bx), by)
            if defaults:
                # on_step=True in training_step; sent to the logger every log_every_n_steps=50 steps.
                self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Stopwatch(lightning.Callback):
        """When training started and ended: the steps alone, as the hand-written loop and the Rust side time them."""

        def __init__(self):
            self.start = self.end = None

        def on_train_start(self, trainer, pl_module):
            synchronize(args.device)
            self.start = time.perf_counter()

        def on_train_end(self, trainer, pl_module):
            synchronize(args.device)
            self.end = time.perf_counter()

    def fit(steps, root):
        """Builds a fresh model and trainer; returns the seconds from `on_train_start` to `on_train_end`."""
        torch.manual_seed(0)
        model = Module()
        if defaults:
            extras = dict(
                logger=True,  # Lightning's default: TensorBoard where it is installed, else CSV, under root
                enable_checkpointing=True,  # the default ModelCheckpoint, saving into root
                enable_progress_bar=True,  # tqdm, on stderr here: see reserve_stdout
                enable_model_summary=True,
            )
        else:
            extras = dict(
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
        trainer = lightning.Trainer(
            max_steps=steps,
            accelerator=args.device,
            devices=1,
            default_root_dir=root,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[stopwatch],
            **extras,
        )
        data = loader(shape, x, y)
        trainer.fit(model, train_dataloaders=data)
        return stopwatch.end - stopwatch.start

    stopwatch = Stopwatch()
    # The timed part is the steps, from `on_train_start` to `on_train_end`, as for the Rust side: what a fit does
    # once (setup, the loggers' files, the summary) is not spread over the steps. A separate untimed fit of WARMUP_STEPS comes first, with the same settings and a model of its own, so
    # that lazy imports, first-call allocations and kernel/library initialization along Lightning's code paths are
    # not billed to the timed run, while the timed run still starts from a fresh model, trainer and directory.
    with tempfile.TemporaryDirectory() as root:
        fit(WARMUP_STEPS, root)
    with tempfile.TemporaryDirectory() as root:
        return fit(args.steps, root)


if __name__ == "__main__":
    main()
