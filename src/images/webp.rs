//! Decoding WebP bytes (the `image-webp` crate) to 8-bit RGB: lossy (VP8) and lossless (VP8L)
//! files, with or without alpha (dropped, as for PNG); an animated file gives its first frame.

use std::io::Cursor;

use image_webp::WebPDecoder;

use super::{ImageErrorKind, ImageFormat};

/// Whether `bytes` start like a WebP file: a RIFF container of form `WEBP`.
pub(super) fn is_webp(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP"
}

/// Decodes WebP bytes to `(width, height, RGB bytes)`; a truncated or corrupt file is an error.
pub(super) fn decode_rgb(bytes: &[u8], max_side: usize) -> Result<(usize, usize, Vec<u8>), ImageErrorKind> {
    let corrupt = |reason: String| ImageErrorKind::Corrupt { format: ImageFormat::WebP, reason };
    let mut decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(|e| corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    let (width, height) = (width as usize, height as usize);
    if width > max_side || height > max_side {
        return Err(ImageErrorKind::TooManyPixels { width, height, max: max_side });
    }
    let len = decoder.output_buffer_size().ok_or_else(|| corrupt("its size overflows memory".into()))?;
    let mut data = vec![0u8; len];
    decoder.read_image(&mut data).map_err(|e| corrupt(e.to_string()))?;
    let rgb = if decoder.has_alpha() { super::decode::drop_alpha(data) } else { data };
    Ok((width, height, rgb))
}
