// SPDX-License-Identifier: GPL-2.0
//! What the parent and its workers share, and the fuzzer's PRNG.
//!
//! Each worker has a [`Slot`] in one shared anonymous mapping made before the fork: the name of
//! the operation it is in (and of the one its helper thread is in), its operation counts and
//! errno histograms per family, and the vGPUs it created and has not removed yet. Everything is
//! an atomic, so the parent can read a slot at any time, also of a worker that hung or died.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The operation families, in the order they are reported.
pub const FAMILIES: [&str; 9] = ["ioctl", "region", "mmap", "irq", "engine", "dma", "migration", "sysfs", "open"];
/// How many families there are.
pub const NFAM: usize = FAMILIES.len();

/// An operation family (an index into [`FAMILIES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fam {
    /// Device ioctls with short, exact, huge and garbage arguments.
    Ioctl = 0,
    /// pread/pwrite of the regions.
    Region,
    /// mmap of the regions, touching the mappings.
    Mmap,
    /// SET_IRQS with bad and closed eventfds.
    Irq,
    /// The engine: ring programming, commands, doorbells.
    Engine,
    /// DMA map/unmap (the engine's helper thread, and the set-up).
    Dma,
    /// Migration: states, streams, corrupted resumes.
    Migration,
    /// sysfs writes and reads.
    Sysfs,
    /// Opening and closing the vGPU (and open races).
    Open,
}

/// Errno buckets: 1..NERR are errnos, 0 collects errors without one (or beyond).
pub const NERR: usize = 160;
/// How many created-but-not-removed vGPUs a slot remembers.
pub const CREATED: usize = 8;
const NAME_WORDS: usize = 8;

/// One worker's shared state. All-zero is its initial state (the mapping is zero-filled).
#[repr(C)]
pub struct Slot {
    /// 1 once the worker finished its loop and cleaned up.
    pub done: AtomicU64,
    /// Operations started (all families).
    pub seq: AtomicU64,
    op: [AtomicU64; NAME_WORDS],
    aux: [AtomicU64; NAME_WORDS],
    ops: [AtomicU64; NFAM],
    errs: [[AtomicU64; NERR]; NFAM],
    created: [[AtomicU64; 3]; CREATED],
}

fn store_name(words: &[AtomicU64; NAME_WORDS], name: &str) {
    let b = name.as_bytes();
    for (i, w) in words.iter().enumerate() {
        let mut x = [0u8; 8];
        for (j, c) in x.iter_mut().enumerate() {
            if let Some(&v) = b.get(i * 8 + j) {
                *c = v;
            }
        }
        w.store(u64::from_le_bytes(x), Relaxed);
    }
}

