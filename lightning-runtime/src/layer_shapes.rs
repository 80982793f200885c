//! What `example_input_array` is for: one forward pass of the example input, recorded so that `ModelSummary`
//! can show each submodule's input and output shapes (Lightning's "In sizes" and "Out sizes").
//!
//! Lightning reads them with forward hooks on every `nn.Module`. tch's layers have no hooks, so the pass is
//! recorded one level down: libtorch reports every outermost operator it runs (`csrc/shapes.cpp`), with the
//! storage of its tensor inputs, and an operator that reads a variable of the module's `VarStore` belongs to
//! the submodule that variable is named under. A submodule's input is the first tensor that is not one of its
//! variables going into the first operator that uses them; its output is what the last such operator returns.
//! For the usual layers (linear, convolution, normalisation, embedding, recurrent) that is exactly what a
//! forward hook sees; where a submodule ends with an operator that uses none of its variables (a `Flatten` or
//! an activation after its last layer), the output shown is the one before it.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};

use tch::{Device, Kind, Tensor};

use crate::error::HookError;
use crate::module::LightningModule;
use crate::Result;

extern "C" {
    fn lightning_shapes_start(handle: *mut u64) -> *mut c_char;
    fn lightning_shapes_stop(handle: u64, text: *mut *mut c_char) -> *mut c_char;
    fn lightning_storage_address(tensor: *const c_void) -> u64;
    fn lightning_free_shapes(text: *mut c_char);
}

/// A value `example_input_array` may return: what `forward` is called with (`forward(&input)`).
///
/// Implemented for a `Tensor`, tuples of two or three tensors and a `Vec<Tensor>`.
pub trait ExampleInput {
    /// The tensors, in order.
    fn tensors(&self) -> Vec<&Tensor>;
    /// The same input on `device`, floating-point tensors cast to `kind` when given (a module whose weights
    /// are in a `*-true` precision gets its input in that dtype, as Lightning's precision plugin converts it).
    fn to_module(self, device: Device, kind: Option<Kind>) -> Result<Self>
    where
        Self: Sized;
}

/// What `forward` may return for the summary to read its shapes: a `Tensor`, tuples of two or three tensors, a
/// `Vec<Tensor>`.
pub trait ExampleOutput {
    /// The tensors, in order.
    fn tensors(&self) -> Vec<&Tensor>;
}

fn moved(tensor: &Tensor, device: Device, kind: Option<Kind>) -> Result<Tensor> {
    let tensor = tensor.f_to_device(device)?;
    Ok(match kind {
        Some(kind) if tensor.is_floating_point() && tensor.kind() != kind => tensor.f_to_kind(kind)?,
        _ => tensor,
    })
}

impl ExampleInput for Tensor {
    fn tensors(&self) -> Vec<&Tensor> {
        vec![self]
    }
    fn to_module(self, device: Device, kind: Option<Kind>) -> Result<Self> {
        moved(&self, device, kind)
    }
}

impl ExampleInput for Vec<Tensor> {
    fn tensors(&self) -> Vec<&Tensor> {
        self.iter().collect()
    }
    fn to_module(self, device: Device, kind: Option<Kind>) -> Result<Self> {
        self.iter().map(|tensor| moved(tensor, device, kind)).collect()
    }
}

impl ExampleInput for (Tensor, Tensor) {
    fn tensors(&self) -> Vec<&Tensor> {
        vec![&self.0, &self.1]
    }
    fn to_module(self, device: Device, kind: Option<Kind>) -> Result<Self> {
        Ok((moved(&self.0, device, kind)?, moved(&self.1, device, kind)?))
    }
}

impl ExampleInput for (Tensor, Tensor, Tensor) {
    fn tensors(&self) -> Vec<&Tensor> {
        vec![&self.0, &self.1, &self.2]
    }
    fn to_module(self, device: Device, kind: Option<Kind>) -> Result<Self> {
        Ok((moved(&self.0, device, kind)?, moved(&self.1, device, kind)?, moved(&self.2, device, kind)?))
    }
}

impl ExampleOutput for Tensor {
    fn tensors(&self) -> Vec<&Tensor> {
        vec![self]
    }
}

impl ExampleOutput for Vec<Tensor> {
    fn tensors(&self) -> Vec<&Tensor> {
        self.iter().collect()
    }
}

