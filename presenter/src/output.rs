//! Where the guest's screen is drawn: the [`Output`] trait, the placement of the guest's mode on
//! the screen (scaled to fit, centred), and the in-memory output the tests read back.

use crate::error::Result;
use crate::frame::{Frame, Rect};

/// A screen the presenter draws on.
pub trait Output {
    /// The screen's visible size in pixels, (width, height).
    fn size(&self) -> (u32, u32);
    /// Draws `damage` (guest pixels) of `frame` where `place` puts it. `full` after a mode
    /// change: the whole screen is redrawn, bars included.
    fn draw(&mut self, frame: &Frame, place: &Placement, damage: Rect, full: bool) -> Result<()>;
}

/// Where the guest's `guest_w` x `guest_h` mode lands on a `screen_w` x `screen_h` screen: scaled
/// by the same factor on both axes (up or down) so that it fills the screen's width or height,
/// and centred, with black bars on the other axis. Scaling is nearest-neighbour: every screen
/// pixel takes the guest pixel under its centre, so text stays sharp at whole factors and is
/// uneven (some rows doubled) at others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Placement {
    /// The guest's mode, pixels.
    pub guest: (u32, u32),
    /// The screen, pixels.
    pub screen: (u32, u32),
    /// The guest's picture on the screen, screen pixels.
    pub area: Rect,
}

impl Placement {
    /// Fits the guest's mode on the screen (see the type's documentation).
    pub fn fit(guest: (u32, u32), screen: (u32, u32)) -> Placement {
        let (gw, gh) = (u64::from(guest.0.max(1)), u64::from(guest.1.max(1)));
        let (sw, sh) = (u64::from(screen.0), u64::from(screen.1));
        // Compare sw/gw with sh/gh without floats: the smaller factor wins.
        let (w, h) = if sw * gh <= sh * gw { (sw, gh * sw / gw) } else { (gw * sh / gh, sh) };
        let area = Rect { x: ((sw - w) / 2) as u32, y: ((sh - h) / 2) as u32, width: w as u32, height: h as u32 };
        Placement { guest, screen, area }
    }

    /// The screen rectangle that shows guest rectangle `r` (rounded outwards).
    pub fn to_screen(&self, r: Rect) -> Rect {
        let (gw, gh) = (u64::from(self.guest.0.max(1)), u64::from(self.guest.1.max(1)));
        let (aw, ah) = (u64::from(self.area.width), u64::from(self.area.height));
        let x0 = u64::from(r.x) * aw / gw;
        let y0 = u64::from(r.y) * ah / gh;
        let x1 = (u64::from(r.x + r.width) * aw).div_ceil(gw).min(aw);
        let y1 = (u64::from(r.y + r.height) * ah).div_ceil(gh).min(ah);
        Rect {
            x: self.area.x + x0 as u32,
            y: self.area.y + y0 as u32,
            width: (x1.saturating_sub(x0)) as u32,
            height: (y1.saturating_sub(y0)) as u32,
        }
    }

    /// The guest pixel shown at screen pixel (`sx`, `sy`), or `None` on the bars.
    pub fn to_guest(&self, sx: u32, sy: u32) -> Option<(u32, u32)> {
        let a = self.area;
        if sx < a.x || sy < a.y || sx >= a.x + a.width || sy >= a.y + a.height {
            return None;
        }
        let gx = (u64::from(sx - a.x) * 2 + 1) * u64::from(self.guest.0) / (u64::from(a.width) * 2);
        let gy = (u64::from(sy - a.y) * 2 + 1) * u64::from(self.guest.1) / (u64::from(a.height) * 2);
        Some((gx as u32, gy as u32))
    }

    /// The guest pixel nearest to screen pixel (`sx`, `sy`), clamped into the guest's mode: where
    /// an absolute pointer on the bars lands.
    pub fn to_guest_clamped(&self, sx: u32, sy: u32) -> (u32, u32) {
        let a = self.area;
        let sx = sx.clamp(a.x, (a.x + a.width).saturating_sub(1).max(a.x));
        let sy = sy.clamp(a.y, (a.y + a.height).saturating_sub(1).max(a.y));
        self.to_guest(sx, sy).unwrap_or((0, 0))
    }
}

/// Draws `damage` of `frame` into a screen of `0x00RRGGBB` pixels (`stride_px` a row), via `put`
/// which stores one pixel; shared by every output so that all scale the same way.
pub fn draw_scaled(frame: &Frame, place: &Placement, damage: Rect, full: bool, mut put: impl FnMut(u32, u32, u32)) {
    let target =
        if full { Rect { x: 0, y: 0, width: place.screen.0, height: place.screen.1 } } else { place.to_screen(damage) };
    for sy in target.y..target.y + target.height {
        for sx in target.x..target.x + target.width {
            let px = place.to_guest(sx, sy).and_then(|(gx, gy)| frame.pixel(gx, gy)).unwrap_or(0);
            put(sx, sy, px);
        }
    }
}