fn load_name(words: &[AtomicU64; NAME_WORDS]) -> String {
    let mut b = Vec::new();
    for w in words {
        b.extend_from_slice(&w.load(Relaxed).to_le_bytes());
    }
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Slot {
    /// Names the operation the worker's main thread is in now (at most 64 bytes are kept).
    pub fn set_op(&self, name: &str) {
        store_name(&self.op, name);
        self.seq.fetch_add(1, Relaxed);
    }

    /// Names the operation the worker's helper thread is in now ("" when it has none).
    pub fn set_aux(&self, name: &str) {
        store_name(&self.aux, name);
    }

    /// The main thread's operation.
    pub fn op(&self) -> String {
        load_name(&self.op)
    }

    /// The helper thread's operation.
    pub fn aux(&self) -> String {
        load_name(&self.aux)
    }

    fn bucket(&self, f: Fam, errno: Option<i32>) {
        let i = match errno {
            Some(e) if e > 0 && (e as usize) < NERR => e as usize,
            _ => 0,
        };
        self.errs[f as usize][i].fetch_add(1, Relaxed);
    }

    /// Counts one operation of `f` with its result; whether it succeeded.
    pub fn rec<T>(&self, f: Fam, r: &io::Result<T>) -> bool {
        self.ops[f as usize].fetch_add(1, Relaxed);
        match r {
            Ok(_) => true,
            Err(e) => {
                self.bucket(f, e.raw_os_error());
                false
            }
        }
    }

    /// Counts one operation of `f` that failed with `errno` (`None`: without one).
    pub fn rec_err(&self, f: Fam, errno: Option<i32>) {
        self.ops[f as usize].fetch_add(1, Relaxed);
        self.bucket(f, errno);
    }

    /// Counts one operation of `f` that succeeded.
    pub fn rec_ok(&self, f: Fam) {
        self.ops[f as usize].fetch_add(1, Relaxed);
    }

    /// Operations of `f` so far.
    pub fn ops(&self, f: usize) -> u64 {
        self.ops[f].load(Relaxed)
    }

    /// The errno histogram of `f`: `(errno, count)` for each errno seen (0: no errno).
    pub fn errs(&self, f: usize) -> Vec<(usize, u64)> {
        (0..NERR).map(|e| (e, self.errs[f][e].load(Relaxed))).filter(|&(_, n)| n > 0).collect()
    }

    /// Remembers a vGPU this worker created; false if every place is taken.
    pub fn add_created(&self, u: u128) -> bool {
        for c in &self.created {
            if c[2].load(Relaxed) == 0 {
                c[0].store((u >> 64) as u64, Relaxed);
                c[1].store(u as u64, Relaxed);
                c[2].store(1, Relaxed);
                return true;
            }
        }
        false
    }

    /// Forgets a vGPU (it was removed).
    pub fn drop_created(&self, u: u128) {
        for c in &self.created {
            if c[2].load(Relaxed) == 1 && c[0].load(Relaxed) == (u >> 64) as u64 && c[1].load(Relaxed) == u as u64 {
                c[2].store(0, Relaxed);
            }
        }
    }

    /// The vGPUs created and not removed.
    pub fn created(&self) -> Vec<u128> {
        self.created
            .iter()
            .filter(|c| c[2].load(Relaxed) == 1)
            .map(|c| u128::from(c[0].load(Relaxed)) << 64 | u128::from(c[1].load(Relaxed)))
            .collect()
    }
}

/// The slots of all workers, in a shared anonymous mapping that is never unmapped.
pub struct Shared {
    base: usize,
    stride: usize,
    n: usize,
}

impl Shared {
    /// Maps `n` zeroed slots, shared with the processes forked afterwards.
    pub fn new(n: usize) -> io::Result<&'static Shared> {
        let stride = std::mem::size_of::<Slot>().next_multiple_of(4096);
        let len = stride * n.max(1);
        // SAFETY: a fresh mapping chosen by the kernel overlaps nothing of ours.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Box::leak(Box::new(Shared { base: p as usize, stride, n })))
    }

    /// Worker `i`'s slot.
    pub fn slot(&'static self, i: usize) -> &'static Slot {
        assert!(i < self.n, "slot {i} of {}", self.n);
        // SAFETY: the slot lies inside the mapping, which is page-aligned (so is every stride),
        // zero-filled and never unmapped; a Slot is atomics only, valid when all-zero, and is
        // only ever accessed through atomic operations (also from the other processes).
        unsafe { &*((self.base + i * self.stride) as *const Slot) }
    }
}

/// The name of an errno (`EINVAL`), or `E<n>`; 0 is `other` (an error without an errno).
pub fn errno_name(e: usize) -> String {
    let names: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::ESRCH, "ESRCH"),
        (libc::EINTR, "EINTR"),
        (libc::EIO, "EIO"),
        (libc::ENXIO, "ENXIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::EBADF, "EBADF"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EBUSY, "EBUSY"),
        (libc::EEXIST, "EEXIST"),
        (libc::EXDEV, "EXDEV"),
        (libc::ENODEV, "ENODEV"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENFILE, "ENFILE"),
        (libc::EMFILE, "EMFILE"),
        (libc::ENOTTY, "ENOTTY"),
        (libc::EFBIG, "EFBIG"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::ESPIPE, "ESPIPE"),
        (libc::EROFS, "EROFS"),
        (libc::EPIPE, "EPIPE"),
        (libc::ERANGE, "ERANGE"),
        (libc::EDEADLK, "EDEADLK"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ENOMSG, "ENOMSG"),
        (libc::ENODATA, "ENODATA"),
        (libc::EPROTO, "EPROTO"),
        (libc::EBADMSG, "EBADMSG"),
        (libc::EOVERFLOW, "EOVERFLOW"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::ECANCELED, "ECANCELED"),
        (libc::EHWPOISON, "EHWPOISON"),
    ];
    if e == 0 {
        return "other".into();
    }
    names.iter().find(|&&(n, _)| n as usize == e).map_or_else(|| format!("E{e}"), |&(_, s)| s.to_string())
}

// ----- the PRNG ------------------------------------------------------------------------------

/// xorshift64*, seeded through splitmix64: small, fast and reproducible from one `u64`. The
/// state is a `Cell`, so that one draw can be an argument of another (`rng.pick(&[rng.u32()])`).
pub struct Rng(std::cell::Cell<u64>);