impl ExampleOutput for (Tensor, Tensor) {
    fn tensors(&self) -> Vec<&Tensor> {
        vec![&self.0, &self.1]
    }
}

impl ExampleOutput for (Tensor, Tensor, Tensor) {
    fn tensors(&self) -> Vec<&Tensor> {
        vec![&self.0, &self.1, &self.2]
    }
}

/// The shapes of one tensor or several, written as Lightning writes them: `[2, 784]` for one, `[[2, 3], [2]]`
/// for several, `?` for none.
pub fn shape_text(shapes: &[Vec<i64>]) -> String {
    let one = |dims: &Vec<i64>| format!("{dims:?}");
    match shapes {
        [] => "?".to_string(),
        [single] => one(single),
        several => format!("[{}]", several.iter().map(one).collect::<Vec<_>>().join(", ")),
    }
}

/// One outermost operator of the recorded forward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpShapes {
    /// The operator (`aten::linear`).
    pub op: String,
    /// The module's variables it read (`encoder.weight`), in name order.
    pub variables: Vec<String>,
    /// The shapes of its other tensor inputs, in order.
    pub inputs: Vec<Vec<i64>>,
    /// The shapes of the tensors it returned.
    pub outputs: Vec<Vec<i64>>,
}

/// The forward pass of `example_input_array`, recorded: the model's input and output shapes, and each
/// operator that used the module's variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerShapes {
    /// The shapes of the example input.
    pub input: Vec<Vec<i64>>,
    /// The shapes of what `forward` returned.
    pub output: Vec<Vec<i64>>,
    /// The operators that used a variable of the module, in the order they ran.
    pub ops: Vec<OpShapes>,
}

impl LayerShapes {
    /// The input and output shapes of the submodule `path` (`encoder`, or `encoder.0`), as Lightning writes
    /// them; `("?", "?")` for one the forward pass did not use.
    pub fn of(&self, path: &str) -> (String, String) {
        let prefix = format!("{path}.");
        let used: Vec<&OpShapes> = self
            .ops
            .iter()
            .filter(|op| op.variables.iter().any(|name| name == path || name.starts_with(&prefix)))
            .collect();
        let Some(last) = used.last() else {
            return ("?".to_string(), "?".to_string());
        };
        // An operator over the submodule's variables alone (the `t` of a weight before its matmul) has no input.
        let input = used
            .iter()
            .find(|op| !op.inputs.is_empty())
            .map_or_else(|| "?".to_string(), |op| shape_text(&op.inputs[..1]));
        (input, shape_text(&last.outputs))
    }
}

/// Runs `forward` on the example `input` under `no_grad`, on the module's device, and records it. What the
/// shim `#[lightning_module]` generates for `example_input_array` calls. Not part of the public API.
#[doc(hidden)]
pub fn forward_example<M, I, O>(
    module: &mut M,
    input: I,
    forward: impl FnOnce(&mut M, &I) -> O,
) -> Result<LayerShapes, HookError>
where
    M: LightningModule,
    I: ExampleInput,
    O: ExampleOutput,
{
    let store = module.var_store();
    let device = store.device();
    let kind = store.trainable_variables().iter().find(|variable| variable.is_floating_point()).map(Tensor::kind);
    // Variables told apart by the storage they hold (operators may read a view, such as a weight's transpose).
    // Tied weights (one tensor under two names) share a storage: an operator reading it is credited to both.
    let mut names: HashMap<u64, Vec<String>> = HashMap::new();
    for (name, variable) in store.variables() {
        names.entry(storage_address(&variable)).or_default().push(name);
    }
    let input = input.to_module(device, kind)?;
    let _no_grad = tch::no_grad_guard();
    // Lightning runs this pass in eval mode. A tch module has no mode of its own, and a `forward` that runs batch
    // norm in training mode would move its running statistics by the example input: the buffers are put back.
    let _buffers = Buffers::keep(store)?;
    let recording = Recording::start()?;
    // tch's layers panic on a shape they cannot take: that is the user's example input, said as such.
    let output = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| forward(module, &input))) {
        Ok(output) => output,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            // libtorch's messages go on with a C++ backtrace (after a newline, escaped when the error was
            // debug-printed by `unwrap`), which says nothing about the model.
            let message = message.split("Exception raised from").next().unwrap_or(message);
            let message = message.trim_end_matches("\\n").trim_end();
            let shapes: Vec<Vec<i64>> = input.tensors().into_iter().map(Tensor::size).collect();
            return Err(format!("`forward` panicked on the example input {}: {message}", shape_text(&shapes)).into());
        }
    };
    let text = recording.stop()?;
    let ops = parse(&text, &names);
    let dims = |tensors: Vec<&Tensor>| tensors.into_iter().map(Tensor::size).collect();
    Ok(LayerShapes { input: dims(input.tensors()), output: dims(output.tensors()), ops })
}

