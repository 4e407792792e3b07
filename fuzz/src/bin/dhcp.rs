//! AFL++ entry for the `dhcp` target (see `circular_fuzz::dhcp`).
fn main() {
    afl::fuzz!(|data: &[u8]| circular_fuzz::dhcp(data));
}
