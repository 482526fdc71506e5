//! Tests of the RDB parser against real files written by redis-server 7.0
//! (Debian) and 6.2 (a committed fixture), and hand-made files of older or
//! rarer formats.

mod build;
mod fixtures;
mod handmade;
mod live;
mod server;
