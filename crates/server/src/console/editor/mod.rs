//! The group editor and its rule builder: name, description, attributes, exclusive set
//! and priority, mode, keep-manual, triggers with the next times a schedule fires, and
//! the rule as clauses (all of) of conditions (any of), each a plugin picked from
//! those installed, "is" or "is not", with fields generated from the plugin's
//! configuration schema (`fields.rs`). The form posts back to itself: to add or remove
//! a clause or condition, to preview (a dry run of the definition as written, saved or
//! not), or to save. The plugin's configuration check and the group's own checks put
//! their errors at the field they name.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cohort_engine::{EngineError, Preview};
use cohort_model::{
    AutoAssign, Clause, Condition, ExclusiveSet, Group, GroupCondition, Mode, PluginCondition,
    PluginInfo, Rule, Schedule, Triggers,
};

mod html;

use super::fields::{self, Field};
use super::view::Viewer;
use crate::{Shared, now};

/// Clauses in a rule, and conditions in a clause, that the editor takes.
const MOST_CLAUSES: usize = 64;

/// The condition picker's choice of "a member of group": not a plugin id, which has
/// no `:`.
const GROUP_PICK: &str = ":group";

/// A group as the form holds it: texts, before they are read into a group.
#[derive(Clone, Debug, Default)]
struct Draft {
    /// Empty for a new group until one is typed.
    id: String,
    new: bool,
    /// The entity tag of the definition the form was opened with, to refuse a save
    /// over someone else's.
    tag: String,
    name: String,
    description: String,
    attributes: String,
    set: String,
    priority: String,
    mode: String,
    keep_manual: bool,
    on_registration: bool,
    manual: bool,
    cron: String,
    time_zone: String,
    clauses: Vec<Vec<DraftCondition>>,
}

#[derive(Clone, Debug, Default)]
struct DraftCondition {
    plugin: String,
    version: String,
    negate: bool,
    /// By configuration property; `raw` for a configuration edited as JSON whole.
    texts: BTreeMap<String, String>,
}

impl Draft {
    fn of(group: &Group, tag: String, plugins: &[PluginInfo]) -> Draft {
        let schedule = group.auto.triggers.schedule.as_ref();
        Draft {
            id: group.id.clone(),
            new: false,
            tag,
            name: group.name.clone(),
            description: group.description.clone(),
            attributes: group
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            set: group
                .exclusive
                .as_ref()
                .map(|x| x.set.clone())
                .unwrap_or_default(),
            priority: group
                .exclusive
                .as_ref()
                .map(|x| x.priority.to_string())
                .unwrap_or_default(),
            mode: mode_name(group.auto.mode).to_string(),
            keep_manual: group.auto.keep_manual,
            on_registration: group.auto.triggers.on_registration,
            manual: group.auto.triggers.manual,
            cron: schedule.map(|s| s.cron.clone()).unwrap_or_default(),
            time_zone: schedule.map_or_else(|| "UTC".to_string(), |s| s.time_zone.clone()),
            clauses: group
                .rule
                .all
                .iter()
                .map(|clause| {
                    clause
                        .any
                        .iter()
                        .map(|c| match c {
                            Condition::Plugin(p) => DraftCondition {
                                plugin: p.plugin.clone(),
                                version: p.version.clone(),
                                negate: p.negate,
                                texts: texts_of(p, plugins),
                            },
                            Condition::Group(g) => DraftCondition {
                                plugin: GROUP_PICK.to_string(),
                                version: String::new(),
                                negate: g.negate,
                                texts: [("group".to_string(), g.group.clone())].into(),
                            },
                        })
                        .collect()
                })
                .collect(),
        }
    }

