//! The presenter's copy of the guest's screen, kept up to date from `Scanout` and `Update`.

use crate::error::{Error, Result};

/// pixman's `PIXMAN_x8r8g8b8`: 32 bits, bytes B, G, R, unused in memory (little endian).
pub const PIXMAN_X8R8G8B8: u32 = 0x2002_0888;
/// pixman's `PIXMAN_a8r8g8b8`: as x8r8g8b8, the top byte is alpha (ignored: the screen is opaque).
pub const PIXMAN_A8R8G8B8: u32 = 0x2002_8888;
/// pixman's `PIXMAN_r5g6b5`: 16 bits (QEMU's VGA in 16-bit modes).
pub const PIXMAN_R5G6B5: u32 = 0x1002_0565;

/// A rectangle in pixels; `x`, `y` is the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    /// Left edge, pixels.
    pub x: u32,
    /// Top edge, pixels.
    pub y: u32,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
}

/// The guest's screen: `width` x `height` pixels, each `0x00RRGGBB`, row after row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` pixels, `0x00RRGGBB`.
    pub pixels: Vec<u32>,
}

impl Frame {
    /// The pixel at (`x`, `y`) as `0x00RRGGBB`, or `None` outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> Option<u32> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.pixels.get((y as usize) * (self.width as usize) + x as usize).copied()
    }

    /// A new mode: the whole screen from a `Scanout` (`stride` bytes per row of `data`).
    pub fn scanout(&mut self, width: u32, height: u32, stride: u32, format: u32, data: &[u8]) -> Result<Rect> {
        let mut pixels = vec![0; (width as usize) * (height as usize)];
        copy_rect(&mut pixels, width, 0, 0, width, height, stride, format, data, "Scanout")?;
        self.width = width;
        self.height = height;
        self.pixels = pixels;
        Ok(Rect { x: 0, y: 0, width, height })
    }

    /// Makes room for an update that does not fit: QEMU 7.2 announces no new mode (its
    /// `dbus_gfx_switch` only records the surface, and a `Scanout` goes out only for an update
    /// of the whole surface, which VGA text mode never sends: it redraws row by row). An update
    /// wider than the frame starts a new mode of its width, grown downwards as the rows come;
    /// one lower than the frame grows the frame. Returns `true` when the size changed.
    pub fn fit_update(&mut self, x: i32, y: i32, width: i32, height: i32) -> bool {
        let right = u32::try_from(i64::from(x) + i64::from(width)).unwrap_or(0);
        let bottom = u32::try_from(i64::from(y) + i64::from(height)).unwrap_or(0);
        if right > self.width {
            *self = Frame { width: right, height: bottom, pixels: vec![0; right as usize * bottom as usize] };
            return true;
        }
        if bottom > self.height {
            self.pixels.resize(self.width as usize * bottom as usize, 0);
            self.height = bottom;
            return true;
        }
        false
    }

    /// A changed rectangle from an `Update`; `data` holds only the rectangle, `stride` bytes a row.
    /// Returns the rectangle, clipped to the frame (an update may race a mode change).
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        x: i32,
        y: i32,
        width: i32,
        height: i32,
        stride: u32,
        format: u32,
        data: &[u8],
    ) -> Result<Rect> {
        let bad = |detail: String| Error::BadFrame { what: "Update", detail };
        let (x, y) = (
            u32::try_from(x).map_err(|_| bad(format!("x {x}")))?,
            u32::try_from(y).map_err(|_| bad(format!("y {y}")))?,
        );
        let (w, h) = (
            u32::try_from(width).map_err(|_| bad(format!("width {width}")))?,
            u32::try_from(height).map_err(|_| bad(format!("height {height}")))?,
        );
        // Clip rather than refuse: after a resize QEMU may still send one update of the old mode.
        let w = w.min(self.width.saturating_sub(x));
        let h = h.min(self.height.saturating_sub(y));
        if w == 0 || h == 0 {
            return Ok(Rect { x, y, width: 0, height: 0 });
        }
        copy_rect(&mut self.pixels, self.width, x, y, w, h, stride, format, data, "Update")?;
        Ok(Rect { x, y, width: w, height: h })
    }
}

