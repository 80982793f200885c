//! The run's loggers as hooks see them: Lightning's `self.loggers`, `self.logger` and
//! `self.logger.experiment`.

use crate::context::Ctx;
use crate::loggers::{Logger, TensorBoardLogger};

impl Ctx {
    /// The run's loggers, in the order they were given to the Trainer (Lightning's `self.loggers`). Empty
    /// outside a Trainer run, and on every process but rank 0 of a distributed run, where nothing is logged
    /// (Lightning's `rank_zero_only` loggers).
    ///
    /// ```
    /// # let mut ctx = lightning::Ctx::new(tch::Device::Cpu);
    /// let step = ctx.global_step();
    /// for logger in ctx.loggers() {
    ///     logger.log_metrics(&[("samples_seen".to_string(), 128.0)], step)?;
    /// }
    /// # Ok::<(), lightning::Error>(())
    /// ```
    pub fn loggers(&mut self) -> &mut [Box<dyn Logger>] {
        &mut self.loggers
    }

    /// The run's first logger of type `L`, if it has one (Lightning's `self.logger`, typed): a logger of your
    /// own, or one the runtime ships.
    ///
    /// ```
    /// use lightning::loggers::CsvLogger;
    /// # let mut ctx = lightning::Ctx::new(tch::Device::Cpu);
    /// if let Some(csv) = ctx.logger::<CsvLogger>() {
    ///     println!("metrics go to {}", csv.log_dir().display());
    /// }
    /// ```
    pub fn logger<L: Logger + 'static>(&mut self) -> Option<&mut L> {
        // Through the box's contents: `LoggerAny` is implemented for the box itself too.
        self.loggers.iter_mut().find_map(|logger| logger.as_mut().as_any_mut().downcast_mut::<L>())
    }

    /// The run's [`TensorBoardLogger`], if it has one: where a hook adds images, histograms and text
    /// (Lightning's `self.logger.experiment.add_image(...)`). `None` outside a run, on processes other than
    /// rank 0, and in a run without one, so that logging media never fails for want of a logger.
    ///
    /// ```
    /// use lightning::prelude::*;
    /// use lightning::vision::{make_grid, GridOptions};
    ///
    /// struct Generator { vs: nn::VarStore, net: nn::Linear }
    ///
    /// #[lightning_module(batch = Tensor)]
    /// impl Generator {
    ///     fn training_step(&mut self, z: &Tensor) -> Tensor {
    ///         self.net.forward(z).square().mean(Kind::Float)
    ///     }
    ///     fn on_train_epoch_end(&mut self, ctx: &mut Ctx) -> lightning::Result<()> {
    ///         let step = ctx.global_step();
    ///         if let Some(tensorboard) = ctx.tensorboard() {
    ///             let z = Tensor::randn([16, 8], (Kind::Float, self.vs.device()));
    ///             let samples = tch::no_grad(|| self.net.forward(&z)).sigmoid().view([16, 1, 8, 8]);
    ///             let grid = make_grid(&samples, GridOptions::default().nrow(4))?;
    ///             tensorboard.add_image("samples", &grid, step)?;
    ///             tensorboard.add_histogram("weights", &self.net.ws, step)?;
    ///         }
    ///         Ok(())
    ///     }
    ///     fn configure_optimizers(&mut self) -> Optimizer {
    ///         Optimizer::adam(&self.vs, 1e-3)
    ///     }
    /// }
    /// ```
    pub fn tensorboard(&mut self) -> Option<&mut TensorBoardLogger> {
        self.logger::<TensorBoardLogger>()
    }
}
