//! GIF (the `gif` crate) to 8-bit RGB, and GIF files for generated sets.
//!
//! A GIF is a palette image on a "logical screen"; its first frame may cover only part of the
//! screen. Decoding follows Pillow's `Image.open(f).convert("RGB")`, so a model sees the pixels
//! it would under SPDL or torchvision:
//! - the first frame only (an animation's later frames are ignored);
//! - the canvas is the screen, grown to hold the frame where the frame reaches past it;
//! - pixels outside the frame take palette entry 0, or the transparent entry when the frame
//!   has one; transparent pixels keep their entry's colour (alpha is dropped, as for PNG);
//! - colours come from the frame's own palette, else the global one; an index past the
//!   palette's end is black.

use std::io::Cursor;

use gif::{ColorOutput, DecodeOptions, MemoryLimit};

use super::{CHANNELS, ImageErrorKind, ImageFormat};

/// Whether `bytes` start like a GIF file (`GIF87a` or `GIF89a`).
pub(super) fn is_gif(bytes: &[u8]) -> bool {
    bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")
}

/// Decodes GIF bytes to `(width, height, RGB bytes)`: the first frame on its screen. A
/// truncated or corrupt file (up to the next frame's header), or one with no frame, is an error.
pub(super) fn decode_rgb(bytes: &[u8], max_side: usize) -> Result<(usize, usize, Vec<u8>), ImageErrorKind> {
    let corrupt = |reason: String| ImageErrorKind::Corrupt { format: ImageFormat::Gif, reason };
    let too_large = |width: usize, height: usize| ImageErrorKind::TooManyPixels { width, height, max: max_side };
    let mut options = DecodeOptions::new();
    options.set_color_output(ColorOutput::Indexed);
    // The side limit below bounds the memory; the crate's own 50 MB default would refuse
    // images that every other format accepts.
    options.set_memory_limit(MemoryLimit::Unlimited);
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(|e| corrupt(e.to_string()))?;
    let (screen_w, screen_h) = (usize::from(decoder.width()), usize::from(decoder.height()));
    if screen_w > max_side || screen_h > max_side {
        return Err(too_large(screen_w, screen_h));
    }
    let global = decoder.global_palette().map(<[u8]>::to_vec);
    let frame = decoder.next_frame_info().map_err(|e| corrupt(e.to_string()))?;
    let frame = frame.ok_or_else(|| corrupt("it holds no image".into()))?;
    let (left, top) = (usize::from(frame.left), usize::from(frame.top));
    let (fw, fh) = (usize::from(frame.width), usize::from(frame.height));
    let transparent = frame.transparent;
    let palette = frame.palette.clone().or(global).ok_or_else(|| corrupt("no colour table".into()))?;
    let (width, height) = (screen_w.max(left + fw), screen_h.max(top + fh));
    if width > max_side || height > max_side {
        return Err(too_large(width, height));
    }
    let mut indices = vec![0u8; fw * fh];
    decoder.read_into_buffer(&mut indices).map_err(|e| corrupt(e.to_string()))?;
    // The pixels can all be there while the frame's last bytes are cut off (its end code, the
    // block terminator): read on to the next frame's header or the trailer, so a cut file is an
    // error, as Pillow makes it one.
    decoder.next_frame_info().map_err(|e| corrupt(format!("after the first frame: {e}")))?;

    let mut canvas = vec![transparent.unwrap_or(0); width * height];
    if fw > 0 {
        for (row, src) in indices.chunks_exact(fw).enumerate() {
            let at = (top + row) * width + left;
            canvas[at..at + fw].copy_from_slice(src);
        }
    }
    // Every index gets a colour, black past the palette's end: one table lookup per pixel.
    let mut colours = [[0u8; CHANNELS]; 256];
    for (colour, entry) in colours.iter_mut().zip(palette.chunks_exact(CHANNELS)) {
        colour.copy_from_slice(entry);
    }
    let mut rgb = vec![0u8; width * height * CHANNELS];
    for (px, &i) in rgb.chunks_exact_mut(CHANNELS).zip(&canvas) {
        px.copy_from_slice(&colours[usize::from(i)]);
    }
    Ok((width, height, rgb))
}

/// Encodes 8-bit RGB pixels as a one-frame GIF: the `gif` crate reduces them to a 256-colour
/// palette (NeuQuant), so the file is close to the pixels, not equal to them.
pub(super) fn encode(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    let too_large = || format!("{width}×{height} is larger than GIF's 65535×65535");
    let (w, h) = (u16::try_from(width).map_err(|_| too_large())?, u16::try_from(height).map_err(|_| too_large())?);
    // Speed 10 of 1..=30: the crate's recommended balance of palette quality and time.
    let frame = gif::Frame::from_rgb_speed(w, h, rgb, 10);
    let mut out = Vec::new();
    let mut encoder = gif::Encoder::new(&mut out, w, h, &[]).map_err(|e| e.to_string())?;
    encoder.write_frame(&frame).map_err(|e| e.to_string())?;
    drop(encoder);
    Ok(out)
}

