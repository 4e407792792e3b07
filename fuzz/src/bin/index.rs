//! AFL++ entry for the `index` target (see `circular_fuzz::index`).
fn main() {
    afl::fuzz!(|data: &[u8]| circular_fuzz::index(data));
}
