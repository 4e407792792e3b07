//! How many full-screen frames per second the presenter's drawing path takes on one core: a
//! whole-screen `Update` copied into the frame, then drawn scaled into a 1920x1080 screen in
//! memory (`MemoryOutput`; `/dev/fb0` adds one channel packing per pixel). QEMU's D-Bus
//! transfer of the update is not counted. `bench/presenter.sh` runs it.
//!
//! Prints one line per case: `presenter draw: 1920x1080 guest on 1920x1080: N frames/s (M ms a frame)`.

use std::time::{Duration, Instant};

use presenter::frame::PIXMAN_X8R8G8B8;
use presenter::{Frame, MemoryOutput, Output, Placement, Rect};

fn rate(guest: (u32, u32), screen: (u32, u32)) -> presenter::Result<()> {
    let (w, h) = guest;
    let stride = w * 4;
    // Two pictures that differ in every pixel, so that each frame is a full change.
    let pictures: Vec<Vec<u8>> =
        [0x00_20_40_80u32, 0x00_80_40_20].iter().map(|px| px.to_le_bytes().repeat((w * h) as usize)).collect();
    let mut frame = Frame { width: 0, height: 0, pixels: Vec::new() };
    frame.scanout(w, h, stride, PIXMAN_X8R8G8B8, &pictures[0])?;
    let place = Placement::fit(guest, screen);
    let mut out = MemoryOutput::new(screen.0, screen.1);
    let (mut frames, start) = (0u32, Instant::now());
    while start.elapsed() < Duration::from_secs(5) || frames < 10 {
        let data = &pictures[frames as usize % 2];
        let damage: Rect = frame.update(0, 0, w as i32, h as i32, stride, PIXMAN_X8R8G8B8, data)?;
        out.draw(&frame, &place, damage, false)?;
        frames += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "presenter draw: {w}x{h} guest on {}x{}: {:.1} frames/s ({:.1} ms a frame)",
        screen.0,
        screen.1,
        f64::from(frames) / seconds,
        seconds * 1000.0 / f64::from(frames)
    );
    Ok(())
}

fn main() -> presenter::Result<()> {
    rate((1920, 1080), (1920, 1080))?;
    // A guest in a common mode of its own, scaled up to the screen.
    rate((1024, 768), (1920, 1080))
}
