//! `ModelSummary`: at the start of `fit`, the parameters of each top-level submodule (trainable and frozen), its
//! buffers, the total size, and the hooks the module defines (read off its hook table); with the module's
//! `example_input_array`, each submodule's input and output shapes too (see `layer_shapes.rs`).

use std::collections::{BTreeMap, HashSet};

use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::context::Ctx;

/// One row of the summary: a top-level submodule (the first component of its variables' names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SummaryRow {
    /// The submodule's name (`vs.root() / "encoder"` gives `encoder`).
    pub name: String,
    /// Trainable parameters.
    pub trainable: i64,
    /// Frozen parameters: trainable variables that do not require gradients now (`VarStore::freeze`, or
    /// `set_requires_grad(false)`).
    pub frozen: i64,
    /// Buffers: values that are not parameters at all, such as BatchNorm's running mean and variance (tch's
    /// `*_no_train` variables; PyTorch's `register_buffer`).
    pub buffers: i64,
    /// Bytes the parameters and buffers take.
    pub bytes: i64,
    /// The shape of its input in the forward pass of the module's `example_input_array`, as Lightning writes
    /// it (`[2, 784]`; `?` where the pass did not use the submodule); `None` without an example input.
    pub in_size: Option<String>,
    /// The shape of its output in that forward pass, likewise.
    pub out_size: Option<String>,
}

/// Prints a summary of the module when `fit` starts. The Trainer adds one unless
/// `Trainer::enable_model_summary(false)`.
///
/// When the module defines `example_input_array` (Lightning's property of that name), the summary runs it
/// through the module's `forward` once, under `no_grad` and with its buffers (running statistics) put back
/// afterwards, and adds each submodule's input and output shapes ("In sizes", "Out sizes"):
///
/// ```
/// use lightning::prelude::*;
///
/// struct Mlp {
///     vs: nn::VarStore,
///     hidden: nn::Linear,
///     head: nn::Linear,
/// }
///
/// #[lightning_module]
/// impl Mlp {
///     fn forward(&self, x: &Tensor) -> Tensor {
///         x.apply(&self.hidden).relu().apply(&self.head)
///     }
///
///     fn example_input_array(&self) -> Tensor {
///         Tensor::zeros([2, 784], (Kind::Float, Device::Cpu))
///     }
///
///     fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
///         self.forward(x).cross_entropy_for_logits(y)
///     }
///
///     fn configure_optimizers(&mut self) -> Optimizer {
///         Optimizer::adam(&self.vs, 1e-3)
///     }
/// }
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let hidden = nn::linear(vs.root() / "hidden", 784, 64, Default::default());
/// let head = nn::linear(vs.root() / "head", 64, 10, Default::default());
/// let mut model = Mlp { vs, hidden, head };
/// let rows = lightning::ModelSummary::rows_with_shapes(&mut model)?;
/// assert_eq!(rows[1].name, "hidden");
/// assert_eq!((rows[1].in_size.as_deref(), rows[1].out_size.as_deref()), (Some("[2, 784]"), Some("[2, 64]")));
/// assert_eq!(rows[0].out_size.as_deref(), Some("[2, 10]"));
/// # Ok::<(), lightning::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ModelSummary {
    /// The rows of the last summary printed.
    pub rows: Vec<SummaryRow>,
}

/// Where the store's parameters' data live. A VarStore lists its parameters (`trainable_variables`, frozen ones
/// included); every other variable is a buffer. Told apart by storage: a variable and its entry in that list are
/// the same tensor.
pub(crate) fn parameter_storages(store: &tch::nn::VarStore) -> HashSet<usize> {
    store.trainable_variables().iter().map(|t| t.data_ptr() as usize).collect()
}

