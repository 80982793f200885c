//! A small GAN trained with manual optimization: a generator learns to turn 8-D Gaussian noise into samples of
//! a 2-D Gaussian it never sees directly (mean (2, -1), standard deviations (0.5, 1.5)), while a discriminator
//! learns to tell its samples from real ones. Shows `#[lightning_module(manual_optimization)]`, two optimizers
//! over two parts of one `VarStore` (`vs.submodule`), `ctx.optimizers()`, `ctx.manual_backward` and `ctx.step_optimizer`, logging both
//! losses, and a callback that reads the epoch's losses and looks at the module through `as_any_mut`.
//!
//! Run with `cargo run --example gan` (a few seconds on a CPU).

use lightning::prelude::*;
use lightning::{AnyModule, CallbackResult, DataLoader, Trainer};

const NOISE: i64 = 8;
const HIDDEN: i64 = 64;
const TARGET_MEAN: [f64; 2] = [2.0, -1.0];
const TARGET_STD: [f64; 2] = [0.5, 1.5];
const EPOCHS: usize = 40;
const LR: f64 = 1e-3;

struct Gan {
    vs: nn::VarStore,
    generator: nn::Sequential,
    discriminator: nn::Sequential,
}

/// Two hidden layers with leaky ReLUs (plain ReLUs leave a GAN's discriminator with dead units and flat
/// gradients more easily).
fn mlp(path: nn::Path, input: i64, output: i64) -> nn::Sequential {
    nn::seq()
        .add(nn::linear(&path / "l1", input, HIDDEN, Default::default()))
        .add_fn(|x| x.leaky_relu())
        .add(nn::linear(&path / "l2", HIDDEN, HIDDEN, Default::default()))
        .add_fn(|x| x.leaky_relu())
        .add(nn::linear(&path / "out", HIDDEN, output, Default::default()))
}

impl Gan {
    fn new() -> Self {
        // One VarStore (the Trainer moves and checkpoints `vs`), two separate paths in it.
        let vs = nn::VarStore::new(Device::Cpu);
        let generator = mlp(vs.root() / "generator", NOISE, 2);
        let discriminator = mlp(vs.root() / "discriminator", 2, 1);
        Gan { vs, generator, discriminator }
    }

    /// `n` samples from the generator, without building a graph.
    fn sample(&self, n: i64) -> lightning::Result<Tensor> {
        let z = Tensor::f_randn([n, NOISE], (Kind::Float, self.vs.device()))?;
        Ok(tch::no_grad(|| self.generator.forward(&z)))
    }
}

/// The non-saturating GAN loss: binary cross-entropy of the discriminator's logits against `target` (1 real,
/// 0 fake).
fn bce(logits: &Tensor, target: f64) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(&logits.full_like(target), None, None, Reduction::Mean)
}

#[lightning_module(manual_optimization)]
impl Gan {
    fn training_step(&mut self, real: &Tensor, _batch_idx: usize, ctx: &mut Ctx) -> lightning::Result<()> {
        let z = Tensor::f_randn([real.size()[0], NOISE], (Kind::Float, real.device()))?;
        let fake = self.generator.forward(&z);

        // Discriminator: real samples are 1, generated ones 0. `detach` keeps this loss from reaching the
        // generator, whose step comes next.
        let d_loss =
            bce(&self.discriminator.forward(real), 1.0) + bce(&self.discriminator.forward(&fake.detach()), 0.0);
        ctx.optimizers()[1].zero_grad()?;
        ctx.manual_backward(self, &d_loss)?;
        ctx.step_optimizer(self, 1)?;

        // Generator: make the (just updated) discriminator call the fakes real. This backward also leaves
        // gradients on the discriminator's variables, but its optimizer zeroes them before they are used.
        let g_loss = bce(&self.discriminator.forward(&fake), 1.0);
        ctx.optimizers()[0].zero_grad()?;
        ctx.manual_backward(self, &g_loss)?;
        ctx.step_optimizer(self, 0)?;

        // Per-epoch means: a GAN's per-step losses are too noisy to read.
        ctx.log("d_loss", &d_loss).on_step(false).on_epoch(true);
        ctx.log("g_loss", &g_loss).on_step(false).on_epoch(true);
        Ok(())
    }

    // In manual optimization the Trainer does not step the schedulers: the module does, here once per epoch.
    fn on_train_epoch_end(&mut self, ctx: &mut Ctx) {
        for i in 0..ctx.lr_schedulers().len() {
            let scheduler = &mut ctx.lr_schedulers()[i];
            scheduler.step();
            // A scheduler computes the rate; handing it to its optimizer is also up to the module here.
            let (optimizer, lr) = (scheduler.optimizer_index(), scheduler.lr());
            ctx.optimizers()[optimizer].set_lr(lr);
        }
    }

