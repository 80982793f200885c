//! `ProgressBar`: a bar per stage with steps/s, ETA and the metrics logged with `prog_bar(true)` on a terminal;
//! plain periodic lines when the output is not a terminal (CI, pipes, files).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressDrawTarget, ProgressStyle};

use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::context::Ctx;
use crate::output::StepOutput;

/// How often the metrics shown are read back from the device: reading them is a device sync, so not every step.
const METRICS_EVERY: Duration = Duration::from_millis(250);

/// How often a plain line is printed within a stage (one is always printed at its end).
const LINE_EVERY: Duration = Duration::from_secs(10);

/// Where the bars go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    /// indicatif bars on the terminal.
    Bars,
    /// Plain lines: one at the end of each stage, and one every ten seconds within a long stage.
    Lines,
}

/// Reports progress on stderr. The Trainer adds one unless `Trainer::enable_progress_bar(false)`.
///
/// ```
/// use lightning::{ProgressBar, Trainer};
/// let trainer = Trainer::new().max_epochs(3).enable_progress_bar(false).callback(ProgressBar::lines());
/// ```
pub struct ProgressBar {
    output: Output,
    stage: Option<Stage>,
    /// The training bar, while a validation run inside the epoch has the screen.
    paused: Option<Stage>,
}

/// The bar of the running stage.
struct Stage {
    label: String,
    /// The loader running, in a stage with several (shown after the label).
    loader: Option<usize>,
    bar: indicatif::ProgressBar,
    total: Option<usize>,
    done: usize,
    started: Instant,
    metrics_read: Instant,
    line_printed: Instant,
}

impl Default for ProgressBar {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressBar {
    /// Bars on a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let output = if std::io::stderr().is_terminal() { Output::Bars } else { Output::Lines };
        ProgressBar { output, stage: None, paused: None }
    }

    /// Plain lines whatever the output is.
    pub fn lines() -> Self {
        ProgressBar { output: Output::Lines, stage: None, paused: None }
    }

    fn start(&mut self, label: String, ctx: &Ctx) {
        let total = ctx.total_batches();
        let bar = match self.output {
            Output::Bars => {
                let bar =
                    indicatif::ProgressBar::with_draw_target(total.map(|n| n as u64), ProgressDrawTarget::stderr());
                let template = "{prefix} {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}";
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                bar.set_prefix(label.clone());
                bar
            }
            Output::Lines => indicatif::ProgressBar::hidden(),
        };
        let now = Instant::now();
        self.stage = Some(Stage {
            label,
            loader: None,
            bar,
            total,
            done: 0,
            started: now,
            metrics_read: now,
            line_printed: now,
        });
    }

    fn advance(&mut self, ctx: &Ctx) {
        let Some(stage) = self.stage.as_mut() else { return };
        if ctx.dataloader_idx() != stage.loader {
            stage.loader = ctx.dataloader_idx();
            if let Some(index) = stage.loader {
                // Lightning's "Validation DataLoader 1".
                let base = stage.label.split(" DataLoader ").next().unwrap_or_default().to_string();
                stage.label = format!("{base} DataLoader {index}");
                stage.bar.set_prefix(stage.label.clone());
            }
        }
        stage.done += 1;
        stage.bar.inc(1);
        match self.output {
            Output::Bars => {
                if stage.metrics_read.elapsed() >= METRICS_EVERY {
                    stage.metrics_read = Instant::now();
                    stage.bar.set_message(metrics_text(ctx));
                }
            }
            Output::Lines => {
                if stage.line_printed.elapsed() >= LINE_EVERY {
                    stage.line_printed = Instant::now();
                    eprintln!("{}", line(stage, ctx));
                }
            }
        }
    }

    fn finish(&mut self, ctx: &Ctx, keep: bool) {
        let Some(stage) = self.stage.take() else { return };
        match self.output {
            Output::Bars => {
                stage.bar.set_message(metrics_text(ctx));
                if keep {
                    stage.bar.finish();
                } else {
                    stage.bar.finish_and_clear();
                }
            }
            Output::Lines => eprintln!("{}", line(&stage, ctx)),
        }
    }
}

fn metrics_text(ctx: &Ctx) -> String {
    ctx.progress_bar_metrics().iter().map(|(name, value)| format!("{name}={value:.4}")).collect::<Vec<_>>().join(" ")
}

fn line(stage: &Stage, ctx: &Ctx) -> String {
    let elapsed = stage.started.elapsed().as_secs_f64();
    let rate = if elapsed > 0.0 { stage.done as f64 / elapsed } else { 0.0 };
    let of = stage.total.map_or_else(String::new, |n| format!("/{n}"));
    let eta = match stage.total {
        Some(n) if rate > 0.0 && n > stage.done => format!(" eta {:.1}s", (n - stage.done) as f64 / rate),
        _ => String::new(),
    };
    format!("{} {}{of} {rate:.1} it/s{eta} {}", stage.label, stage.done, metrics_text(ctx)).trim_end().to_string()
}

impl Callback for ProgressBar {
    fn logged_names(&self, _: &Ctx) -> Option<Vec<String>> {
        Some(Vec::new())
    }

    fn on_train_epoch_start(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        self.start(format!("epoch {}", ctx.current_epoch()), ctx);
        Ok(())
    }

    fn on_train_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _: &mut dyn AnyModule,
        _: &StepOutput,
        _: &dyn std::any::Any,
        _: usize,
    ) -> CallbackResult {
        self.advance(ctx);
        Ok(())
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        self.finish(ctx, true);
        Ok(())
    }

    fn on_validation_start(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        if !ctx.sanity_checking() {
            // The training bar, if any, stays on its line; validation gets its own, cleared afterwards.
            let training = self.stage.take();
            self.start("validation".to_string(), ctx);
            if let (Some(training), Some(stage)) = (training, self.stage.as_mut()) {
                stage.label = format!("{} validation", training.label);
                self.paused = Some(training);
            }
        }
        Ok(())
    }

    fn on_validation_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _: &mut dyn AnyModule,
        _: &StepOutput,
        _: &dyn std::any::Any,
        _: usize,
        _: usize,
    ) -> CallbackResult {
        if !ctx.sanity_checking() {
            self.advance(ctx);
        }
        Ok(())
    }

    fn on_validation_end(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        if !ctx.sanity_checking() {
            self.finish(ctx, false);
            self.stage = self.paused.take();
        }
        Ok(())
    }

    fn on_test_start(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        self.start("test".to_string(), ctx);
        Ok(())
    }

    fn on_test_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _: &mut dyn AnyModule,
        _: &StepOutput,
        _: &dyn std::any::Any,
        _: usize,
        _: usize,
    ) -> CallbackResult {
        self.advance(ctx);
        Ok(())
    }

    fn on_test_end(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        self.finish(ctx, true);
        Ok(())
    }

    fn on_predict_start(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        self.start("predict".to_string(), ctx);
        Ok(())
    }

    fn on_predict_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _: &mut dyn AnyModule,
        _: &dyn std::any::Any,
        _: &dyn std::any::Any,
        _: usize,
        _: usize,
    ) -> CallbackResult {
        self.advance(ctx);
        Ok(())
    }

    fn on_predict_end(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        self.finish(ctx, true);
        Ok(())
    }
}
