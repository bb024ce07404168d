/// Errors of image decoding and preprocessing. Each names the image it is about.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The file could not be read.
    #[error("cannot read image {name}: {source}")]
    Io {
        /// The image (path or caller-given name).
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a decodable image (corrupt, truncated, unknown format).
    #[error("cannot decode image {name}: {message}")]
    Decode {
        /// The image.
        name: String,
        /// The decoder's message.
        message: String,
    },
    /// The image has no pixels.
    #[error("image {name} is empty ({width}×{height})")]
    Empty {
        /// The image.
        name: String,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// The header announces an image larger than the configured limit; nothing was allocated.
    #[error(
        "image {name} is {width}×{height}, beyond the limit of {max_side} pixels a side / \
         {max_pixels} pixels"
    )]
    TooLarge {
        /// The image.
        name: String,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// Limit on either side.
        max_side: u32,
        /// Limit on width × height.
        max_pixels: u64,
    },
    /// An image given by URL could not be fetched.
    #[error("cannot fetch image {url}: {message}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// An image built by hand whose buffer does not hold its pixels.
    #[error(
        "image of {width}×{height} with {bytes} bytes (expected a non-empty image of {} RGB bytes)",
        *width as usize * *height as usize * 3
    )]
    BadPixels {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// The buffer's length.
        bytes: usize,
    },
}
