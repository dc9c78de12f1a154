//! The index schema, built from the versioned file in `index-schema/` (compiled in).
//!
//! The file lists the fields with their type and options; [`IndexSchema::tantivy`] is the
//! tantivy schema built from it. Its `version` is recorded next to the index; when the two
//! differ the index is rebuilt from storage.

use serde::Deserialize;
use tantivy::schema::{
    DateOptions, FAST, INDEXED, JsonObjectOptions, NumericOptions, STORED, STRING, Schema, TEXT,
    TextOptions,
};

/// The schema file compiled into the binary.
pub const SCHEMA_FILE: &str = include_str!("../../index-schema/v1.json");

/// The tokenizer of `exact` JSON fields: the whole value, lower-cased (registered on every
/// index by [`register_tokenizers`]).
pub const EXACT_TOKENIZER: &str = "exact";

/// Registers the tokenizers the schema names beyond tantivy's own.
pub fn register_tokenizers(index: &tantivy::Index) {
    index.tokenizers().register(
        EXACT_TOKENIZER,
        tantivy::tokenizer::TextAnalyzer::builder(tantivy::tokenizer::RawTokenizer::default())
            .filter(tantivy::tokenizer::LowerCaser)
            .filter(tantivy::tokenizer::RemoveLongFilter::limit(256))
            .build(),
    );
}

/// Errors of schema loading.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema file is not valid JSON of the expected shape.
    #[error("invalid index schema file: {0}")]
    Parse(#[from] serde_json::Error),
    /// A field is declared twice.
    #[error("index schema declares field {0:?} twice")]
    DuplicateField(String),
    /// A sortable or aggregatable field without a fast copy or an API name, or an
    /// aggregatable field that is not a string.
    #[error(
        "index schema field {0:?}: sortable and aggregatable fields need fast, api_name (and aggregatable a string)"
    )]
    InvalidFlags(String),
}

/// The type of an index field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Untokenized string, matched exactly.
    String,
    /// Tokenized full text.
    Text,
    /// Unsigned integer.
    U64,
    /// Signed integer.
    I64,
    /// Float.
    F64,
    /// Timestamp.
    Date,
    /// Boolean.
    Bool,
    /// Raw bytes (stored JSON of the whole document).
    Bytes,
    /// A JSON object whose paths are searchable (`title:bert`, `_extra.project_id:p`).
    Json,
}

/// One declared field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Field name.
    pub name: String,
    /// Field type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Whether the field is searchable (default true).
    #[serde(default = "default_true")]
    pub indexed: bool,
    /// Whether the value is stored (returned by searches).
    #[serde(default)]
    pub stored: bool,
    /// Whether a columnar (fast) copy is kept, for sorting and aggregations.
    #[serde(default)]
    pub fast: bool,
    /// The name clients use for it (`_extra.project_id`), when it can be sorted or aggregated.
    #[serde(default)]
    pub api_name: Option<String>,
    /// Whether the `sort` parameter accepts it (needs `fast` and `api_name`).
    #[serde(default)]
    pub sortable: bool,
    /// Whether `/aggregate` and `facets` accept it (a fast string field with `api_name`).
    #[serde(default)]
    pub aggregatable: bool,
    /// For a JSON field: each string value is one lower-cased term, without positions (exact,
    /// case-insensitive matches of identifiers; far cheaper to index than words).
    #[serde(default)]
    pub exact: bool,
    /// Free-text documentation.
    #[serde(default)]
    pub doc: Option<String>,
}

fn default_true() -> bool {
    true
}

/// The parsed schema file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSchema {
    /// Schema version; bump it to force a rebuild.
    pub version: u32,
    /// What the schema is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The fields.
    pub fields: Vec<FieldDef>,
}

impl IndexSchema {
    /// The schema compiled into the binary.
    pub fn builtin() -> Result<Self, SchemaError> {
        Self::parse(SCHEMA_FILE)
    }

    /// Parses a schema file.
    pub fn parse(text: &str) -> Result<Self, SchemaError> {
        let schema: Self = serde_json::from_str(text)?;
        let mut seen = std::collections::HashSet::new();
        for field in &schema.fields {
            if !seen.insert(field.name.as_str()) {
                return Err(SchemaError::DuplicateField(field.name.clone()));
            }
            let flagged = field.sortable || field.aggregatable;
            if flagged && (!field.fast || field.api_name.is_none())
                || field.aggregatable && field.field_type != FieldType::String
            {
                return Err(SchemaError::InvalidFlags(field.name.clone()));
            }
        }
        Ok(schema)
    }

