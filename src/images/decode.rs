//! Reading a sample's bytes (io_uring) and decoding them to RGB: JPEG with zune-jpeg, PNG with
//! the `png` crate (`png.rs`), WebP with `image-webp` (`webp.rs`), GIF with `gif` (`gif.rs`), BMP
//! with zune-bmp (`bmp.rs`), TIFF with `tiff` (`tiff.rs`).

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::{CHANNELS, Image, ImageError, ImageErrorKind, ImageFormat, Sample};

/// A sample's file contents, read and not yet decoded.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Where they came from.
    pub sample: Sample,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// How long a read waits for a free descriptor when the process has none (see
/// [`crate::io::read_limited`]).
const OPEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads `sample`'s file through the shard's io_uring (so it must run on a shard: a pipeline's
/// `pipe_async` stage). A file over `max_bytes`, an empty file and an unreadable one are errors
/// that name the file.
pub async fn read(sample: Sample, max_bytes: u64) -> Result<Encoded, ImageError> {
    use crate::io::ReadLimitedError;
    let fail = |kind: ImageErrorKind| ImageError::new(&sample.path, kind);
    let bytes = crate::io::read_limited(&*sample.path, max_bytes, OPEN_PATIENCE).await.map_err(|e| match e {
        ReadLimitedError::Io(e) => fail(e.into()),
        ReadLimitedError::TooLarge { size, limit } => fail(ImageErrorKind::TooLarge { size, limit }),
    })?;
    if bytes.is_empty() {
        return Err(fail(ImageErrorKind::Empty));
    }
    Ok(Encoded { sample, bytes })
}

/// Sides longer than this are refused before any pixel memory is taken (zune's own default).
const MAX_SIDE: usize = 1 << 14;

/// Decodes JPEG, PNG, WebP, GIF, BMP or TIFF bytes (told apart by their first bytes, not the file name) to RGB:
/// grayscale, CMYK, palette and alpha files are converted (see [`ImageFormat`] for how). Strict:
/// a truncated or corrupt file is an error, not an image padded with grey.
pub fn decode(encoded: Encoded) -> Result<Image<u8>, ImageError> {
    let Encoded { sample, bytes } = encoded;
    let decoded = match ImageFormat::sniff(&bytes) {
        Some(ImageFormat::Jpeg) => decode_jpeg(&bytes),
        Some(ImageFormat::Png) => super::png::decode_rgb(&bytes, MAX_SIDE),
        Some(ImageFormat::WebP) => super::webp::decode_rgb(&bytes, MAX_SIDE),
        Some(ImageFormat::Gif) => super::gif::decode_rgb(&bytes, MAX_SIDE),
        Some(ImageFormat::Bmp) => super::bmp::decode_rgb(&bytes, MAX_SIDE),
        Some(ImageFormat::Tiff) => super::tiff::decode_rgb(&bytes, MAX_SIDE),
        None if bytes.is_empty() => Err(ImageErrorKind::Empty),
        None => Err(ImageErrorKind::UnknownFormat(describe_magic(&bytes))),
    };
    let (width, height, data) = decoded.map_err(|kind| ImageError::new(&sample.path, kind))?;
    Ok(Image { sample, width: width as u32, height: height as u32, data })
}

impl ImageFormat {
    /// The format `bytes` start like, if one [`decode`] reads.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xff, 0xd8]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(&super::png::SIGNATURE) {
            Some(Self::Png)
        } else if super::webp::is_webp(bytes) {
            Some(Self::WebP)
        } else if super::gif::is_gif(bytes) {
            Some(Self::Gif)
        } else if super::bmp::is_bmp(bytes) {
            Some(Self::Bmp)
        } else if super::tiff::is_tiff(bytes) {
            Some(Self::Tiff)
        } else {
            None
        }
    }
}

/// Decodes JPEG bytes to `(width, height, RGB bytes)` with zune-jpeg.
fn decode_jpeg(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), ImageErrorKind> {
    let corrupt = |reason: String| ImageErrorKind::Corrupt { format: ImageFormat::Jpeg, reason };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(true)
        .set_max_width(MAX_SIDE)
        .set_max_height(MAX_SIDE);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| corrupt(e.to_string()))?;
    let info = decoder.info().ok_or_else(|| corrupt("no frame header".into()))?;
    let (width, height) = (usize::from(info.width), usize::from(info.height));
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImageErrorKind::TooManyPixels { width, height, max: MAX_SIDE });
    }
    let len = width * height * CHANNELS;
    if decoder.output_buffer_size() != Some(len) {
        return Err(corrupt(format!("decodes to {:?} bytes, not {len} RGB bytes", decoder.output_buffer_size())));
    }
    let mut data = vec![0u8; len];
    decoder.decode_into(&mut data).map_err(|e| corrupt(e.to_string()))?;
    Ok((width, height, data))
}

