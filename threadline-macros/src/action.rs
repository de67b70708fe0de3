//! `#[audited_action("name")]`: an async fn whose body runs as one audited transaction that
//! records the named action, on a connection checked out of the fn's pool argument.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, Item, ItemFn, LitStr, Pat, PathArguments, ReturnType, Token, Type, TypePath};

/// The attribute's options, after the action's name.
const OPTIONS: [&str; 2] = ["pool", "record_failure"];

const CORRECT: &str = r#"#[audited_action("post_created")]"#;
const CORRECT_OPTIONS: &str = r#"#[audited_action("post_created", pool = db, record_failure)]"#;
const CORRECT_FN: &str = r#"#[audited_action("post_created")] async fn create_post(pool: web::Data<DbPool>, ctx: web::ReqData<AuditContext>, conn: &mut AsyncPgConnection) -> Result<HttpResponse, actix_web::Error> { ... }"#;
const CORRECT_CONN: &str = "async fn create_post(pool: web::Data<DbPool>, ctx: web::ReqData<AuditContext>, conn: &mut AsyncPgConnection) -> Result<HttpResponse, actix_web::Error>";
const CORRECT_RETURN: &str = "async fn create_post(...) -> Result<HttpResponse, actix_web::Error>";

/// `message` with the hint that shows the correct form.
fn help(message: impl std::fmt::Display, correct: &str) -> String {
    format!("{message}\n  = help: the correct format looks like `{correct}`")
}

fn hint(span: Span, message: impl std::fmt::Display, correct: &str) -> syn::Error {
    syn::Error::new(span, help(message, correct))
}

/// `#[audited_action("post_created", pool = db, record_failure)]`.
struct Args {
    action: LitStr,
    pool: Option<Ident>,
    record_failure: bool,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(hint(
                Span::call_site(),
                "#[audited_action] needs the action's name, the `audit_actions.name` it records",
                CORRECT,
            ));
        }
        if !input.peek(LitStr) {
            let token: proc_macro2::TokenTree = input.parse()?;
            return Err(hint(
                token.span(),
                "the action's name comes first, as a string literal",
                CORRECT,
            ));
        }
        let action: LitStr = input.parse()?;
        check_action_name(&action)?;
        let mut args = Args {
            action,
            pool: None,
            record_failure: false,
        };
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            input
                .parse::<Token![,]>()
                .map_err(|e| hint(e.span(), "expected a comma before the next option", CORRECT_OPTIONS))?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse().map_err(|e| {
                hint(
                    e.span(),
                    "expected an option: `pool = <argument>` or `record_failure`",
                    CORRECT_OPTIONS,
                )
            })?;
            let name = key.to_string();
            if !OPTIONS.contains(&name.as_str()) {
                let did_you_mean = threadline_syntax::suggest(&name, &OPTIONS)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                return Err(hint(
                    key.span(),
                    format!(
                        "unknown option `{name}` of #[audited_action]{did_you_mean} The options are {}",
                        OPTIONS.join(", ")
                    ),
                    CORRECT_OPTIONS,
                ));
            }
            if seen.contains(&name) {
                return Err(hint(
                    key.span(),
                    format!("`{name}` is given twice; say it once"),
                    CORRECT_OPTIONS,
                ));
            }
            seen.push(name.clone());
            if name == "pool" {
                let correct = r#"#[audited_action("post_created", pool = db)]"#;
                if !input.peek(Token![=]) {
                    return Err(hint(
                        key.span(),
                        "`pool` names the pool argument: `pool = <argument>`",
                        correct,
                    ));
                }
                input.parse::<Token![=]>()?;
                args.pool = Some(
                    input
                        .parse()
                        .map_err(|e| hint(e.span(), "`pool = ` takes the name of an argument of the fn", correct))?,
                );
            } else {
                if input.peek(Token![=]) {
                    return Err(hint(
                        key.span(),
                        "`record_failure` takes no value",
                        r#"#[audited_action("post_created", record_failure)]"#,
                    ));
                }
                args.record_failure = true;
            }
        }
        Ok(args)
    }
}

