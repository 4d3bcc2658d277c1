//! PNG, WebP, GIF, BMP and TIFF files through `decode` and the loader: every PNG colour type and
//! bit depth gives the RGB pixels it was written from, an interlaced file too; lossy WebP files
//! match libwebp's decode (through Pillow) of the same file, as grayscale, CMYK and progressive
//! JPEGs match libjpeg-turbo's; broken files are counted failures.
//!
//! PNG's expected pixels are known exactly (it is lossless): each test writes a file from them,
//! with the `png` crate's encoder, or by hand for interlacing, which that encoder does not write
//! (checked against a second decoder, zune-png). The lossy WebP files and their reference pixels
//! in `tests/data/` were written by Pillow 13 (libwebp): `lossy.webp` is a 96 × 64 crop of a
//! generated image at quality 80, `lossy-alpha.webp` the same with an alpha gradient;
//! `*.rgb` are Pillow's `convert("RGB").tobytes()` of each. The same crop as a grayscale, a CMYK
//! (Adobe) and a progressive JPEG (libjpeg-turbo, quality 90) checks those JPEG kinds.
//!
//! GIF and BMP fixtures are the same crop written by Pillow 13 (an interlaced GIF, a two-frame
//! animation; 1-bit, gray, 64-colour palette and 32-bit BMPs), a top-down BMP (the rows of
//! Pillow's flipped by hand) and a 4 × 2 RLE8 BMP written byte by byte; these decode to exactly
//! Pillow's pixels, and every fixture cut at any byte is an error. TIFF fixtures (`tiff-*.tif`)
//! are the crop as Pillow writes it with each compression and in each kind (a 16-bit gray one
//! from the 8-bit gray × 257, whose high bytes are that gray); a float TIFF is refused by name.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{PLACEMENTS, assert_balanced, start};

use png::{BitDepth, ColorType};
use shardpipe::images::{Encoded, ImageFolder, ImageFormat, LoaderOptions, Sample, batches, decode, loader, synth};

const W: u32 = 37;
const H: u32 = 23;

/// A deterministic RGB test card: gradients and a checker, so a swapped channel, row or column
/// shows.
fn rgb_card() -> Vec<u8> {
    let mut px = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        for x in 0..W {
            let checker = if (x / 4 + y / 4) % 2 == 0 { 0 } else { 90 };
            px.extend_from_slice(&[(x * 7) as u8, (y * 11) as u8, (checker + x + y) as u8]);
        }
    }
    px
}

/// Encodes `data` (already in `color`/`depth` layout) as a PNG with the `png` crate.
fn encode(color: ColorType, depth: BitDepth, data: &[u8], palette: Option<(&[u8], Option<&[u8]>)>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, W, H);
    e.set_color(color);
    e.set_depth(depth);
    if let Some((plte, trns)) = palette {
        e.set_palette(plte.to_vec());
        if let Some(t) = trns {
            e.set_trns(t.to_vec());
        }
    }
    let mut w = e.write_header().unwrap();
    w.write_image_data(data).unwrap();
    w.finish().unwrap();
    out
}

fn decode_bytes(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let sample = Sample { index: 0, epoch: 0, path: Arc::from(Path::new("card.png")), label: None };
    let img = decode(Encoded { sample, bytes }).map_err(|e| e.to_string())?;
    assert_eq!((img.width, img.height), (W, H));
    Ok(img.data)
}

/// Packs one sample per pixel (each `< 1 << bits`) into PNG rows of `bits`-bit samples.
fn pack(samples: &[u8], bits: u32) -> Vec<u8> {
    let per_byte = 8 / bits;
    let mut out = Vec::new();
    for row in samples.chunks(W as usize) {
        for group in row.chunks(per_byte as usize) {
            let mut b = 0u8;
            for (i, &s) in group.iter().enumerate() {
                b |= s << (8 - bits * (i as u32 + 1));
            }
            out.push(b);
        }
    }
    out
}

