//! CLI robustness: every subcommand that reads a file, fed a missing, empty, truncated,
//! wrong-format or huge file in each of its file arguments, answers with exactly one
//! `error: …` line and exit code 1 — never a panic (which the binary would report as
//! "internal error"), an abort or a signal — within bounded time and memory.
//!
//! Each case runs under `ulimit -v` (2 GiB of address space) and a 60 s timeout. "Huge" is
//! a sparse 2 GiB file (`set_len`, no disk used), an IDX header announcing 10⁹ images, and a
//! gzip stream that inflates to 3 GiB. The tool refuses those from their headers (model
//! files: magic and declared length; IDX files: the announced size, inflating no more than
//! it), checked under tighter caps by the two regression tests at the end (findings F4, F5).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MEMORY_KIB: u64 = 2 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    seconds: f64,
    timed_out: bool,
}

/// Runs the binary with a memory cap and a timeout.
fn run(args: &[String]) -> Outcome {
    run_limited(args, MEMORY_KIB)
}

/// Runs the binary with `kib` KiB of address space and a timeout.
fn run_limited(args: &[String], kib: u64) -> Outcome {
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_fixnet"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fixnet");
    let mut timed_out = false;
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        seconds: start.elapsed().as_secs_f64(),
        timed_out,
    }
}

/// Why an outcome is not "one clear error line, exit 1", or `None` if it is.
fn problem(o: &Outcome) -> Option<String> {
    let lines: Vec<&str> = o.stderr.lines().collect();
    if o.timed_out {
        return Some(format!("no answer within {TIMEOUT:?}"));
    }
    if o.code != Some(1) {
        return Some(format!("exit {:?}: {:?}", o.code, o.stderr.trim()));
    }
    if lines.len() != 1 || !lines[0].starts_with("error: ") {
        return Some(format!("stderr is not one error line: {:?}", o.stderr));
    }
    if o.stderr.contains("internal error") || o.stderr.contains("panicked") {
        return Some(format!("panicked: {}", lines[0]));
    }
    None
}

// ------------------------------------------------------------------ the files

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Self {
        // One directory per instance: the tests run in parallel and each removes its own.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("fixnet-cli-robustness-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// A sparse file of `len` zero bytes (no disk blocks used).
    fn sparse(&self, name: &str, len: u64) -> String {
        let p = self.dir.join(name);
        std::fs::File::create(&p).unwrap().set_len(len).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn missing(&self, name: &str) -> String {
        self.dir
            .join(format!("missing-{name}"))
            .to_str()
            .unwrap()
            .to_string()
    }
}

fn real(rel: &str) -> Vec<u8> {
    std::fs::read(root().join(rel)).unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// IDX image header (magic 0x803) announcing `count` images of 28×28, then `body` bytes.
fn idx_images(count: u32, body: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0x803u32, count, 28, 28] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.resize(16 + body, 0);
    v
}

/// A gzip stream of an IDX image header followed by `zeros` zero bytes (a decompression bomb
/// of a few MB).
fn gz_bomb(zeros: u64) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&idx_images(1_000_000_000, 0)).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..zeros / block.len() as u64 {
        enc.write_all(&block).unwrap();
    }
    enc.finish().unwrap()
}

/// The kinds of bad file, per role of a file argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Model,
    Tflite,
    Keras,
    Images,
    Labels,
    Picture,
    Elf,
    /// A `.npy` of float32 model inputs (run / eval `--inputs`, `convert --calibrate`).
    Npy,
}

/// A `.npy` v1 file: `header` as its dictionary, then `body`.
fn npy_file(header: &str, body: &[u8]) -> Vec<u8> {
    let mut text = header.as_bytes().to_vec();
    text.push(b'\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(text.len() as u16).to_le_bytes());
    v.extend_from_slice(&text);
    v.extend_from_slice(body);
    v
}

/// 20 float32 inputs of 28×28×1 for the seed CNN (and the strided CNN's calibration).
fn good_npy() -> Vec<u8> {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (20, 28, 28, 1), }";
    let body: Vec<u8> = (0..20 * 784)
        .flat_map(|i| ((i % 256) as f32 / 255.0).to_le_bytes())
        .collect();
    npy_file(header, &body)
}

