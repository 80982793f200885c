//! An optimizer of the user's own (`UpdateRule`): it trains, checkpoints keep its settings and state (the exact
//! resume is in `resume.rs`), and a checkpoint that does not fit it is refused naming the file.

mod common;

use common::checkpointing::{edit_metadata, train_loader, val_loader, Net, Opt, Rmsprop};
use common::serial;
use lightning::prelude::*;
use lightning::{Accelerator, Checkpoint, ModelCheckpoint, StepInfo, Trainer, UpdateRule};

fn trainer() -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .seed(3)
}

#[test]
fn a_custom_rule_trains_and_its_checkpoint_keeps_its_settings_and_state() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut net = Net::mlp(0.0, Opt::RmspropCustom);
    let mut t = trainer().max_epochs(4).callback(ModelCheckpoint::new(dir.path()).save_last(true));
    t.fit(&mut net, train_loader(1), val_loader()).unwrap();
    // RMSprop's first steps are large (lr / sqrt(1 - alpha)): the loss must still come down from the start's.
    let start = {
        let mut fresh = Net::mlp(0.0, Opt::RmspropCustom);
        trainer().validate(&mut fresh, val_loader()).unwrap()["val_loss"]
    };
    assert!(t.callback_metrics()["val_loss"] < start, "{} vs {start}", t.callback_metrics()["val_loss"]);

    let saved = Checkpoint::read(dir.path().join("last.ckpt")).unwrap();
    let names: Vec<&str> = saved.tensor_names().into_iter().filter(|n| n.starts_with("optimizer.0.")).collect();
    assert_eq!(names.len(), 4, "one state tensor per parameter: {names:?}");
}

/// Not RMSprop: a checkpoint of RMSprop does not restore into it.
struct Sign;

impl UpdateRule for Sign {
    fn name(&self) -> &str {
        "SignSGD"
    }
    fn slots(&self) -> usize {
        1
    }
    fn update(&self, param: &mut Tensor, grad: &Tensor, _: &mut [Tensor], step: StepInfo) -> lightning::Result<()> {
        let _ = param.f_sub_(&grad.f_sign()?.f_mul_scalar(step.lr)?)?;
        Ok(())
    }
}

#[lightning_module]
impl SignNet {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        x.matmul(&self.w).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&self) -> Optimizer {
        match self.rmsprop_alpha {
            Some(alpha) => Optimizer::custom(&self.vs, 1e-2, Rmsprop { alpha, eps: 1e-8 }),
            None => Optimizer::custom(&self.vs, 1e-2, Sign),
        }
    }
}

struct SignNet {
    vs: nn::VarStore,
    w: Tensor,
    rmsprop_alpha: Option<f64>,
}

impl SignNet {
    fn new(rmsprop_alpha: Option<f64>) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().zeros("w", &[8, 1]);
        SignNet { vs, w, rmsprop_alpha }
    }
}

#[test]
fn a_checkpoint_that_does_not_fit_the_rule_is_refused_naming_the_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut net = SignNet::new(Some(0.99));
    trainer()
        .max_epochs(1)
        .callback(ModelCheckpoint::new(dir.path()).save_last(true))
        .fit(&mut net, train_loader(1), None)
        .unwrap();
    let last = dir.path().join("last.ckpt");

    let error = trainer().max_epochs(2).fit_from(&mut SignNet::new(None), train_loader(1), None, &last).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("last.ckpt") && message.contains("`RMSprop`") && message.contains("`SignSGD`"),
        "{message}"
    );

    // The checkpoint's settings are checked as the rule checks its own: an alpha above 1 is refused, and the
    // optimizer keeps its own.
    let edited = dir.path().join("edited.ckpt");
    std::fs::copy(&last, &edited).unwrap();
    edit_metadata(&edited, |meta| meta["optimizers"][0]["custom"]["settings"]["alpha"] = serde_json::json!(1.5));
    let error =
        trainer().max_epochs(2).fit_from(&mut SignNet::new(Some(0.9)), train_loader(1), None, &edited).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("edited.ckpt") && message.contains("alpha = 1.5"), "{message}");
}
