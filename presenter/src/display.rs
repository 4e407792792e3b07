//! The D-Bus side: QEMU's `org.qemu.Display1` interfaces over a peer-to-peer connection, the
//! listener object QEMU calls with the console's scanout, and the [`Session`] that joins them to
//! an [`Output`].
//!
//! QEMU 7.2's interfaces, as its `ui/dbus-display1.xml` declares them (checked against a live
//! QEMU's `Introspect`): the console at `/org/qemu/Display1/Console_0` with
//! `RegisterListener(h)`, `Keyboard` `Press(u)`/`Release(u)` taking QEMU "qnum" key numbers,
//! `Mouse` `SetAbsPosition(u, u)`/`Press(u)`/`Release(u)`; and the `Listener` a client serves,
//! which QEMU calls with `Scanout`, `Update`, `ScanoutDMABUF`, `UpdateDMABUF`, `Disable`,
//! `MouseSet` and `CursorDefine`. QEMU is the D-Bus server on both sockets (it authenticates us).

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use zbus::blocking::connection::Builder;
use zbus::blocking::Connection;
use zbus::zvariant::Fd;

use crate::error::{Error, Result};
use crate::frame::{Frame, Rect};
use crate::input::Input;
use crate::output::{Output, Placement};
use crate::qmp::Qmp;

/// The object path QEMU calls on the listener connection.
const LISTENER_PATH: &str = "/org/qemu/Display1/Listener";
/// The first console (the VGA or virtio-gpu head the guest boots on).
pub(crate) const CONSOLE_PATH: &str = "/org/qemu/Display1/Console_0";

#[zbus::proxy(interface = "org.qemu.Display1.Console", gen_async = false, gen_blocking = true)]
trait Console {
    fn register_listener(&self, listener: Fd<'_>) -> zbus::Result<()>;
}

/// What the listener hears from QEMU, in order.
#[derive(Debug)]
pub enum Event {
    /// A new mode and its whole picture (`Scanout`).
    Scanout {
        /// Pixels.
        width: u32,
        /// Pixels.
        height: u32,
        /// Bytes a row of `data`.
        stride: u32,
        /// pixman format code.
        format: u32,
        /// The pixels.
        data: Vec<u8>,
    },
    /// A changed rectangle (`Update`).
    Update {
        /// Left, pixels.
        x: i32,
        /// Top, pixels.
        y: i32,
        /// Pixels.
        width: i32,
        /// Pixels.
        height: i32,
        /// Bytes a row of `data`.
        stride: u32,
        /// pixman format code.
        format: u32,
        /// The rectangle's pixels only.
        data: Vec<u8>,
    },
    /// The console has no picture (the guest turned the display off, or QEMU is leaving).
    Disable,
    /// The user pressed the leave-the-guest chord.
    Leave,
    /// The display connection closed: QEMU exited.
    Closed,
}

/// The `org.qemu.Display1.Listener` object served to QEMU; it only forwards to the session's
/// channel, so QEMU's calls return at once and drawing happens on the session's thread.
struct Listener {
    events: Sender<Event>,
}

impl Listener {
    fn send(&self, event: Event) -> zbus::fdo::Result<()> {
        self.events.send(event).map_err(|_| zbus::fdo::Error::Failed("the presenter is stopping".into()))
    }
}

#[zbus::interface(name = "org.qemu.Display1.Listener")]
impl Listener {
    fn scanout(
        &self,
        width: u32,
        height: u32,
        stride: u32,
        pixman_format: u32,
        data: Vec<u8>,
    ) -> zbus::fdo::Result<()> {
        self.send(Event::Scanout { width, height, stride, format: pixman_format, data })
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        x: i32,
        y: i32,
        width: i32,
        height: i32,
        stride: u32,
        pixman_format: u32,
        data: Vec<u8>,
    ) -> zbus::fdo::Result<()> {
        self.send(Event::Update { x, y, width, height, stride, format: pixman_format, data })
    }