/// `(kind, path)` bad files for a role.
fn bad_files(f: &Files, role: Role) -> Vec<(String, String)> {
    let ext = match role {
        Role::Model => "fxn",
        Role::Tflite => "tflite",
        Role::Keras => "keras",
        Role::Images | Role::Labels => "idx",
        Role::Picture => "png",
        Role::Elf => "elf",
        Role::Npy => "npy",
    };
    let name = |kind: &str| format!("{role:?}-{kind}.{ext}").to_lowercase();
    let good: Vec<u8> = match role {
        Role::Model => real("models/seed_cnn.fxn"),
        Role::Tflite => real("tests/fixtures/models/strided_cnn_int8.tflite"),
        Role::Keras => real("tests/fixtures/models/strided_cnn.keras"),
        Role::Images => {
            gunzip(&real("data/mnist/test-images-idx3-ubyte.gz"))[..16 + 784 * 20].to_vec()
        }
        Role::Labels => gunzip(&real("data/mnist/test-labels-idx1-ubyte.gz"))[..8 + 20].to_vec(),
        Role::Picture => {
            let img = image::GrayImage::from_fn(40, 40, |x, y| {
                image::Luma([if (15..25).contains(&x) && y > 5 && y < 35 {
                    0
                } else {
                    255
                }])
            });
            let mut c = std::io::Cursor::new(Vec::new());
            img.write_to(&mut c, image::ImageFormat::Png).unwrap();
            c.into_inner()
        }
        Role::Elf => b"\x7fELF\x01\x01\x01\0".to_vec(),
        Role::Npy => good_npy(),
    };
    let wrong: Vec<u8> = match role {
        Role::Model | Role::Tflite | Role::Keras | Role::Elf => {
            gunzip(&real("data/mnist/test-labels-idx1-ubyte.gz"))[..100].to_vec()
        }
        Role::Images => idx_labels(),
        Role::Labels => gunzip(&real("data/mnist/test-images-idx3-ubyte.gz"))[..16 + 784].to_vec(),
        Role::Picture => b"this is not a picture\n".to_vec(),
        Role::Npy => gunzip(&real("data/mnist/test-images-idx3-ubyte.gz"))[..16 + 784].to_vec(),
    };
    let mut v = vec![
        ("missing".to_string(), f.missing(&name("x"))),
        ("empty".to_string(), f.write(&name("empty"), &[])),
        (
            "truncated".to_string(),
            f.write(&name("truncated"), &good[..good.len() / 2]),
        ),
        (
            "one byte".to_string(),
            f.write(&name("onebyte"), &good[..1]),
        ),
        ("wrong format".to_string(), f.write(&name("wrong"), &wrong)),
        ("directory".to_string(), f.dir.to_str().unwrap().to_string()),
        (
            "huge sparse 2 GiB".to_string(),
            f.sparse(&name("huge"), 2 << 30),
        ),
    ];
    match role {
        Role::Images => {
            v.push((
                "IDX header claiming 10^9 images".into(),
                f.write(&name("billion"), &idx_images(1_000_000_000, 784 * 3)),
            ));
            v.push((
                "gzip inflating to 3 GiB".into(),
                f.write("bomb.idx.gz", &gz_bomb(3 << 30)),
            ));
        }
        Role::Labels => {
            let mut l = Vec::new();
            for w in [0x801u32, 1_000_000_000] {
                l.extend_from_slice(&w.to_be_bytes());
            }
            l.extend_from_slice(&[1, 2, 3]);
            v.push((
                "IDX header claiming 10^9 labels".into(),
                f.write(&name("billion"), &l),
            ));
        }
        Role::Model => {
            // A valid header announcing a 4 GiB blob.
            let mut m = good.clone();
            m[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
            v.push((
                "header claiming 4 GiB".into(),
                f.write(&name("claims4g"), &m),
            ));
            let mut m = good.clone();
            let n = m.len();
            m[n - 1] ^= 0x40;
            v.push(("bad CRC".into(), f.write(&name("badcrc"), &m)));
        }
        Role::Npy => {
            let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 784), }";
            v.push((
                "npy header claiming 10^9 inputs".into(),
                f.write(&name("billion"), &npy_file(header, &[0; 4096])),
            ));
            // A real header in front of 2 GiB: refused from the file's length.
            let p = f.write(&name("huge-with-header"), &npy_file(header, &[]));
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(2 << 30)
                .unwrap();
            v.push(("npy header then 2 GiB".into(), p));
        }
        _ => {}
    }
    v
}

fn idx_labels() -> Vec<u8> {
    gunzip(&real("data/mnist/test-labels-idx1-ubyte.gz"))[..8 + 20].to_vec()
}

