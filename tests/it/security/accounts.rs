//! Attacks on accounts.
