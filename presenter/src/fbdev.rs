//! The Linux framebuffer device (`/dev/fb0`): efifb under UEFI, vesafb under BIOS, or a KMS
//! driver's emulated fbdev. Its geometry comes from `FBIOGET_VSCREENINFO` and
//! `FBIOGET_FSCREENINFO`; its memory is mapped and written directly.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::error::{Error, Result};
use crate::frame::{Frame, Rect};
use crate::output::{draw_scaled, Output, Placement};

/// One colour channel of `struct fb_bitfield` (linux/fb.h).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbBitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

/// `struct fb_var_screeninfo` (linux/fb.h).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbVarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: FbBitfield,
    green: FbBitfield,
    blue: FbBitfield,
    transp: FbBitfield,
    nonstd: u32,
    activate: u32,
    height: u32,
    width: u32,
    accel_flags: u32,
    pixclock: u32,
    left_margin: u32,
    right_margin: u32,
    upper_margin: u32,
    lower_margin: u32,
    hsync_len: u32,
    vsync_len: u32,
    sync: u32,
    vmode: u32,
    rotate: u32,
    colorspace: u32,
    reserved: [u32; 4],
}

/// `struct fb_fix_screeninfo` (linux/fb.h).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbFixScreeninfo {
    id: [u8; 16],
    smem_start: libc::c_ulong,
    smem_len: u32,
    type_: u32,
    type_aux: u32,
    visual: u32,
    xpanstep: u16,
    ypanstep: u16,
    ywrapstep: u16,
    line_length: u32,
    mmio_start: libc::c_ulong,
    mmio_len: u32,
    accel: u32,
    capabilities: u16,
    reserved: [u16; 2],
}

nix::ioctl_read_bad!(fbioget_vscreeninfo, 0x4600, FbVarScreeninfo);
nix::ioctl_read_bad!(fbioget_fscreeninfo, 0x4602, FbFixScreeninfo);

/// `/dev/fb0` and its mapped memory. Only packed true-colour modes of 32, 24 or 16 bits per
/// pixel are drawn (what efifb, vesafb and the DRM fbdev emulation give on a PC; OVMF gives
/// 24 on a Cirrus VGA).
#[derive(Debug)]
pub struct FbdevOutput {
    path: PathBuf,
    _file: File,
    map: MmapMut,
    var: FbVarScreeninfo,
    line_length: usize,
}

impl FbdevOutput {
    /// Opens and maps `path` (such as `/dev/fb0`).
    ///
    /// # Errors
    /// [`Error::Fbdev`] when the device is missing, is not a framebuffer, or has a pixel layout
    /// other than packed 16 or 32 bits per pixel.
    pub fn open(path: &Path) -> Result<FbdevOutput> {
        let err = |message: String| Error::Fbdev { path: path.to_path_buf(), message };
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| {
            err(format!("{e} (no framebuffer: the kernel has no efifb, vesafb or KMS driver for this GPU)"))
        })?;
        let mut var = FbVarScreeninfo::default();
        let mut fix = FbFixScreeninfo::default();
        // SAFETY: the fd is open for the whole call and `var` is a `fb_var_screeninfo` laid out
        // as linux/fb.h declares it, which the kernel fills.
        unsafe { fbioget_vscreeninfo(file.as_raw_fd(), &mut var) }
            .map_err(|e| err(format!("FBIOGET_VSCREENINFO: {e}")))?;
        // SAFETY: as above, for `fb_fix_screeninfo`.
        unsafe { fbioget_fscreeninfo(file.as_raw_fd(), &mut fix) }
            .map_err(|e| err(format!("FBIOGET_FSCREENINFO: {e}")))?;
        if !matches!(var.bits_per_pixel, 16 | 24 | 32) {
            return Err(err(format!("{} bits per pixel; the presenter draws 16, 24 or 32", var.bits_per_pixel)));
        }
        let line_length = fix.line_length as usize;
        let needed = line_length * (var.yoffset + var.yres) as usize;
        if line_length < var.xres as usize * (var.bits_per_pixel as usize / 8) || (fix.smem_len as usize) < needed {
            return Err(err(format!(
                "line length {} and memory {} bytes do not hold {}x{} at {} bpp",
                fix.line_length, fix.smem_len, var.xres, var.yres, var.bits_per_pixel
            )));
        }
        // The length is given: a device node's size (what memmap2 maps by default) is 0.
        // SAFETY: the mapping is of device memory that only this process writes while the
        // presenter runs (the console is in KD_GRAPHICS mode); nothing truncates a device.
        let map = unsafe { memmap2::MmapOptions::new().len(needed).map_mut(&file) }
            .map_err(|e| err(format!("mmap of {needed} bytes: {e}")))?;
        if map.len() < needed {
            return Err(err(format!("mapped {} bytes, need {needed}", map.len())));
        }
        Ok(FbdevOutput { path: path.to_path_buf(), _file: file, map, var, line_length })
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bits per pixel of the device's mode (16, 24 or 32).
    pub fn bits_per_pixel(&self) -> u32 {
        self.var.bits_per_pixel
    }
}