/// Every subcommand with file arguments, as `(name, args, which argument is the role)`:
/// the placeholder `{}` is replaced by the bad file, the other files are good ones.
fn table(f: &Files) -> Vec<(String, Vec<String>, Role)> {
    let model = root()
        .join("models/seed_cnn.fxn")
        .to_str()
        .unwrap()
        .to_string();
    let images = f.write(
        "good-images.idx",
        &gunzip(&real("data/mnist/test-images-idx3-ubyte.gz"))[..16 + 784 * 20],
    );
    let labels = f.write("good-labels.idx", &idx_labels());
    let tflite = root()
        .join("tests/fixtures/models/strided_cnn_int8.tflite")
        .to_str()
        .unwrap()
        .to_string();
    let keras = root()
        .join("tests/fixtures/models/strided_cnn.keras")
        .to_str()
        .unwrap()
        .to_string();
    let out = |n: &str| f.dir.join(n).to_str().unwrap().to_string();
    let mut rows = Vec::new();
    let mut add =
        |name: &str, args: Vec<String>, role: Role| rows.push((name.to_string(), args, role));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let p = "{}";
    add(
        "convert .tflite",
        s(&["convert", p, "-o", &out("o1.fxn")]),
        Role::Tflite,
    );
    add(
        "convert .keras",
        s(&[
            "convert",
            p,
            "-o",
            &out("o2.fxn"),
            "--calibrate",
            &images,
            "--calibration-count",
            "10",
        ]),
        Role::Keras,
    );
    add(
        "convert --calibrate",
        s(&[
            "convert",
            &keras,
            "-o",
            &out("o3.fxn"),
            "--calibrate",
            p,
            "--calibration-count",
            "10",
        ]),
        Role::Images,
    );
    add("inspect", s(&["inspect", p]), Role::Model);
    add(
        "inspect --train-from",
        s(&["inspect", p, "--train-from", "6"]),
        Role::Model,
    );
    add(
        "eval --model",
        s(&[
            "eval", "--model", p, "--images", &images, "--labels", &labels,
        ]),
        Role::Model,
    );
    add(
        "eval --images",
        s(&[
            "eval", "--model", &model, "--images", p, "--labels", &labels,
        ]),
        Role::Images,
    );
    add(
        "eval --labels",
        s(&[
            "eval", "--model", &model, "--images", &images, "--labels", p,
        ]),
        Role::Labels,
    );
    add(
        "run --model",
        s(&[
            "run",
            "--model",
            p,
            "--images",
            &images,
            "--out",
            &out("o.npy"),
        ]),
        Role::Model,
    );
    add(
        "run --images",
        s(&[
            "run",
            "--model",
            &model,
            "--images",
            p,
            "--out",
            &out("o.npy"),
        ]),
        Role::Images,
    );
    add(
        "finetune --model",
        s(&[
            "finetune",
            "--model",
            p,
            "--images",
            &images,
            "--labels",
            &labels,
            "--per-class",
            "1",
            "--epochs",
            "1",
            "--test-images",
            &images,
            "--test-labels",
            &labels,
        ]),
        Role::Model,
    );
    add(
        "finetune --images",
        s(&[
            "finetune",
            "--model",
            &model,
            "--images",
            p,
            "--labels",
            &labels,
            "--per-class",
            "1",
            "--epochs",
            "1",
            "--test-images",
            &images,
            "--test-labels",
            &labels,
        ]),
        Role::Images,
    );
    add(
        "finetune --labels",
        s(&[
            "finetune",
            "--model",
            &model,
            "--images",
            &images,
            "--labels",
            p,
            "--per-class",
            "1",
            "--epochs",
            "1",
            "--test-images",
            &images,
            "--test-labels",
            &labels,
        ]),
        Role::Labels,
    );
    add(
        "predict --model",
        s(&["predict", "--model", p, &out("nothing.png")]),
        Role::Model,
    );
    add(
        "run --inputs",
        s(&[
            "run",
            "--model",
            &model,
            "--inputs",
            p,
            "--out",
            &out("o.npy"),
        ]),
        Role::Npy,
    );
    add(
        "eval --inputs",
        s(&[
            "eval", "--model", &model, "--inputs", p, "--labels", &labels,
        ]),
        Role::Npy,
    );
    add(
        "convert --calibrate .npy",
        s(&[
            "convert",
            &keras,
            "-o",
            &out("o4.fxn"),
            "--calibrate",
            p,
            "--calibration-count",
            "10",
        ]),
        Role::Npy,
    );
    add(
        "predict picture",
        s(&["predict", "--model", &model, p]),
        Role::Picture,
    );
    add(
        "device --port",
        s(&["device", "--port", p, "info"]),
        Role::Elf,
    );
    add(
        "qemu --elf",
        s(&["qemu", "--elf", p, "--count", "1"]),
        Role::Elf,
    );
    let _ = tflite;
    rows
}

