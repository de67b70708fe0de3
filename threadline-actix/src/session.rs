//! Reference adapter for [actix-session](https://docs.rs/actix-session) (feature `session`):
//! the actor from a key of the request's session.

use actix_session::Session;
use actix_web::Error;
use serde_json::Value;
use threadline::{ActorRef, ActorType};

use crate::error::AuditError;

/// A resolver for [`AuditMiddleware::with_extractor`](crate::AuditMiddleware::with_extractor):
/// the actor of type `actor_type` whose id the session holds under `key`, a JSON string or
/// number (`session.insert("user_id", 42)`). A session without the key is a request with no
/// actor; a value that is neither, or not a valid actor id, is a 500 (the session is the app's
/// own state).
///
/// Wrap the app with `SessionMiddleware` after (outside) `AuditMiddleware`, so that the
/// session is loaded when the audit middleware runs.
///
/// ```
/// use actix_web::App;
/// use threadline::ActorType;
/// use threadline_actix::{AuditMiddleware, session};
///
/// let app = App::new()
///     .wrap(AuditMiddleware::with_extractor(session::actor_from_key("user_id", ActorType::User)));
///     // .wrap(SessionMiddleware::new(store, key)) registered after it, so it runs first
/// ```
pub fn actor_from_key(
    key: impl Into<String>,
    actor_type: ActorType,
) -> impl Fn(Session) -> Result<Option<ActorRef>, Error> + Clone + 'static {
    let key = key.into();
    move |session: Session| {
        let unreadable = |reason: String| AuditError::internal(format!("invalid session key {key}: {reason}"));
        let id = match session.get::<Value>(&key) {
            Ok(None) => return Ok(None),
            Ok(Some(Value::String(id))) => id,
            Ok(Some(Value::Number(id))) => id.to_string(),
            Ok(Some(_)) => return Err(unreadable("neither a string nor a number".to_owned()).into()),
            Err(error) => return Err(unreadable(error.to_string()).into()),
        };
        match ActorRef::new(actor_type, id) {
            Ok(actor) => Ok(Some(actor)),
            Err(error) => Err(unreadable(error.to_string()).into()),
        }
    }
}
