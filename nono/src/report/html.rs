//! Renders report data into one self-contained HTML page: the stylesheet
//! and script are compiled in (`page.css`, `page.js`), the data is one
//! JSON document in a `<script type="application/json">` element, and a
//! Content-Security-Policy forbids every fetch (`default-src 'none'`).
//!
//! The only untrusted text in the page is inside that JSON, where `<`,
//! `>`, `&`, U+2028 and U+2029 are written as `\uXXXX` escapes: no file
//! name can close the script element or start markup. The page's script
//! puts strings into the DOM with `textContent` only.

use serde::Serialize;

use super::ReportError;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// The policy: nothing may be fetched; only the page's own inline style
/// and script run.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'";

/// JSON that is safe inside a `<script>` element.
pub fn script_json<T: Serialize + ?Sized>(data: &T) -> Result<String, ReportError> {
    let json = serde_json::to_string(data)?;
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The page for `data` (a [`super::SessionReport`] or [`super::ProfileReport`]).
pub fn render<T: Serialize + ?Sized>(data: &T) -> Result<String, ReportError> {
    let json = script_json(data)?;
    let mut page = String::with_capacity(json.len() + CSS.len() + JS.len() + 1024);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"");
    page.push_str(CSP);
    page.push_str("\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    page.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n<title>nono report</title>\n<style>\n");
    page.push_str(CSS);
    page.push_str("</style>\n</head>\n<body>\n<noscript>This report needs JavaScript (inline, no network).</noscript>\n");
    page.push_str("<div id=\"app\"></div>\n<pre id=\"selftest\" hidden></pre>\n");
    page.push_str("<script type=\"application/json\" id=\"data\">");
    page.push_str(&json);
    page.push_str("</script>\n<script>\n");
    page.push_str(JS);
    page.push_str("</script>\n</body>\n</html>\n");
    Ok(page)
}
