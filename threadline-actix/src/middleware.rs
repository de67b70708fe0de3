//! [`AuditMiddleware`]: the `AuditContext` of each request, built once and left in the
//! request's extensions for handlers, and the request id echoed on the response.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::HeaderValue;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest};
use serde_json::{Map, Value};
use threadline::{ActorRef, AuditContext, Source};

use crate::error::AuditError;
use crate::headers;
use crate::resolver::{ActorResolver, TenantResolver};

/// Builds the [`AuditContext`] of every request and puts it in the request's extensions,
/// where [`RequestAudit`](crate::RequestAudit) (or `web::ReqData<AuditContext>`) finds it.
///
/// The context of a request holds:
///
/// | field | from | when it cannot be used |
/// |---|---|---|
/// | actor | the host's resolver ([`new`](Self::new) or [`with_extractor`](Self::with_extractor)); `None` is a request with no actor | the resolver's error is the response |
/// | request id | `x-request-id`, trimmed; a fresh 32-hex-digit id when absent; echoed on the response as `x-request-id` | 400 |
/// | correlation id | `x-correlation-id`, trimmed; none when absent | 400 |
/// | tenant | the host's [`tenant`](Self::tenant) resolver, if any | 400 |
/// | source | [`Source::Request`] | |
/// | meta | `{"client_addr": "..."}`, the peer's address, or see [`client_addr_from_forwarded`](Self::client_addr_from_forwarded) | left out |
///
/// Ids are checked as [`AuditContext::with_request_id`] checks them: 1 to 256 bytes without
/// control characters. A refusal is a JSON body, such as
/// `{"error": "invalid x-correlation-id: must be 1 to 256 bytes without control characters"}`.
/// Every response but the 400 for a bad `x-request-id` carries the request id.
///
/// ```
/// use actix_web::{App, HttpRequest, HttpResponse, web};
/// use threadline::ActorRef;
/// use threadline_actix::{AuditMiddleware, RequestAudit};
///
/// /// The actor from a header set by the app's gateway; 401 when it is not a user id.
/// fn actor(req: &HttpRequest) -> Result<Option<ActorRef>, actix_web::Error> {
///     let Some(user) = req.headers().get("x-user-id") else { return Ok(None) };
///     let user = user.to_str().map_err(actix_web::error::ErrorUnauthorized)?;
///     ActorRef::user(user).map(Some).map_err(actix_web::error::ErrorUnauthorized)
/// }
///
/// async fn whoami(audit: RequestAudit) -> HttpResponse {
///     HttpResponse::Ok().json(audit.actor())
/// }
///
/// let app = App::new()
///     .wrap(AuditMiddleware::new(actor).tenant(|req| {
///         let host = req.connection_info().host().to_owned();
///         host.split_once('.').map(|(tenant, _)| tenant.to_owned())
///     }))
///     .route("/whoami", web::get().to(whoami));
/// ```
///
/// **Ordering.** Actix runs the middleware registered last first. Wrap the app with
/// `AuditMiddleware` before (inside) the middleware its resolver depends on, such as a
/// session or identity middleware, so that they run before it.
#[derive(Clone)]
pub struct AuditMiddleware {
    actor: ActorResolver,
    tenant: Option<TenantResolver>,
    forwarded_client_addr: bool,
}

impl AuditMiddleware {
    /// A middleware whose actor comes from `resolve`, a synchronous function of the request:
    /// `Ok(Some(actor))`, `Ok(None)` for a request with no actor, or `Err(error)` to answer
    /// the request with `error`'s response (a 401, say) without calling the handler.
    ///
    /// ```
    /// use actix_web::{App, HttpRequest};
    /// use threadline::ActorRef;
    /// use threadline_actix::AuditMiddleware;
    ///
    /// let app = App::new().wrap(AuditMiddleware::new(|req: &HttpRequest| {
    ///     match req.headers().get("x-service") {
    ///         Some(name) => {
    ///             let name = name.to_str().map_err(actix_web::error::ErrorBadRequest)?;
    ///             Ok(Some(ActorRef::service_account(name).map_err(actix_web::error::ErrorBadRequest)?))
    ///         }
    ///         None => Ok(None),
    ///     }
    /// }));
    /// ```
    pub fn new(resolve: impl Fn(&HttpRequest) -> Result<Option<ActorRef>, Error> + 'static) -> Self {
        AuditMiddleware {
            actor: ActorResolver::sync(resolve),
            tenant: None,
            forwarded_client_addr: false,
        }
    }