/// The module's buffers (the variables that are not parameters: running statistics, step counters) as they were,
/// copied back when dropped, whether `forward` returned or panicked. Frozen parameters are left out: `forward`
/// does not write them, and copying a frozen backbone could double its memory on the device.
struct Buffers {
    kept: Vec<(Tensor, Tensor)>,
}

impl Buffers {
    fn keep(store: &tch::nn::VarStore) -> Result<Self> {
        let parameters = crate::callbacks::parameter_storages(store);
        let mut kept = Vec::new();
        for variable in store.variables().into_values().filter(|v| !parameters.contains(&(v.data_ptr() as usize))) {
            let copy = variable.f_detach_copy()?;
            kept.push((variable, copy));
        }
        Ok(Buffers { kept })
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        let _no_grad = tch::no_grad_guard();
        for (variable, copy) in &mut self.kept {
            // Same shape, dtype and device as taken: a failure here would be libtorch's own, with nothing to
            // report it to from a drop.
            let _ = variable.f_copy_(copy);
        }
    }
}

fn storage_address(tensor: &Tensor) -> u64 {
    // SAFETY: a live tensor's handle, only read.
    unsafe { lightning_storage_address(tensor.as_ptr() as *const c_void) }
}

/// The recording on this thread; stopped when dropped, so that a panicking `forward` leaves no callback behind.
struct Recording {
    handle: Option<u64>,
}

impl Recording {
    fn start() -> Result<Self> {
        let mut handle = 0;
        // SAFETY: writes the handle on success.
        crate::kernels::check(unsafe { lightning_shapes_start(&mut handle) })?;
        Ok(Recording { handle: Some(handle) })
    }

    fn stop(mut self) -> Result<String> {
        let handle = self.handle.take().expect("a recording is stopped once");
        stop(handle)
    }
}

fn stop(handle: u64) -> Result<String> {
    let mut text: *mut c_char = std::ptr::null_mut();
    // SAFETY: `handle` came from lightning_shapes_start on this thread; `text` is written on success.
    crate::kernels::check(unsafe { lightning_shapes_stop(handle, &mut text) })?;
    if text.is_null() {
        return Ok(String::new());
    }
    // SAFETY: a NUL-terminated string from `strdup`, freed here exactly once.
    let owned = unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned();
    unsafe { lightning_free_shapes(text) };
    Ok(owned)
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = stop(handle);
        }
    }
}

/// The recording's lines (`name \t inputs \t outputs`), keeping the operators that read one of the `names`.
fn parse(text: &str, names: &HashMap<u64, Vec<String>>) -> Vec<OpShapes> {
    let mut ops = Vec::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(op), Some(inputs), Some(outputs)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let mut read: Vec<&Vec<String>> = Vec::new();
        let mut other = Vec::new();
        for (address, dims) in shapes(inputs) {
            match names.get(&address) {
                Some(tied) if address != 0 => read.push(tied),
                _ => other.push(dims),
            }
        }
        if read.is_empty() {
            continue;
        }
        let mut variables: Vec<String> = read.iter().flat_map(|tied| untie(tied, &read, names)).collect();
        variables.sort();
        variables.dedup();
        let outputs = shapes(outputs).into_iter().map(|(_, dims)| dims).collect();
        ops.push(OpShapes { op: op.to_string(), variables, inputs: other, outputs });
    }
    ops
}

/// The submodule a variable belongs to: its name less the last component (`head` of `head.weight`).
fn owner(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(owner, _)| owner)
}

