//! The side measurements: the data path (in-line against two worker threads) and what a checkpoint write costs.

use super::variants::{data, network, Bench};
use super::*;

/// The data path: batches costing about `prepare_ms` of CPU work, a step costing about the same, in-line versus
/// prepared ahead on two worker threads. Steps per second of each, and the ratio.
pub(crate) fn data_path(smoke: bool) -> lightning::Result<DataPath> {
    // One intra-op thread: the training thread takes one core, the workers the other.
    let threads = tch::get_num_threads();
    tch::set_num_threads(1);
    let batches = if smoke { 8 } else { 200 };
    let x = Tensor::rand([batches * 32, 256], (Kind::Float, Device::Cpu));
    let work = Tensor::rand([256, 256], (Kind::Float, Device::Cpu)) / 256.0;
    let rounds = calibrate(
        |n| {
            let mut b = x.narrow(0, 0, 32);
            for _ in 0..n {
                b = b.matmul(&work);
            }
        },
        1.0,
    );
    // Tensors are `Send` but not `Sync`: the workers share the weight through a mutex, held only to take a handle.
    let shared = std::sync::Arc::new(std::sync::Mutex::new(work));
    let prepare = move |batch: Tensor| -> lightning::Result<Tensor> {
        let work = shared.lock().map_err(|_| lightning::Error::Config("poisoned".into()))?.shallow_clone();
        let mut b = batch;
        for _ in 0..rounds {
            b = b.f_matmul(&work)?;
        }
        Ok(b)
    };
    let w = Workload { model: "data", inputs: 256, width: 1024, depth: 1, batch: 32, steps: batches as usize };
    let vs = nn::VarStore::new(Device::Cpu);
    let net = network(&vs, &w);
    let step_rounds = calibrate(
        |n| {
            for _ in 0..n {
                drop(net.forward(&x.narrow(0, 0, 32)));
            }
        },
        1.0,
    );
    let prepare_ms = time_ms(|| drop(prepare(x.narrow(0, 0, 32))));
    let step_ms = time_ms(|| {
        for _ in 0..step_rounds {
            drop(net.forward(&x.narrow(0, 0, 32)));
        }
    });
    // In-line and workers take turns, three rounds; the median of each (the machine is shared and noisy).
    let mut rounds_of: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for (slot, workers) in [(0, 0), (1, 2)].into_iter().cycle().take(if smoke { 2 } else { 6 }) {
        let mut loader =
            DataLoader::new(x.shallow_clone()).batch_size(32).workers(workers).map(prepare.clone()).build()?;
        let start = Instant::now();
        let mut n = 0;
        for batch in loader.batches(0) {
            let batch = batch?;
            for _ in 0..step_rounds {
                drop(net.forward(&batch));
            }
            n += 1;
        }
        rounds_of[slot].push(n as f64 / start.elapsed().as_secs_f64());
    }
    let throughput = [median(&rounds_of[0]), median(&rounds_of[1])];
    tch::set_num_threads(threads);
    Ok(DataPath {
        prepare_ms,
        step_ms,
        inline_steps_per_s: throughput[0],
        workers_steps_per_s: throughput[1],
        speedup: throughput[1] / throughput[0],
    })
}

/// The wide CPU model trained with everything optional off, with and without a checkpoint (weights and Adam's
/// state, about 12 MB) written in line every few steps; the runs alternate, and the medians give the cost of one
/// write. Then the integrity checks' part of it, timed on the file itself.
pub(crate) fn checkpoint_cost(smoke: bool, reps: usize) -> lightning::Result<CheckpointCost> {
    let w =
        Workload { model: "wide", inputs: 512, width: 512, depth: 4, batch: 256, steps: if smoke { 4 } else { 40 } };
    let every = if smoke { 2 } else { 4 };
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path().join("checkpoints");
    let run = |checkpoints: bool| -> lightning::Result<f64> {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = network(&vs, &w);
        let mut module = Bench { vs, net, log: false };
        let loader = DataLoader::new(data(&w)).batch_size(w.batch as usize).build()?;
        let mut trainer = Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .max_steps(w.steps)
            .accelerator(Accelerator::Cpu)
            .enable_progress_bar(false)
            .enable_model_summary(false)
            .nonfinite_loss(NonFinite::Off)
            .async_checkpointing(false);
        if checkpoints {
            trainer = trainer.callback(ModelCheckpoint::new(&dir).every_n_train_steps(every));
        }
        let start = Instant::now();
        trainer.fit(&mut module, loader, None)?;
        Ok(start.elapsed().as_secs_f64() * 1e3 / w.steps as f64)
    };
    run(true)?;
    let (mut plain, mut checkpointing) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(3) {
        plain.push(run(false)?);
        checkpointing.push(run(true)?);
    }
    let file = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .ok_or_else(|| lightning::Error::Config("the checkpointing run wrote no file".into()))?;
    let bytes = std::fs::read(&file)?;
    let crc32c_ms = median(
        &(0..9)
            .map(|_| {
                time_ms(|| {
                    std::hint::black_box(crc32c::crc32c(&bytes));
                })
            })
            .collect::<Vec<_>>(),
    );
    let read_back_ms = median(&(0..9).map(|_| time_ms(|| drop(std::fs::read(&file)))).collect::<Vec<_>>());
    let writes = w.steps / every;
    let (plain_step_ms, checkpointing_step_ms) = (median(&plain), median(&checkpointing));
    let per_write_ms = (checkpointing_step_ms - plain_step_ms) * w.steps as f64 / writes as f64;
    Ok(CheckpointCost {
        file_mb: bytes.len() as f64 / 1e6,
        writes,
        plain_step_ms,
        checkpointing_step_ms,
        per_write_ms,
        crc32c_ms,
        read_back_ms,
        checks_share: (2.0 * crc32c_ms + read_back_ms) / per_write_ms,
    })
}

pub(crate) fn time_ms(f: impl Fn()) -> f64 {
    f();
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    start.elapsed().as_secs_f64() * 1e3 / runs as f64
}

/// How many rounds `n` make `f(n)` take about `target_ms`: estimated from one round, then corrected by timing
/// that many in a row (one round alone runs colder than a chain of them).
pub(crate) fn calibrate(f: impl Fn(usize), target_ms: f64) -> usize {
    let once = time_ms(|| f(1)).max(1e-3);
    let guess = ((target_ms / once).round() as usize).max(1);
    let chained = time_ms(|| f(guess)).max(1e-3);
    ((guess as f64 * target_ms / chained).round() as usize).max(1)
}