    /// The form's fields: `c<i>.<j>.<what>` for condition j of clause i.
    fn from_form(pairs: &[(String, String)]) -> Draft {
        let mut d = Draft::default();
        for (key, value) in pairs {
            let v = value.clone();
            match key.as_str() {
                "id" => d.id = v.trim().to_string(),
                "new" => d.new = v == "true",
                "tag" => d.tag = v,
                "name" => d.name = v,
                "description" => d.description = v,
                "attributes" => d.attributes = v,
                "set" => d.set = v.trim().to_string(),
                "priority" => d.priority = v.trim().to_string(),
                "mode" => d.mode = v,
                "keep_manual" => d.keep_manual = true,
                "on_registration" => d.on_registration = true,
                "manual" => d.manual = true,
                "cron" => d.cron = v.trim().to_string(),
                "time_zone" => d.time_zone = v.trim().to_string(),
                _ => {
                    // A form names its rule's places; a bound keeps a forged one from
                    // making room for millions.
                    let Some((i, j, what)) = condition_key(key)
                        .filter(|(i, j, _)| *i < MOST_CLAUSES && *j < MOST_CLAUSES)
                    else {
                        continue;
                    };
                    while d.clauses.len() <= i {
                        d.clauses.push(Vec::new());
                    }
                    while d.clauses[i].len() <= j {
                        d.clauses[i].push(DraftCondition::default());
                    }
                    let c = &mut d.clauses[i][j];
                    match what {
                        "plugin" => c.plugin = v,
                        "version" => c.version = v,
                        "negate" => c.negate = v == "true",
                        field => drop(c.texts.insert(field.to_string(), v)),
                    }
                }
            }
        }
        d
    }

    /// The group the draft describes, or the problems of fields that cannot be read,
    /// by form key.
    fn group(&self, plugins: &[PluginInfo]) -> Result<Group, BTreeMap<String, String>> {
        let mut problems = BTreeMap::new();
        let mut attributes = BTreeMap::new();
        for line in self
            .attributes
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            match line.split_once('=') {
                Some((k, v)) => drop(attributes.insert(k.trim().to_string(), v.trim().to_string())),
                None => drop(problems.insert(
                    "attributes".to_string(),
                    format!("`{line}` is not name=value"),
                )),
            }
        }
        let exclusive = if self.set.is_empty() {
            None
        } else {
            match self.priority.parse::<u32>() {
                Ok(priority) => Some(ExclusiveSet {
                    set: self.set.clone(),
                    priority,
                }),
                Err(_) => {
                    problems.insert(
                        "priority".into(),
                        format!("`{}` is not a whole number from 0 up", self.priority),
                    );
                    None
                }
            }
        };
        let mode = match self.mode.as_str() {
            "add-only" => Mode::AddOnly,
            "full-sync" => Mode::FullSync,
            _ => Mode::Disabled,
        };
        let mut all = Vec::new();
        for (i, clause) in self.clauses.iter().enumerate() {
            let mut any = Vec::new();
            for (j, c) in clause.iter().enumerate() {
                if c.plugin == GROUP_PICK {
                    let group = c.texts.get("group").map(|g| g.trim()).unwrap_or_default();
                    any.push(Condition::Group(GroupCondition {
                        group: group.to_string(),
                        negate: c.negate,
                    }));
                    continue;
                }
                let config = match schema_fields(&c.plugin, plugins) {
                    Some(fs) => fields::config(&fs, &c.texts).unwrap_or_else(|bad| {
                        for (field, problem) in bad {
                            problems.insert(format!("c{i}.{j}.{field}"), problem);
                        }
                        serde_json::Value::Null
                    }),
                    None => {
                        let raw = c.texts.get("raw").map(|t| t.trim()).unwrap_or_default();
                        if raw.is_empty() {
                            serde_json::json!({})
                        } else {
                            serde_json::from_str(raw).unwrap_or_else(|e| {
                                problems.insert(format!("c{i}.{j}.raw"), format!("not JSON: {e}"));
                                serde_json::Value::Null
                            })
                        }
                    }
                };
                any.push(Condition::Plugin(PluginCondition {
                    plugin: c.plugin.clone(),
                    version: if c.version.is_empty() {
                        "*".into()
                    } else {
                        c.version.clone()
                    },
                    config,
                    negate: c.negate,
                }));
            }
            all.push(Clause { any });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Group {
            id: self.id.clone(),
            name: self.name.trim().to_string(),
            description: self.description.trim().to_string(),
            attributes,
            exclusive,
            auto: AutoAssign {
                mode,
                keep_manual: self.keep_manual,
                triggers: Triggers {
                    on_registration: self.on_registration,
                    schedule: (!self.cron.is_empty()).then(|| Schedule {
                        cron: self.cron.clone(),
                        time_zone: if self.time_zone.is_empty() {
                            "UTC".into()
                        } else {
                            self.time_zone.clone()
                        },
                    }),
                    manual: self.manual,
                },
            },
            rule: Rule { all },
        })
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Disabled => "disabled",
        Mode::AddOnly => "add-only",
        Mode::FullSync => "full-sync",
    }
}

/// `c<i>.<j>.<what>` as (i, j, what).
fn condition_key(key: &str) -> Option<(usize, usize, &str)> {
    let rest = key.strip_prefix('c')?;
    let (i, rest) = rest.split_once('.')?;
    let (j, what) = rest.split_once('.')?;
    Some((i.parse().ok()?, j.parse().ok()?, what))
}

