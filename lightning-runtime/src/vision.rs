//! Image helpers for logging samples: [`make_grid`], torchvision's `make_grid`, which lays a batch of images out
//! as one image for [`TensorBoardLogger::add_image`](crate::loggers::TensorBoardLogger::add_image).

use tch::{Kind, Tensor};

use crate::{Error, Result};

/// How [`make_grid`] lays images out: torchvision's `make_grid` arguments, with its defaults.
///
/// ```
/// use lightning::vision::GridOptions;
/// let options = GridOptions::default().nrow(4).padding(1).normalize(true);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridOptions {
    nrow: usize,
    padding: usize,
    normalize: bool,
    value_range: Option<(f64, f64)>,
    scale_each: bool,
    pad_value: f64,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions { nrow: 8, padding: 2, normalize: false, value_range: None, scale_each: false, pad_value: 0.0 }
    }
}

impl GridOptions {
    /// Images per row (default 8; 0 counts as 1).
    pub fn nrow(mut self, nrow: usize) -> Self {
        self.nrow = nrow.max(1);
        self
    }

    /// Pixels around and between the images (default 2).
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// Shift and scale the values to `[0, 1]`: by the batch's minimum and maximum, or by
    /// [`value_range`](Self::value_range) when given (default false).
    pub fn normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// The `(low, high)` that [`normalize`](Self::normalize) maps to `[0, 1]`, values outside clipped (default:
    /// the data's own minimum and maximum).
    pub fn value_range(mut self, low: f64, high: f64) -> Self {
        self.value_range = Some((low, high));
        self
    }

    /// Normalize each image by its own minimum and maximum rather than the batch's (default false).
    pub fn scale_each(mut self, scale_each: bool) -> Self {
        self.scale_each = scale_each;
        self
    }

    /// The value of the padding pixels (default 0, black).
    pub fn pad_value(mut self, pad_value: f64) -> Self {
        self.pad_value = pad_value;
        self
    }
}

/// Lays a batch of images (batch, channels, height, width) out as one image (channels, height, width):
/// `nrow` to a row, `padding` pixels around each, as torchvision's `make_grid` does. One-channel images become
/// three-channel (gray as RGB) as there; a single image (3-D) or a single gray image (2-D) comes back alone,
/// normalized if asked. The grid stays on the images' device, in their dtype.
///
/// ```
/// use lightning::vision::{make_grid, GridOptions};
/// use tch::{Device, Kind, Tensor};
///
/// # fn main() -> lightning::Result<()> {
/// let samples = Tensor::rand([10, 1, 28, 28], (Kind::Float, Device::Cpu));
/// let grid = make_grid(&samples, GridOptions::default().nrow(5))?;
/// // 5 to a row, 2 rows: 2 + 5 * (28 + 2) pixels wide, 2 + 2 * (28 + 2) high.
/// assert_eq!(grid.size(), [3, 62, 152]);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`Error::Config`] for a tensor that is not 2-, 3- or 4-dimensional, or an empty batch.
pub fn make_grid(images: &Tensor, options: GridOptions) -> Result<Tensor> {
    let size = images.size();
    let mut batch = match size.len() {
        2 => images.f_unsqueeze(0)?.f_unsqueeze(0)?,
        3 => images.f_unsqueeze(0)?,
        4 => images.shallow_clone(),
        _ => {
            return Err(Error::Config(format!(
                "make_grid: a tensor of shape {size:?} is not a batch of images (batch, channels, height, width)"
            )))
        }
    };
    if batch.size()[0] == 0 {
        return Err(Error::Config("make_grid: the batch has no images".into()));
    }
    if batch.size()[1] == 1 {
        batch = Tensor::f_cat(&[&batch, &batch, &batch], 1)?;
    }
    if options.normalize {
        batch = normalized(&batch, options)?;
    }
    let [count, channels, height, width] = batch.size()[..] else { unreachable!("made 4-D above") };
    if count == 1 {
        return Ok(batch.f_squeeze_dim(0)?);
    }
    let padding = options.padding as i64;
    let columns = (options.nrow as i64).min(count);
    let rows = (count + columns - 1) / columns;
    let (cell_height, cell_width) = (height + padding, width + padding);
    let grid = batch.f_new_full(
        [channels, cell_height * rows + padding, cell_width * columns + padding],
        options.pad_value,
        (batch.kind(), batch.device()),
    )?;
    for k in 0..count {
        let (row, column) = (k / columns, k % columns);
        let mut cell =
            grid.f_narrow(1, row * cell_height + padding, height)?.f_narrow(2, column * cell_width + padding, width)?;
        cell.f_copy_(&batch.get(k))?;
    }
    Ok(grid)
}

