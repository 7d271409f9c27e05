//! The editor's HTML: the group's fields, the rule builder's clauses and conditions,
//! each problem beside the field it names, and a preview's counts and samples.

use std::collections::BTreeMap;

use cohort_engine::Preview;
use cohort_model::{PluginInfo, Schedule};

use super::{Draft, GROUP_PICK, schema_fields};
use crate::console::fields;
use crate::console::page::{escape, time};
use crate::now;

fn problem_at(problems: &BTreeMap<String, String>, key: &str) -> String {
    problems
        .get(key)
        .map(|p| {
            format!(
                "<p class=\"field-problem\" id=\"{}-problem\" role=\"alert\">{}</p>",
                key.replace('.', "-"),
                escape(p)
            )
        })
        .unwrap_or_default()
}

/// A labelled text field of the group.
fn text(
    key: &str,
    label: &str,
    value: &str,
    problems: &BTreeMap<String, String>,
    extra: &str,
) -> String {
    let invalid = if problems.contains_key(key) {
        format!(" aria-invalid=\"true\" aria-describedby=\"{key}-problem\"")
    } else {
        String::new()
    };
    format!(
        "<div class=\"field\"><label for=\"{key}\">{label}</label>\
         <input id=\"{key}\" name=\"{key}\" value=\"{}\"{invalid}{extra}>{}</div>",
        escape(value),
        problem_at(problems, key)
    )
}

fn checkbox(key: &str, label: &str, on: bool) -> String {
    format!(
        "<div class=\"field check\"><input type=\"checkbox\" id=\"{key}\" name=\"{key}\" \
         value=\"true\"{}><label for=\"{key}\">{label}</label></div>",
        if on { " checked" } else { "" }
    )
}

#[allow(
    clippy::too_many_arguments,
    reason = "the draft and everything the page shows beside it"
)]
pub(super) fn form(
    d: &Draft,
    plugins: &[PluginInfo],
    groups: &[String],
    problems: &BTreeMap<String, String>,
    preview: Option<&Preview>,
    csrf: &str,
    title: &str,
) -> String {
    let action = if d.new {
        "/groups/new".to_string()
    } else {
        format!("/groups/{}/edit", escape(&d.id))
    };
    let mut body = format!("<h1>{}</h1>\n", escape(title));
    if let Some(p) = problems.get("") {
        body.push_str(&format!(
            "<p class=\"problem\" role=\"alert\">{}</p>\n",
            escape(p)
        ));
    } else if !problems.is_empty() {
        body.push_str(
            "<p class=\"problem\" role=\"alert\">Not saved: see the fields marked below.</p>\n",
        );
    }
    if let Some(p) = preview {
        body.push_str(&preview_html(p));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}\" class=\"editor\">{csrf}\
         <input type=\"hidden\" name=\"new\" value=\"{}\"><input type=\"hidden\" name=\"tag\" value=\"{}\">\n",
        d.new,
        escape(&d.tag)
    ));
    body.push_str("<fieldset><legend>Group</legend>");
    if d.new {
        body.push_str(&text(
            "id",
            "Id (lower-case letters, digits, -)",
            &d.id,
            problems,
            " required",
        ));
    } else {
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"id\" value=\"{0}\"><p>Id: <code>{0}</code></p>",
            escape(&d.id)
        ));
    }
    body.push_str(&text("name", "Name", &d.name, problems, " required"));
    body.push_str(&format!(
        "<div class=\"field\"><label for=\"description\">Description</label>\
         <textarea id=\"description\" name=\"description\" rows=\"2\">{}</textarea></div>",
        escape(&d.description)
    ));
    body.push_str(&format!(
        "<div class=\"field\"><label for=\"attributes\">Attributes (name=value, one per line: \
         what the platform gives members, such as a discount)</label>\
         <textarea id=\"attributes\" name=\"attributes\" rows=\"3\">{}</textarea>{}</div>",
        escape(&d.attributes),
        problem_at(problems, "attributes")
    ));
    body.push_str(&text(
        "set",
        "Exclusive set (a customer is in at most one group of it)",
        &d.set,
        problems,
        "",
    ));
    body.push_str(&text(
        "priority",
        "Priority in the set: the lower number wins",
        &d.priority,
        problems,
        " inputmode=\"numeric\"",
    ));
    body.push_str("</fieldset>\n<fieldset><legend>Running</legend>");
    body.push_str(
        "<div class=\"field\"><label for=\"mode\">Mode</label><select id=\"mode\" name=\"mode\">",
    );
    for (value, label) in [
        ("disabled", "disabled: the rule never runs"),
        ("add-only", "add-only: the rule adds, never removes"),
        ("full-sync", "full-sync: the rule adds and removes"),
    ] {
        let selected = if d.mode == value { " selected" } else { "" };
        body.push_str(&format!(
            "<option value=\"{value}\"{selected}>{label}</option>"
        ));
    }
    body.push_str("</select></div>");
    body.push_str(&checkbox(
        "keep_manual",
        "Keep members added by hand (full-sync never removes them)",
        d.keep_manual,
    ));
    body.push_str(&checkbox(
        "on_registration",
        "Check new customers at registration",
        d.on_registration,
    ));
    body.push_str(&checkbox("manual", "Allow runs by hand", d.manual));
    body.push_str(&text(
        "cron",
        "Schedule (cron: sec min hour day month weekday; empty for none)",
        &d.cron,
        problems,
        " placeholder=\"0 0 3 * * *\"",
    ));
    body.push_str(&text(
        "time_zone",
        "Time zone of the schedule",
        &d.time_zone,
        problems,
        " placeholder=\"Europe/Berlin\"",
    ));
    body.push_str(&next_times(d));
    body.push_str("</fieldset>\n");
    body.push_str(&rule_html(d, plugins, groups, problems));
    body.push_str(
        "<div class=\"actions\"><button type=\"submit\" name=\"action\" value=\"preview\">Preview</button> \
         <button type=\"submit\" name=\"action\" value=\"save\">Save</button></div>\n</form>\n",
    );
    if !d.new {
        // Its own form: deleting is not a change to the definition.
        body.push_str(&format!(
            "<form method=\"post\" action=\"/groups/{id}/delete\" class=\"stacked danger\">{csrf}\
             <h2>Delete this group</h2><p>Its memberships stay in the history. A group that \
             platform entities use is kept unless you say so.</p>\
             <div class=\"field check\"><input type=\"checkbox\" id=\"force\" name=\"force\" value=\"true\">\
             <label for=\"force\">Delete it even if it is in use</label></div>\
             <button type=\"submit\">Delete {id}</button></form>\n",
            id = escape(&d.id)
        ));
    }
    body
}

