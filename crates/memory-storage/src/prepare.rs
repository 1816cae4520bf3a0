//! What every backend does to a memory before writing it, written once: the content rules,
//! the hash checked against the content, `metadata.tags`/`metadata.type` moved into the
//! memory's fields, the type normalised, a supplied vector checked and scaled to unit length.
//!
//! ```
//! use memory_core::{Memory, Metadata};
//! use memory_storage::prepare::prepare_memory;
//! let m = Memory::new("note")?.with_metadata(Metadata::parse(r#"{"tags": "a,b"}"#)?);
//! let prepared = prepare_memory(m.with_embedding(vec![3.0, 4.0]), 2).unwrap();
//! assert_eq!(prepared.memory.tags.as_slice(), ["a", "b"]);
//! assert_eq!(prepared.vector, Some(vec![0.6, 0.8]));
//! # Ok::<(), memory_core::ValidationError>(())
//! ```

use memory_core::memory::{normalise_memory_type, validate_content};
use memory_core::{Memory, ValidationError};

use crate::{StorageError, StorageResult};

/// A squared norm this close to 1 counts as unit length (the vector is kept bit for bit).
pub const UNIT_NORM_TOLERANCE: f64 = 1e-4;

/// A memory ready to be written: checked and normalised, with its unit vector when the
/// caller supplied one (the backend embeds the others).
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The memory, without its embedding.
    pub memory: Memory,
    /// The supplied embedding, scaled to unit length.
    pub vector: Option<Vec<f32>>,
}

/// Checks and normalises a memory for a store of `dims`-dimensional vectors.
///
/// # Errors
///
/// [`StorageError::Validation`] for content, hash, tag and type rules (naming the field);
/// [`StorageError::InvalidInput`] naming `embedding` for a vector that cannot be used.
pub fn prepare_memory(memory: Memory, dims: usize) -> StorageResult<Prepared> {
    validate_content(memory.content())?;
    // A hash that is not the content's would make that content a "duplicate" of this memory
    // forever; `Memory::new` and deserialising cannot build one, `Memory::from_parts` can.
    if !memory.hash_matches_content() {
        return Err(ValidationError::HashMismatch {
            supplied: memory.content_hash().clone(),
            computed: memory_core::ContentHash::of(memory.content()),
        }
        .into());
    }
    let mut memory = memory.lift_reserved_metadata()?;
    if let Some(t) = memory.memory_type.take() {
        memory.memory_type = normalise_memory_type(&t)?;
    }
    let vector = memory
        .embedding
        .take()
        .map(|v| {
            unit_vector(v, dims).map_err(|problem| {
                StorageError::invalid("embedding", format!("the supplied embedding {problem}"))
            })
        })
        .transpose()?;
    Ok(Prepared { memory, vector })
}

/// Why a vector cannot be stored or searched with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorProblem {
    /// Wrong length.
    Dimensions {
        /// The store's dimensions.
        expected: usize,
        /// The vector's length.
        got: usize,
    },
    /// A NaN or infinite element.
    NotFinite {
        /// Its index.
        index: usize,
    },
    /// All zeros: it has no direction.
    Zero,
}

impl std::fmt::Display for VectorProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dimensions { expected, got } => write!(
                f,
                "has {got} dimensions but this store holds {expected}-dimensional vectors; \
                 leave the embedding out to have the store compute it"
            ),
            Self::NotFinite { index } => write!(
                f,
                "element {index} is NaN or infinite; every element must be a finite number"
            ),
            Self::Zero => f.write_str("is all zeros and has no direction; give a non-zero vector"),
        }
    }
}

impl std::error::Error for VectorProblem {}

