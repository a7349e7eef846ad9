//! BliKVM v1.4's routes, one module per group, at the paths BliKVM serves them (the
//! front's root, [`Expose::Root`]): `/api/login`, `/login_api` and `/change_user`, `/keyboard`, `/paste`,
//! `/atx`, `/wol`, the mass-storage routes, and the `/kme` WebSocket. BliKVM never checks
//! the method, and its document sends `GET` with a JSON body where its own client `POST`s:
//! each route takes both. The front routes them without `auth_request` and passes the
//! credentials on: the token can be in the body, so this service finds it and has
//! kvmd-auth check it ([`crate::shim::Shim`]).

pub mod atx;
pub mod keyboard;
pub mod login;
pub mod msd;
pub mod paste;
pub mod wol;
pub mod ws;

use kvmd_core::routes::{Access, Answer, Api, Expose, Method, Route};

/// The BliKVM route `method path`, with its one-line summary.
pub const fn route(method: Method, path: &'static str, doc: &'static str) -> Route {
    Route::new(method, path)
        .access(Access::SelfChecked)
        .expose(Expose::Root)
        .doc(doc)
        .answer(Answer::Media("application/json"))
}

/// Declares `path` for `GET` and `POST`, both answered by `handler`, needing `role`.
pub fn both<F, Args>(api: &mut Api, path: &'static str, doc: &'static str, role: kvmd_core::routes::Role, handler: F)
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    api.route(route(Method::Get, path, doc).role(role), handler.clone());
    api.route(route(Method::Post, path, doc).role(role), handler);
}
