//! Keyboard and pointer into the guest: Linux key codes (evdev) to QEMU's key numbers, the
//! leave-the-guest chord, and the absolute pointer (the guest has a USB tablet).
//!
//! The leave-the-guest chord is Ctrl+Alt+Esc ([`CHORD`]).

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};

use zbus::blocking::Connection;

use crate::display::{Event, CONSOLE_PATH};
use crate::error::Result;
use crate::output::Placement;

#[zbus::proxy(interface = "org.qemu.Display1.Keyboard", gen_async = false, gen_blocking = true)]
trait Keyboard {
    fn press(&self, keycode: u32) -> zbus::Result<()>;
    fn release(&self, keycode: u32) -> zbus::Result<()>;
}

#[zbus::proxy(interface = "org.qemu.Display1.Mouse", gen_async = false, gen_blocking = true)]
trait Mouse {
    fn press(&self, button: u32) -> zbus::Result<()>;
    fn release(&self, button: u32) -> zbus::Result<()>;
    fn set_abs_position(&self, x: u32, y: u32) -> zbus::Result<()>;
}

/// Linux `KEY_LEFTCTRL`, `KEY_RIGHTCTRL`, `KEY_LEFTALT`, `KEY_RIGHTALT`.
const CTRL: [u16; 2] = [29, 97];
const ALT: [u16; 2] = [56, 100];
/// The leave-the-guest chord: Ctrl+Alt+Esc (Linux `KEY_ESC` = 1 with either Ctrl and either
/// Alt held). Chosen because guests rarely bind it (KDE's xkill is the one known use), unlike
/// Ctrl+Alt+Del, Ctrl+Alt+F1..F12 (virtual terminals) or Ctrl+Alt+Backspace (X11 zap).
pub const CHORD: &str = "Ctrl+Alt+Esc";
const KEY_ESC: u16 = 1;

/// QEMU's "qnum" for a Linux key code: PC scancode set 1, with the 0xE0 prefix folded into
/// bit 7. Codes 1..=88 are the same numbers on both sides (Linux took them from set 1); the
/// rest is QEMU's `ui/keycodemapdb` table for the keys a PC keyboard has. `None`: not sent.
pub fn qnum(linux: u16) -> Option<u32> {
    let q = match linux {
        1..=88 => u32::from(linux),
        96 => 0x9c,  // KP Enter
        97 => 0x9d,  // Right Ctrl
        98 => 0xb5,  // KP /
        99 => 0xb7,  // SysRq / Print Screen
        100 => 0xb8, // Right Alt (AltGr)
        102 => 0xc7, // Home
        103 => 0xc8, // Up
        104 => 0xc9, // Page Up
        105 => 0xcb, // Left
        106 => 0xcd, // Right
        107 => 0xcf, // End
        108 => 0xd0, // Down
        109 => 0xd1, // Page Down
        110 => 0xd2, // Insert
        111 => 0xd3, // Delete
        119 => 0xc6, // Pause (QEMU's number for it)
        125 => 0xdb, // Left Meta
        126 => 0xdc, // Right Meta
        127 => 0xdd, // Menu (Compose)
        _ => return None,
    };
    Some(q)
}

/// QEMU's `InputButton` numbers for Linux `BTN_LEFT`, `BTN_RIGHT`, `BTN_MIDDLE`, `BTN_SIDE`,
/// `BTN_EXTRA`.
pub fn button(linux: u16) -> Option<u32> {
    match linux {
        0x110 => Some(0),
        0x112 => Some(1),
        0x111 => Some(2),
        0x113 => Some(5),
        0x114 => Some(6),
        _ => None,
    }
}

/// QEMU's wheel "buttons": up is 3, down is 4 (pressed and released at once).
pub const WHEEL_UP: u32 = 3;
/// See [`WHEEL_UP`].
pub const WHEEL_DOWN: u32 = 4;

/// What a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Sent to the guest.
    Sent,
    /// A key QEMU has no number for; dropped.
    Unmapped,
    /// The chord: the modifiers were released in the guest and the session told to leave.
    Leave,
}