    /// Refused: the presenter runs QEMU with `gl=off`, so a DMA-BUF here means a misconfigured
    /// QEMU; refusing makes QEMU log it rather than the screen silently staying black.
    #[zbus(name = "ScanoutDMABUF")]
    #[allow(clippy::too_many_arguments)]
    fn scanout_dmabuf(
        &self,
        _dmabuf: Fd<'_>,
        _width: u32,
        _height: u32,
        _stride: u32,
        _fourcc: u32,
        _modifier: u64,
        _y0_top: bool,
    ) -> zbus::fdo::Result<()> {
        Err(zbus::fdo::Error::NotSupported(
            "the presenter takes no DMA-BUF scanout; run QEMU with -display dbus,gl=off".into(),
        ))
    }

    #[zbus(name = "UpdateDMABUF")]
    fn update_dmabuf(&self, _x: i32, _y: i32, _width: i32, _height: i32) -> zbus::fdo::Result<()> {
        Err(zbus::fdo::Error::NotSupported(
            "the presenter takes no DMA-BUF scanout; run QEMU with -display dbus,gl=off".into(),
        ))
    }

    fn disable(&self) -> zbus::fdo::Result<()> {
        self.send(Event::Disable)
    }

    /// The guest's cursor is drawn by the guest into the framebuffer with a USB tablet and
    /// VGA, so a separate cursor sprite is not drawn (a later piece, for virtio-gpu's cursor).
    fn mouse_set(&self, _x: i32, _y: i32, _on: i32) {}

    fn cursor_define(&self, _width: i32, _height: i32, _hot_x: i32, _hot_y: i32, _data: Vec<u8>) {}
}

/// Registers a new listener on `console` whose calls go to `events`; returns its connection
/// (dropping it unregisters: QEMU sees the socket close).
fn register(console: &ConsoleProxy<'static>, events: Sender<Event>) -> Result<Connection> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|source| Error::Io { what: "socketpair for the listener".into(), source })?;
    // QEMU authenticates the listener socket inside RegisterListener, so our side of that
    // handshake must already be running when the call goes out.
    let listener = Listener { events };
    let serving = std::thread::Builder::new()
        .name("presenter-listener".into())
        .spawn(move || Builder::unix_stream(ours).p2p().serve_at(LISTENER_PATH, listener)?.build())
        .map_err(|source| Error::Io { what: "thread for the listener".into(), source })?;
    console.register_listener(Fd::from(theirs.as_fd()))?;
    drop(theirs);
    serving
        .join()
        .map_err(|_| Error::Io { what: "listener thread".into(), source: std::io::Error::other("panicked") })?
        .map_err(Error::from)
}

/// What [`Session::pump`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// The picture changed and was drawn; the guest rectangle that changed.
    Drew(Rect),
    /// A message that changed nothing visible (an update of an empty rectangle, or one that
    /// was refused and logged).
    Nothing,
    /// No event within the timeout.
    Timeout,
    /// The console was disabled; the screen was cleared.
    Disabled,
    /// The user pressed the leave-the-guest chord.
    Leave,
    /// QEMU has gone.
    Closed,
}

/// A connected presenter: the display connection, the listener, the guest's frame and where it
/// is placed on the output.
pub struct Session {
    _display: Connection,
    _console: ConsoleProxy<'static>,
    _listener: Connection,
    events: Receiver<Event>,
    sender: Sender<Event>,
    frame: Frame,
    placement: Arc<Mutex<Placement>>,
    input: Arc<Input>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("frame", &(self.frame.width, self.frame.height)).finish_non_exhaustive()
    }
}

impl Session {
    /// Connects to the QEMU whose QMP socket is `qmp_path` (started with
    /// `-display dbus,p2p=yes,gl=off`) and registers a listener on its first console.
    ///
    /// # Errors
    /// [`Error::QmpIo`]/[`Error::Qmp`] when QMP refuses (QEMU without `-display dbus,p2p=yes`
    /// says "protocol '@dbus-display' is invalid"), [`Error::Dbus`] when the D-Bus handshake or
    /// a call fails.
    pub fn connect(qmp_path: &Path) -> Result<Session> {
        let mut qmp = Qmp::connect(qmp_path)?;
        Session::connect_with(&mut qmp)
    }