fn schema_fields(plugin: &str, plugins: &[PluginInfo]) -> Option<Vec<Field>> {
    plugins
        .iter()
        .find(|p| p.id == plugin)
        .and_then(|p| fields::of_schema(&p.config_schema))
}

/// A saved condition's configuration as the texts of its fields.
fn texts_of(c: &PluginCondition, plugins: &[PluginInfo]) -> BTreeMap<String, String> {
    match schema_fields(&c.plugin, plugins) {
        Some(fs) => fs
            .iter()
            .filter_map(|f| {
                c.config
                    .get(&f.name)
                    .map(|v| (f.name.clone(), fields::shown(&f.kind, v)))
            })
            .collect(),
        None => [(
            "raw".to_string(),
            serde_json::to_string_pretty(&c.config).unwrap_or_default(),
        )]
        .into_iter()
        .collect(),
    }
}

/// Where an engine error belongs in the form: the field it names, or the whole form.
fn placed(e: &EngineError, draft: &Draft, plugins: &[PluginInfo]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let rule_at = |at: &str| -> Option<(usize, usize)> {
        let rest = at.strip_prefix("rule.all[")?;
        let (i, rest) = rest.split_once("].any[")?;
        let (j, _) = rest.split_once(']')?;
        Some((i.parse().ok()?, j.parse().ok()?))
    };
    match e {
        EngineError::Config { at, problems, .. } | EngineError::Unprepared { at, problems, .. } => {
            let Some((i, j)) = rule_at(at) else {
                out.insert(String::new(), e.to_string());
                return out;
            };
            let plugin = draft
                .clauses
                .get(i)
                .and_then(|c| c.get(j))
                .map(|c| c.plugin.as_str())
                .unwrap_or_default();
            let schema = schema_fields(plugin, plugins).unwrap_or_default();
            let names: Vec<&str> = schema.iter().map(|f| f.name.as_str()).collect();
            for problem in problems {
                // `config/<field>/...: message`, or `config: message` for the whole.
                let (path, message) = problem.split_once(": ").unwrap_or(("config", problem));
                let field = path
                    .strip_prefix("config/")
                    .and_then(|p| p.split('/').next())
                    .filter(|f| names.contains(f));
                let key = match field {
                    Some(f) => format!("c{i}.{j}.{f}"),
                    None if names.is_empty() => format!("c{i}.{j}.raw"),
                    None => format!("c{i}.{j}.plugin"),
                };
                // Within a field, say where: a list edited a line at a time by its line.
                let within_field = field.and_then(|f| {
                    path.strip_prefix(&format!("config/{f}/"))
                        .map(|rest| (f, rest))
                });
                let message = match (within_field, path.strip_prefix("config")) {
                    (Some((f, rest)), _) => {
                        let lines = schema
                            .iter()
                            .any(|s| s.name == f && s.kind == fields::Kind::Lines);
                        match rest.parse::<usize>() {
                            Ok(n) if lines => format!("line {}: {message}", n + 1),
                            _ => format!("{rest}: {message}"),
                        }
                    }
                    (None, Some(rest)) if rest.len() > 1 && field.is_none() => {
                        format!("{rest}: {message}")
                    }
                    _ => message.to_string(),
                };
                out.entry(key)
                    .and_modify(|m: &mut String| {
                        m.push_str("; ");
                        m.push_str(&message);
                    })
                    .or_insert(message);
            }
        }
        EngineError::Condition { at, source, .. } => match rule_at(at) {
            Some((i, j)) => {
                let picked = draft.clauses.get(i).and_then(|c| c.get(j));
                let what = match picked {
                    Some(c) if c.plugin == GROUP_PICK => "group",
                    _ => "plugin",
                };
                drop(out.insert(format!("c{i}.{j}.{what}"), source.to_string()))
            }
            None => drop(out.insert(String::new(), e.to_string())),
        },
        EngineError::InvalidGroup(g) => {
            let key = match rule_at(&g.field) {
                Some((i, j)) if g.field.ends_with(".group") => format!("c{i}.{j}.group"),
                Some((i, j)) => format!("c{i}.{j}.plugin"),
                None => match g.field.as_str() {
                    "exclusive.set" => "set".to_string(),
                    "exclusive.priority" => "priority".to_string(),
                    f if f.starts_with("attributes") => "attributes".to_string(),
                    f @ ("id" | "name" | "description") => f.to_string(),
                    _ => String::new(),
                },
            };
            out.insert(key, g.problem.clone());
        }
        EngineError::Schedule { problem, .. } => drop(out.insert("cron".into(), problem.clone())),
        _ => drop(out.insert(String::new(), e.to_string())),
    }
    out
}

