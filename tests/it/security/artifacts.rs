//! Attacks on artifacts.
