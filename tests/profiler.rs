//! `SimpleProfiler`: every hook and section timed through the dispatcher, Lightning's table at each stage's end.

mod common;

use common::checkpointing::{train_loader, val_loader, Net, Opt};
use common::serial;
use lightning::{Accelerator, SimpleProfiler, Trainer};

#[test]
fn the_simple_profiler_times_every_hook_and_writes_lightnings_table() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut module = Net::mlp(0.0, Opt::AdamStepLr);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(2)
        .enable_progress_bar(false)
        .profiler(SimpleProfiler::new().to_file(dir.path().join("profile.txt")));
    trainer.fit(&mut module, train_loader(1), val_loader()).unwrap();
    let report = std::fs::read_to_string(dir.path().join("fit-profile.txt")).unwrap();
    assert!(report.starts_with("Profiler report (fit)"), "{report}");
    assert!(report.contains("| Action") && report.contains("Mean duration (s)") && report.contains("Percentage %"));
    // A row: | action | mean | calls | total | percent |.
    let calls = |action: &str| -> u64 {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {action} ")))
            .unwrap_or_else(|| panic!("no {action} in\n{report}"));
        row.split('|').nth(3).unwrap().trim().parse().unwrap()
    };
    let steps = module.steps_run as u64;
    assert!(steps > 0);
    assert_eq!(calls("[LightningModule]training_step"), steps);
    assert_eq!(calls("[LightningModule]configure_optimizers"), 1);
    assert_eq!(calls("[Loop]optimizer_step (the closure included)"), steps);
    assert_eq!(calls("[Loop]backward"), steps);
    // The default transfer is timed under the hook's name, every training and validation batch.
    assert!(calls("[LightningModule]transfer_batch_to_device") > steps);
    assert_eq!(calls("[Callback]ModelSummary.on_fit_start"), 1);
    assert!(report.lines().any(|l| l.starts_with("| [Loop]") && l.contains("loader")), "{report}");
    // A second stage gets a table of its own.
    trainer.validate(&mut module, val_loader()).unwrap();
    assert!(dir.path().join("validate-profile.txt").exists());
}

#[test]
fn the_chrome_trace_holds_every_call_nested_as_it_ran() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut module = Net::mlp(0.0, Opt::AdamStepLr);
    let profiler = SimpleProfiler::new().chrome_trace(dir.path().join("trace.json"));
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(1)
        .enable_progress_bar(false)
        .profiler(profiler);
    trainer.fit(&mut module, train_loader(1), val_loader()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("fit-trace.json")).unwrap();
    let trace: serde_json::Value = serde_json::from_str(&text).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let named = |name: &str| -> Vec<&serde_json::Value> { events.iter().filter(|e| e["name"] == name).collect() };
    let steps = named("[LightningModule]training_step");
    assert_eq!(steps.len(), module.steps_run);
    for event in events {
        assert_eq!(event["ph"], "X");
        assert!(event["ts"].as_f64().unwrap() >= 0.0 && event["dur"].as_f64().unwrap() >= 0.0, "{event}");
    }
    assert_eq!(steps[0]["cat"], "LightningModule");
    // Each training step ran inside an optimizer step (the closure), so its event lies inside that one's.
    let optimizer_steps = named("[Loop]optimizer_step (the closure included)");
    assert_eq!(optimizer_steps.len(), steps.len());
    let span =
        |e: &serde_json::Value| (e["ts"].as_f64().unwrap(), e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap());
    for (step, outer) in steps.iter().zip(&optimizer_steps) {
        let ((s0, s1), (o0, o1)) = (span(step), span(outer));
        assert!(o0 <= s0 + 1.0 && s1 <= o1 + 1.0, "training_step {s0}..{s1} outside optimizer_step {o0}..{o1}");
    }
    // Starts follow the order the calls ran in.
    let starts: Vec<f64> = steps.iter().map(|e| e["ts"].as_f64().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
}

#[test]
fn relative_file_names_go_into_the_runs_log_folder() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let mut module = Net::mlp(0.0, Opt::AdamStepLr);
    // Lightning's defaults on: the log folder is `lightning_logs/version_0` under `default_root_dir`, and the
    // default checkpoint is taken at the epoch's end.
    let mut trainer = Trainer::new()
        .default_root_dir(root.path())
        .accelerator(Accelerator::Cpu)
        .max_epochs(1)
        .enable_progress_bar(false)
        .profiler(SimpleProfiler::new().to_file("profile.txt").chrome_trace("traces/trace.json"));
    trainer.fit(&mut module, train_loader(1), val_loader()).unwrap();
    let version = root.path().join("lightning_logs/version_0");
    assert_eq!(trainer.log_dir().as_deref(), Some(version.as_path()));
    let report = std::fs::read_to_string(version.join("fit-profile.txt")).unwrap();
    // The checkpoint's sections: its snapshot on the training thread, and the hand-over to the background writer.
    for section in ["checkpoint snapshot", "checkpoint hand-over to the writer"] {
        let row = report.lines().find(|l| l.starts_with(&format!("| [Loop]{section} "))).unwrap_or_else(|| {
            panic!("no {section} in\n{report}");
        });
        assert_eq!(row.split('|').nth(3).unwrap().trim(), "1", "{row}");
    }
    assert!(version.join("traces/fit-trace.json").is_file());
    // Without a logger, the Trainer's `default_root_dir`.
    let mut trainer = Trainer::new()
        .default_root_dir(root.path())
        .logger(false)
        .accelerator(Accelerator::Cpu)
        .enable_progress_bar(false)
        .profiler(SimpleProfiler::new().to_file("profile.txt"));
    trainer.validate(&mut module, val_loader()).unwrap();
    assert!(root.path().join("validate-profile.txt").is_file());
}
