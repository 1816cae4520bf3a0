//! The replicated state of one memory and the merge every device applies.
//!
//! # The rules (the same on every device, whatever order changes arrive in)
//! 1. **Content is immutable**: a memory's content hash is its identity, so content never
//!    conflicts. Only its fields (tags, type, metadata, timestamps) and its liveness change.
//! 2. **Fields: the latest change wins**, by [`Hlc`] order — a total order every device
//!    computes the same way (not wall clocks, which differ between machines). A store sets
//!    every field; an update of tags/type/metadata sets them as the device saw them.
//! 3. **Liveness: the latest of store and delete wins**, by the same order. A store after a
//!    delete revives the memory with the store's fields; a delete after a store deletes it.
//! 4. **A delete beats a concurrent update**: an update never changes liveness, so an update
//!    made on one device while another deleted the memory leaves it deleted (the update's
//!    fields are kept, invisible, and lose to the fields of any later store).
//! 5. **A memory deleted everywhere never comes back** unless stored again after the delete:
//!    a replayed or late store with an older stamp loses to the delete (rule 3).
//!
//! Each rule is a last-writer-wins register over a total order, so [`MemoryState::merge`] is
//! commutative, associative and idempotent: devices that have seen the same changes hold
//! the same state, whatever the order and however often each change arrived (a state-based
//! CRDT). The property tests below check exactly that, with changes from several devices
//! delivered to each in a different random order, duplicated.

use std::cmp::Ordering;

use memory_core::{ContentHash, Metadata, Tags, Timestamp};
use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;

/// The fields of a memory that change (everything but its content and hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fields {
    /// Tags, in order.
    pub tags: Tags,
    /// The memory type, if any.
    pub memory_type: Option<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// When the memory was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

/// Whether a memory is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Life {
    /// Stored (or revived) and not deleted since.
    Live,
    /// Deleted: a tombstone, kept so that the delete reaches every device.
    Deleted,
}

/// A value with the stamp of the change that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped<T> {
    /// The value.
    pub value: T,
    /// The change's stamp.
    pub at: Hlc,
}

impl<T: Serialize> Stamped<T> {
    /// The later of two stamped values. Two changes never share a stamp (the device id is
    /// part of it); should they anyway (a corrupted store), the greater serialised value
    /// wins, so the merge stays deterministic.
    fn later(a: Self, b: Self) -> Self {
        let order = a.at.cmp(&b.at).then_with(|| {
            let text = |v: &T| serde_json::to_string(v).unwrap_or_default();
            text(&a.value).cmp(&text(&b.value))
        });
        match order {
            Ordering::Less => b,
            _ => a,
        }
    }
}

/// One change to a memory, as recorded by the device that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// Stored, or stored again after a delete (a revive): sets every field and makes it live.
    Store {
        /// The memory.
        hash: ContentHash,
        /// Its fields as stored.
        fields: Fields,
        /// The change's stamp.
        at: Hlc,
    },
    /// Tags, type or metadata changed: sets the fields, leaves liveness alone.
    Update {
        /// The memory.
        hash: ContentHash,
        /// Its fields after the update.
        fields: Fields,
        /// The change's stamp.
        at: Hlc,
    },
    /// Deleted (also each memory of a delete by tag or time range, or of a clean-up).
    Delete {
        /// The memory.
        hash: ContentHash,
        /// The change's stamp.
        at: Hlc,
    },
}

impl Change {
    /// The memory changed.
    #[must_use]
    pub fn hash(&self) -> &ContentHash {
        match self {
            Self::Store { hash, .. } | Self::Update { hash, .. } | Self::Delete { hash, .. } => {
                hash
            }
        }
    }

    /// The change's stamp.
    #[must_use]
    pub fn at(&self) -> Hlc {
        match self {
            Self::Store { at, .. } | Self::Update { at, .. } | Self::Delete { at, .. } => *at,
        }
    }
}

/// What a device knows of one memory: its fields and its liveness, each with the stamp of
/// the change that set it. Either may be unknown when changes arrive out of order (an
/// update or a delete before the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryState {
    /// The memory.
    pub hash: ContentHash,
    /// Its fields, from the latest store or update seen.
    pub fields: Option<Stamped<Fields>>,
    /// Its liveness, from the latest store or delete seen.
    pub life: Option<Stamped<Life>>,
}

impl MemoryState {
    /// The state one change alone makes.
    #[must_use]
    pub fn of(change: &Change) -> Self {
        let hash = change.hash().clone();
        match change {
            Change::Store { fields, at, .. } => Self {
                hash,
                fields: Some(Stamped {
                    value: fields.clone(),
                    at: *at,
                }),
                life: Some(Stamped {
                    value: Life::Live,
                    at: *at,
                }),
            },
            Change::Update { fields, at, .. } => Self {
                hash,
                fields: Some(Stamped {
                    value: fields.clone(),
                    at: *at,
                }),
                life: None,
            },
            Change::Delete { at, .. } => Self {
                hash,
                fields: None,
                life: Some(Stamped {
                    value: Life::Deleted,
                    at: *at,
                }),
            },
        }
    }

