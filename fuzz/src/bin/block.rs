//! AFL++ entry for the `block` target (see `circular_fuzz::block_frame`).
fn main() {
    afl::fuzz!(|data: &[u8]| circular_fuzz::block_frame(data));
}