/// Gray to RGB: the first of every `stride` samples (gray, or gray and alpha), three times.
pub(super) fn gray_to_rgb(samples: &[u8], stride: usize) -> Vec<u8> {
    samples.chunks_exact(stride).flat_map(|s| [s[0]; CHANNELS]).collect()
}

/// RGBA bytes to RGB, in place: pixel i's RGB moves from 4i to 3i, never past what is read next.
pub(super) fn drop_alpha(mut rgba: Vec<u8>) -> Vec<u8> {
    let pixels = rgba.len() / 4;
    for i in 0..pixels {
        rgba.copy_within(4 * i..4 * i + CHANNELS, CHANNELS * i);
    }
    rgba.truncate(pixels * CHANNELS);
    rgba
}

/// What a file in none of these formats starts with: its first bytes, and the format they
/// suggest.
fn describe_magic(bytes: &[u8]) -> String {
    let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let guess = match bytes {
        [0x89, b'P', b'N', b'G', ..] => " (a PNG signature, cut short)",
        [b'G', b'I', b'F', b'8', ..] => " (a GIF signature, cut short)",
        [b'R', b'I', b'F', b'F', ..] => " (a RIFF file, not WebP: audio or video?)",
        [_, _, _, _, b'f', b't', b'y', b'p', b'a', b'v', b'i', ..] => " (an AVIF file: convert it to PNG or JPEG)",
        [_, _, _, _, b'f', b't', b'y', b'p', b'h', b'e', b'i' | b'v', ..] => " (a HEIF file: convert it to JPEG)",
        [b'B', b'M', ..] => " (like BMP, but no BMP header follows)",
        b if b.iter().take(64).all(|c| c.is_ascii_graphic() || c.is_ascii_whitespace()) => " (text)",
        _ => "",
    };
    format!("bytes {}{guess}", head.join(" "))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::images::synth;

    fn encoded(bytes: Vec<u8>) -> Encoded {
        Encoded { sample: Sample { index: 0, epoch: 0, path: Arc::from(Path::new("x.jpg")), label: None }, bytes }
    }

    #[test]
    fn a_generated_image_decodes_to_its_size_and_close_to_its_pixels() {
        let (w, h, pixels) = synth::pixels(3);
        let jpeg = synth::encode(w, h, &pixels, 95).unwrap();
        let img = decode(encoded(jpeg)).unwrap();
        assert_eq!((img.width, img.height, img.data.len()), (w, h, pixels.len()));
        let err: u64 = img.data.iter().zip(&pixels).map(|(&a, &b)| u64::from(a.abs_diff(b))).sum();
        let mean = err as f64 / pixels.len() as f64;
        assert!(mean < 8.0, "lossy, but close: mean abs error {mean}");
    }

    #[test]
    fn bad_bytes_are_errors_that_say_what_they_are() {
        let (w, h, pixels) = synth::pixels(4);
        let jpeg = synth::encode(w, h, &pixels, 90).unwrap();
        let reason = |b: Vec<u8>| decode(encoded(b)).unwrap_err().to_string();
        assert!(reason(Vec::new()).contains("empty"));
        assert!(reason(b"\x89PNG\r\n".to_vec()).contains("PNG"));
        assert!(reason(b"hello world".to_vec()).contains("(text)"));
        assert!(reason(b"\0\0\0\x1cftypavif".to_vec()).contains("an AVIF file: convert it"));
        assert!(reason(b"\0\0\0\x18ftypheic".to_vec()).contains("a HEIF file: convert it"));
        assert!(reason(b"GIF8".to_vec()).contains("a GIF signature, cut short"));
        assert!(reason(b"BM not a bitmap".to_vec()).contains("like BMP, but no BMP header"));
        let truncated = reason(jpeg[..jpeg.len() / 2].to_vec());
        assert!(truncated.starts_with("x.jpg: corrupt or truncated JPEG"), "{truncated}");
        let mut garbled = jpeg.clone();
        garbled[2..200].fill(0x5a);
        assert!(reason(garbled).contains("corrupt or truncated JPEG"));
    }
}
