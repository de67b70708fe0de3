use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ActorRef, Error};

/// Where a write came from, stored in `audit_transactions.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// An HTTP request.
    Request,
    /// A background job.
    Job,
    /// A person at a console.
    Console,
    /// A schema or data migration.
    Migration,
}

/// Who is acting, in which request, and (optionally) which business action, for one
/// database transaction.
///
/// Nothing here is persisted until a write inside [`crate::transaction`] is captured.
///
/// ```
/// use threadline::{ActorRef, AuditContext, Source};
///
/// let ctx = AuditContext::new()
///     .with_actor(ActorRef::user("42")?)
///     .with_request_id("req-1")?
///     .with_correlation_id("checkout-9")?
///     .with_source(Source::Request);
/// assert_eq!(ctx.request_id(), Some("req-1"));
/// # Ok::<(), threadline::Error>(())
/// ```
///
/// **Handing a context to a background job.** A context serializes to JSON and back, so a
/// request can enqueue its context with the job and the worker can write under the same
/// actor, correlation id and tenant. Deserializing checks what the builders check: unknown
/// keys, an invalid actor, label or action name, and an action without an actor are refused.
///
/// ```
/// use threadline::{ActorRef, AuditContext, Source};
///
/// let request = AuditContext::new()
///     .with_actor(ActorRef::user("42")?)
///     .with_correlation_id("checkout-9")?;
/// let payload = serde_json::to_string(&request).unwrap(); // stored with the job
///
/// // in the worker
/// let ctx: AuditContext = serde_json::from_str(&payload).unwrap();
/// let ctx = ctx.with_source(Source::Job);
/// assert_eq!(ctx.actor(), request.actor());
/// assert_eq!(ctx.correlation_id(), Some("checkout-9"));
///
/// let tampered = r#"{"actor": {"type": "user", "id": ""}}"#;
/// assert!(serde_json::from_str::<AuditContext>(tampered).is_err());
/// # Ok::<(), threadline::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawContext")]
pub struct AuditContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<ActorRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
}

/// An [`AuditContext`] as it arrives in JSON, before the builders' checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext {
    actor: Option<ActorRef>,
    request_id: Option<String>,
    correlation_id: Option<String>,
    tenant_id: Option<String>,
    source: Option<Source>,
    meta: Option<Map<String, Value>>,
    action: Option<Action>,
}

impl TryFrom<RawContext> for AuditContext {
    type Error = Error;

    fn try_from(raw: RawContext) -> Result<Self, Error> {
        if raw.action.is_some() && raw.actor.is_none() {
            return Err(Error::MissingActor);
        }
        Ok(AuditContext {
            actor: raw.actor,
            request_id: raw.request_id.map(|id| label("request_id", id)).transpose()?,
            correlation_id: raw.correlation_id.map(|id| label("correlation_id", id)).transpose()?,
            tenant_id: raw.tenant_id.map(|id| label("tenant_id", id)).transpose()?,
            source: raw.source,
            meta: raw.meta,
            action: raw.action,
        })
    }
}

/// The longest request id, correlation id, tenant id or action reason, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;

/// Checks an identifier-like value: 1 to [`MAX_LABEL_BYTES`] bytes without control characters
/// (SQL's `threadline.validate_label`, held to the same table of values by
/// `tests/write_path/rules.rs`).
pub(crate) fn label(field: &'static str, value: impl Into<String>) -> Result<String, Error> {
    let value = value.into();
    if value.is_empty() || value.len() > MAX_LABEL_BYTES || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {MAX_LABEL_BYTES} bytes without control characters"),
        ));
    }
    Ok(value)
}

impl AuditContext {
    /// An empty context: writes are captured with no actor.
    pub fn new() -> Self {
        AuditContext::default()
    }

    /// Names the actor.
    pub fn with_actor(mut self, actor: ActorRef) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sets the request id (1 to 256 bytes, no control characters).
    pub fn with_request_id(mut self, id: impl Into<String>) -> Result<Self, Error> {
        self.request_id = Some(label("request_id", id)?);
        Ok(self)
    }

