//! The console's pages as HTML, built by hand: every value from outside goes through
//! `escape`, and the only scripts and styles are the console's own, embedded.

use std::fmt::Write as _;

use cohort_model::Timestamp;

/// `text` safe to put in HTML text and in double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time as the viewer reads it: the element says it in UTC, and the console's script
/// turns it into the viewer's own zone.
pub fn time(at: Timestamp) -> String {
    let text = cohort_model::rfc3339::format(at);
    format!(
        r#"<time datetime="{text}">{}</time>"#,
        text.replace('T', " ")
    )
}

/// A membership's state as the API spells it.
pub fn state_name(state: cohort_model::State) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub const STYLE: &str = include_str!("style.css");
pub const SCRIPT: &str = include_str!("local-time.js");

/// Who a page is for: their name, their session's form token, and whether they are an
/// admin (who is shown the admins' pages).
pub struct SignedIn<'a> {
    pub name: &'a str,
    pub csrf: &'a str,
    pub admin: bool,
}

/// A whole page: `title`, and `body` (already HTML).
pub fn layout(title: &str, signed_in: Option<SignedIn<'_>>, body: &str) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Cohort</title>
<link rel="stylesheet" href="/console/style.css">
<script src="/console/local-time.js" defer></script>
</head>
<body>
<header><span class="brand">Cohort</span>"#,
        title = escape(title)
    );
    if let Some(SignedIn { name, csrf, admin }) = signed_in {
        let admin = if admin {
            r#" <a href="/plugins">Plugins</a> <a href="/tokens">Tokens</a> <a href="/webhooks">Webhooks</a>"#
        } else {
            ""
        };
        let _ = write!(
            page,
            r#"<nav class="main"><a href="/">Groups</a> <a href="/runs">Runs</a> <a href="/imports">Imports</a> <a href="/history">History</a>{admin}</nav>
<form method="post" action="/sign-out" class="sign-out">
<span>{name}</span>
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit">Sign out</button>
</form>"#,
            name = escape(name),
            csrf = escape(csrf)
        );
    }
    let _ = write!(
        page,
        "</header>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    );
    page
}

/// The sign-in form, with `problem` above it if the last try failed.
pub fn sign_in(csrf: &str, name: &str, problem: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!(r#"<p class="problem" role="alert">{}</p>"#, escape(p)))
        .unwrap_or_default();
    layout(
        "Sign in",
        None,
        &format!(
            r#"<h1>Sign in</h1>
{problem}<form method="post" action="/sign-in" class="sign-in">
<input type="hidden" name="csrf" value="{csrf}">
<label for="name">Name</label>
<input id="name" name="name" autocomplete="username" required value="{name}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>"#,
            csrf = escape(csrf),
            name = escape(name)
        ),
    )
}