#[test]
fn every_colour_type_and_depth_decodes_to_the_rgb_it_was_written_from() {
    let rgb = rgb_card();
    let gray: Vec<u8> = rgb.chunks(3).map(|p| p[0]).collect();
    let gray_rgb: Vec<u8> = gray.iter().flat_map(|&g| [g; 3]).collect();
    let with_alpha = |px: &[u8], n: usize| -> Vec<u8> {
        px.chunks(n).enumerate().flat_map(|(i, p)| p.iter().copied().chain([(i * 13) as u8])).collect()
    };
    // 16-bit samples: the high byte is the 8-bit value, the low byte noise that must not leak.
    let wide = |px: &[u8]| -> Vec<u8> { px.iter().enumerate().flat_map(|(i, &v)| [v, (i * 31) as u8]).collect() };

    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("rgb8", encode(ColorType::Rgb, BitDepth::Eight, &rgb, None), rgb.clone()),
        ("rgba8", encode(ColorType::Rgba, BitDepth::Eight, &with_alpha(&rgb, 3), None), rgb.clone()),
        ("gray8", encode(ColorType::Grayscale, BitDepth::Eight, &gray, None), gray_rgb.clone()),
        ("graya8", encode(ColorType::GrayscaleAlpha, BitDepth::Eight, &with_alpha(&gray, 1), None), gray_rgb.clone()),
        ("rgb16", encode(ColorType::Rgb, BitDepth::Sixteen, &wide(&rgb), None), rgb.clone()),
        ("rgba16", encode(ColorType::Rgba, BitDepth::Sixteen, &wide(&with_alpha(&rgb, 3)), None), rgb.clone()),
        ("gray16", encode(ColorType::Grayscale, BitDepth::Sixteen, &wide(&gray), None), gray_rgb.clone()),
    ];
    for (name, png, want) in cases {
        assert_eq!(ImageFormat::sniff(&png), Some(ImageFormat::Png));
        let got = decode_bytes(png).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == want, "{name}: pixels differ from what was written");
    }
}

#[test]
fn low_bit_gray_is_scaled_to_the_full_range_and_palettes_are_looked_up() {
    let n = (W * H) as usize;
    for bits in [1u32, 2, 4] {
        let levels = (1u32 << bits) - 1;
        let samples: Vec<u8> = (0..n).map(|i| (i as u32 * 7 % (levels + 1)) as u8).collect();
        let depth = match bits {
            1 => BitDepth::One,
            2 => BitDepth::Two,
            _ => BitDepth::Four,
        };
        let png = encode(ColorType::Grayscale, depth, &pack(&samples, bits), None);
        // The PNG spec's scaling: sample × 255 / (2^bits − 1).
        let want: Vec<u8> = samples.iter().flat_map(|&s| [(u32::from(s) * 255 / levels) as u8; 3]).collect();
        assert!(decode_bytes(png).unwrap() == want, "{bits}-bit gray");
    }
    let plte: Vec<u8> = (0..16u8).flat_map(|i| [i * 16, 255 - i * 16, i ^ 0x5a]).collect();
    let idx: Vec<u8> = (0..n).map(|i| (i % 16) as u8).collect();
    let want: Vec<u8> = idx.iter().flat_map(|&i| plte[3 * i as usize..3 * i as usize + 3].to_vec()).collect();
    let trns: Vec<u8> = (0..16u8).map(|i| i * 17).collect();
    for (name, trns) in [("palette", None), ("palette with tRNS", Some(trns.as_slice()))] {
        for (bits, depth) in [(8, BitDepth::Eight), (4, BitDepth::Four)] {
            let data = if bits == 8 { idx.clone() } else { pack(&idx, 4) };
            let png = encode(ColorType::Indexed, depth, &data, Some((&plte, trns)));
            assert!(decode_bytes(png).unwrap() == want, "{name}, {bits}-bit indices");
        }
    }
}

