//! How the middleware learns who is acting and for which tenant: the host's resolvers, held
//! behind one shape each whatever form the host gave them in.

use std::future::{Future, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::dev::Payload;
use actix_web::{Error, FromRequest, HttpRequest};
use threadline::ActorRef;

/// The outcome of resolving a request's actor.
type ActorFuture = Pin<Box<dyn Future<Output = Result<Option<ActorRef>, Error>>>>;

/// Resolves the actor of a request, synchronously or through an extractor.
#[derive(Clone)]
pub(crate) struct ActorResolver(Rc<dyn Fn(&HttpRequest) -> ActorFuture>);

impl ActorResolver {
    /// A synchronous resolver over the request.
    pub(crate) fn sync(resolve: impl Fn(&HttpRequest) -> Result<Option<ActorRef>, Error> + 'static) -> Self {
        ActorResolver(Rc::new(move |req| Box::pin(ready(resolve(req)))))
    }

    /// Runs the extractor `E` on the request's head (an empty payload: the body stays for
    /// the handler), then `resolve` on what it extracted. The extractor's error is the answer.
    pub(crate) fn extractor<E: FromRequest + 'static>(
        resolve: impl Fn(E) -> Result<Option<ActorRef>, Error> + 'static,
    ) -> Self {
        let resolve = Rc::new(resolve);
        ActorResolver(Rc::new(move |req| {
            let extracted = E::from_request(req, &mut Payload::None);
            let resolve = Rc::clone(&resolve);
            Box::pin(async move { resolve(extracted.await.map_err(Into::into)?) })
        }))
    }

    /// The actor of `req`, or the error to answer with.
    pub(crate) fn resolve(&self, req: &HttpRequest) -> ActorFuture {
        (self.0)(req)
    }
}

/// The host's tenant resolver.
pub(crate) type TenantResolver = Rc<dyn Fn(&HttpRequest) -> Option<String>>;
