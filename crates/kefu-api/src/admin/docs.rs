//! The document of kefu's API (README, "The OpenAPI document").

/// `GET` answers the OpenAPI 3.1 document of kefu's own API and of every WeChat
/// endpoint it serves; needs no token.
pub const OPENAPI: &str = "/kefu/v1/openapi.json";
