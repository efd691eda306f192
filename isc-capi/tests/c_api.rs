//! The C tests of libisc: C programs in `tests/c/` built with `-Wall
//! -Werror` against `include/` and `libisc.so`, run against a simulated
//! host in this process (`ISC_TRANSPORT=sim`), each twice: built with
//! AddressSanitizer (leak checking on), and under valgrind's memcheck
//! (which also sees the library's own accesses). Either finding fails the
//! test.
//!
//! The host serves:
//! - `ict0` to `ict7`, control channels the C programs steer the driver
//!   side with, over libisc itself (16-byte `{op, uid, a, b}` messages, see
//!   [`Control`]); each program gets its own in `ISC_TEST_CTL`;
//! - `sam0` and `sam1`, the sample protocol's register driver with a 20 ms
//!   irq timer;
//! - `ehlo`, the sim's echo driver, which posts as soon as it is bound.

use isc_transport_sim::sample::{EchoDriver, IrqTimer, RegisterDriver};
use isc_transport_sim::{Handle, Message, PostError, SimDriver, SimHost};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

const EINVAL: i32 = 22;
const EEXIST: i32 = 17;
const ENOENT: i32 = 2;
const ENOTCONN: i32 = 107;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A driver the C tests register on demand. A call of at least 12 bytes
/// is `{i32 rc; u32 reply_len; u32 delay_ms; payload}`: the driver sleeps
/// `delay_ms`, inverts every payload byte, sets the reply length to
/// `reply_len` (0: unchanged; bytes added are zero) and returns `rc`. A
/// shorter call returns its length, message unchanged.
#[derive(Default)]
struct TestDriver {
    handle: Mutex<Option<Handle>>,
    bound: AtomicU32,
    unbind: AtomicU32,
}

impl SimDriver for TestDriver {
    fn bound(&self, handle: Handle) {
        *lock(&self.handle) = Some(handle);
        self.bound.fetch_add(1, Ordering::SeqCst);
    }

    fn unbind(&self) {
        *lock(&self.handle) = None;
        self.unbind.fetch_add(1, Ordering::SeqCst);
    }

    fn got(&self, msg: &mut Message) -> i32 {
        if msg.len() < 12 {
            return msg.len() as i32;
        }
        let word = |d: &[u8], i: usize| u32::from_ne_bytes(d[4 * i..4 * i + 4].try_into().unwrap());
        let (rc, reply_len, delay) = {
            let d = msg.data();
            (word(d, 0) as i32, word(d, 1), word(d, 2))
        };
        std::thread::sleep(Duration::from_millis(delay.min(10_000).into()));
        for b in &mut msg.data_mut()[12..] {
            *b = !*b;
        }
        if reply_len != 0 && msg.set_len(reply_len as usize).is_err() {
            return -EINVAL;
        }
        rc
    }
}

/// Post `i` of a `POST` command: byte `j` is `(i + j) & 0xff`, and the
/// first four bytes are `i` when the post is that long.
fn post_pattern(i: u32, len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
    if len >= 4 {
        m[..4].copy_from_slice(&i.to_ne_bytes());
    }
    m
}

/// The control driver: ops 1 REGISTER, 2 UNREGISTER (both on `uid`), 3 POST
/// (`a` messages of `b` bytes; reply `a` = posted, fewer if the ring filled
/// or the binding ended after the first), 4 STATS (reply `a` =
/// bound calls, `b` = unbind calls). rc 0 or a negative errno.
struct Control {
    host: Weak<SimHost>,
    drivers: Mutex<HashMap<u32, Arc<TestDriver>>>,
}

impl Control {
    fn run(&self, op: u32, uid: u32, a: u32, b: u32) -> (i32, u32, u32) {
        let Some(host) = self.host.upgrade() else {
            return (-EINVAL, a, b);
        };
        match op {
            1 => {
                let mut drivers = lock(&self.drivers);
                if drivers.contains_key(&uid) {
                    return (-EEXIST, a, b);
                }
                let d = Arc::new(TestDriver::default());
                match host.register(uid, d.clone()) {
                    Ok(()) => {
                        drivers.insert(uid, d);
                        (0, a, b)
                    }
                    Err(_) => (-EEXIST, a, b),
                }
            }
            2 => {
                // Not under the map lock: unregister waits for running
                // handlers of the UID.
                let found = lock(&self.drivers).remove(&uid).is_some();
                if !found {
                    return (-ENOENT, a, b);
                }
                (host.unregister(uid).map_or(-ENOENT, |()| 0), a, b)
            }
            3 => {
                let d = lock(&self.drivers).get(&uid).cloned();
                let Some(h) = d.and_then(|d| lock(&d.handle).clone()) else {
                    return (-ENOTCONN, 0, b);
                };
                let mut posted = 0;
                while posted < a {
                    match h.post(&post_pattern(posted, b as usize)) {
                        Ok(()) => posted += 1,
                        Err(PostError::Full) => break,
                        // The binding ended (the user may close as soon as
                        // a post arrives): report what was posted.
                        Err(PostError::NotBound) if posted > 0 => break,
                        Err(PostError::NotBound) => return (-ENOTCONN, 0, b),
                        Err(_) => return (-EINVAL, posted, b),
                    }
                }
                (0, posted, b)
            }
            4 => match lock(&self.drivers).get(&uid) {
                Some(d) => (
                    0,
                    d.bound.load(Ordering::SeqCst),
                    d.unbind.load(Ordering::SeqCst),
                ),
                None => (-ENOENT, a, b),
            },
            _ => (-EINVAL, a, b),
        }
    }
}