impl ModelSummary {
    /// The summary of `module`, one row per top-level submodule, in name order.
    pub fn rows_of(module: &dyn AnyModule) -> Vec<SummaryRow> {
        let store = module.var_store();
        let parameters = parameter_storages(store);
        let mut rows: BTreeMap<String, SummaryRow> = BTreeMap::new();
        for (name, variable) in store.variables() {
            let top = name.split('.').next().unwrap_or(&name).to_string();
            let row = rows.entry(top.clone()).or_insert_with(|| SummaryRow { name: top, ..SummaryRow::default() });
            let count = variable.numel() as i64;
            if count > 0 && !parameters.contains(&(variable.data_ptr() as usize)) {
                row.buffers += count;
            } else if variable.requires_grad() {
                row.trainable += count;
            } else {
                row.frozen += count;
            }
            row.bytes += count * variable.kind().elt_size_in_bytes() as i64;
        }
        rows.into_values().collect()
    }

    /// [`rows_of`](Self::rows_of), with each row's input and output shapes when the module defines
    /// `example_input_array` (its forward pass runs once).
    pub fn rows_with_shapes(module: &mut dyn AnyModule) -> crate::Result<Vec<SummaryRow>> {
        let mut rows = Self::rows_of(module);
        if let Some(shapes) = module.layer_shapes() {
            let shapes = shapes?;
            for row in &mut rows {
                let (input, output) = shapes.of(&row.name);
                row.in_size = Some(input);
                row.out_size = Some(output);
            }
        }
        Ok(rows)
    }

    /// The summary as the text printed.
    pub fn render(rows: &[SummaryRow], hooks: &[&str]) -> String {
        let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
        // Lightning's "In sizes" and "Out sizes", only when there was an example input.
        let sizes = rows.iter().any(|row| row.in_size.is_some());
        let size_width = |pick: fn(&SummaryRow) -> &Option<String>, title: &str| {
            rows.iter().filter_map(|row| pick(row).as_ref().map(String::len)).max().unwrap_or(0).max(title.len())
        };
        let (in_width, out_width) = (size_width(|r| &r.in_size, "In sizes"), size_width(|r| &r.out_size, "Out sizes"));
        let size_columns = |input: &str, output: &str| {
            if sizes {
                format!(" | {input:>in_width$} | {output:>out_width$}")
            } else {
                String::new()
            }
        };
        let mut out = format!(
            "  | {:width$} | {:>12} | {:>12} | {:>10} | {:>10}{}\n",
            "Name",
            "Trainable",
            "Frozen",
            "Buffers",
            "Size (MB)",
            size_columns("In sizes", "Out sizes")
        );
        for (i, row) in rows.iter().enumerate() {
            out.push_str(&format!(
                "{i} | {:width$} | {:>12} | {:>12} | {:>10} | {:>10.3}{}\n",
                row.name,
                row.trainable,
                row.frozen,
                row.buffers,
                row.bytes as f64 / 1e6,
                size_columns(row.in_size.as_deref().unwrap_or("?"), row.out_size.as_deref().unwrap_or("?"))
            ));
        }
        let trainable: i64 = rows.iter().map(|r| r.trainable).sum();
        let frozen: i64 = rows.iter().map(|r| r.frozen).sum();
        let buffers: i64 = rows.iter().map(|r| r.buffers).sum();
        let bytes: i64 = rows.iter().map(|r| r.bytes).sum();
        out.push_str(&format!(
            "{trainable} trainable params, {frozen} frozen params, {buffers} buffer values, {:.3} MB in total\n",
            bytes as f64 / 1e6
        ));
        out.push_str(&format!("hooks defined: {}", hooks.join(", ")));
        out
    }
}

impl Callback for ModelSummary {
    fn logged_names(&self, _: &Ctx) -> Option<Vec<String>> {
        Some(Vec::new())
    }

    fn on_fit_start(&mut self, _ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        self.rows = Self::rows_with_shapes(module)?;
        eprintln!("{}", Self::render(&self.rows, &module.defined_hooks()));
        Ok(())
    }
}
