//! Screen tests: every state of the menu drawn on an 80x25 TestBackend (the
//! Linux console's size), asserting on the text a person would read.

use blockfs::status::{PrefetchStatus, SourceStatus};
use crossterm::event::KeyCode;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::problem::{Problem, Refusal};
use crate::state::tests::{accel, app, key, status};
use crate::state::{App, Failure, Screen, Target};
use circular_vm::{Accel, Display};

/// The screen as 25 lines of text.
fn screen(app: &App) -> String {
    screen_of(app, 80)
}

/// The screen, `width` columns wide and 25 lines high, as text.
fn screen_of(app: &App, width: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, 25)).unwrap();
    terminal.draw(|f| crate::view::draw(f, app)).unwrap();
    let buf = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn has(text: &str, want: &str) {
    assert!(text.contains(want), "missing {want:?} on screen:\n{text}");
}

fn target() -> Target {
    Target {
        distribution: "bookworm".into(),
        title: "Debian 12 (bookworm)".into(),
        date: "2026-11-22".into(),
        via_latest: true,
    }
}

#[test]
fn level_one_lists_distributions_with_latest_and_cache() {
    let mut a = app();
    a.address = Some("online via eth0 10.0.2.15".into());
    let mut s = status(true, &[("bookworm", "2026-11-22", 45, 100), ("trixie", "2026-11-22", 7, 7)]);
    s.sources = vec![SourceStatus { url: "http://10.0.2.2:8080/".into(), reachable: Some(true), last_error: None }];
    a.set_status(Ok(s));
    let text = screen(&a);
    has(&text, "Circular");
    has(&text, "Choose an operating system");
    has(&text, "> Debian 12 (bookworm)");
    has(&text, "latest 2026-11-22  cached 45%");
    has(&text, "Debian 13 (trixie)");
    has(&text, "fully cached, offline ok");
    has(&text, "Network: online via eth0 10.0.2.15 · http://10.0.2.2:8080/ reachable");
    has(&text, "Cache: 300 MiB of 3.0 GiB (9%) used · fetched 120 MiB · 1234 hits");
    has(&text, "Enter open  q quit");
    assert!(!text.contains("Power off"), "desktop mode has no power entries");
    // The cursor moves down.
    a.on_key(key(KeyCode::Down));
    has(&screen(&a), "> Debian 13 (trixie)");
    // Every line fits the 80-column console.
    assert_eq!(text.lines().count(), 25);
}

#[test]
fn appliance_shows_power_entries_and_no_quit() {
    let mut a = app();
    a.appliance = true;
    a.dist_sel = 2;
    let text = screen(&a);
    has(&text, "> Power off");
    has(&text, "Reboot");
    assert!(!text.contains("q quit"), "{text}");
}

#[test]
fn the_status_line_says_how_the_appliance_booted() {
    let mut a = app();
    a.appliance = true;
    let first = screen(&a).lines().next().unwrap_or_default().to_string();
    assert!(!first.contains("UEFI") && !first.contains("BIOS"), "no boot mode given, none shown: {first}");
    a.boot_mode = Some("UEFI Secure Boot, lockdown integrity".into());
    let first = screen(&a).lines().next().unwrap_or_default().to_string();
    assert!(first.contains("KVM · UEFI Secure Boot, lockdown integrity"), "{first}");
    assert!(first.contains("catalog of"), "the catalog's date stays: {first}");
}

#[test]
fn level_two_lists_snapshots_newest_first_with_latest_on_top() {
    let mut a = app();
    a.on_key(key(KeyCode::Enter));
    let text = screen(&a);
    has(&text, "Debian 12 (bookworm): snapshots, newest first");
    has(&text, "> latest (2026-11-22)  2.0 GiB image  850 MiB stored  cached 45%");
    let newer = text.find("  2026-11-22").unwrap();
    let older = text.find("  2026-11-15").unwrap();
    assert!(newer < older, "newest first:\n{text}");
    has(&text, "45% cached here; the rest is fetched while it boots.");
    has(&text, "Notes: Point release 12.13");
    a.on_key(key(KeyCode::Down));
    a.on_key(key(KeyCode::Down));
    let text = screen(&a);
    has(&text, "> 2026-11-15");
    has(&text, "Not fetched yet: the first boot needs the network.");
}

#[test]
fn fully_cached_says_it_boots_offline() {
    let mut a = app();
    a.set_status(Ok(status(true, &[("bookworm", "2026-11-22", 100, 100)])));
    a.on_key(key(KeyCode::Enter));
    has(&screen(&a), "Fully cached: this snapshot boots without the network.");
}

