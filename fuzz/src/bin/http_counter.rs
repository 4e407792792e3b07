//! AFL++ entry for the `http_counter` target (see `circular_fuzz::http_counter`).
fn main() {
    afl::fuzz!(|data: &[u8]| circular_fuzz::http_counter(data));
}