/// Packs `0x00RRGGBB` into the device's channel layout.
fn pack(px: u32, var: &FbVarScreeninfo) -> u32 {
    let chan = |v: u32, f: &FbBitfield| -> u32 {
        if f.length == 0 || f.length > 8 {
            return 0;
        }
        (v >> (8 - f.length)) << f.offset
    };
    chan((px >> 16) & 0xff, &var.red) | chan((px >> 8) & 0xff, &var.green) | chan(px & 0xff, &var.blue)
}

impl Output for FbdevOutput {
    fn size(&self) -> (u32, u32) {
        (self.var.xres, self.var.yres)
    }

    fn draw(&mut self, frame: &Frame, place: &Placement, damage: Rect, full: bool) -> Result<()> {
        let var = self.var;
        let (line, bytes) = (self.line_length, var.bits_per_pixel as usize / 8);
        let (xoff, yoff) = (var.xoffset as usize, var.yoffset as usize);
        let map = &mut self.map[..];
        draw_scaled(frame, place, damage, full, |x, y, px| {
            let at = (yoff + y as usize) * line + (xoff + x as usize) * bytes;
            let v = pack(px, &var);
            if let Some(dst) = map.get_mut(at..at + bytes) {
                dst.copy_from_slice(&v.to_le_bytes()[..bytes]);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_follows_the_channel_layout() {
        let mut var = FbVarScreeninfo::default();
        (var.red, var.green, var.blue) = (
            FbBitfield { offset: 16, length: 8, msb_right: 0 },
            FbBitfield { offset: 8, length: 8, msb_right: 0 },
            FbBitfield { offset: 0, length: 8, msb_right: 0 },
        );
        assert_eq!(pack(0x123456, &var), 0x123456);
        (var.red, var.green, var.blue) = (
            FbBitfield { offset: 11, length: 5, msb_right: 0 },
            FbBitfield { offset: 5, length: 6, msb_right: 0 },
            FbBitfield { offset: 0, length: 5, msb_right: 0 },
        );
        assert_eq!(pack(0xffffff, &var), 0xffff);
        assert_eq!(pack(0xff0000, &var), 0xf800);
    }

    /// An output over anonymous memory laid out as efifb lays out `bpp` (8 bits a channel,
    /// or 5-6-5 at 16), `width` x 2 pixels with 8 bytes of padding after each line.
    fn memory_fb(bpp: u32, width: u32) -> FbdevOutput {
        let line_length = (width * bpp / 8 + 8) as usize;
        let mut var = FbVarScreeninfo { xres: width, yres: 2, bits_per_pixel: bpp, ..Default::default() };
        let field = |offset, length| FbBitfield { offset, length, msb_right: 0 };
        (var.red, var.green, var.blue) =
            if bpp == 16 { (field(11, 5), field(5, 6), field(0, 5)) } else { (field(16, 8), field(8, 8), field(0, 8)) };
        FbdevOutput {
            path: PathBuf::from("memory"),
            _file: File::open("/dev/null").unwrap(),
            map: MmapMut::map_anon(line_length * 2).unwrap(),
            var,
            line_length,
        }
    }

    #[test]
    fn each_depth_is_drawn_in_its_own_byte_layout() {
        let frame = Frame { width: 2, height: 2, pixels: vec![0xff0000, 0x00ff00, 0x0000ff, 0xffffff] };
        let place = Placement::fit((2, 2), (2, 2));
        let all = Rect { x: 0, y: 0, width: 2, height: 2 };
        for (bpp, row0, row1) in [
            (32, vec![0, 0, 0xff, 0, 0, 0xff, 0, 0], vec![0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0]),
            (24, vec![0, 0, 0xff, 0, 0xff, 0], vec![0xff, 0, 0, 0xff, 0xff, 0xff]),
            (16, vec![0x00, 0xf8, 0xe0, 0x07], vec![0x1f, 0x00, 0xff, 0xff]),
        ] {
            let mut fb = memory_fb(bpp, 2);
            fb.draw(&frame, &place, all, true).unwrap();
            let line = fb.line_length;
            assert_eq!(&fb.map[..row0.len()], &row0[..], "{bpp} bpp, first line");
            assert_eq!(&fb.map[line..line + row1.len()], &row1[..], "{bpp} bpp, second line");
            assert!(fb.map[row0.len()..line].iter().all(|&b| b == 0), "{bpp} bpp: the padding is left alone");
        }
    }

    #[test]
    fn a_missing_device_says_why() {
        let e = FbdevOutput::open(Path::new("/nonexistent/fb9")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/fb9") && e.contains("no framebuffer"), "{e}");
    }
}
