//! Bar charts for the terminal.

/// Width of a bar, in characters.
pub const WIDTH: usize = 40;

/// A bar of `share` (0..=1) over `width` characters, drawn with eighth
/// blocks and padded with spaces, so columns after it line up.
pub fn bar(share: f64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let share = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (share * (width * 8) as f64).round() as usize;
    let full = eighths / 8;
    let rest = eighths % 8;
    let mut s = "█".repeat(full);
    if full < width {
        s.push(PARTS.get(rest).copied().unwrap_or(' '));
        s.push_str(&" ".repeat(width - full - 1));
    }
    s
}

/// `part / whole` as a fraction, 0 when `whole` is 0.
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_have_a_fixed_width() {
        for s in [0.0, 0.01, 0.5, 0.999, 1.0, 2.0, f64::NAN] {
            assert_eq!(bar(s, 10).chars().count(), 10, "{s}");
        }
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 4), "██  ");
        assert_eq!(bar(0.0, 3), "   ");
        assert_eq!(bar(1.0 / 16.0, 2), "▏ ");
        assert_eq!(bar(0.25, 2), "▌ ");
    }
}
