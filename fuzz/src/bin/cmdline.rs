//! AFL++ entry for the `cmdline` target (see `circular_fuzz::cmdline`).
fn main() {
    afl::fuzz!(|data: &[u8]| circular_fuzz::cmdline(data));
}
