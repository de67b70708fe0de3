//! CSRF tokens bound to the operator: an HMAC-SHA256 of the operator's actor under a key
//! of the surface. A form carries the token; a post whose token is missing, malformed or
//! another operator's is refused before anything is written.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use threadline::ActorRef;

type HmacSha256 = Hmac<Sha256>;

/// A fresh random key.
pub(crate) fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system's random source");
    key
}

/// Signs and checks tokens under one key.
pub(crate) struct Csrf {
    key: [u8; 32],
}

impl Csrf {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Csrf { key }
    }

    fn mac(&self, actor: &ActorRef) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(b"threadline-web csrf\0");
        mac.update(serde_json::to_string(actor).unwrap_or_default().as_bytes());
        mac
    }

    /// The token of `actor`'s forms, as hex.
    pub(crate) fn token(&self, actor: &ActorRef) -> String {
        self.mac(actor)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `token` is `actor`'s, compared in constant time.
    pub(crate) fn verify(&self, actor: &ActorRef, token: &str) -> bool {
        let Some(bytes) = decode_hex(token) else {
            return false;
        };
        self.mac(actor).verify_slice(&bytes).is_ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_its_operators_alone() {
        let csrf = Csrf::new([7; 32]);
        let (one, two) = (ActorRef::user("1").unwrap(), ActorRef::user("2").unwrap());
        let token = csrf.token(&one);
        assert!(csrf.verify(&one, &token));
        assert!(!csrf.verify(&two, &token));
        assert!(!csrf.verify(&one, ""));
        assert!(!csrf.verify(&one, &token[..63]));
        assert!(!csrf.verify(&one, &token.replace(&token[..1], "z")));
        assert!(!Csrf::new([8; 32]).verify(&one, &token));
    }
}
