//! Typed builders for every storage key of the layout in SPEC §2.
