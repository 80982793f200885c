//! `SimpleProfiler`: every hook and section timed through the dispatcher, Lightning's table at each stage's end.

mod common;

use common::checkpointing::{serial, train_loader, val_loader, Net, Opt};
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
    assert_eq!(calls("[Callback]ModelSummary.on_fit_start"), 1);
    assert!(report.lines().any(|l| l.starts_with("| [Loop]") && l.contains("loader")), "{report}");
    // A second stage gets a table of its own.
    trainer.validate(&mut module, val_loader()).unwrap();
    assert!(dir.path().join("validate-profile.txt").exists());
}
