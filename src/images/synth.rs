//! Deterministic ImageNet-like JPEG (or PNG, WebP, GIF, BMP, TIFF) sets, so tests, benches and demos make their own
//! data.
//!
//! Each image is a function of `(seed, index)` alone: a size spread over 300–500 × 250–400, a
//! two-colour gradient, 4–12 textured ellipses, five octaves of value noise and per-pixel
//! grain, encoded at quality 90 with 4:2:0 chroma (as cameras and ImageNet's files are). The
//! noise and grain give the entropy-coded data a photo's density (about 3.3 bits per pixel,
//! ~53 KB per image on average), so decode costs what a real photo's does; docs/decisions.md
//! has the figures. [`write_set_as`] writes the same pixels as PNG or lossless WebP (~4× the
//! bytes), GIF (256 colours), BMP or TIFF instead, for trying loaders of such datasets.

use std::path::{Path, PathBuf};

use super::ImageFormat;
use super::folder::SplitMix64;

/// JPEG quality of generated sets.
pub const QUALITY: u8 = 90;

/// Why a set could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A directory or file could not be made.
    #[error("{}: cannot write it: {err}", path.display())]
    Write {
        /// Where.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// The encoder refused the pixels (never for generated images).
    #[error("{format} encoding failed: {reason}")]
    Encode {
        /// The format being written.
        format: ImageFormat,
        /// The encoder's message.
        reason: String,
    },
}

/// Where image `index` of a set with `classes` classes goes: `class-CCC/img-IIIIII.jpg`
/// (label `index % classes`), or `img-IIIIII.jpg` at the top without classes.
pub fn path_of(dir: &Path, index: u64, classes: u32) -> PathBuf {
    path_as(ImageFormat::Jpeg, dir, index, classes)
}

/// [`path_of`] for a set in `format`: the extension is [`ImageFormat::extension`].
pub fn path_as(format: ImageFormat, dir: &Path, index: u64, classes: u32) -> PathBuf {
    let name = format!("img-{index:06}.{}", format.extension());
    if classes == 0 { dir.join(name) } else { dir.join(format!("class-{:03}", index % u64::from(classes))).join(name) }
}

/// Writes JPEG images `0..count` of set `seed` under `dir` (made if missing), on every CPU;
/// returns their paths in index order.
pub fn write_set(dir: &Path, count: u64, seed: u64, classes: u32) -> Result<Vec<PathBuf>, SynthError> {
    write_set_as(ImageFormat::Jpeg, dir, count, seed, classes)
}

/// [`write_set`] in `format`: the same pixels, as JPEG, PNG, lossless WebP, GIF, BMP or TIFF.
pub fn write_set_as(
    format: ImageFormat,
    dir: &Path,
    count: u64,
    seed: u64,
    classes: u32,
) -> Result<Vec<PathBuf>, SynthError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |err| SynthError::Write { path, err }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    for c in 0..classes.min(u32::try_from(count).unwrap_or(u32::MAX)) {
        let d = dir.join(format!("class-{c:03}"));
        std::fs::create_dir_all(&d).map_err(write_err(&d))?;
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || -> Result<(), SynthError> {
                    for i in (w..count).step_by(workers as usize) {
                        let (width, height, px) = pixels(image_seed(seed, i));
                        let bytes = encode_as(format, width, height, &px)?;
                        let path = path_as(format, dir, i, classes);
                        std::fs::write(&path, bytes).map_err(write_err(&path))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })?;
    Ok((0..count).map(|i| path_as(format, dir, i, classes)).collect())
}

/// JPEG bytes of image `index` of set `seed` (what [`write_set`] writes).
pub fn image(seed: u64, index: u64) -> Result<Vec<u8>, SynthError> {
    let (w, h, px) = pixels(image_seed(seed, index));
    encode(w, h, &px, QUALITY)
}

