//! The host's data loaders: IDX images and labels, `.npy` decoding, PNG/JPEG decoding (with
//! limits, as `fixnet predict` would need) and the MNIST-style preprocessing of any picture.
#![no_main]

use fixnet_tools::{idx, npy, preprocess};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(images) = idx::parse_images(rest) {
                assert_eq!(
                    images.len() * images.rows * images.cols,
                    images.pixels.len()
                );
                if !images.is_empty() {
                    let _ = images.image(images.len() - 1);
                }
                assert_eq!(idx::encode_images(&images), rest);
            }
        }
        1 => {
            if let Ok(labels) = idx::parse_labels(rest) {
                assert_eq!(idx::encode_labels(&labels), rest);
            }
        }
        2 => {
            // A raw grey picture: width from the first byte, rows from the rest.
            let Some((&w, px)) = rest.split_first() else {
                return;
            };
            let w = u32::from(w).max(1);
            let h = (px.len() as u32) / w;
            if let Some(img) = image::GrayImage::from_raw(w, h, px[..(w * h) as usize].to_vec()) {
                if let Ok(out) = preprocess::mnist_pixels(&img) {
                    assert_eq!(out.len(), preprocess::SIDE * preprocess::SIDE);
                }
            }
            let _ = npy::decode_i8(rest);
        }
        _ => {
            // PNG/JPEG through the image crate, bounded as a loader of untrusted files is.
            let mut reader = image::ImageReader::new(std::io::Cursor::new(rest));
            let mut limits = image::Limits::default();
            limits.max_image_width = Some(4096);
            limits.max_image_height = Some(4096);
            limits.max_alloc = Some(64 << 20);
            reader.limits(limits);
            let Ok(reader) = reader.with_guessed_format() else {
                return;
            };
            if let Ok(img) = reader.decode() {
                let _ = preprocess::mnist_pixels(&img.to_luma8());
            }
        }
    }
});
