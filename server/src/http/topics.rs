//! Topic administration: create, list, describe, delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};

use super::guard::{BodyKind, read_body};
use super::{ApiError, ApiPath, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::topic::{CleanupPolicy, FsyncPolicy, Topic};

/// `POST /v1/topics` body. Unset settings come from the server's defaults.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    name: String,
    partitions: Option<u32>,
    /// Milliseconds; `null` or -1 keeps records forever.
    #[serde(default, deserialize_with = "limit")]
    #[schema(value_type = Option<i64>)]
    retention_ms: Option<Option<i64>>,
    /// Bytes per partition; `null` or -1 for no limit.
    #[serde(default, deserialize_with = "limit")]
    #[schema(value_type = Option<i64>)]
    retention_bytes: Option<Option<i64>>,
    segment_bytes: Option<u64>,
    segment_ms: Option<i64>,
    fsync: Option<FsyncPolicy>,
    fsync_interval_ms: Option<u64>,
    cleanup_policy: Option<CleanupPolicy>,
    delete_retention_ms: Option<i64>,
}

/// Distinguishes "not given" (outer `None`) from "no limit" (`null` or -1: inner `None`).
fn limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    let v = Option::<i64>::deserialize(d)?;
    Ok(Some(v.filter(|&n| n != -1)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartitionInfo {
    partition: u32,
    log_start_offset: u64,
    high_watermark: u64,
    /// One past the last record readers of committed records may see (the first offset of
    /// the oldest open transaction, or the high watermark).
    last_stable_offset: u64,
    size_bytes: u64,
    segments: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicInfo {
    name: String,
    /// This incarnation of the name: a topic deleted and created again gets a new one.
    id: String,
    /// One of the broker's own topics (offset store, state changelogs): readable, not writable.
    internal: bool,
    created_ms: i64,
    config: crate::topic::TopicConfig,
    partitions: Vec<PartitionInfo>,
}

fn describe_topic(topic: &Arc<Topic>) -> TopicInfo {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let s = p.stats();
            PartitionInfo {
                partition: p.id,
                log_start_offset: s.log_start_offset,
                high_watermark: s.high_watermark,
                last_stable_offset: s.last_stable_offset,
                size_bytes: s.size_bytes,
                segments: s.segments,
            }
        })
        .collect();
    TopicInfo {
        name: topic.name.clone(),
        id: topic.id.clone(),
        internal: crate::topic::spec::is_internal(&topic.name),
        created_ms: topic.created_ms,
        config: topic.config.clone(),
        partitions,
    }
}

/// Creates a topic (needs `topic:NAME:admin`). Unset settings come from the server's defaults.
#[utoipa::path(post, path = "/v1/topics", tag = "topics", request_body = CreateTopic,
    responses((status = 201, description = "Created", body = TopicInfo), super::openapi::TopicErrors))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    body: Body,
) -> Result<(StatusCode, Json<TopicInfo>), ApiError> {
    principal.require_any(Resource::Topic, Action::Admin)?;
    let body = read_body(&state, body, BodyKind::Api).await?;
    let req: CreateTopic = super::extract::json_body(&body.bytes, r#"{"name":"orders","partitions":3}"#)
        .map_err(ApiError::InvalidRequest)?;
    principal.require(Resource::Topic, &req.name, Action::Admin)?;
    let mut config = state.config.defaults.clone();
    if let Some(p) = req.partitions {
        config.partitions = p;
    }
    if let Some(r) = req.retention_ms {
        config.retention_ms = r;
    }
    if let Some(r) = req.retention_bytes {
        config.retention_bytes = match r {
            Some(n) if n < 0 => {
                return Err(ApiError::InvalidRequest(format!(
                    "retention_bytes must be positive or -1, got {n}"
                )));
            }
            other => other.map(|n| n as u64),
        };
    }
    if let Some(s) = req.segment_bytes {
        config.segment_bytes = s;
    }
    if let Some(s) = req.segment_ms {
        config.segment_ms = s;
    }
    if let Some(f) = req.fsync {
        config.fsync = f;
    }
    if let Some(i) = req.fsync_interval_ms {
        config.fsync_interval_ms = i;
    }
    if let Some(c) = req.cleanup_policy {
        config.cleanup_policy = c;
    }
    if let Some(d) = req.delete_retention_ms {
        config.delete_retention_ms = d;
    }
    let topics = state.topics.clone();
    let name = req.name.clone();
    let topic = tokio::task::spawn_blocking(move || topics.create(&name, config))
        .await
        .map_err(|_| ApiError::Topic(crate::topic::TopicError::ShuttingDown))??;
    Ok((StatusCode::CREATED, Json(describe_topic(&topic))))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicList {
    topics: Vec<TopicInfo>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Also list the broker's own topics (`__weir_offsets`, state changelogs).
    internal: Option<bool>,
}

/// The topics the caller has any right on.
#[utoipa::path(get, path = "/v1/topics", tag = "topics", params(ListQuery),
    responses((status = 200, description = "Topics", body = TopicList), super::openapi::CommonErrors))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<TopicList>, ApiError> {
    principal.require_any(Resource::Topic, Action::Any)?;
    let Query(q) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let internal = q.internal.unwrap_or(false);
    Ok(Json(TopicList {
        topics: state
            .topics
            .list()
            .iter()
            .filter(|t| internal || !crate::topic::spec::is_internal(&t.name))
            .filter(|t| principal.sees(Resource::Topic, &t.name))
            .map(describe_topic)
            .collect(),
    }))
}

/// A topic's settings and partitions (needs any right on the topic).
#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics", params(("topic" = String, Path)),
    responses((status = 200, description = "The topic", body = TopicInfo), super::openapi::TopicErrors))]
pub async fn describe(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TopicInfo>, ApiError> {
    if !principal.sees(Resource::Topic, &name) {
        principal.require(Resource::Topic, &name, Action::Read)?;
    }
    Ok(Json(describe_topic(&state.topics.get(&name)?)))
}

/// Deletes a topic and all its records (needs `topic:NAME:admin`).
#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics", params(("topic" = String, Path)),
    responses((status = 204, description = "Deleted"), super::openapi::TopicErrors))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Resource::Topic, &name, Action::Admin)?;
    state.topics.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