/// The rules of `threadline::Action::new`, checked at compile time.
fn check_action_name(action: &LitStr) -> syn::Result<()> {
    let name = action.value();
    match threadline_syntax::action_name_problem(&name) {
        None => Ok(()),
        Some(problem) if name.is_empty() => Err(hint(action.span(), problem, CORRECT)),
        Some(problem) => Err(hint(
            action.span(),
            format!("invalid action name {name:?}: {problem}"),
            CORRECT,
        )),
    }
}

/// The path of a type, seen through references and parentheses.
fn type_path(ty: &Type) -> Option<&TypePath> {
    match ty {
        Type::Path(path) if path.qself.is_none() => Some(path),
        Type::Reference(reference) => type_path(&reference.elem),
        Type::Paren(paren) => type_path(&paren.elem),
        Type::Group(group) => type_path(&group.elem),
        _ => None,
    }
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    type_path(ty)
        .and_then(|p| p.path.segments.last())
        .is_some_and(|s| s.ident == name)
}

/// A type that names a pool: its name ends in `Pool` (`bb8::Pool<_>`, `&DbPool`), or it is
/// `web::Data<_>` of one.
fn names_a_pool(ty: &Type) -> bool {
    let Some(segment) = type_path(ty).and_then(|p| p.path.segments.last()) else {
        return false;
    };
    if segment.ident.to_string().ends_with("Pool") {
        return true;
    }
    match &segment.arguments {
        PathArguments::AngleBracketed(args) if segment.ident == "Data" => args
            .args
            .iter()
            .any(|arg| matches!(arg, GenericArgument::Type(inner) if names_a_pool(inner))),
        _ => false,
    }
}

/// `AuditContext`, `&AuditContext`, or a wrapper of one such as `web::ReqData<AuditContext>`.
fn is_context_type(ty: &Type) -> bool {
    if last_segment_is(ty, "AuditContext") {
        return true;
    }
    let Some(segment) = type_path(ty).and_then(|p| p.path.segments.last()) else {
        return false;
    };
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return false;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    matches!((types.next(), types.next()), (Some(inner), None) if last_segment_is(inner, "AuditContext"))
}

/// The connection parameter's type without its lifetime, if `ty` is
/// `&mut <path ending in AsyncPgConnection>`.
fn connection_type(ty: &Type) -> Option<Type> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_some() && matches!(&*reference.elem, Type::Path(_)) => {
            last_segment_is(&reference.elem, "AsyncPgConnection").then(|| {
                let mut ty = reference.clone();
                ty.lifetime = None;
                Type::Reference(ty)
            })
        }
        Type::Paren(paren) => connection_type(&paren.elem),
        Type::Group(group) => connection_type(&group.elem),
        _ => None,
    }
}

/// `ty` with every `impl Trait` turned into `_`, for the transaction closure's return type
/// (the fn's opaque types are defined by what the closure returns).
fn infer_opaque(ty: &mut Type) {
    match ty {
        Type::ImplTrait(_) => {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: Token![_](ty.span()),
            })
        }
        Type::Path(path) => {
            for segment in &mut path.path.segments {
                if let PathArguments::AngleBracketed(args) = &mut segment.arguments {
                    for arg in &mut args.args {
                        if let GenericArgument::Type(ty) = arg {
                            infer_opaque(ty);
                        }
                    }
                }
            }
        }
        Type::Reference(inner) => infer_opaque(&mut inner.elem),
        Type::Paren(inner) => infer_opaque(&mut inner.elem),
        Type::Group(inner) => infer_opaque(&mut inner.elem),
        Type::Array(inner) => infer_opaque(&mut inner.elem),
        Type::Slice(inner) => infer_opaque(&mut inner.elem),
        Type::Ptr(inner) => infer_opaque(&mut inner.elem),
        Type::Tuple(tuple) => tuple.elems.iter_mut().for_each(infer_opaque),
        _ => {}
    }
}

