//! Small text helpers shared by the renderers.

/// "47 seconds", "1.2 seconds", "3 minutes 5 seconds", "250 ms".
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms} ms");
    }
    if ms < 10_000 {
        let tenths = (ms + 50) / 100;
        return format!("{}.{} seconds", tenths / 10, tenths % 10);
    }
    let secs = (ms + 500) / 1000;
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let (m, s) = (secs / 60, secs % 60);
    let minutes = if m == 1 {
        "1 minute".to_owned()
    } else {
        format!("{m} minutes")
    };
    if s == 0 {
        minutes
    } else {
        format!("{minutes} {s} seconds")
    }
}

/// Single-quotes `s` for bash.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Escapes text for XML attributes and content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A fenced code block whose fence is longer than any backtick run inside.
pub fn fenced(lang: &str, body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let body = body.trim_end_matches('\n');
    format!("{fence}{lang}\n{body}\n{fence}\n")
}

/// Inline code that survives backticks inside.
pub fn code(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// Text safe inside a markdown table cell.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// At most `max` bytes of `s`, cut at a character boundary, with a marker when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n… ({} more bytes in test-results/sandbox-log.txt)",
        &s[..cut],
        s.len() - cut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_seed() {
        assert_eq!(human_ms(47_000), "47 seconds");
        assert_eq!(human_ms(1_234), "1.2 seconds");
        assert_eq!(human_ms(185_000), "3 minutes 5 seconds");
        assert_eq!(human_ms(120), "120 ms");
    }

    #[test]
    fn quoting_and_escaping() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(
            xml_escape("<a & \"b\">\u{1}"),
            "&lt;a &amp; &quot;b&quot;&gt;\u{fffd}"
        );
        assert_eq!(fenced("sh", "a ``` b"), "````sh\na ``` b\n````\n");
    }
}
