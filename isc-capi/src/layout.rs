//! Proves that `include/isc.h` and `include/isc_ext.h` agree with the Rust
//! side: the C type of every exported function and struct member is derived
//! from its Rust type (the [`CType`] impls are the whole translation table)
//! and the C compiler must find the header's declaration compatible with it;
//! every size, alignment, offset and constant is compared with C's own.

use crate::ffi::*;
use std::ffi::c_void;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The C spelling of a Rust FFI type.
trait CType {
    fn c() -> String;
}

macro_rules! prim {
    ($($t:ty => $c:literal),* $(,)?) => { $(impl CType for $t { fn c() -> String { $c.into() } })* };
}
// `c_int` is `i32`: C's `int` and `int32_t` are the same type on Linux, so
// `__builtin_types_compatible_p` accepts either spelling for it.
prim!(() => "void", u16 => "uint16_t", u32 => "uint32_t", i32 => "int32_t", c_void => "void",
      IscHandle => "struct isc_handle", IscAttr => "struct isc_attr",
      IscListenerOps => "struct isc_listener_ops", IscEvent => "struct isc_event");

impl<T: CType> CType for *mut T {
    fn c() -> String {
        format!("{} *", T::c())
    }
}
impl<T: CType> CType for *const T {
    fn c() -> String {
        format!("const {} *", T::c())
    }
}
impl<T: CType> CType for Option<T> {
    // Option of a function pointer: the same C pointer, maybe NULL.
    fn c() -> String {
        T::c()
    }
}

/// The C function type (`R (A, B)`) of a Rust function signature, and its
/// pointer type (`R (*)(A, B)`).
trait CFn {
    fn c_fn() -> String;
}
macro_rules! fns {
    ($($a:ident),*) => {
        impl<R: CType, $($a: CType),*> CFn for unsafe extern "C" fn($($a),*) -> R {
            fn c_fn() -> String { format!("{} ({})", R::c(), [$($a::c()),*].join(", ")) }
        }
        impl<R: CType, $($a: CType),*> CType for unsafe extern "C" fn($($a),*) -> R {
            fn c() -> String { format!("{} (*)({})", R::c(), [$($a::c()),*].join(", ")) }
        }
    };
}
fns!(A);
fns!(A, B, C);
fns!(A, B, C, D);
fns!(A, B, C, D, E);
fns!(A, B, C, D, E, F, G);
impl<R: CType> CFn for unsafe extern "C" fn() -> R {
    fn c_fn() -> String {
        format!("{} (void)", R::c())
    }
}

/// Checks of one header: C assertions and (name, C expression, Rust value).
#[derive(Default)]
struct Checks {
    asserts: Vec<String>,
    values: Vec<(String, String, u64)>,
}

impl Checks {
    /// An exported function: its declaration must have the Rust type.
    fn func<F: CFn>(&mut self, name: &str, _: F) {
        self.asserts.push(format!(
            "_Static_assert(__builtin_types_compatible_p(__typeof__({name}), {}), \"{name}\");",
            F::c_fn()
        ));
    }

    /// A struct member: its type, offset and size.
    fn member<S, M: CType>(&mut self, cstruct: &str, name: &str, offset: usize, _: fn(&S) -> &M) {
        self.asserts.push(format!(
            "_Static_assert(__builtin_types_compatible_p(__typeof__((({cstruct} *)0)->{name}), {}), \"{cstruct}.{name}\");",
            M::c()
        ));
        self.value(&format!("offsetof({cstruct}, {name})"), offset);
        self.value(&format!("sizeof((({cstruct} *)0)->{name})"), size_of::<M>());
    }

    /// A struct: size and alignment.
    fn size<S>(&mut self, cstruct: &str) {
        self.value(&format!("sizeof({cstruct})"), size_of::<S>());
        self.value(&format!("_Alignof({cstruct})"), align_of::<S>());
    }

    fn value(&mut self, expr: &str, v: usize) {
        self.values.push((expr.into(), expr.into(), v as u64));
    }

    /// A macro of the header and the Rust constant.
    fn constant(&mut self, name: &str, v: u32) {
        self.values.push((
            name.into(),
            format!("(unsigned long long)({name})"),
            v.into(),
        ));
    }