impl SimDriver for Control {
    fn bound(&self, _: Handle) {}

    fn unbind(&self) {}

    fn got(&self, msg: &mut Message) -> i32 {
        if msg.len() != 16 {
            return -EINVAL;
        }
        let d = msg.data_mut();
        let w = |i: usize| u32::from_ne_bytes(d[4 * i..4 * i + 4].try_into().unwrap());
        let (rc, a, b) = self.run(w(0), w(1), w(2), w(3));
        d[8..12].copy_from_slice(&a.to_ne_bytes());
        d[12..16].copy_from_slice(&b.to_ne_bytes());
        rc
    }
}

struct Fixture {
    socket: PathBuf,
    lib_dir: PathBuf,
    _host: Arc<SimHost>,
    _timers: Vec<IrqTimer>,
}

/// Control UIDs: `ict0`, `ict1`, ...
const CONTROL_UIDS: u8 = 8;

fn control_uid(i: u8) -> [u8; 4] {
    [b'i', b'c', b't', b'0' + i]
}

fn uid(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

/// Builds libisc (the cdylib is not built for integration tests) in the
/// profile of this test binary, and returns its directory.
fn build_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "isc-capi", "--lib", "--target-dir"])
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p isc-capi failed");
    assert!(profile_dir.join("libisc.so").exists());
    profile_dir
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let lib_dir = build_lib();
        let host = Arc::new(SimHost::new().unwrap());
        let control = Arc::new(Control {
            host: Arc::downgrade(&host),
            drivers: Mutex::default(),
        });
        for i in 0..CONTROL_UIDS {
            host.register(uid(&control_uid(i)), control.clone())
                .unwrap();
        }
        let mut timers = Vec::new();
        for name in [b"sam0", b"sam1"] {
            let sample = Arc::new(RegisterDriver::new());
            timers.push(sample.start_irq(Duration::from_millis(20)));
            host.register(uid(name), sample).unwrap();
        }
        host.register(uid(b"ehlo"), Arc::new(EchoDriver::new()))
            .unwrap();
        let dir = std::env::temp_dir().join(format!("isc-capi-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("sim.sock");
        host.listen(&socket).unwrap();
        Fixture {
            socket,
            lib_dir,
            _host: host,
            _timers: timers,
        }
    })
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `tests/c/<name>.c` (or an example) with `-Wall -Wextra
/// -Werror`, with or without AddressSanitizer.
fn compile(source: &Path, out: &Path, asan: bool) {
    compile_with(&["cc", "-std=gnu11"], source, out, asan);
}

