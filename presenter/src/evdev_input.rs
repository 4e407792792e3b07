//! Reads the PC's keyboards and mice from evdev (`/dev/input/event*`) and feeds [`Input`].
//! Each device has its own thread blocked in `read`: nothing runs while no key or mouse moves.

use std::path::PathBuf;
use std::sync::Arc;

use evdev::{AbsoluteAxisCode, Device, EventSummary, KeyCode, RelativeAxisCode};

use crate::error::{Error, Result};
use crate::input::{button, Input, KeyOutcome, WHEEL_DOWN, WHEEL_UP};

/// Where the pointer is on the screen, for relative mice (screen pixels).
struct Pointer {
    x: i64,
    y: i64,
    screen: (u32, u32),
}

/// Starts one reader thread per keyboard or pointing device, grabbing each so that the console
/// under the presenter does not also see the keys. `screen` is the output's size, for
/// relative mice and for scaling absolute devices. Returns the devices opened.
///
/// # Errors
/// [`Error::Input`] when a reader thread cannot start; devices that cannot be opened or grabbed
/// are skipped with a warning.
pub fn spawn_readers(input: Arc<Input>, screen: (u32, u32)) -> Result<Vec<PathBuf>> {
    let mut opened = Vec::new();
    for (path, mut device) in evdev::enumerate() {
        let keys = device
            .supported_keys()
            .map(|k| k.contains(KeyCode::KEY_A) || k.contains(KeyCode::BTN_LEFT))
            .unwrap_or(false);
        if !keys {
            continue;
        }
        if let Err(e) = device.grab() {
            log::warn!("{}: not grabbed ({e}); the console may see its keys too", path.display());
        }
        let input = input.clone();
        let name = path.clone();
        std::thread::Builder::new()
            .name(format!("evdev {}", path.display()))
            .spawn(move || {
                if let Err(e) = read_device(&input, device, screen) {
                    log::warn!("{}: {e}", name.display());
                }
            })
            .map_err(|source| Error::Input { path: path.clone(), source })?;
        opened.push(path);
    }
    Ok(opened)
}

fn read_device(input: &Input, mut device: Device, screen: (u32, u32)) -> Result<()> {
    let path = PathBuf::from(device.physical_path().unwrap_or("?"));
    let abs = device.get_absinfo().map(|it| it.collect::<Vec<_>>()).unwrap_or_default();
    let range = |code: AbsoluteAxisCode| {
        abs.iter().find(|(c, _)| *c == code).map(|(_, i)| (i.minimum(), i.maximum().max(i.minimum() + 1)))
    };
    let (ax, ay) = (range(AbsoluteAxisCode::ABS_X), range(AbsoluteAxisCode::ABS_Y));
    let mut p = Pointer { x: i64::from(screen.0 / 2), y: i64::from(screen.1 / 2), screen };
    loop {
        let events = device.fetch_events().map_err(|source| Error::Input { path: path.clone(), source })?;
        let mut moved = false;
        for ev in events {
            match ev.destructure() {
                EventSummary::Key(_, code, value) if value <= 1 => {
                    let code = code.code();
                    if let Some(b) = button(code) {
                        input.button(b, value == 1)?;
                    } else if input.key(code, value == 1)? == KeyOutcome::Leave {
                        return Ok(());
                    }
                }
                EventSummary::RelativeAxis(_, RelativeAxisCode::REL_X, v) => {
                    p.x += i64::from(v);
                    moved = true;
                }
                EventSummary::RelativeAxis(_, RelativeAxisCode::REL_Y, v) => {
                    p.y += i64::from(v);
                    moved = true;
                }
                EventSummary::RelativeAxis(_, RelativeAxisCode::REL_WHEEL, v) if v != 0 => {
                    let b = if v > 0 { WHEEL_UP } else { WHEEL_DOWN };
                    input.button(b, true)?;
                    input.button(b, false)?;
                }
                EventSummary::AbsoluteAxis(_, AbsoluteAxisCode::ABS_X, v) => {
                    if let Some((lo, hi)) = ax {
                        p.x = i64::from(v - lo) * i64::from(p.screen.0.saturating_sub(1)) / i64::from(hi - lo);
                        moved = true;
                    }
                }
                EventSummary::AbsoluteAxis(_, AbsoluteAxisCode::ABS_Y, v) => {
                    if let Some((lo, hi)) = ay {
                        p.y = i64::from(v - lo) * i64::from(p.screen.1.saturating_sub(1)) / i64::from(hi - lo);
                        moved = true;
                    }
                }
                _ => {}
            }
        }
        if moved {
            p.x = p.x.clamp(0, i64::from(p.screen.0.saturating_sub(1)));
            p.y = p.y.clamp(0, i64::from(p.screen.1.saturating_sub(1)));
            input.pointer_at_screen(p.x as u32, p.y as u32)?;
        }
    }
}
