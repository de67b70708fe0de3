//! Finding the `#[derive(Audited)]` models of an app's sources, without compiling them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;
use syn::punctuated::Punctuated;
use syn::{Attribute, DeriveInput, Item, Token};
use threadline_syntax::AuditedModel;

use crate::Failure;

/// A model found in the sources.
#[derive(Debug)]
pub struct Found {
    /// The model, as the derive reads it.
    pub model: AuditedModel,
    /// Its policy, as JSON.
    pub policy: Value,
    /// Where its struct is named: `file:line:col`.
    pub at: String,
}

/// What scanning the sources found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The models, one per table, in file order (files sorted by path).
    pub models: Vec<Found>,
    /// Mistakes, each `file:line:col: message`.
    pub errors: Vec<String>,
}

/// Reads every `.rs` file under `src` (or `src` itself, when it is a file).
pub fn scan(src: &Path) -> Result<Scan, Failure> {
    if !src.exists() {
        return Err(Failure::Usage(format!(
            "{}: no such source folder (pass --src PATH)",
            src.display()
        )));
    }
    let mut files = Vec::new();
    rust_files(src, &mut files).map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", src.display())))?;
    files.sort();
    let mut scan = Scan::default();
    for file in files {
        let text =
            fs::read_to_string(&file).map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", file.display())))?;
        match syn::parse_file(&text) {
            Ok(parsed) => scan.items(&file, parsed.items),
            Err(error) => scan.error(&file, &error),
        }
    }
    Ok(scan)
}

/// Collects the `.rs` files under `path`; symbolic links to folders are not followed.
fn rust_files(path: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if !path.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

impl Scan {
    /// Reads the models among `items`, and inside their inline modules.
    fn items(&mut self, file: &Path, items: Vec<Item>) {
        for item in items {
            let input: DeriveInput = match item {
                Item::Struct(item) => item.into(),
                Item::Enum(item) => item.into(),
                Item::Union(item) => item.into(),
                Item::Mod(module) => {
                    if let Some((_, items)) = module.content {
                        self.items(file, items);
                    }
                    continue;
                }
                _ => continue,
            };
            match derives_audited(&input.attrs)
                .and_then(|yes| yes.then(|| AuditedModel::from_derive(&input)).transpose())
            {
                Ok(Some(model)) => self.add(file, model),
                Ok(None) => {}
                Err(error) => self.error(file, &error),
            }
        }
    }

    /// Adds a model, unless one for its table was found already: the same policy twice is
    /// one model, two policies for one table are an error.
    fn add(&mut self, file: &Path, model: AuditedModel) {
        let at = location(file, model.ident.span());
        let policy = serde_json::from_str(&model.policy_json()).expect("policy_json writes JSON");
        let table = model.qualified_table();
        match self.models.iter().find(|found| found.model.qualified_table() == table) {
            Some(first) if first.policy == policy => {}
            Some(first) => self.errors.push(format!(
                "{at}: `{}` audits {table} with another policy than `{}` at {}; a table has one policy: \
                 make the annotations the same, or keep #[derive(Audited)] on one model",
                model.ident, first.model.ident, first.at
            )),
            None => self.models.push(Found { model, policy, at }),
        }
    }

    /// Records each message of `error` at its place in `file`.
    fn error(&mut self, file: &Path, error: &syn::Error) {
        for error in error {
            self.errors.push(format!("{}: {error}", location(file, error.span())));
        }
    }
}

/// Whether the attributes derive `Audited` (by any path ending in `Audited`).
fn derives_audited(attrs: &[Attribute]) -> syn::Result<bool> {
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("derive")) {
        let paths = attr.parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated)?;
        if paths
            .iter()
            .any(|path| path.segments.last().is_some_and(|segment| segment.ident == "Audited"))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `file:line:col` of where `span` starts, the column counted from 1.
fn location(file: &Path, span: proc_macro2::Span) -> String {
    let start = span.start();
    format!("{}:{}:{}", file.display(), start.line, start.column + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `text` as `src/models.rs`.
    fn scan_text(text: &str) -> Scan {
        let mut scan = Scan::default();
        match syn::parse_file(text) {
            Ok(parsed) => scan.items(Path::new("src/models.rs"), parsed.items),
            Err(error) => scan.error(Path::new("src/models.rs"), &error),
        }
        scan
    }

    #[test]
    fn models_are_found_at_any_depth_of_inline_modules() {
        let scan = scan_text(
            "#[derive(Debug)] struct NotAudited { id: i64 }
             mod admin { mod inner {
                 #[derive(Clone, threadline::Audited)]
                 #[audited(mask(email))]
                 pub struct Admin { id: i64, email: String }
             } }",
        );
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(scan.models.len(), 1);
        assert_eq!(scan.models[0].model.qualified_table(), "public.admins");
        assert_eq!(scan.models[0].at, "src/models.rs:5:29");
    }

    #[test]
    fn errors_carry_their_line_and_column() {
        let scan = scan_text("#[derive(Audited)]\n#[audited(mask(a), masks(b))]\nstruct Post { id: i64 }");
        assert_eq!(scan.errors.len(), 1);
        assert!(
            scan.errors[0].starts_with("src/models.rs:2:20: unknown key `masks`"),
            "{:?}",
            scan.errors
        );
        let scan = scan_text("struct Post {\n    id: i64,,\n}");
        assert!(scan.errors[0].starts_with("src/models.rs:2:13: "), "{:?}", scan.errors);
    }

    #[test]
    fn one_table_takes_one_policy() {
        let same = "#[derive(Audited)] #[diesel(table_name = posts)] struct A { id: i64 }
                    #[derive(Audited)] #[diesel(table_name = posts)] struct B { id: i64 }";
        let scan = scan_text(same);
        assert_eq!((scan.models.len(), scan.errors.len()), (1, 0));
        let scan = scan_text(&same.replacen("struct B", "#[audited(changed_from = false)] struct B", 1));
        assert_eq!(scan.errors.len(), 1);
        assert!(
            scan.errors[0].contains("`B` audits public.posts with another policy than `A` at src/models.rs:1:"),
            "{:?}",
            scan.errors
        );
    }
}