    fn configure_optimizers(&mut self) -> lightning::Result<(Vec<Optimizer>, Vec<LrScheduler>)> {
        // One optimizer per network, each over its own part of the VarStore; beta1 = 0.5, as in DCGAN: less
        // momentum keeps the two players from overshooting each other.
        let optimizers = vec![
            Optimizer::adam(self.vs.submodule("generator")?, LR).betas(0.5, 0.999),
            Optimizer::adam(self.vs.submodule("discriminator")?, LR).betas(0.5, 0.999),
        ];
        // The two players circle around the equilibrium rather than settle in it; annealing both rates to
        // nearly zero shrinks the circles, so the generator ends up close to the target.
        let schedulers = (0..2).map(|i| LrScheduler::cosine(EPOCHS, LR / 100.0).for_optimizer(i)).collect();
        Ok((optimizers, schedulers))
    }
}

/// Every few epochs, prints the epoch's losses and the statistics of 4,096 fresh generated samples.
struct Report {
    every: usize,
}

impl Callback for Report {
    // A monitoring callback runs its `on_train_epoch_end` once the epoch's logged values are reduced.
    fn monitors(&self) -> bool {
        true
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        let epoch = ctx.current_epoch();
        if (epoch + 1) % self.every != 0 {
            return Ok(());
        }
        let Some(gan) = module.as_any_mut().downcast_mut::<Gan>() else { return Ok(()) };
        let (mean, std) = stats(&gan.sample(4096)?)?;
        let metrics = ctx.callback_metrics();
        println!(
            "epoch {:3}  d_loss {:.3}  g_loss {:.3}  generated mean ({:5.2}, {:5.2}) std ({:4.2}, {:4.2})",
            epoch + 1,
            metrics.get("d_loss").copied().unwrap_or(f64::NAN),
            metrics.get("g_loss").copied().unwrap_or(f64::NAN),
            mean[0],
            mean[1],
            std[0],
            std[1],
        );
        Ok(())
    }
}

/// The per-coordinate mean and standard deviation of `[n, 2]` samples.
fn stats(samples: &Tensor) -> lightning::Result<([f64; 2], [f64; 2])> {
    let mean = samples.f_mean_dim(0, false, Kind::Float)?;
    let std = samples.f_std_dim(0, true, false)?;
    Ok((
        [mean.f_double_value(&[0])?, mean.f_double_value(&[1])?],
        [std.f_double_value(&[0])?, std.f_double_value(&[1])?],
    ))
}

fn main() -> lightning::Result<()> {
    // Both the data and the networks' initial weights come from torch's generator; the Trainer's seed then
    // fixes the noise drawn during training, so every run prints the same numbers.
    tch::manual_seed(0);
    let mean = Tensor::from_slice(&TARGET_MEAN).to_kind(Kind::Float);
    let std = Tensor::from_slice(&TARGET_STD).to_kind(Kind::Float);
    let real = Tensor::f_randn([8192, 2], (Kind::Float, Device::Cpu))? * &std + &mean;
    let (real_mean, real_std) = stats(&real)?;

    let train = DataLoader::new(real).batch_size(256).shuffle(true).seed(0).build()?;
    let mut gan = Gan::new();
    // Logs and the last epoch's checkpoint go to `target/lightning_logs/version_N/` (Lightning's defaults).
    let mut trainer = Trainer::new()
        .default_root_dir("target")
        .max_epochs(EPOCHS)
        .seed(0)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .callback(Report { every: 10 });
    trainer.fit(&mut gan, train, None)?;

    let (fake_mean, fake_std) = stats(&gan.sample(20_000)?)?;
    println!("\n{} optimizer steps (two per batch)", trainer.global_step());
    println!("            target          real data       generated");
    for (d, axis) in ["x", "y"].iter().enumerate() {
        println!("mean {axis}   {:6.3}          {:6.3}          {:6.3}", TARGET_MEAN[d], real_mean[d], fake_mean[d]);
    }
    for (d, axis) in ["x", "y"].iter().enumerate() {
        println!("std  {axis}   {:6.3}          {:6.3}          {:6.3}", TARGET_STD[d], real_std[d], fake_std[d]);
    }
    // How far off, relative to the target's spread: 0.1 means a tenth of a standard deviation.
    let worst = (0..2)
        .map(|d| {
            let mean_err = (fake_mean[d] - TARGET_MEAN[d]).abs() / TARGET_STD[d];
            let std_err = (fake_std[d] - TARGET_STD[d]).abs() / TARGET_STD[d];
            mean_err.max(std_err)
        })
        .fold(0.0, f64::max);
    println!("largest error: {:.1}% of the target's standard deviation", worst * 100.0);
    // A GAN can fail quietly (mode collapse, a runaway discriminator): say so with the exit status.
    if worst > 0.2 {
        eprintln!("the generator did not learn the target distribution");
        std::process::exit(1);
    }
    Ok(())
}
