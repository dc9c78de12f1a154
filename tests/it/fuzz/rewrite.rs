//! The query rewriting: for any query text that parses, the final query of a restricted
//! caller holds the caller's access filter as its own required query object (never as text
//! inside the user's query), and an admin's holds none.

use proptest::prelude::*;
use tantivy::query::Occur;
use trove::index::filter::{AllowQuery, SearchFilter};
use trove::index::search::{
    KindFilter, SearchRequest, access_filter, build_query, parse_user_query_with,
};
use trove::index::{IndexSchema, SearchIndex};
use trove::permissions::{AccessScope, Caller, Role};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Query text from the grammar's pieces, internal field names and hostile characters.
fn query_text() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("*"),
        Just("bert"),
        Just("readers:@public"),
        Just("readers:*"),
        Just("state:active"),
        Just("source:x"),
        Just("_extra.readers:@public"),
        Just("_extra.permissions.read_access:public"),
        Just("title:\"a b\""),
        Just("title:/.*/"),
        Just("a:[1 TO 2]"),
        Just("a:{* TO 1}"),
        Just("NOT"),
        Just("OR"),
        Just("AND"),
        Just("("),
        Just(")"),
        Just("-"),
        Just("+"),
        Just("^2"),
        Just("~1"),
        Just("\""),
        Just(":"),
        Just("\\"),
        Just("IN [a b]"),
        Just("title:*"),
    ];
    prop::collection::vec(atom, 0..10).prop_map(|atoms| atoms.join(" "))
}

fn restricted_callers() -> Vec<Caller> {
    vec![
        Caller::Anonymous,
        Caller::account("carol", Role::Guest),
        Caller::account("dave", Role::Developer),
        Caller::account("mia", Role::Maintainer),
    ]
}

#[test]
fn every_restricted_query_carries_the_access_filter_as_a_query_object() {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let admin_filter = access_filter(&AccessScope::for_caller(&Caller::account(
        "root",
        Role::Admin,
    )));
    assert_eq!(admin_filter, SearchFilter::default());
    assert!(admin_filter.is_unrestricted());
    let parsed = std::cell::Cell::new(0_u32);
    proptest!(config(), |(text in prop_oneof![query_text(), any::<String>()], prefix in any::<bool>(), kind in prop::sample::select(vec![KindFilter::File, KindFilter::Project, KindFilter::All]), project in prop::option::of("[a-z]{1,4}"))| {
        let Ok(user_query) = parse_user_query_with(&index, &text, prefix) else { return Ok(()); };
        parsed.set(parsed.get() + 1);
        let request = SearchRequest {
            query: text.clone(),
            kind,
            sort: None,
            size: 10,
            offset: 0,
            latest: false,
            project,
            version: None,
            prefix,
        };
        for caller in restricted_callers() {
            let filter = access_filter(&AccessScope::for_caller(&caller));
            prop_assert!(filter.exclude_disabled && !filter.required_token_sets.is_empty(), "{caller:?}: {filter:?}");
            let clauses = build_query(&index, &filter, &request, user_query.box_clone());
            let allow: Vec<&AllowQuery> = clauses
                .iter()
                .filter(|(occur, _)| *occur == Occur::Must)
                .filter_map(|(_, query)| query.downcast_ref::<AllowQuery>())
                .collect();
            prop_assert_eq!(allow.len(), 1, "{:?} for {:?}", clauses, text);
            prop_assert_eq!(allow[0].filter(), &filter);
            // The user's query is one required clause beside it, never a should/must-not
            // that could stand in for the filter.
            prop_assert!(clauses.iter().all(|(occur, _)| *occur == Occur::Must));
        }
        let clauses = build_query(&index, &admin_filter, &request, user_query);
        prop_assert!(clauses.iter().all(|(_, query)| query.downcast_ref::<AllowQuery>().is_none()));
    });
    // The generators reach the grammar, not only its error paths.
    assert!(parsed.get() > 10, "only {} queries parsed", parsed.get());
}
