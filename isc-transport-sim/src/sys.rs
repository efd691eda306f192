//! The system objects of a channel: the sealed `memfd` region, the `eventfd`
//! doorbells, and polling with a deadline.

use crate::error::{Fault, SimError};
use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// One `eventfd` used as a doorbell: ringing adds 1, draining reads and
/// resets the counter. Non-blocking, close-on-exec.
#[derive(Debug)]
pub(crate) struct Doorbell(OwnedFd);

impl Doorbell {
    pub fn new() -> Result<Self, SimError> {
        let fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Self(fd.into()))
    }

    /// Adopts a descriptor received from the peer.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self(fd)
    }

    /// A second descriptor for the same doorbell (for the other side).
    pub fn try_clone_fd(&self) -> Result<OwnedFd, SimError> {
        Ok(self.0.try_clone()?)
    }

    /// Rings: adds 1 to the counter. A saturated counter (`EAGAIN`) already
    /// reads as rung, so it is not an error.
    pub fn ring(&self) -> Result<(), SimError> {
        match nix::unistd::write(&self.0, &1u64.to_ne_bytes()) {
            Ok(_) | Err(Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Rings a doorbell the peer shares, without ever blocking.
    ///
    /// The `O_NONBLOCK` flag lives in the open file description, which the
    /// peer shares and may clear; a write to a saturated counter would then
    /// block. Checking for `POLLOUT` first makes that a race the peer must
    /// win against its own doorbell, and a counter that is not writable is
    /// saturated, i.e. already rung.
    pub fn ring_guarded(&self) -> Result<(), SimError> {
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) | Err(Errno::EINTR) => Ok(()),
            Ok(_) => self.ring(),
            Err(e) => Err(e.into()),
        }
    }

    /// Resets the counter, returning its value (0 if it was not rung).
    pub fn drain(&self) -> Result<u64, SimError> {
        let mut buf = [0u8; 8];
        match nix::unistd::read(self.0.as_raw_fd(), &mut buf) {
            Ok(8) => Ok(u64::from_ne_bytes(buf)),
            Ok(_) | Err(Errno::EAGAIN) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Drains the doorbell only if `poll` says it was rung (see
    /// [`Doorbell::ring_guarded`] for why a shared descriptor is polled first).
    pub fn drain_guarded(&self) -> Result<u64, SimError> {
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) | Err(Errno::EINTR) => Ok(0),
            Ok(_) => self.drain(),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The shared region: a sealed `memfd` mapped shared, read-write.
///
/// The mapping is raw ([`MmapRaw`]): both sides write it concurrently, so no
/// Rust reference to its bytes is ever created after initialisation; the
/// ring views access it through raw pointers and atomics.
#[derive(Debug)]
pub(crate) struct Region {
    map: MmapRaw,
    fd: OwnedFd,
}

/// The seals the host puts on every region. `F_SEAL_SHRINK` is what keeps a
/// peer from truncating the file under the other side's mapping (`SIGBUS`).
fn host_seals() -> SealFlag {
    SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL
}

impl Region {
    /// Creates a zeroed, sealed region of `len` bytes (a multiple of the page size).
    pub fn create(name: &str, len: usize) -> Result<Self, SimError> {
        let name = CString::new(name).unwrap_or_default();
        let fd = memfd_create(
            &name,
            MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
        )?;
        let file = File::from(fd);
        file.set_len(len as u64)?;
        let fd = OwnedFd::from(file);
        fcntl(fd.as_raw_fd(), FcntlArg::F_ADD_SEALS(host_seals()))?;
        let map = MmapOptions::new().len(len).map_raw(&fd)?;
        Ok(Self { map, fd })
    }

    /// Maps a region received from the host, after checking it is exactly
    /// `len` bytes long and sealed against shrinking.
    pub fn open(fd: OwnedFd, len: usize) -> Result<Self, SimError> {
        let seals = fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS)
            .map_err(|_| Fault::Region("not a sealable memfd"))?;
        if SealFlag::from_bits_truncate(seals).contains(SealFlag::F_SEAL_SHRINK)
            && SealFlag::from_bits_truncate(seals).contains(SealFlag::F_SEAL_GROW)
        {
            let file = File::from(fd);
            let size = file.metadata()?.len();
            if size != len as u64 {
                return Err(Fault::Region("size differs from the bind response").into());
            }
            let fd = OwnedFd::from(file);
            let map = MmapOptions::new().len(len).map_raw(&fd)?;
            Ok(Self { map, fd })
        } else {
            Err(Fault::Region("not sealed against shrinking and growing").into())
        }
    }

    /// Start of the mapping (page-aligned).
    pub fn ptr(&self) -> NonNull<u8> {
        // A successful mmap never returns null; fall back to dangling (len 0
        // accesses only) rather than panic.
        NonNull::new(self.map.as_mut_ptr()).unwrap_or(NonNull::dangling())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The region's `memfd`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// How long a spin-wait busy-loops before it starts yielding the CPU.
pub(crate) const PURE_SPIN: Duration = Duration::from_nanos(500);

/// A bounded spin-wait: busy-loops for [`PURE_SPIN`], then yields the CPU
/// between checks until the budget is spent.
///
/// Yielding matters on a loaded machine: when the peer thread was scheduled
/// on the same CPU, a pure spin would hold the CPU the peer needs for the
/// whole budget; `sched_yield` lets it run at once. On an idle machine with
/// the peer on another CPU the answer usually arrives within the pure spin.
pub(crate) struct SpinWait {
    start: Instant,
    budget: Duration,
}

impl SpinWait {
    pub fn new(budget: Duration) -> Self {
        Self {
            start: Instant::now(),
            budget,
        }
    }

    /// Waits a little; false once the budget is spent (the caller should
    /// then sleep on its doorbell).
    pub fn again(&mut self) -> bool {
        let spent = self.start.elapsed();
        if spent >= self.budget {
            return false;
        }
        if spent < PURE_SPIN {
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        true
    }
}

/// Time left until `deadline`, `None` for no deadline.
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// A `poll` timeout from an optional duration (rounded up to whole
/// milliseconds so a short wait never becomes a busy loop).
pub(crate) fn poll_timeout(timeout: Option<Duration>) -> PollTimeout {
    match timeout {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            PollTimeout::try_from(ms.min(i32::MAX as u128)).unwrap_or(PollTimeout::MAX)
        }
    }
}

/// True if `poll` reported any event on `fd` (flags unknown to `nix` count).
pub(crate) fn fired(fd: &PollFd<'_>) -> bool {
    fd.revents().map_or(true, |r| !r.is_empty())
}

/// What a wait on a doorbell observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// The doorbell rang (and was drained).
    Rung,
    /// The deadline passed.
    Timeout,
    /// The connection to the other side is closed (or carried unexpected data).
    Hangup,
}

/// Sleeps until `bell` rings, `conn` reports an event (the peer hung up), or
/// `timeout` passes. A rung doorbell wins over a hang-up, so messages posted
/// just before the peer left are not lost.
pub(crate) fn wait_bell(
    bell: &Doorbell,
    conn: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> Result<Woke, SimError> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let mut fds = [
            PollFd::new(bell.as_fd(), PollFlags::POLLIN),
            PollFd::new(conn, PollFlags::POLLIN),
        ];
        match poll(&mut fds, poll_timeout(remaining(deadline))) {
            Ok(0) => {
                if remaining(deadline).is_some_and(|d| d.is_zero()) {
                    return Ok(Woke::Timeout);
                }
            }
            Ok(_) => {
                let rung = fired(&fds[0]);
                let hup = fired(&fds[1]);
                if rung {
                    bell.drain()?;
                    return Ok(Woke::Rung);
                }
                if hup {
                    return Ok(Woke::Hangup);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doorbell_rings_and_drains() {
        let bell = Doorbell::new().unwrap();
        assert_eq!(bell.drain().unwrap(), 0);
        bell.ring().unwrap();
        bell.ring_guarded().unwrap();
        assert_eq!(bell.drain_guarded().unwrap(), 2);
        assert_eq!(bell.drain_guarded().unwrap(), 0);
    }

    #[test]
    fn region_is_sealed_and_reopens() {
        let r = Region::create("isc-test", 8192).unwrap();
        assert_eq!(r.len(), 8192);
        let fd = r.fd().try_clone_to_owned().unwrap();
        let file = File::from(fd);
        assert!(file.set_len(4096).is_err(), "shrink must be refused");
        assert!(file.set_len(16384).is_err(), "grow must be refused");
        let fd = OwnedFd::from(file);
        let dup = fd.try_clone().unwrap();
        assert!(matches!(
            Region::open(dup, 4096),
            Err(SimError::Corrupt(Fault::Region(_)))
        ));
        let again = Region::open(fd, 8192).unwrap();
        assert_eq!(again.len(), 8192);
    }

    #[test]
    fn unsealed_memfd_is_refused() {
        let fd = memfd_create(c"plain", MemFdCreateFlag::MFD_CLOEXEC).unwrap();
        let file = File::from(fd);
        file.set_len(4096).unwrap();
        assert!(matches!(
            Region::open(file.into(), 4096),
            Err(SimError::Corrupt(Fault::Region(_)))
        ));
    }

    #[test]
    fn poll_timeout_rounds_up() {
        assert_eq!(i32::from(poll_timeout(None)), -1);
        assert_eq!(i32::from(poll_timeout(Some(Duration::from_micros(1)))), 1);
        assert_eq!(i32::from(poll_timeout(Some(Duration::ZERO))), 0);
    }
}
