//! AFL++ entry for the `signature` target (see `circular_fuzz::signature`).
fn main() {
    afl::fuzz!(|data: &[u8]| circular_fuzz::signature(data));
}