fn image_seed(seed: u64, index: u64) -> u64 {
    SplitMix64(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next()
}

/// Encodes RGB pixels in `format`: JPEG at [`QUALITY`], PNG (8-bit RGB), lossless WebP, GIF
/// (reduced to a 256-colour palette), 24-bit BMP or uncompressed TIFF.
pub fn encode_as(format: ImageFormat, width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, SynthError> {
    let fail = |reason| SynthError::Encode { format, reason };
    match format {
        ImageFormat::Jpeg => encode(width, height, rgb, QUALITY),
        ImageFormat::Png => encode_png(width, height, rgb),
        ImageFormat::WebP => encode_webp(width, height, rgb),
        ImageFormat::Gif => super::gif::encode(width, height, rgb).map_err(fail),
        ImageFormat::Bmp => super::bmp::encode(width, height, rgb).map_err(fail),
        ImageFormat::Tiff => super::tiff::encode(width, height, rgb).map_err(fail),
    }
}

/// Encodes RGB pixels as a lossless WebP (`image-webp` writes only lossless files).
pub fn encode_webp(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, SynthError> {
    let mut out = Vec::new();
    image_webp::WebPEncoder::new(&mut out)
        .encode(rgb, width, height, image_webp::ColorType::Rgb8)
        .map_err(|e| SynthError::Encode { format: ImageFormat::WebP, reason: e.to_string() })?;
    Ok(out)
}

/// Encodes RGB pixels as an 8-bit RGB PNG with the `png` crate's default compression.
pub fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, SynthError> {
    let fail = |e: png::EncodingError| SynthError::Encode { format: ImageFormat::Png, reason: e.to_string() };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(fail)?;
    writer.write_image_data(rgb).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

/// Encodes RGB pixels as a baseline JPEG with 4:2:0 chroma.
pub fn encode(width: u32, height: u32, rgb: &[u8], quality: u8) -> Result<Vec<u8>, SynthError> {
    let (w, h) = (u16::try_from(width), u16::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else {
        let reason = format!("{width}×{height} is too large for JPEG");
        return Err(SynthError::Encode { format: ImageFormat::Jpeg, reason });
    };
    let mut out = Vec::new();
    let mut e = jpeg_encoder::Encoder::new(&mut out, quality);
    e.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    e.encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| SynthError::Encode { format: ImageFormat::Jpeg, reason: e.to_string() })?;
    Ok(out)
}

struct Rng(SplitMix64);

impl Rng {
    fn unit(&mut self) -> f32 {
        (self.0.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.0.next() % u64::from(hi - lo + 1)) as u32
    }
    fn colour(&mut self) -> [f32; 3] {
        [self.unit() * 255.0, self.unit() * 255.0, self.unit() * 255.0]
    }
}

fn hash(x: i32, y: i32, s: u32) -> f32 {
    let mut h =
        (x as u32).wrapping_mul(374_761_393) ^ (y as u32).wrapping_mul(668_265_263) ^ s.wrapping_mul(2_246_822_519);
    h = (h ^ (h >> 13)).wrapping_mul(1_274_126_177);
    h ^= h >> 16;
    (h & 0xffff) as f32 / 65535.0
}

/// Smoothly interpolated lattice noise in `[0, 1]`.
fn value_noise(x: f32, y: f32, s: u32) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (fx, fy) = (x - xf, y - yf);
    let (xi, yi) = (xf as i32, yf as i32);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (a, b, c, d) = (hash(xi, yi, s), hash(xi + 1, yi, s), hash(xi, yi + 1, s), hash(xi + 1, yi + 1, s));
    a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy
}

struct Ellipse {
    cx: f32,
    cy: f32,
    rx: f32,
    ry: f32,
    colour: [f32; 3],
    seed: u32,
    grain: f32,
}

/// The pixels of one image: `(width, height, RGB bytes)`.
pub fn pixels(seed: u64) -> (u32, u32, Vec<u8>) {
    let mut r = Rng(SplitMix64(seed));
    let (w, h) = (r.range(300, 500), r.range(250, 400));
    let (wf, hf) = (w as f32, h as f32);
    let (c0, c1) = (r.colour(), r.colour());
    let shapes: Vec<Ellipse> = (0..r.range(4, 12))
        .map(|_| Ellipse {
            cx: r.unit() * wf,
            cy: r.unit() * hf,
            rx: 10.0 + r.unit() * wf / 3.0,
            ry: 10.0 + r.unit() * hf / 3.0,
            colour: r.colour(),
            seed: r.0.next() as u32,
            grain: 4.0 + r.unit() * 40.0,
        })
        .collect();
    let noise_seed = r.0.next() as u32;
    let (scale, amp, grain) = (8.0 + r.unit() * 40.0, 30.0 + r.unit() * 60.0, 8.0 + r.unit() * 14.0);
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f32, y as f32);
            let t = (xf / wf + yf / hf) * 0.5;
            let mut c: [f32; 3] = std::array::from_fn(|k| c0[k] + (c1[k] - c0[k]) * t);
            for s in &shapes {
                let (dx, dy) = ((xf - s.cx) / s.rx, (yf - s.cy) / s.ry);
                if dx * dx + dy * dy < 1.0 {
                    let tex = value_noise(xf / s.grain, yf / s.grain, s.seed);
                    c = s.colour.map(|v| v * (0.6 + 0.8 * tex));
                }
            }
            let (mut n, mut f, mut a) = (0.0, 1.0 / scale, 1.0);
            for octave in 0..5 {
                n += a * (value_noise(xf * f, yf * f, noise_seed + octave) - 0.5);
                f *= 2.0;
                a *= 0.5;
            }
            let g = (hash(x as i32, y as i32, noise_seed ^ 0xabc) - 0.5) * 2.0 * grain;
            px.extend(c.map(|v| (v + n * amp + g).clamp(0.0, 255.0) as u8));
        }
    }
    (w, h, px)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_deterministic_and_sized_like_imagenet() {
        assert_eq!(image(1, 5).unwrap(), image(1, 5).unwrap());
        assert_ne!(image(1, 5).unwrap(), image(2, 5).unwrap());
        for i in 0..4 {
            let (w, h, px) = pixels(image_seed(9, i));
            assert!((300..=500).contains(&w) && (250..=400).contains(&h));
            assert_eq!(px.len(), (w * h * 3) as usize);
        }
    }

    #[test]
    fn paths_put_images_in_class_directories() {
        let d = Path::new("/d");
        assert_eq!(path_of(d, 12, 10), Path::new("/d/class-002/img-000012.jpg"));
        assert_eq!(path_of(d, 12, 0), Path::new("/d/img-000012.jpg"));
        assert_eq!(path_as(ImageFormat::Png, d, 12, 10), Path::new("/d/class-002/img-000012.png"));
    }

    #[test]
    fn png_and_webp_sets_hold_the_exact_pixels() {
        let (w, h, px) = pixels(image_seed(3, 1));
        let png = encode_as(ImageFormat::Png, w, h, &px).unwrap();
        assert_eq!(ImageFormat::sniff(&png), Some(ImageFormat::Png));
        let (dw, dh, back) = crate::images::png::decode_rgb(&png, 1 << 14).unwrap();
        assert_eq!((dw as u32, dh as u32), (w, h));
        assert!(back == px, "PNG is lossless");
        let webp = encode_as(ImageFormat::WebP, w, h, &px).unwrap();
        assert_eq!(ImageFormat::sniff(&webp), Some(ImageFormat::WebP));
        let (dw, dh, back) = crate::images::webp::decode_rgb(&webp, 1 << 14).unwrap();
        assert_eq!((dw as u32, dh as u32), (w, h));
        assert!(back == px, "this WebP is lossless");
    }
}
