//! End-to-end tests of the facade over real sockets: real upstream servers on port 0, the
//! facade in-process or as the real `strangler` binary, and clients that check what arrives
//! on each side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod harness;

mod api;
mod autopilot;
mod bad_input;
mod binary;
mod commands;
mod demo;
mod events;
mod faults;
mod h1_bodies;
mod h1_server;
mod handoff;
mod hostile;
mod limits;
mod migration;
mod mirror;
mod reads;
mod registration;
mod replicas;
mod shadow;
mod shadow_writes;
mod shutdown;
mod streaming;
mod tls;
mod traffic;
mod translators;
mod transparency;
mod upgrades;