impl Rng {
    /// The generator of `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(std::cell::Cell::new(if z == 0 { 0x853c_49e6_748f_ea9b } else { z }))
    }

    /// The next 64 random bits.
    pub fn u64(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next 32 random bits.
    pub fn u32(&self) -> u32 {
        (self.u64() >> 32) as u32
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }

    /// True with probability `p` percent.
    pub fn percent(&self, p: u64) -> bool {
        self.below(100) < p
    }

    /// One of `s` (which must not be empty).
    pub fn pick<T: Copy>(&self, s: &[T]) -> T {
        s[self.below(s.len() as u64) as usize]
    }

    /// One of `s` with the given weights.
    pub fn weighted<T: Copy>(&self, s: &[(u32, T)]) -> T {
        let total: u64 = s.iter().map(|&(w, _)| u64::from(w)).sum();
        let mut x = self.below(total);
        for &(w, v) in s {
            if x < u64::from(w) {
                return v;
            }
            x -= u64::from(w);
        }
        s[s.len() - 1].1
    }

    /// Fills `out` with random bytes.
    pub fn fill(&self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let v = self.u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }

    /// `n` random bytes.
    pub fn bytes(&self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }

    /// A size in `0..=max`, mostly small: 0, the access widths, a few hundred bytes, or any.
    pub fn size(&self, max: u64) -> u64 {
        let v = match self.below(20) {
            0 => 0,
            1..=7 => self.pick(&[1, 2, 4, 8]),
            8..=12 => self.range(1, 256),
            13..=16 => self.range(1, 4096),
            _ => self.range(1, max),
        };
        v.min(max)
    }

    /// A u32 that often is a boundary value: 0, 1, all-ones, powers of two and their
    /// neighbours, or random.
    pub fn edgy32(&self) -> u32 {
        match self.below(8) {
            0 => 0,
            1 => 1,
            2 => u32::MAX,
            3 => 0x8000_0000,
            4 => 1u32 << self.below(32),
            5 => (1u32 << self.below(32)).wrapping_sub(1),
            6 => (1u32 << self.below(32)).wrapping_add(1),
            _ => self.u32(),
        }
    }

    /// A new generator seeded from this one (for a helper thread).
    pub fn split(&self) -> Rng {
        Rng::new(self.u64())
    }
}

// ----- UUIDs ---------------------------------------------------------------------------------

/// The canonical lowercase text of a UUID.
pub fn uuid_text(u: u128) -> String {
    let h = format!("{u:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A UUID in canonical form (either case, surrounding blanks ignored), as the mdev core parses
/// it.
pub fn parse_uuid(text: &[u8]) -> Option<u128> {
    let t = std::str::from_utf8(text).ok()?.trim();
    let b = t.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: String = t.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_reproducible() {
        let (a, b) = (Rng::new(42), Rng::new(42));
        let xs: Vec<u64> = (0..100).map(|_| a.u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, (0..100).map(|_| Rng::new(43).u64()).collect::<Vec<_>>());
        let r = Rng::new(0);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
            assert!((3..=9).contains(&r.range(3, 9)));
            assert!(r.size(100) <= 100);
        }
        assert_eq!(r.weighted(&[(0, 1), (5, 2), (0, 3)]), 2);
    }

    #[test]
    fn uuids_round_trip() {
        let u = 0x83b8_f4f2_509f_382f_3c1e_e6bf_e0fa_1001u128;
        let t = uuid_text(u);
        assert_eq!(t, "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001");
        assert_eq!(parse_uuid(t.as_bytes()), Some(u));
        assert_eq!(parse_uuid(format!("{}\n", t.to_uppercase()).as_bytes()), Some(u));
        assert_eq!(parse_uuid(t.replace('-', "").as_bytes()), None);
        assert_eq!(parse_uuid(format!("{t}x").as_bytes()), None);
        assert_eq!(parse_uuid(&[0xff, 0xfe]), None);
    }

    #[test]
    fn slots_count_and_remember() {
        let sh = Shared::new(2).expect("shared mapping");
        let s = sh.slot(1);
        s.set_op("an operation with a name longer than sixty-four bytes, which is cut there");
        assert_eq!(s.op(), "an operation with a name longer than sixty-four bytes, which is ");
        s.set_aux("");
        assert_eq!(s.aux(), "");
        assert!(s.rec(Fam::Mmap, &Ok::<_, io::Error>(())));
        assert!(!s.rec(Fam::Mmap, &Err::<(), _>(io::Error::from_raw_os_error(libc::EINVAL))));
        s.rec_err(Fam::Mmap, None);
        assert_eq!(s.ops(Fam::Mmap as usize), 3);
        assert_eq!(s.errs(Fam::Mmap as usize), vec![(0, 1), (libc::EINVAL as usize, 1)]);
        assert!(s.add_created(7) && s.add_created(9));
        s.drop_created(7);
        assert_eq!(s.created(), vec![9]);
        assert_eq!(sh.slot(0).ops(Fam::Mmap as usize), 0);
        assert_eq!(errno_name(libc::EBUSY as usize), "EBUSY");
        assert_eq!(errno_name(0), "other");
        assert_eq!(errno_name(150), "E150");
    }
}
