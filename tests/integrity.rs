//! What a checkpoint holds is what comes back, or the reader says what is wrong: NaN and infinite floats round-trip,
//! every damaged byte is caught (by checksums over the metadata and each tensor), unknown and missing keys are
//! errors, and the temporary files a killed write leaves behind are cleaned by the next run in that folder.

mod common;

use std::path::{Path, PathBuf};

use common::checkpointing::{
    assert_same_weights, edit_metadata, split_safetensors, train_loader, val_loader, weights, Net, Opt, Saver,
    BATCHES_PER_EPOCH,
};
use common::serial;
use lightning::prelude::*;
use lightning::{Accelerator, NonFinite, Trainer};

const SEED: u64 = 3;

fn cpu() -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .seed(SEED)
        .enable_progress_bar(false)
        .enable_model_summary(false)
}

/// The MLP, with a NaN loss (logged, then skipped) at batch 1 of the first epoch.
struct NanOnce {
    vs: nn::VarStore,
    layers: Vec<nn::Linear>,
}

impl NanOnce {
    fn new(init: f64) -> Self {
        let Net { vs, layers, .. } = Net::mlp(init, Opt::SgdOnly);
        NanOnce { vs, layers }
    }
}

#[lightning_module]
impl NanOnce {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let h = self.layers[0].forward(x).relu();
        let mut loss = self.layers[1].forward(&h).mse_loss(y, Reduction::Mean);
        if ctx.current_epoch() == 0 && batch_idx == 1 {
            loss *= f64::NAN;
        }
        ctx.log("train_loss", &loss).on_epoch(true);
        loss
    }

    fn configure_optimizers(&mut self) -> (Optimizer, LrScheduler) {
        (Optimizer::adam(&self.vs, 1e-2), LrScheduler::step_lr(1, 0.5))
    }
}

#[test]
fn checkpoints_after_a_skipped_nan_loss_read_back_and_resume_exactly() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (2..=4).map(|step| dir.path().join(format!("step-{step}.ckpt"))).collect();
    let saver =
        Saver { at_step: paths.iter().enumerate().map(|(i, p)| (i + 2, p.clone())).collect(), ..Saver::default() };

    let mut first = NanOnce::new(0.0);
    let mut trainer = cpu().max_epochs(2).nonfinite_loss(NonFinite::Skip).callback(saver);
    trainer.fit(&mut first, train_loader(SEED), None).unwrap();
    assert_eq!(trainer.global_step(), 2 * BATCHES_PER_EPOCH - 1, "the NaN step is skipped");
    let straight_metrics = trainer.callback_metrics().clone();
    for path in &paths {
        // The first epoch's partial sums hold the NaN, written as JSON can hold it.
        let (header, _) = split_safetensors(&std::fs::read(path).unwrap());
        let meta: serde_json::Value =
            serde_json::from_str(header["__metadata__"]["lightning-rs"].as_str().unwrap()).unwrap();
        let sums: Vec<&serde_json::Value> =
            meta["metrics"].as_array().unwrap().iter().map(|m| &m["epoch_sum"]).collect();
        assert_eq!(sums, [&serde_json::json!("nan")], "{}", path.display());
    }

    for path in &paths {
        let checkpoint = Checkpoint::read(path).unwrap_or_else(|e| panic!("{e}"));
        let mut resumed = NanOnce::new(7.0);
        let mut trainer = cpu().max_epochs(2).nonfinite_loss(NonFinite::Skip);
        trainer.fit_from(&mut resumed, train_loader(SEED), None, path).unwrap();
        assert_eq!(trainer.global_step(), 2 * BATCHES_PER_EPOCH - 1);
        assert_eq!(trainer.callback_metrics(), &straight_metrics);
        let what = format!("resumed from step {}", checkpoint.global_step());
        assert_same_weights(&weights(&resumed.vs), &weights(&first.vs), &what);
    }
}

/// A real checkpoint of the MLP (Adam, a scheduler, a callback's state) at the end of its first epoch.
fn good_checkpoint(dir: &Path) -> PathBuf {
    let _serial = serial();
    let path = dir.join("good.ckpt");
    let mut module = Net::mlp(0.0, Opt::AdamStepLr);
    cpu()
        .max_epochs(1)
        .callback(Saver::at_epoch_end(0, &path))
        .fit(&mut module, train_loader(1), val_loader())
        .unwrap();
    path
}

