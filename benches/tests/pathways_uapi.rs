//! The pathways module's header (`driver/pathways/isc_pathways_uapi.h`) and
//! `isc_benches::pathways` describe the same interface: a C program built
//! from the Rust values is compiled against the header and run, and every
//! size, offset and constant it prints is compared with Rust's.

use isc_benches::pathways::{self as pw, attr, cmd, path, EchoArg, EmitArg, Event, ReplyHdr};
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

/// `_IOWR(ty, nr, size)` in the generic Linux encoding.
fn iowr(ty: u8, nr: u8, size: usize) -> u64 {
    (3u64 << 30) | ((size as u64) << 16) | (u64::from(ty) << 8) | u64::from(nr)
}

/// (C expression, Rust value) for everything checked.
fn expectations() -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = vec![
        (
            "sizeof(struct pw_reply_hdr)".into(),
            size_of::<ReplyHdr>() as u64,
        ),
        (
            "sizeof(struct pw_echo_arg)".into(),
            size_of::<EchoArg>() as u64,
        ),
        ("sizeof(struct pw_event)".into(), size_of::<Event>() as u64),
        (
            "sizeof(struct pw_emit_arg)".into(),
            size_of::<EmitArg>() as u64,
        ),
        ("PW_MAX_MSG".into(), pw::MAX_MSG as u64),
        ("PW_SYSFS_MAX".into(), pw::SYSFS_MAX as u64),
        ("PW_EVENT_QUEUE".into(), pw::EVENT_QUEUE.into()),
        ("PW_UID_ECHO".into(), pw::UID_ECHO.into()),
        ("PW_UID_ECHO2".into(), pw::UID_ECHO2.into()),
        ("PW_UID_EVENT".into(), pw::UID_EVENT.into()),
        ("PW_GENL_VERSION".into(), pw::GENL_VERSION.into()),
        ("PW_CMD_ECHO".into(), cmd::ECHO.into()),
        ("PW_CMD_EVENT".into(), cmd::EVENT.into()),
        ("PW_A_DATA".into(), attr::DATA.into()),
        ("PW_A_RC".into(), attr::RC.into()),
        ("PW_A_SEQ".into(), attr::SEQ.into()),
        ("PW_A_T_NS".into(), attr::T_NS.into()),
        ("PW_A_PAD".into(), attr::PAD.into()),
        ("PW_A_MAX".into(), attr::MAX.into()),
        ("PW_PATH_CHARDEV".into(), path::CHARDEV.into()),
        ("PW_PATH_SYSFS".into(), path::SYSFS.into()),
        ("PW_PATH_NETLINK".into(), path::NETLINK.into()),
        ("PW_PATH_ISC".into(), path::ISC.into()),
        ("PW_IOC_MAGIC".into(), pw::IOC_MAGIC.into()),
        (
            "PW_IOC_ECHO".into(),
            iowr(pw::IOC_MAGIC, pw::IOC_NR_ECHO, size_of::<EchoArg>()),
        ),
        (
            "PW_IOC_EMIT".into(),
            iowr(pw::IOC_MAGIC, pw::IOC_NR_EMIT, size_of::<EmitArg>()),
        ),
    ];
    let offsets: [(&str, &str, usize); 12] = [
        ("pw_reply_hdr", "rc", offset_of!(ReplyHdr, rc)),
        ("pw_reply_hdr", "len", offset_of!(ReplyHdr, len)),
        ("pw_echo_arg", "data", offset_of!(EchoArg, data)),
        ("pw_echo_arg", "len", offset_of!(EchoArg, len)),
        ("pw_echo_arg", "rc", offset_of!(EchoArg, rc)),
        ("pw_event", "seq", offset_of!(Event, seq)),
        ("pw_event", "t_ns", offset_of!(Event, t_ns)),
        ("pw_emit_arg", "pathway", offset_of!(EmitArg, pathway)),
        ("pw_emit_arg", "count", offset_of!(EmitArg, count)),
        ("pw_emit_arg", "gap_us", offset_of!(EmitArg, gap_us)),
        ("pw_emit_arg", "emitted", offset_of!(EmitArg, emitted)),
        ("pw_emit_arg", "retries", offset_of!(EmitArg, retries)),
    ];
    for (ty, field, off) in offsets {
        v.push((format!("offsetof(struct {ty}, {field})"), off as u64));
    }
    v
}

#[test]
fn c_header_matches_rust() {
    let header_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../driver/pathways");
    assert!(header_dir.join("isc_pathways_uapi.h").is_file());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pathways_uapi");
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <string.h>\n\
         #include \"isc_pathways_uapi.h\"\nint main(void)\n{\n",
    );
    for (expr, _) in expectations() {
        c.push_str(&format!(
            "\tprintf(\"%llu\\n\", (unsigned long long)({expr}));\n"
        ));
    }
    // The string constants.
    c.push_str(&format!(
        "\tprintf(\"%d\\n\", strcmp(PW_GENL_NAME, \"{}\") == 0 && strcmp(PW_GENL_MCGRP, \"{}\") == 0);\n",
        pw::GENL_NAME,
        pw::GENL_MCGRP
    ));
    c.push_str("\treturn 0;\n}\n");
    let src = dir.join("pw.c");
    let bin = dir.join("pw");
    std::fs::write(&src, c).unwrap();
    // Building the kernel module needs a C compiler: its absence is an error.
    let out = Command::new("cc")
        .arg(format!("-I{}", header_dir.display()))
        .args(["-std=gnu11", "-Wall", "-Werror"])
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .output()
        .expect("running cc (needed to check the module's header)");
    assert!(
        out.status.success(),
        "the header does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&bin).output().unwrap();
    assert!(out.status.success());
    let printed: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let want = expectations();
    assert_eq!(printed.len(), want.len() + 1);
    for ((expr, rust), c) in want.iter().zip(&printed) {
        assert_eq!(rust, c, "{expr}: Rust {rust}, C {c}");
    }
    assert_eq!(printed[want.len()], 1, "GENL name or group differ");
}