/// torchvision's `norm_range`: clip to the range, then map it to `[0, 1]` (a range narrower than 1e-5 is
/// taken as 1e-5 wide, so that a constant image does not divide by zero).
fn normalized(batch: &Tensor, options: GridOptions) -> Result<Tensor> {
    let one = |images: &Tensor| -> Result<Tensor> {
        let (low, high) = match options.value_range {
            Some(range) => range,
            None => (f64::try_from(images.f_min()?)?, f64::try_from(images.f_max()?)?),
        };
        let clipped = images.f_clamp(low, high)?;
        Ok(clipped.f_sub_scalar(low)?.f_div_scalar((high - low).max(1e-5))?)
    };
    let batch = if batch.is_floating_point() { batch.shallow_clone() } else { batch.f_to_kind(Kind::Float)? };
    if options.scale_each {
        let parts: Vec<Tensor> = (0..batch.size()[0]).map(|k| one(&batch.get(k))).collect::<Result<_>>()?;
        Ok(Tensor::f_stack(&parts, 0)?)
    } else {
        one(&batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn images_go_left_to_right_then_down_with_padding_between() {
        // Three 1x2x2 images of values 1, 2, 3, two to a row, padding 1 of value 9.
        let images = Tensor::cat(
            &[
                Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu)) * 1.0,
                Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu)) * 2.0,
                Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu)) * 3.0,
            ],
            0,
        );
        let grid = make_grid(&images, GridOptions::default().nrow(2).padding(1).pad_value(9.0)).unwrap();
        assert_eq!(grid.size(), [3, 7, 7]);
        let channel = Vec::<Vec<f32>>::try_from(grid.get(0)).unwrap();
        #[rustfmt::skip]
        let expected: Vec<Vec<f32>> = vec![
            vec![9., 9., 9., 9., 9., 9., 9.],
            vec![9., 1., 1., 9., 2., 2., 9.],
            vec![9., 1., 1., 9., 2., 2., 9.],
            vec![9., 9., 9., 9., 9., 9., 9.],
            vec![9., 3., 3., 9., 9., 9., 9.],
            vec![9., 3., 3., 9., 9., 9., 9.],
            vec![9., 9., 9., 9., 9., 9., 9.],
        ];
        assert_eq!(channel, expected);
        // Gray became RGB: the three channels are equal.
        assert!(grid.get(0).equal(&grid.get(2)));
    }

    #[test]
    fn normalize_maps_the_range_to_0_1() {
        let images = Tensor::from_slice(&[-1.0f32, 0.0, 1.0, 3.0]).reshape([2, 1, 1, 2]);
        let grid = make_grid(&images, GridOptions::default().padding(0).normalize(true)).unwrap();
        assert_eq!(Vec::<f32>::try_from(grid.get(0).flatten(0, -1)).unwrap(), [0.0, 0.25, 0.5, 1.0]);
        let each = make_grid(&images, GridOptions::default().padding(0).normalize(true).scale_each(true)).unwrap();
        assert_eq!(Vec::<f32>::try_from(each.get(0).flatten(0, -1)).unwrap(), [0.0, 1.0, 0.0, 1.0]);
        let ranged = make_grid(&images, GridOptions::default().padding(0).normalize(true).value_range(0.0, 2.0));
        assert_eq!(Vec::<f32>::try_from(ranged.unwrap().get(0).flatten(0, -1)).unwrap(), [0.0, 0.0, 0.5, 1.0]);
    }

    #[test]
    fn a_single_image_comes_back_alone_and_bad_shapes_are_errors() {
        let image = Tensor::zeros([3, 4, 5], (Kind::Float, Device::Cpu));
        assert_eq!(make_grid(&image, GridOptions::default()).unwrap().size(), [3, 4, 5]);
        let five_d = Tensor::zeros([1, 1, 1, 1, 1], (Kind::Float, Device::Cpu));
        assert!(make_grid(&five_d, GridOptions::default()).unwrap_err().to_string().contains("make_grid"));
        let empty = Tensor::zeros([0, 3, 4, 4], (Kind::Float, Device::Cpu));
        assert!(make_grid(&empty, GridOptions::default()).is_err());
    }
}