/// Cases known to fail today, with the reason; `known_failures_are_fixed` checks them.
/// Each entry is `(row, kind)`.
const KNOWN: &[(&str, &str)] = &[];

fn cases(f: &Files) -> Vec<(String, String, Vec<String>)> {
    let mut all = Vec::new();
    for (row, args, role) in table(f) {
        for (kind, path) in bad_files(f, role) {
            let args: Vec<String> = args
                .iter()
                .map(|a| if a == "{}" { path.clone() } else { a.clone() })
                .collect();
            all.push((row.clone(), kind, args));
        }
    }
    all
}

#[test]
fn every_subcommand_answers_bad_files_with_one_error_line() {
    let f = Files::new();
    let mut failures = Vec::new();
    let mut n = 0;
    let mut slowest = (0.0f64, String::new());
    for (row, kind, args) in cases(&f) {
        if KNOWN.contains(&(row.as_str(), kind.as_str())) {
            continue;
        }
        let o = run(&args);
        n += 1;
        if o.seconds > slowest.0 {
            slowest = (o.seconds, format!("{row} / {kind}"));
        }
        if let Some(p) = problem(&o) {
            failures.push(format!("{row} / {kind}: {p}"));
        }
    }
    eprintln!("{n} cases, slowest {:.1} s ({})", slowest.0, slowest.1);
    let _ = std::fs::remove_dir_all(&f.dir);
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn usage_errors_are_one_line_too() {
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["inspect"],
        vec!["eval", "--model"],
        vec!["convert", "x.tflite"],
        vec!["convert", "x.onnx", "-o", "y.fxn"],
        vec![
            "run", "--model", "m.fxn", "--images", "i", "--out", "o", "--limit", "-3",
        ],
        vec![
            "finetune",
            "--model",
            "models/seed_cnn.fxn",
            "--images",
            "x",
            "--labels",
            "y",
            "--lr",
            "nan",
        ],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let o = run(&args);
        assert_eq!(problem(&o), None, "{args:?}");
    }
}

#[test]
fn known_failures_are_fixed() {
    let f = Files::new();
    let mut failures = Vec::new();
    for (row, kind, args) in cases(&f) {
        if KNOWN.contains(&(row.as_str(), kind.as_str())) {
            if let Some(p) = problem(&run(&args)) {
                failures.push(format!("{row} / {kind}: {p}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&f.dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn sh_args(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Finding F4 (fixed): `ModelBytes::read` (tools/src/fxn.rs) read and copied a whole file before the
/// parser saw its first byte: `fixnet inspect` on 2 GiB of zeros took about 4 GiB of RAM
/// and 13 s to answer "bad magic"; under a 256 MiB cap it could only say "out of memory".
#[test]
fn huge_model_file_is_refused_from_its_header() {
    let f = Files::new();
    let huge = f.sparse("zeros.fxn", 2 << 30);
    let o = run_limited(&sh_args(&["inspect", &huge]), 256 * 1024);
    let _ = std::fs::remove_dir_all(&f.dir);
    assert_eq!(problem(&o), None);
    assert!(o.stderr.contains("bad magic"), "{}", o.stderr);
    assert!(o.seconds < 5.0, "{} s", o.seconds);
}

/// Finding F5 (fixed): `idx::read_maybe_gz` (tools/src/idx.rs) inflated a whole gzip stream before
/// parsing the IDX header: 14 MB of gzip announcing 10⁹ images inflated to 3 GiB (3.2 GB
/// of RAM) before the header mismatch was reported; under a 512 MiB cap the answer was
/// "corrupt gzip data: out of memory".
#[test]
fn gzip_bomb_is_refused_from_its_header() {
    let f = Files::new();
    let bomb = f.write("bomb.idx.gz", &gz_bomb(3 << 30));
    let labels = f.write("labels.idx", &idx_labels());
    let model = root()
        .join("models/seed_cnn.fxn")
        .to_str()
        .unwrap()
        .to_string();
    let o = run_limited(
        &sh_args(&[
            "eval", "--model", &model, "--images", &bomb, "--labels", &labels,
        ]),
        512 * 1024,
    );
    let _ = std::fs::remove_dir_all(&f.dir);
    assert_eq!(problem(&o), None);
    assert!(o.stderr.contains("announces"), "{}", o.stderr);
}