    /// Sets the correlation id that ties requests and jobs of one business flow together.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Result<Self, Error> {
        self.correlation_id = Some(label("correlation_id", id)?);
        Ok(self)
    }

    /// Sets the tenant, for hosts that scope reads by tenant.
    pub fn with_tenant_id(mut self, id: impl Into<String>) -> Result<Self, Error> {
        self.tenant_id = Some(label("tenant_id", id)?);
        Ok(self)
    }

    /// Says where the write comes from.
    pub fn with_source(mut self, source: Source) -> Self {
        self.source = Some(source);
        self
    }

    /// Attaches free-form metadata, stored in `audit_transactions.meta`.
    pub fn with_meta(mut self, meta: Map<String, Value>) -> Self {
        self.meta = Some(meta);
        self
    }

    /// Names the business action the transaction performs; [`crate::transaction`]
    /// records it in `audit_actions` and links the transaction to it.
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }

    /// The actor, if any.
    pub fn actor(&self) -> Option<&ActorRef> {
        self.actor.as_ref()
    }

    /// The request id, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The correlation id, if any.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// The tenant, if any.
    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }

    /// The source, if any.
    pub fn source(&self) -> Option<Source> {
        self.source
    }

    /// The action, if any.
    pub fn action(&self) -> Option<&Action> {
        self.action.as_ref()
    }

    /// The JSON that `threadline.begin_audit` takes.
    pub(crate) fn to_json(&self) -> Result<Value, Error> {
        if self.action.is_some() && self.actor.is_none() {
            return Err(Error::MissingActor);
        }
        Ok(serde_json::to_value(self).expect("an audit context always serializes"))
    }

    /// The JSON that `threadline.record_action` takes for `action` in this context.
    pub(crate) fn action_json(&self, action: &Action) -> Result<Value, Error> {
        let actor = self.actor.as_ref().ok_or(Error::MissingActor)?;
        let mut json = serde_json::to_value(action).expect("an action always serializes");
        let object = json.as_object_mut().expect("an action serializes to an object");
        object.insert(
            "actor".into(),
            serde_json::to_value(actor).expect("an actor always serializes"),
        );
        for (key, value) in [
            ("request_id", &self.request_id),
            ("correlation_id", &self.correlation_id),
            ("tenant_id", &self.tenant_id),
        ] {
            if let Some(value) = value {
                object.insert(key.into(), Value::String(value.clone()));
            }
        }
        Ok(json)
    }
}

/// Whether an action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActionStatus {
    /// It did what it meant to.
    #[default]
    Ok,
    /// It failed; recorded on purpose after a rollback.
    Error,
}

/// A named business action, such as `post_created`, stored in `audit_actions`.
///
/// ```
/// use threadline::Action;
///
/// let action = Action::new("post_created")?.with_reason("spam cleanup")?;
/// assert_eq!(action.name(), "post_created");
/// assert!(Action::new("Post Created").is_err());
/// # Ok::<(), threadline::Error>(())
/// ```
///
/// It deserializes from the JSON it serializes to, with the builders' checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawAction")]
pub struct Action {
    name: String,
    status: ActionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    verb: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<String>,
}

/// An [`Action`] as it arrives in JSON, before the builders' checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: String,
    #[serde(default)]
    status: ActionStatus,
    verb: Option<String>,
    category: Option<String>,
    reason: Option<String>,
    comment: Option<String>,
    job_id: Option<String>,
}

impl TryFrom<RawAction> for Action {
    type Error = Error;

    fn try_from(raw: RawAction) -> Result<Self, Error> {
        Ok(Action {
            status: raw.status,
            verb: raw.verb.map(|v| label("verb", v)).transpose()?,
            category: raw.category.map(|v| label("category", v)).transpose()?,
            reason: raw.reason.map(|v| label("reason", v)).transpose()?,
            comment: raw.comment,
            job_id: raw.job_id.map(|v| label("job_id", v)).transpose()?,
            ..Action::new(raw.name)?
        })
    }
}

