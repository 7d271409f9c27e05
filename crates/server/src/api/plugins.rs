//! Plugins: upload (with the digest the caller states), list, inspect, budgets.

use std::path::PathBuf;

use axum::Json;
use axum::body::Body as RawBody;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cohort_engine::signing::PluginSignature;
use cohort_engine::{Budgets, Provenance};
use cohort_model::{PluginBudget, PluginInfo};
use cohort_store::StoredPlugin;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::{After, Page, blocking, limit, page};
use crate::auth::{GlobalAdmin, Reader};
use crate::problem::{Body, Path, Problem, Query, too_large_or_bad};
use crate::{Shared, now};

/// The plugins in the store, by id and version.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", params(After),
    responses((status = 200, body = Page<StoredPlugin>), (status = 401, body = Problem)))]
pub async fn list(
    State(state): State<Shared>,
    _: Reader,
    Query(q): Query<After>,
) -> Result<Json<Page<StoredPlugin>>, Problem> {
    let limit = limit(q.limit)?;
    let mut plugins = blocking(&state, |e| Ok(e.store().plugins()?)).await?;
    let key = |p: &StoredPlugin| format!("{}@{}", p.id, p.version);
    if let Some(after) = &q.after {
        plugins.retain(|p| key(p) > *after);
    }
    plugins.truncate(limit + 1);
    Ok(Json(page(plugins, limit, key)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AddQuery {
    /// The SHA-256 of the body, in hex, as the caller computed it: a damaged upload is
    /// refused rather than stored.
    sha256: String,
    /// A directory on the server the plugin may read (seen as `/data`), for plugins
    /// that ask for one, such as a GeoIP database.
    #[param(value_type = Option<String>)]
    data_dir: Option<PathBuf>,
}

/// Add (or replace) a plugin from its `.wasm` component. A signed plugin sends its
/// signature (the JSON `cohort plugin sign` wrote) in `Cohort-Plugin-Signature`; it is
/// checked against the component and the store's trusted keys, and a store that
/// requires signatures refuses a plugin without one it trusts.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins",
    params(AddQuery,
        ("Cohort-Plugin-Signature" = Option<String>, Header, description = "The plugin's signature file, as JSON")),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = PluginInfo),
        (status = 400, description = "A malformed `Cohort-Plugin-Signature`", body = Problem),
        (status = 422, description = "Not a valid plugin, the digest differs, or its signature is refused", body = Problem),
        (status = 403, body = Problem)))]
pub async fn add(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Query(q): Query<AddQuery>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<(StatusCode, Json<PluginInfo>), Problem> {
    let wasm = axum::body::to_bytes(body, state.config.max_upload_bytes)
        .await
        .map_err(|_| {
            too_large_or_bad(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the plugin is larger than {} bytes",
                    state.config.max_upload_bytes
                ),
            )
        })?;
    // Checked once the body is read: a refusal answered while the client still sends
    // would cut its upload off mid-request.
    let signature: Option<PluginSignature> = headers
        .get("cohort-plugin-signature")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|text| serde_json::from_str(text).ok())
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-header",
                        "Cohort-Plugin-Signature takes the JSON `cohort plugin sign` writes",
                    )
                    .at("Cohort-Plugin-Signature")
                })
        })
        .transpose()?;
    let actual = hex::encode(Sha256::digest(&wasm));
    if !actual.eq_ignore_ascii_case(q.sha256.trim()) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "digest-mismatch",
            format!(
                "the body's SHA-256 is {actual}, not the stated {}",
                q.sha256.trim()
            ),
        )
        .at("sha256"));
    }
    let grant = granted(&state, q.data_dir.as_deref(), "data_dir")?;
    let info = blocking(&state, move |e| {
        let provenance = match &signature {
            Some(s) => Provenance::Signed(s),
            None => Provenance::Unsigned,
        };
        Ok(e.add_plugin_as(&wasm, grant.as_deref(), provenance, now())?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StandardQuery {
    /// The directory with the GeoIP database, granted to `geoip-country`.
    #[param(value_type = Option<String>)]
    geoip_dir: Option<PathBuf>,
}

/// Add every plugin that ships with Cohort.
#[utoipa::path(post, path = "/v1/plugins/standard", tag = "plugins", params(StandardQuery),
    responses((status = 201, body = Vec<PluginInfo>), (status = 403, body = Problem)))]
pub async fn add_standard(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Query(q): Query<StandardQuery>,
) -> Result<(StatusCode, Json<Vec<PluginInfo>>), Problem> {
    let geoip = granted(&state, q.geoip_dir.as_deref(), "geoip_dir")?;
    let infos = blocking(&state, move |e| {
        let mut infos = Vec::new();
        for (id, wasm) in cohort_artifacts::STANDARD {
            let grant = geoip.as_deref().filter(|_| *id == "geoip-country");
            infos.push(e.add_plugin_as(wasm, grant, Provenance::Standard, now())?);
        }
        Ok(infos)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(infos)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InspectQuery {
    /// A stored version; the newest added if absent.
    version: Option<String>,
}

/// A stored plugin with its self-description.
#[derive(Serialize, ToSchema)]
pub struct PluginDetail {
    #[serde(flatten)]
    pub stored: StoredPlugin,
    pub info: PluginInfo,
    /// The version of the plugin contract it was built against.
    pub contract: String,
}

/// A plugin's self-description: what it reads, its configuration schema, its grant.
#[utoipa::path(get, path = "/v1/plugins/{id}", tag = "plugins",
    params(("id" = String, Path), InspectQuery),
    responses((status = 200, body = PluginDetail), (status = 404, body = Problem)))]
pub async fn inspect(
    State(state): State<Shared>,
    _: Reader,
    Path(id): Path<String>,
    Query(q): Query<InspectQuery>,
) -> Result<Json<PluginDetail>, Problem> {
    blocking(&state, move |e| {
        let (stored, info, contract) = e.describe_plugin(&id, q.version.as_deref())?;
        Ok(Json(PluginDetail {
            stored,
            info,
            contract: contract.to_string(),
        }))
    })
    .await
}

/// A data directory an API caller asks to grant, if it lies inside the directory the
/// server's operator allows grants from (`data_root`). An API token must not be able
/// to hand a plugin the server's whole file system.
fn granted(
    state: &Shared,
    dir: Option<&std::path::Path>,
    field: &str,
) -> Result<Option<PathBuf>, Problem> {
    let Some(dir) = dir else { return Ok(None) };
    let refuse = |detail: String| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "grant-refused", detail).at(field)
    };
    let Some(root) = &state.config.data_root else {
        return Err(refuse(format!(
            "data directories are not granted over the API here: the server's operator \
             sets `data_root` to the directory they may come from (or grants `{}` with \
             `cohort plugin add`)",
            dir.display()
        )));
    };
    let (Ok(root), Ok(dir)) = (root.canonicalize(), dir.canonicalize()) else {
        return Err(refuse(format!(
            "`{}` is not a directory inside `data_root`",
            dir.display()
        )));
    };
    if !dir.starts_with(&root) {
        return Err(refuse(format!(
            "`{}` is not inside `data_root` (`{}`)",
            dir.display(),
            root.display()
        )));
    }
    Ok(Some(dir))
}