/// A GIF with the given screen, palette and first frames, for tests of the canvas rules.
#[cfg(test)]
pub(super) fn encode_frames(screen: (u16, u16), palette: &[u8], frames: &[gif::Frame<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = gif::Encoder::new(&mut out, screen.0, screen.1, palette).unwrap();
    for f in frames {
        encoder.write_frame(f).unwrap();
    }
    drop(encoder);
    out
}

/// A frame at `(left, top)` of `width × height` palette indices.
#[cfg(test)]
pub(super) fn frame(left: u16, top: u16, width: u16, indices: Vec<u8>) -> gif::Frame<'static> {
    let height = u16::try_from(indices.len() / usize::from(width)).unwrap();
    gif::Frame { left, top, width, height, buffer: std::borrow::Cow::Owned(indices), ..gif::Frame::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PALETTE: [u8; 12] = [10, 20, 30, 200, 100, 50, 0, 255, 0, 70, 80, 90];

    fn colour(i: u8) -> [u8; 3] {
        colour_in(&PALETTE, i)
    }

    /// Pillow 13's `convert("RGB")` of these files gave the pixels the comments name.
    #[test]
    fn a_first_frame_smaller_than_its_screen_is_drawn_as_pillow_draws_it() {
        let indices = vec![0, 1, 2, 3, 3, 2, 1, 0, 2, 2, 1, 1];
        for transparent in [None, Some(1)] {
            let mut f = frame(2, 1, 4, indices.clone());
            f.transparent = transparent;
            let later = frame(0, 0, 8, vec![3; 48]);
            let bytes = encode_frames((8, 6), &PALETTE, &[f, later]);
            let (w, h, rgb) = decode_rgb(&bytes, 1 << 14).unwrap();
            assert_eq!((w, h), (8, 6));
            // Outside the frame: entry 0, or the transparent entry.
            let fill = colour(transparent.unwrap_or(0));
            assert_eq!(&rgb[..3], &fill);
            assert_eq!(&rgb[(5 * 8 + 7) * 3..], &fill);
            // Inside: every index's own colour, the transparent one included.
            for (k, &i) in indices.iter().enumerate() {
                let (x, y) = (2 + k % 4, 1 + k / 4);
                assert_eq!(&rgb[(y * 8 + x) * 3..][..3], &colour(i), "pixel ({x}, {y})");
            }
        }
    }

    #[test]
    fn a_frame_past_its_screen_grows_the_canvas_and_bad_files_are_errors() {
        let bytes = encode_frames((3, 2), &PALETTE, &[frame(2, 1, 2, vec![2, 2, 3, 3])]);
        let (w, h, rgb) = decode_rgb(&bytes, 1 << 14).unwrap();
        assert_eq!((w, h), (4, 3));
        assert_eq!(&rgb[(2 * 4 + 3) * 3..], &colour(3));

        // A screen, a 4-colour global palette and the trailer: no frame. (The crate reads the
        // trailer only with a byte after it; without one it reports an early end of file.)
        let mut none = b"GIF89a\x03\x00\x02\x00\x81\x00\x00".to_vec();
        none.extend_from_slice(&PALETTE);
        none.push(0x3b);
        assert!(decode_rgb(&none, 1 << 14).unwrap_err().to_string().contains("End of File"));
        none.push(0);
        let e = decode_rgb(&none, 1 << 14).unwrap_err().to_string();
        assert!(e.contains("no image"), "{e}");
        // Cut anywhere before its trailer, a GIF is an error, never a partial image.
        for cut in 1..bytes.len() - 1 {
            assert!(decode_rgb(&bytes[..cut], 1 << 14).is_err(), "cut at {cut} of {}", bytes.len());
        }
        let big = encode_frames((300, 2), &PALETTE, &[frame(0, 0, 2, vec![0; 4])]);
        assert!(matches!(decode_rgb(&big, 256), Err(ImageErrorKind::TooManyPixels { width: 300, .. })));
    }

    #[test]
    fn a_quantized_image_decodes_to_exactly_its_palette_colours() {
        let (w, h) = (40u16, 30u16);
        let rgb: Vec<u8> =
            (0..u32::from(w) * u32::from(h)).flat_map(|i| [(i % 40 * 6) as u8, (i / 40 * 8) as u8, 128]).collect();
        let quantized = gif::Frame::from_rgb_speed(w, h, &rgb, 10);
        let palette = quantized.palette.clone().unwrap();
        let want: Vec<u8> = quantized.buffer.iter().flat_map(|&i| colour_in(&palette, i)).collect();
        let bytes = encode_frames((w, h), &[], &[quantized]);
        assert_eq!(decode_rgb(&bytes, 1 << 14).unwrap(), (40, 30, want));

        // `encode` is that quantization in a file: close to the pixels, not equal to them.
        let file = encode(u32::from(w), u32::from(h), &rgb).unwrap();
        assert!(is_gif(&file));
        let (_, _, back) = decode_rgb(&file, 1 << 14).unwrap();
        let diff: u32 = rgb.iter().zip(&back).map(|(a, b)| u32::from(a.abs_diff(*b))).sum();
        let mean = f64::from(diff) / rgb.len() as f64;
        assert!(mean <= 12.0, "256 colours for these 1,200 were 8.3 levels off on average, now {mean}");
    }

    fn colour_in(palette: &[u8], i: u8) -> [u8; 3] {
        let i = usize::from(i) * 3;
        palette[i..i + 3].try_into().unwrap()
    }
}
