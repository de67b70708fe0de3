//! Reference adapter for [actix-identity](https://docs.rs/actix-identity) (feature
//! `identity`): the signed-in identity as a user actor.

use actix_identity::Identity;
use actix_web::Error;
use threadline::ActorRef;

use crate::error::AuditError;

/// A resolver for [`AuditMiddleware::with_extractor`](crate::AuditMiddleware::with_extractor):
/// the signed-in identity `id` as the actor `user:<id>`; no identity is a request with no
/// actor. An identity whose id cannot be read, or is not a valid actor id, is a 500.
///
/// Wrap the app with `IdentityMiddleware` and then `SessionMiddleware` after (outside)
/// `AuditMiddleware`, so that both run before it.
///
/// ```
/// use actix_web::App;
/// use threadline_actix::{AuditMiddleware, identity};
///
/// let app = App::new()
///     .wrap(AuditMiddleware::with_extractor(identity::user))
///     .wrap(actix_identity::IdentityMiddleware::default());
///     // .wrap(SessionMiddleware::new(store, key)) last, so it runs first
/// ```
pub fn user(identity: Option<Identity>) -> Result<Option<ActorRef>, Error> {
    let Some(identity) = identity else {
        return Ok(None);
    };
    let unreadable = |reason: String| AuditError::internal(format!("invalid identity: {reason}"));
    let id = identity.id().map_err(|error| unreadable(error.to_string()))?;
    let actor = ActorRef::user(id).map_err(|error| unreadable(error.to_string()))?;
    Ok(Some(actor))
}
