//! Loggers from hooks, with media: a module and a callback reach the run's loggers through the context and add
//! images (a `make_grid` of samples, and an HWC image), histograms and text to the TensorBoard logger; TensorBoard's
//! own reader (its `EventAccumulator`, and the data provider its dashboards ask) reads back every value.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use lightning::loggers::{CsvLogger, ImageFormat, TensorBoardLogger};
use lightning::prelude::*;
use lightning::vision::{make_grid, GridOptions};
use lightning::{Accelerator, AnyModule, Callback, CallbackResult, DataLoader, Trainer};

mod common;
use common::python::tensorboard_python;

/// One epoch's media: the step, the grid's bytes as the PNG should hold them (rows of RGB pixels), and the
/// weights the histogram was made of.
type Epoch = (usize, Vec<Vec<[u8; 3]>>, Vec<f64>);

/// What the hooks logged, to compare TensorBoard's reading with.
#[derive(Clone, Default)]
struct Logged {
    epochs: Arc<Mutex<Vec<Epoch>>>,
    /// Whether a hook found the CSV logger by its type, and how many loggers it saw.
    found_csv: Arc<Mutex<Vec<(bool, usize)>>>,
}

/// Decodes 4x4 gray images from 2 numbers.
struct Decoder {
    vs: nn::VarStore,
    net: nn::Linear,
    z: Tensor,
    logged: Logged,
}

impl Decoder {
    fn new(logged: Logged) -> Self {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::linear(vs.root() / "decoder", 2, 16, Default::default());
        let z = Tensor::randn([5, 2], (Kind::Float, Device::Cpu));
        Decoder { vs, net, z, logged }
    }
}

#[lightning_module(batch = Tensor)]
impl Decoder {
    fn training_step(&mut self, target: &Tensor) -> Tensor {
        let z = Tensor::ones([target.size()[0], 2], (Kind::Float, target.device()));
        self.net.forward(&z).sigmoid().mse_loss(target, Reduction::Mean)
    }

    /// Lightning's "log samples every epoch".
    fn on_train_epoch_end(&mut self, ctx: &mut Ctx) -> lightning::Result<()> {
        let (step, epoch) = (ctx.global_step(), ctx.current_epoch());
        let count = ctx.loggers().len();
        let found = ctx.logger::<CsvLogger>().is_some();
        self.logged.found_csv.lock().unwrap().push((found, count));
        let Some(tensorboard) = ctx.tensorboard() else { return Ok(()) };
        let samples =
            tch::no_grad(|| self.net.forward(&self.z.to_device(self.vs.device()))).sigmoid().view([5, 1, 4, 4]);
        let grid = make_grid(&samples, GridOptions::default().nrow(3).padding(1))?;
        tensorboard.add_image("samples", &grid, step)?;
        tensorboard.add_histogram("decoder/weight", &self.net.ws, step)?;
        tensorboard.add_text("notes", &format!("epoch **{epoch}**"), step)?;

        // What the PNG must hold: PyTorch's `(x * 255).clip(0, 255).astype(uint8)`, per pixel.
        let bytes = (grid.to_device(Device::Cpu) * 255.0).clamp(0.0, 255.0).to_kind(Kind::Uint8).permute([1, 2, 0]);
        let rows = Vec::<Vec<Vec<u8>>>::try_from(bytes.contiguous()).unwrap();
        let pixels = rows.into_iter().map(|row| row.into_iter().map(|p| [p[0], p[1], p[2]]).collect()).collect();
        let weights = Vec::<f64>::try_from(self.net.ws.to_device(Device::Cpu).to_kind(Kind::Double).flatten(0, -1))?;
        self.logged.epochs.lock().unwrap().push((step, pixels, weights));
        Ok(())
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, 0.05)
    }
}

/// A callback adding an image laid out height, width, channels once training ends.
struct Banner;