#[test]
fn every_damaged_byte_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_checkpoint(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let damaged = dir.path().join("damaged.ckpt");
    let prefix = format!("checkpoint {}: ", damaged.display());
    let read_with = |offset: usize, flip: u8| {
        let mut copy = bytes.clone();
        copy[offset] ^= flip;
        std::fs::write(&damaged, &copy).unwrap();
        Checkpoint::read(&damaged)
    };

    // Every byte of the length and of the header, each flipped two ways.
    let mut refused = 0;
    for offset in 0..8 + header_len {
        for flip in [0x01, 0x80] {
            match read_with(offset, flip) {
                Ok(_) => panic!("a flip ({flip:#x}) of header byte {offset} was accepted"),
                Err(error) => assert!(error.to_string().starts_with(&prefix), "{error}"),
            }
            refused += 1;
        }
    }
    assert_eq!(refused, 2 * (8 + header_len));

    // Bytes of the tensors, spread over all of them: the error names the tensor.
    let (header, _) = split_safetensors(&bytes);
    let data_start = 8 + header_len;
    let mut tensors: Vec<(String, usize, usize)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, entry)| {
            let offsets = &entry["data_offsets"];
            (name.clone(), offsets[0].as_u64().unwrap() as usize, offsets[1].as_u64().unwrap() as usize)
        })
        .collect();
    tensors.sort_by_key(|t| t.1);
    assert!(tensors.iter().any(|t| t.0.starts_with("optimizer.")), "the optimizer's state is covered too");
    let data_len = bytes.len() - data_start;
    for i in 0..64 {
        let at = i * data_len / 64 + i % 7;
        let (name, ..) = tensors.iter().find(|(_, start, end)| (*start..*end).contains(&at)).unwrap();
        let error = read_with(data_start + at, 0x10).unwrap_err().to_string();
        assert!(
            error.starts_with(&prefix) && error.contains(&format!("tensor `{name}` fails its checksum")),
            "{error}"
        );
    }

    assert!(Checkpoint::read(&good).is_ok(), "the original reads");
}

/// A change to a checkpoint's metadata JSON.
type Edit = fn(&mut serde_json::Value);

#[test]
fn unknown_and_missing_metadata_keys_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_checkpoint(dir.path());
    let cases: [(&str, Edit, &str); 4] = [
        ("unknown", |meta| meta["surprise"] = 1.into(), "unknown field `surprise`"),
        (
            "no-version",
            |meta| {
                meta.as_object_mut().unwrap().remove("format_version");
            },
            "missing field `format_version`",
        ),
        ("unknown-in-progress", |meta| meta["progress"]["epochs"] = 1.into(), "unknown field `epochs`"),
        (
            "no-tensor-list",
            |meta| {
                meta.as_object_mut().unwrap().remove("tensors");
            },
            "missing field `tensors`",
        ),
    ];
    for (name, edit, expected) in cases {
        let path = dir.path().join(format!("{name}.ckpt"));
        std::fs::copy(&good, &path).unwrap();
        edit_metadata(&path, edit);
        let error = Checkpoint::read(&path).unwrap_err().to_string();
        assert!(error.contains(expected), "{name}: {error}");
    }
}

fn hostname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    host.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

#[test]
fn a_run_removes_the_temporary_files_killed_writes_left_and_nothing_else() {
    if !Path::new("/proc/self").exists() {
        eprintln!("no /proc here: which writer is gone cannot be told, and nothing is removed");
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // A process that has exited: its pid names a writer that is gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let host = hostname();
    let stale = format!(".lightning-{dead}@{host}~Ab12Cd.ckpt-partial");
    let kept = [
        format!(".lightning-1@{host}~Xy34Zw.ckpt-partial"), // pid 1 is alive
        format!(".lightning-{dead}@another-host~Qr56St.ckpt-partial"), // a shared folder: not ours to judge
        ".tmpAbCdEf.ckpt-partial".to_string(),              // not named by this crate
        "notes.txt".to_string(),
    ];
    for name in kept.iter().chain([&stale]) {
        std::fs::write(dir.path().join(name), b"partial").unwrap();
    }

    let mut module = Net::mlp(0.0, Opt::SgdOnly);
    let ckpt = dir.path().join("epoch-0.ckpt");
    cpu()
        .max_epochs(1)
        .callback(Saver::at_epoch_end(0, &ckpt))
        .fit(&mut module, train_loader(1), val_loader())
        .unwrap();

    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    let mut expected: Vec<String> = kept.to_vec();
    expected.push("epoch-0.ckpt".into());
    expected.sort();
    assert_eq!(left, expected);
}
