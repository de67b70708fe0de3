//! The `#[audited(...)]` attribute syntax of Threadline, parsed once for both users of it:
//! the `#[derive(Audited)]` macro, which turns it into code, and `threadline gen-triggers`,
//! which turns it into Diesel migrations.
//!
//! [`AuditedModel::from_derive`] reads a model struct with its `#[diesel(...)]` and
//! `#[audited(...)]` attributes and checks everything that can be checked without types:
//! every mistake is a [`syn::Error`] spanned on the offending token, with a hint that shows
//! the correct form.
//!
//! ```
//! let input: syn::DeriveInput = syn::parse_quote! {
//!     #[diesel(table_name = users)]
//!     #[audited(mask(email), exclude(password_hash), ignore_changes(updated_at))]
//!     pub struct User { pub id: i64, pub email: String, pub updated_at: String }
//! };
//! let model = threadline_syntax::AuditedModel::from_derive(&input)?;
//! assert_eq!(model.qualified_table(), "public.users");
//! assert_eq!(
//!     model.policy_json(),
//!     r#"{"exclude":["password_hash"],"mask":["email"],"mask_placeholder":"[REDACTED]","ignore_changes":["updated_at"],"primary_key":["id"],"changed_from":true}"#
//! );
//! # Ok::<(), syn::Error>(())
//! ```

mod attrs;
mod sql;

use proc_macro2::Span;
use syn::{Data, DeriveInput, Fields, Ident, Path, Type};

pub use sql::{POLICY_MARKER, json_string, parse_marker};

/// A column named in an attribute, with where it was named.
#[derive(Debug, Clone)]
pub struct Column {
    /// The column's name in the database.
    pub name: String,
    /// The token that named it, for errors.
    pub span: Span,
}

/// What the policy does with a field's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redaction {
    /// Stored as it is.
    None,
    /// Stored as the placeholder.
    Masked,
    /// Never stored.
    Excluded,
}

/// One field of the model.
#[derive(Debug, Clone)]
pub struct ModelField {
    /// The field.
    pub ident: Ident,
    /// Its column (`#[diesel(column_name = ...)]`, else the field's name).
    pub column: String,
    /// Its type.
    pub ty: Type,
    /// What the policy does with it.
    pub redaction: Redaction,
}

/// A model struct deriving `Audited`, with its table and capture policy.
#[derive(Debug, Clone)]
pub struct AuditedModel {
    /// The struct.
    pub ident: Ident,
    /// The path of the Diesel `table!` module (`#[diesel(table_name = ...)]`, else Diesel's
    /// default: the struct's name in snake case with an `s`).
    pub table_path: Path,
    /// The table's schema (`#[audited(schema = "...")]`, default `public`).
    pub schema: String,
    /// The table's name: the last segment of [`AuditedModel::table_path`].
    pub table: String,
    /// The fields, in order.
    pub fields: Vec<ModelField>,
    /// The key columns, in order: `#[audited(primary_key(...))]`, else
    /// `#[diesel(primary_key(...))]`, else `id`.
    pub key: Vec<Column>,
    /// Columns never stored.
    pub exclude: Vec<Column>,
    /// Columns stored as the placeholder.
    pub mask: Vec<Column>,
    /// The placeholder.
    pub mask_placeholder: String,
    /// Columns left out of change detection.
    pub ignore_changes: Vec<Column>,
    /// Whether prior values of changed columns are kept.
    pub changed_from: bool,
}

/// The placeholder when none is given.
pub const DEFAULT_PLACEHOLDER: &str = "[REDACTED]";