#[test]
fn details_show_the_snapshot_and_editable_settings() {
    let mut a = app();
    a.on_key(key(KeyCode::Enter));
    a.on_key(key(KeyCode::Enter));
    let text = screen(&a);
    has(&text, "Debian 12 (bookworm) · 2026-11-22 (latest)");
    has(&text, "Image        2.0 GiB (850 MiB stored on the server), BIOS firmware");
    has(&text, "Cache        45% cached here");
    has(&text, "Memory        1024 MiB");
    has(&text, "CPUs          2");
    has(&text, "Disk changes  discarded at power-off");
    has(&text, "Full screen   no");
    has(&text, "> [ Boot ]");
    has(&text, "←→ change  Enter boot  Esc back");
    // Edit memory and the disk changes.
    a.field_sel = 0;
    a.on_key(key(KeyCode::Right));
    a.field_sel = 2;
    a.on_key(key(KeyCode::Right));
    let text = screen(&a);
    has(&text, "Memory        1280 MiB");
    has(&text, "> Disk changes  kept for the next boot");
    // Kept changes are shown, and deleting them asks twice.
    a.kept = Some(circular_vm::KeptOverlay {
        path: "/x".into(),
        bytes: 12 << 20,
        modified: std::time::SystemTime::UNIX_EPOCH,
    });
    has(&screen(&a), "12 MiB of kept changes (d d deletes them)");
    a.on_key(key(KeyCode::Char('d')));
    has(&screen(&a), "press d again to delete the kept changes for good");
}

#[test]
fn a_cd_shows_its_medium_login_source_and_scratch_disk() {
    let mut a = app();
    {
        let s = &mut a.catalog.distributions[0].snapshots[0];
        s.media = blockfs::catalog::Media::Cdrom;
        s.login = Some("user live, password live".into());
        s.source = Some(blockfs::catalog::Source {
            url: Some("https://cdimage.debian.org/live.iso".into()),
            sha256: "0f".repeat(32),
        });
    }
    a.on_key(key(KeyCode::Enter));
    let text = screen(&a);
    has(&text, "A CD-ROM (live or installer), read-only. Log in: user live, password live");
    a.on_key(key(KeyCode::Enter));
    let text = screen(&a);
    has(&text, "Medium       A CD-ROM (live or installer), read-only");
    has(&text, "Log in       user live, password live");
    has(&text, "Source       bit-identical to https://cdimage.debian.org/live.iso");
    has(&text, &format!("SHA-256 {}", "0f".repeat(32)));
    has(&text, "Scratch size  16 GiB, an empty disk beside the CD");
    has(&text, "Scratch disk  discarded at power-off");
    has(&text, "> [ Boot ]");
    // Keep it, then make it smaller, then none.
    a.field_sel = 3;
    a.on_key(key(KeyCode::Right));
    has(&screen(&a), "> Scratch disk  kept for the next boot");
    a.field_sel = 2;
    a.on_key(key(KeyCode::Left));
    let s = a.settings_for("bookworm", "2026-11-22");
    assert_eq!((s.scratch_gib, s.changes), (8, circular_vm::DiskChanges::Keep));
    for _ in 0..3 {
        a.on_key(key(KeyCode::Left));
    }
    let text = screen(&a);
    has(&text, "Scratch size  none (the CD only)");
    has(&text, "Scratch disk  none: nothing is kept");
}

#[test]
fn a_disk_says_so_and_has_no_scratch_setting() {
    let mut a = app();
    a.on_key(key(KeyCode::Enter));
    a.on_key(key(KeyCode::Enter));
    let text = screen(&a);
    has(&text, "Medium       A disk image");
    assert!(!text.contains("Scratch") && !text.contains("Log in") && !text.contains("Source"), "{text}");
}

#[test]
fn terminal_displays_have_no_full_screen_setting() {
    let mut a = app();
    a.display = Display::None;
    a.on_key(key(KeyCode::Enter));
    a.on_key(key(KeyCode::Enter));
    assert!(!screen(&a).contains("Full screen"));
}

#[test]
fn no_kvm_asks_before_going_on() {
    let mut a = app();
    a.accel = accel(Accel::Tcg, false);
    a.on_key(key(KeyCode::Enter));
    a.on_key(key(KeyCode::Enter));
    has(&screen(&a), "No KVM: the VM runs under slow software emulation (TCG).");
    a.on_key(key(KeyCode::Enter));
    assert!(matches!(a.screen, Screen::AskNoKvm(_)));
    let text = screen(&a);
    has(&text, "No hardware virtualization (KVM)");
    has(&text, "Why: the CPU reports no hardware virtualization (VT-x/AMD-V).");
    has(&text, "10 to 50");
    has(&text, "Boot anyway?   Enter or y: yes, slowly    Esc or n: no");
    has(&text, "TCG: no KVM, slow");
}