/// Which of the names of one storage (`tied`: several for tied weights) an operator used, judged by the other
/// variables it `read`: a name whose submodule's other variables the operator also read (a linear layer's bias
/// beside the weight it shares); else one whose submodule has no other variable (an embedding's lone weight);
/// else every name.
fn untie<'a>(tied: &'a [String], read: &[&Vec<String>], names: &HashMap<u64, Vec<String>>) -> Vec<String> {
    if tied.len() < 2 {
        return tied.to_vec();
    }
    let others = || read.iter().filter(|r| r.as_slice() != tied).flat_map(|r| r.iter());
    let with_sibling: Vec<&'a String> =
        tied.iter().filter(|name| others().any(|other| owner(other) == owner(name))).collect();
    let alone: Vec<&'a String> = tied
        .iter()
        .filter(|name| names.values().flatten().all(|v| tied.contains(v) || owner(v) != owner(name)))
        .collect();
    let chosen = if !with_sibling.is_empty() {
        with_sibling
    } else if !alone.is_empty() {
        alone
    } else {
        tied.iter().collect()
    };
    chosen.into_iter().cloned().collect()
}

/// `12[2,3]34[]` as `[(12, [2, 3]), (34, [])]`; an output list has no addresses (`[2,3][4]`), read as 0.
fn shapes(text: &str) -> Vec<(u64, Vec<i64>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|i| open + i) else { break };
        let address = rest[..open].parse().unwrap_or(0);
        let dims = rest[open + 1..close].split(',').filter(|d| !d.is_empty()).filter_map(|d| d.parse().ok()).collect();
        out.push((address, dims));
        rest = &rest[close + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_read_and_written_as_lightning_writes_them() {
        assert_eq!(shapes("12[2,3]34[]"), vec![(12, vec![2, 3]), (34, vec![])]);
        assert_eq!(shapes("[2,3][4]"), vec![(0, vec![2, 3]), (0, vec![4])]);
        assert_eq!(shape_text(&[vec![2, 784]]), "[2, 784]");
        assert_eq!(shape_text(&[vec![2, 3], vec![2]]), "[[2, 3], [2]]");
        assert_eq!(shape_text(&[]), "?");
    }

    #[test]
    fn an_operator_belongs_to_the_submodule_whose_variables_it_reads() {
        let names = HashMap::from([(7, vec!["enc.weight".to_string()]), (8, vec!["enc.bias".to_string()])]);
        let text = "aten::t\t7[3,4]\t[4,3]\naten::relu\t5[2,4]\t[2,4]\naten::matmul\t5[2,4]7[3,4]\t[2,3]\naten::add\t9[2,3]8[3]\t[2,3]\n";
        let recorded = LayerShapes { ops: parse(text, &names), ..LayerShapes::default() };
        assert_eq!(recorded.ops.len(), 3, "relu reads no variable: {:?}", recorded.ops);
        assert_eq!(recorded.of("enc"), ("[2, 4]".to_string(), "[2, 3]".to_string()));
        assert_eq!(recorded.of("dec"), ("?".to_string(), "?".to_string()));
        assert_eq!(recorded.of("en"), ("?".to_string(), "?".to_string()), "a prefix of a name is not a submodule");
    }

    #[test]
    fn a_tied_weight_goes_to_the_submodule_whose_other_variables_the_operator_reads() {
        let tied = vec!["embed.weight".to_string(), "head.weight".to_string()];
        let names = HashMap::from([(7, tied.clone()), (8, vec!["head.bias".to_string()])]);
        let text = "aten::embedding\t7[10,4]1[2]\t[2,4]\naten::linear\t3[2,4]7[10,4]8[10]\t[2,10]\n";
        let recorded = LayerShapes { ops: parse(text, &names), ..LayerShapes::default() };
        assert_eq!(recorded.of("embed"), ("[2]".to_string(), "[2, 4]".to_string()));
        assert_eq!(recorded.of("head"), ("[2, 4]".to_string(), "[2, 10]".to_string()));
        // Without the bias nothing tells the two apart: both get every operator.
        let names = HashMap::from([(7, tied)]);
        let text = "aten::embedding\t7[10,4]1[2]\t[2,4]\naten::linear\t3[2,4]7[10,4]\t[2,10]\n";
        let recorded = LayerShapes { ops: parse(text, &names), ..LayerShapes::default() };
        assert_eq!(recorded.of("embed"), recorded.of("head"));
    }
}