    fn program(&self) -> String {
        let mut src = String::from(
            "#include <stddef.h>\n#include <stdio.h>\n#include <isc.h>\n#include <isc_ext.h>\n",
        );
        for a in &self.asserts {
            src += a;
            src += "\n";
        }
        src += "int main(void)\n{\n";
        for (name, expr, _) in &self.values {
            src +=
                &format!("\tprintf(\"%s=%llu\\n\", \"{name}\", (unsigned long long)({expr}));\n");
        }
        src += "\treturn 0;\n}\n";
        src
    }
}

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("isc-capi-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn all_checks() -> Checks {
    let mut c = Checks::default();
    // isc.h
    c.func::<unsafe extern "C" fn(u32, *mut IscAttr, *mut IscAttr, *mut *mut IscHandle) -> i32>(
        "open_isc",
        crate::open_isc,
    );
    c.size::<IscHandle>("struct isc_handle");
    c.member(
        "struct isc_handle",
        "close",
        offset_of!(IscHandle, close),
        |h: &IscHandle| &h.close,
    );
    c.member(
        "struct isc_handle",
        "send",
        offset_of!(IscHandle, send),
        |h: &IscHandle| &h.send,
    );
    c.member(
        "struct isc_handle",
        "add_listener",
        offset_of!(IscHandle, add_listener),
        |h: &IscHandle| &h.add_listener,
    );
    c.member(
        "struct isc_handle",
        "rm_listener",
        offset_of!(IscHandle, rm_listener),
        |h: &IscHandle| &h.rm_listener,
    );
    c.size::<IscListenerOps>("struct isc_listener_ops");
    c.member(
        "struct isc_listener_ops",
        "bound",
        offset_of!(IscListenerOps, bound),
        |o: &IscListenerOps| &o.bound,
    );
    c.member(
        "struct isc_listener_ops",
        "unbind",
        offset_of!(IscListenerOps, unbind),
        |o: &IscListenerOps| &o.unbind,
    );
    c.member(
        "struct isc_listener_ops",
        "got",
        offset_of!(IscListenerOps, got),
        |o: &IscListenerOps| &o.got,
    );
    c.size::<IscAttr>("struct isc_attr");
    c.member(
        "struct isc_attr",
        "msz",
        offset_of!(IscAttr, msz),
        |a: &IscAttr| &a.msz,
    );
    c.member(
        "struct isc_attr",
        "num",
        offset_of!(IscAttr, num),
        |a: &IscAttr| &a.num,
    );
    // isc_ext.h
    c.func::<unsafe extern "C" fn() -> u32>("isc_abi_version", {
        // A safe fn coerces to the unsafe pointer type the table speaks of.
        let f: unsafe extern "C" fn() -> u32 = crate::ext::isc_abi_version;
        f
    });
    c.func::<unsafe extern "C" fn(u32, *const IscAttr, *const IscAttr, u32, *mut *mut IscHandle) -> i32>(
        "isc_open",
        crate::ext::isc_open,
    );
    c.func::<unsafe extern "C" fn(
        *mut IscHandle,
        *const c_void,
        u32,
        *mut c_void,
        u32,
        *mut i32,
        *mut u32,
    ) -> i32>("isc_call", crate::ext::isc_call);
    c.func::<unsafe extern "C" fn(*mut IscHandle) -> i32>("isc_fd", crate::ext::isc_fd);
    c.func::<unsafe extern "C" fn(*mut IscHandle, *mut IscEvent, *mut c_void, u32, i32) -> i32>(
        "isc_recv",
        crate::ext::isc_recv,
    );
    c.size::<IscEvent>("struct isc_event");
    c.member(
        "struct isc_event",
        "type",
        offset_of!(IscEvent, type_),
        |e: &IscEvent| &e.type_,
    );
    c.member(
        "struct isc_event",
        "len",
        offset_of!(IscEvent, len),
        |e: &IscEvent| &e.len,
    );
    c.constant("ISC_OPEN_PULL", ISC_OPEN_PULL);
    c.constant("ISC_EVENT_BOUND", ISC_EVENT_BOUND);
    c.constant("ISC_EVENT_UNBOUND", ISC_EVENT_UNBOUND);
    c.constant("ISC_EVENT_MESSAGE", ISC_EVENT_MESSAGE);
    c
}

#[test]
fn headers_agree_with_the_rust_side() {
    let checks = all_checks();
    let src = scratch("layout.c");
    let bin = scratch("layout");
    std::fs::write(&src, checks.program()).unwrap();
    let out = Command::new("cc")
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(include_dir())
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "the headers disagree with the Rust types:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        checks.program()
    );
    let out = Command::new(&bin).output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let mut lines = printed.lines();
    for (name, _, rust) in &checks.values {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no output for {name}"));
        let (n, v) = line.split_once('=').unwrap();
        assert_eq!(n, name);
        assert_eq!(
            v.parse::<u64>().unwrap(),
            *rust,
            "{name}: C {v}, Rust {rust}"
        );
    }
    assert!(checks.values.len() > 30 && checks.asserts.len() > 15);
}