#[test]
fn starting_shows_the_boot_working_set_when_a_profile_is_known() {
    let mut a = app();
    a.starting(target());
    let mut s = status(true, &[("bookworm", "2026-11-22", 45, 100)]);
    s.prefetch = Some(PrefetchStatus {
        distribution: "bookworm".into(),
        date: "2026-11-22".into(),
        done_blocks: 60,
        total_blocks: 120,
        stopped: None,
    });
    a.set_status(Ok(s));
    let text = screen(&a);
    has(&text, "Starting Debian 12 (bookworm) · 2026-11-22");
    has(&text, "Opening the image on the blockfs mount");
    has(&text, "boot working set: 60 of 120 blocks (50%)");
    has(&text, "█░");
    has(&text, " 50%");
    has(&text, "Enter boot now, without waiting  Esc cancel");
}

#[test]
fn starting_shows_bytes_fetched_without_a_profile() {
    let mut a = app();
    a.starting(target()); // 120 MiB fetched before the start
    let mut s = status(true, &[("bookworm", "2026-11-22", 50, 100)]);
    s.fetched_bytes = (120 << 20) + (85 << 20);
    a.set_status(Ok(s));
    if let Screen::Starting(st) = &mut a.screen {
        st.image_ready = true;
    }
    let text = screen(&a);
    has(&text, "The image answers.");
    has(&text, "fetched 85 MiB of at most 850 MiB · 50% cached");
    has(&text, " 10%");
}

#[test]
fn running_in_a_window_keeps_the_menu_informed() {
    let mut a = app();
    a.running(target(), 0);
    let text = screen(&a);
    has(&text, "Running Debian 12 (bookworm) · 2026-11-22");
    has(&text, "Power off the guest, or close the");
    has(&text, "x stop the VM");
    a.on_key(key(KeyCode::Char('x')));
    has(&screen(&a), "Stop the VM now, like pulling its power cord? y: stop");
}

#[test]
fn a_failed_start_shows_qemus_reason_and_what_to_do() {
    let mut a = app();
    a.failed(Failure {
        headline: "Debian 12 (bookworm) 2026-11-22: QEMU could not start (exit status 1)".into(),
        reason: "qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied".into(),
        what_to_do: crate::run::advice("failed to initialize kvm"),
    });
    let text = screen(&a);
    has(&text, "The snapshot did not start");
    has(&text, "QEMU could not start (exit status 1)");
    has(&text, "failed to initialize kvm: Permission denied");
    has(&text, "--accel tcg");
    a.on_key(key(KeyCode::Enter));
    assert_ne!(
        a.screen,
        Screen::Failed(Failure { headline: String::new(), reason: String::new(), what_to_do: String::new() })
    );
}

#[test]
fn a_powered_off_guest_leaves_a_notice() {
    let mut a = app();
    a.on_key(key(KeyCode::Enter));
    a.on_key(key(KeyCode::Enter));
    a.finished(crate::state::Notice {
        text: "Debian 12 (bookworm) 2026-11-22: powered off after 3 min 5 s".into(),
        is_error: false,
    });
    has(&screen(&a), "powered off after 3 min 5 s");
}

#[test]
fn no_network_and_nothing_cached_is_a_clear_screen() {
    let mut a = app();
    let mut s = status(false, &[("bookworm", "2026-11-22", 45, 100)]);
    s.sources = vec![SourceStatus {
        url: "http://10.0.2.2:8080/".into(),
        reachable: Some(false),
        last_error: Some("connection refused".into()),
    }];
    a.set_status(Ok(s));
    let text = screen(&a);
    has(&text, "No network, and nothing is cached");
    has(&text, "Plug in a network cable");
    has(&text, "r: try again    q: quit");
    has(&text, "server unreachable: connection refused");
    assert!(!text.contains("Choose an operating system"), "a clear screen:\n{text}");
}

#[test]
fn refused_catalogs_say_which_and_what_to_do() {
    for (why, words, hint) in [
        (Refusal::Unsigned, "Catalog refused: it is not signed", "must sign"),
        (Refusal::WrongKey, "does not match this machine's key", "public key"),
        (Refusal::Expired, "Catalog refused: it has expired", "clock"),
    ] {
        let mut a = app();
        a.appliance = true;
        a.screen = Screen::Problem(Problem::CatalogRefused { why, detail: "the catalog expired at 2026-01-01".into() });
        let text = screen(&a);
        has(&text, words);
        has(&text, hint);
        has(&text, "r: try again    p: power off    b: reboot");
    }
}