    /// A middleware whose actor comes from the app's own extractor `E`, which may be async
    /// (a token looked up in a database, say): the middleware runs `E::from_request`, then
    /// `resolve` on what it extracted. An extractor's error is the response, without calling
    /// the handler; extract `Option<E>` to let requests without one through with no actor.
    ///
    /// The extractor sees the request's head but not its body (it gets an empty payload), so
    /// the handler still reads the body: the actor must come from headers, cookies or what
    /// other middleware left in the extensions.
    ///
    /// ```
    /// use std::future::Future;
    /// use std::pin::Pin;
    ///
    /// use actix_web::dev::Payload;
    /// use actix_web::{App, FromRequest, HttpRequest};
    /// use threadline::ActorRef;
    /// use threadline_actix::AuditMiddleware;
    ///
    /// /// The bearer of an API key, looked up asynchronously.
    /// struct ApiClient(String);
    ///
    /// impl FromRequest for ApiClient {
    ///     type Error = actix_web::Error;
    ///     type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;
    ///
    ///     fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
    ///         let key = req.headers().get("x-api-key").cloned();
    ///         Box::pin(async move {
    ///             let key = key.ok_or_else(|| actix_web::error::ErrorUnauthorized("an API key, please"))?;
    ///             // an async look-up of the key would go here
    ///             Ok(ApiClient(format!("client-of-{}", key.len())))
    ///         })
    ///     }
    /// }
    ///
    /// let app = App::new().wrap(AuditMiddleware::with_extractor(|client: ApiClient| {
    ///     Ok(Some(ActorRef::service_account(client.0).map_err(actix_web::error::ErrorUnauthorized)?))
    /// }));
    /// // or, naming the extractor: AuditMiddleware::with_extractor::<ApiClient>(|client| ...)
    /// ```
    pub fn with_extractor<E: FromRequest + 'static>(
        resolve: impl Fn(E) -> Result<Option<ActorRef>, Error> + 'static,
    ) -> Self {
        AuditMiddleware {
            actor: ActorResolver::extractor(resolve),
            tenant: None,
            forwarded_client_addr: false,
        }
    }

    /// Names the request's tenant with `resolve`: `Some(id)` sets the context's tenant (1 to
    /// 256 bytes without control characters, else a 400), `None` leaves it unset.
    ///
    /// ```
    /// use actix_web::App;
    /// use threadline_actix::AuditMiddleware;
    ///
    /// let app = App::new().wrap(AuditMiddleware::new(|_| Ok(None)).tenant(|req| {
    ///     let tenant = req.headers().get("x-tenant")?;
    ///     tenant.to_str().ok().map(str::to_owned)
    /// }));
    /// ```
    pub fn tenant(mut self, resolve: impl Fn(&HttpRequest) -> Option<String> + 'static) -> Self {
        self.tenant = Some(Rc::new(resolve));
        self
    }

    /// Records as `client_addr` the address the `Forwarded` or `X-Forwarded-For` header names
    /// (Actix's [`realip_remote_addr`](actix_web::dev::ConnectionInfo::realip_remote_addr)),
    /// else the peer's.
    ///
    /// By default `client_addr` is the connection's peer address, which a client cannot
    /// forge. Behind a reverse proxy, the peer is the proxy: turn this on when the proxy sets
    /// those headers and strips any a client sent, never when clients reach the app
    /// directly. Either way an address longer than 256 bytes is left out.
    ///
    /// ```
    /// use actix_web::App;
    /// use threadline_actix::AuditMiddleware;
    ///
    /// let app = App::new().wrap(AuditMiddleware::new(|_| Ok(None)).client_addr_from_forwarded());
    /// ```
    pub fn client_addr_from_forwarded(mut self) -> Self {
        self.forwarded_client_addr = true;
        self
    }

    /// The context of `req`, whose id is `request_id`, or the error to answer with.
    async fn context(&self, req: HttpRequest, request_id: &str) -> Result<AuditContext, Error> {
        let ctx = AuditContext::new()
            .with_source(Source::Request)
            .with_request_id(request_id)
            .map_err(AuditError::bad_request)?;
        let mut ctx = headers::with_correlation_id(&req, ctx)?;
        if let Some(actor) = self.actor.resolve(&req).await? {
            ctx = ctx.with_actor(actor);
        }
        if let Some(tenant) = self.tenant.as_ref().and_then(|resolve| resolve(&req)) {
            ctx = ctx.with_tenant_id(tenant).map_err(AuditError::bad_request)?;
        }
        let info = req.connection_info();
        let addr = if self.forwarded_client_addr {
            info.realip_remote_addr()
        } else {
            info.peer_addr()
        };
        if let Some(addr) = addr.filter(|addr| addr.len() <= 256) {
            let meta = Map::from_iter([("client_addr".to_owned(), Value::String(addr.to_owned()))]);
            ctx = ctx.with_meta(meta);
        }
        Ok(ctx)
    }
}

impl<S, B> Transform<S, ServiceRequest> for AuditMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = AuditService<S>;
    type InitError = ();
    type Future = Ready<Result<AuditService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AuditService {
            service: Rc::new(service),
            settings: Rc::new(self.clone()),
        }))
    }
}

/// The service [`AuditMiddleware`] wraps around the app's; Actix builds it, apps never need
/// to name it.
pub struct AuditService<S> {
    service: Rc<S>,
    settings: Rc<AuditMiddleware>,
}

impl<S, B> Service<ServiceRequest> for AuditService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let settings = Rc::clone(&self.settings);
        Box::pin(async move {
            let request_id = match headers::request_id(req.request()) {
                Ok(id) => id,
                Err(error) => return Ok(req.error_response(error).map_into_right_body()),
            };
            let built = settings.context(req.request().clone(), &request_id).await;
            let mut response = match built {
                Ok(ctx) => {
                    req.extensions_mut().insert(ctx);
                    service.call(req).await?.map_into_left_body()
                }
                Err(error) => req.error_response(error).map_into_right_body(),
            };
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(headers::REQUEST_ID, value);
            }
            Ok(response)
        })
    }
}
