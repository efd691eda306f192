//! Choosing a transport, and adapting each to the facade's [`Link`].

use crate::link::{Bound, Link, View};
use crate::{Error, Result, Uid};
use isc_ring::abi::BindRequest;
use isc_ring::{Consumer, Producer};
use isc_transport_dev as dev;
use isc_transport_sim as sim;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Environment variable that picks the transport of apps that don't:
/// `dev` (or `device`) for `/dev/isc`, `sim` for a simulated host serving
/// the Unix socket named by [`SIM_SOCKET_ENV`].
pub const TRANSPORT_ENV: &str = "ISC_TRANSPORT";
/// Environment variable naming the simulated host's socket.
pub const SIM_SOCKET_ENV: &str = "ISC_SIM_SOCKET";
/// Socket of the simulated host when [`SIM_SOCKET_ENV`] is not set.
pub const DEFAULT_SIM_SOCKET: &str = "/tmp/isc-sim.sock";

/// Where a channel binds: the kernel device, or the simulated transport.
///
/// ```
/// use isc::Transport;
/// let device = Transport::device();
/// let remote = Transport::sim_socket("/tmp/isc-sim.sock");
/// ```
#[derive(Clone, Debug)]
pub struct Transport(Kind);

#[derive(Clone, Debug)]
enum Kind {
    Device(PathBuf),
    Sim(Arc<sim::SimHost>),
    SimSocket(PathBuf),
}

impl Transport {
    /// The kernel module's device, `/dev/isc`.
    pub fn device() -> Self {
        Self(Kind::Device(PathBuf::from(dev::DEFAULT_PATH)))
    }

    /// A device node at another path.
    pub fn device_at(path: impl Into<PathBuf>) -> Self {
        Self(Kind::Device(path.into()))
    }

    /// A simulated host in this process (drivers are Rust objects registered
    /// on it).
    pub fn sim(host: &Arc<sim::SimHost>) -> Self {
        Self(Kind::Sim(Arc::clone(host)))
    }

    /// A simulated host in another process, serving a Unix socket.
    pub fn sim_socket(path: impl Into<PathBuf>) -> Self {
        Self(Kind::SimSocket(path.into()))
    }

    /// The transport named by `ISC_TRANSPORT` (`dev`/`device`, or `sim`
    /// with the socket from `ISC_SIM_SOCKET`); if unset, the device when
    /// `/dev/isc` exists. Fails with [`Error::NoTransport`] otherwise.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(
            std::env::var(TRANSPORT_ENV).ok().as_deref(),
            std::env::var_os(SIM_SOCKET_ENV),
        )
    }

    fn from_vars(transport: Option<&str>, socket: Option<std::ffi::OsString>) -> Result<Self> {
        match transport {
            Some("dev") | Some("device") => Ok(Self::device()),
            Some("sim") => Ok(Self::sim_socket(
                socket.map_or_else(|| DEFAULT_SIM_SOCKET.into(), PathBuf::from),
            )),
            Some(other) => Err(Error::NoTransport(format!(
                "{TRANSPORT_ENV}={other:?}: expected \"dev\" or \"sim\""
            ))),
            None if std::path::Path::new(dev::DEFAULT_PATH).exists() => Ok(Self::device()),
            None => Err(Error::NoTransport(format!(
                "{} does not exist (is the isc module loaded?) and {TRANSPORT_ENV} is not set",
                dev::DEFAULT_PATH
            ))),
        }
    }

    pub(crate) fn bind(&self, req: BindRequest) -> Result<Bound> {
        let uid = Uid::new(req.uid);
        match &self.0 {
            Kind::Device(path) => {
                let ep = dev::DevEndpoint::bind(Some(path), req).map_err(|e| dev_error(e, uid))?;
                let bound = ep.bound_at_bind();
                let (u2k, k2u, shared) = ep.split();
                Ok(Bound {
                    u2k: Box::new(u2k),
                    k2u: Box::new(k2u),
                    bound,
                    link: Box::new(DevLink(shared)),
                })
            }
            Kind::Sim(host) => sim_bound(host.bind(&req), uid, Some(Arc::clone(host))),
            Kind::SimSocket(path) => sim_bound(sim::SimClient::connect(path, &req), uid, None),
        }
    }
}

fn sim_bound(
    ep: std::result::Result<sim::UserEndpoint, sim::SimError>,
    uid: Uid,
    host: Option<Arc<sim::SimHost>>,
) -> Result<Bound> {
    let ep = ep.map_err(|e| sim_error(e, uid))?;
    let link = Arc::clone(ep.link());
    let bound = link.response().bound != 0;
    let (u2k, k2u) = ep.split();
    Ok(Bound {
        u2k: Box::new(u2k),
        k2u: Box::new(k2u),
        bound,
        link: Box::new(SimLink { link, _host: host }),
    })
}

impl View<Producer> for sim::UserTx {
    fn view(&mut self) -> &mut Producer {
        self.producer_mut()
    }
}

impl View<Consumer> for sim::UserRx {
    fn view(&mut self) -> &mut Consumer {
        self.consumer_mut()
    }
}

impl<T: Send> View<T> for dev::Attached<T> {
    fn view(&mut self) -> &mut T {
        self
    }
}

fn io(errno: i32) -> Error {
    Error::Io(std::io::Error::from_raw_os_error(errno))
}

