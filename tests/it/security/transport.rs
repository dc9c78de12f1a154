//! Attacks on transport.
