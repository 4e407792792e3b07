//! Drawing the menu. Everything fits 80x25 and uses the 16 colours of the Linux
//! console; selection is shown in reverse video, so it also reads on a
//! monochrome serial terminal. Nothing here changes state.

use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use blockfs::catalog::{Distribution, Firmware, Media, Snapshot};
use blockfs::status::Status;

use crate::format;
use crate::problem::Problem;
use crate::progress::{progress, Progress};
use crate::state::{App, Failure, Field, Running, Screen, Starting, Target};
use circular_vm::{Accel, DiskChanges, Display};

const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED.union(Modifier::BOLD));
const DIM: Style = Style::new().fg(Color::Gray);
const OK: Style = Style::new().fg(Color::Green);
const WARN: Style = Style::new().fg(Color::Yellow);
const BAD: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const TITLE: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);

pub fn draw(frame: &mut Frame, app: &App) {
    let [header, body, net, cache, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_line(app, header.width)), header);
    match &app.screen {
        Screen::Distributions => distributions(frame, body, app),
        Screen::Snapshots => snapshots(frame, body, app),
        Screen::Details => details(frame, body, app),
        Screen::AskNoKvm(t) => ask_no_kvm(frame, body, app, t),
        Screen::Starting(s) => starting(frame, body, app, s),
        Screen::Running(r) => running(frame, body, app, r),
        Screen::Failed(f) => failed(frame, body, f),
        Screen::Problem(p) => problem(frame, body, app, p),
        Screen::Network(s) => crate::network::draw(frame, body, s),
    }
    frame.render_widget(Paragraph::new(network_line(app, net.width)), net);
    frame.render_widget(Paragraph::new(cache_line(app, cache.width)), cache);
    frame.render_widget(Paragraph::new(Line::styled(key_help(app), DIM)), keys);
    drop_control_characters(frame.buffer_mut());
}

/// Removes every control character (C0, DEL, C1: `char::is_control`) from what is about to
/// reach the terminal.
///
/// Titles, notes, dates, URLs and error messages come from catalogs, servers and the
/// network. ratatui copies ESC and BEL from a `Span` into the cells, and the terminal would
/// run them: set the window title (OSC 0), write the clipboard (OSC 52), change the VT's
/// modes. Cleaning the finished buffer, rather than each string, covers every source at once,
/// including the ones added later. The printable rest of such a sequence stays visible.
pub fn drop_control_characters(buffer: &mut ratatui::buffer::Buffer) {
    for cell in buffer.content.iter_mut() {
        if cell.symbol().chars().any(char::is_control) {
            let clean: String = cell.symbol().chars().filter(|c| !c.is_control()).collect();
            cell.set_symbol(if clean.is_empty() { " " } else { &clean });
        }
    }
}

fn header_line(app: &App, width: u16) -> Line<'static> {
    let left = " Circular";
    let accel = match app.accel.accel {
        Accel::Kvm => "KVM".to_string(),
        Accel::Tcg if app.accel.no_kvm_reason.is_some() => "TCG: no KVM, slow".to_string(),
        Accel::Tcg => "TCG".to_string(),
    };
    // Before a catalog is trusted there is no date to show, and on a problem
    // screen the accelerator is not the news.
    let mut parts = Vec::new();
    if !app.catalog.distributions.is_empty() {
        parts.push(format!("catalog of {}", app.catalog.generated.date()));
    }
    if !matches!(app.screen, Screen::Problem(_)) {
        parts.push(accel);
    }
    // Last, so that on a narrow screen it is what gets cut, not the catalog's date.
    if let Some(mode) = &app.boot_mode {
        parts.push(mode.clone());
    }
    let right = format!("{} ", parts.join(" · "));
    let pad = usize::from(width).saturating_sub(left.len() + right.chars().count());
    let style = Style::new().fg(Color::White).bg(Color::Blue).add_modifier(Modifier::BOLD);
    Line::from(vec![Span::styled(left, style), Span::styled(" ".repeat(pad), style), Span::styled(right, style)])
}

fn boxed(title: String) -> Block<'static> {
    Block::default().borders(Borders::ALL).title(Span::styled(format!(" {title} "), TITLE))
}

/// The "how much is here" words for one snapshot.
fn cached_words(status: Option<&Status>, distribution: &str, date: &str) -> (String, Style) {
    match status.and_then(|s| s.snapshot(distribution, date)) {
        Some(s) if s.fully_cached() => ("fully cached, offline ok".to_string(), OK),
        Some(s) => match s.cached_fraction() {
            Some(f) => (format!("cached {}", format::percent(f)), Style::new()),
            None => ("not fetched yet".to_string(), DIM),
        },
        None => ("not fetched yet".to_string(), DIM),
    }
}

