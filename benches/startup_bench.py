"""The Lightning side of `examples/bench_tools.rs`'s start-up row: from the interpreter's start to the first
`training_step` of a tiny module under `lightning.Trainer` with its extras off. Prints `FIRST_STEP` on stdout when
the step is reached and exits at once.

    python benches/startup_bench.py
"""

import os
import sys

import torch
from lightning.pytorch import LightningModule, Trainer


class Tiny(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(32, 1)

    def training_step(self, batch, batch_idx):
        print("FIRST_STEP", flush=True)
        os._exit(0)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(64, 32)), batch_size=16)
    trainer = Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Tiny(), data)
    sys.exit("the first training step was never reached")


if __name__ == "__main__":
    main()
