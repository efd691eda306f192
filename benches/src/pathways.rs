//! The pathways benchmark's view of the benchmark module's interface
//! (`driver/pathways/isc_pathways_uapi.h`), the generic netlink framing its
//! runner speaks, and the statistics it reports.
//!
//! The runner is the `pathways` example of this package; it runs inside the
//! VM started by `cargo xtask vm-bench`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Largest echo message on every pathway but sysfs.
pub const MAX_MSG: usize = 4096;
/// Largest echo message on the sysfs attribute: its reply (header and
/// payload) must fit a sysfs read, at most `PAGE_SIZE - 1` bytes.
pub const SYSFS_MAX: usize = 4096 - 1 - 8;
/// Depth of the char device's event queue.
pub const EVENT_QUEUE: u32 = 256;

/// UID of the ISC echo channel (`pwec`).
pub const UID_ECHO: u32 = u32::from_le_bytes(*b"pwec");
/// UID of a second ISC echo channel (`pwe2`), so that two clients can be
/// bound at once.
pub const UID_ECHO2: u32 = u32::from_le_bytes(*b"pwe2");
/// UID of the ISC event channel (`pwev`).
pub const UID_EVENT: u32 = u32::from_le_bytes(*b"pwev");

/// Generic netlink family name.
pub const GENL_NAME: &str = "isc_pathways";
/// Generic netlink family version.
pub const GENL_VERSION: u8 = 1;
/// Name of the family's multicast group for events.
pub const GENL_MCGRP: &str = "events";

/// Generic netlink commands of the family.
pub mod cmd {
    /// Echo request and its reply.
    pub const ECHO: u8 = 1;
    /// An event on the multicast group.
    pub const EVENT: u8 = 2;
}

/// Generic netlink attributes of the family.
pub mod attr {
    /// Echo payload (binary).
    pub const DATA: u16 = 1;
    /// Echo result code (s32).
    pub const RC: u16 = 2;
    /// Event sequence number (u64).
    pub const SEQ: u16 = 3;
    /// Event time, CLOCK_MONOTONIC ns (u64).
    pub const T_NS: u16 = 4;
    /// Padding for 64-bit attributes.
    pub const PAD: u16 = 5;
    /// Highest attribute.
    pub const MAX: u16 = 5;
}

/// Notification pathways (`PW_PATH_*`), as `EmitArg::pathway`.
pub mod path {
    /// Blocking read on the events char device.
    pub const CHARDEV: u32 = 1;
    /// `sysfs_notify` on the event attribute.
    pub const SYSFS: u32 = 2;
    /// Generic netlink multicast.
    pub const NETLINK: u32 = 3;
    /// `isc_post` on the event channel.
    pub const ISC: u32 = 4;
}

/// The echo device (ioctl, write/read) and the trigger of event runs.
pub const DEV_ECHO: &str = "/dev/isc_pathways";
/// The events char device.
pub const DEV_EVENTS: &str = "/dev/isc_pathways_events";
/// The procfs echo file.
pub const PROC_ECHO: &str = "/proc/isc_pathways/echo";
/// The debugfs echo file.
pub const DEBUGFS_ECHO: &str = "/sys/kernel/debug/isc_pathways/echo";
/// The sysfs echo attribute.
pub const SYSFS_ECHO: &str = "/sys/class/misc/isc_pathways/echo";
/// The sysfs event attribute.
pub const SYSFS_EVENT: &str = "/sys/class/misc/isc_pathways/event";

/// `struct pw_reply_hdr`: precedes the reply on the file-based pathways.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct ReplyHdr {
    /// Result code.
    pub rc: i32,
    /// Reply bytes that follow.
    pub len: u32,
}

/// `struct pw_echo_arg`: the argument of `PW_IOC_ECHO`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EchoArg {
    /// User pointer to `len` bytes; the reply overwrites them.
    pub data: u64,
    /// Request length.
    pub len: u32,
    /// Result code (out).
    pub rc: i32,
}

/// `struct pw_event`: what every notification pathway delivers.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Event {
    /// Sequence number, from 0 in each run.
    pub seq: u64,
    /// CLOCK_MONOTONIC time at which the driver raised it, in ns.
    pub t_ns: u64,
}

