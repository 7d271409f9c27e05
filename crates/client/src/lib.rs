//! A typed client of Cohort's HTTP API.
//!
//! Every type and method is generated at build time from `openapi.json`, the server's
//! OpenAPI document as committed; the server's tests keep that file equal to the
//! document it serves. A change to the API that the file does not follow fails those
//! tests, and a change to the file that the code using this client does not follow
//! fails its build.
//!
//! ```no_run
//! use cohort_client::{Client, GroupsListParams};
//!
//! let client = Client::new("http://127.0.0.1:8080", Some("cohort_..."))?;
//! let groups = client.groups_list(&GroupsListParams::default())?.body;
//! for group in groups.items {
//!     println!("{} ({} active)", group.id, group.active_members);
//! }
//! # Ok::<(), cohort_client::Error>(())
//! ```
//!
//! Calls block; each answers a [`Reply`]: the status, the `ETag` and `Location`
//! headers, and the body as the document types it. An answer outside 2xx is an
//! [`Error::Api`] with the server's problem details.

use serde::Serialize;
use serde::de::DeserializeOwned;

#[allow(
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant,
    clippy::too_many_arguments,
    reason = "generated from the document's descriptions and shapes, as they are"
)]
mod api {
    use serde::{Deserialize, Serialize};

    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

pub use api::*;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a base URL: `{0}`")]
    Url(String),
    #[error("cannot reach the server: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered outside 2xx, with its problem details when it sent them.
    #[error("the server answered {status}: {}", .problem.as_ref().map_or(.body.as_str(), |p| p.detail.as_str()))]
    Api {
        status: u16,
        problem: Option<Box<Problem>>,
        body: String,
    },
    #[error("the answer is not what the document says: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("an answer of status {0}, which the document does not list")]
    Unexpected(u16),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply<T> {
    pub status: u16,
    /// The `ETag` header, for `If-Match` on a later write.
    pub etag: Option<String>,
    /// The `Location` header (where a run started at once is followed).
    pub location: Option<String>,
    pub body: T,
}

/// A client of one server, with one token.
#[derive(Clone, Debug)]
pub struct Client {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

/// A request's query or header parameters: names and values.
type Pairs = Vec<(&'static str, String)>;

/// A request's body.
enum Body {
    None,
    Json(serde_json::Value),
    /// Bytes, and their content type.
    Bytes(&'static str, Vec<u8>),
}

/// An answer as received.
struct Raw {
    status: u16,
    etag: Option<String>,
    location: Option<String>,
    json: bool,
    bytes: Vec<u8>,
}

impl Client {
    /// A client of the server at `base` (`http://host:port`), calling with `token`.
    pub fn new(base: &str, token: Option<&str>) -> Result<Client> {
        let base = reqwest::Url::parse(base).map_err(|_| Error::Url(base.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(Error::Url(base.to_string()));
        }
        Ok(Client {
            base,
            token: token.map(str::to_string),
            http: reqwest::blocking::Client::builder().build()?,
        })
    }

    fn call(
        &self,
        method: &str,
        segments: &[String],
        query: &[(&str, String)],
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Raw> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Url(self.base.to_string()))?
            .pop_if_empty()
            .extend(segments);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::Url(format!("{method} {url}")))?;
        let mut request = self.http.request(method, url).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Bytes(kind, bytes) => request.header("content-type", kind).body(bytes),
        };
        let response = request.send()?;
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = response.status().as_u16();
        let (etag, location) = (header("etag"), header("location"));
        let json = header("content-type").is_some_and(|t| t.contains("json"));
        let bytes = response.bytes()?.to_vec();
        if !(200..300).contains(&status) {
            let problem = serde_json::from_slice::<Problem>(&bytes).ok().map(Box::new);
            return Err(Error::Api {
                status,
                problem,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(Raw {
            status,
            etag,
            location,
            json,
            bytes,
        })
    }
}

/// The body of `raw` as `T`: JSON as typed, text as a string, nothing as `()`.
fn decode<T: DeserializeOwned>(raw: &Raw) -> Result<T> {
    let value = if raw.bytes.is_empty() {
        serde_json::Value::Null
    } else if raw.json {
        serde_json::from_slice(&raw.bytes)?
    } else {
        serde_json::Value::String(String::from_utf8_lossy(&raw.bytes).into_owned())
    };
    Ok(T::deserialize(value)?)
}

/// A parameter's value as it goes into a query or a header.
fn text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
