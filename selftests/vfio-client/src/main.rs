// SPDX-License-Identifier: GPL-2.0
//! `vfio-client`: inspect and poke a VFIO mediated device from the command line. Plain text lines,
//! one fact per line, for tests to grep.

use std::fmt::Write as _;
use std::process::ExitCode;

use vfio_client::pci::Bar;
use vfio_client::uapi::{VFIO_DEVICE_FLAGS_PCI, VFIO_PCI_CONFIG_REGION_INDEX};
use vfio_client::{pci_irq_name, pci_region_name, Backend, Device, OpenPath, PciConfig, RegionCap};

const USAGE: &str = "\
usage: vfio-client COMMAND UUID ARGS... [--iommufd] [--width N]

  info   UUID                         device flags, regions (sparse areas, caps), irqs
  read   UUID REGION OFFSET LEN       hex dump of LEN bytes at OFFSET in region REGION
  write  UUID REGION OFFSET HEXBYTES  write bytes (e.g. 0102ff or 01:02:ff) at OFFSET
  config UUID                         decode the 256-byte PCI config space (region 7)

--width N (1, 2, 4 or 8) makes read/write access the region N bytes per pread/pwrite, as a guest's
loads and stores would; without it the whole range is one pread/pwrite.

UUID names a device under /sys/bus/mdev/devices. The device is opened through the group/container
path (/dev/vfio/vfio + /dev/vfio/N) unless --iommufd selects the cdev path (/dev/vfio/devices/vfioN
+ /dev/iommu). Numbers are decimal or 0x-prefixed hex. Exit status: 0 ok, 1 failure, 2 usage.";

/// A failure to report: usage errors exit 2, the rest 1.
#[derive(Debug)]
enum Failure {
    Usage(String),
    Run(String),
}

type CliResult<T = ()> = Result<T, Failure>;

fn run_err(e: impl std::fmt::Display) -> Failure {
    Failure::Run(e.to_string())
}

fn parse_num(what: &str, s: &str) -> CliResult<u64> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| Failure::Usage(format!("bad {what} '{s}'")))
}

/// Hex bytes in order; ':', ',', '_', '-' and spaces between them are ignored.
fn parse_hex_bytes(s: &str) -> CliResult<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !matches!(b, b':' | b',' | b'_' | b'-' | b' ')).collect();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return Err(Failure::Usage(format!("bad HEXBYTES '{s}': need an even number of hex digits")));
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|t| u8::from_str_radix(t, 16).ok())
                .ok_or_else(|| Failure::Usage(format!("bad HEXBYTES '{s}'")))
        })
        .collect()
}

/// `OFFSET: xx xx ... |ascii|`, 16 bytes a line, offsets starting at `base`.
fn hexdump(base: u64, data: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        let _ = write!(out, "{:08x}:", base + 16 * i as u64);
        for b in chunk {
            let _ = write!(out, " {b:02x}");
        }
        out.push_str(&"   ".repeat(16 - chunk.len()));
        out.push_str("  |");
        out.extend(chunk.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }));
        out.push_str("|\n");
    }
    out
}

fn open(uuid: &str, iommufd: bool) -> CliResult<Device> {
    let path = if iommufd { OpenPath::Iommufd } else { OpenPath::Container };
    Device::open(uuid, path).map_err(|e| Failure::Run(format!("opening {uuid}: {e}")))
}

fn describe_backend(dev: &Device) -> String {
    match dev.backend() {
        Backend::Container { group, .. } => format!("path=container group={}", group.id()),
        Backend::Iommufd { devid, ioas_id, pt_id, .. } => {
            format!("path=iommufd devid={devid} ioas={ioas_id} pt={pt_id}")
        }
    }
}

