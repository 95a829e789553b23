// SPDX-License-Identifier: GPL-2.0
//! Engine load on one vGPU, for the scheduler's tests and benchmark (`selftests/vm/88-scheduler.py`,
//! `selftests/bench/sched.py`).
//!
//! `rvgpu-engine-load UUID MODE SECONDS [--iommufd] [--linger]` opens the vGPU, sets up its
//! ring, prints `ready` and then for SECONDS keeps its engine busy in one way:
//!
//! * `saturate`: the ring always holds at least 32 FILLs of 1 MiB (4096-byte lines);
//! * `huge`: the ring always holds 2 FILLs of the whole usable framebuffer (long commands the
//!   scheduler must preempt);
//! * `small:MS`: one FILL of one 4 KiB line every MS milliseconds (a latency-bound vGPU);
//! * `frames`: "draw, wait for vblank" frames (a one-line FILL and a WAIT_VBLANK), kept queued;
//! * `stop`: opens the vGPU, prints `ready` and waits (a running vGPU that submits nothing).
//!
//! It then prints one line, `result mode=MODE seconds=S completed=N fps=F`, where `fps` is the
//! frames completed per second (the `frames` mode; 0 otherwise), measured from COMPLETED between
//! the first and the last second, and exits 0; on any error it prints `error: ...` and exits 1.
//! Stopping it with SIGTERM before SECONDS is fine (the device is closed by the kernel).

use std::io::Write;
use std::thread::sleep;
use std::time::{Duration, Instant};

use vfio_client::harness::{Gpu, Unmapped, RING_SIZE};
use vfio_client::rvgpu::*;
use vfio_client::OpenPath;

const LINE: u32 = 4096;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Saturate,
    Huge,
    Small(u64),
    Frames,
    Stop,
}

fn parse_mode(s: &str) -> Option<Mode> {
    match s {
        "saturate" => Some(Mode::Saturate),
        "huge" => Some(Mode::Huge),
        "frames" => Some(Mode::Frames),
        "stop" => Some(Mode::Stop),
        _ => s.strip_prefix("small:").and_then(|ms| ms.parse().ok()).map(Mode::Small),
    }
}

/// Commands queued and not yet run.
fn queued(g: &Gpu) -> Result<u32, String> {
    let head = g.reg(REG_RING_HEAD)?;
    Ok(((g.tail + RING_SIZE - head) % RING_SIZE) / CMD_BYTES)
}

/// Keeps at least `depth` commands from `make` queued.
fn top_up(g: &mut Gpu, depth: u32, make: &dyn Fn(u32) -> Vec<Cmd>, n: &mut u32) -> Result<(), String> {
    let mut pushed = false;
    while queued(g)? < depth {
        for c in make(*n) {
            g.push(&c)?;
        }
        *n = n.wrapping_add(1);
        pushed = true;
    }
    if pushed {
        g.doorbell()?;
    }
    Ok(())
}

fn run(uuid: &str, mode: Mode, seconds: f64, path: OpenPath, linger: bool) -> Result<(u32, f64), String> {
    let dev = Unmapped::open(uuid, path)?;
    let usable = dev.usable();
    let mut g = dev.map(usable, 4096)?;
    g.enable()?;
    g.setup_ring()?;
    g.set_reg(REG_IRQ_ENABLE, 0)?;
    let lines = (usable / LINE as usize) as u32;
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let total = Duration::from_secs_f64(seconds);
    let c0 = g.reg(REG_COMPLETED)?;
    let mut mark: Option<(Instant, u32)> = None;
    let mut n = 0u32;
    let fill = move |n: u32, h: u32| Cmd::fill(0, LINE, LINE, h, 0x0101_0101u32.wrapping_mul(n & 0xff));
    while start.elapsed() < total {
        match mode {
            Mode::Saturate => {
                top_up(&mut g, 32, &|n| vec![fill(n, 256.min(lines))], &mut n)?;
                sleep(Duration::from_millis(2));
            }
            Mode::Huge => {
                top_up(&mut g, 2, &|n| vec![fill(n, lines)], &mut n)?;
                sleep(Duration::from_millis(2));
            }
            Mode::Small(ms) => {
                g.push(&fill(n, 1))?;
                g.doorbell()?;
                n = n.wrapping_add(1);
                sleep(Duration::from_millis(ms));
            }
            Mode::Frames => {
                top_up(&mut g, 16, &|n| vec![fill(n, 1), Cmd::wait_vblank()], &mut n)?;
                if mark.is_none() && start.elapsed() >= Duration::from_secs(1) {
                    mark = Some((Instant::now(), g.reg(REG_COMPLETED)?));
                }
                sleep(Duration::from_millis(2));
            }
            Mode::Stop => sleep(Duration::from_millis(20)),
        }
    }
    let end = (Instant::now(), g.reg(REG_COMPLETED)?);
    let err = g.reg(REG_ERROR)?;
    if err != 0 {
        return Err(format!("ERROR {err} at {:#x}; {}", g.reg(REG_ERROR_HEAD)?, g.dump()));
    }
    let fps = match mark {
        Some((t, c)) if mode == Mode::Frames => {
            f64::from(end.1.wrapping_sub(c)) / 2.0 / end.0.duration_since(t).as_secs_f64()
        }
        _ => 0.0,
    };
    if linger {
        println!("result mode=linger seconds={seconds} completed={} fps={fps:.2}", end.1.wrapping_sub(c0));
        std::io::stdout().flush().map_err(|e| e.to_string())?;
        loop {
            sleep(Duration::from_secs(1));
        }
    }
    Ok((end.1.wrapping_sub(c0), fps))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iommufd = args.iter().any(|a| a == "--iommufd");
    let linger = args.iter().any(|a| a == "--linger");
    let pos: Vec<&String> = args.iter().skip(1).filter(|a| !a.starts_with("--")).collect();
    let parsed = match pos.as_slice() {
        [uuid, mode, secs] => {
            parse_mode(mode).zip(secs.parse::<f64>().ok()).map(|(m, s)| (uuid.as_str(), mode.as_str(), m, s))
        }
        _ => None,
    };
    let Some((uuid, name, mode, seconds)) = parsed else {
        eprintln!("usage: rvgpu-engine-load UUID saturate|huge|small:MS|frames|stop SECONDS [--iommufd] [--linger]");
        std::process::exit(2);
    };
    let path = if iommufd { OpenPath::Iommufd } else { OpenPath::Container };
    match run(uuid, mode, seconds, path, linger) {
        Ok((completed, fps)) => println!("result mode={name} seconds={seconds} completed={completed} fps={fps:.2}"),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
