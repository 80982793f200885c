//! `ModelSummary`: at the start of `fit`, the parameters of each top-level submodule (trainable and frozen), its
//! buffers, the total size, and the hooks the module defines (read off its hook table).

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
}

/// Prints a summary of the module when `fit` starts. The Trainer adds one unless
/// `Trainer::enable_model_summary(false)`.
#[derive(Debug, Default)]
pub struct ModelSummary {
    /// The rows of the last summary printed.
    pub rows: Vec<SummaryRow>,
}

impl ModelSummary {
    /// The summary of `module`, one row per top-level submodule, in name order.
    pub fn rows_of(module: &dyn AnyModule) -> Vec<SummaryRow> {
        let store = module.var_store();
        // A VarStore lists its parameters (`trainable_variables`, frozen ones included); every other variable is
        // a buffer. Told apart by storage: a variable and its entry in that list are the same tensor.
        let parameters: HashSet<usize> = store.trainable_variables().iter().map(|t| t.data_ptr() as usize).collect();
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

    /// The summary as the text printed.
    pub fn render(rows: &[SummaryRow], hooks: &[&str]) -> String {
        let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
        let mut out = format!(
            "  | {:width$} | {:>12} | {:>12} | {:>10} | {:>10}\n",
            "Name", "Trainable", "Frozen", "Buffers", "Size (MB)"
        );
        for (i, row) in rows.iter().enumerate() {
            out.push_str(&format!(
                "{i} | {:width$} | {:>12} | {:>12} | {:>10} | {:>10.3}\n",
                row.name,
                row.trainable,
                row.frozen,
                row.buffers,
                row.bytes as f64 / 1e6
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
        self.rows = Self::rows_of(module);
        eprintln!("{}", Self::render(&self.rows, &module.defined_hooks()));
        Ok(())
    }
}
