use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The kind of party that made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActorType {
    /// A signed-in end user.
    User,
    /// A staff member acting with elevated rights.
    Admin,
    /// A machine identity such as an API key.
    ServiceAccount,
    /// A background job.
    Job,
    /// The application itself (a scheduler, a migration).
    System,
    /// Nobody identified; carries no id.
    Anonymous,
}

impl ActorType {
    /// The name stored in the database, such as `service_account`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::Admin => "admin",
            ActorType::ServiceAccount => "service_account",
            ActorType::Job => "job",
            ActorType::System => "system",
            ActorType::Anonymous => "anonymous",
        }
    }
}

impl ActorType {
    /// Every actor type.
    pub const ALL: [ActorType; 6] = [
        ActorType::User,
        ActorType::Admin,
        ActorType::ServiceAccount,
        ActorType::Job,
        ActorType::System,
        ActorType::Anonymous,
    ];

    /// Parses a stored name such as `service_account`.
    pub fn parse(name: &str) -> Result<Self, Error> {
        ActorType::ALL.into_iter().find(|t| t.as_str() == name).ok_or_else(|| {
            Error::invalid(
                "actor type",
                format!("{name:?} is not one of user, admin, service_account, job, system, anonymous"),
            )
        })
    }
}

impl fmt::Display for ActorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a change: a type and, except for anonymous actors, an id.
///
/// Stored as JSON: `{"type": "user", "id": "42"}`, or `{"type": "anonymous"}`.
///
/// ```
/// use threadline::{ActorRef, ActorType};
///
/// let actor = ActorRef::user("42")?;
/// assert_eq!(actor.actor_type(), ActorType::User);
/// assert_eq!(actor.id(), Some("42"));
/// assert!(ActorRef::user("").is_err());
/// # Ok::<(), threadline::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawActor")]
pub struct ActorRef {
    #[serde(rename = "type")]
    actor_type: ActorType,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActor {
    #[serde(rename = "type")]
    actor_type: ActorType,
    id: Option<String>,
}

impl TryFrom<RawActor> for ActorRef {
    type Error = Error;

    fn try_from(raw: RawActor) -> Result<Self, Error> {
        match (raw.actor_type, raw.id) {
            (ActorType::Anonymous, None) => Ok(ActorRef::anonymous()),
            (ActorType::Anonymous, Some(_)) => Err(Error::invalid("actor", "an anonymous actor has no id")),
            (actor_type, Some(id)) => ActorRef::new(actor_type, id),
            (actor_type, None) => Err(Error::invalid("actor", format!("a {actor_type} actor needs an id"))),
        }
    }
}

impl ActorRef {
    /// An actor of the given type. The id must be 1 to 255 bytes without control
    /// characters; use [`ActorRef::anonymous`] for an actor without one.
    pub fn new(actor_type: ActorType, id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        if actor_type == ActorType::Anonymous {
            return Err(Error::invalid(
                "actor",
                "an anonymous actor has no id; use ActorRef::anonymous()",
            ));
        }
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
            return Err(Error::invalid(
                "actor id",
                "must be 1 to 255 bytes without control characters",
            ));
        }
        Ok(ActorRef {
            actor_type,
            id: Some(id),
        })
    }

    /// A signed-in user.
    pub fn user(id: impl Into<String>) -> Result<Self, Error> {
        ActorRef::new(ActorType::User, id)
    }

    /// A staff member.
    pub fn admin(id: impl Into<String>) -> Result<Self, Error> {
        ActorRef::new(ActorType::Admin, id)
    }

    /// A machine identity.
    pub fn service_account(id: impl Into<String>) -> Result<Self, Error> {
        ActorRef::new(ActorType::ServiceAccount, id)
    }

    /// A background job.
    pub fn job(id: impl Into<String>) -> Result<Self, Error> {
        ActorRef::new(ActorType::Job, id)
    }

    /// The application itself, named by a component such as `scheduler`.
    pub fn system(id: impl Into<String>) -> Result<Self, Error> {
        ActorRef::new(ActorType::System, id)
    }

    /// Nobody identified.
    pub fn anonymous() -> Self {
        ActorRef {
            actor_type: ActorType::Anonymous,
            id: None,
        }
    }

    /// The actor's type.
    pub fn actor_type(&self) -> ActorType {
        self.actor_type
    }

    /// The actor's id; `None` for an anonymous actor.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}