impl Action {
    /// An action named with 1 to 128 characters of `a-z`, `0-9`, `_`, `.`, `:` or `-`,
    /// starting with a letter. (The macros check the same rule with
    /// `threadline_syntax::action_name_problem`, and SQL with `threadline.record_action`:
    /// `tests/write_path/rules.rs` holds the three to one table of names.)
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let valid = name.len() <= 128
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.:-".contains(c));
        if !valid {
            return Err(Error::invalid(
                "action name",
                format!(
                    "{name:?} must be 1 to 128 characters of a-z, 0-9, _ . : -, starting with a letter, like \"post_created\""
                ),
            ));
        }
        Ok(Action {
            name,
            status: ActionStatus::Ok,
            verb: None,
            category: None,
            reason: None,
            comment: None,
            job_id: None,
        })
    }

    /// Sets the status (default [`ActionStatus::Ok`]).
    pub fn with_status(mut self, status: ActionStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the verb, such as `create`.
    pub fn with_verb(mut self, verb: impl Into<String>) -> Result<Self, Error> {
        self.verb = Some(label("verb", verb)?);
        Ok(self)
    }

    /// Sets the category, such as `posts`.
    pub fn with_category(mut self, category: impl Into<String>) -> Result<Self, Error> {
        self.category = Some(label("category", category)?);
        Ok(self)
    }

    /// Sets why the action was taken.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Result<Self, Error> {
        self.reason = Some(label("reason", reason)?);
        Ok(self)
    }

    /// Attaches a free-text comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// Names the background job that performs the action.
    pub fn with_job_id(mut self, job_id: impl Into<String>) -> Result<Self, Error> {
        self.job_id = Some(label("job_id", job_id)?);
        Ok(self)
    }

    /// The action's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The action's status.
    pub fn status(&self) -> ActionStatus {
        self.status
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn full_context() -> AuditContext {
        AuditContext::new()
            .with_actor(ActorRef::service_account("billing").unwrap())
            .with_request_id("req-1")
            .unwrap()
            .with_correlation_id("flow-9")
            .unwrap()
            .with_tenant_id("acme")
            .unwrap()
            .with_source(Source::Request)
            .with_meta(json!({"client_addr": "10.0.0.1"}).as_object().unwrap().clone())
            .with_action(
                Action::new("invoice_sent")
                    .unwrap()
                    .with_status(ActionStatus::Error)
                    .with_verb("send")
                    .unwrap()
                    .with_category("billing")
                    .unwrap()
                    .with_reason("monthly run")
                    .unwrap()
                    .with_comment("retry 2")
                    .with_job_id("job-7")
                    .unwrap(),
            )
    }

    #[test]
    fn a_context_round_trips_through_json() {
        for ctx in [AuditContext::new(), full_context()] {
            let text = serde_json::to_string(&ctx).unwrap();
            let back: AuditContext = serde_json::from_str(&text).unwrap();
            assert_eq!(back, ctx, "{text}");
        }
    }

    #[test]
    fn an_anonymous_actor_and_nulls_are_accepted() {
        let ctx: AuditContext =
            serde_json::from_value(json!({"actor": {"type": "anonymous"}, "request_id": null})).unwrap();
        assert_eq!(ctx.actor(), Some(&ActorRef::anonymous()));
        assert_eq!(ctx.request_id(), None);
    }

    /// Every way of tampering with a stored context is refused with a message naming it.
    #[test]
    fn tampered_json_is_refused() {
        let long = "x".repeat(257);
        for (json, expected) in [
            (json!({"actr": {"type": "user", "id": "1"}}), "unknown field `actr`"),
            (json!({"actor": {"type": "user", "id": ""}}), "invalid actor id"),
            (json!({"actor": {"type": "user"}}), "a user actor needs an id"),
            (json!({"actor": {"type": "root", "id": "1"}}), "unknown variant `root`"),
            (
                json!({"actor": {"type": "user", "id": "1", "admin": true}}),
                "unknown field `admin`",
            ),
            (json!({"request_id": ""}), "invalid request_id"),
            (json!({"correlation_id": long}), "invalid correlation_id"),
            (json!({"tenant_id": "a\nb"}), "invalid tenant_id"),
            (json!({"source": "cron"}), "unknown variant `cron`"),
            (json!({"meta": [1]}), "invalid type"),
            (json!({"action": {"name": "post_created"}}), "an action needs an actor"),
            (
                json!({"actor": {"type": "user", "id": "1"}, "action": {"name": "Post Created"}}),
                "invalid action name",
            ),
            (
                json!({"actor": {"type": "user", "id": "1"}, "action": {"name": "a", "verb": ""}}),
                "invalid verb",
            ),
            (
                json!({"actor": {"type": "user", "id": "1"}, "action": {"name": "a", "extra": 1}}),
                "unknown field `extra`",
            ),
        ] {
            let error = serde_json::from_value::<AuditContext>(json.clone())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }
}
