//! A 5×7 bitmap font for the digits and the signs of short sums, drawn scaled into scenes.

/// Glyph rows, `#` for ink, top to bottom.
fn glyph(c: char) -> Option<[&'static str; 7]> {
    Some(match c {
        '0' => [
            " ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### ",
        ],
        '1' => [
            "  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        '2' => [
            " ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####",
        ],
        '3' => [
            "#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### ",
        ],
        '4' => [
            "   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # ",
        ],
        '5' => [
            "#####", "#    ", "#### ", "    #", "    #", "#   #", " ### ",
        ],
        '6' => [
            "  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### ",
        ],
        '7' => [
            "#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   ",
        ],
        '8' => [
            " ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### ",
        ],
        '9' => [
            " ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  ",
        ],
        '+' => [
            "     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     ",
        ],
        '=' => [
            "     ", "     ", "#####", "     ", "#####", "     ", "     ",
        ],
        _ => return None,
    })
}

/// Glyph width and height in font pixels; a character advances by `ADVANCE`.
pub const GLYPH_W: u32 = 5;
/// See [`GLYPH_W`].
pub const GLYPH_H: u32 = 7;
/// Horizontal step from one character to the next.
pub const ADVANCE: u32 = 6;

/// The width of `text` at `scale` (image pixels per font pixel).
pub fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u32;
    (n * ADVANCE).saturating_sub(ADVANCE - GLYPH_W) * scale
}

/// The ink cells of `text` as (column, row) in font pixels from its top-left corner.
/// Characters the font lacks are skipped (the scenes only write what it has).
pub fn ink(text: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        for (y, row) in rows.iter().enumerate() {
            for (x, b) in row.bytes().enumerate() {
                if b == b'#' {
                    out.push((i as u32 * ADVANCE + x as u32, y as u32));
                }
            }
        }
    }
    out
}

/// Whether the font draws `c`.
pub fn has(c: char) -> bool {
    glyph(c).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_glyph_is_five_by_seven_and_distinct() {
        let chars: Vec<char> = "0123456789+=".chars().collect();
        let mut seen = std::collections::HashSet::new();
        for &c in &chars {
            let rows = glyph(c).unwrap();
            assert!(rows.iter().all(|r| r.len() == GLYPH_W as usize), "{c}");
            assert!(seen.insert(rows), "{c} repeats a glyph");
        }
        assert!(!has('a'));
        assert_eq!(text_width("3+4=", 2), (4 * 6 - 1) * 2);
        assert_eq!(ink("1").len(), 10);
    }
}
