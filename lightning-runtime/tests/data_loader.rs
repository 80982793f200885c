//! The tensor DataLoader: batching, the seeded shuffle, worker threads and their errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lightning_runtime::tch::{Device, Kind, Tensor};
use lightning_runtime::{DataLoader, Dataset, Error, Loader, Result};

fn arange(n: i64) -> Tensor {
    Tensor::arange(n, (Kind::Int64, Device::Cpu))
}

fn values(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.flatten(0, -1)).unwrap()
}

/// Every batch of `epoch`, each as the sample values it holds.
fn epoch_values(loader: &mut Loader<Tensor>, epoch: usize) -> Vec<Vec<i64>> {
    loader.batches(epoch).map(|b| values(&b.unwrap())).collect()
}

fn shuffled(seed: u64) -> Loader<Tensor> {
    DataLoader::new(arange(100)).batch_size(7).shuffle(true).seed(seed).build().unwrap()
}

#[test]
fn batch_count_and_sizes() {
    let mut loader = DataLoader::new(arange(10)).batch_size(3).build().unwrap();
    assert_eq!(loader.len(), Some(4));
    let batches = epoch_values(&mut loader, 0);
    assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]);

    let mut loader = DataLoader::new(arange(10)).batch_size(3).drop_last(true).build().unwrap();
    assert_eq!(loader.len(), Some(3));
    let batches = epoch_values(&mut loader, 0);
    assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]]);

    // A batch size that divides the data: drop_last changes nothing.
    let mut loader = DataLoader::new(arange(12)).batch_size(4).drop_last(true).build().unwrap();
    assert_eq!(loader.len(), Some(3));
    assert_eq!(epoch_values(&mut loader, 0).len(), 3);

    // Fewer samples than a batch: one short batch, or none with drop_last.
    let mut loader = DataLoader::new(arange(3)).batch_size(8).build().unwrap();
    assert_eq!(epoch_values(&mut loader, 0), vec![vec![0, 1, 2]]);
    let mut loader = DataLoader::new(arange(3)).batch_size(8).drop_last(true).workers(2).build().unwrap();
    assert_eq!(loader.len(), Some(0));
    assert!(loader.is_empty());
    assert_eq!(loader.batches(0).count(), 0);
}

#[test]
fn rows_keep_their_shape_and_stay_aligned_across_tensors() {
    let x = arange(20).view([10, 2]);
    let y = arange(10) * 10;
    let z = arange(10).to_kind(Kind::Float);
    let mut loader = DataLoader::new((x, y, z)).batch_size(4).shuffle(true).seed(1).build().unwrap();
    let mut count = 0;
    for batch in loader.batches(0) {
        let (x, y, z) = batch.unwrap();
        assert_eq!(x.size()[1..], [2]);
        assert_eq!(x.kind(), Kind::Int64);
        assert_eq!(z.kind(), Kind::Float);
        let (x, y) = (values(&x), values(&y));
        for (row, &label) in x.chunks(2).zip(&y) {
            // Sample i is x = [2i, 2i+1], y = 10i, z = i.
            assert_eq!(row, [label / 5, label / 5 + 1]);
        }
        assert_eq!(values(&z.to_kind(Kind::Int64)), y.iter().map(|v| v / 10).collect::<Vec<_>>());
        count += y.len();
    }
    assert_eq!(count, 10);
}

#[test]
fn shuffle_visits_every_sample_once_per_epoch() {
    let mut loader = shuffled(0);
    assert_eq!(loader.len(), Some(15));
    for epoch in 0..4 {
        let batches = epoch_values(&mut loader, epoch);
        assert_eq!(batches.len(), 15);
        assert!(batches[..14].iter().all(|b| b.len() == 7));
        assert_eq!(batches[14].len(), 2);
        let order: Vec<i64> = batches.concat();
        assert_ne!(order, (0..100).collect::<Vec<_>>(), "epoch {epoch} is not shuffled");
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>(), "epoch {epoch} does not hold every sample once");
    }
}

#[test]
fn the_order_depends_on_seed_and_epoch_only() {
    let (mut a, mut b, mut other) = (shuffled(42), shuffled(42), shuffled(43));
    let a0 = epoch_values(&mut a, 0);
    assert_eq!(a0, epoch_values(&mut b, 0), "same seed, same epoch");
    let a1 = epoch_values(&mut a, 1);
    assert_ne!(a0, a1, "different epochs");
    assert_eq!(a1, epoch_values(&mut b, 1));
    assert_ne!(a0, epoch_values(&mut other, 0), "another seed");
    // Asking again for an epoch gives it again: nothing carries over between epochs.
    assert_eq!(a0, epoch_values(&mut a, 0));
}