/// Rows of a list with the selected one in reverse video, scrolled to keep it visible.
fn list(frame: &mut Frame, area: Rect, rows: Vec<Line<'static>>, selected: usize) {
    let height = usize::from(area.height);
    let first = selected.saturating_sub(height.saturating_sub(1));
    let lines: Vec<Line> = rows
        .into_iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(i, line)| {
            let mut spans = vec![Span::raw(if i == selected { "> " } else { "  " })];
            spans.extend(line.spans);
            let line = Line::from(spans);
            if i == selected {
                line.style(SELECTED)
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

fn notice(app: &App) -> Line<'static> {
    match &app.notice {
        Some(n) => Line::styled(format!(" {}", n.text), if n.is_error { BAD } else { WARN }),
        None => Line::raw(""),
    }
}

fn distributions(frame: &mut Frame, area: Rect, app: &App) {
    let block = boxed("Choose an operating system".to_string());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [rows_area, _, notice_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1), Constraint::Length(1)]).areas(inner);
    let status = app.status();
    let mut rows: Vec<Line> = app.catalog.distributions.iter().map(|d| distribution_row(d, status)).collect();
    if rows.is_empty() {
        rows.push(Line::styled("The catalog lists no operating system yet.", WARN));
    }
    if app.appliance {
        rows.push(Line::raw("Power off"));
        rows.push(Line::raw("Reboot"));
    }
    list(frame, rows_area, rows, app.dist_sel);
    frame.render_widget(Paragraph::new(notice(app)), notice_area);
}

fn distribution_row(d: &Distribution, status: Option<&Status>) -> Line<'static> {
    let title = format::truncate(&d.title, 32);
    match d.latest() {
        Some(latest) => {
            let (cached, style) = cached_words(status, &d.name, &latest.date);
            Line::from(vec![Span::raw(format!("{title:<32} latest {}  ", latest.date)), Span::styled(cached, style)])
        }
        None => Line::from(vec![Span::raw(format!("{title:<32} ")), Span::styled("no snapshot", DIM)]),
    }
}

fn snapshots(frame: &mut Frame, area: Rect, app: &App) {
    let Some(d) = app.distribution() else { return };
    let block = boxed(format!("{}: snapshots, newest first", d.title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [rows_area, about_area, notice_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(4), Constraint::Length(1)]).areas(inner);
    let status = app.status();
    let mut rows = Vec::new();
    if let Some(latest) = d.latest() {
        rows.push(snapshot_row(&format!("latest ({})", latest.date), d, latest, status));
    }
    for s in &d.snapshots {
        rows.push(snapshot_row(&s.date, d, s, status));
    }
    list(frame, rows_area, rows, app.snap_sel);
    if let Some(s) = app.snapshot() {
        let mut about = vec![Line::raw("")];
        let (words, style) = offline_sentence(status, &d.name, &s.date);
        about.push(Line::styled(format!(" {words}"), style));
        let mut what = medium(s).to_string();
        if let Some(login) = &s.login {
            what.push_str(&format!(". Log in: {login}"));
        }
        about.push(Line::raw(format!(" {what}")));
        if !s.notes.is_empty() {
            about.push(Line::raw(format!(" Notes: {}", s.notes)));
        }
        frame.render_widget(Paragraph::new(about).wrap(Wrap { trim: true }), about_area);
    }
    frame.render_widget(Paragraph::new(notice(app)), notice_area);
}

/// What the snapshot is, for people: a disk, or a live or installer CD.
fn medium(s: &Snapshot) -> &'static str {
    match s.media {
        Media::Disk => "A disk image",
        Media::Cdrom => "A CD-ROM (live or installer), read-only",
    }
}

fn snapshot_row(label: &str, d: &Distribution, s: &Snapshot, status: Option<&Status>) -> Line<'static> {
    let (cached, style) = cached_words(status, &d.name, &s.date);
    Line::from(vec![
        Span::raw(format!(
            "{label:<20}{:>8} image {:>8} stored  ",
            format::bytes(s.image_size),
            format::bytes(s.stored_bytes)
        )),
        Span::styled(cached, style),
    ])
}