/// The appliance's path: blockfs writes `{"kind", "message"}` to its error
/// file, circular-menu reads it, and the kind (not the wording) picks the screen.
#[test]
fn error_reports_choose_the_screen_by_kind() {
    use crate::problem::{ErrorKind, ErrorReport};
    for (kind, words, hint) in [
        ("unsigned", "Catalog refused: it is not signed", "must sign"),
        ("bad-signature", "does not match this machine's key", "public key"),
        ("expired", "Catalog refused: it has expired", "clock"),
        ("no-network", "No network, and nothing is cached", "Plug in a network cable"),
        ("nothing-cached", "No network, and nothing is cached", "Plug in a network cable"),
        ("tls", "The server's certificate was refused", "circular.ca=FILE"),
        ("mountpoint", "The disk images could not be mounted", "press r to try again"),
    ] {
        // The message says nothing a substring match could use.
        let json = format!(r#"{{"kind":"{kind}","message":"message number 7"}}"#);
        let report = ErrorReport::parse(&json).unwrap();
        assert_eq!(report.kind.as_str(), kind);
        let mut a = app();
        a.appliance = true;
        a.screen = Screen::Problem(Problem::from_report(&report));
        let text = screen(&a);
        has(&text, words);
        has(&text, hint);
        has(&text, "message number 7");
    }
    // The typed error of desktop mode lands on the same screen.
    let err = blockfs::Error::from(blockfs::format::Error::BadSignature);
    assert_eq!(err.kind(), ErrorKind::BadSignature);
    let mut a = app();
    a.screen = Screen::Problem(Problem::from_blockfs(&err));
    has(&screen(&a), "does not match this machine's key");
}

#[test]
fn status_unavailable_is_said_on_the_network_line() {
    let mut a = app();
    a.set_status(Err("status.json: Transport endpoint is not connected".into()));
    has(&screen(&a), "blockfs: status.json: Transport endpoint");
}

#[test]
fn fits_80x25_with_long_titles() {
    let mut a = app();
    a.catalog.distributions[0].title = "A distribution with a very long title that goes on and on".into();
    let text = screen(&a);
    has(&text, "A distribution with a very long…");
    has(&text, "latest 2026-11-22");
}

#[test]
fn no_screen_panics_on_tiny_or_huge_terminals() {
    let mut screens = vec![
        Screen::Distributions,
        Screen::Snapshots,
        Screen::Details,
        Screen::AskNoKvm(target()),
        Screen::Failed(Failure { headline: "h".into(), reason: "r\n".repeat(50), what_to_do: "w".into() }),
        Screen::Problem(Problem::NoNetwork { detail: "x".repeat(500) }),
    ];
    let mut a = app();
    a.starting(target());
    screens.push(a.screen.clone());
    a.running(target(), 0);
    screens.push(a.screen.clone());
    for (w, h) in [(1, 1), (10, 3), (20, 5), (80, 24), (300, 100)] {
        for s in &screens {
            a.screen = s.clone();
            let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
            terminal.draw(|f| crate::view::draw(f, &a)).unwrap();
        }
    }
}

#[test]
fn escape_sequences_in_catalog_text_never_reach_the_terminal() {
    // Window title (OSC 0), clipboard (OSC 52), a C1 CSI and a bare BEL in the fields a
    // catalog controls: the distribution title, the snapshot notes and the date.
    let mut a = app();
    a.catalog.distributions[0].title = "Evil\u{1b}]0;PWNED-TITLE\u{7} os".into();
    for snap in &mut a.catalog.distributions[0].snapshots {
        snap.notes = "n\u{1b}]52;c;cHduZWQ=\u{7}otes \u{9b}31m red\u{7f}".into();
    }
    let level1 = screen(&a);
    has(&level1, "]0;PWNED-TITLE");
    a.on_key(key(KeyCode::Enter));
    let level2 = screen(&a);
    has(&level2, "]52;c;cHduZWQ=");
    a.on_key(key(KeyCode::Enter));
    let details = screen(&a);
    for (name, text) in [("distributions", &level1), ("snapshots", &level2), ("details", &details)] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{name} screen holds a control character:\n{text:?}"
        );
    }
}

#[test]
fn long_texts_use_the_whole_width_of_a_wide_screen() {
    let mut a = app();
    let notes = format!("{}END", "n".repeat(90));
    for snap in &mut a.catalog.distributions[0].snapshots {
        snap.notes = notes.clone();
    }
    let long_error = format!("{}END", "e".repeat(90));
    a.set_status(Err(long_error.clone()));
    a.on_key(key(KeyCode::Enter));
    a.on_key(key(KeyCode::Enter));
    let narrow = screen(&a);
    assert!(!narrow.contains("nEND") && !narrow.contains("eEND"), "80 columns cannot hold them:\n{narrow}");
    has(&narrow, "nnn…");
    let wide = screen_of(&a, 140);
    has(&wide, &format!(" Notes        {notes}"));
    has(&wide, &long_error);
}
