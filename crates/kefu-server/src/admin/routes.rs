//! The admin router, built through a recorder that notes each route as it is
//! registered, so that the OpenAPI document can be checked against what is served.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{delete, get, patch, post};

use crate::state::AppState;

/// One registered route: its method and path (one of [`kefu_api::admin`]'s constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// `GET`, `POST`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The path, with `{name}` for a path parameter.
    pub path: &'static str,
}

/// A router that records every route added to it.
pub(super) struct Recorder {
    router: Router<AppState>,
    routes: Vec<Route>,
}

impl Recorder {
    pub(super) fn new() -> Recorder {
        Recorder {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        route: axum::routing::MethodRouter<AppState>,
    ) -> Recorder {
        self.routes.push(Route { method, path });
        self.router = self.router.route(path, route);
        self
    }

    pub(super) fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Recorder {
        self.add("GET", path, get(handler))
    }

    pub(super) fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Recorder {
        self.add("POST", path, post(handler))
    }

    pub(super) fn patch<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Recorder {
        self.add("PATCH", path, patch(handler))
    }

    pub(super) fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Recorder {
        self.add("DELETE", path, delete(handler))
    }

    pub(super) fn into_parts(self) -> (Router<AppState>, Vec<Route>) {
        (self.router, self.routes)
    }
}