fn cmd_info(dev: &Device) -> CliResult {
    let info = dev.info().map_err(|e| run_err(format!("VFIO_DEVICE_GET_INFO: {e}")))?;
    let pci = info.flags & VFIO_DEVICE_FLAGS_PCI != 0;
    println!("device {} {}", dev.name(), describe_backend(dev));
    println!("flags {:#x} {}", info.flags, info.flag_names().join("|"));
    println!("num_regions {}", info.num_regions);
    println!("num_irqs {}", info.num_irqs);
    for index in 0..info.num_regions {
        let name = if pci { pci_region_name(index).unwrap_or("-") } else { "-" };
        let r = match dev.region_info(index) {
            Ok(r) => r,
            Err(e) => {
                println!("region {index} {name} error errno={} {e}", e.raw_os_error().unwrap_or(0));
                continue;
            }
        };
        println!(
            "region {index} {name} size={:#x} offset={:#x} flags={:#x} {} argsz={}",
            r.size,
            r.offset,
            r.flags,
            r.flag_names().join("|"),
            r.argsz
        );
        for cap in &r.caps {
            match cap {
                RegionCap::SparseMmap { version, areas } => {
                    println!("region {index} cap sparse-mmap version={version} nr_areas={}", areas.len());
                    for a in areas {
                        println!("region {index} sparse offset={:#x} size={:#x}", a.offset, a.size);
                    }
                }
                RegionCap::Type { version, type_, subtype } => {
                    println!("region {index} cap type version={version} type={type_:#x} subtype={subtype:#x}");
                }
                RegionCap::MsixMappable { version } => println!("region {index} cap msix-mappable version={version}"),
                RegionCap::Unknown { id, version, data } => {
                    println!("region {index} cap id={id} version={version} len={}", data.len());
                }
            }
        }
    }
    for index in 0..info.num_irqs {
        let name = if pci { pci_irq_name(index).unwrap_or("-") } else { "-" };
        let i = match dev.irq_info(index) {
            Ok(i) => i,
            Err(e) => {
                println!("irq {index} {name} error errno={} {e}", e.raw_os_error().unwrap_or(0));
                continue;
            }
        };
        println!("irq {index} {name} count={} flags={:#x} {}", i.count, i.flags, i.flag_names().join("|"));
    }
    Ok(())
}

/// `(start, len)` pieces of `total` bytes, `width` at a time (`None`: one piece).
fn pieces(total: usize, width: Option<usize>) -> Vec<(usize, usize)> {
    let w = width.unwrap_or(total).max(1);
    (0..total).step_by(w).map(|s| (s, w.min(total - s))).collect()
}

fn cmd_read(dev: &Device, region: u32, offset: u64, len: u64, width: Option<usize>) -> CliResult {
    let r = dev.region_info(region).map_err(|e| run_err(format!("VFIO_DEVICE_GET_REGION_INFO({region}): {e}")))?;
    let len = usize::try_from(len).map_err(|_| Failure::Usage("LEN too large".into()))?;
    let mut buf = vec![0u8; len];
    for (start, n) in pieces(len, width) {
        let at = offset + start as u64;
        let fail = |e: String| run_err(format!("pread region {region} offset {at:#x} len {n}: {e}"));
        let got = dev.read_region(&r, at, &mut buf[start..start + n]).map_err(|e| fail(e.to_string()))?;
        if got != n {
            return Err(fail(format!("short read ({got} bytes)")));
        }
    }
    print!("{}", hexdump(offset, &buf));
    Ok(())
}

fn cmd_write(dev: &Device, region: u32, offset: u64, data: &[u8], width: Option<usize>) -> CliResult {
    let r = dev.region_info(region).map_err(|e| run_err(format!("VFIO_DEVICE_GET_REGION_INFO({region}): {e}")))?;
    for (start, n) in pieces(data.len(), width) {
        let at = offset + start as u64;
        let fail = |e: String| run_err(format!("pwrite region {region} offset {at:#x} len {n}: {e}"));
        let put = dev.write_region(&r, at, &data[start..start + n]).map_err(|e| fail(e.to_string()))?;
        if put != n {
            return Err(fail(format!("short write ({put} bytes)")));
        }
    }
    println!("wrote {} bytes to region {region} at offset {offset:#x}", data.len());
    Ok(())
}

