// SPDX-License-Identifier: GPL-2.0
//! Tenant isolation under attack: a vGPU programs its engine with rectangles, IOVAs and ring
//! positions chosen to reach outside its framebuffer slice or its DMA mappings, and nothing
//! outside them is ever read or written.
//!
//! `rvgpu-isolation GPU UUID_A UUID_B [--iommufd]`: `UUID_A` is the attacker, a vGPU whose slice
//! has neighbours on both sides (`UUID_B` is one of them; the caller places them so). Before the
//! attack every 8-byte word of the physical GPU's VRAM outside A's slice is set to a canary that
//! encodes its own offset (through the board's BAR0, `resource0`), and A's guest memory is laid
//! out with canaries: the buffer mapped for DMA has an unmapped page of canary on each side, and a
//! read-only mapping holds a canary too. Then A's engine gets each attack in turn (FILL, COPY_TO_FB
//! and COPY_FROM_FB with rectangles that end past the framebuffer or wrap 32-bit arithmetic, copies
//! and fences across the ends of the mapping, into the read-only mapping and at wrapping IOVAs, a
//! ring that runs into unmapped memory holding commands, bad TAILs). Afterwards:
//! 1. the VRAM outside A's slice is byte for byte what it was;
//! 2. the canary pages and the read-only mapping are unchanged;
//! 3. nothing A's engine wrote into its guest memory came from outside its slice (no canary word
//!    of the VRAM outside it), and no command in unmapped memory ran;
//! 4. the engine reported each attack (an error, never silence) and still works.
//!
//! Results are TAP lines numbered through `$TAP_STATE` ([`RESULTS`] per run).

use std::fs::OpenOptions;
use std::os::fd::AsFd;
use std::time::Duration;

use vfio_client::harness::{wait_for, Args, Gpu, Unmapped, RING_IOVA};
use vfio_client::rvgpu::*;
use vfio_client::tap::{ensure, es};
use vfio_client::{Mmap, OpenPath, Prot};

/// How many results one run reports.
const RESULTS: usize = 5;
const PAGE: usize = 4096;
/// The attacker's DMA buffer: 16 pages at this IOVA, inside a host buffer with a canary page on
/// each side (not mapped for DMA).
const BUF_IOVA: u64 = 0x4000_0000;
const BUF_PAGES: usize = 16;
const BUF_LEN: usize = BUF_PAGES * PAGE;
/// A read-only DMA mapping.
const RO_IOVA: u64 = 0x6000_0000;
const RO_LEN: usize = 4 * PAGE;
/// The canary of VRAM word `o` (its byte offset in the physical VRAM).
const VRAM_CANARY: u64 = 0xc0ff_ee00_0000_0000;
/// The canary of the unmapped guest pages and of the read-only mapping.
const GUEST_CANARY: u8 = 0xca;
const RO_CANARY: u8 = 0x7e;
/// The value the commands planted in unmapped memory would fill with.
const PLANTED: u32 = 0xbad0_bad0;

fn main() {
    let Args { mut tap, gpu, uuid_a, uuid_b: _, path, tag } = Args::parse("rvgpu-isolation");
    if let Err(e) = run(&mut tap, &gpu, &uuid_a, path, tag) {
        println!("# aborted: {e}");
    }
    tap.fill_to(RESULTS, &format!("[{tag}] isolation (not reached)"));
}

/// The attacker's slice in the physical VRAM, `(offset, size)` in bytes (`nvidia/placement`).
fn slice_of(gpu: &str, uuid: &str) -> Result<(usize, usize), String> {
    let p = format!("/sys/bus/pci/devices/{gpu}/nvidia/placement");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("read {p}: {e}"))?;
    let line = text.lines().find(|l| l.contains(uuid)).ok_or_else(|| format!("{uuid} not in {p}:\n{text}"))?;
    let mib = |w: Option<&str>| -> Result<usize, String> {
        w.and_then(|w| w.strip_suffix('M'))
            .and_then(|n| n.parse::<usize>().ok())
            .map(|n| n << 20)
            .ok_or_else(|| format!("bad placement line {line:?}"))
    };
    let mut w = line.split_whitespace();
    Ok((mib(w.next())?, mib(w.next())?))
}

/// The physical VRAM, mapped through the board's BAR0 (`resource0`).
fn map_vram(gpu: &str) -> Result<Mmap, String> {
    let p = format!("/sys/bus/pci/devices/{gpu}/resource0");
    let f = OpenOptions::new().read(true).write(true).open(&p).map_err(|e| format!("open {p}: {e}"))?;
    let len = f.metadata().map_err(es)?.len() as usize;
    Mmap::map_fd(f.as_fd(), 0, len, Prot::RW).map_err(|e| format!("mmap {p}: {e}"))
}

