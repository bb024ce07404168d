//! Decoding images to 8-bit RGB the way the reference pipelines see them.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::VisionError;

/// What happens to transparency when an image is made RGB (spec §1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlphaMode {
    /// transformers' `convert_to_rgb` on an in-memory RGBA image: composite onto white.
    CompositeOnWhite,
    /// `Image.convert("RGB")`: drop the alpha channel. Both transformers' `load_image` and
    /// original LLaVA/ms-swift do this when an image comes from a file or URL.
    Drop,
}

/// How images are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Transparency handling.
    pub alpha: AlphaMode,
    /// Rotate/flip by the EXIF orientation tag, as transformers' `load_image` does.
    pub exif_orientation: bool,
    /// Largest accepted side, checked on the header before any pixel is allocated.
    pub max_side: u32,
    /// Largest accepted pixel count (Pillow's decompression-bomb limit is 178 956 970).
    pub max_pixels: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            alpha: AlphaMode::Drop,
            exif_orientation: true,
            max_side: 16_384,
            max_pixels: 178_956_970,
        }
    }
}

/// A decoded RGB image, 3 bytes per pixel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// `width × height × 3` bytes.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// An image from packed RGB bytes; `None` if the length does not match.
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Option<Self> {
        (pixels.len() == width as usize * height as usize * 3).then_some(Self {
            width,
            height,
            pixels,
        })
    }
}

/// Reads and decodes an image file.
pub fn open_image(path: &Path, options: &DecodeOptions) -> Result<RgbImage, VisionError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| VisionError::Io {
        name: name.clone(),
        source,
    })?;
    decode_image(&bytes, &name, options)
}

/// Decodes image bytes (any format the `image` crate reads); `name` is used in errors.
pub fn decode_image(
    bytes: &[u8],
    name: &str,
    options: &DecodeOptions,
) -> Result<RgbImage, VisionError> {
    let decode_error = |e: image::ImageError| VisionError::Decode {
        name: name.to_string(),
        message: e.to_string(),
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| VisionError::Io {
            name: name.to_string(),
            source,
        })?;
    let is_jpeg = reader.format() == Some(ImageFormat::Jpeg);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(VisionError::Empty {
            name: name.to_string(),
            width,
            height,
        });
    }
    if width > options.max_side
        || height > options.max_side
        || width as u64 * height as u64 > options.max_pixels
    {
        return Err(VisionError::TooLarge {
            name: name.to_string(),
            width,
            height,
            max_side: options.max_side,
            max_pixels: options.max_pixels,
        });
    }
    // A second guard inside the decoder, for formats whose frames differ from the header.
    let mut limits = Limits::default();
    limits.max_image_width = Some(options.max_side);
    limits.max_image_height = Some(options.max_side);
    limits.max_alloc = Some(options.max_pixels * 16);
    decoder.set_limits(limits).map_err(decode_error)?;
    let orientation = if options.exif_orientation {
        decoder.orientation().ok()
    } else {
        None
    };
    let mut image = if is_jpeg {
        // Header, limits and EXIF came from the image crate; pixels from libjpeg-turbo.
        drop(decoder);
        let (w, h, rgb) =
            crate::jpeg::decode_rgb(bytes).map_err(|message| VisionError::Decode {
                name: name.to_string(),
                message,
            })?;
        let buffer = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| VisionError::Decode {
            name: name.to_string(),
            message: "JPEG decoder returned fewer pixels than its header announced".into(),
        })?;
        DynamicImage::ImageRgb8(buffer)
    } else {
        DynamicImage::from_decoder(decoder).map_err(decode_error)?
    };
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(to_rgb(image, options.alpha))
}

/// 16-bit images in 8 bits as Pillow opens them, so that `convert("RGB")` (transformers'
/// `load_image`) and we see the same bytes: 16-bit grey is Pillow's `I;16`, whose conversion
/// clips at 255; 16-bit grey + alpha, RGB and RGBA keep the high byte of each sample (its PNG
/// raw modes `LA;16B`, `RGB;16B`, `RGBA;16B`). The image crate would scale by 255/65535 instead.
fn pillow_8bit(image: DynamicImage) -> DynamicImage {
    fn high(v: u16) -> u8 {
        (v >> 8) as u8
    }
    match image {
        DynamicImage::ImageLuma16(b) => DynamicImage::ImageLuma8(image::ImageBuffer::from_fn(
            b.width(),
            b.height(),
            |x, y| image::Luma([b.get_pixel(x, y).0[0].min(255) as u8]),
        )),
        DynamicImage::ImageLumaA16(b) => DynamicImage::ImageLumaA8(image::ImageBuffer::from_fn(
            b.width(),
            b.height(),
            |x, y| image::LumaA(b.get_pixel(x, y).0.map(high)),
        )),
        DynamicImage::ImageRgb16(b) => DynamicImage::ImageRgb8(image::ImageBuffer::from_fn(
            b.width(),
            b.height(),
            |x, y| image::Rgb(b.get_pixel(x, y).0.map(high)),
        )),
        DynamicImage::ImageRgba16(b) => DynamicImage::ImageRgba8(image::ImageBuffer::from_fn(
            b.width(),
            b.height(),
            |x, y| image::Rgba(b.get_pixel(x, y).0.map(high)),
        )),
        other => other,
    }
}

/// RGB bytes of a decoded image.
fn to_rgb(image: DynamicImage, alpha: AlphaMode) -> RgbImage {
    let image = pillow_8bit(image);
    let (width, height) = (image.width(), image.height());
    let pixels = if image.color().has_alpha() && alpha == AlphaMode::CompositeOnWhite {
        let rgba = image.into_rgba8();
        rgba.pixels()
            .flat_map(|p| {
                let a = p.0[3] as u32;
                [0, 1, 2].map(|c| composite_on_white(p.0[c] as u32, a))
            })
            .collect()
    } else {
        image.into_rgb8().into_raw()
    };
    RgbImage {
        width,
        height,
        pixels,
    }
}

/// Pillow's `alpha_composite` of a pixel over opaque white (`AlphaComposite.c`): with an opaque
/// destination the output alpha is 255 and the colour is `(src·a + 255·(255 − a)) / 255`,
/// rounded as Pillow's fixed-point division does.
fn composite_on_white(src: u32, alpha: u32) -> u8 {
    const PRECISION: u32 = 7;
    let out_a255 = alpha * 255 + 255 * (255 - alpha); // = 255 · 255
    let coef1 = alpha * 255 * 255 * (1 << PRECISION) / out_a255;
    let coef2 = 255 * (1 << PRECISION) - coef1;
    let tmp = src * coef1 + 255 * coef2 + (0x80 << PRECISION);
    // SHIFTFORDIV255(a) = ((a >> 8) + a) >> 8
    ((((tmp >> 8) + tmp) >> 8) >> PRECISION) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compositing_onto_white_keeps_opaque_and_whitens_transparent() {
        assert_eq!(composite_on_white(17, 255), 17);
        assert_eq!(composite_on_white(17, 0), 255);
        let half = composite_on_white(0, 128);
        assert!((126..=128).contains(&half), "{half}");
    }

    #[test]
    fn corrupt_and_empty_inputs_are_errors_naming_the_image() {
        let opts = DecodeOptions::default();
        let err = decode_image(b"definitely not an image", "notes.txt", &opts).unwrap_err();
        assert!(err.to_string().contains("notes.txt"), "{err}");
        let err = decode_image(&[], "empty.png", &opts).unwrap_err();
        assert!(err.to_string().contains("empty.png"), "{err}");
    }
}
