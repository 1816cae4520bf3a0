//! Administration: statistics, tag counts, purging tombstones and the duplicate clean-up.

use cloudflare_d1::{Param, Statement};
use memory_core::Timestamp;
use memory_storage::{CleanupReport, StorageResult, StorageStats, TagCount};
use serde_json::{Map, Value, json};

use super::{Inner, consistency};
use crate::error_map::BACKEND;
use crate::rows::{count, epoch_text, text};
use crate::schema::SCHEMA_VERSION;

impl Inner {
    pub(super) async fn stats(&self) -> StorageResult<StorageStats> {
        let (m, mt, t) = (
            &self.tables.memories,
            &self.tables.memory_tags,
            &self.tables.tags,
        );
        let week_ago = Timestamp::from_epoch_micros(
            Timestamp::now()
                .epoch_micros()
                .saturating_sub(7 * 24 * 3600 * 1_000_000),
        )
        .unwrap_or_else(Timestamp::now);
        let s = Statement::new(format!(
            "SELECT \
               (SELECT COUNT(*) FROM {m} WHERE deleted_at IS NULL) AS total, \
               (SELECT COUNT(*) FROM {m} WHERE deleted_at IS NOT NULL) AS tombstones, \
               (SELECT COUNT(*) FROM {m} WHERE deleted_at IS NULL AND created_at >= CAST(? AS REAL)) AS week, \
               (SELECT COALESCE(SUM(CASE WHEN content_size > 0 THEN content_size \
                  ELSE length(CAST(content AS BLOB)) END), 0) FROM {m} WHERE deleted_at IS NULL) AS bytes, \
               (SELECT COUNT(DISTINCT t.name) FROM {mt} x JOIN {t} t ON t.id = x.tag_id \
                  JOIN {m} mm ON mm.id = x.memory_id WHERE mm.deleted_at IS NULL) AS tags, \
               (SELECT COUNT(*) FROM {m} WHERE deleted_at IS NULL AND r2_key IS NOT NULL) AS r2"
        ))
        .bind(epoch_text(week_ago))
        .idempotent(true);
        let (d1, info) = tokio::join!(
            self.query("computing statistics", s),
            self.parts.vectorize.info()
        );
        let r = d1?;
        let row = r.rows.first().cloned().unwrap_or_default();
        let mut extra = Map::new();
        match info {
            Ok(info) => {
                extra.insert("vectors".into(), json!(info.vector_count));
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the Vectorize index info failed");
                extra.insert("vectors".into(), Value::Null);
            }
        }
        extra.insert("r2_objects".into(), json!(count(&row, "r2")));
        extra.insert("namespace".into(), json!(self.ns()));
        extra.insert("index".into(), json!(self.parts.index_name));
        extra.insert("schema_version".into(), json!(SCHEMA_VERSION));
        // What the embedder says about its own work (the local fallback's counts).
        extra.extend(self.parts.embedder.report());
        Ok(StorageStats {
            backend: BACKEND.into(),
            total_memories: count(&row, "total"),
            unique_tags: count(&row, "tags"),
            memories_this_week: count(&row, "week"),
            content_bytes: count(&row, "bytes"),
            tombstones: count(&row, "tombstones"),
            embedding_model: self.model.clone(),
            embedding_dimensions: self.dims,
            storage_bytes: r.meta.size_after,
            extra,
        })
    }

    pub(super) async fn all_tags(&self) -> StorageResult<Vec<TagCount>> {
        let i = self;
        let s = Statement::new(format!(
            "SELECT t.name AS tag, COUNT(*) AS n FROM {mt} mt JOIN {t} t ON t.id = mt.tag_id \
             JOIN {m} m ON m.id = mt.memory_id WHERE m.deleted_at IS NULL \
             GROUP BY t.name ORDER BY n DESC, t.name ASC",
            mt = i.tables.memory_tags,
            t = i.tables.tags,
            m = i.tables.memories
        ))
        .idempotent(true);
        let r = i.query("counting tags", s).await?;
        Ok(r.rows
            .iter()
            .filter_map(|row| {
                Some(TagCount {
                    tag: text(row, "tag")?,
                    count: count(row, "n"),
                })
            })
            .collect())
    }

    pub(super) async fn purge(&self, older_than: Option<Timestamp>) -> StorageResult<u64> {
        let (m, mt) = (&self.tables.memories, &self.tables.memory_tags);
        let (cond, params): (&str, Vec<Param>) = match older_than {
            Some(t) => (
                "deleted_at IS NOT NULL AND deleted_at <= CAST(? AS REAL)",
                vec![Param::Text(epoch_text(t))],
            ),
            None => ("deleted_at IS NOT NULL", Vec::new()),
        };
        let results = self
            .batch(
                "purging deleted memories",
                vec![
                    Statement::new(format!("SELECT vector_id, r2_key FROM {m} WHERE {cond}"))
                        .bind_all(params.clone())
                        .idempotent(true),
                    Statement::new(format!(
                        "DELETE FROM {mt} WHERE memory_id IN (SELECT id FROM {m} WHERE {cond})"
                    ))
                    .bind_all(params.clone())
                    .idempotent(true),
                    Statement::new(format!("DELETE FROM {m} WHERE {cond}"))
                        .bind_all(params)
                        .idempotent(true),
                ],
            )
            .await?;
        let selected = results.first().cloned().unwrap_or_default();
        let n = results
            .get(2)
            .and_then(|r| r.meta.changes)
            .unwrap_or(selected.rows.len() as u64);
        let vids: Vec<String> = selected
            .rows
            .iter()
            .filter_map(|r| text(r, "vector_id"))
            .collect();
        let keys: Vec<String> = selected
            .rows
            .iter()
            .filter_map(|r| text(r, "r2_key"))
            .filter(|k| !k.is_empty())
            .collect();
        if let Err(e) = self
            .delete_vectors("deleting purged memories' vectors", vids)
            .await
        {
            tracing::warn!(error = %e, "deleting vectors of purged memories failed; `repair` removes them");
        }
        // The rows are gone either way: failing here would report a purge that happened as
        // one that did not. A left-over object is this store's and `check` finds it.
        if let Err(e) = self
            .delete_r2("deleting purged memories' large content", keys)
            .await
        {
            tracing::warn!(error = %e, "deleting R2 objects of purged memories failed; `repair` removes them");
        }
        Ok(n)
    }

    pub(super) async fn cleanup_duplicates(&self) -> StorageResult<CleanupReport> {
        consistency::cleanup_duplicates(self).await
    }
}