/// CRC-32 (ISO 3309), as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// An Adam7-interlaced 8-bit RGB PNG of `rgb`, written by hand: the seven passes' rows (filter
/// 0) in one zlib stream of stored blocks.
fn interlaced_png(rgb: &[u8]) -> Vec<u8> {
    const PASSES: [(u32, u32, u32, u32); 7] =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
    let mut raw = Vec::new();
    for (x0, y0, dx, dy) in PASSES {
        if x0 >= W || y0 >= H {
            continue;
        }
        for y in (y0..H).step_by(dy as usize) {
            raw.push(0);
            for x in (x0..W).step_by(dx as usize) {
                let i = ((y * W + x) * 3) as usize;
                raw.extend_from_slice(&rgb[i..i + 3]);
            }
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut png = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&W.to_be_bytes());
    ihdr.extend_from_slice(&H.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 1]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn an_interlaced_file_decodes_to_its_pixels() {
    let rgb = rgb_card();
    let png = interlaced_png(&rgb);
    // The hand-written file is a valid PNG: another decoder (zune-png) reads the same pixels.
    let mut reference = zune_png::PngDecoder::new(zune_png::zune_core::bytestream::ZCursor::new(png.as_slice()));
    let want = reference.decode_raw().unwrap();
    assert_eq!(reference.info().unwrap().interlace_method, zune_png::InterlaceMethod::Adam7);
    assert!(want == rgb, "the reference decoder disagrees with the hand-written file");
    assert!(decode_bytes(png).unwrap() == rgb);
}

#[test]
fn broken_pngs_are_errors_that_name_the_format() {
    let png = encode(ColorType::Rgb, BitDepth::Eight, &rgb_card(), None);
    let truncated = decode_bytes(png[..png.len() / 2].to_vec()).unwrap_err();
    assert!(truncated.starts_with("card.png: corrupt or truncated PNG"), "{truncated}");
    // A flipped bit in the compressed pixels, then one in the image data chunk's checksum.
    let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
    let mut flipped = png.clone();
    flipped[idat + 20] ^= 0x10;
    let bad_data = decode_bytes(flipped).unwrap_err();
    assert!(bad_data.starts_with("card.png: corrupt or truncated PNG"), "{bad_data}");
    let len = u32::from_be_bytes(png[idat - 4..idat].try_into().unwrap()) as usize;
    let mut flipped = png.clone();
    flipped[idat + 4 + len] ^= 0x01;
    let bad_crc = decode_bytes(flipped).unwrap_err();
    assert!(bad_crc.contains("corrupt or truncated PNG") && bad_crc.contains("CRC"), "{bad_crc}");
    let cut_signature = decode_bytes(png[..6].to_vec()).unwrap_err();
    assert!(
        cut_signature.contains("not a JPEG, PNG, WebP, GIF, BMP or TIFF file") && cut_signature.contains("PNG"),
        "{cut_signature}"
    );
}

/// Our decode of a fixture `file` against Pillow's (libwebp's, libjpeg-turbo's) in `NAME.rgb`:
/// two correct decoders may differ only in rounding of the colour conversion and chroma
/// upsampling.
fn assert_close_to_pillow(file: &str, format: ImageFormat) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bytes = std::fs::read(dir.join(file)).unwrap();
    let name = file.split('.').next().unwrap();
    let want = std::fs::read(dir.join(format!("{name}.rgb"))).unwrap();
    assert_eq!(ImageFormat::sniff(&bytes), Some(format));
    let sample = Sample { index: 0, epoch: 0, path: Arc::from(Path::new(name)), label: None };
    let img = decode(Encoded { sample, bytes }).unwrap();
    assert_eq!((img.width, img.height, img.data.len()), (96, 64, want.len()), "{name}");
    let diffs: Vec<u8> = img.data.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).collect();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    let close = diffs.iter().filter(|&&d| d <= 4).count() as f64 / diffs.len() as f64;
    assert!(mean < 1.5 && close > 0.99, "{name}: mean abs diff {mean:.3}, {close:.4} within 4");
}

#[test]
fn lossy_webp_matches_libwebp_with_and_without_alpha() {
    assert_close_to_pillow("lossy.webp", ImageFormat::WebP);
    assert_close_to_pillow("lossy-alpha.webp", ImageFormat::WebP);
}

#[test]
fn grayscale_cmyk_and_progressive_jpegs_match_libjpeg_turbo() {
    for file in ["gray.jpg", "cmyk.jpg", "progressive.jpg"] {
        assert_close_to_pillow(file, ImageFormat::Jpeg);
    }
}

#[test]
fn lossless_webp_gives_the_exact_pixels_and_drops_alpha() {
    let rgb = rgb_card();
    let rgba: Vec<u8> = rgb.chunks(3).enumerate().flat_map(|(i, p)| [p[0], p[1], p[2], (i * 7) as u8]).collect();
    for (name, data, color) in
        [("rgb", &rgb, image_webp::ColorType::Rgb8), ("rgba", &rgba, image_webp::ColorType::Rgba8)]
    {
        let mut webp = Vec::new();
        image_webp::WebPEncoder::new(&mut webp).encode(data, W, H, color).unwrap();
        assert!(decode_bytes(webp).unwrap() == rgb, "lossless {name}");
    }
}

