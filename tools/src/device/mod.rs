//! Talking to a board that runs fixnet's firmware (`boards/`), over a serial port or TCP
//! (QEMU's serial port), with the protocol of [`fixnet_app::protocol`]; and running the QEMU
//! board ([`qemu`]) and its benchmark ([`bench`]).

pub mod bench;
pub mod commands;
pub mod qemu;

use anyhow::{anyhow, bail, Context, Result};
use fixnet_app::protocol::MAX_FRAME;
use fixnet_app::{
    decode_frame, encode_frame, Classification, ErrorCode, Info, Request, Response, Weights,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub use fixnet_app;

/// Longest a reply may take: a classification is ~25 M instructions, a save of the weights
/// over semihosting a few seconds; a real board at 115200 baud needs ~70 ms per image.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A byte stream to a board.
pub trait Link: Read + Write + Send {}
impl<T: Read + Write + Send> Link for T {}

/// Opens `port`: `tcp:HOST:PORT` (e.g. QEMU's serial port) or a serial device such as
/// `/dev/ttyACM0` or `COM3` (115200 baud, 8N1).
pub fn open_link(port: &str) -> Result<Box<dyn Link>> {
    if let Some(addr) = port.strip_prefix("tcp:") {
        let stream =
            TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
        return tcp_link(stream);
    }
    open_serial(port)
}

/// A TCP connection as a link: no Nagle delay (frames are small and synchronous), and a
/// reply timeout.
pub fn tcp_link(stream: TcpStream) -> Result<Box<dyn Link>> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    Ok(Box::new(stream))
}

#[cfg(feature = "serial")]
fn open_serial(port: &str) -> Result<Box<dyn Link>> {
    let port = serialport::new(port, 115_200)
        .timeout(REPLY_TIMEOUT)
        .open()
        .with_context(|| format!("cannot open serial port {port}"))?;
    Ok(Box::new(port))
}

#[cfg(not(feature = "serial"))]
fn open_serial(port: &str) -> Result<Box<dyn Link>> {
    bail!("{port}: this fixnet was built without serial-port support (cargo feature `serial`); use tcp:HOST:PORT")
}

/// A board on the other end of a link: one request, one response.
pub struct Device {
    link: Box<dyn Link>,
    /// Bytes received after the last complete reply.
    pending: Vec<u8>,
}

impl Device {
    /// Opens `port` (see [`open_link`]).
    pub fn open(port: &str) -> Result<Self> {
        Self::over(open_link(port)?)
    }

    /// A device over an already open link. Sends one delimiter first, so that the firmware
    /// drops whatever partial frame an earlier host may have left behind.
    pub fn over(link: Box<dyn Link>) -> Result<Self> {
        let mut device = Device {
            link,
            pending: Vec::new(),
        };
        device.send_raw(&[0])?;
        Ok(device)
    }

    /// Sends raw bytes (for tests of malformed frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.link.write_all(bytes).context("writing to the board")?;
        self.link.flush().context("writing to the board")
    }

    /// Reads the next reply frame and decodes it.
    pub fn receive(&mut self) -> Result<Response> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == 0) {
                let mut frame: Vec<u8> = self.pending.drain(..=end).collect();
                frame.pop();
                if frame.is_empty() {
                    continue;
                }
                return decode_frame::<Response>(&mut frame)
                    .map_err(|e| anyhow!("the board sent a bad frame: {e:?}"));
            }
            if self.pending.len() > 4 * MAX_FRAME {
                bail!(
                    "the board sent {} bytes without a frame end",
                    self.pending.len()
                );
            }
            let mut buf = [0u8; 1024];
            let n = self
                .link
                .read(&mut buf)
                .context("no reply from the board")?;
            if n == 0 {
                bail!("the board closed the link");
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends `request` and returns its reply, error replies included.
    pub fn request(&mut self, request: &Request<'_>) -> Result<Response> {
        let mut scratch = vec![0u8; 2 * MAX_FRAME];
        let mut out = vec![0u8; 2 * MAX_FRAME];
        let frame = encode_frame(request, &mut scratch, &mut out)
            .map_err(|e| anyhow!("{e}"))?
            .to_vec();
        self.send_raw(&frame)?;
        self.receive()
    }

    /// The board's description.
    pub fn info(&mut self) -> Result<Info> {
        match self.request(&Request::Info)? {
            Response::Info(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Classifies one 28×28 image (or whatever the model takes).
    pub fn classify(&mut self, image: &[u8]) -> Result<Classification> {
        match self.request(&Request::Classify { image })? {
            Response::Classified(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    /// One fine-tuning step: the sample's loss before the step, and the weights after it.
    pub fn train(&mut self, image: &[u8], label: u8) -> Result<(f32, Weights)> {
        let (loss, _, weights) = self.train_counted(image, label)?;
        Ok((loss, weights))
    }

    /// One fine-tuning step, also giving the instructions or cycles the board spent on it.
    pub fn train_counted(&mut self, image: &[u8], label: u8) -> Result<(f32, u32, Weights)> {
        match self.request(&Request::TrainSample { image, label })? {
            Response::Trained {
                loss,
                count,
                weights,
            } => Ok((loss, count, weights)),
            other => Err(unexpected(other)),
        }
    }

    /// Persists the weights; the generation now in flash.
    pub fn save(&mut self) -> Result<u32> {
        match self.request(&Request::Save)? {
            Response::Saved { generation } => Ok(generation),
            other => Err(unexpected(other)),
        }
    }

    /// Goes back to factory weights.
    pub fn revert(&mut self) -> Result<()> {
        match self.request(&Request::Revert)? {
            Response::Reverted => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The board's counters.
    pub fn stats(&mut self) -> Result<fixnet_app::Stats> {
        match self.request(&Request::Stats)? {
            Response::Stats(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }
}

/// An error for a reply of the wrong kind, spelling out error replies.
fn unexpected(response: Response) -> anyhow::Error {
    match response {
        Response::Error(code) => anyhow!("the board answered: {}", describe(code)),
        other => anyhow!("unexpected reply from the board: {other:?}"),
    }
}

/// A sentence for an error reply.
pub fn describe(code: ErrorCode) -> String {
    match code {
        ErrorCode::Cobs => "the frame was not valid COBS".into(),
        ErrorCode::TooShort => "the frame was truncated".into(),
        ErrorCode::Crc => "the frame's CRC did not match (corrupted on the line)".into(),
        ErrorCode::Oversized => "the frame was longer than the board accepts".into(),
        ErrorCode::Malformed => "not a request this firmware knows (version mismatch?)".into(),
        ErrorCode::BadImage { expected, received } => {
            format!("the model takes {expected} pixels, not {received}")
        }
        ErrorCode::BadLabel => "the label is not one of the model's classes".into(),
        ErrorCode::Model => "the model failed to run".into(),
        ErrorCode::Unsupported => {
            "this firmware does not support fine-tuning (train, save, revert)".into()
        }
        ErrorCode::Storage => "the flash failed".into(),
    }
}
