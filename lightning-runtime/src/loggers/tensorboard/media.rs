//! What `TensorBoardLogger` writes besides scalars: images, histograms and text, in the event formats PyTorch's
//! `SummaryWriter` writes (`add_image`, `add_histogram`, `add_text`), which TensorBoard's IMAGES, HISTOGRAMS,
//! DISTRIBUTIONS and TEXT tabs read.

use tch::{Device, Kind, Tensor};

use super::{now, TensorBoardLogger};
use crate::loggers::proto::{event, histogram, image, summary, tensor, Message};
use crate::{Error, Result};

/// How many equal-width buckets a histogram gets (what TensorFlow 2's `tf.summary.histogram` uses; TensorBoard
/// re-buckets for display either way).
const HISTOGRAM_BUCKETS: i64 = 30;

/// The axes of an image tensor given to [`TensorBoardLogger::add_image_with`] (PyTorch's `dataformats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageFormat {
    /// Channels, height, width: torchvision's and tch's layout (the default).
    #[default]
    Chw,
    /// Height, width, channels.
    Hwc,
    /// Height and width only: a grayscale image.
    Hw,
}

impl TensorBoardLogger {
    /// Writes `image` (channels, height, width; 1, 2, 3 or 4 channels: gray, gray and alpha, RGB, RGBA) as a
    /// PNG image under `tag` at `step`, as PyTorch's `SummaryWriter.add_image` does: floating-point values are
    /// taken as `[0, 1]` (multiplied by 255, clipped, then truncated to bytes), `uint8` values as they are.
    /// The tensor may live on any device; it is copied to the CPU. A grid of many images:
    /// [`make_grid`](crate::vision::make_grid), or [`add_images`](Self::add_images).
    ///
    /// ```
    /// use lightning::loggers::TensorBoardLogger;
    /// use tch::{Device, Kind, Tensor};
    ///
    /// # fn main() -> lightning::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let mut logger = TensorBoardLogger::new(dir.path(), "gan")?;
    /// let sample = Tensor::rand([3, 28, 28], (Kind::Float, Device::Cpu));
    /// logger.add_image("samples", &sample, 0)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for a tensor of another shape or dtype (neither floating-point nor `uint8`), or an
    /// empty one; [`Error::Io`] when the event file cannot be written.
    pub fn add_image(&mut self, tag: &str, image: &Tensor, step: usize) -> Result<()> {
        self.add_image_with(tag, image, step, ImageFormat::Chw)
    }

