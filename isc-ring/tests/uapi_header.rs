//! The kernel module's C header (`driver/include/uapi/isc.h`) and
//! `isc_ring::abi` describe the same ABI.
//!
//! The C program is generated from the Rust tables (`ABI_SIZES`,
//! `ABI_OFFSETS`) and the Rust constants, compiled with the system C compiler
//! against the header, and run; its output is compared with the Rust values.
//! A type, field or constant missing from the header fails the compilation,
//! a different value fails the comparison: there is no second hand-kept list
//! that could drift.

use isc_ring::abi::{
    self, slot_flags, BindArgs, BindRequest, BindResponse, IndexLine, RingHeader, RingInfo,
    RingRequest, SlotHeader, ABI_OFFSETS, ABI_SIZES,
};
use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::mem::{align_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `_IOC` direction bits, as in `include/uapi/asm-generic/ioctl.h`.
const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// The generic Linux ioctl number encoding (x86, arm64, riscv).
fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u64 {
    let size = u32::try_from(size).expect("ioctl argument size fits 14 bits");
    assert!(size < 1 << 14, "ioctl argument too large to encode");
    u64::from(dir << 30 | size << 16 | u32::from(ty) << 8 | u32::from(nr))
}

/// Every constant the header must define, as (C expression, Rust value).
fn constants() -> Vec<(&'static str, u64)> {
    vec![
        ("ISC_RING_MAGIC", abi::RING_MAGIC.into()),
        ("ISC_ABI_VERSION", abi::ABI_VERSION.into()),
        ("ISC_MAX_MSZ", abi::MAX_MSZ.into()),
        ("ISC_MAX_SLOTS", abi::MAX_SLOTS.into()),
        ("ISC_MAX_RING_BYTES", abi::MAX_RING_BYTES.into()),
        ("ISC_REGION_ALIGN", abi::REGION_ALIGN.into()),
        ("ISC_SLOT_ALIGN", abi::SLOT_ALIGN.into()),
        ("ISC_SLOTS_OFFSET", abi::SLOTS_OFFSET.into()),
        ("ISC_CONSUMER_WAITING", abi::CONSUMER_WAITING.into()),
        ("ISC_PRODUCER_WAITING", abi::PRODUCER_WAITING.into()),
        ("ISC_SLOT_KIND_MASK", slot_flags::KIND_MASK.into()),
        ("ISC_SLOT_KIND_MSG", slot_flags::KIND_MSG.into()),
        ("ISC_SLOT_KIND_BOUND", slot_flags::KIND_BOUND.into()),
        ("ISC_SLOT_KIND_UNBOUND", slot_flags::KIND_UNBOUND.into()),
        ("ISC_SLOT_COMPLETED", slot_flags::COMPLETED.into()),
        ("ISC_SLOT_NOT_DELIVERED", slot_flags::NOT_DELIVERED.into()),
        ("ISC_IOC_MAGIC", abi::IOC_MAGIC.into()),
        ("ISC_IOC_NR_BIND", abi::IOC_NR_BIND.into()),
        ("ISC_IOC_NR_KICK", abi::IOC_NR_KICK.into()),
        (
            "ISC_IOC_BIND",
            ioc(
                IOC_READ | IOC_WRITE,
                abi::IOC_MAGIC,
                abi::IOC_NR_BIND,
                size_of::<BindArgs>(),
            ),
        ),
        (
            "ISC_IOC_KICK",
            ioc(IOC_NONE, abi::IOC_MAGIC, abi::IOC_NR_KICK, 0),
        ),
    ]
}

/// Alignment of each type of `ABI_SIZES` (C users embed these structs too).
fn alignments() -> Vec<(&'static str, usize)> {
    vec![
        ("ring_info", align_of::<RingInfo>()),
        ("index_line", align_of::<IndexLine>()),
        ("ring_header", align_of::<RingHeader>()),
        ("slot_header", align_of::<SlotHeader>()),
        ("ring_request", align_of::<RingRequest>()),
        ("bind_request", align_of::<BindRequest>()),
        ("bind_response", align_of::<BindResponse>()),
        ("bind_args", align_of::<BindArgs>()),
    ]
}

/// The C program printing `<kind> <name> <value>` for everything checked.
fn c_program() -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"isc.h\"\n\nint main(void)\n{\n",
    );
    for (name, _) in ABI_SIZES {
        c.push_str(&format!(
            "\tprintf(\"size {name} %zu\\n\", sizeof(struct isc_{name}));\n"
        ));
    }
    for (name, _) in alignments() {
        c.push_str(&format!(
            "\tprintf(\"align {name} %zu\\n\", _Alignof(struct isc_{name}));\n"
        ));
    }
    for (path, _) in ABI_OFFSETS {
        let (ty, field) = path.split_once('.').expect("offsets are named type.field");
        c.push_str(&format!(
            "\tprintf(\"offset {path} %zu\\n\", offsetof(struct isc_{ty}, {field}));\n"
        ));
    }
    for (name, _) in constants() {
        c.push_str(&format!(
            "\tprintf(\"const {name} %llu\\n\", (unsigned long long)({name}));\n"
        ));
    }
    c.push_str("\treturn 0;\n}\n");
    c
}

