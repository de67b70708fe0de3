//! Reading `#[diesel(...)]` and `#[audited(...)]`.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident, LitBool, LitStr, Path};

use crate::{Column, Unraw, hint, suggest};

/// The keys `#[audited(...)]` takes.
pub const AUDITED_KEYS: [&str; 7] = [
    "exclude",
    "mask",
    "mask_placeholder",
    "ignore_changes",
    "primary_key",
    "changed_from",
    "schema",
];

const CORRECT: &str = "#[audited(mask(email), exclude(password_hash), ignore_changes(updated_at))]";

/// What the struct's `#[diesel(...)]` attributes say about the table.
#[derive(Default)]
pub(crate) struct DieselAttrs {
    pub(crate) table_name: Option<Path>,
    pub(crate) primary_key: Option<Vec<Column>>,
}

impl DieselAttrs {
    pub(crate) fn parse(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut out = DieselAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("diesel")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("table_name") {
                    out.table_name = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("primary_key") {
                    out.primary_key = Some(columns(&meta)?);
                } else {
                    skip(&meta)?;
                }
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// Skips the value of a `#[diesel(...)]` key Threadline does not read.
fn skip(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

/// A field's `#[diesel(column_name = ...)]`.
pub(crate) fn column_name(attrs: &[Attribute]) -> syn::Result<Option<String>> {
    let mut name = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("diesel")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("column_name") {
                let value = meta.value()?;
                name = Some(if value.peek(LitStr) {
                    value.parse::<LitStr>()?.value()
                } else {
                    value.parse::<Ident>()?.unraw_string()
                });
            } else {
                skip(&meta)?;
            }
            Ok(())
        })?;
    }
    Ok(name)
}

/// What `#[audited(...)]` says.
#[derive(Default)]
pub(crate) struct AuditedAttrs {
    pub(crate) exclude: Vec<Column>,
    pub(crate) mask: Vec<Column>,
    pub(crate) ignore_changes: Vec<Column>,
    pub(crate) primary_key: Option<Vec<Column>>,
    pub(crate) mask_placeholder: Option<String>,
    pub(crate) changed_from: Option<bool>,
    pub(crate) schema: Option<String>,
}

impl AuditedAttrs {
    pub(crate) fn parse(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut out = AuditedAttrs::default();
        let mut seen: Vec<String> = Vec::new();
        for attr in attrs.iter().filter(|a| a.path().is_ident("audited")) {
            if let syn::Meta::Path(_) = attr.meta {
                return Err(hint(
                    syn::Error::new_spanned(attr.path(), "#[audited] needs a policy in parentheses"),
                    CORRECT,
                ));
            }
            attr.parse_nested_meta(|meta| {
                let key = meta
                    .path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "?".into());
                if !AUDITED_KEYS.contains(&key.as_str()) {
                    let suggestion = suggest(&key, &AUDITED_KEYS);
                    let did_you_mean = suggestion.map(|k| format!("; did you mean `{k}`?")).unwrap_or_default();
                    let correct = suggestion.map(|k| format!("{k}{}", correct_value(k)));
                    return Err(hint(
                        meta.error(format!(
                            "unknown key `{key}` in #[audited(...)]{did_you_mean} The keys are {}",
                            AUDITED_KEYS.join(", ")
                        )),
                        correct.as_deref().unwrap_or(CORRECT),
                    ));
                }
                if seen.contains(&key) {
                    let message = if correct_value(&key).starts_with('(') {
                        format!("`{key}` is given twice; list all its columns in one `{key}(...)`")
                    } else {
                        format!("`{key}` is given twice; say it once")
                    };
                    return Err(hint(meta.error(message), &format!("{key}{}", correct_value(&key))));
                }
                seen.push(key.clone());
                match key.as_str() {
                    "exclude" => out.exclude = columns(&meta)?,
                    "mask" => out.mask = columns(&meta)?,
                    "ignore_changes" => out.ignore_changes = columns(&meta)?,
                    "primary_key" => out.primary_key = Some(columns(&meta)?),
                    "mask_placeholder" => {
                        let text = string(&meta, &key)?;
                        if text.is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
                            return Err(hint(
                                meta.error("the placeholder must be 1 to 200 characters without control characters"),
                                "mask_placeholder = \"[REDACTED]\"",
                            ));
                        }
                        out.mask_placeholder = Some(text);
                    }
                    "schema" => {
                        let schema = string(&meta, &key)?;
                        if !identifier_like(&schema) {
                            return Err(hint(
                                meta.error("the schema must be 1 to 63 bytes without control characters"),
                                "schema = \"app\"",
                            ));
                        }
                        out.schema = Some(schema);
                    }
                    _ => {
                        let value = meta.value().map_err(|e| with_hint(e, &key))?;
                        let lit: LitBool = value.parse().map_err(|e| {
                            with_hint(
                                syn::Error::new(e.span(), format!("`{key}` takes `true` or `false`")),
                                &key,
                            )
                        })?;
                        out.changed_from = Some(lit.value);
                    }
                }
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// Whether `name` can be a PostgreSQL name as Threadline stores it: 1 to 63 bytes without
/// control characters.
pub(crate) fn identifier_like(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && !name.chars().any(char::is_control)
}

/// The correct form of each key's value.
fn correct_value(key: &str) -> &'static str {
    match key {
        "mask_placeholder" => " = \"[REDACTED]\"",
        "changed_from" => " = false",
        "schema" => " = \"app\"",
        _ => "(column_a, column_b)",
    }
}

fn with_hint(error: syn::Error, key: &str) -> syn::Error {
    hint(error, &format!("{key}{}", correct_value(key)))
}

/// `key = "text"`.
fn string(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<String> {
    let value = meta.value().map_err(|e| with_hint(e, key))?;
    let lit: LitStr = value.parse().map_err(|e| {
        with_hint(
            syn::Error::new(e.span(), format!("`{key}` takes a string literal")),
            key,
        )
    })?;
    Ok(lit.value())
}

/// `key(a, b, c)`: column names, each once.
fn columns(meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<Column>> {
    let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
    if !meta.input.peek(syn::token::Paren) {
        return Err(with_hint(
            meta.error(format!("`{key}` takes a list of columns in parentheses")),
            &key,
        ));
    }
    let mut out: Vec<Column> = Vec::new();
    meta.parse_nested_meta(|column| {
        let Some(ident) = column.path.get_ident() else {
            return Err(with_hint(column.error("expected a column name"), &key));
        };
        if !column.input.is_empty() && !column.input.peek(syn::Token![,]) {
            return Err(with_hint(column.error("expected a column name"), &key));
        }
        let name = ident.unraw_string();
        if out.iter().any(|c| c.name == name) {
            return Err(with_hint(
                syn::Error::new(
                    ident.span(),
                    format!("column `{name}` is listed twice in `{key}`; name each column once"),
                ),
                &key,
            ));
        }
        out.push(Column {
            name,
            span: ident.span(),
        });
        Ok(())
    })?;
    if out.is_empty() {
        return Err(with_hint(meta.error(format!("`{key}` names no column")), &key));
    }
    Ok(out)
}