/// `GET /groups/new`: an empty editor.
pub(super) async fn new_group(State(state): State<Shared>, viewer: Viewer) -> Response {
    if viewer.scope.is_limited() || !viewer.operates() {
        return viewer.page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<h1>Refused</h1><p>Only an operator who sees every group makes new ones.</p>",
        );
    }
    let draft = Draft {
        new: true,
        mode: "full-sync".into(),
        manual: true,
        time_zone: "UTC".into(),
        ..Draft::default()
    };
    render(&state, &viewer, draft, BTreeMap::new(), None).await
}

/// `GET /groups/{id}/edit`: the editor on a saved group.
pub(super) async fn edit(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    if !viewer.operates() {
        return viewer.page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<h1>Refused</h1><p>Your account may read but not change groups.</p>",
        );
    }
    let loaded = viewer
        .work(&state, move |within| {
            let group = within.group(&id)?;
            let plugins = within.plugins()?;
            let tag = crate::etag::of(&group).unwrap_or_default();
            Ok(Draft::of(&group, tag, &plugins))
        })
        .await;
    match loaded {
        Ok(draft) => render(&state, &viewer, draft, BTreeMap::new(), None).await,
        Err(e) => viewer.error(&e),
    }
}

/// `POST /groups/new` and `POST /groups/{id}/edit`: change the form, preview or save.
pub(super) async fn submit(
    State(state): State<Shared>,
    viewer: Viewer,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if let Some(refused) = viewer.refuse_form(csrf) {
        return refused;
    }
    let mut draft = Draft::from_form(&pairs);
    if draft.new && viewer.scope.is_limited() {
        return viewer.page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<h1>Refused</h1><p>Only an operator who sees every group makes new ones.</p>",
        );
    }
    let action = pairs
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // Changes to the rule's shape come back to the form, nothing checked yet.
    if let Some(i) = action.strip_prefix("add-condition:") {
        if let Ok(i) = i.parse::<usize>()
            && let Some(clause) = draft.clauses.get_mut(i)
            && clause.len() < MOST_CLAUSES
        {
            clause.push(DraftCondition::default());
        }
        return render(&state, &viewer, draft, BTreeMap::new(), None).await;
    }
    if let Some(at) = action.strip_prefix("remove-condition:") {
        if let Some((i, j)) = at.split_once('.')
            && let (Ok(i), Ok(j)) = (i.parse::<usize>(), j.parse::<usize>())
            && let Some(clause) = draft.clauses.get_mut(i)
            && j < clause.len()
        {
            clause.remove(j);
            if clause.is_empty() {
                draft.clauses.remove(i);
            }
        }
        return render(&state, &viewer, draft, BTreeMap::new(), None).await;
    }
    match action.as_str() {
        "add-clause" => {
            if draft.clauses.len() < MOST_CLAUSES {
                draft.clauses.push(vec![DraftCondition::default()]);
            }
            render(&state, &viewer, draft, BTreeMap::new(), None).await
        }
        "preview" | "save" => {
            let save = action == "save";
            let actor_draft = draft.clone();
            let outcome = viewer
                .work(&state, move |within| {
                    let plugins = within.plugins()?;
                    let group = match actor_draft.group(&plugins) {
                        Ok(g) => g,
                        Err(problems) => return Ok(Err(problems)),
                    };
                    let result = if save {
                        let (new, tag) = (actor_draft.new, actor_draft.tag.clone());
                        within
                            .save_group_if(&group, now(), &|stored| match stored {
                                None => new,
                                Some(s) => !new && crate::etag::of(s).ok().as_deref() == Some(&tag),
                            })
                            .map(|saved| Ok(Saved(saved, None)))
                    } else {
                        within
                            .preview(&group, now())
                            .map(|p| Ok(Saved(false, Some(p))))
                    };
                    Ok(result.unwrap_or_else(|e| Err(placed(&e, &actor_draft, &plugins))))
                })
                .await;
            match outcome {
                Ok(Ok(Saved(true, _))) => {
                    Redirect::to(&format!("/groups/{}?notice=saved", draft.id)).into_response()
                }
                Ok(Ok(Saved(false, None))) => {
                    let problem = if draft.new {
                        format!("A group `{}` exists already: choose another id.", draft.id)
                    } else {
                        "Someone saved this group since you opened it: open it again to see \
                         their change."
                            .to_string()
                    };
                    let problems = [(String::new(), problem)].into_iter().collect();
                    render(&state, &viewer, draft, problems, None).await
                }
                Ok(Ok(Saved(_, Some(preview)))) => {
                    render(&state, &viewer, draft, BTreeMap::new(), Some(preview)).await
                }
                Ok(Err(problems)) => render(&state, &viewer, draft, problems, None).await,
                Err(e) => viewer.error(&e),
            }
        }
        // A plugin picked: its fields come back for it.
        _ => render(&state, &viewer, draft, BTreeMap::new(), None).await,
    }
}

