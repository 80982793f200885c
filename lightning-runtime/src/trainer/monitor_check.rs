//! Before the first training step: every metric a callback or a plateau scheduler monitors is one that is logged,
//! when everything that logs says what it logs (the module's names read off its block by `#[lightning_module]`,
//! each callback's `logged_names`). Lightning finds such a mistake when the callback first looks, often after a
//! whole epoch; otherwise the check stays where Lightning's is.

use crate::module::LightningModule;
use crate::trainer::entry::Run;
use crate::{Error, Result};

impl<M: LightningModule + 'static> Run<'_, M> {
    pub(crate) fn check_monitored_metrics(&self) -> Result<()> {
        let Some(module_names) = M::LOGGED_NAMES else { return Ok(()) };
        let mut logged: Vec<String> = module_names.iter().map(|name| name.to_string()).collect();
        let mut monitors = Vec::new();
        for callback in &self.hooks.callbacks {
            match callback.logged_names(&self.hooks.ctx) {
                Some(names) => logged.extend(names),
                None => return Ok(()),
            }
            if let Some(metric) = callback.monitor() {
                monitors.push((callback.name(), metric));
            }
        }
        for (index, scheduler) in self.hooks.ctx.schedulers.iter().enumerate() {
            if let Some(metric) = scheduler.monitor() {
                monitors.push((format!("ReduceLROnPlateau (LR scheduler {index})"), metric.to_string()));
            }
        }
        for (who, metric) in monitors {
            if is_logged(&metric, &logged) {
                continue;
            }
            let guess = logged
                .iter()
                .min_by_key(|name| strsim::damerau_levenshtein(name, &metric))
                .filter(|name| strsim::damerau_levenshtein(name, &metric) <= (metric.len() / 3).max(1))
                .map(|name| format!(": did you mean `{name}`?"))
                .unwrap_or_default();
            return Err(Error::Config(format!(
                "{who} monitors `{metric}`, but nothing logs it (the module logs {logged:?}){guess}\n\
                 = help: log it with `ctx.log(\"{metric}\", ..)`, or monitor a logged metric"
            )));
        }
        Ok(())
    }
}

/// Whether `metric` is one of the `logged` names as the Trainer keys it: the name itself, `<name>_step` and
/// `<name>_epoch` (a value logged per step and per epoch), with `/dataloader_idx_N` (several evaluation loaders),
/// or Lightning's `epoch` and `step`.
fn is_logged(metric: &str, logged: &[String]) -> bool {
    if metric == "epoch" || metric == "step" {
        return true;
    }
    let base = match metric.rsplit_once("/dataloader_idx_") {
        Some((base, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => metric,
    };
    let stem = base.strip_suffix("_step").or_else(|| base.strip_suffix("_epoch")).unwrap_or(base);
    logged.iter().any(|name| name == metric || name == base || name == stem)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_trainers_keys_of_a_logged_name_count_as_logged() {
        let logged = vec!["val_loss".to_string(), "acc".to_string()];
        for metric in ["val_loss", "val_loss_epoch", "val_loss_step", "acc/dataloader_idx_1", "epoch", "step"] {
            assert!(super::is_logged(metric, &logged), "{metric}");
        }
        for metric in ["val_los", "loss", "acc/dataloader_idx_", "train_loss_epoch"] {
            assert!(!super::is_logged(metric, &logged), "{metric}");
        }
    }
}
