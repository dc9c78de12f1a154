//! Fuzzed inputs (issue 14, point 3): property tests over arbitrary bytes and structured
//! generators for every parser that sees user input, directly (`parsers`), through the query
//! rewriting (`rewrite`) and through the real router (`http`). `PROPTEST_CASES` raises the
//! number of cases.

mod http;
mod parsers;
mod rewrite;