#[test]
fn broken_webps_are_errors_that_name_the_format() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bytes = std::fs::read(dir.join("lossy.webp")).unwrap();
    let sample = Sample { index: 0, epoch: 0, path: Arc::from(Path::new("x.webp")), label: None };
    let reason = |b: &[u8]| decode(Encoded { sample: sample.clone(), bytes: b.to_vec() }).unwrap_err().to_string();
    for cut in [bytes.len() / 2, bytes.len() - 10, 30] {
        let r = reason(&bytes[..cut]);
        assert!(r.starts_with("x.webp: corrupt or truncated WebP"), "cut at {cut}: {r}");
    }
    let other_riff = reason(b"RIFF\x24\0\0\0WAVEfmt ");
    assert!(
        other_riff.contains("not a JPEG, PNG, WebP, GIF, BMP or TIFF file") && other_riff.contains("RIFF"),
        "{other_riff}"
    );
}

/// Our decode of a lossless fixture against Pillow's `convert("RGB")` of it, in `reference`:
/// equal, pixel for pixel (palettes, bit unpacking and row order leave no room for rounding).
fn assert_same_as_pillow(file: &str, format: ImageFormat, size: (u32, u32), reference: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bytes = std::fs::read(dir.join(file)).unwrap();
    let want = std::fs::read(dir.join(reference)).unwrap();
    assert_eq!(ImageFormat::sniff(&bytes), Some(format), "{file}");
    let sample = Sample { index: 0, epoch: 0, path: Arc::from(Path::new(file)), label: None };
    let img = decode(Encoded { sample, bytes }).unwrap();
    assert_eq!((img.width, img.height), size, "{file}");
    let first_diff = img.data.iter().zip(&want).position(|(a, b)| a != b);
    assert!(img.data == want, "{file}: differs from {reference} first at byte {first_diff:?}");
}

#[test]
fn gifs_match_pillow_interlaced_and_an_animations_first_frame() {
    // `pillow.gif`: Pillow's quantizer, interlaced rows; `anim.gif`: two frames, the second
    // with a red corner that must not show.
    assert_same_as_pillow("pillow.gif", ImageFormat::Gif, (96, 64), "pillow.rgb");
    assert_same_as_pillow("anim.gif", ImageFormat::Gif, (96, 64), "anim.rgb");
}

#[test]
fn bmps_of_every_kind_pillow_writes_match_it_and_rle_and_top_down_too() {
    // 1-bit, 8-bit gray, 8-bit palette, 32-bit with alpha (dropped), 24-bit stored top-down
    // (Pillow reads but does not write those: the rows were flipped by hand), and a 4 × 2 RLE8
    // file written byte by byte (one run, one literal stretch).
    for (file, reference) in [
        ("mono.bmp", "mono.rgb"),
        ("gray.bmp", "gray-bmp.rgb"),
        ("pal8.bmp", "pal8.rgb"),
        ("rgba.bmp", "rgba.rgb"),
        ("topdown.bmp", "topdown.rgb"),
    ] {
        assert_same_as_pillow(file, ImageFormat::Bmp, (96, 64), reference);
    }
    assert_same_as_pillow("rle8.bmp", ImageFormat::Bmp, (4, 2), "rle8.rgb");
}

#[test]
fn tiffs_of_every_compression_and_kind_pillow_writes_match_it() {
    // Uncompressed, LZW, Deflate and PackBits RGB, RGBA (alpha dropped) and a two-page file
    // (the first page counts) all hold the crop's own pixels; gray, 16-bit gray (high byte),
    // 1-bit (raw and CCITT group 4), CMYK and a 64-colour palette match Pillow's conversion of
    // them.
    let tif = |f: &str, reference: &str| assert_same_as_pillow(f, ImageFormat::Tiff, (96, 64), reference);
    for file in ["plain", "lzw", "deflate", "packbits", "rgba", "pages"] {
        tif(&format!("tiff-{file}.tif"), "lossy.rgb");
    }
    tif("tiff-gray.tif", "tiff-gray.rgb");
    tif("tiff-gray16.tif", "tiff-gray.rgb");
    tif("tiff-mono.tif", "tiff-mono.rgb");
    tif("tiff-g4.tif", "tiff-mono.rgb");
    tif("tiff-cmyk.tif", "tiff-cmyk.rgb");
    // JPEG inside TIFF: zune-jpeg against libjpeg, close rather than equal.
    assert_close_to_pillow("tiff-jpeg.tif", ImageFormat::Tiff);
    // A palette TIFF, which the crate refuses: decoded through its colour map all the same.
    tif("tiff-palette.tif", "tiff-palette.rgb");
    // Float samples are a kind the decoder does not read: said so, with the fix.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bytes = std::fs::read(dir.join("tiff-float.tif")).unwrap();
    let sample = Sample { index: 0, epoch: 0, path: Arc::from(Path::new("f.tif")), label: None };
    let e = decode(Encoded { sample, bytes }).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("TIFF of a kind this decoder does not read") && e.contains("convert it to PNG"), "{e}");
}

