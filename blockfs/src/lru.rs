//! Least-recently-used order over keys with sizes: the bookkeeping shared by the
//! disk cache and the in-memory cache of decoded blocks. It holds no values.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub struct Lru<K> {
    entries: HashMap<K, (u64, u64)>,
    by_age: BTreeMap<u64, K>,
    total: u64,
    clock: u64,
}

impl<K: Copy + Eq + Hash> Default for Lru<K> {
    fn default() -> Self {
        Lru { entries: HashMap::new(), by_age: BTreeMap::new(), total: 0, clock: 0 }
    }
}

impl<K: Copy + Eq + Hash> Lru<K> {
    /// Adds `key` (or replaces its size) as the most recently used.
    pub fn insert(&mut self, key: K, size: u64) {
        self.remove(&key);
        self.clock += 1;
        self.entries.insert(key, (size, self.clock));
        self.by_age.insert(self.clock, key);
        self.total += size;
    }

    /// Removes `key`; returns its size if it was there.
    pub fn remove(&mut self, key: &K) -> Option<u64> {
        let (size, used) = self.entries.remove(key)?;
        self.by_age.remove(&used);
        self.total -= size;
        Some(size)
    }

    /// Marks `key` as just used; false if it is not there.
    pub fn touch(&mut self, key: &K) -> bool {
        let Some((_, used)) = self.entries.get_mut(key) else {
            return false;
        };
        self.by_age.remove(used);
        self.clock += 1;
        *used = self.clock;
        self.by_age.insert(self.clock, *key);
        true
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Keys with their sizes, least recently used first.
    pub fn oldest_first(&self) -> impl Iterator<Item = (&K, u64)> {
        self.by_age.values().map(|k| (k, self.entries.get(k).map_or(0, |e| e.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_totals() {
        let mut lru = Lru::default();
        lru.insert(1, 10);
        lru.insert(2, 20);
        lru.insert(3, 30);
        assert!(lru.touch(&1));
        assert!(!lru.touch(&9));
        let order: Vec<_> = lru.oldest_first().map(|(k, _)| *k).collect();
        assert_eq!(order, [2, 3, 1]);
        assert_eq!(lru.total(), 60);
        assert_eq!(lru.remove(&3), Some(30));
        lru.insert(2, 5);
        assert_eq!(lru.total(), 15);
        assert!(lru.contains(&2) && !lru.contains(&3));
    }
}