/// Checks a vector's length and values and scales it to unit length, so that a dot product
/// is a cosine similarity. Vectors already of unit length (within [`UNIT_NORM_TOLERANCE`])
/// are kept bit for bit.
///
/// The norm is summed in `f64`: the squares of finite `f32` values (up to ~3.4e38, squared
/// ~1.2e77) and of the smallest subnormals (~1e-45, squared ~1e-90) neither overflow nor
/// vanish there, so only a vector of true zeros is refused as having no direction.
///
/// # Errors
///
/// The [`VectorProblem`].
pub fn unit_vector(mut v: Vec<f32>, dims: usize) -> Result<Vec<f32>, VectorProblem> {
    if v.len() != dims {
        return Err(VectorProblem::Dimensions {
            expected: dims,
            got: v.len(),
        });
    }
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(VectorProblem::NotFinite { index });
    }
    let norm_sq: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if norm_sq == 0.0 {
        return Err(VectorProblem::Zero);
    }
    if (norm_sq - 1.0).abs() > UNIT_NORM_TOLERANCE {
        let norm = norm_sq.sqrt();
        // Divide in f64: x / norm is at most 1 in magnitude, so the cast back cannot overflow.
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_core::{ContentHash, Metadata, Tags, Timestamp};
    use proptest::prelude::*;

    #[test]
    fn huge_finite_vectors_are_scaled_not_called_zero() {
        let v = unit_vector(vec![1e38; 384], 384).unwrap();
        let expected = (1.0 / 384f64.sqrt()) as f32;
        assert!(
            v.iter().all(|x| (x - expected).abs() < 1e-6),
            "{:?}",
            &v[..3]
        );
        let v = unit_vector(vec![f32::MAX, -f32::MAX], 2).unwrap();
        assert!((v[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        // The smallest subnormal still has a direction.
        let tiny = f32::from_bits(1);
        let v = unit_vector(vec![tiny, 0.0], 2).unwrap();
        assert_eq!(v, [1.0, 0.0]);
        assert_eq!(unit_vector(vec![0.0, -0.0], 2), Err(VectorProblem::Zero));
    }

    #[test]
    fn unit_vectors_are_kept_bit_for_bit() {
        let v = vec![0.6, 0.8];
        assert_eq!(unit_vector(v.clone(), 2).unwrap(), v);
    }

    #[test]
    fn bad_vectors_name_the_problem() {
        assert_eq!(
            unit_vector(vec![1.0], 2),
            Err(VectorProblem::Dimensions {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            unit_vector(vec![1.0, f32::NAN], 2),
            Err(VectorProblem::NotFinite { index: 1 })
        );
    }

    #[test]
    fn a_hash_of_other_content_is_refused() {
        let m = Memory::from_parts(
            "buy milk".into(),
            ContentHash::of("other text"),
            Tags::empty(),
            None,
            Metadata::new(),
            None,
            Timestamp::now(),
            Timestamp::now(),
        );
        let err = prepare_memory(m, 2).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::Validation(ValidationError::HashMismatch { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn reserved_metadata_is_lifted() {
        let m = Memory::new("x")
            .unwrap()
            .with_metadata(Metadata::parse(r#"{"tags": "a", "type": "decision"}"#).unwrap());
        let p = prepare_memory(m, 2).unwrap();
        assert_eq!(p.memory.tags.as_slice(), ["a"]);
        assert_eq!(p.memory.memory_type.as_deref(), Some("decision"));
        assert!(p.memory.metadata.is_empty());
    }

    proptest! {
        /// Any finite, non-zero vector comes out of unit length.
        #[test]
        fn every_finite_non_zero_vector_becomes_unit_length(
            v in proptest::collection::vec(
                prop_oneof![any::<f32>().prop_filter("finite", |x| x.is_finite()), Just(0.0f32)],
                1..64,
            )
        ) {
            let dims = v.len();
            match unit_vector(v.clone(), dims) {
                Ok(u) => {
                    let n: f64 = u.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
                    prop_assert!((n - 1.0).abs() < 1e-3, "norm² {n} of {v:?}");
                }
                Err(VectorProblem::Zero) => prop_assert!(v.iter().all(|&x| x == 0.0)),
                Err(other) => prop_assert!(false, "{other}"),
            }
        }
    }
}