    /// As [`Session::connect`], on a QMP connection the caller keeps (to learn when QEMU exits).
    ///
    /// # Errors
    /// As [`Session::connect`].
    pub fn connect_with(qmp: &mut Qmp) -> Result<Session> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        let (ours, theirs) = UnixStream::pair().map_err(io("socketpair for the display"))?;
        qmp.getfd(theirs.as_fd(), "circular-presenter")?;
        qmp.execute("add_client", serde_json::json!({ "protocol": "@dbus-display", "fdname": "circular-presenter" }))?;
        drop(theirs);
        let display = Builder::unix_stream(ours).p2p().build()?;

        let (sender, events) = channel();
        let console = ConsoleProxy::builder(&display)
            .destination("org.qemu")?
            .path(CONSOLE_PATH)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()?;
        let listener = register(&console, sender.clone())?;
        let placement = Arc::new(Mutex::new(Placement::default()));
        let input = Arc::new(Input::new(&display, placement.clone(), sender.clone())?);
        Ok(Session {
            _display: display,
            _console: console,
            _listener: listener,
            events,
            sender,
            frame: Frame::default(),
            placement,
            input,
        })
    }

    /// The guest's screen as last received.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// Where the guest's mode sits on the output (set at each mode change).
    pub fn placement(&self) -> Placement {
        *self.placement.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keyboard and pointer path into the guest (the evdev readers share it).
    pub fn input(&self) -> &Arc<Input> {
        &self.input
    }

    /// A channel on which another thread (an evdev reader, QEMU's exit watcher) can stop the
    /// session with [`Event::Leave`] or [`Event::Closed`].
    pub fn sender(&self) -> Sender<Event> {
        self.sender.clone()
    }

    /// Waits for one event (at most `timeout`; `None` waits for ever, without polling) and
    /// applies it: frame updated, then drawn on `output`.
    ///
    /// # Errors
    /// Only `output`'s errors; a malformed frame from QEMU is logged and skipped.
    pub fn pump(&mut self, output: &mut dyn Output, timeout: Option<Duration>) -> Result<Pumped> {
        let event = match timeout {
            None => self.events.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(t) => self.events.recv_timeout(t),
        };
        let event = match event {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => return Ok(Pumped::Timeout),
            Err(RecvTimeoutError::Disconnected) => return Ok(Pumped::Closed),
        };
        match event {
            Event::Scanout { width, height, stride, format, data } => {
                match self.frame.scanout(width, height, stride, format, &data) {
                    Ok(r) => {
                        let place = Placement::fit((width, height), output.size());
                        *self.placement.lock().unwrap_or_else(PoisonError::into_inner) = place;
                        output.draw(&self.frame, &place, r, true)?;
                        Ok(Pumped::Drew(r))
                    }
                    Err(e) => {
                        log::warn!("{e}");
                        Ok(Pumped::Nothing)
                    }
                }
            }
            Event::Update { x, y, width, height, stride, format, data } => {
                if self.frame.fit_update(x, y, width, height) {
                    // A mode QEMU did not announce (see `Frame::fit_update`): place it anew.
                    let place = Placement::fit((self.frame.width, self.frame.height), output.size());
                    *self.placement.lock().unwrap_or_else(PoisonError::into_inner) = place;
                    if let Err(e) = self.frame.update(x, y, width, height, stride, format, &data) {
                        log::warn!("{e}");
                    }
                    output.draw(&self.frame, &place, Rect::default(), true)?;
                    return Ok(Pumped::Drew(Rect { x: 0, y: 0, width: self.frame.width, height: self.frame.height }));
                }
                match self.frame.update(x, y, width, height, stride, format, &data) {
                    Ok(r) if r.width > 0 && r.height > 0 => {
                        output.draw(&self.frame, &self.placement(), r, false)?;
                        Ok(Pumped::Drew(r))
                    }
                    Ok(_) => Ok(Pumped::Nothing),
                    Err(e) => {
                        log::warn!("{e}");
                        Ok(Pumped::Nothing)
                    }
                }
            }
            Event::Disable => {
                self.frame = Frame::default();
                let place = Placement::fit((1, 1), output.size());
                output.draw(&self.frame, &Placement { area: Rect::default(), ..place }, Rect::default(), true)?;
                Ok(Pumped::Disabled)
            }
            Event::Leave => Ok(Pumped::Leave),
            Event::Closed => Ok(Pumped::Closed),
        }
    }
}
