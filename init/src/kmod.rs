//! Kernel module loading, the way udev's coldplug + modprobe would do it, but
//! in-process: read every `modalias` under /sys, match it against
//! `modules.alias`, and load the hits with their `modules.dep` dependencies and
//! `modules.softdep` companions via finit_module(2). Repeated until no new
//! device appears, because loading a USB host driver makes the USB devices
//! (keyboard, the stick itself, a USB NIC) appear afterwards.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("module {0}: {1}")]
    Load(String, String),
    #[error("module {0}: not in modules.dep")]
    Unknown(String),
}

/// `foo-bar` and `foo_bar` are the same module.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Module name from a path in modules.dep: `kernel/fs/ext4/ext4.ko` → `ext4`.
pub fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

/// fnmatch(3) without flags, as modprobe uses for aliases: `*`, `?`, `[...]`.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches one `[...]` class at the start of `pat`; returns (hit, its length).
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < pat.len() {
        let a = pat[i];
        if a == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            if a <= c && c <= pat[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if a == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[derive(Debug, Default)]
pub struct Index {
    /// (pattern, module name)
    aliases: Vec<(String, String)>,
    /// module name → (path relative to the modules dir, dependency names)
    deps: HashMap<String, (String, Vec<String>)>,
    /// module name → (pre, post)
    softdeps: HashMap<String, (Vec<String>, Vec<String>)>,
    builtin: HashSet<String>,
}

impl Index {
    pub fn parse(alias: &str, dep: &str, softdep: &str, builtin: &str) -> Index {
        let mut ix = Index::default();
        for l in alias.lines() {
            let mut w = l.split_whitespace();
            if let (Some("alias"), Some(pat), Some(m)) = (w.next(), w.next(), w.next()) {
                ix.aliases.push((pat.to_string(), normalize(m)));
            }
        }
        for l in dep.lines() {
            if let Some((m, d)) = l.split_once(':') {
                let deps = d.split_whitespace().map(name_of).collect();
                ix.deps.insert(name_of(m.trim()), (m.trim().to_string(), deps));
            }
        }
        for l in softdep.lines() {
            let mut w = l.split_whitespace();
            if w.next() != Some("softdep") {
                continue;
            }
            let Some(m) = w.next() else { continue };
            let entry = ix.softdeps.entry(normalize(m)).or_default();
            let mut post = false;
            for word in w {
                match word {
                    "pre:" => post = false,
                    "post:" => post = true,
                    name if post => entry.1.push(normalize(name)),
                    name => entry.0.push(normalize(name)),
                }
            }
        }
        for l in builtin.lines() {
            ix.builtin.insert(name_of(l.trim()));
        }
        ix
    }

    pub fn load_from(dir: &Path) -> Result<Index, KmodError> {
        let read = |f: &str, required: bool| -> Result<String, KmodError> {
            let p = dir.join(f);
            match std::fs::read_to_string(&p) {
                Ok(s) => Ok(s),
                Err(_) if !required => Ok(String::new()),
                Err(e) => Err(KmodError::Read(p, e)),
            }
        };
        Ok(Index::parse(
            &read("modules.alias", true)?,
            &read("modules.dep", true)?,
            &read("modules.softdep", false)?,
            &read("modules.builtin", false)?,
        ))
    }

    /// Modules whose alias matches `modalias` (in modules.alias order).
    pub fn lookup(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (pat, m) in &self.aliases {
            if glob(pat.as_bytes(), modalias.as_bytes()) && !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }

    /// Load order for `name`: softdep pre, dependencies (deepest first), the
    /// module, softdep post. Unknown softdeps are skipped (they are hints);
    /// an unknown module is an error.
    pub fn plan(&self, name: &str) -> Result<Vec<String>, KmodError> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        self.visit(&normalize(name), &mut order, &mut seen, true)?;
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        order: &mut Vec<String>,
        seen: &mut HashSet<String>,
        required: bool,
    ) -> Result<(), KmodError> {
        if !seen.insert(name.to_string()) || self.builtin.contains(name) {
            return Ok(());
        }
        let Some((_, deps)) = self.deps.get(name) else {
            if required {
                return Err(KmodError::Unknown(name.into()));
            }
            // A softdep may name an alias ("crc32c"), as modprobe allows.
            // Take every match: an optimised variant (crc32c-intel) may fail
            // to load on this CPU while the generic one works.
            for m in self.lookup(name) {
                self.visit(&m, order, seen, false)?;
            }
            return Ok(());
        };
        let (pre, post) = self.softdeps.get(name).cloned().unwrap_or_default();
        for s in &pre {
            self.visit(s, order, seen, false)?;
        }
        for d in deps.iter().rev() {
            self.visit(d, order, seen, true)?;
        }
        order.push(name.to_string());
        for s in &post {
            self.visit(s, order, seen, false)?;
        }
        Ok(())
    }

    pub fn path(&self, name: &str) -> Option<&str> {
        self.deps.get(name).map(|(p, _)| p.as_str())
    }
}

/// Loads modules into the running kernel, remembering what is in.
pub struct Loader {
    dir: PathBuf,
    index: Index,
    loaded: HashSet<String>,
    failed: HashSet<String>,
    /// Modules coldplug leaves alone for now (drivers whose firmware is not reachable yet).
    held: HashSet<String>,
}

impl Loader {
    pub fn new(dir: &Path) -> Result<Loader, KmodError> {
        let index = Index::load_from(dir)?;
        let loaded = std::fs::read_to_string("/proc/modules")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(normalize))
            .collect();
        Ok(Loader { dir: dir.to_path_buf(), index, loaded, failed: HashSet::new(), held: HashSet::new() })
    }

    /// Coldplug leaves these modules alone until [`Loader::release_held`] (names as in
    /// /proc/modules or with `-`; an explicit [`Loader::load`] still loads them).
    pub fn hold<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.held.extend(names.into_iter().map(normalize));
    }

    /// Coldplug may load the held modules again; returns them, sorted.
    pub fn release_held(&mut self) -> Vec<String> {
        let mut held: Vec<String> = self.held.drain().collect();
        held.sort();
        held
    }

    /// Loads `name` and what it needs. Returns the modules newly loaded.
    pub fn load(&mut self, name: &str) -> Result<Vec<String>, KmodError> {
        let mut new = Vec::new();
        for m in self.index.plan(name)? {
            if self.loaded.contains(&m) || self.failed.contains(&m) {
                continue;
            }
            let Some(rel) = self.index.path(&m) else { continue };
            match insert(&self.dir.join(rel)) {
                Ok(()) => {
                    self.loaded.insert(m.clone());
                    new.push(m);
                }
                Err(e) => {
                    // Remember failures: crc32c-intel fails with ENODEV on CPUs
                    // without SSE4.2 (and under qemu64), every round.
                    self.failed.insert(m.clone());
                    if m == normalize(name) {
                        return Err(KmodError::Load(m, e));
                    }
                    crate::info!("module {m} (needed by {name}): {e}");
                }
            }
        }
        Ok(new)
    }

    /// One coldplug round: loads modules for every modalias in /sys.
    /// Returns the modules loaded.
    pub fn coldplug_once(&mut self) -> Vec<String> {
        let mut aliases = BTreeSet::new();
        collect_modaliases(Path::new("/sys/devices"), &mut aliases, 0);
        let mut new = Vec::new();
        for m in self.coldplug_plan(&aliases) {
            match self.load(&m) {
                Ok(n) => new.extend(n),
                Err(e) => crate::info!("{e}"),
            }
        }
        new
    }

    /// The modules a coldplug round loads for these modaliases: those whose alias matches,
    /// in modules.alias order, less those loaded, failed or held.
    fn coldplug_plan(&self, aliases: &BTreeSet<String>) -> Vec<String> {
        let mut wanted: Vec<String> = Vec::new();
        for a in aliases {
            for m in self.index.lookup(a) {
                if !wanted.contains(&m) {
                    wanted.push(m);
                }
            }
        }
        wanted.retain(|m| !self.loaded.contains(m) && !self.failed.contains(m) && !self.held.contains(m));
        wanted
    }

    /// Coldplug until two quiet rounds in a row (USB enumeration settles) or
    /// `limit` passes.
    pub fn coldplug(&mut self, limit: Duration) -> Vec<String> {
        let start = Instant::now();
        let mut all = Vec::new();
        let mut quiet = 0;
        while quiet < 2 && start.elapsed() < limit {
            let new = self.coldplug_once();
            if new.is_empty() {
                quiet += 1;
            } else {
                quiet = 0;
                all.extend(new);
            }
            std::thread::sleep(Duration::from_millis(700));
        }
        all
    }
}

