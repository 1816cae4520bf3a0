//! Which vector search for the embedded backend: the in-process scan or sqlite-vec's `vec0`?
//!
//! Both rank the same 384-dimensional unit vectors (all-MiniLM-L6-v2's size) for the same
//! query and return the top 10. Run with `cargo bench --bench vector_search`.
//!
//! * `scan`: `memory_sqlite::vector::VectorIndex` — a contiguous `Vec<f32>` matrix ranked by
//!   dot product (cosine for unit vectors), which the backend keeps in memory.
//! * `vec0`: sqlite-vec's virtual table with `distance_metric=cosine` and a KNN
//!   `MATCH ... AND k = 10` query, in an in-memory SQLite database.
//!
//! The vectors are random (seeded) because ranking cost does not depend on what they mean.

use std::hint::black_box;
use std::num::NonZeroUsize;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memory_sqlite::vector::VectorIndex;
use rand::{Rng, SeedableRng, rngs::StdRng};
use rusqlite::Connection;

const DIMS: usize = 384;
const K: usize = 10;

fn unit_vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..DIMS).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

fn as_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vec0_db(vectors: &[Vec<f32>]) -> Connection {
    // SAFETY: registers sqlite-vec's entry point for connections opened afterwards; the
    // function has the signature SQLite expects of an extension entry point.
    unsafe {
        rusqlite::ffi::sqlite3_auto_extension(Some(std::mem::transmute::<
            *const (),
            unsafe extern "C" fn(
                *mut rusqlite::ffi::sqlite3,
                *mut *mut std::os::raw::c_char,
                *const rusqlite::ffi::sqlite3_api_routines,
            ) -> std::os::raw::c_int,
        >(
            sqlite_vec::sqlite3_vec_init as *const ()
        )));
    }
    let conn = Connection::open_in_memory().expect("in-memory SQLite");
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE v USING vec0(embedding float[{DIMS}] distance_metric=cosine)"
    ))
    .expect("sqlite-vec loaded");
    let tx = conn.unchecked_transaction().expect("transaction");
    {
        let mut insert = tx
            .prepare("INSERT INTO v(rowid, embedding) VALUES (?1, ?2)")
            .expect("prepare insert");
        for (i, v) in vectors.iter().enumerate() {
            insert
                .execute(rusqlite::params![i as i64 + 1, as_bytes(v)])
                .expect("insert vector");
        }
    }
    tx.commit().expect("commit");
    conn
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("vector_search_top10");
    for n in [1_000usize, 10_000] {
        let vectors = unit_vectors(n, 7);
        let query = unit_vectors(1, 99).remove(0);

        let mut index = VectorIndex::with_capacity(NonZeroUsize::new(DIMS).expect("dims"), n);
        for (i, v) in vectors.iter().enumerate() {
            index.upsert(i as i64 + 1, v, ()).expect("right dims");
        }
        group.bench_with_input(BenchmarkId::new("scan", n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    index
                        .search(black_box(&query), K, None, |_| true)
                        .expect("search"),
                )
            })
        });

        let conn = vec0_db(&vectors);
        let q = as_bytes(&query);
        let mut stmt = conn
            .prepare("SELECT rowid, distance FROM v WHERE embedding MATCH ?1 AND k = ?2")
            .expect("prepare knn");
        group.bench_with_input(BenchmarkId::new("vec0", n), &n, |b, _| {
            b.iter(|| {
                let rows: Vec<(i64, f64)> = stmt
                    .query_map(rusqlite::params![black_box(&q), K as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .expect("knn query")
                    .collect::<Result<_, _>>()
                    .expect("rows");
                black_box(rows)
            })
        });

        // Both must agree on the answer, or the comparison means nothing.
        let mut scan_ids: Vec<i64> = index
            .search(&query, K, None, |_| true)
            .expect("search")
            .iter()
            .map(|h| h.id)
            .collect();
        let mut vec0_ids: Vec<i64> = stmt
            .query_map(rusqlite::params![&q, K as i64], |r| r.get(0))
            .expect("knn query")
            .collect::<Result<_, _>>()
            .expect("rows");
        // Compared as sets: the two may order near-equal scores differently (f32 vs f64 sums).
        scan_ids.sort_unstable();
        vec0_ids.sort_unstable();
        assert_eq!(scan_ids, vec0_ids, "scan and vec0 disagree on the top {K}");
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