/// "Fully cached" means it boots offline: say so, plainly.
fn offline_sentence(status: Option<&Status>, distribution: &str, date: &str) -> (String, Style) {
    let unknown = ("Not fetched yet: the first boot needs the network.".to_string(), Style::new());
    match status.and_then(|s| s.snapshot(distribution, date)) {
        Some(s) if s.fully_cached() => ("Fully cached: this snapshot boots without the network.".to_string(), OK),
        Some(s) => match s.cached_fraction() {
            Some(f) => {
                (format!("{} cached here; the rest is fetched while it boots.", format::percent(f)), Style::new())
            }
            None => unknown,
        },
        None => unknown,
    }
}

fn details(frame: &mut Frame, area: Rect, app: &App) {
    let (Some(d), Some(s), Some(t)) = (app.distribution(), app.snapshot(), app.target()) else {
        return;
    };
    let latest = if t.via_latest { " (latest)" } else { "" };
    let block = boxed(format!("{} · {}{latest}", d.title, s.date));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let settings = app.settings_for(&t.distribution, &t.date);
    // What is left of a line after its 14-column label (" Log in       ").
    let room = usize::from(inner.width).saturating_sub(14).max(20);
    let firmware = match s.boot.firmware {
        Firmware::Bios => "BIOS",
        Firmware::Uefi => "UEFI",
    };
    let mut lines = vec![Line::raw(format!(
        " Image        {} ({} stored on the server), {firmware} firmware",
        format::bytes(s.image_size),
        format::bytes(s.stored_bytes)
    ))];
    let (words, style) = offline_sentence(app.status(), &d.name, &s.date);
    lines.push(Line::from(vec![Span::raw(" Cache        "), Span::styled(words, style)]));
    lines.push(Line::raw(format!(" Medium       {}", medium(s))));
    if let Some(login) = &s.login {
        lines.push(Line::raw(format!(" Log in       {}", format::truncate(login, room))));
    }
    if let Some(source) = &s.source {
        let what = match &source.url {
            Some(url) => format!("bit-identical to {url}"),
            None => "bit-identical to the distribution's file".to_string(),
        };
        lines.push(Line::raw(format!(" Source       {}", format::truncate(&what, room))));
        // The whole hash, to compare with the distribution's SHA256SUMS: it fits 80 columns from here.
        lines.push(Line::raw(format!("  SHA-256 {}", source.sha256)));
    }
    if !s.notes.is_empty() {
        lines.push(Line::raw(format!(" Notes        {}", format::truncate(&s.notes, room))));
    }
    match &app.kept {
        Some(_) if app.forget_armed => {
            lines.push(Line::styled(" Saved        press d again to delete the kept changes for good", BAD))
        }
        Some(k) => lines
            .push(Line::raw(format!(" Saved        {} of kept changes (d d deletes them)", format::bytes(k.bytes)))),
        None => {}
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(" VM settings (←/→ change)", TITLE));
    let fields = app.fields();
    for (i, f) in fields.iter().enumerate() {
        let text = match f {
            Field::Memory => format!("Memory        {} MiB", settings.memory_mib),
            Field::Cpus => format!("CPUs          {}", settings.cpus),
            Field::Changes => match (s.media, settings.changes) {
                (Media::Disk, DiskChanges::Discard) => "Disk changes  discarded at power-off".to_string(),
                (Media::Disk, DiskChanges::Keep) => "Disk changes  kept for the next boot".to_string(),
                (Media::Cdrom, _) if settings.scratch_gib == 0 => "Scratch disk  none: nothing is kept".to_string(),
                (Media::Cdrom, DiskChanges::Discard) => "Scratch disk  discarded at power-off".to_string(),
                (Media::Cdrom, DiskChanges::Keep) => "Scratch disk  kept for the next boot".to_string(),
            },
            Field::Scratch => match settings.scratch_gib {
                0 => "Scratch size  none (the CD only)".to_string(),
                gib => format!("Scratch size  {gib} GiB, an empty disk beside the CD"),
            },
            Field::FullScreen => format!("Full screen   {}", if settings.full_screen { "yes" } else { "no" }),
            Field::Boot => "[ Boot ]".to_string(),
        };
        let marker = if i == app.field_sel { " > " } else { "   " };
        let line = Line::raw(format!("{marker}{text}"));
        lines.push(if i == app.field_sel { line.style(SELECTED) } else { line });
    }
    if app.accel.accel == Accel::Tcg {
        lines.push(Line::styled(" No KVM: the VM runs under slow software emulation (TCG).", WARN));
    }
    let [top, notice_area] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(lines), top);
    frame.render_widget(Paragraph::new(notice(app)), notice_area);
}

