//! AFL++ entry for the `profile` target (see `circular_fuzz::profile`).
fn main() {
    afl::fuzz!(|data: &[u8]| circular_fuzz::profile(data));
}