fn sim_error(e: sim::SimError, uid: Uid) -> Error {
    use sim::SimError as S;
    match e {
        S::Bind(b) => Error::InvalidConfig(b),
        S::Busy { .. } => Error::Busy(uid),
        S::Refused { errno } => io(errno),
        S::NotBound => Error::NotBound,
        S::Closed => Error::Closed,
        S::Timeout => Error::Timeout(Duration::ZERO),
        S::TooLarge { len, max } => Error::TooLarge { len, max },
        S::Full => Error::Full,
        S::Corrupt(fault) => Error::Corrupt(fault.to_string()),
        S::Io(e) => Error::Io(e),
        other => Error::Io(std::io::Error::other(other.to_string())),
    }
}

fn dev_error(e: dev::DevError, uid: Uid) -> Error {
    use dev::DevError as D;
    match e {
        D::NoDevice { .. } => Error::NoTransport(e.to_string()),
        D::Bind(b) => Error::InvalidConfig(b),
        D::Busy => Error::Busy(uid),
        D::PermissionDenied => Error::PermissionDenied(uid),
        D::QuotaExceeded => Error::QuotaExceeded,
        D::AbiMismatch => io(isc_ring::abi::errno::EPROTO),
        D::Ring(r) => r.into(),
        D::Corrupt => Error::Corrupt(e.to_string()),
        D::NotBound => Error::NotBound,
        D::Io(errno) => io(errno as i32),
        other => Error::Io(std::io::Error::other(other.to_string())),
    }
}

/// The simulated transport: a service thread drains `u2k`, so kicks are
/// needed only when it sleeps; completions have their own doorbell.
struct SimLink {
    link: Arc<sim::Link>,
    /// An in-process host lives at least as long as its channels.
    _host: Option<Arc<sim::SimHost>>,
}

impl SimLink {
    fn waited(&self, r: std::result::Result<bool, sim::SimError>) -> Result<()> {
        r.map(drop)
            .map_err(|e| sim_error(e, Uid::new(self.link.uid().0)))
    }
}

impl Link for SimLink {
    fn kick_always(&self) -> bool {
        false
    }

    fn kick(&self) -> Result<()> {
        self.waited(self.link.kick().map(|()| true))
    }

    fn wait_posts(&self, timeout: Duration) -> Result<()> {
        self.waited(self.link.wait_posts(Some(timeout)))
    }

    fn wait_completion(&self, timeout: Duration) -> Result<()> {
        self.waited(self.link.wait_completion(Some(timeout)))
    }

    fn is_alive(&self) -> bool {
        !self.link.is_closed()
    }

    fn clear_posts(&self) {
        let _ = self.link.wait_posts(Some(Duration::ZERO));
    }

    fn posts_fd(&self) -> BorrowedFd<'_> {
        self.link.as_fd()
    }

    fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.link.completion_fd())
    }

    fn clear_completion(&self) {
        let _ = self.link.wait_completion(Some(Duration::ZERO));
    }
}

/// The device: the kernel drains `u2k` inside KICK, so every publish is
/// followed by a kick and completions are ready when it returns.
struct DevLink(Arc<dev::DevShared>);

impl Link for DevLink {
    fn kick_always(&self) -> bool {
        true
    }

    fn kick(&self) -> Result<()> {
        self.0
            .kick()
            .map(drop)
            .map_err(|e| dev_error(e, Uid::new(0)))
    }

    fn wait_posts(&self, timeout: Duration) -> Result<()> {
        self.0
            .wait_posts(Some(timeout))
            .map(drop)
            .map_err(|e| dev_error(e, Uid::new(0)))
    }

    fn wait_completion(&self, timeout: Duration) -> Result<()> {
        // Nothing to wait for: completions appear during KICK. Yield briefly
        // before the caller kicks again.
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
        Ok(())
    }

    fn is_alive(&self) -> bool {
        true
    }

    fn clear_posts(&self) {}

    fn posts_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn clear_completion(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_picks_the_transport() {
        assert!(matches!(
            Transport::from_vars(Some("dev"), None),
            Ok(Transport(Kind::Device(_)))
        ));
        assert!(matches!(
            Transport::from_vars(Some("device"), None),
            Ok(Transport(Kind::Device(_)))
        ));
        match Transport::from_vars(Some("sim"), Some("/run/x.sock".into())) {
            Ok(Transport(Kind::SimSocket(p))) => assert_eq!(p, PathBuf::from("/run/x.sock")),
            other => panic!("{other:?}"),
        }
        match Transport::from_vars(Some("sim"), None) {
            Ok(Transport(Kind::SimSocket(p))) => assert_eq!(p, PathBuf::from(DEFAULT_SIM_SOCKET)),
            other => panic!("{other:?}"),
        }
        match Transport::from_vars(Some("tcp"), None) {
            Err(Error::NoTransport(msg)) => assert!(msg.contains("tcp"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let t = Transport::device_at("/nonexistent/isc");
        let req = BindRequest {
            abi_version: isc_ring::abi::ABI_VERSION,
            uid: 1,
            u2k: isc_ring::abi::RingRequest { msz: 8, num: 1 },
            k2u: isc_ring::abi::RingRequest { msz: 8, num: 1 },
            ..Default::default()
        };
        match t.bind(req) {
            Err(Error::NoTransport(msg)) => assert!(msg.contains("/nonexistent/isc"), "{msg}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("bound on a missing device"),
        }
    }

    #[test]
    fn access_and_quota_refusals_are_typed() {
        let uid = Uid::new(0x306d_6173);
        assert!(matches!(
            dev_error(dev::DevError::PermissionDenied, uid),
            Error::PermissionDenied(u) if u == uid
        ));
        assert!(matches!(
            dev_error(dev::DevError::QuotaExceeded, uid),
            Error::QuotaExceeded
        ));
    }
}
