//! `#[derive(Audited)]`: the policy constants, the column checks against Diesel's
//! `table!`, the snapshot struct and the typed history accessors.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident};
use threadline_syntax::{AuditedModel, Column, Redaction};

/// A column as an identifier of Diesel's `table!`, spanned on the token that named it.
fn column_ident(column: &Column) -> Ident {
    syn::parse_str::<Ident>(&column.name)
        .map(|mut ident| {
            ident.set_span(column.span);
            ident
        })
        .unwrap_or_else(|_| Ident::new_raw(&column.name, column.span))
}

/// What a derive that failed emits: its error, and stand-ins for the snapshot and the
/// accessors (taking any key), so that code calling `User::history` reports only the
/// derive's mistake, not one error more per call, and keeps IDE help while it is fixed.
pub(crate) fn fallback(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    if !input.generics.params.is_empty() {
        return error;
    }
    let (ident, vis) = (&input.ident, &input.vis);
    let snapshot = format_ident!("{}Snapshot", ident);
    let page = quote!(::threadline::read::Page<::threadline::model::Version<#snapshot>>);
    let as_of = quote!(::threadline::model::RowAsOf<#snapshot>);
    let result = quote!(::core::result::Result);
    let (conn, sync) = (
        quote!(&mut ::threadline::__support::AsyncPgConnection),
        quote!(&mut ::threadline::__support::PgConnection),
    );
    let (cursor, at) = (
        quote!(::core::option::Option<&::threadline::read::Cursor>),
        quote!(::threadline::__support::DateTime<::threadline::__support::Utc>),
    );
    quote! {
        #error

        #[doc(hidden)]
        #vis struct #snapshot {}

        #[doc(hidden)]
        #[allow(dead_code, unused_variables, clippy::all)]
        impl #ident {
            pub async fn history<K>(conn: #conn, key: K) -> #result<#page, ::threadline::Error> {
                ::core::unreachable!()
            }
            pub async fn history_page<K>(conn: #conn, key: K, cursor: #cursor, page_size: usize) -> #result<#page, ::threadline::Error> {
                ::core::unreachable!()
            }
            pub async fn as_of<K>(conn: #conn, key: K, at: #at) -> #result<#as_of, ::threadline::Error> {
                ::core::unreachable!()
            }
            pub fn history_blocking<K>(conn: #sync, key: K) -> #result<#page, ::threadline::Error> {
                ::core::unreachable!()
            }
            pub fn history_page_blocking<K>(conn: #sync, key: K, cursor: #cursor, page_size: usize) -> #result<#page, ::threadline::Error> {
                ::core::unreachable!()
            }
            pub fn as_of_blocking<K>(conn: #sync, key: K, at: #at) -> #result<#as_of, ::threadline::Error> {
                ::core::unreachable!()
            }
        }
    }
}

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let model = AuditedModel::from_derive(input)?;
    let ident = &model.ident;
    let vis = &input.vis;
    let snapshot = format_ident!("{}Snapshot", ident);
    let table_path = &model.table_path;
    let (schema, table) = (&model.schema, &model.table);
    let policy = model.policy_json();
    let up = model.up_sql();

    let checks = model
        .exclude
        .iter()
        .chain(&model.mask)
        .chain(&model.ignore_changes)
        .chain(&model.key)
        .map(|column| {
            let column = column_ident(column);
            quote_spanned!(column.span()=> let _ = #table_path::#column;)
        });

    let field_idents: Vec<&Ident> = model.fields.iter().map(|f| &f.ident).collect();
    let field_names: Vec<String> = field_idents.iter().map(|i| i.to_string()).collect();
    let field_count = model.fields.len();
    let snapshot_fields = model.fields.iter().map(|f| {
        let (ident, ty) = (&f.ident, &f.ty);
        // Decoding follows what each change recorded, not this annotation: the docs say so.
        let now = match f.redaction {
            Redaction::None => "",
            Redaction::Masked => {
                " The model's policy masks it: changes captured under that policy hold `Field::Masked`."
            }
            Redaction::Excluded => {
                " The model's policy excludes it: changes captured under that policy hold `Field::Excluded`."
            }
        };
        let doc = format!("Column `{}` as captured.{now}", f.column);
        quote!(#[doc = #doc] pub #ident: ::threadline::model::Field<#ty>)
    });
    let decoders = model.fields.iter().map(|f| {
        let (ident, ty, column) = (&f.ident, &f.ty, &f.column);
        quote!(#ident: ::threadline::model::field::<#ty>(row, #column)?)
    });

    let key_fields = model.key_fields();
    let key_types: Vec<&syn::Type> = key_fields.iter().map(|f| &f.ty).collect();
    // `KeyPart::key_text(key)` is spanned on the key field's type, so that a type which cannot
    // be a key (KeyPart's on_unimplemented message) is reported there, not on the derive.
    let key_text = |ty: &syn::Type, index: Option<syn::Index>| {
        let part = index.map(|i| quote_spanned!(ty.span()=> &key.#i));
        let part = part.unwrap_or_else(|| quote_spanned!(ty.span()=> key));
        quote_spanned!(ty.span()=> ::threadline::__support::KeyPart::key_text(#part))
    };
    let (key_type, row_key) = if let [single] = key_types.as_slice() {
        let text = key_text(single, None);
        (quote!(#single), quote!(::threadline::read::RowKey::from(#text)))
    } else {
        let columns = key_fields.iter().map(|f| &f.column);
        let texts = key_types
            .iter()
            .enumerate()
            .map(|(i, ty)| key_text(ty, Some(syn::Index::from(i))));
        (
            quote!((#(#key_types),*)),
            quote! {
                ::threadline::read::RowKey::columns([
                    #((#columns, #texts)),*
                ])
                .expect("key columns are distinct and named")
            },
        )
    };
    let snapshot_doc = format!(
        "`{ident}` as a captured change left it: each field holds its value, or says that the policy masked or excluded it. Made by `#[derive(Audited)]`."
    );

    Ok(quote! {
        const _: () = {
            #[allow(unused, clippy::all)]
            fn threadline_columns_exist_in_the_diesel_table() {
                #(#checks)*
            }
        };

        #[doc = #snapshot_doc]
        #[derive(Debug, Clone, PartialEq)]
        #vis struct #snapshot {
            #(#snapshot_fields,)*
        }

        impl #snapshot {
            /// The model itself, when every field held a stored value (nothing masked,
            /// excluded or absent).
            pub fn into_model(self) -> ::core::option::Option<#ident> {
                ::core::option::Option::Some(#ident {
                    #(#field_idents: self.#field_idents.into_value()?,)*
                })
            }
        }

        impl ::threadline::model::Snapshot for #snapshot {
            fn decode(
                row: &::threadline::model::CapturedRow<'_>,
            ) -> ::core::result::Result<Self, ::threadline::Error> {
                ::core::result::Result::Ok(#snapshot { #(#decoders,)* })
            }
        }

        impl ::threadline::__support::serde::Serialize for #snapshot {
            fn serialize<S: ::threadline::__support::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                use ::threadline::__support::serde::ser::SerializeStruct;
                let mut out = serializer.serialize_struct(stringify!(#snapshot), #field_count)?;
                #(out.serialize_field(#field_names, &self.#field_idents)?;)*
                out.end()
            }
        }

        impl ::threadline::Audited for #ident {
            const SCHEMA: &'static str = #schema;
            const TABLE: &'static str = #table;
            const POLICY_JSON: &'static str = #policy;
            const MIGRATION_UP: &'static str = #up;
            type Key = #key_type;
            type Snapshot = #snapshot;

            fn row_key(key: &Self::Key) -> ::threadline::read::RowKey {
                #row_key
            }
        }

        impl #ident {
            /// This row's newest versions (up to 200), newest first; `NotFound` when nothing
            /// was captured for it.
            pub async fn history(
                conn: &mut ::threadline::__support::AsyncPgConnection,
                key: #key_type,
            ) -> ::core::result::Result<::threadline::read::Page<::threadline::model::Version<#snapshot>>, ::threadline::Error> {
                ::threadline::model::history::<Self>(conn, &key).await
            }

            /// One page of this row's versions, newest first, after `cursor`.
            pub async fn history_page(
                conn: &mut ::threadline::__support::AsyncPgConnection,
                key: #key_type,
                cursor: ::core::option::Option<&::threadline::read::Cursor>,
                page_size: usize,
            ) -> ::core::result::Result<::threadline::read::Page<::threadline::model::Version<#snapshot>>, ::threadline::Error> {
                ::threadline::model::history_page::<Self>(conn, &key, cursor, page_size).await
            }

            /// This row as it was at `at`.
            pub async fn as_of(
                conn: &mut ::threadline::__support::AsyncPgConnection,
                key: #key_type,
                at: ::threadline::__support::DateTime<::threadline::__support::Utc>,
            ) -> ::core::result::Result<::threadline::model::RowAsOf<#snapshot>, ::threadline::Error> {
                ::threadline::model::as_of::<Self>(conn, &key, at).await
            }

            /// [`Self::history`] on a blocking connection.
            pub fn history_blocking(
                conn: &mut ::threadline::__support::PgConnection,
                key: #key_type,
            ) -> ::core::result::Result<::threadline::read::Page<::threadline::model::Version<#snapshot>>, ::threadline::Error> {
                ::threadline::model::history_blocking::<Self>(conn, &key)
            }

            /// [`Self::history_page`] on a blocking connection.
            pub fn history_page_blocking(
                conn: &mut ::threadline::__support::PgConnection,
                key: #key_type,
                cursor: ::core::option::Option<&::threadline::read::Cursor>,
                page_size: usize,
            ) -> ::core::result::Result<::threadline::read::Page<::threadline::model::Version<#snapshot>>, ::threadline::Error> {
                ::threadline::model::history_page_blocking::<Self>(conn, &key, cursor, page_size)
            }

            /// [`Self::as_of`] on a blocking connection.
            pub fn as_of_blocking(
                conn: &mut ::threadline::__support::PgConnection,
                key: #key_type,
                at: ::threadline::__support::DateTime<::threadline::__support::Utc>,
            ) -> ::core::result::Result<::threadline::model::RowAsOf<#snapshot>, ::threadline::Error> {
                ::threadline::model::as_of_blocking::<Self>(conn, &key, at)
            }
        }
    })
}