/// The keyboard and pointer path into the guest, shared by every evdev reader.
pub struct Input {
    keyboard: KeyboardProxy<'static>,
    mouse: MouseProxy<'static>,
    placement: Arc<Mutex<Placement>>,
    held: Mutex<Vec<u16>>,
    leave: Mutex<Sender<Event>>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").finish_non_exhaustive()
    }
}

impl Input {
    pub(crate) fn new(display: &Connection, placement: Arc<Mutex<Placement>>, leave: Sender<Event>) -> Result<Input> {
        let keyboard = KeyboardProxy::builder(display)
            .destination("org.qemu")?
            .path(CONSOLE_PATH)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()?;
        let mouse = MouseProxy::builder(display)
            .destination("org.qemu")?
            .path(CONSOLE_PATH)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()?;
        Ok(Input { keyboard, mouse, placement, held: Mutex::new(Vec::new()), leave: Mutex::new(leave) })
    }

    /// A key went down (`pressed`) or up; `linux` is the evdev code (`KEY_*`).
    ///
    /// # Errors
    /// [`crate::Error::Dbus`] when QEMU does not take the key (it has exited).
    pub fn key(&self, linux: u16, pressed: bool) -> Result<KeyOutcome> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if pressed && linux == KEY_ESC && held.iter().any(|k| CTRL.contains(k)) && held.iter().any(|k| ALT.contains(k))
        {
            // The guest saw Ctrl and Alt go down; let it see them go up, so that it has no
            // stuck modifiers when the user comes back.
            for k in held.drain(..) {
                if let Some(q) = qnum(k) {
                    self.keyboard.release(q)?;
                }
            }
            let _ = self.leave.lock().unwrap_or_else(PoisonError::into_inner).send(Event::Leave);
            return Ok(KeyOutcome::Leave);
        }
        let Some(q) = qnum(linux) else { return Ok(KeyOutcome::Unmapped) };
        if pressed {
            if !held.contains(&linux) {
                held.push(linux);
            }
            self.keyboard.press(q)?;
        } else {
            held.retain(|k| *k != linux);
            self.keyboard.release(q)?;
        }
        Ok(KeyOutcome::Sent)
    }

    /// Moves the guest's pointer to where screen pixel (`x`, `y`) shows; on the bars it stops
    /// at the picture's edge.
    ///
    /// # Errors
    /// [`crate::Error::Dbus`] as for [`Input::key`].
    pub fn pointer_at_screen(&self, x: u32, y: u32) -> Result<()> {
        let place = *self.placement.lock().unwrap_or_else(PoisonError::into_inner);
        let (gx, gy) = place.to_guest_clamped(x, y);
        self.pointer_at_guest(gx, gy)
    }

    /// Moves the guest's pointer to guest pixel (`x`, `y`).
    ///
    /// # Errors
    /// As [`Input::key`].
    pub fn pointer_at_guest(&self, x: u32, y: u32) -> Result<()> {
        Ok(self.mouse.set_abs_position(x, y)?)
    }

    /// A QEMU mouse button (see [`button`], [`WHEEL_UP`]) went down or up.
    ///
    /// # Errors
    /// As [`Input::key`].
    pub fn button(&self, qemu_button: u32, pressed: bool) -> Result<()> {
        if pressed {
            self.mouse.press(qemu_button)?;
        } else {
            self.mouse.release(qemu_button)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qnum_matches_qemu_for_keys_a_guest_needs() {
        // KEY_A, KEY_ENTER, KEY_ESC, KEY_F12: set 1 without prefix.
        assert_eq!(qnum(30), Some(0x1e));
        assert_eq!(qnum(28), Some(0x1c));
        assert_eq!(qnum(1), Some(0x01));
        assert_eq!(qnum(88), Some(0x58));
        // Extended keys carry the 0xE0 prefix as bit 7.
        assert_eq!(qnum(103), Some(0xc8));
        assert_eq!(qnum(111), Some(0xd3));
        assert_eq!(qnum(0), None);
        assert_eq!(qnum(240), None);
    }

    #[test]
    fn buttons_follow_qemu_input_button() {
        assert_eq!(button(0x110), Some(0));
        assert_eq!(button(0x111), Some(2));
        assert_eq!(button(0x112), Some(1));
        assert_eq!(button(0x100), None);
    }
}