#[test]
fn gifs_bmps_and_tiffs_cut_anywhere_are_errors_never_partial_images() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let files = ["pillow.gif", "anim.gif", "mono.bmp", "pal8.bmp", "rgba.bmp", "topdown.bmp", "rle8.bmp"];
    let tiffs =
        ["tiff-lzw.tif", "tiff-deflate.tif", "tiff-g4.tif", "tiff-jpeg.tif", "tiff-pages.tif", "tiff-palette.tif"];
    let multi = ["anim.gif", "tiff-pages.tif"];
    for file in files.into_iter().chain(tiffs) {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let format = ImageFormat::sniff(&bytes).unwrap().to_string();
        let decode_cut = |cut: usize| {
            let sample = Sample { index: 0, epoch: 0, path: Arc::from(Path::new(file)), label: None };
            decode(Encoded { sample, bytes: bytes[..cut].to_vec() }).map(|img| img.data)
        };
        let whole = decode_cut(bytes.len()).unwrap();
        let mut decoded = 0;
        // From byte 16 on (shorter is not recognised as the format at all).
        for cut in 16..bytes.len() - 1 {
            match decode_cut(cut) {
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains(&format!("corrupt or truncated {format}")), "{file} cut at {cut}: {e}");
                    assert_eq!(decoded, 0, "{file}: cut at {cut} fails, though a shorter cut decoded");
                }
                // Only a file of several images may be cut and still decode: once its first
                // image is whole (here, past a third of the file), with that image.
                Ok(data) => {
                    assert!(multi.contains(&file) && cut > bytes.len() / 3, "{file} decoded when cut at {cut}");
                    assert!(data == whole, "{file} cut at {cut} gave a different image");
                    decoded += 1;
                }
            }
        }
        if multi.contains(&file) {
            assert!(decoded > 0, "{file} cut in its second image still gives its first");
        }
    }
}

/// A folder of generated JPEGs, the same images as PNGs and as WebPs, two of them as GIFs, BMPs
/// and TIFFs, and two broken PNGs.
fn mixed_folder() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shardpipe-test-formats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    synth::write_set(&dir, 8, 5, 0).unwrap();
    for i in 0..8 {
        let (w, h, px) = synth::pixels(100 + i);
        let out = synth::encode_png(w, h, &px).unwrap();
        if i == 0 {
            std::fs::write(dir.join("bad-truncated.png"), &out[..out.len() / 2]).unwrap();
        }
        // The extension does not matter: the first bytes say which decoder reads it.
        std::fs::write(dir.join(format!("png-{i}.jpg")), out).unwrap();
        std::fs::write(dir.join(format!("webp-{i}.webp")), synth::encode_webp(w, h, &px).unwrap()).unwrap();
        if i < 2 {
            for format in [ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::Tiff] {
                let name = format!("{}-{i}.{}", format.extension(), format.extension());
                std::fs::write(dir.join(name), synth::encode_as(format, w, h, &px).unwrap()).unwrap();
            }
        }
    }
    std::fs::write(dir.join("bad-signature-only.png"), [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']).unwrap();
    dir
}

#[test]
fn a_folder_mixing_every_format_loads_in_every_placement_and_counts_broken_files() {
    let dir = mixed_folder();
    let folder = ImageFolder::open(&dir).unwrap();
    for p in PLACEMENTS {
        let opts = LoaderOptions { width: 24, height: 24, max_failures: Some(2), ..LoaderOptions::default() };
        let Some(mut pipe) = start(batches(loader(folder.clone(), &opts), 4, false), p) else { return };
        let delivered: usize = pipe.iter().map(|b| b.len()).sum();
        let r = pipe.finish().unwrap();
        assert_balanced(&r);
        assert_eq!(delivered, 30, "{p:?}: 8 JPEGs, 8 PNGs, 8 WebPs, 2 GIFs, 2 BMPs and 2 TIFFs");
        let decoded = r.stages.iter().find(|s| s.name == "decode").unwrap();
        assert_eq!(decoded.stats.failures, 2, "{p:?}:\n{r}");
        for file in ["bad-truncated.png", "bad-signature-only.png"] {
            let path = dir.join(file).display().to_string();
            let named = decoded.failure_samples.iter().any(|m| m.starts_with(&path) && m.contains("PNG"));
            assert!(named, "{p:?}: {file}: {:?}", decoded.failure_samples);
        }
    }
}