/// `compiler` (with its language options) builds `source` into `out`.
fn compile_with(compiler: &[&str], source: &Path, out: &Path, asan: bool) {
    let f = fixture();
    let mut cmd = Command::new(compiler[0]);
    cmd.args(&compiler[1..])
        .args(["-g", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .arg("-I")
        .arg(manifest_dir().join("tests/c"))
        .arg("-I")
        .arg(manifest_dir().join("examples"));
    if asan {
        cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
    }
    cmd.arg("-o")
        .arg(out)
        .arg(source)
        .arg("-L")
        .arg(&f.lib_dir)
        .arg(format!("-Wl,-rpath,{}", f.lib_dir.display()))
        .args(["-lisc", "-lpthread"]);
    let o = cmd.output().expect("run cc");
    assert!(
        o.status.success(),
        "compiling {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn run(mut cmd: Command, control: u8, what: &str) -> String {
    let f = fixture();
    assert!(control < CONTROL_UIDS);
    cmd.env(
        "ISC_TEST_CTL",
        String::from_utf8_lossy(&control_uid(control)).as_ref(),
    )
    .env("ISC_TRANSPORT", "sim")
    .env("ISC_SIM_SOCKET", &f.socket);
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

fn bin_dir() -> PathBuf {
    let d = fixture().lib_dir.join("c-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a C program natively with AddressSanitizer, then under valgrind;
/// returns the native run's output.
fn run_c(source: &Path, control: u8, args: &[&str]) -> String {
    let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
    let asan_bin = bin_dir().join(format!("{stem}-asan"));
    compile(source, &asan_bin, true);
    let mut cmd = Command::new(&asan_bin);
    cmd.args(args)
        .env("ASAN_OPTIONS", "detect_leaks=1:exitcode=23:halt_on_error=1");
    let out = run(cmd, control, &format!("{stem} (AddressSanitizer)"));

    let plain_bin = bin_dir().join(&stem);
    compile(source, &plain_bin, false);
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "-q",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--show-leak-kinds=definite,indirect",
    ])
    .arg(&plain_bin)
    .args(args)
    // Fewer iterations: valgrind runs threads one at a time, slowly.
    .env("ISC_TEST_LIGHT", "1");
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is not installed (scripts/capi-prereqs installs it)");
    }
    run(cmd, control, &format!("{stem} (valgrind)"));
    out
}

fn c_test(name: &str, control: u8) -> String {
    let out = run_c(
        &manifest_dir().join(format!("tests/c/{name}.c")),
        control,
        &[],
    );
    assert!(out.contains("PASS"), "{name}: no PASS line:\n{out}");
    out
}

#[test]
fn open() {
    c_test("t_open", 0);
}

#[test]
fn send() {
    c_test("t_send", 1);
}

#[test]
fn listeners() {
    c_test("t_listeners", 2);
}

#[test]
fn threads() {
    c_test("t_threads", 3);
}

#[test]
fn close() {
    c_test("t_close", 4);
}

#[test]
fn extensions() {
    c_test("t_ext", 5);
}

/// Runs `t_gone` against a host of its own, which shuts down once the
/// program says `ready`.
fn run_gone(bin: &Path, wrapper: Option<&[&str]>, what: &str) {
    use std::io::{BufRead, BufReader, Write};
    let dir = std::env::temp_dir().join(format!("isc-capi-gone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("sim.sock");
    let host = SimHost::new().unwrap();
    host.register(uid(b"gon0"), Arc::new(EchoDriver::new()))
        .unwrap();
    host.listen(&socket).unwrap();
    let mut cmd = match wrapper {
        Some([prog, args @ ..]) => {
            let mut c = Command::new(prog);
            c.args(args).arg(bin);
            c
        }
        _ => Command::new(bin),
    };
    let mut child = cmd
        .env("ISC_TRANSPORT", "sim")
        .env("ISC_SIM_SOCKET", &socket)
        .env("ASAN_OPTIONS", "detect_leaks=1:exitcode=23:halt_on_error=1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "{what}");
    drop(host);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{what} failed ({status}):\n{rest}");
    assert!(rest.contains("PASS"), "{what}: {rest}");
}

/// The transport going away under an open handle.
#[test]
fn transport_gone() {
    let source = manifest_dir().join("tests/c/t_gone.c");
    let asan = bin_dir().join("t_gone-asan");
    compile(&source, &asan, true);
    run_gone(&asan, None, "t_gone (AddressSanitizer)");
    let plain = bin_dir().join("t_gone");
    compile(&source, &plain, false);
    run_gone(
        &plain,
        Some(&[
            "valgrind",
            "-q",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
        ]),
        "t_gone (valgrind)",
    );
}

/// The C sample against the sim twin of the sample driver.
#[test]
fn sample() {
    let out = run_c(&manifest_dir().join("examples/sample.c"), 6, &[]);
    assert!(
        out.contains("32 registers written and read back, 0 mismatches"),
        "{out}"
    );
    assert!(out.contains("irq 1 status"), "{out}");
}

/// libisc.so exports `open_isc` and the `isc_` extensions, nothing else.
#[test]
fn exports_are_open_isc_and_isc_prefixed_only() {
    let lib = fixture().lib_dir.join("libisc.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("run nm");
    assert!(out.status.success());
    let symbols: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    for s in &symbols {
        assert!(s == "open_isc" || s.starts_with("isc_"), "exported: {s}");
    }
    for f in [
        "open_isc",
        "isc_abi_version",
        "isc_open",
        "isc_call",
        "isc_fd",
        "isc_recv",
    ] {
        assert!(symbols.iter().any(|s| s == f), "{f} not exported");
    }
}

/// The C sample builds as C++ too (`isc.h` and the sample protocol's header
/// in a C++ program), and runs.
#[test]
fn sample_as_cxx() {
    let bin = bin_dir().join("sample-cxx");
    compile_with(
        &["c++", "-x", "c++", "-std=c++11"],
        &manifest_dir().join("examples/sample.c"),
        &bin,
        false,
    );
    let mut cmd = Command::new(&bin);
    cmd.args(["2", "1"]);
    let out = run(cmd, 7, "sample built as C++");
    assert!(
        out.contains("OK: 32 registers written and read back, 0 mismatches"),
        "{out}"
    );
}