fn words(b: &[u8]) -> impl Iterator<Item = (usize, u64)> + '_ {
    b.chunks_exact(8).enumerate().map(|(i, c)| (i * 8, u64::from_le_bytes(c.try_into().unwrap())))
}

/// One attack: what it is, its commands (or ring manipulation), and what it must report.
struct Attack {
    what: &'static str,
    cmds: Vec<Cmd>,
}

fn attacks(fb: u32) -> Vec<Attack> {
    let buf_end = BUF_IOVA + BUF_LEN as u64;
    let a = |what, cmds| Attack { what, cmds };
    vec![
        a("FILL ending past the framebuffer", vec![Cmd::fill(fb - 4, 4096, 8, 1, 0x1111_1111)]),
        a("FILL whose last line is past the framebuffer", vec![Cmd::fill(fb - 4096, 4096, 4096, 2, 0x1111_1111)]),
        a("FILL with stride x height wrapping 32 bits", vec![Cmd::fill(0, 0x8000_0000, 4, 3, 0x1111_1111)]),
        a("FILL at an offset wrapping 32 bits", vec![Cmd::fill(0xffff_fffc, 4096, 8, 1, 0x1111_1111)]),
        a("FILL of a huge width", vec![Cmd::fill(0, 0xffff_fffc, 0xffff_fffc, 1, 0x1111_1111)]),
        a("FILL wrapping with stride 0xfffff000", vec![Cmd::fill(4096, 0xffff_f000, 16, 0x1_0001u32, 0x1111_1111)]),
        a("COPY_TO_FB ending past the framebuffer", vec![Cmd::copy_to_fb(BUF_IOVA, 4096, fb - 2048, 4096, 4096, 1)]),
        a("COPY_TO_FB wrapping 32 bits", vec![Cmd::copy_to_fb(BUF_IOVA, 16, 0xffff_fff0, 0x8000_0000, 16, 3)]),
        a("COPY_FROM_FB from past the framebuffer", vec![Cmd::copy_from_fb(BUF_IOVA, 4096, fb - 2048, 4096, 4096, 2)]),
        a("COPY_FROM_FB of a rectangle wrapping 32 bits", vec![Cmd::copy_from_fb(BUF_IOVA, 64, 0, 0x8000_0000, 64, 4)]),
        a("COPY_FROM_FB at an offset wrapping 32 bits", vec![Cmd::copy_from_fb(BUF_IOVA, 64, 0xffff_ffc0, 64, 128, 1)]),
        a("COPY_TO_FB from across the mapping's end", vec![Cmd::copy_to_fb(buf_end - 2048, 4096, 0, 4096, 4096, 1)]),
        a(
            "COPY_TO_FB from the unmapped page before the mapping",
            vec![Cmd::copy_to_fb(BUF_IOVA - 4096, 4096, 0, 4096, 4096, 1)],
        ),
        a(
            "COPY_FROM_FB into across the mapping's end",
            vec![Cmd::copy_from_fb(buf_end - 2048, 4096, 0, 4096, 4096, 1)],
        ),
        a(
            "COPY_FROM_FB into the unmapped page before the mapping",
            vec![Cmd::copy_from_fb(BUF_IOVA - 4096, 4096, 0, 4096, 4096, 1)],
        ),
        a(
            "COPY_FROM_FB with an IOVA stride reaching 4 GiB on",
            vec![Cmd::copy_from_fb(BUF_IOVA, 0xffff_ffff, 0, 4096, 16, 4)],
        ),
        a("COPY_FROM_FB at a wrapping IOVA", vec![Cmd::copy_from_fb(u64::MAX - 2047, 4096, 0, 4096, 4096, 1)]),
        a("COPY_FROM_FB into the read-only mapping", vec![Cmd::copy_from_fb(RO_IOVA, 4096, 0, 4096, 4096, 1)]),
        a("FENCE into the read-only mapping", vec![Cmd::fence(RO_IOVA + 64, 0x5151_5151)]),
        a("FENCE just past the mapping", vec![Cmd::fence(buf_end, 0x5151_5151)]),
        a("FENCE at a wrapping IOVA", vec![Cmd::fence(u64::MAX - 3, 0x5151_5151)]),
    ]
}

