//! `initialize`: the D1 tables and columns, this store's id, and the Vectorize index.

use std::collections::HashMap;

use cloudflare_d1::Statement;
use cloudflare_vectorize::{CreateIndex, Metric, VectorizeError};
use memory_storage::{StorageError, StorageResult};

use super::Inner;
use crate::error_map::{bad_row, vectorize_error};
use crate::rows::{count, text};
use crate::schema::{SCHEMA_VERSION, meta_keys};

impl Inner {
    pub(super) async fn initialize(&self) -> StorageResult<()> {
        let t = &self.tables;
        let mut statements: Vec<Statement> = t
            .create_statements()
            .into_iter()
            .map(|s| Statement::new(s).idempotent(true))
            .collect();
        statements.push(Statement::new(t.table_info()).idempotent(true));
        let results = self.batch("creating the D1 tables", statements).await?;
        let columns: Vec<String> = results
            .last()
            .map(|r| r.rows.iter().filter_map(|row| text(row, "name")).collect())
            .unwrap_or_default();
        let alters = t.missing_column_statements(&columns);
        if !alters.is_empty() {
            let alters = alters
                .into_iter()
                .map(|s| Statement::new(s).idempotent(true));
            if let Err(e) = self
                .batch("adding columns to the D1 tables", alters.collect())
                .await
            {
                // Another process may have added them at the same moment.
                tracing::warn!(error = %e, "adding missing columns failed; checking again");
                let again = self
                    .query(
                        "reading the D1 columns",
                        Statement::new(t.table_info()).idempotent(true),
                    )
                    .await?;
                let cols: Vec<String> = again
                    .rows
                    .iter()
                    .filter_map(|row| text(row, "name"))
                    .collect();
                if !t.missing_column_statements(&cols).is_empty() {
                    return Err(e);
                }
            }
        }
        let meta = &t.meta;
        let results = self
            .batch(
                "reading the schema metadata",
                vec![
                    Statement::new(t.deleted_at_index()).idempotent(true),
                    Statement::new(format!("SELECT key, value FROM {meta}")).idempotent(true),
                    Statement::new(format!("SELECT COUNT(*) AS n FROM {}", t.memories))
                        .idempotent(true),
                ],
            )
            .await?;
        let recorded: HashMap<String, String> = results
            .get(1)
            .map(|r| {
                r.rows
                    .iter()
                    .filter_map(|row| Some((text(row, "key")?, text(row, "value")?)))
                    .collect()
            })
            .unwrap_or_default();
        let rows = results
            .get(2)
            .and_then(|r| r.rows.first())
            .map_or(0, |r| count(r, "n"));
        let rec_model = recorded.get(meta_keys::EMBEDDING_MODEL);
        let rec_dims = recorded.get(meta_keys::EMBEDDING_DIMENSIONS);
        let matches = rec_model.is_some_and(|m| *m == self.model)
            && rec_dims.is_some_and(|d| *d == self.dims.to_string());
        if self.replica
            && !matches
            && let (Some(m), Some(d)) = (rec_model, rec_dims)
        {
            return Err(StorageError::ModelMismatch {
                recorded: format!("{m} ({d} dims, recorded in the D1 table {meta})"),
                configured: format!(
                    "{} ({} dims: the hybrid backend's local model; set it to {m} on this \
                     device, or give the hybrid backend its own D1 database and Vectorize \
                     index, or CLOUDFLARE_NAMESPACE)",
                    self.model, self.dims
                ),
            });
        }
        if !matches
            && rows > 0
            && let (Some(m), Some(d)) = (rec_model, rec_dims)
        {
            return Err(StorageError::ModelMismatch {
                recorded: format!("{m} ({d} dims)"),
                configured: format!("{} ({} dims)", self.model, self.dims),
            });
        }
        if !matches || recorded.get(meta_keys::SCHEMA_VERSION) != Some(&SCHEMA_VERSION.to_string())
        {
            self.query(
                "recording the schema metadata",
                Statement::new(format!(
                    "INSERT INTO {meta} (key, value) VALUES (?, ?), (?, ?), (?, ?) \
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value"
                ))
                .bind(meta_keys::SCHEMA_VERSION)
                .bind(SCHEMA_VERSION.to_string())
                .bind(meta_keys::EMBEDDING_MODEL)
                .bind(self.model.clone())
                .bind(meta_keys::EMBEDDING_DIMENSIONS)
                .bind(self.dims.to_string())
                .idempotent(true),
            )
            .await?;
        }
        let id = match recorded.get(meta_keys::STORE_ID) {
            Some(id) => id.clone(),
            None => self.record_store_id().await?,
        };
        // A second `initialize` reads the same id back; the first one set wins either way.
        let _ = self.store_id.set(id);
        self.check_index().await
    }