fn cmd_config(dev: &Device) -> CliResult {
    let index = VFIO_PCI_CONFIG_REGION_INDEX;
    let r = dev.region_info(index).map_err(|e| run_err(format!("VFIO_DEVICE_GET_REGION_INFO({index}): {e}")))?;
    let len = r.size.min(256) as usize;
    let mut buf = vec![0u8; len];
    dev.read_region_exact(&r, 0, &mut buf).map_err(|e| run_err(format!("pread config space: {e}")))?;
    let c = PciConfig::new(buf);
    println!("config_size {:#x}", r.size);
    println!("vendor {:#06x}", c.vendor_id());
    println!("device {:#06x}", c.device_id());
    println!("command {:#06x}", c.command());
    println!("status {:#06x}", c.status());
    println!("revision {:#04x}", c.revision());
    println!("class {:#08x}", c.class_code());
    println!("header_type {:#04x}", c.header_type());
    println!("subsystem {:#06x}:{:#06x}", c.subsystem_vendor_id(), c.subsystem_id());
    println!("interrupt pin={} line={}", c.interrupt_pin(), c.interrupt_line());
    for (i, bar) in c.bars().iter().enumerate() {
        let raw = c.bar_raw(i);
        // The BAR's region tells an implemented BAR from an unimplemented one (both may read 0).
        let size = dev.region_info(i as u32).map(|r| r.size).unwrap_or(0);
        match bar {
            Bar::Upper => println!("bar{i} upper-half raw={raw:#010x}"),
            _ if size == 0 => println!("bar{i} unimplemented raw={raw:#010x}"),
            Bar::Io { addr } => println!("bar{i} io addr={addr:#x} size={size:#x} raw={raw:#010x}"),
            Bar::Mem32 { addr, prefetchable } => {
                println!("bar{i} mem32 addr={addr:#x} prefetchable={prefetchable} size={size:#x} raw={raw:#010x}")
            }
            Bar::Mem64 { addr, prefetchable } => {
                println!("bar{i} mem64 addr={addr:#x} prefetchable={prefetchable} size={size:#x} raw={raw:#010x}")
            }
        }
    }
    for cap in c.capabilities() {
        println!("cap {:#04x} id={:#04x} {}", cap.offset, cap.id, cap.name());
    }
    print!("{}", hexdump(0, c.bytes()));
    Ok(())
}

/// Options that may appear anywhere on the command line.
#[derive(Debug, Default)]
struct Opts {
    iommufd: bool,
    width: Option<usize>,
    help: bool,
}

/// Separates options from positional arguments.
fn parse_opts(args: Vec<String>) -> CliResult<(Opts, Vec<String>)> {
    let mut opts = Opts::default();
    let mut pos = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        match name.as_str() {
            "--iommufd" if inline.is_none() => opts.iommufd = true,
            "-h" | "--help" => opts.help = true,
            "--width" => {
                let v = inline.or_else(|| it.next()).ok_or_else(|| Failure::Usage("--width needs a value".into()))?;
                let w = parse_num("--width", &v)?;
                if !matches!(w, 1 | 2 | 4 | 8) {
                    return Err(Failure::Usage(format!("--width must be 1, 2, 4 or 8, not {w}")));
                }
                opts.width = Some(w as usize);
            }
            n if n.starts_with("--") => return Err(Failure::Usage(format!("unknown option '{a}'"))),
            _ => pos.push(a),
        }
    }
    Ok((opts, pos))
}