impl Callback for Banner {
    fn on_train_end(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        let step = ctx.global_step();
        if let Some(tensorboard) = ctx.tensorboard() {
            // 2 high, 3 wide, RGBA: a red, green and blue row over a transparent one.
            let rgba: Vec<u8> = [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255], [0; 4], [0; 4], [0; 4]]
                .into_iter()
                .flatten()
                .collect();
            let image = Tensor::from_slice(&rgba).view([2, 3, 4]);
            tensorboard.add_image_with("banner", &image, step, ImageFormat::Hwc)?;
        }
        Ok(())
    }
}

fn data() -> Loader<Tensor> {
    tch::manual_seed(9);
    let targets = Tensor::rand([24, 16], (Kind::Float, Device::Cpu));
    DataLoader::new(targets).batch_size(8).build().unwrap()
}

/// TensorBoard's reading of the run's folder, as JSON: through `EventAccumulator` every image (its size and its
/// pixels decoded by PIL), histogram and text; and the tags the IMAGES, HISTOGRAMS and TEXT dashboards list
/// through TensorBoard's data provider.
const READ_MEDIA: &str = r#"
import io, json, sys
import numpy as np
from PIL import Image
from tensorboard import context
from tensorboard.backend.event_processing import event_accumulator, data_provider, plugin_event_multiplexer
from tensorboard.util import tensor_util

log_dir, save_dir = sys.argv[1], sys.argv[2]
acc = event_accumulator.EventAccumulator(log_dir, size_guidance={
    event_accumulator.IMAGES: 0, event_accumulator.HISTOGRAMS: 0, event_accumulator.TENSORS: 0})
acc.Reload()
tags = acc.Tags()
images = {}
for tag in tags["images"]:
    images[tag] = []
    for e in acc.Images(tag):
        picture = Image.open(io.BytesIO(e.encoded_image_string))
        images[tag].append({"step": e.step, "width": e.width, "height": e.height, "format": picture.format,
                            "mode": picture.mode, "pixels": np.asarray(picture).tolist()})
histograms = {tag: [{"step": e.step, "min": e.histogram_value.min, "max": e.histogram_value.max,
                     "num": e.histogram_value.num, "sum": e.histogram_value.sum,
                     "sum_squares": e.histogram_value.sum_squares,
                     "bucket_limit": list(e.histogram_value.bucket_limit), "bucket": list(e.histogram_value.bucket)}
                    for e in acc.Histograms(tag)] for tag in tags["histograms"]}
texts = {tag: [[e.step, [t.decode() for t in tensor_util.make_ndarray(e.tensor_proto).tolist()]]
               for e in acc.Tensors(tag)] for tag in tags["tensors"]}

multiplexer = plugin_event_multiplexer.EventMultiplexer()
multiplexer.AddRunsFromDirectory(save_dir)
multiplexer.Reload()
provider = data_provider.MultiplexerDataProvider(multiplexer, save_dir)
ctx = context.RequestContext()
dashboards = {
    "images": {run: sorted(t) for run, t in
               provider.list_blob_sequences(ctx, experiment_id="", plugin_name="images").items()},
    "histograms": {run: sorted(t) for run, t in
                   provider.list_tensors(ctx, experiment_id="", plugin_name="histograms").items()},
    "text": {run: sorted(t) for run, t in provider.list_tensors(ctx, experiment_id="", plugin_name="text").items()},
}
print(json.dumps({"images": images, "histograms": histograms, "texts": texts, "dashboards": dashboards}))
"#;