/// Copies a `w` x `h` rectangle of `data` (`stride` bytes a row, pixman `format`) into `dst`
/// (`dst_width` pixels a row) at (`x`, `y`). The caller has clipped the rectangle to `dst`.
#[allow(clippy::too_many_arguments)]
fn copy_rect(
    dst: &mut [u32],
    dst_width: u32,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    stride: u32,
    format: u32,
    data: &[u8],
    what: &'static str,
) -> Result<()> {
    let bpp: usize = match format {
        PIXMAN_X8R8G8B8 | PIXMAN_A8R8G8B8 => 4,
        PIXMAN_R5G6B5 => 2,
        other => return Err(Error::PixelFormat(other)),
    };
    let (w, h, stride) = (w as usize, h as usize, stride as usize);
    if h == 0 || w == 0 {
        return Ok(());
    }
    if stride < w * bpp || data.len() < stride * (h - 1) + w * bpp {
        return Err(Error::BadFrame {
            what,
            detail: format!("{w}x{h} pixels, stride {stride}, but {} bytes of data", data.len()),
        });
    }
    for row in 0..h {
        let src = &data[row * stride..row * stride + w * bpp];
        let start = (y as usize + row) * dst_width as usize + x as usize;
        let Some(line) = dst.get_mut(start..start + w) else {
            return Err(Error::BadFrame { what, detail: format!("row {} is outside the frame", y as usize + row) });
        };
        if bpp == 4 {
            for (d, s) in line.iter_mut().zip(src.chunks_exact(4)) {
                *d = u32::from_le_bytes([s[0], s[1], s[2], 0]);
            }
        } else {
            for (d, s) in line.iter_mut().zip(src.chunks_exact(2)) {
                let v = u32::from(u16::from_le_bytes([s[0], s[1]]));
                let (r, g, b) = ((v >> 11) & 0x1f, (v >> 5) & 0x3f, v & 0x1f);
                *d = ((r << 3 | r >> 2) << 16) | ((g << 2 | g >> 4) << 8) | (b << 3 | b >> 2);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanout_then_update_keeps_the_rest() {
        let mut f = Frame::default();
        // 2x2, stride 12 (4 bytes of padding per row): red, green / blue, white.
        let data = [0, 0, 255, 0, 0, 255, 0, 0, 9, 9, 9, 9, 255, 0, 0, 0, 255, 255, 255, 0, 9, 9, 9, 9];
        assert_eq!(f.scanout(2, 2, 12, PIXMAN_X8R8G8B8, &data).unwrap(), Rect { x: 0, y: 0, width: 2, height: 2 });
        assert_eq!(f.pixels, vec![0xff0000, 0x00ff00, 0x0000ff, 0xffffff]);
        let r = f.update(1, 1, 1, 1, 4, PIXMAN_A8R8G8B8, &[1, 2, 3, 0xff]).unwrap();
        assert_eq!(r, Rect { x: 1, y: 1, width: 1, height: 1 });
        assert_eq!(f.pixels, vec![0xff0000, 0x00ff00, 0x0000ff, 0x030201]);
    }

    #[test]
    fn an_update_beyond_the_frame_starts_or_grows_a_mode() {
        let mut f = Frame::default();
        f.scanout(4, 4, 16, PIXMAN_X8R8G8B8, &[1; 64]).unwrap();
        assert!(!f.fit_update(0, 0, 4, 4));
        // Wider: a new mode (text mode after 640x480), first row only, blank.
        assert!(f.fit_update(0, 0, 6, 2));
        assert_eq!((f.width, f.height, f.pixels.len()), (6, 2, 12));
        assert!(f.pixels.iter().all(|&p| p == 0));
        // The next row grows it and keeps what was drawn.
        f.update(0, 0, 1, 1, 4, PIXMAN_X8R8G8B8, &[9, 9, 9, 0]).unwrap();
        assert!(f.fit_update(0, 2, 6, 2));
        assert_eq!((f.width, f.height, f.pixel(0, 0)), (6, 4, Some(0x090909)));
        assert!(!f.fit_update(-5, 0, 3, 1));
    }

    #[test]
    fn r5g6b5_is_widened_to_full_range() {
        let mut f = Frame::default();
        f.scanout(2, 1, 4, PIXMAN_R5G6B5, &[0xff, 0xff, 0x00, 0xf8]).unwrap();
        assert_eq!(f.pixels, vec![0xffffff, 0xff0000]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut f = Frame::default();
        assert!(matches!(f.scanout(2, 2, 8, 0x1234, &[0; 16]), Err(Error::PixelFormat(0x1234))));
        assert!(matches!(f.scanout(2, 2, 8, PIXMAN_X8R8G8B8, &[0; 15]), Err(Error::BadFrame { .. })));
        assert!(matches!(f.scanout(2, 2, 4, PIXMAN_X8R8G8B8, &[0; 16]), Err(Error::BadFrame { .. })));
        f.scanout(2, 2, 8, PIXMAN_X8R8G8B8, &[0; 16]).unwrap();
        assert!(matches!(f.update(-1, 0, 1, 1, 4, PIXMAN_X8R8G8B8, &[0; 4]), Err(Error::BadFrame { .. })));
        // An update of an older, larger mode is clipped, not refused.
        assert_eq!(
            f.update(1, 1, 4, 4, 16, PIXMAN_X8R8G8B8, &[7; 64]).unwrap(),
            Rect { x: 1, y: 1, width: 1, height: 1 }
        );
        assert_eq!(f.pixel(1, 1), Some(0x070707));
        assert_eq!(f.pixel(2, 1), None);
    }
}
