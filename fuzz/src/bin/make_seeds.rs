//! Writes the seed corpora of every fuzz target from the repository's real fixtures:
//! `make_seeds DIR` fills `DIR/<target>/`. Run from anywhere; paths are resolved from this
//! crate's manifest directory. Nothing here is committed: the corpora are regenerated.

use fixnet::format::crc32::crc32;
use fixnet::format::{DType, Model};
use fixnet::storage::{encode_constants, WeightStore};
use fixnet::train::Constant;
use fixnet_app::protocol::{encode_frame, Request};
use fixnet_fuzz::{Aligned, RamFlash, SECTOR};
use fixnet_tools::idx;
use std::path::{Path, PathBuf};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("corpus dir");
    std::fs::write(d.join(name), bytes).expect("write seed");
}

fn lowered(tflite: &str) -> Vec<u8> {
    let bytes = std::fs::read(repo(tflite)).expect("fixture");
    let graph = fixnet_tools::tflite::import(&bytes).expect("import");
    fixnet_tools::lower::lower(&graph).expect("lower")
}

fn frame(request: &Request<'_>) -> Vec<u8> {
    let mut scratch = vec![0u8; 2048];
    let mut out = vec![0u8; 4096];
    encode_frame(request, &mut scratch, &mut out)
        .expect("frame")
        .to_vec()
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));

    // model: the shipped CNN and the two smaller fixtures, converted.
    let seed = std::fs::read(repo("models/seed_cnn.fxn")).expect("seed model");
    put(&dir, "model", "seed_cnn.fxn", &seed);
    let strided = lowered("tests/fixtures/models/strided_cnn_int8.tflite");
    put(&dir, "model", "strided_cnn.fxn", &strided);
    put(
        &dir,
        "model",
        "mlp.fxn",
        &lowered("tests/fixtures/models/mlp_int8.tflite"),
    );

    // tflite: the small int8 fixtures (and a float one, which is refused).
    for name in ["strided_cnn_int8", "mlp_int8", "strided_cnn_float"] {
        let bytes =
            std::fs::read(repo(&format!("tests/fixtures/models/{name}.tflite"))).expect("fixture");
        put(&dir, "tflite", &format!("{name}.tflite"), &bytes);
    }

    // protocol: every request framed, a stream of several, and bare payloads.
    let images = idx::read_images(&repo("data/mnist/test-images-idx3-ubyte.gz")).expect("mnist");
    let digit = images.image(0).to_vec();
    let requests = [
        Request::Info,
        Request::Classify { image: &digit },
        Request::TrainSample {
            image: &digit,
            label: 7,
        },
        Request::Save,
        Request::Revert,
        Request::Stats,
        Request::Classify {
            image: &digit[..10],
        },
        Request::TrainSample {
            image: &digit,
            label: 200,
        },
    ];
    let mut stream = vec![0u8];
    for (i, r) in requests.iter().enumerate() {
        let f = frame(r);
        put(&dir, "protocol", &format!("frame{i}"), &f);
        put(
            &dir,
            "protocol",
            &format!("frame{i}_body"),
            &f[..f.len() - 1],
        );
        stream.extend_from_slice(&f);
    }
    stream.extend_from_slice(&[1, 2, 3, 0, 0]);
    put(&dir, "protocol", "stream", &stream);
    for (i, payload) in [vec![0u8], vec![5], vec![3], vec![2, 4, 1, 2, 3, 4, 7]]
        .iter()
        .enumerate()
    {
        put(&dir, "protocol", &format!("payload{i}"), payload);
    }

    // idx_image: mode byte, then an IDX image file, a label file, a raw grey picture, a PNG.
    let mut few = images.clone();
    few.truncate(3);
    let mut s = vec![0u8];
    s.extend(idx::encode_images(&few));
    put(&dir, "idx_image", "images", &s);
    let mut s = vec![1u8];
    s.extend(idx::encode_labels(&[7, 2, 1]));
    put(&dir, "idx_image", "labels", &s);
    let mut s = vec![2u8, 28];
    s.extend_from_slice(&digit);
    put(&dir, "idx_image", "grey", &s);
    let npy = fixnet_tools::npy::encode_i8(&[2, 3], &[1, 2, 3, -1, -2, -3]).expect("npy");
    let mut s = vec![2u8];
    s.extend(npy);
    put(&dir, "idx_image", "npy", &s);
    let img =
        image::GrayImage::from_raw(28, 28, digit.iter().map(|p| 255 - p).collect()).expect("image");
    for (name, format) in [
        ("png", image::ImageFormat::Png),
        ("jpeg", image::ImageFormat::Jpeg),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, format).expect("encode");
        let mut s = vec![3u8];
        s.extend(bytes.into_inner());
        put(&dir, "idx_image", name, &s);
    }

    // storage: flash images of the weight store (two 2 KiB slots) after 0, 1, 2 saves of the
    // strided CNN's last weights and biases, in every mode.
    let blob = Aligned::new(&strided);
    let model = Model::from_bytes(blob.bytes()).expect("strided");
    let mut consts: Vec<Constant<'_>> = Vec::new();
    for op in model.ops().flatten() {
        if let fixnet::format::Op::FullyConnected(fc) = op {
            let b = model.tensor(fc.bias).expect("bias");
            consts = vec![Constant::Int32(fc.bias, b.data_i32().expect("i32"))];
            let w = model.tensor(fc.filter).expect("filter");
            if w.dtype == DType::Int8 && w.dims.num_elements() <= 1500 {
                consts.push(Constant::Int8(fc.filter, w.data_i8().expect("i8")));
            }
        }
    }
    let mut payload = vec![0u8; fixnet::storage::encoded_len(consts.iter().copied())];
    encode_constants(consts.iter().copied(), &mut payload).expect("encode");
    let mut store = WeightStore::new(
        RamFlash {
            mem: vec![0xFF; 4 * SECTOR],
        },
        0,
        (2 * SECTOR) as u32,
    )
    .expect("geometry");
    let mut states = vec![store_mem(&mut store)];
    store.save(model.crc(), &payload).expect("save");
    states.push(store_mem(&mut store));
    store.save(model.crc(), &payload[..4]).expect("save");
    states.push(store_mem(&mut store));
    for (i, mem) in states.iter().enumerate() {
        for mode in 0..4u8 {
            let mut s = vec![mode];
            s.extend_from_slice(&mem[..4 * SECTOR]);
            put(&dir, "storage", &format!("flash{i}_mode{mode}"), &s);
        }
    }
    let mut s = vec![0u8];
    s.extend_from_slice(&payload);
    put(&dir, "storage", "payload", &s);
    println!(
        "seeds written to {} (model CRC of the storage seeds {:#010x}, payload CRC {:#010x})",
        dir.display(),
        model.crc(),
        crc32(&payload)
    );
}

fn store_mem(store: &mut WeightStore<RamFlash>) -> Vec<u8> {
    // WeightStore hands its flash back only by value: take it out, copy, put it back.
    let geometry = |mem| WeightStore::new(RamFlash { mem }, 0, (2 * SECTOR) as u32);
    let taken = std::mem::replace(store, geometry(vec![0xFF; 4 * SECTOR]).expect("geometry"));
    let mem = taken.release().mem;
    *store = geometry(mem.clone()).expect("geometry");
    mem
}
