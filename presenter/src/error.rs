//! The presenter's one error type.

use std::path::PathBuf;

/// Everything that can stop the presenter, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The QMP socket could not be reached or broke while talking.
    #[error("QMP socket {path}: {source} (is QEMU running with -qmp unix:{path},server=on?)")]
    QmpIo {
        /// The QMP socket's path.
        path: PathBuf,
        /// What the socket said.
        #[source]
        source: std::io::Error,
    },
    /// QEMU answered a QMP command with an error, or with something that is not QMP.
    #[error("QMP {command}: {message}")]
    Qmp {
        /// The command sent (`getfd`, `add_client`, ...).
        command: String,
        /// QEMU's `desc`, or what was wrong with the reply.
        message: String,
    },
    /// QEMU closed the QMP socket: the VM is gone.
    #[error("QEMU closed its QMP socket (the VM has exited)")]
    QmpClosed,
    /// A D-Bus call on the display connection failed.
    #[error("D-Bus display: {0} (was QEMU started with -display dbus,p2p=yes?)")]
    Dbus(#[from] zbus::Error),
    /// A local socket or thread could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU sent a scanout in a pixel format the presenter does not convert.
    #[error("pixel format {0:#x} (pixman) is not supported; the presenter takes x8r8g8b8, a8r8g8b8 and r5g6b5")]
    PixelFormat(u32),
    /// A scanout or update whose sizes do not fit its data.
    #[error("bad {what} from QEMU: {detail}")]
    BadFrame {
        /// `Scanout` or `Update`.
        what: &'static str,
        /// Which size did not fit.
        detail: String,
    },
    /// The framebuffer device could not be used.
    #[error("framebuffer {path}: {message}")]
    Fbdev {
        /// The device, such as `/dev/fb0`.
        path: PathBuf,
        /// What went wrong and what to do.
        message: String,
    },
    /// An input device could not be read.
    #[error("input device {path}: {source}")]
    Input {
        /// The evdev node.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The presenter's result type.
pub type Result<T> = std::result::Result<T, Error>;