/// A wrong Rust type is caught: the check is not vacuous.
#[test]
fn a_mismatched_signature_fails_to_compile() {
    let mut c = Checks::default();
    // `send` takes `int32_t *result`, not `uint32_t *`.
    c.member(
        "struct isc_handle",
        "send",
        0,
        |_: &IscHandle| -> &unsafe extern "C" fn(*mut IscHandle, *mut c_void, u32, *mut u32) -> i32 {
            unreachable!()
        },
    );
    // `add_listener` takes a `const` ops pointer.
    c.func::<unsafe extern "C" fn(u32, *mut IscAttr, *const IscAttr, *mut *mut IscHandle) -> i32>(
        "open_isc",
        {
            unsafe extern "C" fn f(
                _: u32,
                _: *mut IscAttr,
                _: *const IscAttr,
                _: *mut *mut IscHandle,
            ) -> i32 {
                0
            }
            f
        },
    );
    for (i, assert) in c.asserts.iter().enumerate() {
        let src = scratch(&format!("bad{i}.c"));
        std::fs::write(&src, format!("#include <isc.h>\n{assert}\n")).unwrap();
        let out = Command::new("cc")
            .args(["-std=gnu11", "-fsyntax-only", "-I"])
            .arg(include_dir())
            .arg(&src)
            .output()
            .unwrap();
        assert!(!out.status.success(), "accepted: {assert}");
    }
}

/// Each header compiles alone, as C and as C++, with every warning an
/// error (no unused static function, no object defined).
#[test]
fn headers_compile_alone_as_c_and_cxx() {
    for header in ["isc.h", "isc_ext.h", "isc_uid_uapi.h"] {
        for (compiler, lang, std) in [("cc", "c", "-std=c99"), ("c++", "c++", "-std=c++11")] {
            let src = scratch(&format!("alone-{header}.{lang}"));
            std::fs::write(&src, format!("#include <{header}>\n")).unwrap();
            let out = Command::new(compiler)
                .args(["-x", lang, std, "-Wall", "-Wextra", "-Werror", "-c", "-o"])
                .arg(scratch("alone.o"))
                .arg("-I")
                .arg(include_dir())
                .arg(&src)
                .output()
                .unwrap_or_else(|e| panic!("run {compiler}: {e}"));
            assert!(
                out.status.success(),
                "{header} as {lang}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let nm = Command::new("nm").arg(scratch("alone.o")).output().unwrap();
            assert!(
                String::from_utf8_lossy(&nm.stdout).trim().is_empty(),
                "{header} as {lang} defines symbols: {}",
                String::from_utf8_lossy(&nm.stdout)
            );
        }
    }
}

/// `isc_fourcc`: first character least significant, a constant expression.
#[test]
fn fourcc_matches_the_rust_uid() {
    let src = scratch("fourcc.c");
    let bin = scratch("fourcc");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <isc_uid_uapi.h>\n\
         _Static_assert(isc_fourcc('s', 'a', 'm', '0') == 0x306d6173, \"sam0\");\n\
         static const __u32 k = isc_fourcc('t', 'c', 't', 'l');\n\
         int main(void) { int i = 0; __u32 v = isc_fourcc(i++, 'b', 'c', 'd');\n\
         printf(\"%u %u %d\\n\", k, v, i); return 0; }\n",
    )
    .unwrap();
    let out = Command::new("cc")
        .args(["-Wall", "-Werror", "-I"])
        .arg(include_dir())
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&bin).output().unwrap();
    let expected = format!(
        "{} {} 1\n",
        facade::Uid::fourcc(*b"tctl").raw(),
        u32::from_le_bytes([0, b'b', b'c', b'd'])
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

/// The kernel side's copies of the shared headers are the same files: the
/// compat directory's `isc_uid_uapi.h`, and the compat driver's
/// `sample_uapi.h`.
#[test]
fn shared_header_copies_are_identical() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (ours, copy) in [
        (
            "include/isc_uid_uapi.h",
            "../driver/include/compat/isc_uid_uapi.h",
        ),
        (
            "examples/sample_uapi.h",
            "../driver/compat-driver/include/sample_uapi.h",
        ),
    ] {
        let a = std::fs::read(root.join(ours)).unwrap();
        let b = std::fs::read(root.join(copy)).unwrap_or_else(|e| panic!("{copy}: {e}"));
        assert!(a == b, "{copy} differs from isc-capi/{ours}");
    }
}