/// `struct pw_emit_arg`: the argument of `PW_IOC_EMIT`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EmitArg {
    /// One of [`path`].
    pub pathway: u32,
    /// Events to raise.
    pub count: u32,
    /// Pause between events, in µs.
    pub gap_us: u32,
    /// Must be 0.
    pub flags: u32,
    /// Events delivered (out).
    pub emitted: u64,
    /// Events that found the queue full (out).
    pub retries: u64,
}

/// The ioctl type byte of the module.
pub const IOC_MAGIC: u8 = 0xBE;
/// Number of `PW_IOC_ECHO`.
pub const IOC_NR_ECHO: u8 = 0x80;
/// Number of `PW_IOC_EMIT`.
pub const IOC_NR_EMIT: u8 = 0x81;

/// The reply the module gives to `req`: every byte complemented.
pub fn expected_reply(req: &[u8]) -> Vec<u8> {
    req.iter().map(|b| !b).collect()
}

/// Parses the sysfs event attribute, `"<seq> <t_ns> <gen>\n"`: the event
/// and its generation (events raised since the module loaded), which is
/// what tells a new event from one already read.
pub fn parse_sysfs_event(text: &[u8]) -> Option<(Event, u64)> {
    let text = std::str::from_utf8(text).ok()?;
    let mut it = text.split_ascii_whitespace();
    let seq = it.next()?.parse().ok()?;
    let t_ns = it.next()?.parse().ok()?;
    let gen = it.next()?.parse().ok()?;
    it.next().is_none().then_some((Event { seq, t_ns }, gen))
}

/// The `p`-th percentile (0..=100) of `sorted` (ascending), nearest rank;
/// `None` for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of `v` (the upper one for an even count); `None` if empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Netlink and generic netlink framing (`linux/netlink.h`,
/// `linux/genetlink.h`): building requests and walking replies.
pub mod nl {
    /// `NLMSG_ERROR`.
    pub const NLMSG_ERROR: u16 = 2;
    /// `NLMSG_DONE`.
    pub const NLMSG_DONE: u16 = 3;
    /// `NLM_F_REQUEST`.
    pub const NLM_F_REQUEST: u16 = 1;
    /// `GENL_ID_CTRL`: the generic netlink controller family.
    pub const GENL_ID_CTRL: u16 = 0x10;
    /// `CTRL_CMD_GETFAMILY`.
    pub const CTRL_CMD_GETFAMILY: u8 = 3;
    /// `CTRL_ATTR_FAMILY_ID` (u16).
    pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
    /// `CTRL_ATTR_FAMILY_NAME` (string).
    pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;
    /// `CTRL_ATTR_MCAST_GROUPS` (nested array).
    pub const CTRL_ATTR_MCAST_GROUPS: u16 = 7;
    /// `CTRL_ATTR_MCAST_GRP_NAME` (string).
    pub const CTRL_ATTR_MCAST_GRP_NAME: u16 = 1;
    /// `CTRL_ATTR_MCAST_GRP_ID` (u32).
    pub const CTRL_ATTR_MCAST_GRP_ID: u16 = 2;

    /// `sizeof(struct nlmsghdr)`.
    pub const NLMSG_HDRLEN: usize = 16;
    /// `GENL_HDRLEN`.
    pub const GENL_HDRLEN: usize = 4;
    const NLA_HDRLEN: usize = 4;
    /// Attribute type bits (without the nested/byte-order flags).
    const NLA_TYPE_MASK: u16 = 0x3fff;

    /// Rounds up to netlink's 4-byte alignment.
    pub const fn align(n: usize) -> usize {
        (n + 3) & !3
    }

    /// Builds a generic netlink request into `out` (cleared first):
    /// `nlmsghdr`, `genlmsghdr`, then each attribute.
    pub fn build_request(
        out: &mut Vec<u8>,
        family: u16,
        cmd: u8,
        version: u8,
        seq: u32,
        attrs: &[(u16, &[u8])],
    ) {
        out.clear();
        out.extend_from_slice(&[0; NLMSG_HDRLEN]);
        out.extend_from_slice(&[cmd, version, 0, 0]);
        for (ty, data) in attrs {
            let len = (NLA_HDRLEN + data.len()) as u16;
            out.extend_from_slice(&len.to_ne_bytes());
            out.extend_from_slice(&ty.to_ne_bytes());
            out.extend_from_slice(data);
            out.resize(align(out.len()), 0);
        }
        let total = out.len() as u32;
        out[0..4].copy_from_slice(&total.to_ne_bytes());
        out[4..6].copy_from_slice(&family.to_ne_bytes());
        out[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        out[8..12].copy_from_slice(&seq.to_ne_bytes());
        // nlmsg_pid 0: the kernel.
    }

    /// One netlink message of a datagram.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Msg<'a> {
        /// `nlmsg_type`: the family, or `NLMSG_ERROR`/`NLMSG_DONE`.
        pub ty: u16,
        /// `nlmsg_seq`.
        pub seq: u32,
        /// Everything after the `nlmsghdr`.
        pub payload: &'a [u8],
    }

