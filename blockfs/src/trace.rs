//! A record of which blocks readers asked for, per snapshot, in first-touch
//! order. `image-build profile` turns it into a boot profile. Readahead and
//! prefetch are not readers and are not recorded.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use circular_format::Sha1Name;

/// Blocks seen, and their first-touch order.
type Touched = (HashSet<u32>, Vec<u32>);

/// The read trace of a mount (`blockfs mount --trace`): for each index, the blocks readers
/// touched, in the order they first touched them. `image-build profile` turns it into a boot
/// profile.
#[derive(Debug, Default)]
pub struct Trace {
    by_index: Mutex<HashMap<Sha1Name, Touched>>,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Trace {
        Trace::default()
    }

    /// Notes that a reader touched block number `block` of the image that `index` maps;
    /// only the first touch of each block counts.
    pub fn record(&self, index: &Sha1Name, block: u32) {
        let mut map = self.by_index.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, order) = map.entry(*index).or_default();
        if seen.insert(block) {
            order.push(block);
        }
    }

    /// Block numbers of the snapshot with this index, in first-touch order.
    pub fn first_reads(&self, index: &Sha1Name) -> Vec<u32> {
        let map = self.by_index.lock().unwrap_or_else(|p| p.into_inner());
        map.get(index).map(|(_, order)| order.clone()).unwrap_or_default()
    }

    /// Every snapshot's first reads, as JSON: `{"<index sha1>": [n, …], …}`.
    pub fn to_json(&self) -> Vec<u8> {
        let map = self.by_index.lock().unwrap_or_else(|p| p.into_inner());
        let out: HashMap<String, &Vec<u32>> = map.iter().map(|(k, (_, v))| (k.to_hex(), v)).collect();
        serde_json::to_vec_pretty(&out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_touch_order_per_index() {
        let trace = Trace::new();
        let (x, y) = (Sha1Name::of(b"x"), Sha1Name::of(b"y"));
        for n in [5, 1, 5, 2, 1] {
            trace.record(&x, n);
        }
        trace.record(&y, 9);
        assert_eq!(trace.first_reads(&x), vec![5, 1, 2]);
        assert_eq!(trace.first_reads(&y), vec![9]);
        assert!(String::from_utf8(trace.to_json()).unwrap().contains(&x.to_hex()));
    }
}
