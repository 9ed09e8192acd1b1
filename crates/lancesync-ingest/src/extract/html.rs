//! HTML: visible text with block structure, no script/style; `<title>` and meta description.

use scraper::{ElementRef, Html, Node, Selector};

use super::{DocType, Extracted, text::decode};
use crate::Result;

/// Elements whose content is never text a reader sees.
const SKIP: &[&str] = &[
    "script", "style", "noscript", "template", "head", "svg", "iframe", "object",
];
/// Elements that start a new paragraph.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "nav",
    "aside",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "pre",
    "blockquote",
    "figure",
    "figcaption",
    "dl",
    "dt",
    "dd",
    "form",
    "hr",
    "address",
];

pub(super) fn extract(bytes: &[u8]) -> Result<Extracted> {
    let (source, warnings) = decode(bytes, DocType::Html)?;
    let doc = Html::parse_document(&source);
    let mut out = Extracted {
        warnings,
        ..Default::default()
    };

    let title = Selector::parse("title").expect("static selector");
    out.title = doc
        .select(&title)
        .next()
        .map(|t| collapse(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    let meta = Selector::parse(r#"meta[name="description" i]"#).expect("static selector");
    if let Some(desc) = doc
        .select(&meta)
        .next()
        .and_then(|m| m.value().attr("content"))
    {
        out.metadata.insert("description".into(), collapse(desc));
    }

    let mut text = String::new();
    walk(doc.root_element(), &mut text);
    out.text = tidy(&text);
    Ok(out)
}

fn walk(element: ElementRef<'_>, out: &mut String) {
    for child in element.children() {
        match child.value() {
            Node::Text(t) => {
                let collapsed = collapse(t);
                if collapsed.is_empty() {
                    if t.chars().any(char::is_whitespace)
                        && !out.ends_with([' ', '\n'])
                        && !out.is_empty()
                    {
                        out.push(' ');
                    }
                    continue;
                }
                if t.starts_with(char::is_whitespace)
                    && !out.ends_with([' ', '\n'])
                    && !out.is_empty()
                {
                    out.push(' ');
                }
                out.push_str(&collapsed);
                if t.ends_with(char::is_whitespace) {
                    out.push(' ');
                }
            }
            Node::Element(e) => {
                let name = e.name();
                if SKIP.contains(&name) {
                    continue;
                }
                let Some(child) = ElementRef::wrap(child) else {
                    continue;
                };
                match name {
                    "br" => out.push('\n'),
                    "td" | "th" => {
                        walk(child, out);
                        out.push_str(" | ");
                    }
                    _ if BLOCK.contains(&name) => {
                        out.push_str("\n\n");
                        walk(child, out);
                        out.push_str("\n\n");
                    }
                    _ => walk(child, out),
                }
            }
            _ => {}
        }
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Trim each line and keep at most one blank line between paragraphs.
fn tidy(s: &str) -> String {
    let mut out = String::new();
    let mut blank = 0;
    for line in s.lines().map(|l| l.trim().trim_end_matches(" |").trim()) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_only() {
        let html = br#"<!doctype html><html><head><title> The  Page </title>
            <meta name="description" content="About things">
            <style>body { color: red }</style><script>var secret = 1;</script></head>
            <body><h1>Heading</h1><p>First <b>bold</b> paragraph.</p><script>alert(2)</script>
            <ul><li>one</li><li>two</li></ul><table><tr><td>a</td><td>b</td></tr></table>
            <noscript>enable js</noscript><p>Line<br>break</p></body></html>"#;
        let e = extract(html).unwrap();
        assert_eq!(e.title.as_deref(), Some("The Page"));
        assert_eq!(
            e.metadata.get("description").map(String::as_str),
            Some("About things")
        );
        assert_eq!(
            e.text,
            "Heading\n\nFirst bold paragraph.\n\none\n\ntwo\n\na | b\n\nLine\nbreak"
        );
        for hidden in ["secret", "alert", "color", "enable js"] {
            assert!(
                !e.text.contains(hidden),
                "{hidden} leaked into {:?}",
                e.text
            );
        }
    }

    #[test]
    fn broken_html_still_yields_text() {
        let e = extract(b"<p>unclosed <div>tags <span>everywhere").unwrap();
        assert_eq!(e.text, "unclosed\n\ntags everywhere");
    }
}
