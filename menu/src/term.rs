//! The terminal: raw mode and the alternate screen while the menu shows, and
//! given back whole while QEMU draws on it (`-nographic`, curses). The guard
//! restores the terminal when dropped, so every exit path (errors included)
//! leaves a usable shell or console behind.

use std::io::{self, Stdout, Write};

use crossterm::cursor::{Hide, MoveTo, Show};
use crossterm::execute;
use crossterm::terminal::{self, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

use crate::state::App;

pub struct Term {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    active: bool,
}

impl Term {
    pub fn enter() -> io::Result<Term> {
        let backend = CrosstermBackend::new(io::stdout());
        // A serial line reports a 0x0 window: draw for 80x24, which every
        // terminal on the other end of a cable can show.
        let terminal = match terminal::size() {
            Ok((w, h)) if w > 0 && h > 0 => Terminal::new(backend)?,
            _ => {
                Terminal::with_options(backend, TerminalOptions { viewport: Viewport::Fixed(Rect::new(0, 0, 80, 24)) })?
            }
        };
        let mut term = Term { terminal, active: false };
        term.resume()?;
        Ok(term)
    }

    pub fn draw(&mut self, app: &App) -> io::Result<()> {
        self.terminal.draw(|frame| crate::view::draw(frame, app))?;
        Ok(())
    }

    /// Gives the terminal back (cooked mode, main screen) and prints `message`.
    pub fn suspend(&mut self, message: &str) -> io::Result<()> {
        self.restore()?;
        let mut out = io::stdout();
        execute!(out, Clear(ClearType::All), MoveTo(0, 0))?;
        writeln!(out, "{message}")?;
        out.flush()
    }

    /// Takes the terminal again after [`Term::suspend`].
    pub fn resume(&mut self) -> io::Result<()> {
        terminal::enable_raw_mode()?;
        self.active = true;
        execute!(io::stdout(), EnterAlternateScreen, Hide, Clear(ClearType::All))?;
        // Whatever QEMU left on the screen is unknown to ratatui: redraw all.
        self.terminal.clear()?;
        Ok(())
    }

    fn restore(&mut self) -> io::Result<()> {
        if self.active {
            self.active = false;
            execute!(io::stdout(), LeaveAlternateScreen, Show)?;
            terminal::disable_raw_mode()?;
        }
        Ok(())
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}