impl AuditedModel {
    /// Reads and checks a model. Several mistakes are reported together.
    pub fn from_derive(input: &DeriveInput) -> syn::Result<Self> {
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(_) | Fields::Unit => {
                    return Err(hint(
                        syn::Error::new_spanned(
                            &input.ident,
                            "#[derive(Audited)] needs a struct with named fields, one per column",
                        ),
                        "pub struct Post { pub id: i64, pub title: String }",
                    ));
                }
            },
            Data::Enum(data) => {
                return Err(hint(
                    syn::Error::new_spanned(data.enum_token, "#[derive(Audited)] works on structs, not enums"),
                    "#[derive(Audited)] pub struct Post { pub id: i64, pub title: String }",
                ));
            }
            Data::Union(data) => {
                return Err(hint(
                    syn::Error::new_spanned(data.union_token, "#[derive(Audited)] works on structs, not unions"),
                    "#[derive(Audited)] pub struct Post { pub id: i64, pub title: String }",
                ));
            }
        };
        if !input.generics.params.is_empty() {
            return Err(syn::Error::new_spanned(
                &input.generics,
                "#[derive(Audited)] does not take generic models\n  = help: the correct format looks like `pub struct Post { pub id: i64 }`",
            ));
        }
        let diesel = attrs::DieselAttrs::parse(&input.attrs)?;
        let audited = attrs::AuditedAttrs::parse(&input.attrs)?;
        let mut model_fields = Vec::new();
        for field in &fields.named {
            let ident = field.ident.clone().expect("named fields have names");
            let column = attrs::column_name(&field.attrs)?.unwrap_or_else(|| ident.unraw_string());
            model_fields.push(ModelField {
                ident,
                column,
                ty: field.ty.clone(),
                redaction: Redaction::None,
            });
        }
        let table_path = diesel
            .table_name
            .unwrap_or_else(|| Ident::new(&infer_table_name(&input.ident.to_string()), input.ident.span()).into());
        let table = table_path
            .segments
            .last()
            .map(|s| s.ident.unraw_string())
            .unwrap_or_default();
        if !attrs::identifier_like(&table) {
            return Err(hint(
                syn::Error::new_spanned(&table_path, "the table name must be 1 to 63 bytes"),
                "#[diesel(table_name = posts)]",
            ));
        }
        let default_key = audited.primary_key.is_none() && diesel.primary_key.is_none();
        let key = audited.primary_key.or(diesel.primary_key).unwrap_or_else(|| {
            vec![Column {
                name: "id".into(),
                span: input.ident.span(),
            }]
        });
        let model = AuditedModel {
            ident: input.ident.clone(),
            table_path,
            schema: audited.schema.unwrap_or_else(|| "public".into()),
            table,
            fields: model_fields,
            key,
            exclude: audited.exclude,
            mask: audited.mask,
            mask_placeholder: audited.mask_placeholder.unwrap_or_else(|| DEFAULT_PLACEHOLDER.into()),
            ignore_changes: audited.ignore_changes,
            changed_from: audited.changed_from.unwrap_or(true),
        };
        model.check(default_key)
    }

    /// Checks what spans several attributes, and marks redacted fields. `default_key`: no
    /// attribute names the key, so it is `id`.
    fn check(mut self, default_key: bool) -> syn::Result<Self> {
        let mut errors: Option<syn::Error> = None;
        let mut push = |error: syn::Error| match &mut errors {
            Some(all) => all.combine(error),
            None => errors = Some(error),
        };
        for masked in &self.mask {
            if self.exclude.iter().any(|e| e.name == masked.name) {
                push(hint(
                    syn::Error::new(
                        masked.span,
                        format!(
                            "column `{}` is both masked and excluded; choose one: `mask` stores a placeholder, \
                             so the trail shows that it changed, `exclude` stores nothing of it",
                            masked.name
                        ),
                    ),
                    &format!("#[audited(mask({}))]", masked.name),
                ));
            }
        }
        for key in &self.key {
            let redacted = [("mask", &self.mask), ("exclude", &self.exclude)]
                .into_iter()
                .find_map(|(list, columns)| Some((list, columns.iter().find(|c| c.name == key.name)?)));
            if let Some((list, redacted)) = redacted {
                push(hint(
                    syn::Error::new(
                        redacted.span,
                        format!(
                            "key column `{}` cannot be masked or excluded: the trail would not say which row \
                             changed; take it out of `{list}(...)`",
                            key.name
                        ),
                    ),
                    &format!("{list}(<columns outside the key>)"),
                ));
            }
            if !self.fields.iter().any(|f| f.column == key.name) {
                let why = if default_key {
                    " (`id` is the key when no #[diesel(primary_key(...))] names one)"
                } else {
                    ""
                };
                push(hint(
                    syn::Error::new(
                        key.span,
                        format!(
                            "`{}` has no field for its key column `{}`{why}; typed history needs the key",
                            self.ident, key.name
                        ),
                    ),
                    &format!("pub struct {} {{ pub {}: ..., ... }}", self.ident, key.name),
                ));
            }
        }
        if let Some(errors) = errors {
            return Err(errors);
        }
        for field in &mut self.fields {
            field.redaction = if self.exclude.iter().any(|c| c.name == field.column) {
                Redaction::Excluded
            } else if self.mask.iter().any(|c| c.name == field.column) {
                Redaction::Masked
            } else {
                Redaction::None
            };
        }
        Ok(self)
    }

    /// `schema.table`.
    pub fn qualified_table(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// The key fields, in key order.
    pub fn key_fields(&self) -> Vec<&ModelField> {
        self.key
            .iter()
            .filter_map(|k| self.fields.iter().find(|f| f.column == k.name))
            .collect()
    }
}

/// Adds the "correct format" hint to an error.
pub(crate) fn hint(error: syn::Error, correct: &str) -> syn::Error {
    syn::Error::new(
        error.span(),
        format!("{error}\n  = help: the correct format looks like `{correct}`"),
    )
}

/// Diesel's default table name: the struct's name in snake case, with an `s`.
pub fn infer_table_name(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out.push('s');
    out
}

/// Why `name` cannot name an action, or `None` when it can: 1 to 128 characters of `a-z`,
/// `0-9`, `_ . : -`, starting with a letter. The same rule as `threadline::Action::new` and
/// SQL's `threadline.record_action`, which cannot share this code; the workspace's
/// `tests/write_path/rules.rs` runs one table of names through all three.
///
/// ```
/// use threadline_syntax::action_name_problem;
///
/// assert_eq!(action_name_problem("post_created"), None);
/// assert!(action_name_problem("Post created").is_some());
/// ```
pub fn action_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("the action's name is empty");
    }
    let valid = name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.:-".contains(c));
    (!valid).then_some("it must be 1 to 128 characters of a-z, 0-9, _ . : -, starting with a letter")
}

/// The candidate closest to `word`, when it is a plausible typo of it. (The core crate has
/// its own copy: it must not depend on `syn`.)
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

trait Unraw {
    fn unraw_string(&self) -> String;
}

impl Unraw for Ident {
    fn unraw_string(&self) -> String {
        let text = self.to_string();
        text.strip_prefix("r#").map(str::to_owned).unwrap_or(text)
    }
}
