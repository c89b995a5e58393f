//! Black-box tests: each spawns the server on 127.0.0.1:0 with a fresh SQLite file
//! and drives it over real HTTP. `TEST_LOG=1` shows the server's logs.

mod admin;
mod component;
mod concurrency;
mod console;
mod conversation;
mod del;
mod faults;
mod hardening;
mod helpers;
mod invite;
mod kf;
mod malformed;
mod metrics;
mod openapi;
mod outage;
mod persistence;
mod platform;
mod props;
mod pushes;
mod quota;
mod reasons;
mod reset;
mod scope;
mod snapshots;
mod stable;
mod tls;
mod token;
mod upload;