    /// [`add_image`](Self::add_image) for a tensor laid out as `format` says (PyTorch's `dataformats`).
    ///
    /// ```
    /// # use lightning::loggers::{ImageFormat, TensorBoardLogger};
    /// # use tch::{Device, Kind, Tensor};
    /// # fn main() -> lightning::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let mut logger = TensorBoardLogger::new(dir.path(), "digits")?;
    /// let digit = Tensor::rand([8, 8], (Kind::Float, Device::Cpu));
    /// logger.add_image_with("digit", &digit, 0, ImageFormat::Hw)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_image_with(&mut self, tag: &str, image: &Tensor, step: usize, format: ImageFormat) -> Result<()> {
        let (width, height, channels, png) = encode_png(tag, image, format)?;
        let image = Message::new()
            .varint(image::HEIGHT, height as u64)
            .varint(image::WIDTH, width as u64)
            .varint(image::COLORSPACE, channels as u64)
            .bytes(image::ENCODED, &png);
        let value = Message::new().string(summary::VALUE_TAG, tag).message(summary::VALUE_IMAGE, image);
        self.write_summary(value, step)
    }

    /// Writes a batch of images (batch, channels, height, width) as one grid image, 8 to a row with 2 pixels
    /// between them ([`make_grid`](crate::vision::make_grid)'s defaults; call it for other settings).
    ///
    /// ```
    /// # use lightning::loggers::TensorBoardLogger;
    /// # use tch::{Device, Kind, Tensor};
    /// # fn main() -> lightning::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let mut logger = TensorBoardLogger::new(dir.path(), "autoencoder")?;
    /// let reconstructions = Tensor::rand([16, 1, 28, 28], (Kind::Float, Device::Cpu));
    /// logger.add_images("reconstructions", &reconstructions, 100)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_images(&mut self, tag: &str, images: &Tensor, step: usize) -> Result<()> {
        let grid = crate::vision::make_grid(images, crate::vision::GridOptions::default())?;
        self.add_image(tag, &grid, step)
    }

    /// Writes a histogram of every value of `values` under `tag` at `step` (PyTorch's
    /// `SummaryWriter.add_histogram`): TensorBoard's HISTOGRAMS and DISTRIBUTIONS tabs show it. The values'
    /// minimum, maximum, count, sum and sum of squares are kept exactly (as 64-bit floats), the distribution in
    /// 30 equal-width buckets between the minimum and the maximum.
    ///
    /// ```
    /// # use lightning::loggers::TensorBoardLogger;
    /// # use tch::{Device, Kind, Tensor};
    /// # fn main() -> lightning::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let mut logger = TensorBoardLogger::new(dir.path(), "mnist")?;
    /// let weights = Tensor::randn([128, 784], (Kind::Float, Device::Cpu));
    /// logger.add_histogram("layer1/weight", &weights, 10)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for an empty tensor, or one holding NaN or an infinity; [`Error::Io`] when the event
    /// file cannot be written.
    pub fn add_histogram(&mut self, tag: &str, values: &Tensor, step: usize) -> Result<()> {
        let histo = histogram_message(tag, values)?;
        let value = Message::new().string(summary::VALUE_TAG, tag).message(summary::VALUE_HISTO, histo);
        self.write_summary(value, step)
    }

    /// Writes `text` (Markdown, as TensorBoard's TEXT tab renders it) under `tag` at `step`, as PyTorch's
    /// `SummaryWriter.add_text` does: TensorBoard lists it as `<tag>/text_summary`.
    ///
    /// ```
    /// # use lightning::loggers::TensorBoardLogger;
    /// # fn main() -> lightning::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let mut logger = TensorBoardLogger::new(dir.path(), "lm")?;
    /// logger.add_text("sample", "the **quick** brown fox", 3)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_text(&mut self, tag: &str, text: &str, step: usize) -> Result<()> {
        let shape = Message::new().message(tensor::SHAPE_DIM, Message::new().varint(tensor::DIM_SIZE, 1));
        let proto = Message::new()
            .varint(tensor::DTYPE, tensor::DT_STRING)
            .message(tensor::SHAPE, shape)
            .string(tensor::STRING_VAL, text);
        // The text plugin finds its summaries by this plugin name; its content is empty, as PyTorch writes it.
        let plugin = Message::new().string(summary::PLUGIN_NAME, "text");
        let metadata = Message::new().message(summary::METADATA_PLUGIN_DATA, plugin);
        let value = Message::new()
            .string(summary::VALUE_TAG, &format!("{tag}/text_summary"))
            .message(summary::VALUE_METADATA, metadata)
            .message(summary::VALUE_TENSOR, proto);
        self.write_summary(value, step)
    }

    /// One event holding the summary value `value` at `step`, counted as a logging call for `flush_every`.
    fn write_summary(&mut self, value: Message, step: usize) -> Result<()> {
        let event = Message::new()
            .double(event::WALL_TIME, now())
            .varint(event::STEP, step as u64)
            .message(event::SUMMARY, Message::new().message(summary::VALUE, value));
        self.write_event(event)?;
        self.count_logging_call()
    }
}

/// The image as PNG bytes, with its width, height and number of channels (TensorBoard's `colorspace`).
fn encode_png(tag: &str, image: &Tensor, format: ImageFormat) -> Result<(usize, usize, usize, Vec<u8>)> {
    let bad = |why: String| Error::Config(format!("image `{tag}`: {why}"));
    let size = image.size();
    let hwc = match (format, size.len()) {
        (ImageFormat::Chw, 3) => image.f_permute([1, 2, 0])?,
        (ImageFormat::Hwc, 3) => image.shallow_clone(),
        (ImageFormat::Hw, 2) => image.f_unsqueeze(-1)?,
        (format, _) => {
            let wanted = match format {
                ImageFormat::Chw => "(channels, height, width)",
                ImageFormat::Hwc => "(height, width, channels)",
                ImageFormat::Hw => "(height, width)",
            };
            return Err(bad(format!(
                "a tensor of shape {size:?} is not an image laid out as {wanted}; a batch of images goes through \
                 `add_images` or `make_grid`"
            )));
        }
    };
    let hwc_size = hwc.size();
    let (height, width, channels) = (hwc_size[0], hwc_size[1], hwc_size[2]);
    let color = match channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        n => return Err(bad(format!("{n} channels (shape {size:?}): an image has 1, 2, 3 or 4"))),
    };
    if height == 0 || width == 0 || height > i64::from(u32::MAX) || width > i64::from(u32::MAX) {
        return Err(bad(format!("a {width}x{height} image cannot be written")));
    }
    let hwc = hwc.f_detach()?.f_to_device(Device::Cpu)?;
    let bytes = match hwc.kind() {
        Kind::Uint8 => hwc,
        _ if hwc.is_floating_point() => {
            // PyTorch's `add_image`: `(x * 255).clip(0, 255).astype(uint8)`, NaN as 0.
            let scaled = hwc.f_to_kind(Kind::Float)?.f_nan_to_num(0.0, None, None)?.f_mul_scalar(255.0)?;
            scaled.f_clamp(0.0, 255.0)?.f_to_kind(Kind::Uint8)?
        }
        kind => {
            return Err(bad(format!(
                "a tensor of {kind:?}: an image is floating-point (values in [0, 1]) or uint8 (0 to 255)"
            )))
        }
    };
    let data = Vec::<u8>::try_from(bytes.f_contiguous()?.f_flatten(0, -1)?)?;
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, width as u32, height as u32);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let encoded = encoder.write_header().and_then(|mut writer| {
        writer.write_image_data(&data)?;
        writer.finish()
    });
    encoded.map_err(|e| bad(format!("PNG encoding failed: {e}")))?;
    Ok((width as usize, height as usize, channels as usize, png_bytes))
}