/// The next three times the schedule as written fires, or nothing.
fn next_times(d: &Draft) -> String {
    if d.cron.is_empty() {
        return String::new();
    }
    let schedule = Schedule {
        cron: d.cron.clone(),
        time_zone: if d.time_zone.is_empty() {
            "UTC".into()
        } else {
            d.time_zone.clone()
        },
    };
    let id = if d.id.is_empty() { "new" } else { &d.id };
    let mut at = now();
    let mut times = Vec::new();
    for _ in 0..3 {
        match cohort_engine::next_run(id, &schedule, at) {
            Ok(Some(t)) => {
                times.push(time(t));
                at = t;
            }
            _ => break,
        }
    }
    if times.is_empty() {
        return String::new();
    }
    format!(
        "<p class=\"next-times\">Fires next: {}</p>",
        times.join(", ")
    )
}

fn rule_html(
    d: &Draft,
    plugins: &[PluginInfo],
    groups: &[String],
    problems: &BTreeMap<String, String>,
) -> String {
    let mut out = String::from(
        "<fieldset class=\"rule\"><legend>Rule: every clause must hold; a clause holds when any of its conditions does</legend>\n",
    );
    // The groups a group condition may name, offered as it is typed.
    out.push_str("<datalist id=\"group-ids\">");
    for g in groups.iter().filter(|g| **g != d.id) {
        out.push_str(&format!("<option value=\"{}\">", escape(g)));
    }
    out.push_str("</datalist>\n");
    if d.clauses.is_empty() {
        out.push_str("<p>No clauses: the rule adds no one (membership by hand only).</p>\n");
    }
    for (i, clause) in d.clauses.iter().enumerate() {
        out.push_str(&format!(
            "<fieldset class=\"clause\"><legend>Clause {}{}</legend>\n",
            i + 1,
            if i > 0 { " (and)" } else { "" }
        ));
        for (j, c) in clause.iter().enumerate() {
            let key = |what: &str| format!("c{i}.{j}.{what}");
            out.push_str(&format!(
                "<div class=\"condition\"><p class=\"or\">{}</p>",
                if j > 0 { "or" } else { "" }
            ));
            out.push_str(&format!(
                "<div class=\"field\"><label for=\"c{i}-{j}-negate\">Customer</label>\
                 <select id=\"c{i}-{j}-negate\" name=\"{}\"><option value=\"false\"{}>is</option>\
                 <option value=\"true\"{}>is not</option></select></div>",
                key("negate"),
                if c.negate { "" } else { " selected" },
                if c.negate { " selected" } else { "" }
            ));
            out.push_str(&format!(
                "<div class=\"field\"><label for=\"c{i}-{j}-plugin\">Condition</label>\
                 <select id=\"c{i}-{j}-plugin\" name=\"{}\" class=\"plugin-pick\"><option value=\"\">(pick one)</option>",
                key("plugin")
            ));
            let by_group = c.plugin == GROUP_PICK;
            out.push_str(&format!(
                "<option value=\"{GROUP_PICK}\"{}>a member of group</option>",
                if by_group { " selected" } else { "" }
            ));
            let mut known = by_group;
            for p in plugins {
                let selected = if p.id == c.plugin {
                    known = true;
                    " selected"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "<option value=\"{0}\"{selected}>{0}: {1}</option>",
                    escape(&p.id),
                    escape(&p.description)
                ));
            }
            if !known && !c.plugin.is_empty() {
                out.push_str(&format!(
                    "<option value=\"{0}\" selected>{0} (not installed)</option>",
                    escape(&c.plugin)
                ));
            }
            out.push_str(&format!(
                "</select>{}</div>",
                problem_at(problems, &key("plugin"))
            ));
            out.push_str(&format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                key("version"),
                escape(&c.version)
            ));
            match schema_fields(&c.plugin, plugins) {
                _ if by_group => {
                    let k = key("group");
                    out.push_str(&format!(
                        "<div class=\"field\"><label for=\"c{i}-{j}-group\">Group (id)</label>\
                         <input id=\"c{i}-{j}-group\" name=\"{k}\" list=\"group-ids\" value=\"{}\">{}</div>",
                        escape(c.texts.get("group").map(String::as_str).unwrap_or_default()),
                        problem_at(problems, &k)
                    ));
                }
                Some(fs) => {
                    for f in &fs {
                        let k = key(&f.name);
                        out.push_str(&fields::input(
                            f,
                            &k,
                            c.texts.get(&f.name).map(String::as_str).unwrap_or_default(),
                            problems.get(&k).map(String::as_str),
                        ));
                    }
                }
                None if !c.plugin.is_empty() => {
                    let k = key("raw");
                    out.push_str(&format!(
                        "<div class=\"field\"><label for=\"c{i}-{j}-raw\">Configuration (JSON)</label>\
                         <textarea id=\"c{i}-{j}-raw\" name=\"{k}\" rows=\"3\">{}</textarea>{}</div>",
                        escape(c.texts.get("raw").map(String::as_str).unwrap_or_default()),
                        problem_at(problems, &k)
                    ));
                }
                None => {}
            }
            out.push_str(&format!(
                "<button type=\"submit\" name=\"action\" value=\"remove-condition:{i}.{j}\" \
                 class=\"small\">Remove this condition</button></div>\n"
            ));
        }
        out.push_str(&format!(
            "<button type=\"submit\" name=\"action\" value=\"add-condition:{i}\" class=\"small\">\
             Add an alternative (or)</button></fieldset>\n"
        ));
    }
    out.push_str(
        "<button type=\"submit\" name=\"action\" value=\"add-clause\">Add a clause (and)</button> \
         <button type=\"submit\" name=\"action\" value=\"refresh\" class=\"refresh\">Show the fields of the picked conditions</button>\
         </fieldset>\n",
    );
    out
}

