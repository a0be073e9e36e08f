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
    runbook_core::shell::quote(s)
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

/// Inline code that survives backticks inside: its delimiter is longer than any
/// backtick run of `s`, and a line break (or any control character) becomes a space, so
/// nothing in `s` can end the span or start a block.
pub fn code(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    if longest == 0 {
        format!("`{s}`")
    } else {
        let fence = "`".repeat(longest + 1);
        format!("{fence} {s} {fence}")
    }
}

/// Text from outside the runbook's author (a feedback file, a lesson: an error a target
/// printed, a cause, a title) as inert inline markdown: one line (a line break or any
/// control character becomes a space, so it cannot start a heading, a list item, a code
/// fence or an HTML block), and the characters that start inline markup (code spans,
/// emphasis, links and images, HTML and autolinks) backslash-escaped, the backslash too.
///
/// An `_` between two letters or digits stays as it is (`pg_database_owner`): there it
/// can neither open nor close emphasis.
pub fn inline(s: &str) -> String {
    let chars: Vec<char> = s.trim().chars().collect();
    let alnum = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(char::is_ascii_alphanumeric)
    };
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '_' if alnum(i.checked_sub(1)) && alnum(Some(i + 1)) => out.push(c),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
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
        assert_eq!(code("a\r\n# b"), "`a  # b`");
        assert_eq!(code("x `` y"), "``` x `` y ```");
        assert_eq!(code("`x`"), "`` `x` ``");
        assert_eq!(
            inline("a\n# H\r- i ```x``` <b>*_[l](u)\\"),
            r"a # H - i \`\`\`x\`\`\` \<b\>\*\_\[l\](u)\\"
        );
        assert_eq!(inline("pg_owner _x_ __y"), r"pg_owner \_x\_ \_\_y");
    }
}
