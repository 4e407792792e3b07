//! AFL++ entry for the `dhcp` target (see `circular_fuzz::dhcp`).
//!
//! `fuzz_nohook!`: `parse_reply` contains the panics of dhcproto's option decoders
//! on purpose (a hostile reply is ignored, PID 1 goes on), and `fuzz!`'s panic hook
//! would abort on a panic even when it is caught. A panic that escapes
//! `parse_reply` still aborts, and is a crash.
fn main() {
    afl::fuzz_nohook!(|data: &[u8]| circular_fuzz::dhcp(data));
}