/// `values` as a `HistogramProto`: exact statistics, and equal-width buckets each given by its right edge
/// (`bucket_limit`) and count (`bucket`); TensorBoard takes the first bucket's left edge to be `min`.
fn histogram_message(tag: &str, values: &Tensor) -> Result<Message> {
    let values = values.f_detach()?.f_to_kind(Kind::Double)?.f_flatten(0, -1)?;
    let count = values.numel();
    if count == 0 {
        return Err(Error::Config(format!("histogram `{tag}`: the tensor has no values")));
    }
    if !bool::try_from(values.f_isfinite()?.f_all()?)? {
        return Err(Error::Config(format!(
            "histogram `{tag}`: the tensor holds NaN or an infinity, which a histogram cannot place"
        )));
    }
    let min = f64::try_from(values.f_min()?)?;
    let max = f64::try_from(values.f_max()?)?;
    let sum = f64::try_from(values.f_sum(Kind::Double)?)?;
    let sum_squares = f64::try_from(values.f_dot(&values)?)?;
    let (limits, counts) = if min == max {
        (vec![max], vec![count as f64])
    } else {
        // `histc` spans [min, max] (the data's range) in equal-width bins, the last one closed.
        let counts = Vec::<f64>::try_from(values.f_histc(HISTOGRAM_BUCKETS)?.f_to_kind(Kind::Double)?)?;
        let width = (max - min) / HISTOGRAM_BUCKETS as f64;
        let mut limits: Vec<f64> = (1..=HISTOGRAM_BUCKETS).map(|i| min + width * i as f64).collect();
        // The last edge is the maximum exactly, whatever the rounding above.
        *limits.last_mut().expect("30 buckets") = max;
        (limits, counts)
    };
    Ok(Message::new()
        .double(histogram::MIN, min)
        .double(histogram::MAX, max)
        .double(histogram::NUM, count as f64)
        .double(histogram::SUM, sum)
        .double(histogram::SUM_SQUARES, sum_squares)
        .packed_doubles(histogram::BUCKET_LIMIT, &limits)
        .packed_doubles(histogram::BUCKET, &counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_a_png_of_its_pixels() {
        // Two by one RGB: red, then half-grey (127.5 truncates to 127, as PyTorch's `astype(uint8)`).
        let image = Tensor::from_slice(&[1.0f32, 0.5, 0.0, 0.5, 0.0, 0.5]).reshape([3, 1, 2]);
        let (width, height, channels, bytes) = encode_png("t", &image, ImageFormat::Chw).unwrap();
        assert_eq!((width, height, channels), (2, 1, 3));
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut pixels).unwrap();
        assert_eq!(pixels, [255, 0, 0, 127, 127, 127]);
    }

    #[test]
    fn bad_images_are_errors() {
        let batch = Tensor::zeros([2, 3, 4, 4], (Kind::Float, Device::Cpu));
        let error = encode_png("b", &batch, ImageFormat::Chw).unwrap_err().to_string();
        assert!(error.contains("image `b`") && error.contains("add_images"), "{error}");
        let five = Tensor::zeros([5, 4, 4], (Kind::Float, Device::Cpu));
        assert!(encode_png("c", &five, ImageFormat::Chw).unwrap_err().to_string().contains("5 channels"));
        let ints = Tensor::zeros([1, 4, 4], (Kind::Int64, Device::Cpu));
        assert!(encode_png("i", &ints, ImageFormat::Chw).unwrap_err().to_string().contains("Int64"));
    }

    #[test]
    fn histograms_refuse_what_they_cannot_place() {
        let empty = Tensor::zeros([0], (Kind::Float, Device::Cpu));
        assert!(histogram_message("e", &empty).is_err());
        let nan = Tensor::from_slice(&[1.0f32, f32::NAN]);
        assert!(histogram_message("n", &nan).unwrap_err().to_string().contains("NaN"));
        assert!(histogram_message("one", &Tensor::from_slice(&[2.0f32, 2.0])).is_ok());
    }
}