/// What a plugin's calls run on, in the units of a budget.
#[derive(Serialize, ToSchema)]
pub struct EffectiveBudget {
    pub fuel_per_call: u64,
    pub fuel_per_customer: u64,
    pub fuel_per_prepare: u64,
    pub memory_mib: u64,
    pub deadline_ms: u64,
}

/// A plugin's budgets per call, from the bottom up.
#[derive(Serialize, ToSchema)]
pub struct PluginBudgets {
    /// What the plugin's component declares for itself (its `cohort:budget` section);
    /// granted up to the host's ceiling.
    pub declared: PluginBudget,
    /// What the operator set for it; no ceiling applies.
    pub operator: PluginBudget,
    /// What its calls run on: the host's defaults, then the declaration, then the
    /// operator's word.
    pub effective: EffectiveBudget,
}

impl From<Budgets> for PluginBudgets {
    fn from(b: Budgets) -> Self {
        let e = b.effective;
        PluginBudgets {
            declared: b.declared,
            operator: b.operator,
            effective: EffectiveBudget {
                fuel_per_call: e.fuel_per_call,
                fuel_per_customer: e.fuel_per_customer,
                fuel_per_prepare: e.fuel_per_prepare,
                memory_mib: (e.memory >> 20) as u64,
                deadline_ms: u64::try_from(e.deadline.as_millis()).unwrap_or(u64::MAX),
            },
        }
    }
}

/// A plugin's budget per call: fuel, memory, deadline.
#[utoipa::path(get, path = "/v1/plugins/{id}/budget", tag = "plugins",
    params(("id" = String, Path)),
    responses((status = 200, body = PluginBudgets), (status = 422, body = Problem)))]
pub async fn budget(
    State(state): State<Shared>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<PluginBudgets>, Problem> {
    blocking(&state, move |e| Ok(Json(e.plugin_budget(&id)?.into()))).await
}

/// Set the operator's budget for a plugin, for every version of it: the whole budget,
/// each field left out keeping the plugin's own; `{}` removes it. Runs prepared after
/// it spend the new budget.
#[utoipa::path(put, path = "/v1/plugins/{id}/budget", tag = "plugins",
    params(("id" = String, Path)),
    request_body = PluginBudget,
    responses((status = 200, body = PluginBudgets), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn set_budget(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Path(id): Path<String>,
    Body(budget): Body<PluginBudget>,
) -> Result<Json<PluginBudgets>, Problem> {
    blocking(&state, move |e| {
        e.set_plugin_budget(&id, &budget)?;
        Ok(Json(e.plugin_budget(&id)?.into()))
    })
    .await
}