fn run(tap: &mut vfio_client::tap::Tap, gpu: &str, ua: &str, path: OpenPath, tag: &str) -> Result<(), String> {
    let t = |s: &str| format!("[{tag}] isolation: {s}");
    let (soff, ssize) = slice_of(gpu, ua)?;
    let mut vram = map_vram(gpu)?;
    let vlen = vram.len();
    println!("# attacker {ua}: slice {}M..{}M of {}M of VRAM", soff >> 20, (soff + ssize) >> 20, vlen >> 20);
    ensure(soff > 0 && soff + ssize < vlen, || "the attacker's slice has no neighbour on one side".into())?;
    // The canaries outside the slice.
    for (o, w) in vram.as_mut_slice().chunks_exact_mut(8).enumerate() {
        let off = o * 8;
        if off < soff || off >= soff + ssize {
            w.copy_from_slice(&(VRAM_CANARY | off as u64).to_le_bytes());
        }
    }
    let before: Vec<u8> = vram.as_slice().to_vec();

    // Guest memory: canary page, 16 mapped pages, canary page; and a read-only mapping.
    let mut host = Mmap::anonymous(BUF_LEN + 2 * PAGE).map_err(es)?;
    host.as_mut_slice().fill(GUEST_CANARY);
    host.as_mut_slice()[PAGE..PAGE + BUF_LEN].fill(0);
    let mut ro = Mmap::anonymous(RO_LEN).map_err(es)?;
    ro.as_mut_slice().fill(RO_CANARY);

    let un = Unmapped::open(ua, path)?;
    let fb = un.usable();
    let mut g = un.map(fb, 4096)?;
    g.enable()?;
    g.dev
        .map_dma_raw(host.addr() + PAGE as u64, BUF_IOVA, BUF_LEN as u64, true, true)
        .map_err(|e| format!("map the buffer: {e}"))?;
    g.dev
        .map_dma_raw(ro.addr(), RO_IOVA, RO_LEN as u64, true, false)
        .map_err(|e| format!("map the read-only buffer: {e}"))?;
    g.setup_ring()?;
    g.clear()?;
    g.set_reg(REG_IRQ_ENABLE, 0)?;

    let mut silent = Vec::new();
    // The engine runs a doorbell's commands from the GPU's scheduler, later: an attack is
    // reported once ERROR is set (up to 5 s), and the engine then stops (not busy).
    let idle = |g: &Gpu| {
        wait_for(Duration::from_secs(5), || Ok(g.reg(REG_ERROR)? != ERR_NONE))?;
        wait_for(Duration::from_secs(30), || Ok(g.reg(REG_ENGINE_STATUS)? & 1 == 0))
    };
    for a in attacks(fb as u32) {
        g.set_reg(REG_ERROR, 0)?;
        g.submit(&a.cmds)?;
        if !idle(&g)? {
            return Err(format!("{}: the engine is still busy after 30 s; {}", a.what, g.dump()));
        }
        let err = g.reg(REG_ERROR)?;
        println!("# {}: ERROR {err}", a.what);
        if err == ERR_NONE {
            silent.push(a.what);
        }
        g.restart_ring()?;
    }
    // What the copies wrote into guest memory, before the ring attack clears the buffer's last page.
    let leaked = words(&host.as_slice()[PAGE..PAGE + BUF_LEN]).filter(|(_, w)| w >> 32 == VRAM_CANARY >> 32).count();
    // The ring itself: its second page unmapped (holding FILL commands of PLANTED), then bad TAILs.
    let mut ring_attacks: Vec<(&str, u32)> = Vec::new();
    {
        let planted = Cmd::fill(0, 4096, 4096, 4, PLANTED).to_bytes();
        // The canary page after the buffer gets commands: if the engine ran them, A's framebuffer
        // would hold PLANTED.
        let after = PAGE + BUF_LEN;
        for c in 0..PAGE / planted.len() {
            host.as_mut_slice()[after + c * planted.len()..after + (c + 1) * planted.len()].copy_from_slice(&planted);
        }
        // The ring's first page, the buffer's last: NOPs (zeros) up to the unmapped page.
        host.as_mut_slice()[BUF_LEN..PAGE + BUF_LEN].fill(0);
        let base = BUF_IOVA + (BUF_LEN - PAGE) as u64;
        g.set_reg(REG_ERROR, 0)?;
        g.set_reg(REG_RING_BASE_LO, base as u32)?;
        g.set_reg(REG_RING_BASE_HI, (base >> 32) as u32)?;
        g.set_reg(REG_RING_SIZE, 8192)?;
        // TAIL past the first page: the engine reads on into the unmapped page.
        g.set_reg(REG_RING_TAIL, 8192 - 32)?;
        if !idle(&g)? {
            return Err(format!("ring into unmapped memory: the engine is still busy after 30 s; {}", g.dump()));
        }
        ring_attacks.push(("a ring running into unmapped memory", g.reg(REG_ERROR)?));
        for (what, tail) in [("TAIL beyond RING_SIZE", 8192 + 32), ("TAIL not a multiple of 32", 48)] {
            g.set_reg(REG_ERROR, 0)?;
            g.set_reg(REG_RING_SIZE, 8192)?;
            g.set_reg(REG_RING_TAIL, tail)?;
            idle(&g)?;
            ring_attacks.push((what, g.reg(REG_ERROR)?));
        }
        // A ring in memory that is not mapped at all.
        g.set_reg(REG_ERROR, 0)?;
        g.set_reg(REG_RING_BASE_LO, 0x7000_0000)?;
        g.set_reg(REG_RING_BASE_HI, 0)?;
        g.set_reg(REG_RING_SIZE, 4096)?;
        g.set_reg(REG_RING_TAIL, 64)?;
        idle(&g)?;
        ring_attacks.push(("a ring in unmapped memory", g.reg(REG_ERROR)?));
    }
    for (what, err) in &ring_attacks {
        println!("# {what}: ERROR {err}");
        if *err == ERR_NONE {
            silent.push(what);
        }
    }
    g.set_reg(REG_RING_BASE_LO, RING_IOVA as u32)?;
    g.set_reg(REG_RING_BASE_HI, (RING_IOVA >> 32) as u32)?;
    g.restart_ring()?;

    // 1. The VRAM outside the slice.
    let now = vram.as_slice();
    let changed: Vec<usize> = (0..vlen)
        .step_by(8)
        .filter(|&o| (o < soff || o >= soff + ssize) && now[o..o + 8] != before[o..o + 8])
        .collect();
    tap.result(
        &t("the VRAM outside the attacker's slice is unchanged, byte for byte"),
        ensure(changed.is_empty(), || {
            let o = changed[0];
            format!(
                "{} words changed, the first at {o:#x} ({:#x}, was {:#x})",
                changed.len(),
                u64::from_le_bytes(now[o..o + 8].try_into().unwrap()),
                u64::from_le_bytes(before[o..o + 8].try_into().unwrap())
            )
        }),
    );
    // 2. Guest canaries.
    let h = host.as_slice();
    let bad_before = h[..PAGE].iter().filter(|&&b| b != GUEST_CANARY).count();
    let ro_bad = ro.as_slice().iter().filter(|&&b| b != RO_CANARY).count();
    // The page after the buffer holds the planted commands: unchanged means equal to them.
    let planted = Cmd::fill(0, 4096, 4096, 4, PLANTED).to_bytes();
    let bad_after = h[PAGE + BUF_LEN..].chunks_exact(planted.len()).filter(|c| *c != planted).count();
    tap.result(
        &t("the unmapped guest pages around the DMA buffer and the read-only mapping are unchanged"),
        ensure(bad_before == 0 && bad_after == 0 && ro_bad == 0, || {
            format!("{bad_before} bytes of the page before changed, {bad_after} commands of the page after, {ro_bad} bytes of the read-only mapping")
        }),
    );
    // 3. Nothing from outside the slice in guest memory; no planted command ran.
    let fbm = g.fb.as_slice();
    let ran = fbm.chunks_exact(4).filter(|c| u32::from_le_bytes((*c).try_into().unwrap()) == PLANTED).count();
    let canary_in_fb = words(fbm).filter(|(_, w)| w >> 32 == VRAM_CANARY >> 32).count();
    tap.result(
        &t("no data from outside the slice reached guest memory or the framebuffer, and no command in unmapped memory ran"),
        ensure(leaked == 0 && ran == 0 && canary_in_fb == 0, || {
            format!("{leaked} words of other slices in the DMA buffer, {canary_in_fb} in the framebuffer; {ran} framebuffer words hold the planted commands' value")
        }),
    );
    // 4. Every attack reported; the engine works.
    tap.result(
        &t("every attack is reported (ERROR set), none passes silently"),
        ensure(silent.is_empty(), || format!("no error for: {}", silent.join(", "))),
    );
    let r = (|| {
        g.set_reg(REG_ERROR, 0)?;
        g.set_scratch(0, 0)?;
        g.run(&[Cmd::fill(0, 64, 64, 1, 0x4242_4242), Cmd::fence(Gpu::scratch_iova(0), 0x4343)])?;
        let (err, mem) = (g.reg(REG_ERROR)?, g.scratch(0)?);
        ensure(err == ERR_NONE && mem == 0x4343, || format!("ERROR {err}, fence {mem:#x}"))?;
        let v = u32::from_le_bytes(g.fb.as_slice()[..4].try_into().unwrap());
        ensure(v == 0x4242_4242, || format!("framebuffer word 0 is {v:#x} after the FILL"))
    })();
    tap.result(&t("the attacker's engine still works afterwards"), r);
    Ok(())
}
