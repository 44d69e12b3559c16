//! The OpenAPI 3.1 document of the API, derived from the handlers' `#[utoipa::path]`
//! annotations and the DTOs' schemas, served at `GET /v1/openapi.json`. A test checks that every
//! route of the router is in it, and schemathesis checks the live server against it.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Every error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A stable, snake_case code (docs/api.md lists them).
    code: String,
    /// What went wrong and what to do about it.
    message: String,
    /// With `offset_out_of_range`: where the partition starts now.
    log_start_offset: Option<u64>,
    /// With `offset_out_of_range`: where it ends.
    high_watermark: Option<u64>,
}

/// `GET /healthz`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    status: String,
}

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// Errors any authenticated route may answer, whatever it does.
pub struct CommonErrors;

impl IntoResponses for CommonErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        [
            ("400", "The request is malformed: the message says what to fix"),
            ("401", "No valid token (`Authorization: Bearer TOKEN`)"),
            (
                "403",
                "The token lacks the right named in the message, or the Host or Origin is refused",
            ),
            ("405", "The path does not take this method"),
            ("408", "The request body stopped arriving"),
            ("413", "The body is over its limit"),
            ("414", "The URI is too long"),
            ("415", "The content type is not one this route takes"),
            ("431", "The headers are too large"),
            ("500", "The broker failed (storage): the message names the file"),
            ("503", "Overloaded (Retry-After) or shutting down"),
        ]
        .into_iter()
        .map(|(code, text)| (code.to_owned(), error(text)))
        .collect()
    }
}

/// Answers of routes that name a topic and may find it gone or its disk full.
pub struct TopicErrors;

impl IntoResponses for TopicErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        let mut r = CommonErrors::responses();
        r.insert("404".into(), error("The topic (or partition) does not exist"));
        r.insert(
            "409".into(),
            error("The topic is being created or deleted, or exists already"),
        );
        r.insert("507".into(), error("The disk is full: nothing was written"));
        r
    }
}

/// Answers of processor and module routes.
pub struct ProcessorErrors;

impl IntoResponses for ProcessorErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        let mut r = TopicErrors::responses();
        r.insert(
            "404".into(),
            error("The processor, module, topic or token does not exist"),
        );
        r.insert("409".into(), error("The module is deployed, or the topic is busy"));
        r
    }
}

/// Errors of the table routes: a topic's, and 507 for a table past `limits.tables_bytes_max`.
pub struct TableErrors;

impl IntoResponses for TableErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        let mut r = CommonErrors::responses();
        r.insert(
            "404".into(),
            error("The topic does not exist, or (with `key`) the table has no row for it"),
        );
        r.insert(
            "507".into(),
            error("The table would pass the memory all tables may hold (limits.tables_bytes_max): it was dropped"),
        );
        r
    }
}

/// `ProcessorView` flattens the deployment (`ProcessorSpec`), whose schema is closed
/// (`additionalProperties: false`, as the PUT body is strict): inside the view's `allOf` that
/// would forbid the view's own fields. The view gets an open copy instead.
struct OpenFlattenedSpec;

impl Modify for OpenFlattenedSpec {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::schema::Schema;
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(spec))) = components.schemas.get("ProcessorSpec") else {
            return;
        };
        let mut open = spec.clone();
        open.additional_properties = None;
        if let Some(RefOr::T(Schema::AllOf(view))) = components.schemas.get_mut("ProcessorView") {
            for item in &mut view.items {
                if matches!(item, RefOr::Ref(r) if r.ref_location.ends_with("/ProcessorSpec")) {
                    *item = RefOr::T(Schema::Object(open.clone()));
                }
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir",
        description = "Durable streams over HTTP and Server-Sent Events, programmable with WebAssembly. Guide: docs/api.md."
    ),
    paths(
        super::healthz,
        super::metrics,
        super::openapi_json,
        super::topics::create,
        super::topics::list,
        super::topics::describe,
        super::topics::delete,
        super::produce::produce,
        super::fetch::fetch,
        super::sse::events,
        super::modules::upload,
        super::modules::list,
        super::modules::delete,
        super::processors::list,
        super::processors::deploy,
        super::processors::get,
        super::processors::delete,
        super::processors::pause,
        super::processors::resume,
        super::processors::logs,
        super::processors::reset,
        super::state::get,
        super::tables::get,
        super::tables::events,
        super::tokens::create,
        super::tokens::list,
        super::tokens::revoke,
        super::tickets::issue,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth, &OpenFlattenedSpec),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static Document {
    static DOC: std::sync::OnceLock<Document> = std::sync::OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The methods the document lists for a concrete `path` (`{param}` segments match any one).
pub fn methods_of(path: &str) -> Vec<String> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let Ok(doc) = serde_json::to_value(document()) else {
        return Vec::new();
    };
    let Some(paths) = doc["paths"].as_object() else {
        return Vec::new();
    };
    for (template, item) in paths {
        let t: Vec<&str> = template.split('/').collect();
        let fits = t.len() == segments.len() && t.iter().zip(&segments).all(|(a, b)| a.starts_with('{') || a == b);
        if fits {
            return item
                .as_object()
                .map(|ops| ops.keys().map(|m| m.to_uppercase()).collect())
                .unwrap_or_default();
        }
    }
    Vec::new()
}

pub async fn serve() -> Json<&'static Document> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(METHOD, path)` of every `.route(...)` in the router's source.
    fn router_routes() -> BTreeSet<(String, String)> {
        let src = include_str!("mod.rs");
        let mut out = BTreeSet::new();
        for call in src.split(".route(").skip(1) {
            let Some(path) = call.trim_start().strip_prefix('"').and_then(|c| c.split('"').next()) else {
                continue;
            };
            // The handlers of this route: the text up to the `)` closing `.route(`.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(call.len(), |(i, _)| i);
            for method in ["get", "post", "put", "delete"] {
                if call[..end].contains(&format!("{method}(")) {
                    out.insert((method.to_uppercase(), path.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_of_the_router_is_documented_and_nothing_else() {
        let doc = serde_json::to_value(document()).expect("the document serializes");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let routes = router_routes();
        assert!(routes.len() > 20, "the router was read: {routes:?}");
        assert_eq!(routes, documented);
    }

    #[test]
    fn every_documented_operation_answers_errors_in_the_json_shape() {
        let doc = serde_json::to_value(document()).expect("the document serializes");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{method} {path}: no success"
                );
                if path != "/healthz" && path != "/v1/openapi.json" {
                    for code in ["400", "401", "403", "503"] {
                        let r = &responses[code];
                        assert!(r.to_string().contains("ErrorBody"), "{method} {path} {code}: {r}");
                    }
                }
            }
        }
    }
}