    /// The state after seeing both `self` and `other` (of the same memory): each register
    /// keeps its later value. Commutative, associative and idempotent.
    ///
    /// # Panics
    ///
    /// When the two states are of different memories (a caller's bug).
    #[must_use]
    pub fn merge(self, other: Self) -> Self {
        assert_eq!(
            self.hash, other.hash,
            "merging states of different memories"
        );
        Self {
            hash: self.hash,
            fields: later(self.fields, other.fields),
            life: later(self.life, other.life),
        }
    }

    /// The state after `change`.
    #[must_use]
    pub fn apply(self, change: &Change) -> Self {
        self.merge(Self::of(change))
    }

    /// The memory's fields if it is live and its fields are known.
    #[must_use]
    pub fn live_fields(&self) -> Option<&Fields> {
        match (&self.life, &self.fields) {
            (Some(l), Some(f)) if l.value == Life::Live => Some(&f.value),
            _ => None,
        }
    }

    /// The greatest stamp in the state (what a device has seen of this memory).
    #[must_use]
    pub fn latest(&self) -> Option<Hlc> {
        let f = self.fields.as_ref().map(|s| s.at);
        let l = self.life.as_ref().map(|s| s.at);
        f.max(l)
    }
}

fn later<T: Serialize>(a: Option<Stamped<T>>, b: Option<Stamped<T>>) -> Option<Stamped<T>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Stamped::later(a, b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::hlc::{DeviceId, HybridClock};

    fn hash(n: u8) -> ContentHash {
        ContentHash::of(&format!("memory {n}"))
    }

    fn fields(tag: &str, t: f64) -> Fields {
        Fields {
            tags: Tags::parse(vec![tag.to_owned()]).unwrap(),
            memory_type: None,
            metadata: Metadata::default(),
            created_at: Timestamp::from_epoch_seconds(t).unwrap(),
            updated_at: Timestamp::from_epoch_seconds(t).unwrap(),
        }
    }

    fn stamp(millis: u64, device: u128) -> Hlc {
        Hlc {
            millis,
            counter: 0,
            device: DeviceId::from_u128(device),
        }
    }

    fn store(h: &ContentHash, tag: &str, t: f64, at: Hlc) -> Change {
        Change::Store {
            hash: h.clone(),
            fields: fields(tag, t),
            at,
        }
    }

    fn update(h: &ContentHash, tag: &str, t: f64, at: Hlc) -> Change {
        Change::Update {
            hash: h.clone(),
            fields: fields(tag, t),
            at,
        }
    }

    fn delete(h: &ContentHash, at: Hlc) -> Change {
        Change::Delete {
            hash: h.clone(),
            at,
        }
    }

    fn replay(changes: &[Change]) -> MemoryState {
        let mut it = changes.iter();
        let first = MemoryState::of(it.next().unwrap());
        it.fold(first, MemoryState::apply)
    }

    #[test]
    fn a_delete_beats_a_concurrent_update_in_either_order() {
        let h = hash(1);
        let store = store(&h, "a", 1.0, stamp(1, 1));
        let delete = delete(&h, stamp(5, 1));
        // The update is stamped after the delete (its device's clock ran ahead): still dead.
        let update = update(&h, "b", 2.0, stamp(6, 2));
        for order in [
            [&store, &delete, &update],
            [&update, &delete, &store],
            [&delete, &store, &update],
        ] {
            let state = replay(&order.map(Clone::clone));
            assert_eq!(state.live_fields(), None, "{order:?}");
        }
    }

    #[test]
    fn a_store_after_the_delete_revives_with_its_own_fields_and_an_older_one_does_not() {
        let h = hash(2);
        let old = store(&h, "old", 1.0, stamp(1, 1));
        let delete = delete(&h, stamp(5, 2));
        let update = update(&h, "upd", 2.0, stamp(6, 1));
        let revive = store(&h, "new", 3.0, stamp(7, 3));
        let dead = replay(&[delete.clone(), old.clone(), update.clone()]);
        assert_eq!(
            dead.live_fields(),
            None,
            "a late replay of the old store stays deleted"
        );
        let alive = replay(&[revive, delete, old, update]);
        assert_eq!(alive.live_fields(), Some(&fields("new", 3.0)));
    }

    #[test]
    fn equal_stamps_still_merge_the_same_both_ways() {
        let h = hash(3);
        let a = update(&h, "a", 1.0, stamp(1, 1));
        let b = update(&h, "b", 1.0, stamp(1, 1));
        assert_eq!(replay(&[a.clone(), b.clone()]), replay(&[b, a]));
    }

    /// One device's operation in the random workloads.
    #[derive(Debug, Clone)]
    enum Op {
        Store(u8, u8),
        Update(u8, u8),
        Delete(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, 0u8..3).prop_map(|(m, t)| Op::Store(m, t)),
            (0u8..4, 0u8..3).prop_map(|(m, t)| Op::Update(m, t)),
            (0u8..4).prop_map(Op::Delete),
        ]
    }

    /// Runs each device's operations with its own clock (wall clocks skewed per device,
    /// each device seeing the changes of the others at random points), and returns every
    /// change made.
    fn changes_of(workloads: &[Vec<(Op, u64, bool)>]) -> Vec<Change> {
        let clocks: Vec<HybridClock> = (0..workloads.len())
            .map(|d| HybridClock::new(DeviceId::from_u128(d as u128 + 1), None))
            .collect();
        let mut all: Vec<Change> = Vec::new();
        let longest = workloads.iter().map(Vec::len).max().unwrap_or(0);
        for step in 0..longest {
            for (d, ops) in workloads.iter().enumerate() {
                let Some((op, wall, sees_others)) = ops.get(step) else {
                    continue;
                };
                if *sees_others && let Some(last) = all.last() {
                    clocks[d].observe(last.at(), *wall).unwrap();
                }
                // Each device's wall clock is skewed by up to 3 s from the others'.
                let at = clocks[d].tick(wall + d as u64 * 1_000).unwrap();
                let tag = |t: &u8| format!("tag{t}-dev{d}");
                all.push(match op {
                    Op::Store(m, t) => Change::Store {
                        hash: hash(*m),
                        fields: fields(&tag(t), 1.0),
                        at,
                    },
                    Op::Update(m, t) => Change::Update {
                        hash: hash(*m),
                        fields: fields(&tag(t), 2.0),
                        at,
                    },
                    Op::Delete(m) => Change::Delete { hash: hash(*m), at },
                });
            }
        }
        all
    }

    /// What a device holds after seeing `changes` in this order.
    fn replica(changes: &[&Change]) -> BTreeMap<ContentHash, MemoryState> {
        let mut states: BTreeMap<ContentHash, MemoryState> = BTreeMap::new();
        for c in changes {
            let next = match states.remove(c.hash()) {
                Some(s) => s.apply(c),
                None => MemoryState::of(c),
            };
            states.insert(c.hash().clone(), next);
        }
        states
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Convergence: three devices that each receive every change (in its own shuffled
        /// order, some twice) hold identical states; and each memory's state is what the
        /// rules say: live iff its latest store/delete is a store, with the fields of its
        /// latest store/update.
        #[test]
        fn every_delivery_order_converges_to_the_rules(
            workloads in proptest::collection::vec(
                proptest::collection::vec((op(), 0u64..5_000, any::<bool>()), 0..25), 3),
            orders in proptest::collection::vec(
                (Just(()), any::<u64>()).prop_map(|(_, s)| s), 3),
        ) {
            let changes = changes_of(&workloads);
            let mut replicas = Vec::new();
            for seed in &orders {
                // A deterministic shuffle of the changes, each delivered once or twice.
                let mut delivered: Vec<&Change> = changes.iter().chain(changes.iter().step_by(3)).collect();
                let mut x = *seed | 1;
                for i in (1..delivered.len()).rev() {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    delivered.swap(i, (x % (i as u64 + 1)) as usize);
                }
                replicas.push(replica(&delivered));
            }
            prop_assert_eq!(&replicas[0], &replicas[1]);
            prop_assert_eq!(&replicas[1], &replicas[2]);
            for (h, state) in &replicas[0] {
                let of_h: Vec<&Change> = changes.iter().filter(|c| c.hash() == h).collect();
                let last_life = of_h.iter().filter(|c| !matches!(c, Change::Update { .. })).max_by_key(|c| c.at());
                let last_fields = of_h.iter().filter(|c| !matches!(c, Change::Delete { .. })).max_by_key(|c| c.at());
                let expect_live = matches!(last_life, Some(Change::Store { .. }));
                prop_assert_eq!(state.live_fields().is_some(), expect_live && last_fields.is_some());
                if expect_live {
                    let want = match last_fields {
                        Some(Change::Store { fields, .. } | Change::Update { fields, .. }) => Some(fields),
                        _ => None,
                    };
                    prop_assert_eq!(state.live_fields(), want);
                }
            }
        }

        /// The merge is a join: commutative, associative, idempotent.
        #[test]
        fn merge_is_commutative_associative_and_idempotent(
            workloads in proptest::collection::vec(
                proptest::collection::vec((op(), 0u64..5_000, any::<bool>()), 1..10), 3),
        ) {
            let changes: Vec<Change> = changes_of(&workloads)
                .into_iter()
                .filter(|c| c.hash() == &hash(0))
                .collect();
            prop_assume!(changes.len() >= 3);
            let s: Vec<MemoryState> = changes.iter().map(MemoryState::of).collect();
            let (a, b, c) = (&s[0], &s[1], &s[2]);
            prop_assert_eq!(a.clone().merge(b.clone()), b.clone().merge(a.clone()));
            prop_assert_eq!(
                a.clone().merge(b.clone()).merge(c.clone()),
                a.clone().merge(b.clone().merge(c.clone()))
            );
            prop_assert_eq!(a.clone().merge(a.clone()), a.clone());
        }
    }
}