    /// The sortable fields: (API name, index field, type).
    pub fn sortable(&self) -> impl Iterator<Item = (&str, &str, FieldType)> {
        self.fields
            .iter()
            .filter(|field| field.sortable)
            .filter_map(|field| {
                Some((
                    field.api_name.as_deref()?,
                    field.name.as_str(),
                    field.field_type,
                ))
            })
    }

    /// The aggregatable fields: (API name, index field).
    pub fn aggregatable(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .filter(|field| field.aggregatable)
            .filter_map(|field| Some((field.api_name.as_deref()?, field.name.as_str())))
    }

    /// The tantivy schema.
    #[must_use]
    pub fn tantivy(&self) -> Schema {
        let mut builder = Schema::builder();
        for field in &self.fields {
            let name = field.name.as_str();
            match field.field_type {
                FieldType::String | FieldType::Text => {
                    let mut options: TextOptions = match (field.indexed, field.field_type) {
                        (false, _) => TextOptions::default(),
                        (true, FieldType::String) => STRING,
                        (true, _) => TEXT,
                    };
                    if field.stored {
                        options = options | STORED;
                    }
                    if field.fast {
                        options = options.set_fast("raw");
                    }
                    builder.add_text_field(name, options);
                }
                FieldType::U64 | FieldType::I64 | FieldType::F64 | FieldType::Bool => {
                    let mut options = if field.indexed {
                        NumericOptions::from(INDEXED)
                    } else {
                        NumericOptions::default()
                    };
                    if field.stored {
                        options = options | STORED;
                    }
                    if field.fast {
                        options = options | FAST;
                    }
                    match field.field_type {
                        FieldType::U64 => builder.add_u64_field(name, options),
                        FieldType::I64 => builder.add_i64_field(name, options),
                        FieldType::F64 => builder.add_f64_field(name, options),
                        _ => builder.add_bool_field(name, options),
                    };
                }
                FieldType::Date => {
                    let mut options = if field.indexed {
                        DateOptions::from(INDEXED)
                    } else {
                        DateOptions::default()
                    };
                    if field.stored {
                        options = options | STORED;
                    }
                    if field.fast {
                        options = options | FAST;
                    }
                    builder.add_date_field(name, options);
                }
                FieldType::Bytes => {
                    let mut options = tantivy::schema::BytesOptions::default();
                    if field.stored {
                        options = options.set_stored();
                    }
                    builder.add_bytes_field(name, options);
                }
                FieldType::Json => {
                    let mut options: JsonObjectOptions = if field.indexed && field.exact {
                        JsonObjectOptions::default().set_indexing_options(
                            tantivy::schema::TextFieldIndexing::default()
                                .set_tokenizer(EXACT_TOKENIZER)
                                .set_index_option(tantivy::schema::IndexRecordOption::Basic),
                        )
                    } else if field.indexed {
                        TEXT.into()
                    } else {
                        JsonObjectOptions::default()
                    };
                    if field.stored {
                        options = options | STORED;
                    }
                    if field.fast {
                        options = options.set_fast("raw");
                    }
                    builder.add_json_field(name, options);
                }
            }
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schema_parses_and_builds() {
        let schema = IndexSchema::builtin().unwrap();
        assert!(schema.version >= 1);
        let tantivy = schema.tantivy();
        for name in ["_id", "readers", "document", "numerical_revision"] {
            assert!(tantivy.get_field(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn sortable_and_aggregatable_fields_come_from_the_schema_file() {
        let schema = IndexSchema::builtin().unwrap();
        let sortable: Vec<&str> = schema.sortable().map(|(api, _, _)| api).collect();
        assert!(
            sortable.contains(&"_extra.numerical_revision"),
            "{sortable:?}"
        );
        let aggregatable: Vec<&str> = schema.aggregatable().map(|(api, _)| api).collect();
        for wanted in [
            "_extra.project_id",
            "_extra.version",
            "_extra.namespace",
            "_extra.type",
            "_extra.tags",
            "_extra.$schema",
            "_extra.content_type",
            "_extra.extension",
        ] {
            assert!(aggregatable.contains(&wanted), "{wanted}: {aggregatable:?}");
        }
        let unfast = r#"{"version": 1, "fields": [{"name": "x", "type": "string", "api_name": "_extra.x", "aggregatable": true}]}"#;
        assert!(matches!(
            IndexSchema::parse(unfast),
            Err(SchemaError::InvalidFlags(_))
        ));
    }

    #[test]
    fn duplicate_fields_are_refused() {
        let text =
            r#"{"version":1,"fields":[{"name":"a","type":"string"},{"name":"a","type":"u64"}]}"#;
        assert!(matches!(
            IndexSchema::parse(text),
            Err(SchemaError::DuplicateField(_))
        ));
    }
}
