//! Every example profile in `profiles/` is valid against `profiles/profile.schema.json`,
//! parses, and means what its name says; the schema and the parser agree on rejections.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::permissions::{
    AccessRule, AccessScope, Caller, DocumentAccess, ProfileScope, ResolvedProfile, Role,
    ScopeChain, can_read, can_write,
};

use super::{now, version_target};
use crate::permissions::Profile;

const SCHEMA: &str = include_str!("../../../profiles/profile.schema.json");

const EXAMPLES: [(&str, &str); 9] = [
    ("private", include_str!("../../../profiles/private.json")),
    ("shared", include_str!("../../../profiles/shared.json")),
    (
        "public-metadata-only",
        include_str!("../../../profiles/public-metadata-only.json"),
    ),
    (
        "team-namespace",
        include_str!("../../../profiles/team-namespace.json"),
    ),
    ("sandbox", include_str!("../../../profiles/sandbox.json")),
    ("hidden", include_str!("../../../profiles/hidden.json")),
    ("inherit", include_str!("../../../profiles/inherit.json")),
    (
        "expiring-share",
        include_str!("../../../profiles/expiring-share.json"),
    ),
    (
        "artifactdb",
        include_str!("../../../profiles/artifactdb.json"),
    ),
];

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    })
}

fn example(name: &str) -> Profile {
    let (_, text) = EXAMPLES
        .iter()
        .find(|(example, _)| *example == name)
        .unwrap();
    Profile::from_json(text.as_bytes()).unwrap()
}

#[test]
fn every_example_is_valid_against_the_schema_and_parses() {
    let validator = validator();
    for (name, text) in EXAMPLES {
        let value: Value = serde_json::from_str(text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|error| error.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let profile =
            Profile::from_value(value.clone()).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(
            validator.is_valid(&profile.to_json_value()),
            "{name}: re-serialized form"
        );
    }
}

#[test]
fn schema_and_parser_reject_the_same_mistakes() {
    let validator = validator();
    let rejected = [
        json!({"owners": ["alice"], "colour": "red"}),
        json!({"read_access": "everyone"}),
        json!({"owners": ["Alice"]}),
        json!({"owners": ["team:x"]}),
        json!({"owners": ["@public"]}),
        json!({"viewers": [7]}),
        json!({"expires": {"carol": "tomorrow"}}),
        json!({"expires": {"carol": "2026-12-31T00:00:00"}}),
        json!({"expires": {"carol": "2026-12-31 00:00:00Z"}}),
        json!({"scope": "galaxy"}),
        json!({"owners": "alice"}),
        json!({"inherit": "yes"}),
        json!(["alice"]),
        json!({"owners": ["CN=a\u{1}b"]}),
        json!({"owners": ["CN=   "]}),
    ];
    for value in rejected {
        assert!(!validator.is_valid(&value), "schema accepts {value}");
        assert!(
            Profile::from_value(value.clone()).is_err(),
            "parser accepts {value}"
        );
    }
    let accepted = [
        json!({}),
        json!({"owners": null, "viewers": null, "read_access": null}),
        json!({"owners": ["group:ml", "CN=X,DC=y", "machine:ci-bot", "a1"]}),
        json!({"expires": {"machine:ci": "2030-01-01T00:00:00.5+05:30"}}),
    ];
    for value in accepted {
        assert!(validator.is_valid(&value), "schema rejects {value}");
        assert!(
            Profile::from_value(value.clone()).is_ok(),
            "parser rejects {value}"
        );
    }
}

#[test]
fn examples_mean_what_their_names_say() {
    let alice = Caller::account("alice", Role::Maintainer);
    let stranger = Caller::account("olga", Role::Developer);
    let at = |profile: Profile| version_target(profile.to_json_value());

    let private = at(example("private"));
    assert!(can_read(&alice, &private, now()) && !can_read(&stranger, &private, now()));

    let public = example("public-metadata-only");
    assert_eq!(
        (public.read_rule(), public.download_rule()),
        (AccessRule::Public, AccessRule::Viewers)
    );
    assert!(can_read(&Caller::Anonymous, &at(public), now()));

    let sandbox = at(example("sandbox"));
    assert!(
        can_write(&stranger, &sandbox, now()),
        "any writing role writes in the sandbox"
    );
    assert!(!can_write(
        &Caller::account("gina", Role::Guest),
        &sandbox,
        now()
    ));
    assert!(!can_write(&Caller::Anonymous, &sandbox, now()));

    let hidden = at(example("hidden"));
    assert!(
        !can_read(&alice, &hidden, now()),
        "read_access none: even owners do not read"
    );
    assert!(can_read(
        &Caller::account("root", Role::Admin),
        &hidden,
        now()
    ));

    let expiring = at(example("expiring-share"));
    let carol = Caller::account("carol", Role::Guest);
    assert!(can_read(&carol, &expiring, now()));
    let after = "2026-12-31T00:00:00Z".parse().unwrap();
    assert!(!can_read(&carol, &expiring, after));
    let document = DocumentAccess::for_target(&expiring, now());
    assert_eq!(document.next_expiry, Some(after));
    assert!(!AccessScope::for_caller(&carol).matches(&document, after));

    let team = example("team-namespace");
    assert_eq!(team.scope, Some(ProfileScope::Namespace));
    let chain = ScopeChain {
        version: Some(example("inherit")),
        project: None,
        namespace: Some(team),
        global: None,
    };
    let resolved: ResolvedProfile = chain.resolve();
    assert_eq!(resolved.inherited_from, [ProfileScope::Namespace]);
    assert_eq!(
        resolved.viewers.len(),
        3,
        "dave joins the namespace's viewers"
    );
    assert_eq!(
        resolved.write_access,
        AccessRule::Writers,
        "kept from the namespace"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The schema and the parser accept exactly the same documents.
    #[test]
    fn schema_and_parser_agree_on_arbitrary_json(value in super::properties::arbitrary_json()) {
        prop_assert_eq!(
            validator().is_valid(&value),
            Profile::from_value(value.clone()).is_ok(),
            "{}", value
        );
    }
}
