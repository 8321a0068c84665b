//! `fixnet inspect`: what is inside a model file.

use anyhow::{anyhow, Result};
use fixnet::format::{crc32::crc32, Op, Tensor};
use fixnet::Model;
use std::fmt::Write as _;

/// One layer's summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// Op name.
    pub op: &'static str,
    /// Geometry and activation clamp, e.g. `3x3 /1 VALID clamp[-128,127]`.
    pub detail: String,
    /// Input dimensions.
    pub input: Vec<u16>,
    /// Output dimensions.
    pub output: Vec<u16>,
    /// Weights and biases.
    pub params: usize,
    /// Multiply-accumulates of one inference.
    pub macs: usize,
}

/// A whole model's summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Layers in execution order.
    pub layers: Vec<LayerInfo>,
    /// Bytes of the model blob (flash).
    pub flash_bytes: usize,
    /// Bytes of arena (RAM for activations) the interpreter needs.
    pub arena_bytes: usize,
    /// CRC-32 stored in the model.
    pub crc_stored: u32,
    /// CRC-32 of the bytes.
    pub crc_computed: u32,
}

impl Report {
    /// True when the stored CRC matches the bytes.
    pub fn crc_ok(&self) -> bool {
        self.crc_stored == self.crc_computed
    }

    /// Total parameters.
    pub fn params(&self) -> usize {
        self.layers.iter().map(|l| l.params).sum()
    }

    /// Total MACs.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(|l| l.macs).sum()
    }
}

/// Summarises a model whose structure is valid; the CRC is checked and reported rather than
/// enforced, so a corrupted file can still be looked at.
pub fn inspect(bytes: &[u8]) -> Result<Report> {
    let model =
        Model::from_bytes_unchecked_crc(bytes).map_err(|e| anyhow!("invalid fixnet model: {e}"))?;
    let blob = model.as_bytes();
    let crc_computed = crc32(&blob[..blob.len().saturating_sub(4)]);
    let mut layers = Vec::new();
    for (i, op) in model.ops().enumerate() {
        let op = op.map_err(|e| anyhow!("op {i}: {e}"))?;
        layers.push(layer(&model, &op).map_err(|e| anyhow!("op {i}: {e}"))?);
    }
    Ok(Report {
        layers,
        flash_bytes: model.len(),
        arena_bytes: model.arena_size(),
        crc_stored: model.crc(),
        crc_computed,
    })
}

fn layer(model: &Model<'_>, op: &Op<'_>) -> Result<LayerInfo, fixnet::Error> {
    let input = model.tensor(op.input())?;
    let output = model.tensor(op.output())?;
    let out_elems = output.dims.num_elements();
    let clamp = |lo: i8, hi: i8| {
        if (lo, hi) == (i8::MIN, i8::MAX) {
            String::new()
        } else {
            format!(" clamp[{lo},{hi}]")
        }
    };
    let weights = |id| -> Result<(Tensor<'_>, usize), fixnet::Error> {
        let t = model.tensor(id)?;
        Ok((t, t.dims.num_elements()))
    };
    let (detail, params, macs) = match op {
        Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
            let (f, n) = weights(c.filter)?;
            let (_, nb) = weights(c.bias)?;
            let (kh, kw) = (f.dims.get(1), f.dims.get(2));
            // Each output value takes one filter window: KH·KW taps times the input depth for
            // a convolution, a single channel for a depthwise one.
            let per_output = if matches!(op, Op::Conv2d(_)) {
                kh * kw * f.dims.get(3)
            } else {
                kh * kw
            };
            let dm = if c.depth_multiplier > 1 {
                format!(" x{}", c.depth_multiplier)
            } else {
                String::new()
            };
            (
                format!(
                    "{kh}x{kw} /{} {}{dm}{}",
                    c.stride_h,
                    padding(c.padding),
                    clamp(c.act_min, c.act_max)
                ),
                n + nb,
                out_elems.saturating_mul(per_output),
            )
        }
        Op::MaxPool(p) | Op::AvgPool(p) => (
            format!(
                "{}x{} /{} {}{}",
                p.kernel_h,
                p.kernel_w,
                p.stride_h,
                padding(p.padding),
                clamp(p.act_min, p.act_max)
            ),
            0,
            0,
        ),
        Op::FullyConnected(f) => {
            let (w, n) = weights(f.filter)?;
            let (_, nb) = weights(f.bias)?;
            (
                clamp(f.act_min, f.act_max).trim().to_string(),
                n + nb,
                w.dims.num_elements(),
            )
        }
        Op::Add(a) => (
            format!(
                "t{} + t{}{}",
                a.input1,
                a.input2,
                clamp(a.act_min, a.act_max)
            ),
            0,
            0,
        ),
        Op::Mul(m) => (
            format!(
                "t{} * t{}{}",
                m.input1,
                m.input2,
                clamp(m.act_min, m.act_max)
            ),
            0,
            out_elems,
        ),
        Op::Lookup(l) => (l.function.name().to_string(), 256, 0),
        Op::Mean(_) => (String::new(), 0, input.dims.num_elements()),
        Op::Pad(p) => (format!("{:?}", p.paddings), 0, 0),
        Op::Concatenation(c) => (format!("{} inputs, axis {}", c.inputs.len(), c.axis), 0, 0),
        Op::Softmax(_) | Op::Reshape { .. } => (String::new(), 0, 0),
    };
    Ok(LayerInfo {
        op: op.kind().name(),
        detail,
        input: input.dims.as_slice().to_vec(),
        output: output.dims.as_slice().to_vec(),
        params,
        macs,
    })
}

/// TFLite's spelling.
fn padding(p: fixnet::Padding) -> &'static str {
    match p {
        fixnet::Padding::Valid => "VALID",
        fixnet::Padding::Same => "SAME",
    }
}

/// Groups digits by thousands: 1234567 → `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn dims(d: &[u16]) -> String {
    let parts: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// The human-readable table.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let rows: Vec<[String; 6]> = r
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            [
                i.to_string(),
                l.op.to_string(),
                l.detail.clone(),
                format!("{} -> {}", dims(&l.input), dims(&l.output)),
                thousands(l.params),
                thousands(l.macs),
            ]
        })
        .collect();
    let header = ["#", "op", "", "input -> output", "params", "MACs"];
    let mut width = header.map(str::len);
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String; 6]| {
        format!(
            "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:>w4$}  {:>w5$}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
            w4 = width[4],
            w5 = width[5]
        )
        .trim_end()
        .to_string()
    };
    let _ = writeln!(s, "{}", line(&header.map(String::from)));
    for row in &rows {
        let _ = writeln!(s, "{}", line(row));
    }
    let _ = writeln!(
        s,
        "total: {} layers, {} parameters, {} MACs per inference",
        r.layers.len(),
        thousands(r.params()),
        thousands(r.macs())
    );
    let _ = writeln!(s, "flash: {} bytes (model file)", thousands(r.flash_bytes));
    let _ = writeln!(
        s,
        "arena: {} bytes (RAM for activations)",
        thousands(r.arena_bytes)
    );
    if r.crc_ok() {
        let _ = writeln!(s, "CRC-32: ok ({:#010x})", r.crc_stored);
    } else {
        let _ = writeln!(
            s,
            "CRC-32: MISMATCH (stored {:#010x}, computed {:#010x}): the file is corrupt",
            r.crc_stored, r.crc_computed
        );
    }
    s
}