fn collect_modaliases(dir: &Path, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 24 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_symlink() {
            continue;
        }
        if ft.is_dir() {
            collect_modaliases(&e.path(), out, depth + 1);
        } else if e.file_name() == "modalias" {
            if let Ok(s) = std::fs::read_to_string(e.path()) {
                let s = s.trim();
                if !s.is_empty() {
                    out.insert(s.to_string());
                }
            }
        }
    }
}

/// finit_module(2) for plain `.ko`; compressed modules are decompressed by
/// the initramfs builder (this kernel cannot decompress modules itself), so
/// anything else is reported.
fn insert(path: &Path) -> Result<(), String> {
    let name = path.to_string_lossy();
    if !name.ends_with(".ko") {
        return Err(format!("{name}: compressed module; the initramfs builder should have decompressed it"));
    }
    let f = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let params = CString::default();
    match nix::kmod::finit_module(&f, &params, nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(format!("finit_module: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_fnmatch() {
        assert!(glob(
            b"pci:v00008086d0000100Esv*sd*bc*sc*i*",
            b"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"
        ));
        assert!(!glob(b"pci:v00008086d0000100Fsv*", b"pci:v00008086d0000100Esv00001AF4"));
        assert!(glob(b"usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", b"usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00"));
        assert!(glob(b"a?c", b"abc"));
        assert!(glob(b"x[0-9]y", b"x5y"));
        assert!(!glob(b"x[!0-9]y", b"x5y"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"a", b""));
        assert!(glob(
            b"cpu:type:x86,ven*fam*mod*:feature:*0081*",
            b"cpu:type:x86,ven0000fam0006mod0006:feature:,0000,0001,0081,0082"
        ));
    }

    fn sample() -> Index {
        Index::parse(
            "alias pci:v00001B36d0000000Dsv*sd*bc*sc*i* xhci_pci\nalias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb-storage\nalias fs-ext4 ext4\nalias crc32c crc32c_generic\n",
            "kernel/drivers/usb/host/xhci-pci.ko: kernel/drivers/usb/host/xhci-hcd.ko kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko\n\
             kernel/drivers/usb/host/xhci-hcd.ko: kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko\n\
             kernel/drivers/usb/core/usbcore.ko: kernel/drivers/usb/common/usb-common.ko\n\
             kernel/drivers/usb/common/usb-common.ko:\n\
             kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko\n\
             kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko\n\
             kernel/fs/mbcache.ko:\n\
             kernel/crypto/crc32c_generic.ko:\n",
            "softdep ext4 pre: crc32c\nsoftdep usb_storage pre: nothere post: mbcache\n",
            "kernel/drivers/tty/serial/8250/8250.ko\n",
        )
    }

    #[test]
    fn coldplug_leaves_held_modules_until_they_are_released() {
        let mut loader = Loader {
            dir: PathBuf::new(),
            index: sample(),
            loaded: HashSet::from(["usb_storage".to_string()]),
            failed: HashSet::new(),
            held: HashSet::new(),
        };
        let aliases: BTreeSet<String> = [
            "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30",
            "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00",
        ]
        .map(String::from)
        .into();
        assert_eq!(loader.coldplug_plan(&aliases), ["xhci_pci"], "usb_storage is loaded already");
        loader.hold(["xhci-pci"]);
        assert!(loader.coldplug_plan(&aliases).is_empty());
        assert_eq!(loader.release_held(), ["xhci_pci"]);
        assert_eq!(loader.coldplug_plan(&aliases), ["xhci_pci"]);
    }

    #[test]
    fn lookup_and_plan() {
        let ix = sample();
        assert_eq!(ix.lookup("pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30"), ["xhci_pci"]);
        assert_eq!(ix.lookup("usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00"), ["usb_storage"]);
        let plan = ix.plan("xhci-pci").unwrap();
        assert_eq!(plan, ["usb_common", "usbcore", "xhci_hcd", "xhci_pci"]);
        assert_eq!(ix.plan("ext4").unwrap(), ["crc32c_generic", "mbcache", "ext4"]);
        // unknown softdeps are skipped; post softdeps come after
        assert_eq!(ix.plan("usb_storage").unwrap(), ["usb_common", "usbcore", "usb_storage", "mbcache"]);
        assert!(ix.plan("nope").is_err());
        assert!(ix.plan("8250").unwrap().is_empty());
    }
}