#[test]
fn the_shuffle_ignores_torchs_global_rng() {
    lightning_runtime::tch::manual_seed(1);
    let first = epoch_values(&mut shuffled(5), 2);
    lightning_runtime::tch::manual_seed(2);
    let _ = Tensor::randn([100], (Kind::Float, Device::Cpu));
    assert_eq!(first, epoch_values(&mut shuffled(5), 2));
}

#[test]
fn a_fresh_loader_resumes_at_the_epoch_an_uninterrupted_run_would_see() {
    let mut long_lived = shuffled(9);
    let epochs: Vec<_> = (0..6).map(|e| epoch_values(&mut long_lived, e)).collect();
    for (e, expected) in epochs.iter().enumerate() {
        assert_eq!(&epoch_values(&mut shuffled(9), e), expected, "epoch {e}");
    }
    // With workers too.
    let mut resumed = DataLoader::new(arange(100)).batch_size(7).shuffle(true).seed(9).workers(3).build().unwrap();
    assert_eq!(epoch_values(&mut resumed, 4), epochs[4]);
}

/// All epochs 0..3 of a loader over (x, y), with `map` adding 1000 to x and negating y when `transform` is set.
fn run_with(workers: usize, prefetch: usize, transform: bool) -> Vec<Vec<(Vec<i64>, Vec<i64>)>> {
    let x = arange(46).view([23, 2]);
    let y = arange(23);
    let mut builder = DataLoader::new((x, y)).batch_size(4).shuffle(true).seed(11).workers(workers).prefetch(prefetch);
    if transform {
        builder = builder.map(|(x, y)| Ok((x + 1000, -y)));
    }
    let mut loader = builder.build().unwrap();
    (0..3)
        .map(|epoch| {
            loader
                .batches(epoch)
                .map(|b| {
                    let (x, y) = b.unwrap();
                    (values(&x), values(&y))
                })
                .collect()
        })
        .collect()
}

#[test]
fn workers_yield_exactly_the_in_line_batches() {
    for transform in [false, true] {
        let in_line = run_with(0, 2, transform);
        assert_eq!(in_line[0].len(), 6);
        for (workers, prefetch) in [(1, 1), (2, 2), (3, 1), (8, 4)] {
            assert_eq!(run_with(workers, prefetch, transform), in_line, "workers({workers}).prefetch({prefetch})");
        }
    }
    let mapped = run_with(2, 2, true);
    assert!(mapped[0][0].0.iter().all(|&v| v >= 1000));
    assert!(mapped[0][0].1.iter().all(|&v| v <= 0));
}

#[test]
fn map_runs_on_every_batch_and_composes_in_order() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let mut loader = DataLoader::new(arange(10))
        .batch_size(3)
        .workers(2)
        .map(move |x| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(x * 2)
        })
        .map(|x| Ok(x + 1))
        .build()
        .unwrap();
    let batches = epoch_values(&mut loader, 0);
    assert_eq!(batches.concat(), (0..10).map(|v| v * 2 + 1).collect::<Vec<_>>());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[test]
fn map_does_not_write_into_the_dataset() {
    let data = Tensor::zeros([4], (Kind::Float, Device::Cpu));
    let mut loader = DataLoader::new(data.shallow_clone())
        .batch_size(2)
        .map(|mut x| {
            let _ = x.f_add_scalar_(5.0)?;
            Ok(x)
        })
        .build()
        .unwrap();
    for batch in loader.batches(0) {
        assert_eq!(batch.unwrap().double_value(&[0]), 5.0);
    }
    assert_eq!(data.sum(Kind::Float).double_value(&[]), 0.0);
}

#[test]
fn dropping_the_iterator_early_stops_the_workers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let mut loader = DataLoader::new(arange(1000))
        .batch_size(1)
        .workers(2)
        .prefetch(2)
        .map(move |x| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(x)
        })
        .build()
        .unwrap();
    {
        let mut batches = loader.batches(0);
        assert_eq!(values(&batches.next().unwrap().unwrap()), [0]);
    }
    // The drop joined the workers: each prepared at most its queue (2) plus the batch it was on, besides the
    // batch taken, and nothing more happens afterwards.
    let after_drop = calls.load(Ordering::SeqCst);
    assert!((1..=1 + 2 * 3).contains(&after_drop), "{after_drop} batches prepared");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(calls.load(Ordering::SeqCst), after_drop);

    // The loader is still usable, and a dropped epoch does not disturb the next.
    assert_eq!(epoch_values(&mut loader, 1).concat(), (0..1000).collect::<Vec<_>>());
    let mut batches = loader.batches(2);
    for _ in 0..500 {
        let _batch = batches.next().unwrap().unwrap();
    }
}

