//! Templates: minijinja, every template compiled into the binary with `include_str!` and
//! HTML auto-escaping on (the names end in `.html`), so every user string is escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use super::UiState;

/// The templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("error.html", include_str!("templates/error.html")),
    ("login.html", include_str!("templates/login.html")),
    ("password.html", include_str!("templates/password.html")),
    ("search.html", include_str!("templates/search.html")),
    ("project.html", include_str!("templates/project.html")),
    ("version.html", include_str!("templates/version.html")),
    (
        "new_project.html",
        include_str!("templates/new_project.html"),
    ),
    ("upload.html", include_str!("templates/upload.html")),
    ("members.html", include_str!("templates/members.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("docs.html", include_str!("templates/docs.html")),
    (
        "permissions.html",
        include_str!("templates/permissions.html"),
    ),
    ("namespaces.html", include_str!("templates/namespaces.html")),
    ("namespace.html", include_str!("templates/namespace.html")),
    ("users.html", include_str!("templates/users.html")),
    ("groups.html", include_str!("templates/groups.html")),
    ("api_keys.html", include_str!("templates/api_keys.html")),
    ("sync.html", include_str!("templates/sync.html")),
];

/// The environment with every template loaded.
///
/// # Panics
/// When a template does not parse — a build defect the unit tests catch.
#[must_use]
pub fn environment() -> Environment<'static> {
    let mut environment = Environment::new();
    // Every template is HTML: escape everything, whatever the name.
    environment.set_auto_escape_callback(|_| AutoEscape::Html);
    environment.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    environment.add_filter("filesize", human_size);
    for (name, source) in TEMPLATES {
        environment
            .add_template(name, source)
            .unwrap_or_else(|error| panic!("template {name}: {error}"));
    }
    environment
}

/// A byte count for people: `1.5 MB` (powers of 1000, like file managers).
#[must_use]
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

impl UiState {
    /// Renders `template` with `context` as a page with `status`.
    pub fn render(&self, status: StatusCode, template: &str, context: impl Serialize) -> Response {
        let rendered = self
            .inner
            .templates
            .get_template(template)
            .and_then(|template| template.render(minijinja::Value::from(Serde(context))));
        match rendered {
            Ok(html) => (status, Html(html)).into_response(),
            Err(error) => {
                tracing::error!(template, error = %error, "cannot render a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("<!doctype html><title>Error</title><p>Internal error.</p>"),
                )
                    .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes_values() {
        let environment = environment();
        let html = environment
            .render_str(
                "{{ value }}",
                minijinja::context! { value => "<script>\"x\"</script>" },
            )
            .unwrap();
        assert!(html.starts_with("&lt;script&gt;&quot;x&quot;"), "{html}");
        assert!(!html.contains('<') && !html.contains('"'), "{html}");
        assert_eq!(environment.templates().count(), TEMPLATES.len());
    }

    #[test]
    fn every_template_renders_with_an_empty_context() {
        let environment = environment();
        for (name, _) in TEMPLATES {
            let template = environment.get_template(name).unwrap();
            template
                .render(minijinja::context! {})
                .unwrap_or_else(|error| panic!("{name}: {error:#}"));
        }
    }

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1500), "1.5 KB");
        assert_eq!(human_size(2_000_000), "2.0 MB");
    }
}