/// Whether a save wrote (false: the stored group had changed or existed), or what a
/// preview found.
struct Saved(bool, Option<Preview>);

async fn render(
    state: &Shared,
    viewer: &Viewer,
    draft: Draft,
    problems: BTreeMap<String, String>,
    preview: Option<Preview>,
) -> Response {
    let csrf = viewer.csrf_field();
    let title = if draft.new {
        "New group".to_string()
    } else {
        format!("Edit {}", draft.id)
    };
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page_title = title.clone();
    let built = viewer
        .work(state, move |within| {
            let plugins = within.plugins()?;
            let groups: Vec<String> = within.groups()?.into_iter().map(|g| g.id).collect();
            Ok(html::form(
                &draft,
                &plugins,
                &groups,
                &problems,
                preview.as_ref(),
                &csrf,
                &title,
            ))
        })
        .await;
    match built {
        Ok(body) => viewer.page(status, &page_title, &body),
        Err(e) => viewer.error(&e),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    force: bool,
}

/// `POST /groups/{id}/delete`: delete the group (refused while in use unless forced),
/// then back to the groups.
pub(super) async fn delete(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    if let Some(refused) = viewer.refuse_form(&form.csrf) {
        return refused;
    }
    let deleted = viewer
        .work(&state, move |within| within.delete_group(&id, form.force))
        .await;
    match deleted {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => viewer.error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_form_becomes_clauses_of_conditions_and_a_forged_place_is_ignored() {
        let d = Draft::from_form(&pairs(&[
            ("id", " fr "),
            ("c1.0.plugin", "country"),
            ("c0.1.negate", "true"),
            ("c0.1.countries", "FR"),
            ("c99999999.0.plugin", "country"),
            ("c0.99999999.plugin", "country"),
        ]));
        assert_eq!(d.id, "fr");
        assert_eq!(d.clauses.len(), 2);
        assert_eq!(d.clauses[0].len(), 2);
        assert!(d.clauses[0][1].negate);
        assert_eq!(d.clauses[0][1].texts["countries"], "FR");
        assert_eq!(d.clauses[1][0].plugin, "country");
    }

    #[test]
    fn a_group_condition_goes_through_the_form_and_its_errors_to_its_field() {
        let d = Draft::from_form(&pairs(&[
            ("id", "eu-not-de"),
            ("name", "EU, not DE"),
            ("c0.0.plugin", GROUP_PICK),
            ("c0.0.negate", "true"),
            ("c0.0.group", " de "),
        ]));
        let group = d.group(&[]).expect("a group");
        let wanted = Condition::Group(GroupCondition {
            group: "de".into(),
            negate: true,
        });
        assert_eq!(group.rule.all[0].any, [wanted]);
        // And back: a saved group condition opens as the same form.
        let again = Draft::of(&group, String::new(), &[]);
        assert_eq!(again.clauses[0][0].plugin, GROUP_PICK);
        assert_eq!(again.clauses[0][0].texts["group"], "de");
        assert!(again.clauses[0][0].negate);

        let cycle = EngineError::InvalidGroup(cohort_model::InvalidGroup {
            group: "eu-not-de".into(),
            field: "rule.all[0].any[0].group".into(),
            problem: "groups would refer to each other in a cycle".into(),
        });
        assert!(placed(&cycle, &d, &[]).contains_key("c0.0.group"));
        let missing = EngineError::Condition {
            group: "eu-not-de".into(),
            at: "rule.all[0].any[0]".into(),
            source: Box::new(EngineError::NotFound {
                what: "group",
                id: "de".into(),
            }),
        };
        assert_eq!(placed(&missing, &d, &[])["c0.0.group"], "no group `de`");
    }
}