/// The error `build` gives (`Loader` is not `Debug`, so `unwrap_err` is out).
fn build_err<D: Dataset>(builder: DataLoader<D>) -> Error {
    match builder.build() {
        Ok(_) => panic!("build() accepted it"),
        Err(e) => e,
    }
}

#[test]
fn build_rejects_mismatched_lengths_and_batch_size_zero() {
    let err = build_err(DataLoader::new((arange(10), arange(9))));
    match err {
        Error::Config(msg) => assert!(msg.contains("10, 9"), "{msg}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
    let err = build_err(DataLoader::new((arange(10), arange(10), arange(11).view([11, 1]))).batch_size(2));
    match err {
        Error::Config(msg) => assert!(msg.contains("10, 10, 11"), "{msg}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
    let err = build_err(DataLoader::new(arange(10)).batch_size(0));
    match err {
        Error::Config(msg) => assert!(msg.contains("batch_size"), "{msg}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
    let err = build_err(DataLoader::new(arange(10)).workers(2).prefetch(0));
    assert!(matches!(err, Error::Config(ref msg) if msg.contains("prefetch")), "{err}");
    let err = build_err(DataLoader::new(Tensor::from(3i64)));
    assert!(matches!(err, Error::Config(ref msg) if msg.contains("scalar")), "{err}");
}

#[test]
fn indices_out_of_range_are_errors_not_panics() {
    let data = (arange(5), arange(5));
    assert!(data.get_batch(&[0, 5]).is_err());
    assert!(data.get_batch(&[-7]).is_err());
    // A run of consecutive indices (copied from a narrowed view) that runs past the end.
    assert!(data.get_batch(&[3, 4, 5]).is_err());
    assert_eq!(values(&data.get_batch(&[4, 1]).unwrap().0), [4, 1]);
    assert_eq!(values(&data.get_batch(&[1, 2, 3]).unwrap().1), [1, 2, 3]);
}

/// Each batch of epoch 0 over 0..20 in batches of 2, with a `map` that fails as `fail` says on batch 3.
fn failing_on_batch_3(workers: usize, fail: fn() -> Result<Tensor>) -> Vec<Result<Tensor>> {
    let mut loader = DataLoader::new(arange(20))
        .batch_size(2)
        .workers(workers)
        .map(move |x| if x.int64_value(&[0]) == 6 { fail() } else { Ok(x) })
        .build()
        .unwrap();
    loader.batches(0).collect()
}

#[test]
fn a_map_error_comes_out_at_its_batch_and_ends_the_epoch() {
    for workers in [0, 2, 3] {
        let out = failing_on_batch_3(workers, || Err(Error::Config("no batch 3 today".into())));
        assert_eq!(out.len(), 4, "workers({workers})");
        assert!(out[..3].iter().all(Result::is_ok));
        match &out[3] {
            Err(Error::Config(msg)) => assert_eq!(msg, "no batch 3 today"),
            other => panic!("expected the closure's error, got {other:?}"),
        }
    }
}

#[test]
fn a_map_panic_comes_out_as_an_error_at_its_batch() {
    for workers in [0, 2, 3] {
        let out = failing_on_batch_3(workers, || panic!("augmentation blew up"));
        assert_eq!(out.len(), 4, "workers({workers})");
        assert!(out[..3].iter().all(Result::is_ok));
        let err = out[3].as_ref().unwrap_err();
        assert!(matches!(err, Error::Panic { hook: "DataLoader::map", .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("augmentation blew up") && msg.contains("batch 3"), "{msg}");
    }
}

/// A dataset of its own: sample i is the float i, and asking for sample 13 panics.
struct Fragile(Tensor);

impl Dataset for Fragile {
    type Batch = Tensor;

    fn len(&self) -> usize {
        self.0.size()[0] as usize
    }

    fn get_batch(&self, indices: &[i64]) -> Result<Tensor> {
        assert!(!indices.contains(&13), "sample 13 is corrupt");
        self.0.get_batch(indices)
    }

    fn share(&self) -> Self {
        Fragile(self.0.shallow_clone())
    }
}

#[test]
fn a_custom_dataset_works_and_its_panics_are_errors() {
    for workers in [0, 2] {
        let mut loader = DataLoader::new(Fragile(arange(20))).batch_size(5).workers(workers).build().unwrap();
        let out: Vec<_> = loader.batches(0).collect();
        assert_eq!(out.len(), 3, "workers({workers})");
        assert_eq!(values(out[1].as_ref().unwrap()), [5, 6, 7, 8, 9]);
        let err = out[2].as_ref().unwrap_err();
        assert!(matches!(err, Error::Panic { hook: "Dataset::get_batch", .. }), "{err:?}");
        assert!(err.to_string().contains("sample 13 is corrupt"), "{err}");
    }
}
