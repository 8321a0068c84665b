//! Turning an arbitrary picture of a digit into an MNIST-style 28×28 input, and a colour
//! picture into a model's H×W×3 input.
//!
//! MNIST's own recipe: the digit is white on black, cropped to its ink, scaled (anti-aliased,
//! aspect ratio kept) to fit a 20×20 box, and pasted into a 28×28 field so that its centre of
//! mass sits at the centre.

use anyhow::{ensure, Context, Result};
use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};
use std::path::Path;

/// Side of the MNIST field.
pub const SIDE: usize = 28;
/// Side of the box the digit is scaled into.
const BOX: u32 = 20;
/// Below this contrast between ink and background (out of 255) there is no digit to see.
const MIN_CONTRAST: u8 = 40;
/// Normalised level (out of 255) a pixel needs to count as ink when cropping: low enough to
/// keep faint strokes, high enough to ignore paper texture and JPEG noise.
const INK_LEVEL: u8 = 48;

/// Loads a PNG or JPEG file as grey pixels.
pub fn load(path: &Path) -> Result<GrayImage> {
    let img = image::open(path).with_context(|| format!("cannot read image {}", path.display()))?;
    Ok(img.to_luma8())
}

/// Loads a PNG or JPEG file as RGB pixels (grey pictures get three equal channels).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let img = image::open(path).with_context(|| format!("cannot read image {}", path.display()))?;
    Ok(img.to_rgb8())
}

/// A colour picture resized (triangle filter, aspect ratio not kept) to `w`×`h`: `h` rows of
/// `w` interleaved RGB bytes, the HWC layout of a `[1, h, w, 3]` input.
pub fn rgb_pixels(img: &RgbImage, w: u32, h: u32) -> Vec<u8> {
    imageops::resize(img, w, h, FilterType::Triangle).into_raw()
}

/// Preprocesses a grey picture into 784 MNIST-style pixels (0 = background, 255 = ink).
pub fn mnist_pixels(img: &GrayImage) -> Result<Vec<u8>> {
    let (w, h) = img.dimensions();
    ensure!(w > 0 && h > 0, "the image is empty");
    let background = border_median(img);
    // MNIST digits are light on dark: a light background means a dark digit, so invert.
    let invert = background > 127;
    let ink = |p: u8| if invert { 255 - p } else { p };
    let bg = ink(background);
    let peak = img.pixels().map(|p| ink(p.0[0])).max().unwrap_or(0);
    ensure!(
        peak.saturating_sub(bg) >= MIN_CONTRAST,
        "no digit found: the image has no contrast against its background"
    );
    // Stretch so that the background is 0 and the strongest ink 255.
    let span = f32::from(peak - bg);
    let norm = GrayImage::from_fn(w, h, |x, y| {
        let v = f32::from(ink(img.get_pixel(x, y).0[0]).saturating_sub(bg)) / span * 255.0;
        image::Luma([v.round().clamp(0.0, 255.0) as u8])
    });

    let (x0, y0, x1, y1) = ink_box(&norm).context("no digit found")?;
    let crop = imageops::crop_imm(&norm, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    let (cw, ch) = crop.dimensions();
    let scale = BOX as f32 / cw.max(ch) as f32;
    let (sw, sh) = (
        ((cw as f32 * scale).round() as u32).clamp(1, BOX),
        ((ch as f32 * scale).round() as u32).clamp(1, BOX),
    );
    // Triangle filtering widens its support when shrinking, i.e. it averages the covered
    // area: the anti-aliasing MNIST's grey edges come from.
    let digit = imageops::resize(&crop, sw, sh, FilterType::Triangle);

    let (cx, cy) = centre_of_mass(&digit);
    let centre = SIDE as f32 / 2.0;
    let dx = (centre - cx).round() as i64;
    let dy = (centre - cy).round() as i64;
    let mut out = vec![0u8; SIDE * SIDE];
    for (x, y, p) in digit.enumerate_pixels() {
        let (tx, ty) = (i64::from(x) + dx, i64::from(y) + dy);
        if (0..SIDE as i64).contains(&tx) && (0..SIDE as i64).contains(&ty) {
            out[ty as usize * SIDE + tx as usize] = p.0[0];
        }
    }
    Ok(out)
}

/// Median grey level of the outermost pixels: the background, whatever the digit covers.
fn border_median(img: &GrayImage) -> u8 {
    let (w, h) = img.dimensions();
    let mut border: Vec<u8> = img
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h)
        .map(|(_, _, p)| p.0[0])
        .collect();
    border.sort_unstable();
    border.get(border.len() / 2).copied().unwrap_or(0)
}

/// Inclusive bounding box of the ink.
fn ink_box(img: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let mut b: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in img.enumerate_pixels() {
        if p.0[0] >= INK_LEVEL {
            b = Some(match b {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    b
}

/// Intensity-weighted centre, in pixel units with pixel `i` covering `[i, i + 1)`.
fn centre_of_mass(img: &GrayImage) -> (f32, f32) {
    let (mut sx, mut sy, mut total) = (0f64, 0f64, 0f64);
    for (x, y, p) in img.enumerate_pixels() {
        let v = f64::from(p.0[0]);
        sx += v * (f64::from(x) + 0.5);
        sy += v * (f64::from(y) + 0.5);
        total += v;
    }
    if total == 0.0 {
        let (w, h) = img.dimensions();
        return (w as f32 / 2.0, h as f32 / 2.0);
    }
    ((sx / total) as f32, (sy / total) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(w: u32, h: u32, light_background: bool) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            let on = x >= w / 3 && x < w / 3 + w / 8 && y >= h / 4 && y < 3 * h / 4;
            let v = if on == light_background { 0 } else { 255 };
            image::Luma([v])
        })
    }

    #[test]
    fn centres_a_bar_whatever_the_polarity() {
        for light in [false, true] {
            let px = mnist_pixels(&bar(200, 120, light)).unwrap();
            let mass: u64 = px.iter().map(|&p| u64::from(p)).sum();
            assert!(mass > 0);
            let cx: f64 = px
                .iter()
                .enumerate()
                .map(|(i, &p)| ((i % SIDE) as f64 + 0.5) * f64::from(p))
                .sum::<f64>()
                / mass as f64;
            let cy: f64 = px
                .iter()
                .enumerate()
                .map(|(i, &p)| ((i / SIDE) as f64 + 0.5) * f64::from(p))
                .sum::<f64>()
                / mass as f64;
            assert!(
                (cx - 14.0).abs() < 1.0 && (cy - 14.0).abs() < 1.0,
                "{cx} {cy}"
            );
            // The tall side fills the 20-pixel box.
            let rows = (0..SIDE)
                .filter(|r| px[r * SIDE..(r + 1) * SIDE].iter().any(|&p| p > 0))
                .count();
            assert!((19..=21).contains(&rows), "{rows}");
        }
    }

    #[test]
    fn rejects_a_blank_picture() {
        assert!(mnist_pixels(&GrayImage::from_pixel(30, 30, image::Luma([200]))).is_err());
    }
}
