//! [`Processor`]: one checkpoint's image preprocessing, with no model attached, so a data loader
//! can turn images into pixel values on its own threads.

use crate::VisionError;
use crate::anyres::{ImageLayout, Size};
use crate::image_io::{DecodeOptions, RgbImage};
use crate::preprocess::{ProcessedImage, ProcessorConfig, preprocess, preprocess_single_patch};

/// The images of one prompt → pixel values and layouts, as the checkpoint's processor makes
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct Processor {
    config: ProcessorConfig,
    single_patch_for_several: bool,
}

impl Processor {
    /// `config`'s geometry and normalisation. `single_patch_for_several`: a prompt of several
    /// images gives each one padded square tile (transformers' OneVision processor, spec
    /// §1.12) instead of its anyres tiles.
    pub fn new(config: ProcessorConfig, single_patch_for_several: bool) -> Self {
        Self {
            config,
            single_patch_for_several,
        }
    }

    /// The geometry and normalisation.
    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// How images are decoded for this checkpoint (EXIF orientation in transformers'
    /// convention).
    pub fn decode_options(&self) -> DecodeOptions {
        self.config.decode_options()
    }

    /// The layouts (and so the token counts) [`Self::process`] gives images of these sizes, in
    /// one prompt, without touching pixels: what a data loader needs to measure a row.
    pub fn layouts(&self, sizes: &[Size]) -> Vec<ImageLayout> {
        let single = sizes.len() > 1 && self.single_patch_for_several;
        sizes
            .iter()
            .map(|&size| {
                if single {
                    ImageLayout::single(size, &self.config.anyres)
                } else {
                    ImageLayout::new(size, &self.config.anyres)
                }
            })
            .collect()
    }

    /// Preprocesses the images of one prompt, each checked first (non-empty, a buffer of
    /// `width·height·3` bytes).
    pub fn process(&self, images: &[RgbImage]) -> Result<Vec<ProcessedImage>, VisionError> {
        images.iter().try_for_each(check_image)?;
        let single = images.len() > 1 && self.single_patch_for_several;
        Ok(images
            .iter()
            .map(|image| {
                if single {
                    preprocess_single_patch(image, &self.config)
                } else {
                    preprocess(image, &self.config)
                }
            })
            .collect())
    }
}

/// An image built by hand must have pixels and a buffer of the right length.
fn check_image(image: &RgbImage) -> Result<(), VisionError> {
    let expected = image.width as usize * image.height as usize * 3;
    if image.width == 0 || image.height == 0 || image.pixels.len() != expected {
        return Err(VisionError::BadPixels {
            width: image.width,
            height: image.height,
            bytes: image.pixels.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anyres::Convention;

    fn image(width: u32, height: u32) -> RgbImage {
        RgbImage {
            width,
            height,
            pixels: (0..width * height * 3).map(|i| (i % 251) as u8).collect(),
        }
    }

    #[test]
    fn several_images_take_one_tile_each_only_where_the_checkpoint_says() {
        let config = ProcessorConfig::llava_next(Convention::Transformers);
        let images = [image(300, 200), image(90, 400)];
        let tiled = Processor::new(config.clone(), false)
            .process(&images)
            .unwrap();
        let single = Processor::new(config.clone(), true)
            .process(&images)
            .unwrap();
        assert_eq!(single.len(), 2);
        for (t, s) in tiled.iter().zip(&single) {
            assert!(t.pixel_values.len() > s.pixel_values.len());
        }
        // One image: anyres either way.
        let one = Processor::new(config.clone(), true)
            .process(&images[..1])
            .unwrap();
        assert_eq!(one[0].pixel_values, tiled[0].pixel_values);
        // The layouts alone agree with what processing gives.
        let sizes = images.map(|i| Size::new(i.width, i.height));
        for (single_patch, processed) in [(false, &tiled), (true, &single)] {
            let layouts = Processor::new(config.clone(), single_patch).layouts(&sizes);
            let expected: Vec<_> = processed.iter().map(|p| p.layout).collect();
            assert_eq!(layouts, expected);
        }
    }

    #[test]
    fn a_buffer_of_the_wrong_length_is_an_error_naming_the_sizes() {
        let mut bad = image(4, 4);
        bad.pixels.pop();
        let processor =
            Processor::new(ProcessorConfig::llava_next(Convention::Transformers), false);
        let e = processor.process(&[bad]).unwrap_err().to_string();
        assert!(
            e.contains("4×4 with 47 bytes") && e.contains("48 RGB bytes"),
            "{e}"
        );
    }
}
