//! Building the QEMU boards' firmware (`boards/qemu-mps2-an386`, the Cortex-M4F CI board,
//! and `boards/microbit`, the BBC micro:bit's nRF51822) and running it in `qemu-system-arm`.

use anyhow::{bail, ensure, Context, Result};
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{tcp_link, Device};

/// The board crate's directory in this repository.
pub fn board_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/qemu-mps2-an386")
}

/// The target the board builds for.
pub const TARGET: &str = "thumbv7em-none-eabihf";

/// The QEMU command line, without `-serial` and `-kernel`: `-icount shift=0` makes SysTick
/// count guest instructions (40 per tick), semihosting gives the firmware console output
/// and the flash file.
pub const QEMU_ARGS: &[&str] = &[
    "-cpu",
    "cortex-m4",
    "-machine",
    "mps2-an386",
    "-nographic",
    "-monitor",
    "none",
    "-semihosting-config",
    "enable=on,target=native",
    "-icount",
    "shift=0",
];

/// The QEMU command line of the benchmark firmware on the micro:bit machine: semihosting
/// for its report and exit, `-icount shift=0` for its TIMER0 (62.5 instructions a tick).
pub const MICROBIT_BENCH_ARGS: &[&str] = &[
    "-machine",
    "microbit",
    "-nographic",
    "-monitor",
    "none",
    "-semihosting-config",
    "enable=on,target=native",
    "-icount",
    "shift=0",
];

/// A board QEMU emulates and the firmware crate that runs on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The board's name, as its firmware reports it in `info`.
    pub name: &'static str,
    /// The board crate, relative to the repository root.
    pub crate_dir: &'static str,
    /// The firmware binary.
    pub bin: &'static str,
    /// The Rust target the crate builds for.
    pub target: &'static str,
    /// Cargo features the QEMU build needs.
    pub features: &'static [&'static str],
    /// The QEMU command line, without `-monitor`, `-serial` and `-kernel`.
    pub args: &'static [&'static str],
    /// The model the firmware embeds by default, relative to the repository root.
    pub model: &'static str,
    /// What the emulated core is, for reports.
    pub core: &'static str,
}

/// QEMU's `mps2-an386` (Cortex-M4F): the CI board, semihosting flash file.
pub const MPS2_AN386: Machine = Machine {
    name: "qemu-mps2-an386",
    crate_dir: "boards/qemu-mps2-an386",
    bin: "fixnet-qemu-mps2-an386",
    target: TARGET,
    features: &[],
    args: QEMU_ARGS,
    model: "models/seed_cnn.fxn",
    core: "QEMU Cortex-M4",
};

/// QEMU's `microbit` (BBC micro:bit v1: nRF51822, Cortex-M0, 16 KiB RAM), with its UART0
/// and NVMC flash modelled. `-icount shift=0`: TIMER0 follows the virtual clock, one
/// nanosecond per instruction, which the firmware's `qemu` feature turns into instructions.
pub const MICROBIT: Machine = Machine {
    name: "microbit",
    crate_dir: "boards/microbit",
    bin: "fixnet-microbit",
    target: "thumbv6m-none-eabi",
    features: &["qemu"],
    args: &["-machine", "microbit", "-nographic", "-icount", "shift=0"],
    model: "models/microbit_cnn.fxn",
    core: "QEMU micro:bit Cortex-M0",
};

impl Machine {
    /// The machine called `name` (`qemu-mps2-an386`/`mps2-an386`, or `microbit`).
    pub fn named(name: &str) -> Result<Machine> {
        match name {
            "qemu-mps2-an386" | "mps2-an386" => Ok(MPS2_AN386),
            "microbit" => Ok(MICROBIT),
            _ => bail!("no QEMU board {name}: mps2-an386 or microbit"),
        }
    }

    /// The board crate's directory in this repository.
    pub fn dir(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(self.crate_dir)
    }

    /// The model the firmware embeds by default.
    pub fn default_model(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(self.model)
    }

