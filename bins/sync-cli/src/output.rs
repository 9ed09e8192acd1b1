//! Text for the terminal. Paths, titles, names and reasons come from users and their documents:
//! none of them reaches the terminal raw, so a name cannot recolour the screen, move the cursor
//! or forge a line of output.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters a terminal acts on or that reorder what it shows: C0 and C1 controls (ESC, CR,
/// line breaks, BEL, backspace, CSI), DEL, and the bidirectional overrides and isolates.
fn acts_on_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escaped(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| acts_on_terminal(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acts_on_terminal(c) && !keep(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A user-controlled value for one line of output: every control character (line breaks
/// included) and bidirectional override shown as a visible `\u{..}` escape.
pub fn one_line(text: &str) -> Cow<'_, str> {
    escaped(text, |_| false)
}

/// A whole block of the program's output: its own line breaks and tabs kept, every other
/// control character escaped. The last line of defence for a value not passed through
/// [`one_line`].
pub fn terminal(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c == '\n' || c == '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_shown_not_acted_on() {
        assert_eq!(one_line("plain/path.md"), "plain/path.md");
        assert_eq!(one_line("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(one_line("two\nlines\r"), "two\\u{a}lines\\u{d}");
        assert_eq!(one_line("\u{9b}2J\u{7}"), "\\u{9b}2J\\u{7}");
        assert_eq!(one_line("evil\u{202e}fdp.exe"), "evil\\u{202e}fdp.exe");
        assert_eq!(
            terminal("row 1\n\trow 2\u{1b}]0;title\u{7}"),
            "row 1\n\trow 2\\u{1b}]0;title\\u{7}"
        );
        assert_eq!(one_line("naïve 日本語"), "naïve 日本語");
    }
}