fn bar(width: u16, p: &Progress) -> Line<'static> {
    let w = usize::from(width.saturating_sub(7)).max(10);
    let filled = ((p.ratio.clamp(0.0, 1.0)) * w as f64).round() as usize;
    Line::from(vec![
        Span::raw(" "),
        Span::styled("█".repeat(filled), OK),
        Span::styled("░".repeat(w - filled), DIM),
        Span::raw(format!(" {:>4}", format::percent(p.ratio))),
    ])
}

fn progress_of(app: &App, target: &Target, fetched_at_start: u64) -> Option<Progress> {
    let snapshot = app.find_snapshot(target)?;
    Some(progress(app.status(), target, snapshot, fetched_at_start))
}

fn starting(frame: &mut Frame, area: Rect, app: &App, s: &Starting) {
    let block = boxed(format!("Starting {} · {}", s.target.title, s.target.date));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = vec![Line::raw("")];
    lines.push(Line::raw(if s.image_ready {
        " The image answers. Fetching what the boot reads first…"
    } else {
        " Opening the image on the blockfs mount…"
    }));
    lines.push(Line::raw(""));
    if let Some(p) = progress_of(app, &s.target, s.fetched_at_start) {
        lines.push(bar(inner.width, &p));
        lines.push(Line::raw(format!(" {}", p.label)));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(format!(" Waiting {}", format::duration(s.since.elapsed())), DIM));
    frame.render_widget(Paragraph::new(lines), inner);
}

