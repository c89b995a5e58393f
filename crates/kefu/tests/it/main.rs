//! `kefu` as a process, in one test binary: the third-party WeChat clients against
//! `kefu serve`, crash safety, several instances on one PostgreSQL, export and import
//! between stores, and what the process keeps to itself.

mod clients;
mod common;
mod config;
mod console;
mod crash;
mod fixtures;
mod multi_instance;
mod openapi;
mod ops;
mod portability;
mod requests;
mod secrets;
mod service;
