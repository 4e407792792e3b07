//! AFL++ entry for the `catalog` target (see `circular_fuzz::catalog`).
fn main() {
    afl::fuzz!(|data: &[u8]| circular_fuzz::catalog(data));
}