fn running(frame: &mut Frame, area: Rect, app: &App, r: &Running) {
    let block = boxed(format!("Running {} · {}", r.target.title, r.target.date));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = if app.display == Display::Presenter {
        vec![
            Line::raw(""),
            Line::raw(" The VM is still running, off screen: Ctrl+Alt+Esc left it."),
            Line::raw(" Enter goes back to it; x stops it."),
            Line::raw(""),
        ]
    } else {
        vec![
            Line::raw(""),
            Line::raw(" The VM runs in its QEMU window. Power off the guest, or close the"),
            Line::raw(" window, to come back to this menu."),
            Line::raw(""),
        ]
    };
    if let Some(login) = app.find_snapshot(&r.target).and_then(|s| s.login.as_deref()) {
        lines.push(Line::raw(format!(" Log in: {login}")));
        lines.push(Line::raw(""));
    }
    if let Some(p) = progress_of(app, &r.target, r.fetched_at_start) {
        lines.push(bar(inner.width, &p));
        lines.push(Line::raw(format!(" {}", p.label)));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(format!(" Running for {}", format::duration(r.since.elapsed())), DIM));
    if r.confirm_stop {
        lines.push(Line::raw(""));
        lines.push(Line::styled(" Stop the VM now, like pulling its power cord? y: stop, any other key: no", BAD));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn failed(frame: &mut Frame, area: Rect, f: &Failure) {
    let block = boxed("The snapshot did not start".to_string());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // One column of margin, so that wrapped lines stay aligned.
    let inner = inner.inner(Margin::new(1, 0));
    let mut text = Text::default();
    text.push_line(Line::raw(""));
    text.push_line(Line::styled(f.headline.clone(), BAD));
    text.push_line(Line::raw(""));
    for l in f.reason.lines() {
        text.push_line(Line::raw(l.to_string()));
    }
    text.push_line(Line::raw(""));
    text.push_line(Line::styled(f.what_to_do.clone(), WARN));
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
}

fn ask_no_kvm(frame: &mut Frame, area: Rect, app: &App, t: &Target) {
    let block = boxed("No hardware virtualization (KVM)".to_string());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // One column of margin, so that wrapped lines stay aligned.
    let inner = inner.inner(Margin::new(1, 0));
    let reason = app.accel.no_kvm_reason.clone().unwrap_or_default();
    let text = vec![
        Line::raw(""),
        Line::styled(format!("{} · {} would run without KVM.", t.title, t.date), WARN),
        Line::raw(""),
        Line::raw(format!(" Why: {reason}.")),
        Line::raw(""),
        Line::raw("It would run under TCG, QEMU's software emulation: it works, but 10 to 50"),
        Line::raw("times slower. A desktop takes minutes to start."),
        Line::raw(""),
        Line::styled("Boot anyway?   Enter or y: yes, slowly    Esc or n: no", TITLE),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
}

fn problem(frame: &mut Frame, area: Rect, app: &App, p: &Problem) {
    let block = boxed("Nothing can boot".to_string());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // One column of margin, so that wrapped lines stay aligned.
    let inner = inner.inner(Margin::new(1, 0));
    let mut text = Text::default();
    text.push_line(Line::raw(""));
    text.push_line(Line::styled(p.headline(), BAD));
    text.push_line(Line::raw(""));
    if !p.detail().is_empty() {
        text.push_line(Line::raw(p.detail().to_string()));
        text.push_line(Line::raw(""));
    }
    for l in p.what_to_do() {
        text.push_line(Line::raw(l.to_string()));
    }
    text.push_line(Line::raw(""));
    let keys = if app.appliance { "r: try again    p: power off    b: reboot" } else { "r: try again    q: quit" };
    text.push_line(Line::styled(keys, TITLE));
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
}

/// "Network: online via eth0 10.0.2.15 · http://… reachable", cut to `width` columns.
pub fn network_line(app: &App, width: u16) -> Line<'static> {
    let width = usize::from(width);
    let address = app.address.clone().unwrap_or_else(|| "no address".to_string());
    let status = match &app.status {
        Ok(s) => s,
        Err(e) => return Line::styled(format::truncate(&format!(" Network: {address} · blockfs: {e}"), width), BAD),
    };
    let (server, style) = if status.offline_mode {
        ("offline mode: the server is not asked".to_string(), WARN)
    } else if let Some(src) = status.sources.iter().find(|s| s.reachable == Some(true)) {
        let mirrors = status.sources.len().saturating_sub(1);
        let more = if mirrors > 0 { format!(" (+{mirrors} more)") } else { String::new() };
        (format!("{} reachable{more}", src.url), OK)
    } else if status.sources.iter().any(|s| s.reachable == Some(false)) || !status.online {
        let err =
            status.sources.iter().find_map(|s| s.last_error.clone()).map(|e| format!(": {e}")).unwrap_or_default();
        (format!("server unreachable{err}"), BAD)
    } else {
        (status.sources.first().map_or("no server configured".to_string(), |s| format!("{} not asked yet", s.url)), DIM)
    };
    let from_cache = if status.catalog_from_cache { " · catalog from the cache" } else { "" };
    let head = format!(" Network: {address} · ");
    let room = width.saturating_sub(head.chars().count()).max(20);
    Line::from(vec![Span::raw(head), Span::styled(format::truncate(&format!("{server}{from_cache}"), room), style)])
}

/// "Cache: 300 MiB of 3.0 GiB (9%) · fetched 120 MiB · 1234 hits", cut to `width` columns.
pub fn cache_line(app: &App, width: u16) -> Line<'static> {
    let Some(s) = app.status() else {
        return Line::raw("");
    };
    let of = if s.cache_max_bytes > 0 {
        format!(
            " of {} ({})",
            format::bytes(s.cache_max_bytes),
            format::percent(s.cache_bytes as f64 / s.cache_max_bytes as f64)
        )
    } else {
        String::new()
    };
    let mut text = format!(
        " Cache: {}{of} used · fetched {} · {} hits",
        format::bytes(s.cache_bytes),
        format::bytes(s.fetched_bytes),
        s.cache_hits + s.memory_hits
    );
    if s.in_flight > 0 {
        text.push_str(&format!(" · {} in flight", s.in_flight));
    }
    Line::raw(format::truncate(&text, usize::from(width)))
}

fn key_help(app: &App) -> String {
    let quit = if app.appliance { "" } else { "  q quit" };
    match &app.screen {
        Screen::Distributions if app.appliance => " ↑↓/jk choose  Enter open  n network".to_string(),
        Screen::Distributions => format!(" ↑↓/jk choose  Enter open{quit}"),
        Screen::Snapshots => format!(" ↑↓/jk choose  Enter details  Esc back{quit}"),
        Screen::Details => format!(" ↑↓ field  ←→ change  Enter boot  Esc back{quit}"),
        Screen::AskNoKvm(_) => " y/Enter boot anyway  n/Esc back".to_string(),
        Screen::Starting(_) => " Enter boot now, without waiting  Esc cancel".to_string(),
        Screen::Running(_) if app.display == Display::Presenter => {
            " Enter back to the guest  x stop the VM".to_string()
        }
        Screen::Running(_) if app.appliance => " The VM has the screen and keyboard".to_string(),
        Screen::Running(_) => " x stop the VM".to_string(),
        Screen::Failed(_) => format!(" Enter back{quit}"),
        Screen::Problem(_) if app.appliance => " r retry  n network  p power off  b reboot".to_string(),
        Screen::Network(s) => format!(" {}", s.keys()),
        Screen::Problem(_) => " r retry  q quit".to_string(),
    }
}
