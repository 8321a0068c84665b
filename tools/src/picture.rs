//! Digits as text pictures: Unicode half blocks, two pixel rows per line, so a 28×28 digit
//! is 28 columns by 14 lines in any terminal, without colours.

/// Renders a `side`×`side` grey image (0 = background) as `side / 2` lines of half blocks.
pub fn digit_lines(pixels: &[u8], side: usize) -> Vec<String> {
    let ink = |x: usize, y: usize| pixels.get(y * side + x).is_some_and(|&p| p >= 96);
    (0..side.div_ceil(2))
        .map(|row| {
            (0..side)
                .map(|x| match (ink(x, 2 * row), ink(x, 2 * row + 1)) {
                    (false, false) => ' ',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (true, true) => '█',
                })
                .collect()
        })
        .collect()
}

/// Lays out pictures side by side with a caption under each, `per_row` to a row.
pub fn gallery(items: &[(Vec<String>, String)], per_row: usize) -> String {
    let width = items
        .iter()
        .flat_map(|(lines, caption)| {
            lines
                .iter()
                .map(|l| l.chars().count())
                .chain([caption.chars().count()])
        })
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = String::new();
    for chunk in items.chunks(per_row.max(1)) {
        let height = chunk.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for row in 0..=height {
            let mut line = String::new();
            for (lines, caption) in chunk {
                let cell = if row < height {
                    lines.get(row).map(String::as_str).unwrap_or("")
                } else {
                    caption.as_str()
                };
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_blocks() {
        let mut px = vec![0u8; 4];
        px[0] = 255; // top-left
        px[3] = 255; // bottom-right
        assert_eq!(digit_lines(&px, 2), vec!["▀▄".to_string()]);
    }
}