fn run(args: Vec<String>) -> CliResult {
    let (opts, pos) = parse_opts(args)?;
    let pos: Vec<&str> = pos.iter().map(String::as_str).collect();
    if opts.help || matches!(pos.first(), None | Some(&"help")) {
        println!("{USAGE}");
        return Ok(());
    }
    let want = |n: usize| -> CliResult {
        if pos.len() == n {
            Ok(())
        } else {
            Err(Failure::Usage(format!("'{}' takes {} arguments", pos[0], n - 1)))
        }
    };
    let region = |s: &str| -> CliResult<u32> {
        u32::try_from(parse_num("REGION", s)?).map_err(|_| Failure::Usage("REGION too large".into()))
    };
    match pos[0] {
        "info" => {
            want(2)?;
            cmd_info(&open(pos[1], opts.iommufd)?)
        }
        "read" => {
            want(5)?;
            let (r, offset, len) = (region(pos[2])?, parse_num("OFFSET", pos[3])?, parse_num("LEN", pos[4])?);
            cmd_read(&open(pos[1], opts.iommufd)?, r, offset, len, opts.width)
        }
        "write" => {
            want(5)?;
            let (r, offset, data) = (region(pos[2])?, parse_num("OFFSET", pos[3])?, parse_hex_bytes(pos[4])?);
            cmd_write(&open(pos[1], opts.iommufd)?, r, offset, &data, opts.width)
        }
        "config" => {
            want(2)?;
            cmd_config(&open(pos[1], opts.iommufd)?)
        }
        other => Err(Failure::Usage(format!("unknown command '{other}'"))),
    }
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("vfio-client: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Run(msg)) => {
            eprintln!("vfio-client: {msg}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_hex() {
        assert!(matches!(parse_num("X", "0x10"), Ok(16)));
        assert!(matches!(parse_num("X", "10"), Ok(10)));
        assert!(parse_num("X", "zz").is_err());
        assert!(matches!(parse_hex_bytes("de:ad be_ef").as_deref(), Ok([0xde, 0xad, 0xbe, 0xef])));
        assert!(parse_hex_bytes("abc").is_err());
        assert!(parse_hex_bytes("").is_err());
        assert!(parse_hex_bytes("zz").is_err());
    }

    #[test]
    fn hexdump_format() {
        let d: Vec<u8> = (0x30..0x42).collect();
        let s = hexdump(0x10, &d);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "00000010: 30 31 32 33 34 35 36 37 38 39 3a 3b 3c 3d 3e 3f  |0123456789:;<=>?|");
        assert_eq!(lines[1], format!("00000020: 40 41{}  |@A|", "   ".repeat(14)));
    }

    #[test]
    fn usage_errors() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(matches!(run(v(&["bogus"])), Err(Failure::Usage(_))));
        assert!(matches!(run(v(&["info"])), Err(Failure::Usage(_))));
        assert!(matches!(run(v(&["read", "u", "x", "0", "4"])), Err(Failure::Usage(_))));
        assert!(matches!(run(v(&["info", "u", "--bogus"])), Err(Failure::Usage(_))));
        assert!(matches!(run(v(&["help"])), Ok(())));
        assert!(matches!(run(v(&["read", "u", "0", "0", "4", "--width", "3"])), Err(Failure::Usage(_))));
        assert!(matches!(run(v(&["read", "u", "0", "0", "4", "--width"])), Err(Failure::Usage(_))));
        assert!(matches!(run(v(&["info", "u", "--iommufd=1"])), Err(Failure::Usage(_))));
    }

    #[test]
    fn options_anywhere() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (o, p) = parse_opts(v(&["read", "--width=4", "u", "--iommufd", "7", "0", "16"])).expect("valid");
        assert!(o.iommufd);
        assert_eq!(o.width, Some(4));
        assert_eq!(p, v(&["read", "u", "7", "0", "16"]));
    }

    #[test]
    fn access_pieces() {
        assert_eq!(pieces(10, Some(4)), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(pieces(10, None), vec![(0, 10)]);
        assert!(pieces(0, None).is_empty());
    }
}