/// Where the error for an item that is not a fn goes: its keyword and name.
fn not_a_fn(item: &Item) -> syn::Error {
    let head = match item {
        Item::Struct(i) => {
            let (keyword, name) = (&i.struct_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Enum(i) => {
            let (keyword, name) = (&i.enum_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Impl(i) => {
            let (keyword, name) = (&i.impl_token, &i.self_ty);
            quote!(#keyword #name)
        }
        Item::Mod(i) => {
            let (keyword, name) = (&i.mod_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Trait(i) => {
            let (keyword, name) = (&i.trait_token, &i.ident);
            quote!(#keyword #name)
        }
        other => quote!(#other),
    };
    syn::Error::new_spanned(
        head,
        help(
            "#[audited_action] goes on an `async fn`, whose body it runs as one audited transaction",
            CORRECT_FN,
        ),
    )
}

/// The expansion, or on any mistake its error followed by the fn with the signature the
/// expansion would give it: the connection parameter moves into the body (bound to a value
/// never produced, so the body still type-checks for the IDE) and the parameter [`MARKERS`]
/// only this macro understands are removed. Routes and tests that name the fn keep
/// compiling, so one mistake is one error.
pub(crate) fn expand_or_keep(attr: TokenStream, item: TokenStream) -> TokenStream {
    let error = match expand(attr, item.clone()) {
        Ok(expanded) => return expanded,
        Err(error) => error,
    };
    let mut out = error.into_compile_error();
    match syn::parse2::<Item>(item) {
        Ok(Item::Fn(function)) => out.extend(stand_in(function).into_token_stream()),
        Ok(other) => out.extend(other.into_token_stream()),
        Err(_) => {}
    }
    out
}

/// `function` as [`expand_or_keep`] emits it beside an error.
fn stand_in(mut function: ItemFn) -> ItemFn {
    // The pool and context are the expansion's to use: unused in the body.
    function
        .attrs
        .push(syn::parse_quote!(#[allow(unused_variables, unreachable_code)]));
    let mut connection = None;
    let inputs = std::mem::take(&mut function.sig.inputs);
    for mut arg in inputs {
        if let FnArg::Typed(typed) = &mut arg {
            typed.attrs.retain(|a| !MARKERS.iter().any(|m| a.path().is_ident(m)));
            if connection.is_none()
                && let Some(ty) = connection_type(&typed.ty)
            {
                connection = Some((typed.pat.clone(), ty));
                continue;
            }
        }
        function.sig.inputs.push(arg);
    }
    if let Some((pat, ty)) = connection {
        function
            .block
            .stmts
            .insert(0, syn::parse_quote!(let #pat: #ty = ::core::unreachable!();));
    }
    function
}

fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(attr)?;
    let item: Item = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            help("#[audited_action] goes on an `async fn` with a body", CORRECT_FN),
        )
    })?;
    let Item::Fn(function) = item else {
        return Err(not_a_fn(&item));
    };
    expand_fn(&args, function)
}

/// A parameter kept in the signature, by its position there.
struct Kept {
    index: usize,
    name: Option<Ident>,
    ty: Type,
    /// Marked `#[audit_context]`.
    context: bool,
    /// Marked `#[audit_pool]`.
    pool: bool,
}

/// The marker of the context's parameter, and how it looks.
const CONTEXT_MARKER: (&str, &str) = ("audit_context", "#[audit_context] audit: RequestAudit");
/// The marker of the pool's parameter, and how it looks.
const POOL_MARKER: (&str, &str) = ("audit_pool", "#[audit_pool] db: web::Data<DbPool>");
/// The parameter markers this macro reads and removes.
const MARKERS: [&str; 2] = [CONTEXT_MARKER.0, POOL_MARKER.0];

/// Whether `typed` carries the marker `#[name]`, which is then removed from it.
fn take_marker(typed: &mut syn::PatType, (name, correct): (&str, &str)) -> syn::Result<bool> {
    let mut marked = false;
    for attr in typed.attrs.iter().filter(|a| a.path().is_ident(name)) {
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            return Err(syn::Error::new_spanned(
                attr,
                help(format!("#[{name}] takes no arguments"), correct),
            ));
        }
        marked = true;
    }
    typed.attrs.retain(|a| !a.path().is_ident(name));
    Ok(marked)
}

fn expand_fn(args: &Args, mut function: ItemFn) -> syn::Result<TokenStream> {
    let sig = &mut function.sig;
    if sig.asyncness.is_none() {
        let (keyword, name) = (&sig.fn_token, &sig.ident);
        return Err(syn::Error::new_spanned(
            quote!(#keyword #name),
            help(
                "#[audited_action] needs an `async fn`: its body runs in an async audited transaction",
                CORRECT_FN,
            ),
        ));
    }
    let ReturnType::Type(_, returned) = &sig.output else {
        return Err(syn::Error::new(
            sig.paren_token.span.close(),
            help(
                "an audited action must return `Result<T, E>` where `E: From<threadline::Error>`: a failed transaction is an `Err`",
                CORRECT_RETURN,
            ),
        ));
    };
    let mut closure_returns = (**returned).clone();
    infer_opaque(&mut closure_returns);
    let returned_span = returned.span();
    let name_span = sig.ident.span();

    let mut connection: Option<(Box<Pat>, Type)> = None;
    let mut kept: Vec<Kept> = Vec::new();
    let mut inputs = syn::punctuated::Punctuated::<FnArg, Token![,]>::new();
    for arg in std::mem::take(&mut sig.inputs) {
        let FnArg::Typed(mut typed) = arg else {
            inputs.push(arg);
            continue;
        };
        let context = take_marker(&mut typed, CONTEXT_MARKER)?;
        let pool = take_marker(&mut typed, POOL_MARKER)?;
        if let Some(ty) = connection_type(&typed.ty) {
            if context || pool {
                return Err(syn::Error::new_spanned(
                    &typed,
                    help(
                        "#[audit_context] and #[audit_pool] mark the context's and the pool's arguments, not the connection",
                        CONTEXT_MARKER.1,
                    ),
                ));
            }
            if connection.is_some() {
                return Err(syn::Error::new_spanned(
                    &typed,
                    help(
                        "an audited action has one connection parameter, the transaction's; check out others from the pool",
                        CORRECT_CONN,
                    ),
                ));
            }
            connection = Some((typed.pat, ty));
            continue;
        }
        kept.push(Kept {
            index: inputs.len(),
            name: match &*typed.pat {
                Pat::Ident(pat) => Some(pat.ident.clone()),
                _ => None,
            },
            ty: (*typed.ty).clone(),
            context,
            pool,
        });
        inputs.push(FnArg::Typed(typed));
    }
    let fn_name = sig.ident.to_string();
    let Some((connection_pat, connection_ty)) = connection else {
        return Err(syn::Error::new(
            name_span,
            help(
                format!(
                    "`{fn_name}` has no connection parameter: declare `conn: &mut AsyncPgConnection`; #[audited_action] removes it from the signature and runs the body with the transaction's connection in it"
                ),
                CORRECT_CONN,
            ),
        ));
    };

    let pool = choose_pool(args, &kept, &fn_name, name_span)?;
    let context = choose_context(&kept, &fn_name, name_span)?;
    let (pool_index, context_index) = (pool.index, context.index);
    let pool = bind(&mut inputs[pool_index], "pool", "__threadline_pool")?;
    let context = bind(&mut inputs[context_index], "context", "__threadline_context")?;
    sig.inputs = inputs;

    // Each check is spanned on what it is about, so that a type error points there: the
    // pool and context arguments' names, the return type.
    let pool = quote_spanned!(pool.span()=> ::threadline::__support::AuditPool::pool(&#pool));
    let context = quote_spanned!(context.span()=>
        ::core::clone::Clone::clone(::threadline::__support::ContextSource::audit_context(&#context))
    );
    let (action, record_failure) = (&args.action, args.record_failure);
    let block = &function.block;
    let run = quote_spanned!(returned_span=>
        ::threadline::__support::run_action(
            #pool,
            #context,
            #action,
            #record_failure,
            async |#connection_pat: #connection_ty| -> #closure_returns #block,
        )
        .await
    );
    let (attrs, vis, sig) = (&function.attrs, &function.vis, &function.sig);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #run
        }
    })
}

/// The pool's argument: the one `pool = name` names, else the one marked `#[audit_pool]`,
/// else the one whose type names a pool (`web::Data<DbPool>`, `&DbPool`, `bb8::Pool<_>`),
/// else the only `web::Data<_>`. Any other `web::Data<Config>` is an ordinary argument.
fn choose_pool<'k>(args: &Args, kept: &'k [Kept], fn_name: &str, name_span: Span) -> syn::Result<&'k Kept> {
    let marked: Vec<&Kept> = kept.iter().filter(|k| k.pool).collect();
    if let Some(name) = &args.pool {
        if let Some(first) = marked.first() {
            return Err(syn::Error::new_spanned(
                &first.ty,
                help(
                    "the pool is named twice, by `pool = ...` and by #[audit_pool]: keep one",
                    POOL_MARKER.1,
                ),
            ));
        }
        return kept.iter().find(|k| k.name.as_ref() == Some(name)).ok_or_else(|| {
            let names: Vec<String> = kept
                .iter()
                .filter_map(|k| k.name.as_ref().map(ToString::to_string))
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let did_you_mean = threadline_syntax::suggest(&name.to_string(), &names)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            syn::Error::new(
                name.span(),
                help(
                    format!("`pool = {name}` names no argument of `{fn_name}`{did_you_mean}"),
                    r#"#[audited_action("post_created", pool = db)] async fn create_post(db: &DbPool, ...)"#,
                ),
            )
        });
    }
    let pools: Vec<&Kept> = kept.iter().filter(|k| names_a_pool(&k.ty)).collect();
    let data: Vec<&Kept> = kept.iter().filter(|k| last_segment_is(&k.ty, "Data")).collect();
    let candidates = match (marked.as_slice(), pools.as_slice(), data.as_slice()) {
        ([_, second, ..], _, _) => {
            return Err(syn::Error::new_spanned(
                &second.ty,
                help("only one argument can be #[audit_pool]", POOL_MARKER.1),
            ));
        }
        ([one], _, _) | ([], [one], _) | ([], [], [one]) => return Ok(one),
        ([], [], []) => {
            return Err(syn::Error::new(
                name_span,
                help(
                    format!(
                        "`{fn_name}` has no pool argument: take the pool as `web::Data<DbPool>` or `&DbPool` (a type named `...Pool`), or mark it with #[audit_pool]"
                    ),
                    CORRECT_CONN,
                ),
            ));
        }
        ([], [], several) | ([], several, _) => several,
    };
    let names = candidates
        .iter()
        .map(|k| k.name.as_ref().map_or("_".to_owned(), |n| format!("`{n}`")))
        .collect::<Vec<_>>()
        .join(", ");
    Err(syn::Error::new_spanned(
        &candidates[1].ty,
        help(
            format!("more than one argument could be the pool ({names}): mark the pool with #[audit_pool]"),
            POOL_MARKER.1,
        ),
    ))
}

/// The context's argument: the one marked `#[audit_context]`, else the only one whose type
/// is an `AuditContext` or wraps one.
fn choose_context<'k>(kept: &'k [Kept], fn_name: &str, name_span: Span) -> syn::Result<&'k Kept> {
    let marked: Vec<&Kept> = kept.iter().filter(|k| k.context).collect();
    let candidates: Vec<&Kept> = kept.iter().filter(|k| is_context_type(&k.ty)).collect();
    match (marked.as_slice(), candidates.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one),
        ([_, second, ..], _) => Err(syn::Error::new_spanned(
            &second.ty,
            help("only one argument can be #[audit_context]", CONTEXT_MARKER.1),
        )),
        ([], []) => Err(syn::Error::new(
            name_span,
            help(
                format!(
                    "`{fn_name}` has no AuditContext argument: take `ctx: AuditContext`, `ctx: &AuditContext` or `ctx: web::ReqData<AuditContext>`, or mark an extractor that derefs to one with #[audit_context]"
                ),
                CORRECT_CONN,
            ),
        )),
        ([], [_, second, ..]) => Err(syn::Error::new_spanned(
            &second.ty,
            help(
                "more than one argument could be the AuditContext: mark the one to audit with #[audit_context]",
                "#[audit_context] ctx: web::ReqData<AuditContext>",
            ),
        )),
    }
}

/// The name generated code uses for a kept parameter: its identifier, or a fresh one
/// for `_` (the pattern is then replaced).
fn bind(arg: &mut FnArg, what: &str, fresh: &str) -> syn::Result<Ident> {
    let FnArg::Typed(arg) = arg else {
        unreachable!("kept parameters are typed");
    };
    match &*arg.pat {
        Pat::Ident(pat) if pat.subpat.is_none() => Ok(pat.ident.clone()),
        Pat::Wild(wild) => {
            let ident = Ident::new(fresh, Span::mixed_site().located_at(wild.underscore_token.span));
            *arg.pat = syn::parse_quote!(#ident);
            Ok(ident)
        }
        other => Err(syn::Error::new_spanned(
            other,
            help(
                format!("#[audited_action] needs the {what} argument bound to a plain name"),
                CORRECT_CONN,
            ),
        )),
    }
}