/// Minimal `linux/types.h` and `linux/ioctl.h`, for systems without the
/// kernel's uapi headers (the header needs nothing else).
fn write_shim(dir: &Path) {
    let linux = dir.join("linux");
    fs::create_dir_all(&linux).expect("create shim dir");
    fs::write(
        linux.join("types.h"),
        "#include <stdint.h>\n\
         typedef uint32_t __u32;\ntypedef int32_t __s32;\ntypedef uint64_t __u64;\n\
         typedef __u64 __aligned_u64 __attribute__((aligned(8)));\n",
    )
    .expect("write shim types.h");
    fs::write(
        linux.join("ioctl.h"),
        "#define _IOC(d, t, n, s) (((d) << 30) | ((s) << 16) | ((t) << 8) | (n))\n\
         #define _IO(t, n) _IOC(0U, (t), (n), 0U)\n\
         #define _IOW(t, n, s) _IOC(1U, (t), (n), sizeof(s))\n\
         #define _IOR(t, n, s) _IOC(2U, (t), (n), sizeof(s))\n\
         #define _IOWR(t, n, s) _IOC(3U, (t), (n), sizeof(s))\n",
    )
    .expect("write shim ioctl.h");
}

/// Runs `cc` with `args`; `None` if there is no C compiler at all.
fn cc(args: &[&std::ffi::OsStr]) -> Option<std::process::Output> {
    match Command::new("cc").args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => panic!("running cc: {e}"),
    }
}

fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("uapi_header");
    fs::create_dir_all(&dir).expect("create work dir");
    dir
}

#[test]
fn c_header_matches_rust_abi() {
    let uapi = Path::new(env!("CARGO_MANIFEST_DIR")).join("../driver/include/uapi");
    assert!(
        uapi.join("isc.h").is_file(),
        "missing {}",
        uapi.join("isc.h").display()
    );
    let dir = work_dir();

    // Use the system's linux/*.h when the compiler finds them, else the shim.
    let probe = dir.join("probe.c");
    fs::write(
        &probe,
        "#include <linux/types.h>\n#include <linux/ioctl.h>\nint main(void) { return 0; }\n",
    )
    .expect("write probe");
    let probe_out = dir.join("probe");
    // Without a C compiler the header cannot be checked: that is a failure,
    // not a pass (the workspace's tests and the VM tests need one anyway).
    let Some(out) = cc(&[probe.as_os_str(), "-o".as_ref(), probe_out.as_os_str()]) else {
        panic!("no C compiler (`cc`) on PATH: the uapi header cannot be checked");
    };
    let mut includes = vec![format!("-I{}", uapi.display())];
    if !out.status.success() {
        let shim = dir.join("shim");
        write_shim(&shim);
        eprintln!("no linux/types.h, linux/ioctl.h: using the shim");
        includes.push(format!("-I{}", shim.display()));
    }

    let src = dir.join("abi.c");
    let bin = dir.join("abi");
    fs::write(&src, c_program()).expect("write abi.c");
    let mut args: Vec<&std::ffi::OsStr> = includes.iter().map(|s| s.as_ref()).collect();
    args.extend([
        "-std=c11".as_ref(),
        "-Wall".as_ref(),
        "-Werror".as_ref(),
        src.as_os_str(),
        "-o".as_ref(),
        bin.as_os_str(),
    ]);
    let out = cc(&args).expect("cc vanished");
    assert!(
        out.status.success(),
        "the C program against isc.h does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&bin).output().expect("run abi");
    assert!(run.status.success(), "abi program failed");
    let stdout = String::from_utf8(run.stdout).expect("utf-8 output");

    let mut c: HashMap<(String, String), u64> = HashMap::new();
    for line in stdout.lines() {
        let mut it = line.split_whitespace();
        let (Some(kind), Some(name), Some(value), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            panic!("unexpected output line {line:?}");
        };
        let value = value.parse().expect("numeric value");
        assert!(
            c.insert((kind.to_owned(), name.to_owned()), value)
                .is_none(),
            "{kind} {name} printed twice"
        );
    }

    let expected = ABI_SIZES
        .iter()
        .map(|&(n, v)| ("size", n, v as u64))
        .chain(
            alignments()
                .into_iter()
                .map(|(n, v)| ("align", n, v as u64)),
        )
        .chain(ABI_OFFSETS.iter().map(|&(n, v)| ("offset", n, v as u64)))
        .chain(constants().into_iter().map(|(n, v)| ("const", n, v)));
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for (kind, name, rust) in expected {
        let key = (kind.to_owned(), name.to_owned());
        match c.get(&key) {
            Some(&v) if v == rust => checked += 1,
            Some(&v) => mismatches.push(format!("{kind} {name}: C {v}, Rust {rust}")),
            None => mismatches.push(format!("{kind} {name}: not printed by the C program")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "C header and Rust ABI disagree:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(checked, c.len(), "every printed value was compared");
    assert!(checked >= ABI_SIZES.len() + ABI_OFFSETS.len() + constants().len());
}

#[test]
fn ioctl_encoding_is_the_linux_one() {
    // Known values of the generic encoding, independent of the header.
    assert_eq!(ioc(IOC_NONE, b'T', 0x09, 0), 0x5409); // TCSBRK
    assert_eq!(ioc(IOC_READ, b'T', 0x30, 4), 0x8004_5430); // TIOCGPTN
    assert_eq!(ioc(IOC_WRITE, b'T', 0x31, 4), 0x4004_5431); // TIOCSPTLCK
    assert_eq!(
        ioc(IOC_READ | IOC_WRITE, abi::IOC_MAGIC, abi::IOC_NR_BIND, 64),
        0xC040_BE01
    );
}