    /// Builds the firmware for QEMU (release, the machine's features) with `model`
    /// embedded (default: the board's own). Returns the ELF.
    pub fn build(&self, model: Option<&Path>) -> Result<PathBuf> {
        let mut args = vec!["build", "--release", "--bin", self.bin];
        let features = self.features.join(",");
        if !features.is_empty() {
            args.extend(["--features", features.as_str()]);
        }
        let status = cargo_in(&self.dir(), &args, model)?
            .status()
            .context("cannot run cargo to build the firmware")?;
        ensure!(status.success(), "building the firmware failed ({status})");
        let elf = self
            .dir()
            .join("target")
            .join(self.target)
            .join("release")
            .join(self.bin);
        ensure!(elf.exists(), "no firmware at {}", elf.display());
        Ok(elf)
    }
}

/// Fails with install instructions when `qemu-system-arm` is missing.
pub fn check_qemu() -> Result<()> {
    match Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => bail!(
            "qemu-system-arm not found: install it (Debian/Ubuntu: apt-get install qemu-system-arm)"
        ),
    }
}

/// Fails, naming what is missing, unless this machine can build and run the QEMU firmware
/// for every one of `targets`: `qemu-system-arm` on the path and each Rust target installed
/// in the toolchain that builds the board (its standard library in the sysroot, where
/// `rustup target add` puts it). The QEMU tests skip on this error outside CI and fail under
/// CI, which installs both (`.ci/run`, `rust-toolchain.toml`).
pub fn check_qemu_and_targets(targets: &[&str]) -> Result<()> {
    check_qemu()?;
    let sysroot = board_sysroot()?;
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !sysroot.join("lib/rustlib").join(t).is_dir())
        .collect();
    ensure!(
        missing.is_empty(),
        "the Rust target(s) {} are not installed in {} (rustup target add {})",
        missing.join(", "),
        sysroot.display(),
        missing.join(" ")
    );
    Ok(())
}

/// The sysroot of the `rustc` that builds the board: asked from the board's directory, so
/// that the toolchain file chooses it as it does for the build.
fn board_sysroot() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(board_dir())
        .env_remove("RUSTC")
        .output()
        .context("cannot run rustc")?;
    ensure!(out.status.success(), "rustc --print sysroot failed");
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `cargo ARGS` in the board's workspace with `model` embedded (default: the shipped seed
/// CNN). The board's own .cargo/config.toml chooses its target and linker script; settings
/// of an enclosing cargo (when run from `cargo test`) must not leak in.
pub fn board_cargo(args: &[&str], model: Option<&Path>) -> Result<Command> {
    cargo_in(&board_dir(), args, model)
}

/// `cargo ARGS` in the board crate at `dir`, as [`board_cargo`] describes.
pub fn cargo_in(dir: &Path, args: &[&str], model: Option<&Path>) -> Result<Command> {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdout(Stdio::null());
    match model {
        Some(m) => {
            let m = std::fs::canonicalize(m)
                .with_context(|| format!("cannot find model {}", m.display()))?;
            cmd.env("FIXNET_MODEL", m);
        }
        None => {
            cmd.env_remove("FIXNET_MODEL");
        }
    }
    Ok(cmd)
}

/// `cargo build --release --bin BIN` in the board crate, with `model` embedded (default:
/// the shipped seed CNN). Returns the ELF.
pub fn build_firmware(bin: &str, model: Option<&Path>) -> Result<PathBuf> {
    let dir = board_dir();
    ensure_target()?;
    let status = board_cargo(&["build", "--release", "--bin", bin], model)?
        .status()
        .context("cannot run cargo to build the firmware")?;
    ensure!(status.success(), "building the firmware failed ({status})");
    let elf = dir.join("target").join(TARGET).join("release").join(bin);
    ensure!(elf.exists(), "no firmware at {}", elf.display());
    Ok(elf)
}

/// Installs the thumb target with rustup if the toolchain lacks it.
fn ensure_target() -> Result<()> {
    let sysroot = board_sysroot()?;
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return Ok(());
    }
    eprintln!("installing the Rust target {TARGET} (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("the Rust target {TARGET} is missing and rustup is not available")?;
    ensure!(status.success(), "rustup target add {TARGET} failed");
    Ok(())
}

/// A running QEMU board; killed when dropped.
pub struct QemuBoard {
    child: Child,
    port: u16,
    /// The loopback port of QEMU's monitor, if it has one.
    monitor: Option<u16>,
    log: PathBuf,
    /// The connection made while waiting for QEMU to listen, for the first `connect`.
    first: Option<TcpStream>,
}