/// An output in memory, for tests and benchmarks: `width` x `height` pixels, `0x00RRGGBB`.
#[derive(Debug, Clone)]
pub struct MemoryOutput {
    /// The screen as drawn.
    pub screen: Frame,
    /// How many times [`Output::draw`] ran.
    pub draws: u64,
}

impl MemoryOutput {
    /// A black screen of `width` x `height` pixels.
    pub fn new(width: u32, height: u32) -> MemoryOutput {
        MemoryOutput {
            screen: Frame { width, height, pixels: vec![0; (width as usize) * (height as usize)] },
            draws: 0,
        }
    }
}

impl Output for MemoryOutput {
    fn size(&self) -> (u32, u32) {
        (self.screen.width, self.screen.height)
    }

    fn draw(&mut self, frame: &Frame, place: &Placement, damage: Rect, full: bool) -> Result<()> {
        let w = self.screen.width as usize;
        let pixels = &mut self.screen.pixels;
        draw_scaled(frame, place, damage, full, |x, y, px| {
            if let Some(p) = pixels.get_mut(y as usize * w + x as usize) {
                *p = px;
            }
        });
        self.draws += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_scales_up_and_centres_with_bars() {
        // 720x400 (VGA text) on 1920x1080: limited by width, factor 2.666..., bars top and bottom.
        let p = Placement::fit((720, 400), (1920, 1080));
        assert_eq!(p.area, Rect { x: 0, y: 7, width: 1920, height: 1066 });
        // 640x480 on 1920x1080: limited by height, factor 2.25, bars left and right.
        let p = Placement::fit((640, 480), (1920, 1080));
        assert_eq!(p.area, Rect { x: 240, y: 0, width: 1440, height: 1080 });
        // Same mode: 1:1, no bars.
        let p = Placement::fit((1024, 768), (1024, 768));
        assert_eq!(p.area, Rect { x: 0, y: 0, width: 1024, height: 768 });
        assert_eq!(p.to_guest(5, 7), Some((5, 7)));
    }

    #[test]
    fn to_guest_and_to_screen_agree() {
        let p = Placement::fit((640, 480), (1920, 1080));
        assert_eq!(p.to_guest(239, 0), None);
        assert_eq!(p.to_guest(240, 0), Some((0, 0)));
        assert_eq!(p.to_guest(240 + 1439, 1079), Some((639, 479)));
        assert_eq!(p.to_guest_clamped(0, 0), (0, 0));
        assert_eq!(p.to_guest_clamped(1919, 1079), (639, 479));
        let r = p.to_screen(Rect { x: 10, y: 10, width: 1, height: 1 });
        for sy in r.y..r.y + r.height {
            for sx in r.x..r.x + r.width {
                assert_eq!(p.to_guest(sx, sy), Some((10, 10)));
            }
        }
    }

    #[test]
    fn memory_output_draws_scaled_pixels_and_black_bars() {
        let frame = Frame { width: 2, height: 1, pixels: vec![0xff0000, 0x0000ff] };
        let mut out = MemoryOutput::new(6, 5);
        out.screen.pixels.fill(0x123456);
        let place = Placement::fit((2, 1), out.size());
        out.draw(&frame, &place, Rect { x: 0, y: 0, width: 2, height: 1 }, true).unwrap();
        let row = |out: &MemoryOutput, y: usize| out.screen.pixels[y * 6..y * 6 + 6].to_vec();
        assert_eq!(row(&out, 0), vec![0; 6], "bar above");
        assert_eq!(row(&out, 1), vec![0xff0000, 0xff0000, 0xff0000, 0xff, 0xff, 0xff]);
        assert_eq!(row(&out, 3), row(&out, 1));
        assert_eq!(row(&out, 4), vec![0; 6], "bar below");
        // A damaged guest pixel redraws only its screen pixels.
        let frame = Frame { width: 2, height: 1, pixels: vec![0xff0000, 0x00ff00] };
        out.screen.pixels[0] = 0x777777;
        out.draw(&frame, &place, Rect { x: 1, y: 0, width: 1, height: 1 }, false).unwrap();
        assert_eq!(row(&out, 2), vec![0xff0000, 0xff0000, 0xff0000, 0xff00, 0xff00, 0xff00]);
        assert_eq!(out.screen.pixels[0], 0x777777);
    }
}