fn read_media(save_dir: &Path, log_dir: &Path) -> serde_json::Value {
    let python = tensorboard_python();
    let output = Command::new(&python).arg("-c").arg(READ_MEDIA).arg(log_dir).arg(save_dir).output().unwrap();
    assert!(output.status.success(), "{} failed: {}", python.display(), String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn hooks_log_images_histograms_and_text_that_tensorboard_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = CsvLogger::new(tmp.path(), "media").unwrap();
    let tensorboard = TensorBoardLogger::new(tmp.path(), "media").unwrap();
    let log_dir = tensorboard.log_dir();
    let logged = Logged::default();
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(3)
        .accelerator(Accelerator::Cpu)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .logger(csv)
        .logger(tensorboard)
        .callback(Banner);
    trainer.fit(&mut Decoder::new(logged.clone()), data(), None).unwrap();

    assert_eq!(*logged.found_csv.lock().unwrap(), vec![(true, 2); 3], "each epoch found both loggers");
    let epochs = logged.epochs.lock().unwrap().clone();
    assert_eq!(epochs.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 6, 9]);
    let read = read_media(tmp.path(), &log_dir);

    // The grid: 5 images of 4x4, 3 to a row, 1 pixel apart: 2 rows, 1 + 3 * 5 = 16 wide, 1 + 2 * 5 = 11 high;
    // gray samples became RGB, as torchvision's `make_grid` makes them. Every pixel as logged.
    let samples = read["images"]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    for (image, (step, pixels, _)) in samples.iter().zip(&epochs) {
        assert_eq!(image["step"], *step);
        assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(16), Some(11)));
        assert_eq!((image["format"].as_str(), image["mode"].as_str()), (Some("PNG"), Some("RGB")));
        assert_eq!(image["pixels"], serde_json::json!(pixels), "step {step}");
    }
    // The samples change as the decoder learns.
    assert_ne!(epochs[0].1, epochs[2].1);

    let banner = &read["images"]["banner"][0];
    assert_eq!((banner["step"].as_u64(), banner["mode"].as_str()), (Some(9), Some("RGBA")));
    let rgba = serde_json::json!([
        [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]],
        [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    ]);
    assert_eq!(banner["pixels"], rgba);

    // Histograms: the exact statistics of the weights, and 30 equal-width buckets counted here independently.
    let histograms = read["histograms"]["decoder/weight"].as_array().unwrap();
    assert_eq!(histograms.len(), 3);
    for (histogram, (step, _, weights)) in histograms.iter().zip(&epochs) {
        assert_eq!(histogram["step"], *step);
        let min = weights.iter().copied().fold(f64::INFINITY, f64::min);
        let max = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((histogram["min"].as_f64(), histogram["max"].as_f64()), (Some(min), Some(max)));
        assert_eq!(histogram["num"].as_f64(), Some(32.0));
        let close =
            |read: &serde_json::Value, exact: f64| (read.as_f64().unwrap() - exact).abs() <= 1e-12 * exact.abs();
        assert!(close(&histogram["sum"], weights.iter().sum()), "{histogram}");
        assert!(close(&histogram["sum_squares"], weights.iter().map(|w| w * w).sum()), "{histogram}");
        let width = (max - min) / 30.0;
        let mut counts = [0.0; 30];
        for w in weights {
            counts[(((w - min) / width) as usize).min(29)] += 1.0;
        }
        assert_eq!(histogram["bucket"], serde_json::json!(counts), "step {step}");
        let limits = histogram["bucket_limit"].as_array().unwrap();
        assert_eq!(limits.len(), 30);
        assert_eq!(limits[29].as_f64(), Some(max));
        assert!((limits[0].as_f64().unwrap() - (min + width)).abs() < 1e-12);
    }

    // Text, under PyTorch's `<tag>/text_summary`.
    let texts: Vec<_> = (0..3).map(|e| serde_json::json!([epochs[e].0, [format!("epoch **{e}**")]])).collect();
    assert_eq!(read["texts"]["notes/text_summary"], serde_json::json!(texts));

    // What TensorBoard's dashboards list for the run.
    let dashboards = &read["dashboards"];
    assert_eq!(dashboards["images"]["media/version_0"], serde_json::json!(["banner", "samples"]));
    assert_eq!(dashboards["histograms"]["media/version_0"], serde_json::json!(["decoder/weight"]));
    assert_eq!(dashboards["text"]["media/version_0"], serde_json::json!(["notes/text_summary"]));
}

#[test]
fn without_a_tensorboard_logger_the_hooks_find_none_and_the_run_goes_on() {
    let logged = Logged::default();
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(2)
        .accelerator(Accelerator::Cpu)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .callback(Banner);
    trainer.fit(&mut Decoder::new(logged.clone()), data(), None).unwrap();
    assert_eq!(*logged.found_csv.lock().unwrap(), vec![(false, 0); 2]);
    assert!(logged.epochs.lock().unwrap().is_empty());
}