impl QemuBoard {
    /// Starts `elf` with its UART0 on a free loopback TCP port, in `state_dir` (which holds
    /// the emulated flash file `fixnet-flash.bin` and the console log `qemu.log`).
    pub fn start(elf: &Path, state_dir: &Path) -> Result<Self> {
        Self::start_on(&MPS2_AN386, elf, state_dir)
    }

    /// Starts `elf` on `machine` as [`QemuBoard::start`] does, with QEMU's monitor on
    /// another loopback port when the machine keeps its flash only in the process (the
    /// micro:bit), so that [`QemuBoard::reset`] can cut the power without losing it.
    pub fn start_on(machine: &Machine, elf: &Path, state_dir: &Path) -> Result<Self> {
        check_qemu()?;
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        let log = state_dir.join("qemu.log");
        // Another process may take the port between our probe and QEMU's bind: retry.
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            let monitor = if machine.args.contains(&"-monitor") {
                None
            } else {
                Some(free_port()?)
            };
            let monitor_arg = match monitor {
                Some(m) => format!("tcp:127.0.0.1:{m},server=on,wait=off"),
                None => "none".into(),
            };
            let out = File::create(&log)?;
            let mut cmd = Command::new("qemu-system-arm");
            cmd.args(machine.args);
            if !machine.args.contains(&"-monitor") {
                cmd.arg("-monitor").arg(monitor_arg);
            }
            let child = cmd
                .arg("-serial")
                .arg(format!("tcp:127.0.0.1:{port},server=on,wait=off"))
                .arg("-kernel")
                .arg(elf)
                .current_dir(state_dir)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .context("cannot start qemu-system-arm")?;
            let mut board = QemuBoard {
                child,
                port,
                monitor,
                log: log.clone(),
                first: None,
            };
            match board.wait_listening() {
                Ok(stream) => {
                    board.first = Some(stream);
                    return Ok(board);
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    drop(board);
                    // A missing or broken firmware is not worth retrying on another port.
                    if !text.contains("in use") && !text.contains("bind") {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("QEMU did not start")))
    }

    /// The `tcp:HOST:PORT` address of the board's serial port.
    pub fn address(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port)
    }

    /// Connects to the board's serial port (QEMU serves one connection at a time).
    pub fn connect(&mut self) -> Result<Device> {
        match self.first.take() {
            Some(stream) => Device::over(tcp_link(stream)?),
            None => Device::open(&self.address()),
        }
    }

    /// What the firmware printed over semihosting (and QEMU's own messages).
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id of QEMU.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resets the emulated board at once through QEMU's monitor (`system_reset`), as a power
    /// cut would stop it; memory that QEMU keeps in the process, such as the micro:bit's
    /// flash, survives. Then the serial port is reconnected with [`QemuBoard::connect`].
    pub fn reset(&mut self) -> Result<()> {
        use std::io::Write as _;
        let port = self
            .monitor
            .context("this QEMU board was started without a monitor")?;
        let mut monitor =
            TcpStream::connect(("127.0.0.1", port)).context("cannot connect to QEMU's monitor")?;
        monitor.write_all(b"system_reset\n")?;
        monitor.flush()?;
        // The monitor greets with a prompt, and prompts again once the command ran.
        monitor.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        while seen.matches("(qemu)").count() < 2 {
            let n = std::io::Read::read(&mut monitor, &mut buf)
                .context("no answer from QEMU's monitor")?;
            ensure!(n > 0, "QEMU's monitor closed");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        self.first = None;
        Ok(())
    }

    /// Kills QEMU at once (as a power cut would stop a board) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_listening(&mut self) -> Result<TcpStream> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("QEMU exited ({status}): {}", self.console().trim());
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                return Ok(stream);
            }
            ensure!(
                Instant::now() < deadline,
                "QEMU did not open its serial port"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for QemuBoard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The directory `fixnet qemu` keeps the board's flash file in between runs.
pub fn default_state_dir() -> PathBuf {
    board_dir().join("target/state")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_target_is_named() {
        let err = check_qemu_and_targets(&[TARGET, "thumbv5te-none-eabi-missing"])
            .unwrap_err()
            .to_string();
        // Without QEMU that is the first thing missing; with it, the made-up target.
        assert!(
            err.contains("qemu-system-arm not found")
                || (err.contains("thumbv5te-none-eabi-missing") && !err.contains(TARGET)),
            "{err}"
        );
    }
}