    impl Msg<'_> {
        /// For `NLMSG_ERROR`: the error code (0 is an acknowledgement).
        pub fn error(&self) -> Option<i32> {
            (self.ty == NLMSG_ERROR)
                .then(|| self.payload.get(0..4))
                .flatten()
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        }

        /// For a generic netlink message: its command and attributes.
        pub fn genl(&self) -> Option<(u8, Attrs<'_>)> {
            let cmd = *self.payload.first()?;
            let attrs = self.payload.get(GENL_HDRLEN..)?;
            Some((cmd, Attrs(attrs)))
        }
    }

    /// The netlink messages of one datagram; stops at the first malformed one.
    pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = Msg<'_>> {
        std::iter::from_fn(move || {
            if buf.len() < NLMSG_HDRLEN {
                return None;
            }
            let len = u32::from_ne_bytes(buf[0..4].try_into().ok()?) as usize;
            if len < NLMSG_HDRLEN || len > buf.len() {
                return None;
            }
            let msg = Msg {
                ty: u16::from_ne_bytes(buf[4..6].try_into().ok()?),
                seq: u32::from_ne_bytes(buf[8..12].try_into().ok()?),
                payload: &buf[NLMSG_HDRLEN..len],
            };
            buf = &buf[align(len).min(buf.len())..];
            Some(msg)
        })
    }

    /// A run of netlink attributes.
    #[derive(Clone, Copy, Debug)]
    pub struct Attrs<'a>(pub &'a [u8]);

    impl<'a> Attrs<'a> {
        /// Every `(type, payload)`; stops at the first malformed attribute.
        pub fn iter(&self) -> impl Iterator<Item = (u16, &'a [u8])> {
            let mut buf = self.0;
            std::iter::from_fn(move || {
                if buf.len() < NLA_HDRLEN {
                    return None;
                }
                let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
                let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
                if len < NLA_HDRLEN || len > buf.len() {
                    return None;
                }
                let data = &buf[NLA_HDRLEN..len];
                buf = &buf[align(len).min(buf.len())..];
                Some((ty, data))
            })
        }

        /// The first attribute of type `ty`.
        pub fn get(&self, ty: u16) -> Option<&'a [u8]> {
            self.iter().find(|(t, _)| *t == ty).map(|(_, d)| d)
        }

        /// A u16 attribute.
        pub fn u16(&self, ty: u16) -> Option<u16> {
            Some(u16::from_ne_bytes(self.get(ty)?.try_into().ok()?))
        }

        /// A u32 attribute.
        pub fn u32(&self, ty: u16) -> Option<u32> {
            Some(u32::from_ne_bytes(self.get(ty)?.try_into().ok()?))
        }

        /// An s32 attribute.
        pub fn i32(&self, ty: u16) -> Option<i32> {
            Some(i32::from_ne_bytes(self.get(ty)?.try_into().ok()?))
        }

        /// A u64 attribute.
        pub fn u64(&self, ty: u16) -> Option<u64> {
            Some(u64::from_ne_bytes(self.get(ty)?.try_into().ok()?))
        }
    }

    /// From a `CTRL_CMD_GETFAMILY` reply: the family id and the id of the
    /// multicast group named `group`, if it has one.
    pub fn family_and_group(attrs: Attrs<'_>, group: &str) -> Option<(u16, Option<u32>)> {
        let id = attrs.u16(CTRL_ATTR_FAMILY_ID)?;
        let grp = attrs.get(CTRL_ATTR_MCAST_GROUPS).and_then(|groups| {
            Attrs(groups).iter().find_map(|(_, g)| {
                let g = Attrs(g);
                let name = g.get(CTRL_ATTR_MCAST_GRP_NAME)?;
                (name.strip_suffix(&[0]).unwrap_or(name) == group.as_bytes())
                    .then(|| g.u32(CTRL_ATTR_MCAST_GRP_ID))
                    .flatten()
            })
        });
        Some((id, grp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[f64::NAN]), None);
    }

    #[test]
    fn sysfs_event_text() {
        assert_eq!(
            parse_sysfs_event(b"12 3456 7\n"),
            Some((
                Event {
                    seq: 12,
                    t_ns: 3456
                },
                7
            ))
        );
        assert_eq!(parse_sysfs_event(b"12 3456\n"), None);
        assert_eq!(parse_sysfs_event(b"12 34 56 78\n"), None);
        assert_eq!(parse_sysfs_event(b"x 1 2\n"), None);
    }

    #[test]
    fn layouts_match_the_header() {
        use std::mem::size_of;
        assert_eq!(size_of::<ReplyHdr>(), 8);
        assert_eq!(size_of::<EchoArg>(), 16);
        assert_eq!(size_of::<Event>(), 16);
        assert_eq!(size_of::<EmitArg>(), 32);
        assert_eq!(expected_reply(&[0, 0xff, 0x0f]), [0xff, 0, 0xf0]);
    }

    #[test]
    fn request_round_trips_through_the_parser() {
        let mut buf = Vec::new();
        nl::build_request(
            &mut buf,
            0x1234,
            cmd::ECHO,
            1,
            77,
            &[(attr::DATA, b"abcde")],
        );
        // 16 + 4 + (4 + 5 padded to 12) = 32.
        assert_eq!(buf.len(), 32);
        let msgs: Vec<_> = nl::messages(&buf).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].ty, msgs[0].seq), (0x1234, 77));
        let (c, attrs) = msgs[0].genl().unwrap();
        assert_eq!(c, cmd::ECHO);
        assert_eq!(attrs.get(attr::DATA), Some(&b"abcde"[..]));
        assert_eq!(attrs.get(attr::RC), None);
        assert_eq!(msgs[0].error(), None);
    }

    #[test]
    fn malformed_datagrams_end_the_walk() {
        // A length beyond the buffer, and one below the header size.
        let mut bad = vec![0u8; 16];
        bad[0..4].copy_from_slice(&100u32.to_ne_bytes());
        assert_eq!(nl::messages(&bad).count(), 0);
        bad[0..4].copy_from_slice(&4u32.to_ne_bytes());
        assert_eq!(nl::messages(&bad).count(), 0);
        // An attribute longer than what is left.
        assert_eq!(nl::Attrs(&[200, 0, 1, 0, 9]).iter().count(), 0);
        // An error message carries its code.
        let mut err = vec![0u8; 20];
        err[0..4].copy_from_slice(&20u32.to_ne_bytes());
        err[4..6].copy_from_slice(&nl::NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-13i32).to_ne_bytes());
        assert_eq!(nl::messages(&err).next().unwrap().error(), Some(-13));
    }

    #[test]
    fn controller_reply_gives_family_and_group() {
        fn nla(ty: u16, data: &[u8]) -> Vec<u8> {
            let mut v = Vec::new();
            v.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
            v.extend_from_slice(&ty.to_ne_bytes());
            v.extend_from_slice(data);
            v.resize(nl::align(v.len()), 0);
            v
        }
        let grp_other = [
            nla(nl::CTRL_ATTR_MCAST_GRP_ID, &3u32.to_ne_bytes()),
            nla(nl::CTRL_ATTR_MCAST_GRP_NAME, b"other\0"),
        ]
        .concat();
        let grp_events = [
            nla(nl::CTRL_ATTR_MCAST_GRP_NAME, b"events\0"),
            nla(nl::CTRL_ATTR_MCAST_GRP_ID, &9u32.to_ne_bytes()),
        ]
        .concat();
        let groups = [nla(1, &grp_other), nla(2, &grp_events)].concat();
        let attrs = [
            nla(nl::CTRL_ATTR_FAMILY_NAME, b"isc_pathways\0"),
            nla(nl::CTRL_ATTR_FAMILY_ID, &0x21u16.to_ne_bytes()),
            nla(nl::CTRL_ATTR_MCAST_GROUPS | 0x8000, &groups),
        ]
        .concat();
        assert_eq!(
            nl::family_and_group(nl::Attrs(&attrs), "events"),
            Some((0x21, Some(9)))
        );
        assert_eq!(
            nl::family_and_group(nl::Attrs(&attrs), "nope"),
            Some((0x21, None))
        );
        assert_eq!(nl::family_and_group(nl::Attrs(&groups), "events"), None);
    }
}
