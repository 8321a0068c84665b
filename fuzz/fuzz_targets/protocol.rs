//! The serial protocol decoder and the firmware's request handler (`fixnet_app::Server`),
//! serving the embedded seed CNN. Each input is used twice: as a raw byte stream on the
//! link (COBS, delimiters, CRC, oversize frames), and as one message payload framed with a
//! correct CRC (so the postcard decoder and every request handler are reached).
#![no_main]

use fixnet::{Interpreter, Model};
use fixnet_app::protocol::{decode_frame, encode_frame, Request, Response, MAX_FRAME};
use fixnet_app::{BoardInfo, Server};
use fixnet_fuzz::{frame_raw, AcceptAll, MemLink, NoDelay, NoPin, Ticks};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const BOARD: BoardInfo = BoardInfo {
    name: "fuzz",
    firmware_version: "0",
    flash_bytes: 0,
    flash_erase_bytes: 0,
};

fn model() -> &'static Model<'static> {
    static MODEL: OnceLock<Model<'static>> = OnceLock::new();
    MODEL.get_or_init(|| Model::from_bytes(fixnet_app::MODEL).expect("embedded model"))
}

/// Serves `stream` and checks one decodable response per non-empty frame.
fn serve(stream: &[u8]) {
    let model = model();
    let mut arena = vec![0u8; model.arena_size()];
    let interp = Interpreter::new(model, &mut arena).expect("arena");
    let link = MemLink {
        input: stream,
        pos: 0,
        output: Vec::new(),
    };
    let mut server = Server::with_backend(
        AcceptAll::new(interp),
        link,
        NoPin,
        NoDelay,
        Ticks(0),
        BOARD,
    )
    .expect("server");
    while server.poll().expect("in-memory link") > 0 {}
    let stats = server.stats();
    let out = std::mem::take(&mut server.link_mut().output);
    let mut replies = 0u32;
    for frame in out.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let mut frame = frame.to_vec();
        decode_frame::<Response>(&mut frame).expect("the server's replies decode");
        replies += 1;
    }
    assert_eq!(replies, stats.requests, "one reply per frame");
    // Frames: runs between delimiters that are non-empty (or oversize).
    let frames = stream
        .split(|&b| b == 0)
        .take(stream.iter().filter(|&&b| b == 0).count())
        .filter(|f| !f.is_empty())
        .count() as u32;
    assert_eq!(
        replies, frames,
        "every complete frame gets exactly one reply"
    );
}

fuzz_target!(|data: &[u8]| {
    // The decoder alone, on the raw bytes as one frame, both message types.
    let mut copy = data.to_vec();
    if let Ok(request) = decode_frame::<Request>(&mut copy) {
        // Whatever decodes re-encodes to a frame that decodes to the same request.
        let mut scratch = vec![0u8; MAX_FRAME + 64];
        let mut out = vec![0u8; 2 * MAX_FRAME];
        let frame = encode_frame(&request, &mut scratch, &mut out).expect("re-encode");
        let mut again = frame[..frame.len() - 1].to_vec();
        assert_eq!(
            decode_frame::<Request>(&mut again).expect("re-decode"),
            request
        );
    }
    let mut copy = data.to_vec();
    let _ = decode_frame::<Response>(&mut copy);

    serve(data);
    if data.len() <= MAX_FRAME {
        serve(&frame_raw(data));
    }
});
