//! Procedural macros of Threadline, one module per macro.
//!
//! This crate is re-exported by the `threadline` facade: depend on `threadline`, not on it
//! directly. Generated code names everything through `::threadline`, so users need no
//! imports of their own.

mod audited;

use proc_macro::TokenStream;

/// Audits a Diesel model's table: see `threadline::Audited` for what it generates.
///
/// ```ignore
/// #[derive(Queryable, Selectable, Identifiable, Audited)]
/// #[diesel(table_name = users)]
/// #[audited(mask(email), exclude(password_hash), ignore_changes(updated_at))]
/// pub struct User { pub id: i64, pub email: String, pub updated_at: DateTime<Utc> }
/// ```
#[proc_macro_derive(Audited, attributes(audited))]
pub fn derive_audited(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    audited::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