    /// Records a new random store id unless one is there (two processes initialising a
    /// new database at once both end up with the one that was written first), and returns
    /// the recorded one.
    async fn record_store_id(&self) -> StorageResult<String> {
        let meta = &self.tables.meta;
        let new = format!("{:032x}", rand::random::<u128>());
        let results = self
            .batch(
                "recording this store's id",
                vec![
                    Statement::new(format!(
                        "INSERT INTO {meta} (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING"
                    ))
                    .bind(meta_keys::STORE_ID)
                    .bind(new)
                    .idempotent(true),
                    Statement::new(format!("SELECT value FROM {meta} WHERE key = ?"))
                        .bind(meta_keys::STORE_ID)
                        .idempotent(true),
                ],
            )
            .await?;
        results
            .get(1)
            .and_then(|r| r.rows.first())
            .and_then(|row| text(row, "value"))
            .ok_or_else(|| {
                bad_row(format!(
                    "{meta} has no {} after writing it",
                    meta_keys::STORE_ID
                ))
            })
    }

    /// Creates the Vectorize index if missing (with an admin client) and checks its
    /// dimensions.
    async fn check_index(&self) -> StorageResult<()> {
        let name = &self.parts.index_name;
        let dims = if let Some(admin) = &self.parts.vectorize_admin {
            match admin.get_index(name.clone()).await {
                Ok(d) => d.config.map(|c| c.dimensions),
                Err(e) if is_not_found(&e) => {
                    let dims = u32::try_from(self.dims).unwrap_or(u32::MAX);
                    let created = admin
                        .create_index(CreateIndex::new(name.clone(), dims, Metric::Cosine))
                        .await;
                    match created {
                        Ok(d) => d.config.map(|c| c.dimensions),
                        Err(e) => {
                            // Another process may have created it meanwhile.
                            match admin.get_index(name.clone()).await {
                                Ok(d) => d.config.map(|c| c.dimensions),
                                Err(_) => {
                                    return Err(vectorize_error(
                                        &format!("creating the Vectorize index {name}"),
                                        e,
                                    ));
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    return Err(vectorize_error(
                        &format!("reading the Vectorize index {name}"),
                        e,
                    ));
                }
            }
        } else {
            self.parts
                .vectorize
                .info()
                .await
                .map_err(|e| {
                    vectorize_error(
                        &format!("reading the Vectorize index {name} (CLOUDFLARE_VECTORIZE_INDEX)"),
                        e,
                    )
                })?
                .dimensions
        };
        if let Some(d) = dims
            && d as usize != self.dims
        {
            return Err(StorageError::ModelMismatch {
                recorded: format!("the Vectorize index {name} ({d} dims)"),
                configured: format!("{} ({} dims)", self.model, self.dims),
            });
        }
        Ok(())
    }
}

/// Whether a Vectorize error says the index does not exist.
///
/// Cloudflare answers a missing index with 400 and code 3000
/// (`vectorize.index.not_found`), some paths with 404.
fn is_not_found(e: &VectorizeError) -> bool {
    let Some(c) = e.cloudflare() else {
        return false;
    };
    c.status()
        .is_some_and(|s| s.as_u16() == 404 || s.as_u16() == 410)
        || c.errors()
            .iter()
            .any(|m| m.code == 3000 || m.message.contains("index.not_found"))
}