fn preview_html(p: &Preview) -> String {
    let sample = |ids: &[String], n: u64| -> String {
        if ids.is_empty() {
            return String::new();
        }
        let links: Vec<String> = ids
            .iter()
            .map(|c| format!("<a href=\"/customers/{0}\">{0}</a>", escape(c)))
            .collect();
        let more = n.saturating_sub(ids.len() as u64);
        format!(
            ": {}{}",
            links.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    };
    let failures = if p.failures.is_empty() {
        String::new()
    } else {
        format!(
            "<li>Failures: {}</li>",
            p.failures
                .iter()
                .map(|(f, n)| format!("{} ({n})", escape(f)))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    format!(
        "<section class=\"preview\" aria-label=\"Preview\"><h2>Preview: nothing saved yet</h2>\
         <p>Over {} customers, {} match the rule.</p><ul>\
         <li class=\"would-add\">Would add {}{}</li>\
         <li class=\"would-remove\">Would remove {}{}</li>\
         <li class=\"undecided\">Undecided {}{}</li>{failures}</ul></section>\n",
        p.customers,
        p.matched,
        p.added,
        sample(&p.added_sample, p.added),
        p.removed,
        sample(&p.removed_sample, p.removed),
        p.undecided,
        sample(&p.undecided_sample, p.undecided),
    )
}
