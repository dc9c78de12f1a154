//! Cross-module tests of the permission engine.
