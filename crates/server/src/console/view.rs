//! What every console page shares: who is looking (`Viewer`, which sends anyone not
//! signed in to the sign-in form), the engine as their scope sees it, the checks a
//! form must pass, and how an engine error reads on a page.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use cohort_engine::{EngineError, Scope, Within};
use cohort_store::{Role, StaffLogin, StaffSession};

use super::page::{SignedIn, escape, layout};
use super::{page, signed_in};
use crate::Shared;

/// The signed-in member of staff, their session, and the groups they may see.
pub(super) struct Viewer {
    pub login: StaffLogin,
    pub session: StaffSession,
    pub scope: Scope,
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        let (login, session) = signed_in(state, &parts.headers)
            .await
            .ok_or_else(|| Redirect::to("/").into_response())?;
        Ok(Viewer::of(login, session))
    }
}

impl Viewer {
    pub fn of(login: StaffLogin, session: StaffSession) -> Viewer {
        let scope = Scope::of(login.member.groups.as_deref());
        Viewer {
            login,
            session,
            scope,
        }
    }

    pub fn name(&self) -> &str {
        &self.login.member.name
    }

    /// Whether the member may change memberships (operators and admins).
    pub fn operates(&self) -> bool {
        self.login.member.role >= Role::Operator
    }

    /// A page for this viewer, with the header that signs them out.
    pub fn page(&self, status: StatusCode, title: &str, body: &str) -> Response {
        page(
            status,
            layout(
                title,
                Some(SignedIn {
                    name: self.name(),
                    csrf: &self.session.csrf,
                    admin: self.login.member.role == Role::Admin,
                }),
                body,
            ),
        )
    }

    /// The hidden field that every form of this session carries.
    pub fn csrf_field(&self) -> String {
        format!(
            r#"<input type="hidden" name="csrf" value="{}">"#,
            escape(&self.session.csrf)
        )
    }

    /// The refusal of a form that did not come from this session's pages, or that
    /// asks for a change from someone who may only read; `None` for a form to act on.
    pub fn refuse_form(&self, csrf: &str) -> Option<Response> {
        if !same(csrf.as_bytes(), self.session.csrf.as_bytes()) {
            return Some(self.page(
                StatusCode::FORBIDDEN,
                "Refused",
                "<h1>Refused</h1><p>The form did not come from this session; reload the page and try again.</p>",
            ));
        }
        if !self.operates() {
            return Some(self.page(
                StatusCode::FORBIDDEN,
                "Refused",
                "<h1>Refused</h1><p>Your account may read but not change memberships.</p>",
            ));
        }
        None
    }

    /// Run `work` on the engine as this viewer's scope sees it, off the async threads,
    /// and show what it wrote under `title`; an error becomes a page that says it.
    pub async fn show<F>(&self, state: &Shared, title: &str, work: F) -> Response
    where
        F: FnOnce(&Within<'_>) -> Result<String, EngineError> + Send + 'static,
    {
        match self.work(state, work).await {
            Ok(body) => self.page(StatusCode::OK, title, &body),
            Err(e) => self.error(&e),
        }
    }

    /// Run `work` on the engine as this viewer's scope sees it.
    pub async fn work<T, F>(&self, state: &Shared, work: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&Within<'_>) -> Result<T, EngineError> + Send + 'static,
    {
        let engine = state.engine.clone();
        let scope = self.scope.clone();
        tokio::task::spawn_blocking(move || work(&engine.within(&scope)))
            .await
            // A panic in the work is a bug: it ends this request as it would have
            // on the async thread.
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// An engine error as a page: not found (what a limited viewer is told of anything
    /// outside their groups), refused, or a problem with the request or the store.
    pub fn error(&self, e: &EngineError) -> Response {
        let (status, title) = match e {
            EngineError::NotFound { .. } => (StatusCode::NOT_FOUND, "Not found"),
            EngineError::Limited(_) => (StatusCode::FORBIDDEN, "Refused"),
            EngineError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "Error"),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "Not done"),
        };
        self.page(
            status,
            title,
            &format!(
                "<h1>{title}</h1><p class=\"problem\" role=\"alert\">{}</p>",
                escape(&e.to_string())
            ),
        )
    }
}

/// Equal bytes, compared in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
